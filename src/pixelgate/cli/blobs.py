"""``pixelgate blobs migrate``: a data dir's images, references and batch files moved into a bucket, before
its servers are started with ``--blob-store s3://…`` (``store/blob_migration.py`` does the work)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated

import typer

from pixelgate.cli import exits
from pixelgate.cli.output import bad_usage, fail, note, show_json
from pixelgate.store.blob_location import (
    BlobStoreRefused,
    S3Location,
    check_blobs,
    open_blobs,
    parse_blob_store,
)
from pixelgate.store.blob_migration import MigrationReport, migrate
from pixelgate.store.blobs import StoredBlob

app = typer.Typer(help="The blob store: images, references and batch files", no_args_is_help=True)


@app.command("migrate", epilog=exits.EXIT_CODES_HELP)
def migrate_command(
    to: Annotated[str, typer.Option("--to", help="The bucket to move them into: s3://bucket/prefix")],
    data_dir: Annotated[
        Path, typer.Option(envvar="PIXELGATE_DATA_DIR", help="The data dir whose blobs/ folder is moved")
    ] = Path("pixelgate-data"),
    source: Annotated[
        Path | None, typer.Option("--from", help="The folder to move instead of DATA_DIR/blobs")
    ] = None,
    s3_endpoint_url: Annotated[
        str | None,
        typer.Option(envvar="PIXELGATE_S3_ENDPOINT_URL", help="The S3-compatible service when it is not AWS"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="The report as JSON on stdout")] = False,
) -> None:
    """Copy every blob of a data dir into a bucket, each read back and compared by SHA-256.

    A run that stopped goes on where it was (DATA_DIR/blobs-migrated-<bucket>.journal lists what is done),
    and a second run after the servers stopped moves only what they wrote since. The folder is not changed:
    start the servers with --blob-store set to the bucket, then delete it."""
    folder = source or data_dir / "blobs"
    if not folder.is_dir():
        bad_usage(f"--from {folder} is not a folder: give the data dir the servers run with (--data-dir)")
    try:
        target = parse_blob_store(to)
    except ValueError as exc:
        bad_usage(f"--to: {exc}")
    if not isinstance(target, S3Location):
        bad_usage(f"--to {to!r} is a folder: blobs move into a bucket, s3://bucket/prefix")
    try:
        check_blobs(target, endpoint_url=s3_endpoint_url)
    except BlobStoreRefused as exc:
        fail(str(exc), exits.USAGE)
    journal = data_dir / f"blobs-migrated-{_safe(str(target))}.journal"
    report = asyncio.run(_run(folder, target, s3_endpoint_url, journal, quiet=json_out))
    if json_out:
        show_json(
            {
                "moved": report.moved,
                "moved_bytes": report.moved_bytes,
                "already": report.already,
                "failed": [{"key": key, "error": why} for key, why in report.failed],
                "journal": str(journal),
            }
        )
    else:
        note(
            f"moved {report.moved} blobs ({report.moved_bytes:,} bytes) into {target}; {report.already} were "
            f"moved by an earlier run; {len(report.failed)} failed (journal: {journal})"
        )
    if report.failed:
        for key, why in report.failed[:20]:
            note(f"  {key}: {why}")
        fail(f"{len(report.failed)} blobs were not moved: run the same command again", exits.FAILED)
    note(
        f"next: start the servers with --blob-store {target}"
        + (f" --s3-endpoint-url {s3_endpoint_url}" if s3_endpoint_url else "")
    )


async def _run(
    folder: Path, target: S3Location, endpoint_url: str | None, journal: Path, *, quiet: bool
) -> MigrationReport:
    seen = 0

    def progress(blob: StoredBlob, outcome: str) -> None:
        nonlocal seen
        seen += 1
        if not quiet and (seen % 500 == 0 or outcome == "failed"):
            note(f"{seen} blobs looked at; {blob.key}: {outcome}")

    async with (
        open_blobs(folder, endpoint_url=None, presigned=False) as source,
        open_blobs(target, endpoint_url=endpoint_url, presigned=False) as bucket,
    ):
        return await migrate(source.store, bucket.store, journal, on_blob=progress)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text.removeprefix("s3://")).strip("-")
