"""Blob storage for input and output images, and the signed, expiring URLs they are served at.

Blobs are files under ``DATA_DIR/blobs``; keys look like ``task_img_…/out-0.png``. Writes go to a
temporary file and are renamed into place, so a crash never leaves half an image under a real key.
File I/O runs in a thread: a 4K PNG is tens of megabytes and must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import shutil
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode

from pixelgate.core.errors import NotFound

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,80}/[A-Za-z0-9_.-]{1,80}$")

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


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY.match(key) or ".." in key:
            raise NotFound(f"no stored image is called {key!r}", code="image_not_found")
        return self.root / key

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self.path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound(f"the stored image {key!r} no longer exists", code="image_not_found") from None

    async def open(self, key: str) -> tuple[BinaryIO, int]:
        """A blob opened for reading, and its size: still readable if the blob is deleted meanwhile."""
        path = self.path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise NotFound(f"the stored image {key!r} no longer exists", code="image_not_found") from None
        return file, os.fstat(file.fileno()).st_size

    async def copy(self, source: str, target: str) -> None:
        """Store ``source``'s bytes under ``target`` too: a hard link where the file system allows, so
        a long conversation costs no extra disk for the images it carries from turn to turn."""
        await asyncio.to_thread(self._copy, self.path(source), self.path(target))

    @staticmethod
    def _copy(source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise NotFound(f"the stored image {source.parent.name}/{source.name} no longer exists") from None
        except OSError:
            shutil.copyfile(source, target)

    async def delete_prefix(self, prefix: str) -> None:
        """Remove every blob of one task (``prefix`` is the task id)."""
        target = self.path(f"{prefix}/x").parent
        await asyncio.to_thread(shutil.rmtree, target, True)


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
