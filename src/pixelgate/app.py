"""The server: every dialect's router, mounted on the parts ``runtime.py`` builds from :class:`Settings`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pixelgate.api import (
    admin,
    admin_channels,
    admin_tasks,
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
    openai_responses,
    tasks,
    usage,
)
from pixelgate.api import webhooks as webhooks_api
from pixelgate.api.errors import install_error_handlers
from pixelgate.api.limits import BodyLimitMiddleware
from pixelgate.api.openapi import install_openapi
from pixelgate.api.query_text import QueryTextMiddleware
from pixelgate.api.request_log import RequestLogMiddleware
from pixelgate.catalog import default_catalog
from pixelgate.config import GatewayConfig, Settings, resolve_config
from pixelgate.routing import check_channels
from pixelgate.runtime import build_runtime
from pixelgate.web.console import install_console
from pixelgate.web.playground import install_playground

log = logging.getLogger("pixelgate")


def create_app(settings: Settings | None = None, config: GatewayConfig | None = None) -> FastAPI:
    """The server, on the parts ``runtime.py`` builds when it starts. ``config``: the channels, if the
    caller resolved them already (``pixelgate serve`` does, to warn of none). A wrong channel file (or a
    key it names that is not set) raises ``ConfigError`` here, before anything starts."""
    settings = settings or Settings()
    settings.check_auth()
    settings.check_storage()
    channels = config or resolve_config(settings, default_catalog())
    check_channels(channels)  # here, so that a bad option is refused before anything starts

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with build_runtime(settings, channels) as runtime:
            app.state.parts = runtime.parts
            yield

    app = FastAPI(
        title="pixelgate",
        version="0.1.0",
        lifespan=lifespan,
        description="Image-generation gateway: OpenAI Images, task-style and Gemini APIs.",
    )
    install_error_handlers(app)
    install_openapi(app)
    for module in (
        tasks,  # first: routes are matched in turn, a poll is the most frequent request, none other has its paths
        openai,
        openai_responses,  # before chat: its /v1/responses answers "wrong endpoint"
        openai_batches,
        batch_paths,
        gemini_batches,  # before gemini: its :batchGenerateContent is a path gemini's catch-all takes too
        models,
        gemini,
        interactions,
        webhooks_api,
        chat,
        files,
        health,
        metrics,
        admin,
        admin_channels,
        admin_tasks,
        usage,
    ):
        app.include_router(module.router)
    install_playground(app)
    install_console(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(QueryTextMiddleware)
    app.add_middleware(RequestLogMiddleware)  # outermost: a refused body is logged with its id too
    return app
