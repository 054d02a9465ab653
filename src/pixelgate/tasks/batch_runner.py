"""The batch runner: advances the active batches. It feeds their lines to the task queue a window at a
time, stops them when they are cancelled or expire, and has their dialect write the results once every
line has ended. Each server process that runs a worker runs one; a batch is advanced by the one process
holding its lease (see ``batches.py`` for the data it works on).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from pixelgate.auth.keys import ANONYMOUS, Caller, KeyStore
from pixelgate.core import logs, metrics
from pixelgate.core.errors import PixelgateError, RateLimited
from pixelgate.store.files import FileStore
from pixelgate.tasks.batches import (
    BATCH_WINDOW,
    Batch,
    BatchDialect,
    BatchState,
    BatchStore,
    caller_record,
    stopped_record,
)
from pixelgate.tasks.bus import BatchChanged, Bus, TaskCancelled, TaskEnded

log = logging.getLogger("pixelgate.batches")
SWEEP_SECONDS = 60.0  # how often expired files are deleted
# How often a batch held back by its key's limit tries again: the limit may reset, or be raised, meanwhile.
LIMIT_RETRY_SECONDS = 10.0
SUBMIT_CHUNK = 32  # lines made tasks per batch per pass


class BatchRunner:
    """Advances the active batches: feeds their lines to the task queue, stops them when cancelled or
    expired, and has their dialect write the results once every line has ended."""

    def __init__(
        self,
        *,
        store: BatchStore,
        keys: KeyStore,
        bus: Bus,
        dialects: dict[str, BatchDialect],
        cancel_tasks: Callable[[str], Awaitable[int]],
        poll_interval: float,
        lease_seconds: float,
        window: int = BATCH_WINDOW,
        files: FileStore | None = None,
    ) -> None:
        self.id = f"{os.uname().nodename[:24]}-{os.getpid()}-{secrets.token_hex(3)}"
        self.store = store
        self.keys = keys
        self.dialects = dialects
        # TaskService.cancel_batch: stops a batch's tasks and their upstream work, wherever they run.
        self.cancel_tasks = cancel_tasks
        self.poll_interval = poll_interval
        self.lease_seconds = lease_seconds
        self.window = window
        self.files = files  # whose expired files the runner deletes, once a minute
        self._next_sweep = 0.0
        self._paused_until: dict[str, float] = {}  # batches waiting for a key's limit to reset
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        # A batch made or cancelled, or one of its lines ended: there is work now, not at the next poll.
        bus.subscribe(BatchChanged, lambda event: self._wake.set())
        bus.subscribe(TaskEnded, self._line_ended)
        bus.subscribe(TaskCancelled, self._line_ended)

    def _line_ended(self, event: TaskEnded | TaskCancelled) -> None:
        if event.task.batch_id is not None:
            self._wake.set()

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="pixelgate-batches")

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except Exception:
                log.exception("advancing batches failed; retrying in %.1f s", self.poll_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

    async def run_once(self) -> None:
        if self.files is not None and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_SECONDS
            if swept := await self.files.sweep():
                logs.event(log, "files.expired", count=swept)
        for batch_id in await self.store.active_ids():
            try:
                if await self.store.hold(batch_id, self.id, self.lease_seconds):
                    await self._advance(await self.store.get(batch_id))
            except Exception:
                # One batch that cannot advance (a bug, a file gone) must not hold up the others.
                log.exception("advancing batch %s failed; it is tried again at the next pass", batch_id)

    async def _advance(self, batch: Batch) -> None:
        now = time.time()
        if batch.state is BatchState.CANCELLING:
            await self._stop(batch, BatchState.CANCELLED)
            return
        if batch.expires_at < now and batch.state is not BatchState.FINALIZING:
            await self._stop(batch, BatchState.EXPIRED)
            return
        if batch.state is BatchState.VALIDATING:
            started = await self.store.move(
                batch.id, came_from=batch.state, state=BatchState.IN_PROGRESS.value, in_progress_at=now
            )
            if not started:  # cancelled since it was read: the next pass, at once, stops it
                self._wake.set()
                return
            batch = dataclasses.replace(batch, state=BatchState.IN_PROGRESS)
        running = batch.counts.running
        paused = self._paused_until.get(batch.id, 0.0) > now
        if batch.submitted < batch.total and running < self.window and not paused:
            room = self.window - running
            await self._submit(batch, min(room, SUBMIT_CHUNK))
            if room > SUBMIT_CHUNK:
                # The rest at the next pass, which comes at once: a cancel, or another batch, need not
                # wait for hundreds of lines to be made tasks first.
                self._wake.set()
            batch = await self.store.get(batch.id)
            if batch.state is BatchState.CANCELLING:  # cancelled while its lines were being made
                await self._stop(batch, BatchState.CANCELLED)
                return
        if batch.submitted >= batch.total and batch.counts.running == 0:
            # A batch left finalizing by a process that stopped ends as that process meant it to.
            await self._finalize(batch, BatchState(batch.options.get("ending", BatchState.COMPLETED.value)))

    async def _submit(self, batch: Batch, room: int) -> None:
        dialect = self.dialects[batch.dialect]
        errors: dict[int, dict[str, Any]] = {}
        cursor = batch.submitted
        try:
            caller = await self._caller(batch)
        except PixelgateError as error:
            caller, refused = None, error.to_record()
        lines = await self.store.lines(batch.id, batch.submitted, room)
        # Lines made tasks by a process that stopped before it moved the cursor past them.
        made = await self.store.existing_tasks([batch.task_id(line.line) for line in lines])
        for line in lines:
            if batch.task_id(line.line) in made:
                cursor = line.line + 1
                continue
            try:
                if caller is None:
                    errors[line.line] = refused
                else:
                    await dialect.submit_line(batch, line, batch.task_id(line.line), caller)
            except RateLimited as limited:
                # A limit that resets (the key's images per day): the line waits for it, it does not fail.
                # The batch goes on from here then, or expires at the end of its window.
                wait = min(max(self.poll_interval, limited.retry_after or 0.0), LIMIT_RETRY_SECONDS)
                self._paused_until[batch.id] = time.time() + wait
                logs.event(
                    log,
                    "batch.paused",
                    batch_id=batch.id,
                    line=line.line,
                    seconds=round(wait),
                    why=limited.message,
                )
                break
            except PixelgateError as error:
                errors[line.line] = error.to_record()
            except sa.exc.IntegrityError:
                pass  # another runner (whose lease ran out) made this line's task meanwhile: it is not made twice
            cursor = line.line + 1
        await self.store.fail_lines(batch.id, errors, cursor=cursor)

    async def _caller(self, batch: Batch) -> Caller:
        saved = batch.options.get("caller") or caller_record(ANONYMOUS)
        key_id = saved["key_id"]
        if key_id is None or saved["is_admin"]:  # auth off, or the admin key: nothing to look up
            return Caller(key_id=key_id, name=saved["name"], owner=saved["owner"], is_admin=saved["is_admin"])
        record = await self.keys.get(key_id)
        state = record.state(time.time())
        if state != "active":
            raise PixelgateError(
                f"key {key_id} that made batch {batch.id} is {state}: its remaining lines were not run",
                code="key_not_active",
            )
        return Caller(
            key_id=record.id, name=record.name, owner=record.owner, models=record.models, limits=record.limits
        )

    async def _stop(self, batch: Batch, final: BatchState) -> None:
        """Cancel what runs, mark the lines never started, and end the batch once nothing runs."""
        # Saved first, so that the lines cancelled now are told why (see LineResult.error_record).
        await self.store.update(batch.id, options={**batch.options, "ending": final.value})
        await self.cancel_tasks(batch.id)
        if batch.submitted < batch.total:
            await self.store.fail_rest(
                batch.id, batch.submitted, stopped_record(final, "before this line ran")
            )
        await self._finalize(await self.store.get(batch.id), final)

    async def _keep_holding(self, batch_id: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            with contextlib.suppress(Exception):  # a failed renewal is tried again; the lease has time left
                await self.store.hold(batch_id, self.id, self.lease_seconds)

    async def _finalize(self, batch: Batch, final: BatchState) -> None:
        """Write the results and end the batch as ``final``, if it is still in the state it was read in:
        one cancelled meanwhile is left to the next pass, which ends it cancelled."""
        finalizing = await self.store.move(
            batch.id,
            came_from=batch.state,
            state=BatchState.FINALIZING.value,
            finalizing_at=batch.finalizing_at or time.time(),
            options={**batch.options, "ending": final.value},
        )
        if not finalizing:
            self._wake.set()
            return
        batch = await self.store.get(batch.id)
        # Writing the results of a large batch can outlast the lease: it is renewed meanwhile, so that no
        # other process takes the batch over and writes them a second time.
        renewing = asyncio.create_task(self._keep_holding(batch.id))
        try:
            values = await self.dialects[batch.dialect].finalize(batch, self.store.results(batch))
        finally:
            renewing.cancel()
        await self.store.end(batch, final, **values)
        self._paused_until.pop(batch.id, None)
        ended = await self.store.get(batch.id)
        metrics.batches_finished.labels(batch.dialect, final.value).inc()
        metrics.batch_lines_finished.labels(batch.dialect, "succeeded").inc(ended.counts.succeeded)
        metrics.batch_lines_finished.labels(batch.dialect, "failed").inc(ended.counts.failed)
        logs.event(
            log,
            f"batch.{final.value}",
            batch_id=batch.id,
            lines=ended.total,
            succeeded=ended.counts.succeeded,
            failed=ended.counts.failed,
            cost_usd=ended.counts.cost_usd,
        )
