"""Files: what a client uploads for a batch (OpenAI's ``/v1/files``, Gemini's ``/upload/{v}/files``) and
what a batch writes back (its results). A row in ``files`` describes one; its bytes are the blob
``{id}/content``. An upload in pieces (Gemini's resumable protocol) is "uploading" until its last piece.
"""

from __future__ import annotations

import re
import secrets
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from pixelgate.core.errors import Conflict, InvalidRequest, NotFound
from pixelgate.store.blobs import BlobStore, BlobWriter
from pixelgate.store.db import Database, listed_after
from pixelgate.store.schema import files

UPLOADING, ACTIVE = "uploading", "active"
_FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")


def new_file_id() -> str:
    # Lower-case letters, digits and a dash: a valid id for OpenAI's clients and a Gemini file name.
    return "file-" + secrets.token_hex(12)


@dataclass(frozen=True)
class StoredFile:
    id: str
    owner: str | None
    purpose: str
    filename: str
    mime_type: str
    bytes: int
    expected_bytes: int | None
    state: str
    created_at: float
    expires_at: float | None

    @property
    def blob_key(self) -> str:
        return f"{self.id}/content"


def _stored(row: Any) -> StoredFile:
    return StoredFile(
        id=row.id,
        owner=row.owner,
        purpose=row.purpose,
        filename=row.filename,
        mime_type=row.mime_type,
        bytes=row.bytes,
        expected_bytes=row.expected_bytes,
        state=row.state,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


def no_such_file(file_id: str, param: str = "file_id") -> NotFound:
    return NotFound(f"no file has the id {file_id[:80]!r}", param=param, code="file_not_found")


class FileStore:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    async def create(
        self,
        *,
        owner: str | None,
        purpose: str,
        filename: str,
        mime_type: str,
        data: bytes,
        expires_at: float | None = None,
    ) -> StoredFile:
        file_id = new_file_id()
        await self.blobs.put(f"{file_id}/content", data)
        return await self._insert(
            file_id, owner, purpose, filename, mime_type, len(data), None, ACTIVE, expires_at
        )

    async def start_upload(
        self,
        *,
        owner: str | None,
        purpose: str,
        filename: str,
        mime_type: str,
        expected_bytes: int,
        expires_at: float | None = None,
    ) -> StoredFile:
        file_id = new_file_id()
        await self.blobs.put(f"{file_id}/content", b"")
        return await self._insert(
            file_id, owner, purpose, filename, mime_type, 0, expected_bytes, UPLOADING, expires_at
        )

    async def append(self, file_id: str, offset: int, data: bytes, *, finalize: bool) -> StoredFile:
        """Add one piece of a resumable upload at ``offset`` (which must be where the file ends now)."""
        stored = await self.get(file_id)
        if stored.state != UPLOADING:
            raise Conflict(
                f"file {file_id} is already complete: a finished upload takes no more pieces",
                code="upload_finished",
            )
        if offset != stored.bytes:
            raise InvalidRequest(
                f"X-Goog-Upload-Offset {offset} is not where file {file_id} ends ({stored.bytes} bytes so far): "
                "send the next piece at that offset",
                param="X-Goog-Upload-Offset",
                code="invalid_upload_offset",
            )
        size = stored.bytes + len(data)
        if stored.expected_bytes is not None and size > stored.expected_bytes:
            raise InvalidRequest(
                f"the upload of {file_id} would hold {size} bytes but was announced as {stored.expected_bytes} "
                "(X-Goog-Upload-Header-Content-Length)",
                param="X-Goog-Upload-Header-Content-Length",
                code="upload_too_long",
            )
        await self.blobs.append(stored.blob_key, data)
        state = ACTIVE if finalize else UPLOADING
        async with self.db.transaction() as conn:
            await conn.execute(files.update().where(files.c.id == file_id).values(bytes=size, state=state))
        return await self.get(file_id)

    async def _insert(
        self,
        file_id: str,
        owner: str | None,
        purpose: str,
        filename: str,
        mime_type: str,
        size: int,
        expected: int | None,
        state: str,
        expires_at: float | None,
    ) -> StoredFile:
        stored = StoredFile(
            id=file_id,
            owner=owner,
            purpose=purpose,
            filename=filename[:255],
            mime_type=mime_type[:128],
            bytes=size,
            expected_bytes=expected,
            state=state,
            created_at=time.time(),
            expires_at=expires_at,
        )
        async with self.db.transaction() as conn:
            await conn.execute(files.insert().values(**asdict(stored)))
        return stored

    async def get(self, file_id: str, *, owner: str | None = None, param: str = "file_id") -> StoredFile:
        if not _FILE_ID.match(file_id):
            raise no_such_file(file_id, param)
        query = sa.select(files).where(files.c.id == file_id)
        if owner is not None:
            query = query.where(files.c.owner == owner)
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise no_such_file(file_id, param)
        if row.expires_at is not None and row.expires_at <= time.time():
            await self.sweep()  # it goes now, rather than at the runner's next sweep
            raise NotFound(
                f"file {file_id} expired at {int(row.expires_at)} and is no longer kept: upload it again",
                param=param,
                code="file_expired",
            )
        return _stored(row)

    async def sweep(self) -> int:
        """Delete the files past their expiry, rows and bytes; how many went."""
        now = time.time()
        async with self.db.transaction() as conn:
            gone = list(
                (
                    await conn.execute(
                        files.delete()
                        .where(files.c.expires_at.is_not(None), files.c.expires_at <= now)
                        .returning(files.c.id)
                    )
                ).scalars()
            )
        for file_id in gone:
            await self.blobs.delete_prefix(file_id)
        return len(gone)

    async def page(
        self, *, owner: str | None, purpose: str | None = None, after: str | None = None, limit: int = 20
    ) -> list[StoredFile]:
        """Newest first; ``after`` is the id of the last file of the previous page."""
        live = sa.or_(files.c.expires_at.is_(None), files.c.expires_at > time.time())
        query = sa.select(files).where(files.c.state == ACTIVE, live)
        if owner is not None:
            query = query.where(files.c.owner == owner)
        if purpose is not None:
            query = query.where(files.c.purpose == purpose)
        if after is not None:
            anchor = await self.get(after, owner=owner, param="after")
            query = query.where(listed_after(files, anchor.created_at, anchor.id))
        query = query.order_by(files.c.created_at.desc(), files.c.id.desc()).limit(limit)
        async with self.db.engine.connect() as conn:
            return [_stored(row) for row in (await conn.execute(query)).all()]

    async def delete(self, file_id: str, *, owner: str | None = None) -> None:
        stored = await self.get(file_id, owner=owner)
        async with self.db.transaction() as conn:
            await conn.execute(files.delete().where(files.c.id == stored.id))
        await self.blobs.delete_prefix(stored.id)

    async def read(self, stored: StoredFile) -> bytes:
        return await self.blobs.get(stored.blob_key)

    def writing(self, file_id: str) -> AbstractAsyncContextManager[BlobWriter]:
        """The bytes of ``{file_id}/content`` written in pieces: stored only if the block succeeds."""
        return self.blobs.writing(f"{file_id}/content")

    async def register(
        self, file_id: str, *, size: int, owner: str | None, purpose: str, filename: str, mime_type: str
    ) -> StoredFile:
        """Describe a file already written with :meth:`writing` (``size``: the writer's)."""
        return await self._insert(file_id, owner, purpose, filename, mime_type, size, None, ACTIVE, None)
