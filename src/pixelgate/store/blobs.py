"""Blob storage for input and output images and batch files, and the signed, expiring URLs they are served at.

A blob's key is ``{task or file id}/{name}``: ``task_img_…/out-0.png``, ``file-…/content``. Two stores keep
them behind one protocol, :class:`BlobStore`: a folder (``local_blobs.py``; ``DATA_DIR/blobs`` by default)
and an S3-compatible bucket (``s3.py``), chosen by ``--blob-store`` (``blob_location.py``). Callers never
see which: they put and get bytes, open a blob to stream it (its size known before the first byte, its bytes
read piece by piece while an answer is sent), copy, append, write in pieces, delete a task's blobs, and list
what is stored with its time (for a retention sweep and a migration between stores).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import PurePath
from typing import Protocol
from urllib.parse import urlencode

from pixelgate.core.errors import NotFound

KEY = re.compile(r"^[A-Za-z0-9_-]{1,80}/[A-Za-z0-9_.-]{1,80}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,80}$")

CONTENT_TYPES = {
    ".png": "image/png",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".mpeg": "video/mpeg",
    ".mov": "video/mov",
    ".webm": "video/webm",
    ".bin": "application/octet-stream",
}

EXTENSIONS = {mime: ext for ext, mime in CONTENT_TYPES.items() if ext != ".jpg"}


def extension_for(mime_type: str) -> str:
    return EXTENSIONS.get(mime_type, ".bin")


def content_type(key: str) -> str:
    return CONTENT_TYPES.get(PurePath(key).suffix, "application/octet-stream")


def checked_key(key: str) -> str:
    """``key`` if it is a blob key: two plain names, so that no key reaches outside its store's root."""
    if not KEY.match(key) or ".." in key:
        raise NotFound(f"no stored image is called {key!r}", code="image_not_found")
    return key


def checked_prefix(prefix: str) -> str:
    """``prefix`` if it is the first half of a key (a task's or a file's id)."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"{prefix!r} is not a blob prefix: a task or file id, letters, digits, '_' or '-'")
    return prefix


def gone(key: str) -> NotFound:
    return NotFound(f"the stored image {key!r} no longer exists", code="image_not_found")


@dataclass(frozen=True)
class StoredBlob:
    """One blob as a listing sees it."""

    key: str
    size: int
    modified: float  # Unix time of its last write

    @property
    def prefix(self) -> str:
        """The task or file it belongs to."""
        return self.key.partition("/")[0]


class BlobReader(Protocol):
    """A blob opened for reading: its size is known now, its bytes come as they are read. Read it once
    (``chunks`` or ``read_all``), or close it unread."""

    size: int

    def chunks(self, piece_bytes: int, start: int = 0, stop: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``stop`` (exclusive; None: to the end) in pieces of exactly ``piece_bytes``
        but the last; the reader is closed when they end or the iteration stops."""
        ...

    async def read_all(self) -> bytes: ...

    async def aclose(self) -> None: ...


class BlobWriter(Protocol):
    size: int  # bytes written so far

    async def write(self, data: bytes) -> None: ...


class BlobStore(Protocol):
    """Where blobs live. A missing blob is ``NotFound`` (``image_not_found``); a store that does not answer
    is ``StorageUnavailable`` (503)."""

    description: str  # where the blobs are, for messages and logs: a folder, or s3://bucket/prefix

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def open(self, key: str) -> BlobReader:
        """The blob, still readable whole if it is deleted once this returned (a folder's file stays open;
        a bucket's object is read after an answer is sent, and is deleted only after it, see
        ``ImageJSONResponse``'s ``then``)."""
        ...

    async def copy(self, source: str, target: str) -> None:
        """``source``'s bytes under ``target`` too, without passing them through this process."""
        ...

    async def append(self, key: str, data: bytes) -> None:
        """``data`` added at the end of an existing blob (a resumable upload's next piece)."""
        ...

    def writing(self, key: str) -> AbstractAsyncContextManager[BlobWriter]:
        """A blob written in pieces: stored under ``key`` only if the block ends without an error."""
        ...

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every blob of one task or file (``prefix`` is its id); nothing there is no error."""
        ...

    def listing(self, prefix: str = "") -> AsyncIterator[StoredBlob]:
        """Every blob whose key starts with ``prefix``, in key order (a task's blobs together)."""
        ...


class Presigner(Protocol):
    """A store that hands out URLs of its own (a bucket's presigned GET), so that image bytes never pass
    through pixelgate (``--blob-urls presigned``)."""

    async def presign_get(self, key: str, expires_at: float) -> str: ...


_CANONICAL_EXPIRES = re.compile(r"[1-9][0-9]{0,17}", re.ASCII)  # str(int) of a Unix time, 18 digits at most


class UrlSigner:
    """HMAC-SHA256 signatures over a blob key and an expiry time: unforgeable and unusable once expired."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _signature(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, key: str, expires: int) -> str:
        return urlencode({"expires": expires, "signature": self._signature(key, expires)})

    def verify(self, key: str, expires: str, signature: str, *, now: float | None = None) -> bool:
        """Whether ``expires`` and ``signature``, as the URL carries them, are what ``query`` wrote for
        ``key`` and are not past. Only the signer's own spelling of the number counts: ``+123``, ``0123``,
        `` 123``, ``123.0``, ``1_23`` or other digits than ASCII read as the same number, but a URL that
        says them was not handed out."""
        if not _CANONICAL_EXPIRES.fullmatch(expires):
            return False
        if int(expires) < (now if now is not None else time.time()):
            return False
        # compare_digest refuses non-ASCII text; no signature this signer made has any.
        return signature.isascii() and hmac.compare_digest(self._signature(key, int(expires)), signature)
