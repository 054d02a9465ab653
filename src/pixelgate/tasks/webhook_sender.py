"""The webhook sender: takes due deliveries from the outbox, signs them and POSTs them; retries the ones
that fail on Standard Webhooks' schedule, then gives up.

Every process runs one. Deliveries are claimed as tasks are: one ``UPDATE … WHERE id IN (SELECT …)``
that sets a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so two processes never send one delivery at
the same time; a sender that dies leaves its claims to be taken again when their lease runs out. A
delivery may still arrive twice (sent, then the process died before recording it): receivers tell them
apart by ``webhook-id``, which is the delivery's id on every attempt.

Signing (https://www.standardwebhooks.com)::

    webhook-id: whd_…              the same on every attempt
    webhook-timestamp: 1795082400  this attempt's time, in unix seconds
    webhook-signature: v1,<base64 of HMAC-SHA256("{id}.{timestamp}.{body}", key)> [v1,<…> …]

where ``key`` is the bytes of the secret after ``whsec_``, base64-decoded; one signature per live secret
(a rotated-out secret keeps signing for 24 hours). A 2xx answer is delivered; anything else (another
status, a timeout, a refused connection, an address now refused) is retried after the next delay of
``--webhook-retry-seconds`` (0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about a day) and, once they
are spent, ``failed``. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

import httpx2
import sqlalchemy as sa

from pixelgate.core import logs
from pixelgate.core.safe_urls import AddressPolicy, UnsafeUrl, checked_destination
from pixelgate.store.db import Database
from pixelgate.store.schema import webhook_deliveries
from pixelgate.tasks.bus import Bus, WebhooksQueued
from pixelgate.tasks.webhook_registry import WebhookRegistry
from pixelgate.tasks.webhooks import DELIVERED, FAILED, PENDING

log = logging.getLogger("pixelgate.webhooks")
# Standard Webhooks' schedule: the first attempt at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_RETRY_SECONDS = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
_ERROR_EXCERPT = 300  # characters of a refusing answer kept as the delivery's last_error
# Ended deliveries stay visible through the API this long, then go (checked at start, then hourly).
KEEP_ENDED_SECONDS = 30 * 86400
_PRUNE_EVERY_SECONDS = 3600.0


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """One ``v1,<base64>`` signature of Standard Webhooks."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class WebhookSender:
    def __init__(
        self,
        db: Database,
        registry: WebhookRegistry,
        bus: Bus,
        *,
        policy: AddressPolicy,
        retry_seconds: Sequence[float] = DEFAULT_RETRY_SECONDS,
        timeout: float = 10.0,
        poll_interval: float = 1.0,
        concurrency: int = 16,
    ) -> None:
        self.db = db
        self.registry = registry
        self.policy = policy
        self.retry_seconds = tuple(retry_seconds)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        # Longer than one attempt can take, so that a live sender never loses its claim mid-send.
        self.lease_seconds = timeout * 3 + 5
        self.id = f"whs-{secrets.token_hex(6)}"
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._client = httpx2.AsyncClient(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "pixelgate-webhooks"}
        )
        # A delivery queued in this process is sent now rather than at the next poll.
        bus.subscribe(WebhooksQueued, lambda event: self._wake.set())

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        """Stop sending; a delivery in flight is sent again later by whichever sender claims it next."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self._client.aclose()

    async def prune(self) -> int:
        """Delete the deliveries that ended (delivered or failed) more than ``KEEP_ENDED_SECONDS`` ago."""
        table = webhook_deliveries
        async with self.db.transaction() as conn:
            outcome = await conn.execute(
                table.delete().where(
                    table.c.state.in_([DELIVERED, FAILED]),
                    table.c.created_at < time.time() - KEEP_ENDED_SECONDS,
                )
            )
        return int(outcome.rowcount or 0)

    async def _run(self) -> None:
        next_prune = 0.0
        while True:
            self._wake.clear()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + _PRUNE_EVERY_SECONDS
                try:
                    if pruned := await self.prune():
                        logs.event(log, "webhooks.pruned", deliveries=pruned)
                except Exception:
                    log.exception("deleting old webhook deliveries failed")
            try:
                claimed = await self.claim()
                await asyncio.gather(*(self._deliver(row) for row in claimed))
            except Exception:
                log.exception("sending webhooks failed; trying again in %.1f s", self.poll_interval)
                claimed = []
            if len(claimed) < self.concurrency:  # a full batch means more may be due already
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), await self._idle_seconds())

    async def _idle_seconds(self) -> float:
        """Until the next delivery falls due, at most the poll interval (another process may queue one)."""
        async with self.db.engine.connect() as conn:
            due = await conn.scalar(
                sa.select(sa.func.min(webhook_deliveries.c.next_attempt_at)).where(
                    webhook_deliveries.c.state == PENDING
                )
            )
        if due is None:
            return self.poll_interval
        return min(self.poll_interval, max(0.01, float(due) - time.time()))

    async def claim(self) -> list[Any]:
        now = time.time()
        table = webhook_deliveries
        due = (
            sa.select(table.c.id)
            .where(
                table.c.state == PENDING,
                table.c.next_attempt_at <= now,
                sa.or_(table.c.lease_expires_at.is_(None), table.c.lease_expires_at < now),
            )
            .order_by(table.c.next_attempt_at)
            .limit(self.concurrency)
        )
        if self.db.is_postgres:
            due = due.with_for_update(skip_locked=True)
        async with self.db.transaction() as conn:
            rows = await conn.execute(
                table.update()
                .where(table.c.id.in_(due.scalar_subquery()))
                .values(worker_id=self.id, lease_expires_at=now + self.lease_seconds)
                .returning(*table.c)
            )
            return list(rows.all())

    async def _deliver(self, row: Any) -> None:
        status: int | None = None
        try:
            keys = await self.registry.signing_secrets(row.webhook_id, row.owner)
            if keys is None:
                await self._record(row, None, f"webhook {row.webhook_id} was deleted", give_up=True)
                return
            status, error = await self._post(row, keys)
        except UnsafeUrl as exc:
            error = str(exc)
        except (httpx2.HTTPError, httpx2.InvalidURL, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await self._record(row, status, error)

    async def _post(self, row: Any, keys: list[str]) -> tuple[int, str | None]:
        destination = await checked_destination(row.url, self.policy)
        timestamp = int(time.time())
        headers = {
            **destination.headers,
            "Content-Type": "application/json",
            "webhook-id": row.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(sign(key, row.id, timestamp, row.payload) for key in keys),
        }
        request = self._client.build_request(
            "POST",
            destination.url,
            content=row.payload.encode(),
            headers=headers,
            extensions=destination.extensions,
        )
        response = await self._client.send(request, stream=True)
        try:
            if 200 <= response.status_code < 300:
                return response.status_code, None
            excerpt = b""
            async for chunk in response.aiter_bytes():
                excerpt += chunk
                if len(excerpt) >= _ERROR_EXCERPT:
                    break
            text = excerpt.decode("utf-8", "replace")[:_ERROR_EXCERPT].strip()
            redirect = " (redirects are not followed)" if response.is_redirect else ""
            return response.status_code, f"HTTP {response.status_code}{redirect}" + (
                f": {text}" if text else ""
            )
        finally:
            await response.aclose()

    async def _record(
        self, row: Any, status: int | None, error: str | None, *, give_up: bool = False
    ) -> None:
        now = time.time()
        attempts = row.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status": status,
            "last_error": error,
            "worker_id": None,
            "lease_expires_at": None,
        }
        if error is None:
            values |= {"state": DELIVERED, "delivered_at": now, "next_attempt_at": None}
        elif give_up or attempts >= len(self.retry_seconds):
            values |= {"state": FAILED, "next_attempt_at": None}
        else:
            values["next_attempt_at"] = now + self.retry_seconds[attempts]
        table = webhook_deliveries
        async with self.db.transaction() as conn:
            await conn.execute(
                table.update().where(table.c.id == row.id, table.c.worker_id == self.id).values(**values)
            )
        logs.event(
            log,
            "webhook.delivered" if error is None else f"webhook.{values.get('state', 'retrying')}",
            delivery_id=row.id,
            event_type=row.event_type,
            subject_id=row.subject_id,
            attempts=attempts,
            status=status,
            error=error,
        )
