"""Retention: the images of ended tasks are deleted once their results expired (``result_ttl_seconds``
after the task ended, the expiry its URLs already carry), in batches, by one process of the deployment at a
time: whichever holds the ``janitor`` lease (``store/leases.py``).

A task's folder holds everything it stored: its outputs and interim images, its references and mask, and
the copies of a conversation's earlier images, so one delete by prefix removes them all, on either blob
store. The task row stays, marked ``blobs_purged_at``: it still answers that its result expired. Failed and
cancelled tasks keep their inputs as long as a result would have been kept. Uploaded files and batch
outputs have their own expiry (``store/files.py`` sweeps them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import sqlalchemy as sa

from pixelgate.core import logs
from pixelgate.core.task import Status
from pixelgate.store.blobs import BlobStore
from pixelgate.store.db import Database
from pixelgate.store.leases import Leases
from pixelgate.store.schema import tasks

log = logging.getLogger("pixelgate.janitor")

LEASE = "janitor"
BATCH = 500
DELETES_AT_ONCE = 16  # prefixes deleted concurrently: enough to hide an object store's round trips
ENDED = [Status.SUCCEEDED.value, Status.FAILED.value, Status.CANCELLED.value]


class Janitor:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        leases: Leases,
        *,
        holder: str,
        result_ttl_seconds: float,
        interval: float,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.leases = leases
        self.holder = holder
        self.result_ttl_seconds = result_ttl_seconds
        self.interval = interval
        # Long enough to outlast a sweep between renewals; short enough that a dead holder's work resumes soon.
        self.lease_seconds = max(3 * interval, 10.0)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pixelgate-janitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.leases.release(LEASE, self.holder)

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a database or store outage: try again at the next round
                log.exception("pixelgate: the retention sweep failed; it runs again in %g s", self.interval)
            await asyncio.sleep(self.interval)

    async def sweep(self) -> int:
        """Delete the images of every task whose result has expired, if this process holds the lease; how
        many tasks' images went."""
        purged = 0
        while await self.leases.hold(LEASE, self.holder, self.lease_seconds):
            due = await self._due()
            if not due:
                break
            await self._delete(due)
            async with self.db.transaction() as conn:
                await conn.execute(
                    tasks.update().where(tasks.c.id.in_(due)).values(blobs_purged_at=time.time())
                )
            purged += len(due)
            if len(due) < BATCH:
                break
        if purged:
            logs.event(log, "retention.purged", tasks=purged)
        return purged

    async def _delete(self, task_ids: list[str]) -> None:
        limit = asyncio.Semaphore(DELETES_AT_ONCE)

        async def delete(task_id: str) -> None:
            async with limit:
                await self.blobs.delete_prefix(task_id)

        await asyncio.gather(*(delete(task_id) for task_id in task_ids))

    async def _due(self) -> list[str]:
        now = time.time()
        expiry = sa.func.coalesce(tasks.c.expires_at, tasks.c.completed_at + self.result_ttl_seconds)
        query = (
            sa.select(tasks.c.id)
            .where(
                tasks.c.blobs_purged_at.is_(None),
                tasks.c.completed_at < now,
                tasks.c.status.in_(ENDED),
                expiry < now,
            )
            .order_by(tasks.c.completed_at)
            .limit(BATCH)
        )
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())
