"""Moving the blobs of one store into another (``pixelgate blobs migrate --to s3://…``): a data dir's folder
into a bucket, typically, before its servers are started with ``--blob-store s3://…``.

Each blob is read, written to the target and read back there, and counts as moved only when the copy's
SHA-256 is the original's. Moved blobs are written to a journal (one line each: key, size, SHA-256), so a
run that stopped (a crash, Ctrl-C, an outage) starts again where it was, and a second run after the
servers stopped moves only what they wrote meanwhile. The source is never changed: once the servers run
on the target, the folder can be deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from pixelgate.core.errors import PixelgateError
from pixelgate.store.blobs import BlobStore, StoredBlob

READ_BACK_PIECE = 1024 * 1024
AT_ONCE = 4  # blobs in flight: each is held whole once (a 4K image is tens of megabytes)


@dataclass
class MigrationReport:
    moved: int = 0
    moved_bytes: int = 0
    already: int = 0  # moved and verified by an earlier run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, why)


class CopyMismatch(Exception):
    """The target holds other bytes than were written to it."""


def read_journal(journal: Path) -> dict[str, tuple[int, str]]:
    """What earlier runs moved: key -> (size, SHA-256). A last line cut short by a crash is ignored."""
    moved: dict[str, tuple[int, str]] = {}
    if not journal.exists():
        return moved
    for line in journal.read_text().splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[1].isdigit() and len(parts[2]) == 64:
            moved[parts[0]] = (int(parts[1]), parts[2])
    return moved


async def migrate(
    source: BlobStore,
    target: BlobStore,
    journal: Path,
    *,
    on_blob: Callable[[StoredBlob, str], None] = lambda blob, outcome: None,
) -> MigrationReport:
    """Move every blob of ``source`` that ``journal`` does not list as moved (with the same size) into
    ``target``; ``on_blob(blob, outcome)`` hears of each ("moved", "already" or "failed")."""
    report = MigrationReport()
    moved_before = read_journal(journal)
    limit = asyncio.Semaphore(AT_ONCE)
    journal.parent.mkdir(parents=True, exist_ok=True)
    with journal.open("a") as written:

        async def move(blob: StoredBlob) -> None:
            try:
                digest = await _copy_verified(source, target, blob.key)
            except (PixelgateError, CopyMismatch, OSError) as exc:
                report.failed.append((blob.key, str(exc)))
                on_blob(blob, "failed")
                return
            finally:
                limit.release()
            _record(written, blob, digest)
            report.moved += 1
            report.moved_bytes += blob.size
            on_blob(blob, "moved")

        moving: set[asyncio.Task[None]] = set()
        async for blob in source.listing():
            earlier = moved_before.get(blob.key)
            if earlier is not None and earlier[0] == blob.size:
                report.already += 1
                on_blob(blob, "already")
                continue
            await limit.acquire()  # the listing goes no further ahead than the copies
            task = asyncio.create_task(move(blob))
            moving.add(task)
            task.add_done_callback(moving.discard)
        await asyncio.gather(*moving)
    return report


async def _copy_verified(source: BlobStore, target: BlobStore, key: str) -> str:
    data = await source.get(key)
    digest = hashlib.sha256(data).hexdigest()
    await target.put(key, data)
    del data
    copy = hashlib.sha256()
    async for piece in (await target.open(key)).chunks(READ_BACK_PIECE):
        copy.update(piece)
    if copy.hexdigest() != digest:
        raise CopyMismatch(
            f"the copy in {target.description} has SHA-256 {copy.hexdigest()}, the original {digest}: "
            "the target changed it, run again to copy it anew"
        )
    return digest


def _record(journal: TextIO, blob: StoredBlob, digest: str) -> None:
    journal.write(f"{blob.key} {blob.size} {digest}\n")
    journal.flush()  # a run that dies loses at most the blob it was on
