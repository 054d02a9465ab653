"""API keys: made, listed, disabled and deleted by the admin; checked on every request.

A key reads ``pgk_<id>_<secret>``. The id finds its row; the secret is checked against the row's salted
hash, HMAC-SHA256(salt, secret), in constant time. The secret itself is never stored: it is shown once,
when the key is made. (Keys carry 256 random bits, so a slow password hash would only add latency to
every request; it protects guessable passwords, which these are not.)

The admin key is ``PIXELGATE_ADMIN_KEY`` (any string of 16 characters or more), or one made on the first
start with auth on (``pga_…``), kept as a hash like the others and written to the data dir
(``auth/admin_key.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pixelgate.auth.ledger import KeyLimits
from pixelgate.core.errors import NotFound
from pixelgate.store.db import Database
from pixelgate.store.schema import api_keys, meta

KEY_PREFIX = "pgk_"
ADMIN_PREFIX = "pga_"
_ADMIN_META = "admin_key_hash"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key, whose data it sees (``owner``; None sees everything) and what it may use."""

    key_id: str | None
    name: str
    owner: str | None
    models: tuple[str, ...] | None = None  # None: every model
    is_admin: bool = False
    limits: KeyLimits = field(default_factory=KeyLimits)

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


def owner_scope(owner: str | None) -> str:
    """What keeps an owner's Idempotency-Keys and webhook secret apart from everyone else's: the owner,
    or "-" for a caller who sees everything (the admin key, a server without keys). An owner may be named
    "-" too; a colon, which no owner name has, keeps that one apart."""
    if owner is None:
        return "-"
    return "owner:-" if owner == "-" else owner


# Auth off (allowed on loopback only): one caller who may do everything.
ANONYMOUS = Caller(key_id=None, name="anonymous", owner=None, is_admin=True)


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    owner: str
    models: tuple[str, ...] | None
    created_at: float
    expires_at: float | None
    disabled_at: float | None
    limits: KeyLimits = field(default_factory=KeyLimits)

    def state(self, now: float) -> str:
        if self.disabled_at is not None:
            return "disabled"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "api_key",
            "name": self.name,
            "owner": self.owner,
            "models": list(self.models) if self.models is not None else None,
            "created_at": int(self.created_at),
            "expires_at": int(self.expires_at) if self.expires_at is not None else None,
            "disabled_at": int(self.disabled_at) if self.disabled_at is not None else None,
            "state": self.state(now),
            "limits": self.limits.to_record(),
        }


def new_key_id() -> str:
    return secrets.token_hex(6)


def _digest(salt: str, secret: str) -> str:
    return hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        owner=row.owner,
        models=tuple(row.models) if row.models is not None else None,
        created_at=row.created_at,
        expires_at=row.expires_at,
        disabled_at=row.disabled_at,
        limits=KeyLimits.from_record(row.limits),
    )


def _no_such_key(key_id: str) -> NotFound:
    return NotFound(f"no API key has the id {key_id[:64]!r}", param="key_id", code="key_not_found")


_KEY_ID = re.compile(r"[0-9a-f]{12}")


def _known_shape(key_id: str) -> str:
    """``key_id`` if it could be a key's id; anything else (a NUL byte, a megabyte) is not one, and is
    never sent to the database."""
    if not _KEY_ID.fullmatch(key_id):
        raise _no_such_key(key_id)
    return key_id


class KeyStore:
    def __init__(
        self, db: Database, *, cache_seconds: float = 10.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self.clock = clock
        # Keys verified lately, by their digest: most requests then cost no database read. A key
        # disabled or deleted through another process is refused there within ``cache_seconds``.
        self._verified: dict[str, tuple[Caller, float]] = {}
        self._admin: tuple[str, str] | None = None  # (salt, digest)

    async def create(
        self,
        *,
        name: str,
        owner: str,
        models: list[str] | None = None,
        expires_at: float | None = None,
        limits: KeyLimits | None = None,
        key_id: str | None = None,
        conn: AsyncConnection | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key and its secret (the only time the secret is seen); ``key_id`` if one was chosen. Saved
        in ``conn``'s transaction if given (the one that keeps its Idempotency-Key)."""
        if conn is None:
            async with self.db.transaction() as own:
                return await self.create(
                    name=name,
                    owner=owner,
                    models=models,
                    expires_at=expires_at,
                    limits=limits,
                    key_id=key_id,
                    conn=own,
                )
        key_id = key_id or new_key_id()
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        record = KeyRecord(
            id=key_id,
            name=name,
            owner=owner,
            models=tuple(models) if models is not None else None,
            created_at=self.clock(),
            expires_at=expires_at,
            disabled_at=None,
            limits=limits or KeyLimits(),
        )
        await conn.execute(
            api_keys.insert().values(
                id=key_id,
                name=name,
                owner=owner,
                salt=salt,
                hash=_digest(salt, secret),
                models=list(models) if models is not None else None,
                created_at=record.created_at,
                expires_at=expires_at,
                limits=record.limits.to_record() or None,
            )
        )
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    async def list(self, *, owner: str | None = None) -> list[KeyRecord]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at)
        if owner is not None:
            query = query.where(api_keys.c.owner == owner)
        async with self.db.engine.connect() as conn:
            return [_record(row) for row in (await conn.execute(query)).all()]

    async def count(self) -> int:
        """How many keys the database holds, disabled and expired ones included."""
        async with self.db.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(api_keys)) or 0)

    async def get(self, key_id: str) -> KeyRecord:
        _known_shape(key_id)
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
        if row is None:
            raise _no_such_key(key_id)
        return _record(row)

    async def disable(self, key_id: str) -> KeyRecord:
        _known_shape(key_id)
        async with self.db.transaction() as conn:
            await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.disabled_at.is_(None))
                .values(disabled_at=self.clock())
            )
        self._forget(key_id)
        return await self.get(key_id)

    async def enable(self, key_id: str) -> KeyRecord:
        _known_shape(key_id)
        async with self.db.transaction() as conn:
            await conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(disabled_at=None))
        self._forget(key_id)
        return await self.get(key_id)

    async def update(self, key_id: str, changes: dict[str, Any], limits: dict[str, Any]) -> KeyRecord:
        """Change a key's ``name``, ``models`` or ``expires_at`` (``changes``, by column) and its ``limits``
        (a value sets that limit, None removes it, one left out stays). This process sees the change at
        once; others within the ``cache_seconds`` they may keep a verified key."""
        _known_shape(key_id)
        unknown = set(changes) - {"name", "models", "expires_at"}
        if unknown:
            raise ValueError(f"these columns of a key cannot be changed: {sorted(unknown)}")
        mine = api_keys.c.id == key_id
        async with self.db.transaction() as conn:
            # Written first so that the row is locked (the write lock, in SQLite) before its limits are
            # read: two changes of different limits at once both stay.
            outcome = await conn.execute(api_keys.update().where(mine).values(id=key_id, **changes))
            if not outcome.rowcount:
                raise _no_such_key(key_id)
            kept = await conn.scalar(sa.select(api_keys.c.limits).where(mine))
            merged = KeyLimits.from_record({**(kept or {}), **limits}).to_record()
            await conn.execute(api_keys.update().where(mine).values(limits=merged or None))
        self._forget(key_id)
        return await self.get(key_id)

    async def delete(self, key_id: str) -> None:
        _known_shape(key_id)
        async with self.db.transaction() as conn:
            outcome = await conn.execute(api_keys.delete().where(api_keys.c.id == key_id))
        if not outcome.rowcount:
            raise _no_such_key(key_id)
        self._forget(key_id)

    def _forget(self, key_id: str) -> None:
        for digest, (caller, _) in list(self._verified.items()):
            if caller.key_id == key_id:
                del self._verified[digest]

    async def verify(self, presented: str) -> Caller | None:
        """The caller a presented key stands for, or None if it is not a valid key, for whatever reason
        (malformed, unknown, wrong secret, expired, disabled, deleted): callers are not told which."""
        now = self.clock()
        fingerprint = hashlib.sha256(presented.encode()).hexdigest()
        cached = self._verified.get(fingerprint)
        if cached is not None and cached[1] > now:
            return cached[0]
        # Any string may be the admin key (the operator chose it), so every key is checked against it.
        caller = await self._admin_caller(presented)
        until = now + self.cache_seconds
        if caller is None and presented.startswith(KEY_PREFIX):
            caller, expires_at = await self._key_caller(presented.removeprefix(KEY_PREFIX), now)
            if expires_at is not None:
                until = min(until, expires_at)  # a key stops working when it expires, cached or not
        if caller is not None:
            self._verified[fingerprint] = (caller, until)
        return caller

    async def _key_caller(self, body: str, now: float) -> tuple[Caller | None, float | None]:
        """The caller a key stands for (or None), and when the key expires."""
        key_id, _, secret = body.partition("_")
        if not key_id or not secret or len(body) > 256:
            return None, None
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
        if row is None or not hmac.compare_digest(row.hash, _digest(row.salt, secret)):
            return None, None
        record = _record(row)
        if record.state(now) != "active":
            return None, None
        caller = Caller(
            key_id=record.id, name=record.name, owner=record.owner, models=record.models, limits=record.limits
        )
        return caller, record.expires_at

    async def _admin_caller(self, presented: str) -> Caller | None:
        if self._admin is None:
            return None
        salt, digest = self._admin
        if not hmac.compare_digest(digest, _digest(salt, presented)):
            return None
        return Caller(key_id="admin", name="admin", owner=None, is_admin=True)

    async def load_admin_key(self, configured: str | None) -> str | None:
        """Set the admin key: ``configured`` (``PIXELGATE_ADMIN_KEY``) if given, else the one kept in the
        database, else a new one, which is returned (once, to be shown) and kept as a hash."""
        if configured:
            salt = secrets.token_hex(16)
            self._admin = (salt, _digest(salt, configured))
            return None
        async with self.db.engine.connect() as conn:
            kept = await conn.scalar(sa.select(meta.c.value).where(meta.c.key == _ADMIN_META))
        if kept is not None:
            salt, _, digest = str(kept).partition(":")
            self._admin = (salt, digest)
            return None
        made = ADMIN_PREFIX + secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        if not await self.db.put_meta_once(_ADMIN_META, f"{salt}:{_digest(salt, made)}"):
            return await self.load_admin_key(None)  # another process made one first: use that
        self._admin = (salt, _digest(salt, made))
        return made
