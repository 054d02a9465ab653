"""The running server's parts, built once from the settings and wired as they are built: each part gets what
it uses in its constructor, listens on the bus for what it reacts to, and is closed in reverse order of
starting (an ``AsyncExitStack``). ``app.py`` only mounts the routers on what this builds.

The order is the order of need: the database; the blob store; the bus; the router; the lifecycle, with
the ledger, the webhook outbox and (on PostgreSQL) the NOTIFY of other processes joining its
transactions; the service; the parts that run in the background (the webhook sender, the worker, the
batch runner), which run only where ``run_workers`` says so; and, once whoever it wakes has subscribed,
the LISTEN of other processes' NOTIFYs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from pixelgate.api import gemini_batches, openai_batches
from pixelgate.api.deps import ImageLinks, Parts
from pixelgate.api.interactions import WEBHOOK_EVENTS
from pixelgate.auth import redis_store
from pixelgate.auth.admin_key import load_admin_key
from pixelgate.auth.exposure import decide
from pixelgate.auth.guard import FailureGuard, LocalFailureGuard, RedisFailureGuard
from pixelgate.auth.keys import KeyStore
from pixelgate.auth.ledger import BATCH_SUFFIX, Ledger, settle
from pixelgate.auth.rate import LocalRequestRate, RedisRequestRate, RequestRate
from pixelgate.catalog import Catalog, Prices, default_catalog
from pixelgate.config import GatewayConfig, Settings
from pixelgate.core import metrics
from pixelgate.core.pixel_budget import DECODED_PIXELS, return_large_blocks
from pixelgate.core.references import ImageFetcher
from pixelgate.core.task import Task, Usage
from pixelgate.routing import ChannelControls, Router, build_router
from pixelgate.store.blob_location import open_blobs
from pixelgate.store.blobs import BlobStore, UrlSigner
from pixelgate.store.db import Database, sqlite_url
from pixelgate.store.files import FileStore
from pixelgate.store.leases import Leases
from pixelgate.tasks.batch_runner import BatchRunner
from pixelgate.tasks.batches import BatchStore, batch_window
from pixelgate.tasks.bus import Bus, Event, TaskCancelled
from pixelgate.tasks.idempotency import IdempotencyKeys
from pixelgate.tasks.janitor import Janitor
from pixelgate.tasks.lifecycle import Admission, Lifecycle
from pixelgate.tasks.queue import TaskQueue
from pixelgate.tasks.service import TaskService
from pixelgate.tasks.waiting import Waiters
from pixelgate.tasks.wakeups import Wakeups, connector
from pixelgate.tasks.webhook_registry import WebhookRegistry
from pixelgate.tasks.webhook_sender import WebhookSender
from pixelgate.tasks.webhooks import TaskOutbox
from pixelgate.tasks.worker import Worker

log = logging.getLogger("pixelgate")


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    config: GatewayConfig
    db: Database
    bus: Bus
    router: Router
    lifecycle: Lifecycle
    service: TaskService
    parts: Parts  # what the routers are handed
    worker: Worker | None


@asynccontextmanager
async def build_runtime(settings: Settings, config: GatewayConfig) -> AsyncIterator[Runtime]:
    async with AsyncExitStack() as stack:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        DECODED_PIXELS.resize(settings.max_decoded_pixels)  # one budget for the process, whatever decodes
        return_large_blocks()  # and what a decode frees leaves the process
        db = await Database.open(
            settings.database_url or sqlite_url(settings.data_dir),
            data_dir=settings.data_dir,
            max_connections=settings.database_max_connections,
        )
        stack.push_async_callback(db.close)
        blobs = await stack.enter_async_context(
            open_blobs(
                settings.blob_location,
                endpoint_url=settings.s3_endpoint_url,
                presigned=settings.blob_urls == "presigned",
            )
        )
        bus = Bus()
        router = build_router(config)
        stack.push_async_callback(router.close)
        # Whoever cancels a task stops its upstream tasks, wherever it ran or was left in a crash.
        bus.subscribe(TaskCancelled, lambda event: router.abandon(event.task.upstream))
        bus.subscribe(TaskCancelled, _count_cancelled)
        ledger = Ledger(db, max_tasks_per_key=settings.max_tasks_per_key)
        idempotency = IdempotencyKeys(db)
        wakeups = _wakeups(settings, db, bus)
        lifecycle = Lifecycle(
            TaskQueue(db, result_ttl=settings.result_ttl_seconds),
            bus,
            on_accept=[_keeps_its_key(idempotency), _reserves(ledger)],
            on_end=[_settles, TaskOutbox({"interactions": WEBHOOK_EVENTS}).task_ended],
            on_change=[wakeups.announce] if wakeups is not None else [],
        )
        rate, failures = await _shared_counts(settings, stack)
        catalog = default_catalog().with_aliases(config.aliases)
        prices = Prices(config.prices, config.batch_prices)
        worker = (
            _worker(settings, lifecycle, bus, router, catalog, prices, blobs.store)
            if settings.run_workers
            else None
        )
        service = await _service(
            settings, lifecycle, router, idempotency, rate, blobs.store, catalog, prices, worker, stack
        )
        controls = ChannelControls(db, router, poll_interval=settings.poll_interval)
        await controls.start()
        stack.push_async_callback(controls.stop)
        keys = KeyStore(db)
        # Here, not before: whether keys are required depends on whether the database holds any.
        exposure = decide(settings, config, await keys.count())
        log.log(exposure.level, "pixelgate: %s", exposure.message)
        if exposure.enabled:  # with auth off nobody needs one: none is made
            await load_admin_key(settings, keys, terminal=sys.stderr)
        parts = Parts(
            settings=settings,
            catalog=service.catalog,
            service=service,
            links=ImageLinks(
                public_url=settings.public_url,
                result_ttl_seconds=settings.result_ttl_seconds,
                signer=UrlSigner(await db.secret("url_signing_secret")),
                blobs=blobs.store,
                presigner=blobs.presigner,
            ),
            keys=keys,
            auth_enabled=exposure.enabled,
            failures=failures,
            webhooks=WebhookRegistry(db, bus),
            files=FileStore(db, service.blobs),
            batches=BatchStore(db, lifecycle.queue, bus),
            controls=controls,
            ledger=ledger,
            idempotency=idempotency,
            worker=worker,
        )
        # Only now: the worker and the waiters have subscribed, so they hear that it listens.
        if wakeups is not None and settings.listen:
            await wakeups.start()
            stack.push_async_callback(wakeups.stop)
        if worker is not None:
            await _run_in_background(settings, db, bus, worker, parts, stack)
        log.info(
            "pixelgate ready: %s; blobs in %s; channels from %s: %s",
            "PostgreSQL" if db.is_postgres else "SQLite",
            blobs.store.description,
            config.source,
            ", ".join(f"{c.name} ({c.provider})" for c in config.channels) or "none",
        )
        yield Runtime(settings, config, db, bus, router, lifecycle, service, parts, worker)


async def _service(
    settings: Settings,
    lifecycle: Lifecycle,
    router: Router,
    idempotency: IdempotencyKeys,
    rate: RequestRate,
    blobs: BlobStore,
    catalog: Catalog,
    prices: Prices,
    worker: Worker | None,
    stack: AsyncExitStack,
) -> TaskService:
    fetcher = ImageFetcher(settings.limits, policy=settings.fetch_policy)
    stack.push_async_callback(fetcher.close)
    return TaskService(
        catalog=catalog,
        limits=settings.limits,
        lifecycle=lifecycle,
        waiters=Waiters(lifecycle.queue, lifecycle.bus, poll_interval=settings.poll_interval),
        blobs=blobs,
        router=router,
        fetcher=fetcher,
        idempotency=idempotency,
        rate=rate,
        prices=prices,
        runner=worker,
        sync_wait_seconds=settings.sync_wait_seconds,
        queue_deadline_seconds=settings.queue_deadline_seconds,
    )


def _worker(
    settings: Settings,
    lifecycle: Lifecycle,
    bus: Bus,
    router: Router,
    catalog: Catalog,
    prices: Prices,
    blobs: BlobStore,
) -> Worker:
    return Worker(
        lifecycle=lifecycle,
        bus=bus,
        router=router,
        catalog=catalog,
        blobs=blobs,
        concurrency=settings.worker_concurrency,
        lease_seconds=settings.lease_seconds,
        poll_interval=settings.poll_interval,
        max_attempts=settings.max_attempts,
        prices=prices,
    )


def _wakeups(settings: Settings, db: Database, bus: Bus) -> Wakeups | None:
    """On PostgreSQL, what tells the other processes of this one's task changes, and this one of theirs."""
    if not db.is_postgres:
        return None
    return Wakeups(
        connector(db.engine),
        bus,
        poll_interval=settings.poll_interval,
        notified_poll_interval=settings.notified_poll_interval,
    )


def _count_cancelled(event: TaskCancelled) -> None:
    metrics.tasks_finished.labels(event.task.request.model, "cancelled").inc()


async def _run_in_background(
    settings: Settings, db: Database, bus: Bus, worker: Worker, parts: Parts, stack: AsyncExitStack
) -> None:
    """The webhook sender, the worker, the batch runner that feeds it and the retention janitor: started
    now, stopped in reverse (the janitor and the runner first, then the worker with its grace period, then
    the sender, which sends what the worker's last tasks queued)."""
    sender = WebhookSender(
        db,
        parts.webhooks,
        bus,
        policy=settings.fetch_policy,
        retry_seconds=settings.webhook_retry_seconds,
        timeout=settings.webhook_timeout_seconds,
        poll_interval=settings.poll_interval,
    )
    await sender.start()
    stack.push_async_callback(sender.stop)
    await worker.start()
    stack.push_async_callback(worker.stop, settings.shutdown_grace_seconds)
    runner = BatchRunner(
        store=parts.batches,
        keys=parts.keys,
        bus=bus,
        dialects={
            "openai": openai_batches.OpenAIBatches(
                parts.service, parts.files, parts.links, settings.default_model
            ),
            "gemini": gemini_batches.GeminiBatches(parts.service, parts.files, parts.links),
        },
        cancel_tasks=parts.service.cancel_batch,
        poll_interval=settings.poll_interval,
        lease_seconds=settings.lease_seconds,
        files=parts.files,
        # Enough lines queued that the worker's batch slots never wait for the runner to top up.
        window=batch_window(worker.batch_slots),
    )
    await runner.start()
    stack.push_async_callback(runner.stop)
    janitor = Janitor(
        db,
        parts.service.blobs,
        Leases(db),
        holder=worker.id,  # one per process, never reused by the next one
        result_ttl_seconds=settings.result_ttl_seconds,
        interval=settings.janitor_interval_seconds,
    )
    await janitor.start()
    stack.push_async_callback(janitor.stop)


async def _shared_counts(settings: Settings, stack: AsyncExitStack) -> tuple[RequestRate, FailureGuard]:
    """Counts every process must share live in Redis when there is one; else each process keeps its own."""
    if not settings.redis_url:
        return LocalRequestRate(), LocalFailureGuard()
    client = redis_store.connect(settings.redis_url)
    stack.push_async_callback(client.aclose)
    if not await redis_store.answers(client):
        log.warning(
            "pixelgate: Redis at %s does not answer: requests that need a shared count get a 503 until it does",
            redis_store.without_password(settings.redis_url),
        )
    return RedisRequestRate(client), RedisFailureGuard(client)


def _keeps_its_key(idempotency: IdempotencyKeys) -> Any:
    def keep(conn: Connection, task: Task, admission: Admission) -> None:
        if admission.claim is not None:
            idempotency.keep(conn, admission.claim, task.id)

    return keep


def _reserves(ledger: Ledger) -> Any:
    def reserve(conn: Connection, task: Task, admission: Admission) -> None:
        caller = admission.caller
        ledger.reserve(
            task_id=task.id,
            key_id=caller.key_id if not caller.is_admin else None,
            owner=task.owner,
            limits=caller.limits,
            model=task.request.model,
            dialect=task.dialect + BATCH_SUFFIX if task.batch_id else task.dialect,
            images=task.request.n,
            estimate_usd=admission.estimate_usd,
            batch_line=task.batch_id is not None,
            conn=conn,
        )

    return reserve


def _settles(conn: Connection, task: Task, made: Usage | None) -> list[Event]:
    settle(conn, task.id, made)
    return []
