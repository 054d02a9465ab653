"""Registered webhooks, the owners' signing secrets and the deliveries, as the API reads and changes them.

A registered webhook is Gemini's ``Webhook`` resource: a URI, the events it subscribes to, a state and
its signing secrets (shown whole once, when made or rotated). A rotated-out secret keeps signing beside
the new one for 24 hours unless revoked at once, so a receiver can switch without refusing a delivery
(Standard Webhooks allows several signatures in one header). Per-request webhooks (``callback_url``,
``webhook_config.uris``) are signed with one secret per owner, made on first use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from pixelgate.auth.keys import owner_scope
from pixelgate.core.errors import InvalidRequest, NotFound
from pixelgate.store.db import Database, listed_after
from pixelgate.store.ids import has_id_shape
from pixelgate.store.schema import webhook_deliveries, webhook_secrets, webhooks
from pixelgate.tasks.bus import Bus, WebhooksQueued
from pixelgate.tasks.webhooks import ENABLED, enqueue_ping, iso_now, new_secret, new_webhook_id

ROTATION_GRACE_SECONDS = 24 * 3600
REVOCATIONS = ("revoke_previous_secrets_after_h24", "revoke_previous_secrets_immediately")


def _known_shape(value: str, missing: NotFound | InvalidRequest) -> str:
    """``value`` if an id could look like it; anything else (a NUL byte, a megabyte) never reaches the
    database (PostgreSQL refuses NUL in text)."""
    if not has_id_shape(value):
        raise missing
    return value


def _owned_by(column: Any, owner: str | None) -> Any:
    """None is a caller who sees everything (the admin key, or a server without keys)."""
    return sa.true() if owner is None else column == owner


def _truncated(secret: str) -> str:
    return secret[:10] + "…"


@dataclass(frozen=True)
class Webhook:
    id: str
    owner: str | None
    name: str | None
    uri: str
    subscribed_events: list[str]
    state: str
    secrets: list[dict[str, Any]]
    created_at: float
    updated_at: float

    def live_secrets(self, now: float) -> list[str]:
        return [s["secret"] for s in self.secrets if s.get("expires_at") is None or s["expires_at"] > now]

    def describe(self, now: float, *, new_signing_secret: str | None = None) -> dict[str, Any]:
        """Gemini's ``Webhook`` resource; a secret only ever truncated, but for the one just made."""
        body: dict[str, Any] = {
            "id": self.id,
            "uri": self.uri,
            "subscribed_events": list(self.subscribed_events),
            "state": self.state,
            "create_time": iso_now(self.created_at),
            "update_time": iso_now(self.updated_at),
            "signing_secrets": [
                {"truncated_secret": _truncated(s["secret"])}
                | ({"expire_time": iso_now(s["expires_at"])} if s.get("expires_at") else {})
                for s in self.secrets
                if s.get("expires_at") is None or s["expires_at"] > now
            ],
        }
        if self.name is not None:
            body["name"] = self.name
        if new_signing_secret is not None:
            body["new_signing_secret"] = new_signing_secret
        return body


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        owner=row.owner,
        name=row.name,
        uri=row.uri,
        subscribed_events=list(row.subscribed_events or []),
        state=row.state,
        secrets=list(row.secrets or []),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _no_such_webhook(webhook_id: str) -> NotFound:
    return NotFound(f"no webhook has the id {webhook_id[:64]!r}", param="id", code="webhook_not_found")


def _no_such_delivery(delivery_id: str) -> NotFound:
    return NotFound(
        f"no webhook delivery has the id {delivery_id[:64]!r}", param="id", code="delivery_not_found"
    )


def describe_delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "webhook.delivery",
        "event_type": row.event_type,
        "subject_id": row.subject_id,
        "webhook_id": row.webhook_id,
        "url": row.url,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": int(row.next_attempt_at) if row.next_attempt_at is not None else None,
        "last_status": row.last_status,
        "last_error": row.last_error,
        "created_at": int(row.created_at),
        "delivered_at": int(row.delivered_at) if row.delivered_at is not None else None,
        "payload": row.payload,
    }


class WebhookRegistry:
    def __init__(self, db: Database, bus: Bus) -> None:
        self.db = db
        self.bus = bus

    # Registered webhooks

    async def create(
        self, *, owner: str | None, uri: str, subscribed_events: list[str], name: str | None
    ) -> tuple[Webhook, str]:
        now = time.time()
        secret = new_secret()
        webhook = Webhook(
            id=new_webhook_id(),
            owner=owner,
            name=name,
            uri=uri,
            subscribed_events=subscribed_events,
            state=ENABLED,
            secrets=[{"secret": secret, "created_at": now, "expires_at": None}],
            created_at=now,
            updated_at=now,
        )
        async with self.db.transaction() as conn:
            await conn.execute(webhooks.insert().values(**webhook.__dict__))
        return webhook, secret

    async def get(self, webhook_id: str, *, owner: str | None) -> Webhook:
        _known_shape(webhook_id, _no_such_webhook(webhook_id))
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(webhooks).where(webhooks.c.id == webhook_id, _owned_by(webhooks.c.owner, owner))
                )
            ).first()
        if row is None:
            raise _no_such_webhook(webhook_id)
        return _webhook(row)

    async def list_page(
        self, *, owner: str | None, page_size: int, page_token: str | None
    ) -> tuple[list[Webhook], str | None]:
        """Oldest first; ``page_token`` is the id of the last webhook of the page before."""
        query = sa.select(webhooks).where(_owned_by(webhooks.c.owner, owner))
        async with self.db.engine.connect() as conn:
            if page_token:
                bad_token = InvalidRequest(
                    f"page_token {page_token[:64]!r} is not valid: give the next_page_token of the "
                    "page before, or none for the first page",
                    param="page_token",
                    code="invalid_page_token",
                )
                created_at = await _anchor(conn, webhooks, page_token, owner, bad_token)
                query = query.where(listed_after(webhooks, created_at, page_token, newest_first=False))
            rows = (
                await conn.execute(query.order_by(webhooks.c.created_at, webhooks.c.id).limit(page_size + 1))
            ).all()
        found = [_webhook(row) for row in rows[:page_size]]
        return found, found[-1].id if len(rows) > page_size else None

    async def update(self, webhook_id: str, *, owner: str | None, changes: dict[str, Any]) -> Webhook:
        _known_shape(webhook_id, _no_such_webhook(webhook_id))
        async with self.db.transaction() as conn:
            outcome = await conn.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id, _owned_by(webhooks.c.owner, owner))
                .values(**changes, updated_at=time.time())
            )
        if not outcome.rowcount:
            raise _no_such_webhook(webhook_id)
        return await self.get(webhook_id, owner=owner)

    async def delete(self, webhook_id: str, *, owner: str | None) -> None:
        _known_shape(webhook_id, _no_such_webhook(webhook_id))
        async with self.db.transaction() as conn:
            outcome = await conn.execute(
                webhooks.delete().where(webhooks.c.id == webhook_id, _owned_by(webhooks.c.owner, owner))
            )
        if not outcome.rowcount:
            raise _no_such_webhook(webhook_id)

    async def rotate(self, webhook_id: str, *, owner: str | None, revoke_now: bool) -> str:
        """A new signing secret; the ones before expire now or in 24 hours."""
        _known_shape(webhook_id, _no_such_webhook(webhook_id))
        now = time.time()
        secret = new_secret()
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(webhooks).where(webhooks.c.id == webhook_id, _owned_by(webhooks.c.owner, owner))
                )
            ).first()
            if row is None:
                raise _no_such_webhook(webhook_id)
            kept = [] if revoke_now else _webhook(row).secrets
            until = now + ROTATION_GRACE_SECONDS
            kept = [
                {**s, "expires_at": min(s.get("expires_at") or until, until)}
                for s in kept
                if s.get("expires_at") is None or s["expires_at"] > now
            ]
            await conn.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id)
                .values(
                    secrets=[{"secret": secret, "created_at": now, "expires_at": None}, *kept],
                    updated_at=now,
                )
            )
        return secret

    async def ping(self, webhook_id: str, *, owner: str | None) -> None:
        _known_shape(webhook_id, _no_such_webhook(webhook_id))
        async with self.db.transaction() as conn:
            row = (
                await conn.execute(
                    sa.select(webhooks.c.uri, webhooks.c.owner).where(
                        webhooks.c.id == webhook_id, _owned_by(webhooks.c.owner, owner)
                    )
                )
            ).first()
            if row is None:
                raise _no_such_webhook(webhook_id)
            await conn.run_sync(
                lambda c: enqueue_ping(c, owner=row.owner, webhook_id=webhook_id, url=row.uri)
            )
        self.bus.publish(WebhooksQueued(1))

    # Signing secrets

    async def owner_secret(self, owner: str | None) -> str:
        """The secret that signs ``owner``'s per-request webhooks, made on first use (by whichever process
        is first: the others read it)."""
        scope = owner_scope(owner)
        query = sa.select(webhook_secrets.c.secret).where(webhook_secrets.c.scope == scope)
        async with self.db.engine.connect() as conn:
            found = await conn.scalar(query)
        if found is not None:
            return str(found)
        insert: Any
        if self.db.is_postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        async with self.db.transaction() as conn:
            await conn.execute(
                insert(webhook_secrets)
                .values(scope=scope, secret=new_secret(), created_at=time.time())
                .on_conflict_do_nothing()
            )
            return str(await conn.scalar(query))

    async def signing_secrets(self, webhook_id: str | None, owner: str | None) -> list[str] | None:
        """The secrets that sign a delivery: its webhook's live ones, or its owner's; None if its
        webhook was deleted meanwhile."""
        if webhook_id is None:
            return [await self.owner_secret(owner)]
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id))).first()
        return _webhook(row).live_secrets(time.time()) if row is not None else None

    # Deliveries

    async def deliveries(
        self, *, owner: str | None, subject_id: str | None, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first; ``after`` is the id of the last delivery of the page before."""
        table = webhook_deliveries
        query = sa.select(table).where(_owned_by(table.c.owner, owner))
        if subject_id is not None:
            query = query.where(table.c.subject_id == subject_id)
        async with self.db.engine.connect() as conn:
            if after:
                bad_cursor = InvalidRequest(
                    f"after {after[:64]!r} names no delivery of yours: give the last_id of the page "
                    "before, or leave it out for the first page",
                    param="after",
                    code="invalid_cursor",
                )
                created_at = await _anchor(conn, table, after, owner, bad_cursor)
                query = query.where(listed_after(table, created_at, after))
            rows = (
                await conn.execute(
                    query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
                )
            ).all()
        return [describe_delivery(row) for row in rows[:limit]], len(rows) > limit

    async def delivery(self, delivery_id: str, *, owner: str | None) -> dict[str, Any]:
        _known_shape(delivery_id, _no_such_delivery(delivery_id))
        table = webhook_deliveries
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(table).where(table.c.id == delivery_id, _owned_by(table.c.owner, owner))
                )
            ).first()
        if row is None:
            raise _no_such_delivery(delivery_id)
        return describe_delivery(row)


async def _anchor(conn: Any, table: sa.Table, row_id: str, owner: str | None, bad: InvalidRequest) -> float:
    """When the row a page continues after was made (a cursor names a row of the caller's), else ``bad``."""
    _known_shape(row_id, bad)
    created_at = await conn.scalar(
        sa.select(table.c.created_at).where(table.c.id == row_id, _owned_by(table.c.owner, owner))
    )
    if created_at is None:
        raise bad
    return float(created_at)
