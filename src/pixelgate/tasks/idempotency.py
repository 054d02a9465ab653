"""``Idempotency-Key``: a create request sent again with the same key gets what the first one made (a task, a
batch, an API key) instead of a second one, and is never billed twice; the same key with a different
request is a 409. Keys are kept 24 hours, per owner.

The key is saved in the same transaction as what it makes: both are saved, or neither. A request that
fails before then (a refused size, a crash, a lost connection) leaves the key free, so the retry it was
sent for goes through. Of several simultaneous requests with one key, the first to commit keeps it; the
others roll back what they would have made and answer with the first one's.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from pixelgate.core.errors import Conflict, InvalidRequest, NotFound
from pixelgate.store.db import Database
from pixelgate.store.schema import idempotency_keys

KEEP_SECONDS = 24 * 3600
_USABLE = re.compile(r"^[\x21-\x7e]{1,255}$")
T = TypeVar("T")


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


@dataclass(frozen=True)
class Idempotent:
    """One request's ``Idempotency-Key``: the key, whose keys it is among (``scope``, the owner) and what
    the request asked for (``fingerprint``)."""

    scope: str
    key: str
    fingerprint: str
    kind: str = "task"  # what it makes, for messages: "task", "batch", "API key"


def _spent(claim: Idempotent, made_id: str) -> Conflict:
    """What a repeat is told when what its key made is gone since."""
    return Conflict(
        f"Idempotency-Key {claim.key!r} made {claim.kind} {made_id}, which has been deleted since: send a new "
        "key to make a new one",
        param="Idempotency-Key",
        code="idempotency_key_spent",
    )


class IdempotencyKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def once(
        self,
        claim: Idempotent,
        make: Callable[[], Awaitable[T]],
        made_before: Callable[[str], Awaitable[T]],
    ) -> T:
        """``make()`` (which saves the key with ``keep``, in its own transaction), unless the key made
        something already: then ``made_before(its id)`` (a ``NotFound`` there: it was deleted since). A
        request that lost the race to another with the same key answers with the other's."""
        for _ in range(3):
            earlier = await self.made(claim)
            if earlier is not None:
                try:
                    return await made_before(earlier)
                except NotFound:
                    raise _spent(claim, earlier) from None
            try:
                return await make()
            except IntegrityError:
                if await self.made(claim) is None:
                    raise  # another row's key: not this protocol's business
        raise Conflict(
            f"Idempotency-Key {claim.key!r} is being used by other requests at this moment: send it again",
            param="Idempotency-Key",
            code="idempotency_key_busy",
        )

    async def made(self, claim: Idempotent) -> str | None:
        """The id of what the key made within its day, if anything; a 409 if it was made by another
        request."""
        condition = sa.and_(
            idempotency_keys.c.scope == claim.scope,
            idempotency_keys.c.key == claim.key,
            idempotency_keys.c.created_at >= time.time() - KEEP_SECONDS,
        )
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(idempotency_keys).where(condition))).first()
        if row is None:
            return None
        if row.fingerprint != claim.fingerprint:
            raise Conflict(
                f"Idempotency-Key {claim.key!r} was sent with a different request (it made {claim.kind} {row.task_id}): "
                "send a new key with a new request",
                param="Idempotency-Key",
                code="idempotency_key_reused",
            )
        return str(row.task_id)

    def keep(self, conn: Connection, claim: Idempotent, made_id: str) -> None:
        """Save the key with what it made, in ``conn``'s transaction (the one that makes it). Another
        request that saved the key first makes this raise ``IntegrityError``, and the transaction rolls
        back: nothing is made twice. Keys past their day go first, this one among them."""
        now = time.time()
        conn.execute(idempotency_keys.delete().where(idempotency_keys.c.created_at < now - KEEP_SECONDS))
        conn.execute(
            idempotency_keys.insert().values(
                scope=claim.scope,
                key=claim.key,
                fingerprint=claim.fingerprint,
                task_id=made_id,
                created_at=now,
            )
        )
