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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pixelgate.core.task import Callback, Status, Task, Usage
from pixelgate.store.schema import webhook_deliveries, webhooks
from pixelgate.tasks.bus import WebhooksQueued


@dataclass(frozen=True)
class TaskEventNames:
    """How one dialect's tasks report their end: the event type, and the word for the status in its data.
    A dialect with names of its own registers them when the runtime is built (Interactions sends Gemini's
    ``interaction.completed``); the others send these."""

    types: Mapping[Status, str]
    statuses: Mapping[Status, str]


TASK_EVENT_NAMES = TaskEventNames(
    types={
        Status.SUCCEEDED: "task.succeeded",
        Status.FAILED: "task.failed",
        Status.CANCELLED: "task.cancelled",
    },
    statuses={status: status.value for status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)},
)
BATCH_EVENTS = ("batch.succeeded", "batch.failed", "batch.expired", "batch.cancelled")
PING_EVENT = "webhook.ping"

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


# The enabled webhooks of an owner, built once: every task that ends asks (see ``queue.py``'s _TASK).
_LISTENING = sa.select(webhooks.c.id, webhooks.c.uri, webhooks.c.subscribed_events).where(
    webhooks.c.state == ENABLED
)
_LISTENING_WITHOUT_KEY = _LISTENING.where(webhooks.c.owner.is_(None))
_LISTENING_TO = _LISTENING.where(webhooks.c.owner == sa.bindparam("owner"))


def enqueue_event(
    conn: Connection,
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
        rows = (
            conn.execute(_LISTENING_WITHOUT_KEY)
            if owner is None
            else conn.execute(_LISTENING_TO, {"owner": owner})
        )
        targets = [(row.id, row.uri) for row in rows if event_type in (row.subscribed_events or [])]
    return _insert(conn, owner, event_type, subject_id, {**data, "user_metadata": user_metadata}, targets)


def enqueue_ping(conn: Connection, *, owner: str | None, webhook_id: str, url: str) -> int:
    """Queue a ``webhook.ping`` to one registered webhook (``POST /v1beta/webhooks/{id}:ping``): signed
    and retried like any event, and listed with the deliveries."""
    return _insert(conn, owner, PING_EVENT, webhook_id, {"id": webhook_id}, [(webhook_id, url)])


def _insert(
    conn: Connection,
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
    conn.execute(
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


class TaskOutbox:
    """The webhook event of each task that ends, queued in the transaction that ends it (registered with
    the lifecycle as one of its ``on_end`` hooks). ``names``: the dialects whose events have names of
    their own."""

    def __init__(self, names: Mapping[str, TaskEventNames] | None = None) -> None:
        self.names = dict(names or {})

    def task_ended(self, conn: Connection, task: Task, made: Usage | None) -> list[WebhooksQueued]:
        """A batch's lines send none (their batch reports once, when it ends) unless a line gave its own
        ``callback_url``."""
        callback = task.callback or Callback()
        if not task.status.is_terminal or (task.batch_id is not None and not callback.urls):
            return []
        names = self.names.get(task.dialect, TASK_EVENT_NAMES)
        error = task.error_record
        data = {
            "id": task.id,
            "status": names.statuses[task.status],
            "model": task.request.model,
            "error": {"code": error.get("code"), "message": error.get("message")} if error else None,
        }
        queued = enqueue_event(
            conn,
            owner=task.owner,
            event_type=names.types[task.status],
            subject_id=task.id,
            data=data,
            override_urls=list(callback.urls) or None,
            user_metadata=callback.user_metadata,
        )
        return [WebhooksQueued(queued)] if queued else []
