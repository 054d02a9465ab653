"""The server: builds the gateway's parts from :class:`Settings` and mounts every dialect's router."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pixelgate.api import (
    admin,
    admin_channels,
    batch_paths,
    chat,
    files,
    gemini,
    gemini_batches,
    health,
    interactions,
    metrics,
    models,
    openai,
    openai_batches,
    tasks,
    usage,
)
from pixelgate.api import webhooks as webhooks_api
from pixelgate.api.errors import install_error_handlers
from pixelgate.api.gateway import Gateway
from pixelgate.api.limits import BodyLimitMiddleware
from pixelgate.api.openapi import install_openapi
from pixelgate.api.query_text import QueryTextMiddleware
from pixelgate.api.request_log import RequestLogMiddleware
from pixelgate.auth import redis_store
from pixelgate.auth.admin_key import load_admin_key
from pixelgate.auth.exposure import decide
from pixelgate.auth.guard import FailureGuard, LocalFailureGuard, RedisFailureGuard
from pixelgate.auth.keys import KeyStore
from pixelgate.auth.ledger import Ledger
from pixelgate.auth.rate import LocalRequestRate, RedisRequestRate, RequestRate
from pixelgate.catalog import Prices, default_catalog
from pixelgate.config import Settings, resolve_config
from pixelgate.core.pixel_budget import DECODED_PIXELS, return_large_blocks
from pixelgate.core.references import ImageFetcher
from pixelgate.routing import ChannelControls, build_router, check_channels
from pixelgate.store.blobs import BlobStore, UrlSigner
from pixelgate.store.db import Database, sqlite_url
from pixelgate.store.files import FileStore
from pixelgate.tasks.batch_runner import BatchRunner
from pixelgate.tasks.batches import BatchStore, batch_window
from pixelgate.tasks.events import TaskEvents
from pixelgate.tasks.queue import TaskQueue
from pixelgate.tasks.service import TaskService
from pixelgate.tasks.webhook_registry import WebhookRegistry
from pixelgate.tasks.webhook_sender import WebhookSender
from pixelgate.tasks.worker import Worker
from pixelgate.web.playground import install_playground

log = logging.getLogger("pixelgate")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The server. A wrong channel file (or a key it names that is not set) raises ``ConfigError`` here,
    before anything starts."""
    settings = settings or Settings()
    settings.check_auth()
    channels = resolve_config(settings, default_catalog())
    check_channels(channels)  # here, so that a bad option is refused before anything starts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        DECODED_PIXELS.resize(settings.max_decoded_pixels)  # one budget for the process, whatever decodes
        return_large_blocks()  # and what a decode frees leaves the process
        db = await Database.open(
            settings.database_url or sqlite_url(settings.data_dir), data_dir=settings.data_dir
        )
        catalog = default_catalog()
        router = build_router(channels)
        queue = TaskQueue(db, result_ttl=settings.result_ttl_seconds)
        events = TaskEvents(queue, max_poll_interval=settings.poll_interval)
        blobs = BlobStore(settings.data_dir / "blobs")
        fetcher = ImageFetcher(settings.limits, policy=settings.fetch_policy)
        prices = Prices(channels.prices, channels.batch_prices)
        # Counts every process must share live in Redis when there is one; else each process keeps its own.
        redis_client = None
        rate: RequestRate = LocalRequestRate()
        failures: FailureGuard = LocalFailureGuard()
        if settings.redis_url:
            redis_client = redis_store.connect(settings.redis_url)
            rate, failures = RedisRequestRate(redis_client), RedisFailureGuard(redis_client)
            if not await redis_store.answers(redis_client):
                log.warning(
                    "pixelgate: Redis at %s does not answer: requests that need a shared count get a 503 "
                    "until it does",
                    redis_store.without_password(settings.redis_url),
                )
        webhooks = WebhookRegistry(db)
        sender = None
        worker = None
        if settings.run_workers:
            sender = WebhookSender(
                db,
                webhooks,
                policy=settings.fetch_policy,
                retry_seconds=settings.webhook_retry_seconds,
                timeout=settings.webhook_timeout_seconds,
                poll_interval=settings.poll_interval,
            )
            queue.webhooks_queued = sender.wake
            await sender.start()
            worker = Worker(
                queue=queue,
                events=events,
                router=router,
                catalog=catalog,
                blobs=blobs,
                concurrency=settings.worker_concurrency,
                lease_seconds=settings.lease_seconds,
                poll_interval=settings.poll_interval,
                max_attempts=settings.max_attempts,
                prices=prices,
            )
            await worker.start()
        service = TaskService(
            catalog=catalog,
            limits=settings.limits,
            queue=queue,
            events=events,
            blobs=blobs,
            router=router,
            fetcher=fetcher,
            worker=worker,
            ledger=Ledger(db, max_tasks_per_key=settings.max_tasks_per_key),
            rate=rate,
            prices=prices,
            sync_wait_seconds=settings.sync_wait_seconds,
            queue_deadline_seconds=settings.queue_deadline_seconds,
        )
        controls = ChannelControls(db, router, poll_interval=settings.poll_interval)
        await controls.start()
        signer = UrlSigner(await db.secret("url_signing_secret"))
        keys = KeyStore(db)
        # Here, not before: whether keys are required depends on whether the database holds any.
        exposure = decide(settings, channels, await keys.count())
        log.log(exposure.level, "pixelgate: %s", exposure.message)
        if exposure.enabled:  # with auth off nobody needs one: none is made
            await load_admin_key(settings, keys, terminal=sys.stderr)
        app.state.gateway = Gateway(
            settings=settings,
            catalog=catalog,
            service=service,
            blobs=blobs,
            signer=signer,
            keys=keys,
            auth_enabled=exposure.enabled,
            failures=failures,
            webhooks=webhooks,
            files=FileStore(db, blobs),
            batches=BatchStore(db, queue),
            controls=controls,
        )
        runner = BatchRunner(
            store=app.state.gateway.batches,
            keys=keys,
            dialects={
                "openai": openai_batches.OpenAIBatches(app.state.gateway),
                "gemini": gemini_batches.GeminiBatches(app.state.gateway),
            },
            cancel_tasks=service.cancel_batch,
            poll_interval=settings.poll_interval,
            lease_seconds=settings.lease_seconds,
            files=app.state.gateway.files,
            # Enough lines queued that the worker's batch slots never wait for the runner to top up.
            window=batch_window(worker.batch_slots if worker is not None else 0),
        )
        if worker is not None:
            # Batch lines run only where a worker does; so does the runner that feeds them.
            app.state.gateway.batch_runner = runner
            worker.on_ended = runner.task_ended
            await runner.start()
        log.info(
            "pixelgate ready: %s; channels from %s: %s",
            "PostgreSQL" if db.is_postgres else "SQLite",
            channels.source,
            ", ".join(f"{c.name} ({c.provider})" for c in channels.channels) or "none",
        )
        try:
            yield
        finally:
            await controls.stop()
            await runner.stop()
            if worker is not None:
                await worker.stop(settings.shutdown_grace_seconds)
            if sender is not None:
                await sender.stop()
            await fetcher.close()
            await router.close()
            if redis_client is not None:
                await redis_client.aclose()
            await db.close()

    app = FastAPI(
        title="pixelgate",
        version="0.1.0",
        lifespan=lifespan,
        description="Image-generation gateway: OpenAI Images, task-style and Gemini APIs.",
    )
    install_error_handlers(app)
    install_openapi(app)
    for module in (
        openai,
        openai_batches,
        batch_paths,
        gemini_batches,  # before gemini: its :batchGenerateContent is a path gemini's catch-all takes too
        models,
        tasks,
        gemini,
        interactions,
        webhooks_api,
        chat,
        files,
        health,
        metrics,
        admin,
        admin_channels,
        usage,
    ):
        app.include_router(module.router)
    install_playground(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(QueryTextMiddleware)
    app.add_middleware(RequestLogMiddleware)  # outermost: a refused body is logged with its id too
    return app
