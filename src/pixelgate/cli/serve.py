"""``pixelgate serve``: the gateway, started from flags (each also a ``PIXELGATE_*`` environment variable)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pixelgate.cli.output import console
from pixelgate.cli.output import refuse as _refuse
from pixelgate.core import logs

if TYPE_CHECKING:
    from pixelgate.config import Settings


def serve(
    # Every flag defaults to None, "not given": PIXELGATE_* variables (a container's configuration) and
    # then the settings' own defaults decide, which --help shows in brackets.
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8000]")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the SQLite database and the images live [default: pixelgate-data]"),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="postgresql+asyncpg://… to keep tasks in PostgreSQL instead of SQLite")
    ] = None,
    emulate: Annotated[
        bool | None, typer.Option("--emulate", help="Serve every catalog model from the offline emulator")
    ] = None,
    emulate_latency: Annotated[
        float | None, typer.Option(help="Seconds the emulator takes per image [default: 0]")
    ] = None,
    result_ttl: Annotated[
        float | None,
        typer.Option(help="Seconds a result's images are kept; then they are deleted [default: 86400]"),
    ] = None,
    emulate_faults: Annotated[
        str | None, typer.Option(help="Injected faults with their rates, e.g. 429:0.1,503:0.05,timeout:0.01")
    ] = None,
    emulate_fault_seed: Annotated[int | None, typer.Option(help="Seed for reproducible faults")] = None,
    max_body_bytes: Annotated[int | None, typer.Option(help="Largest request body accepted")] = None,
    worker_concurrency: Annotated[int | None, typer.Option(help="Tasks run at once by this process")] = None,
    lease_seconds: Annotated[
        float | None, typer.Option(help="How long a claimed task stays with a worker that stopped answering")
    ] = None,
    no_workers: Annotated[
        bool | None, typer.Option("--no-workers", help="Accept tasks but run none here")
    ] = None,
    stream_keepalive: Annotated[
        float | None, typer.Option(help="Seconds between keep-alive lines while a stream waits for its image")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar="PIXELGATE_CONFIG", help="The channel file (default: ./pixelgate.toml if present)"
        ),
    ] = None,
    sync_wait: Annotated[
        float | None,
        typer.Option(help="Seconds a synchronous call waits for its image before it is told to poll"),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(help="redis://host:6379: processes share requests-per-minute and failed-key counts"),
    ] = None,
    blob_store: Annotated[
        str | None,
        typer.Option(
            help="Where images and batch files live: s3://bucket/prefix (an S3-compatible bucket; "
            "credentials and region from AWS_*), or a folder (default: DATA_DIR/blobs)"
        ),
    ] = None,
    s3_endpoint_url: Annotated[
        str | None,
        typer.Option(help="The S3-compatible service when it is not AWS: MinIO, R2 (http://127.0.0.1:9000)"),
    ] = None,
    blob_urls: Annotated[
        str | None,
        typer.Option(
            help="pixelgate (default: its own signed URLs, bytes streamed through it) or presigned (the "
            "bucket's presigned GET URLs, with an s3:// blob store)"
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="Where clients reach this server (https://images.example.com), for the URLs it signs"
        ),
    ] = None,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Require API keys (default: whenever anything is at stake: listening beyond loopback, "
            "PIXELGATE_ADMIN_KEY, API keys in the database or a channel other than the emulator; off is "
            "refused beyond loopback)",
        ),
    ] = None,
    forwarded_allow_ips: Annotated[
        list[str] | None,
        typer.Option(
            help="A reverse proxy (IP or network) whose X-Forwarded-For names the client; repeat or "
            "comma-separate for more. From any other address the header is ignored",
        ),
    ] = None,
    fetch_allow: Annotated[
        list[str] | None,
        typer.Option(
            help="A network (10.1.0.0/16) or host name that image URLs may point at besides public "
            "addresses; repeat for more. Loopback, private and cloud-metadata addresses are refused otherwise",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    log_format: Annotated[
        str,
        typer.Option(
            help="json (one object per line: every request and task state change), text, or auto: text at "
            "a terminal, else json"
        ),
    ] = "auto",
) -> None:
    """Start the gateway (GET /healthz answers 200 once it is ready)."""
    from pixelgate.app import create_app
    from pixelgate.catalog import default_catalog
    from pixelgate.config import ConfigError, resolve_config
    from pixelgate.store.blob_location import BlobStoreRefused, check_blobs

    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        emulate=emulate,
        emulate_latency=emulate_latency,
        result_ttl_seconds=result_ttl,
        emulate_faults=emulate_faults,
        emulate_fault_seed=emulate_fault_seed,
        run_workers=None if no_workers is None else not no_workers,
        database_url=database_url,
        max_body_bytes=max_body_bytes,
        worker_concurrency=worker_concurrency,
        lease_seconds=lease_seconds,
        stream_keepalive_seconds=stream_keepalive,
        config=config,
        sync_wait_seconds=sync_wait,
        auth=auth,
        redis_url=redis_url,
        blob_store=blob_store,
        s3_endpoint_url=s3_endpoint_url,
        blob_urls=blob_urls,
        public_url=public_url,
        fetch_allow=fetch_allow or None,
        forwarded_allow_ips=forwarded_allow_ips or None,
    )
    try:
        channels = resolve_config(settings, default_catalog())
        server = create_app(settings, channels)
        check_blobs(settings.blob_location, endpoint_url=settings.s3_endpoint_url)
    except (ConfigError, BlobStoreRefused) as exc:
        _refuse(exc)
    if not channels.channels:
        console.print(
            "[yellow]No upstream is configured and --emulate is off: requests for a model will "
            "be refused until one is. Add --emulate to serve every model offline, set GEMINI_API_KEY, "
            "or declare channels in pixelgate.toml.[/]"
        )
    _configure_logs(log_level, log_format)
    _run(server, settings)


def _settings(**given: Any) -> Settings:
    """The server's settings from the flags given (None: not given, so the environment or the default
    decides); a value the settings refuse is a bad flag, named as the user typed it."""
    from pydantic import ValidationError

    from pixelgate.config import Settings

    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise typer.BadParameter(
            str(first["msg"]).removeprefix("Value error, "),
            param_hint="--" + str(first["loc"][0]).replace("_", "-"),
        ) from None


def _configure_logs(log_level: str, log_format: str) -> None:
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter(
            f"{log_level!r} is not a log level: use debug, info, warning or error", param_hint="--log-level"
        )
    if log_format not in ("auto", "json", "text"):
        raise typer.BadParameter(
            f"{log_format!r} is not a log format: use auto, json or text", param_hint="--log-format"
        )
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    logs.configure(log_level, log_format)


def _run(server: Any, settings: Settings) -> None:
    import uvicorn

    from pixelgate.api.header_timeout import header_timeout_protocol

    uvicorn.run(
        server,
        host=settings.host,
        port=settings.port,
        log_config=None,  # logs.configure did it; the middleware logs each request, so no access log
        access_log=False,
        # uvicorn would trust X-Forwarded-For from 127.0.0.1 by default: any local caller (or anyone through
        # a proxy that passes the header on) could then choose the address the failed-key guard counts.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
        # A connection that stalls before its headers end would be held for good (slowloris).
        http=header_timeout_protocol(settings.header_timeout_seconds),
    )
