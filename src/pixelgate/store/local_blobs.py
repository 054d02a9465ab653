"""Blobs as files in a folder (``DATA_DIR/blobs`` by default): ``{root}/{task id}/{name}``.

Writes go to a temporary file (a name starting with ``.``) and are renamed into place, so a crash never
leaves half an image under a real key. File I/O runs in a thread: a 4K PNG is tens of megabytes and must
not stall the event loop.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

from pixelgate.store.blobs import KEY, StoredBlob, checked_key, checked_prefix, gone


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / checked_key(key)

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, self.path(key), data)

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary(path)
        tmp.write_bytes(data)
        os.replace(tmp, path)

    async def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise gone(key) from None

    async def open(self, key: str) -> FileReader:
        path = self.path(key)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise gone(key) from None
        return FileReader(file, os.fstat(file.fileno()).st_size)

    async def copy(self, source: str, target: str) -> None:
        """A hard link where the file system allows, so a long conversation costs no extra disk for the
        images it carries from turn to turn."""
        await asyncio.to_thread(self._copy, self.path(source), self.path(target), source)

    @staticmethod
    def _copy(source: Path, target: Path, key: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except FileExistsError:
            pass
        except FileNotFoundError:
            raise gone(key) from None
        except OSError:
            shutil.copyfile(source, target)

    async def append(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._append, self.path(key), data, key)

    @staticmethod
    def _append(path: Path, data: bytes, key: str) -> None:
        try:
            with path.open("r+b") as out:  # not "ab", which would make a blob that is not there
                out.seek(0, os.SEEK_END)
                out.write(data)
        except FileNotFoundError:
            raise gone(key) from None

    @asynccontextmanager
    async def writing(self, key: str) -> AsyncIterator[FileWriter]:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temporary(path)
        try:
            with tmp.open("wb") as out:
                # Writes stay on the event loop: they are a batch's result lines, each small and buffered.
                yield FileWriter(out)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    async def delete_prefix(self, prefix: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.root / checked_prefix(prefix), True)

    async def listing(self, prefix: str = "") -> AsyncIterator[StoredBlob]:
        for folder in await asyncio.to_thread(_sorted_names, self.root):
            if folder.startswith(prefix[: len(folder)]):
                for blob in await asyncio.to_thread(_blobs_in, self.root / folder):
                    if blob.key.startswith(prefix):
                        yield blob


def _temporary(path: Path) -> Path:
    # Starts with "." so that no key names it (and a backup or a listing skips it); one per process.
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _sorted_names(folder: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    except FileNotFoundError:
        return []


def _blobs_in(folder: Path) -> list[StoredBlob]:
    found = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:  # deleted since the root was listed
        return []
    for entry in entries:
        key = f"{folder.name}/{entry.name}"
        if KEY.match(key) and not entry.name.startswith("."):
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue
            found.append(StoredBlob(key, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda blob: blob.key)


class FileReader:
    """An open file: still readable if its blob is deleted meanwhile."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file = file
        self.size = size

    async def chunks(self, piece_bytes: int, start: int = 0, stop: int | None = None) -> AsyncIterator[bytes]:
        left = (self.size if stop is None else stop) - start
        with self.file:
            self.file.seek(start)
            while left > 0 and (piece := await asyncio.to_thread(self.file.read, min(piece_bytes, left))):
                left -= len(piece)
                yield piece

    async def read_all(self) -> bytes:
        with self.file:
            return await asyncio.to_thread(self.file.read)

    async def aclose(self) -> None:
        self.file.close()


class FileWriter:
    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.size = 0

    async def write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)
