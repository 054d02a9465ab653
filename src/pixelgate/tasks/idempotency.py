"""``Idempotency-Key``: a create request sent again with the same key gets the first one's task (and so its
answer) instead of a second task, and is never billed twice; the same key with a different request is a
409. Keys are kept 24 hours, per owner.

Each claim also deletes the keys past their day. The key is claimed before anything else is done: a row (scope, key) whose primary key lets exactly one of
several simultaneous requests in. The others wait for that request's task to exist and answer with it.
If the first request fails before its task is saved (a refused size, say), its claim is released: the
same key can be sent again, corrected or not.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from pixelgate.core.errors import Conflict, InvalidRequest
from pixelgate.store.db import Database
from pixelgate.store.schema import idempotency_keys

KEEP_SECONDS = 24 * 3600
_USABLE = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Claim:
    """Who holds a key: this request (``mine``), or an earlier one whose task is ``task_id``."""

    mine: bool
    task_id: str
    fingerprint: str


def check_key(key: str) -> str:
    if not _USABLE.match(key):
        raise InvalidRequest(
            f"Idempotency-Key {key[:64]!r} is not usable: give 1 to 255 printable ASCII characters "
            "without spaces (a UUID, say)",
            param="Idempotency-Key",
            code="invalid_idempotency_key",
        )
    return key


def fingerprint(*parts: bytes | str | None) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = b"\x00" if part is None else part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


class IdempotencyKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, scope: str, key: str, print_: str, task_id: str) -> Claim:
        """Claim ``key`` for the task about to be made, or find who has it. A claim older than a day is
        taken over."""
        now = time.time()
        for _ in range(3):  # a claim released or expired under us is tried again
            try:
                async with self.db.transaction() as conn:
                    # Every key past its day goes, this one among them (an index keeps this cheap).
                    await conn.execute(
                        idempotency_keys.delete().where(idempotency_keys.c.created_at < now - KEEP_SECONDS)
                    )
                    await conn.execute(
                        idempotency_keys.insert().values(
                            scope=scope, key=key, fingerprint=print_, task_id=task_id, created_at=now
                        )
                    )
                return Claim(mine=True, task_id=task_id, fingerprint=print_)
            except IntegrityError:
                holder = await self.holder(scope, key)
                if holder is not None:
                    return holder
        raise Conflict(
            f"Idempotency-Key {key!r} is being claimed and released by other requests: send it again",
            param="Idempotency-Key",
            code="idempotency_key_busy",
        )

    async def holder(self, scope: str, key: str) -> Claim | None:
        """The earlier request that holds ``key``, if one does (a read: cheap to ask again and again)."""
        condition = (idempotency_keys.c.scope == scope) & (idempotency_keys.c.key == key)
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(idempotency_keys).where(condition))).first()
        return None if row is None else Claim(mine=False, task_id=row.task_id, fingerprint=row.fingerprint)

    async def release(self, scope: str, key: str, task_id: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                idempotency_keys.delete().where(
                    idempotency_keys.c.scope == scope,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.task_id == task_id,
                )
            )
