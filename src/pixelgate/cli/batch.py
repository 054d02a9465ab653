"""``pixelgate batch`` (a file of prompts as one batch, into a folder: ``batch_client.py``) and
``pixelgate backup`` (a SQLite data dir copied while the server runs: ``store/backup.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixelgate.cli.client import DEFAULT_SERVER, ApiKeyOption, ServerOption
from pixelgate.cli.output import console, err_console, fail, note, refuse


def batch(
    file: Annotated[
        Path,
        typer.Argument(
            help="The prompts: JSONL (one object per line) or CSV (a header row), with prompt and options"
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the images and results.jsonl")],
    model: Annotated[str | None, typer.Option(help="Model of the rows that name none")] = None,
    size: Annotated[
        str | None, typer.Option(help="Size (WxH or an aspect ratio) of the rows that give neither")
    ] = None,
    resolution: Annotated[
        str | None, typer.Option(help="Resolution (512, 1K, 2K, 4K) of the rows that give none")
    ] = None,
    poll: Annotated[float, typer.Option(min=0.05, help="Seconds between looks at the batch")] = 1.0,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Run a file of prompts as one batch (batch prices) and save the images in a folder.

    The same command again resumes: it follows a batch still running and sends only the rows not yet
    done. Exit status 1 when some row failed."""
    from pixelgate.batch_input import BatchError, Defaults
    from pixelgate.cli.batch_client import run_batch

    try:
        status = run_batch(
            file,
            output,
            defaults=Defaults(model=model, size=size, resolution=resolution),
            server_url=server,
            api_key=api_key,
            poll_seconds=poll,
            console=console,
            progress_console=err_console,
        )
    except BatchError as exc:
        fail(exc.message, exc.exit_code)
    raise typer.Exit(status)


def backup(
    target: Annotated[Path, typer.Argument(help="A new folder for the copy")],
    data_dir: Annotated[
        Path, typer.Option(envvar="PIXELGATE_DATA_DIR", help="The data dir the server runs with")
    ] = Path("pixelgate-data"),
    blob_store: Annotated[
        str | None,
        typer.Option(
            envvar="PIXELGATE_BLOB_STORE", help="The server's --blob-store, if it keeps images in a bucket"
        ),
    ] = None,
) -> None:
    """Copy a SQLite data dir while the server runs: the database as one snapshot, then the images.

    With PostgreSQL, back up the database with pg_dump and copy the data dir's blobs/ folder. With
    --blob-store s3://…, the images are in the bucket: only the database is copied, and the bucket is
    backed up by its own means (versioning, replication, or aws s3 sync)."""
    from pixelgate.store.backup import backup_data_dir
    from pixelgate.store.blob_location import S3Location, parse_blob_store

    try:
        bucket = parse_blob_store(blob_store) if blob_store else None
    except ValueError as exc:
        refuse(exc)
    in_bucket = isinstance(bucket, S3Location)
    try:
        report = backup_data_dir(data_dir, target, with_images=not in_bucket)
    except (FileNotFoundError, FileExistsError) as exc:
        refuse(exc)
    console.print(
        f"backed up {report.tasks} tasks and {report.images} images ({report.bytes:,} bytes) to {target}",
        soft_wrap=True,
    )
    if in_bucket:
        note(
            f"the images are in {bucket}, not in this backup: keep the bucket's own copies (versioning or "
            f"replication), or copy them beside it with: aws s3 sync {bucket} {target}/blobs"
        )
