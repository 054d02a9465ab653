"""Which blob store a server uses, from ``--blob-store``: a folder (the default, ``DATA_DIR/blobs``) or an
S3-compatible bucket, ``s3://bucket/prefix``; and opening it once for the server's life.

The S3 code (and aiobotocore, a second or so to import) loads only when a bucket is named.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pixelgate.store.blobs import BlobStore, Presigner
from pixelgate.store.local_blobs import LocalBlobStore

MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit on a presigned URL's life
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or a path without a leading or trailing "/": keys go under "{prefix}/"

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_blob_store(value: str) -> Path | S3Location:
    """A ``--blob-store`` value as the store it names; ValueError says what is allowed."""
    if value.startswith("s3://"):
        bucket, _, prefix = value.removeprefix("s3://").partition("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(
                f"blob store {value!r}: {bucket!r} is not an S3 bucket name: 3 to 63 lower-case letters, "
                "digits, '.' or '-', starting and ending with a letter or digit (s3://bucket/prefix)"
            )
        return S3Location(bucket, prefix.strip("/"))
    if _SCHEME.match(value) or not value.strip():
        raise ValueError(
            f"blob store {value!r} is neither s3://bucket/prefix (a bucket at AWS S3 or an S3-compatible "
            "service such as MinIO or R2) nor a folder path"
        )
    return Path(value)


class BlobStoreRefused(ValueError):
    """A bucket this server cannot use; the message names the setting and what the service said."""


@dataclass(frozen=True)
class Blobs:
    store: BlobStore
    presigner: Presigner | None  # the bucket's own URLs, with --blob-urls presigned; None: pixelgate's


@asynccontextmanager
async def open_blobs(
    location: Path | S3Location, *, endpoint_url: str | None, presigned: bool
) -> AsyncIterator[Blobs]:
    if isinstance(location, Path):
        yield Blobs(LocalBlobStore(location), None)
        return
    from pixelgate.store.s3_connect import connect

    async with connect(location, endpoint_url=endpoint_url) as store:
        yield Blobs(store, store if presigned else None)


def check_blobs(location: Path | S3Location, *, endpoint_url: str | None) -> None:
    """Refuse (``BlobStoreRefused``) a bucket this server could not use: run before it starts, so that a wrong
    name, key or endpoint stops ``serve`` with a message rather than failing every task later."""
    if isinstance(location, S3Location):
        from pixelgate.store.s3_connect import check

        asyncio.run(check(location, endpoint_url=endpoint_url))
