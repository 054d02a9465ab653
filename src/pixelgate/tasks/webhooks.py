"""Webhook events into the outbox: what happened, to whom it is sent, written in the caller's transaction.

A task that ends, or a batch, writes one ``webhook_deliveries`` row per URL in the same transaction as its
own state change, so an event is never lost between "the task ended" and "the webhook was queued": the
sender (``webhook_sender.py``) of any process sends the rows, signed, and retries them for about a day.

Who gets an event: the URLs the request gave itself (``callback_url``, ``webhook_config.uris``) if it
gave any, else every enabled webhook its owner registered (``/v1beta/webhooks``) that subscribes to the
event. The body is the same on every attempt (Standard Webhooks' shape)::

    {"type": "interaction.completed", "timestamp": "2026-11-21T10:00:00.000000Z",
     "data": {"id": "task_img_…", "status": "completed", "model": "…", "error": null, "user_metadata": {…}}}
"""

from __future__ import annotations

import base64
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from pixelgate.core.task import Callback, Status
from pixelgate.store.schema import webhook_deliveries, webhooks

# The events pixelgate sends. An Interactions task reports as Gemini's interaction events; any other task
# as task events; batches (tasks/batches.py) as batch events. ``webhook.ping`` answers a ping.
TASK_EVENTS = {
    ("interactions", Status.SUCCEEDED): "interaction.completed",
    ("interactions", Status.FAILED): "interaction.failed",
    ("interactions", Status.CANCELLED): "interaction.cancelled",
    ("", Status.SUCCEEDED): "task.succeeded",
    ("", Status.FAILED): "task.failed",
    ("", Status.CANCELLED): "task.cancelled",
}
BATCH_EVENTS = ("batch.succeeded", "batch.failed", "batch.expired", "batch.cancelled")
PING_EVENT = "webhook.ping"
# What a registered webhook may subscribe to: the events above, and the two of Gemini's list that an
# image gateway never sends (accepted, so that a client subscribing to Google's whole list still works).
SUBSCRIBABLE = (
    *sorted(set(TASK_EVENTS.values())),
    *BATCH_EVENTS,
    "interaction.requires_action",
    "video.generated",
)
# The status word of a task in its event: the Interactions API's own for interactions.
INTERACTION_STATUS = {Status.SUCCEEDED: "completed", Status.FAILED: "failed", Status.CANCELLED: "cancelled"}

ENABLED = "enabled"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


def new_secret() -> str:
    """A signing secret as Standard Webhooks writes one: ``whsec_`` and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_delivery_id() -> str:
    return "whd_" + secrets.token_hex(12)


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(10)


def iso_now(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_body(event_type: str, data: dict[str, Any], now: float) -> str:
    return orjson.dumps({"type": event_type, "timestamp": iso_now(now), "data": data}).decode()


def _owned_by(column: Any, owner: str | None) -> Any:
    return column.is_(None) if owner is None else column == owner


async def enqueue_event(
    conn: AsyncConnection,
    *,
    owner: str | None,
    event_type: str,
    subject_id: str,
    data: dict[str, Any],
    override_urls: list[str] | None = None,
    user_metadata: dict[str, Any] | None = None,
) -> int:
    """Queue ``event_type`` about ``subject_id`` (a task or batch id) for delivery, inside ``conn``'s
    transaction: to ``override_urls`` if given (the request's own, already checked when it was accepted),
    else to ``owner``'s enabled webhooks that subscribe to it. ``data`` is the event's ``data`` object;
    ``user_metadata`` is added to it. Returns how many deliveries were queued (0: nobody listens)."""
    targets: list[tuple[str | None, str]]
    if override_urls:
        targets = [(None, url) for url in dict.fromkeys(override_urls)]
    else:
        rows = await conn.execute(
            sa.select(webhooks.c.id, webhooks.c.uri, webhooks.c.subscribed_events).where(
                _owned_by(webhooks.c.owner, owner), webhooks.c.state == ENABLED
            )
        )
        targets = [(row.id, row.uri) for row in rows if event_type in (row.subscribed_events or [])]
    return await _insert(
        conn, owner, event_type, subject_id, {**data, "user_metadata": user_metadata}, targets
    )


async def enqueue_ping(conn: AsyncConnection, *, owner: str | None, webhook_id: str, url: str) -> int:
    """Queue a ``webhook.ping`` to one registered webhook (``POST /v1beta/webhooks/{id}:ping``): signed
    and retried like any event, and listed with the deliveries."""
    return await _insert(conn, owner, PING_EVENT, webhook_id, {"id": webhook_id}, [(webhook_id, url)])


async def _insert(
    conn: AsyncConnection,
    owner: str | None,
    event_type: str,
    subject_id: str,
    data: dict[str, Any],
    targets: list[tuple[str | None, str]],
) -> int:
    if not targets:
        return 0
    now = time.time()
    body = event_body(event_type, data, now)
    await conn.execute(
        webhook_deliveries.insert(),
        [
            {
                "id": new_delivery_id(),
                "owner": owner,
                "webhook_id": webhook_id,
                "url": url,
                "event_type": event_type,
                "subject_id": subject_id,
                "payload": body,
                "state": PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for webhook_id, url in targets
        ],
    )
    return len(targets)


async def enqueue_task_event(
    conn: AsyncConnection,
    *,
    task_id: str,
    owner: str | None,
    dialect: str,
    model: str,
    status: Status,
    error: dict[str, Any] | None,
    webhook: dict[str, Any] | None,
    batch_id: str | None,
) -> int:
    """Queue the event of a task that just ended (in the transaction that ended it). A batch's lines
    send none (their batch reports once, when it ends) unless a line gave its own ``callback_url``."""
    own_urls = bool(webhook and webhook.get("urls"))
    if not status.is_terminal or (batch_id is not None and not own_urls):
        return 0
    interaction = dialect == "interactions"
    event_type = TASK_EVENTS[("interactions" if interaction else "", status)]
    callback = Callback.from_record(webhook) or Callback()
    data = {
        "id": task_id,
        "status": INTERACTION_STATUS[status] if interaction else status.value,
        "model": model,
        "error": {"code": error.get("code"), "message": error.get("message")} if error else None,
    }
    return await enqueue_event(
        conn,
        owner=owner,
        event_type=event_type,
        subject_id=task_id,
        data=data,
        override_urls=list(callback.urls) or None,
        user_metadata=callback.user_metadata,
    )
