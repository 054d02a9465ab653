"""The worker: claims tasks, runs each (``execution.py``: inputs, images, outputs, price) and ends it through
the lifecycle.

One worker runs in each server process (``run_workers``); any number of processes may share a database.
A task queued in this process is claimed at once; one queued in another is claimed at once when that process
says so (PostgreSQL's NOTIFY, ``wakeups.py``), else at the next poll. A lease heartbeat keeps the tasks this
worker runs; a task cancelled through the API is stopped at once when the cancel came through this process
or was told by another, else at the next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import time
from functools import partial

from pixelgate.catalog import Catalog, Prices
from pixelgate.core import logs, metrics
from pixelgate.core.errors import ChannelsUnavailable, PixelgateError, RateLimited, UpstreamError
from pixelgate.core.slots import SlotsClosed
from pixelgate.core.task import Status, Task, TaskResult
from pixelgate.providers.base import LEFT_TO_OTHERS
from pixelgate.routing import Router
from pixelgate.store.blobs import BlobStore
from pixelgate.tasks.bus import (
    Bus,
    TaskCancelled,
    TaskEndedElsewhere,
    TaskQueued,
    TaskQueuedElsewhere,
    WakeupsChanged,
)
from pixelgate.tasks.execution import UpstreamTasks, generate_all, load_inputs, priced, store_outputs
from pixelgate.tasks.lifecycle import Lifecycle
from pixelgate.tasks.queue import Lease

log = logging.getLogger("pixelgate.worker")


class Worker:
    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        bus: Bus,
        router: Router,
        catalog: Catalog,
        blobs: BlobStore,
        concurrency: int,
        lease_seconds: float,
        poll_interval: float,
        max_attempts: int,
        prices: Prices | None = None,
    ) -> None:
        self.id = f"{os.uname().nodename[:24]}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lifecycle = lifecycle
        self.queue = lifecycle.queue  # for what is not a change of state: leases, progress, upstream tasks
        self.router = router
        self.catalog = catalog
        self.blobs = blobs
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        # How long an idle claim loop waits for a wake-up before it looks anyway: ``poll_interval``, or
        # longer while other processes' changes are heard (``WakeupsChanged``).
        self.idle_wait = poll_interval
        self.max_attempts = max_attempts
        self.prices = prices or Prices()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._running_batch: set[str] = set()  # the ids in _running that are batch lines
        # Batch lines may hold all but a quarter of the slots: interactive work always finds room.
        self.batch_slots = concurrency - concurrency // 4
        self._cancelled: set[str] = set()
        self._held = 0  # slots held by claim_here for tasks being accepted, not yet in _running
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []
        # A task queued here or told of by another process is claimed now rather than at the next poll;
        # one cancelled here stops running here at once, and so does one that another process ended (this
        # worker no longer holds it: it was cancelled, or taken over after a lease ran out). Else the next
        # heartbeat notices.
        bus.subscribe(TaskQueued, lambda event: self._wake.set())
        bus.subscribe(TaskQueuedElsewhere, lambda event: self._wake.set())
        bus.subscribe(TaskCancelled, lambda event: self.cancel_local(event.task.id))
        bus.subscribe(TaskEndedElsewhere, lambda event: self.cancel_local(event.task_id))
        bus.subscribe(WakeupsChanged, self._repace)

    @property
    def alive(self) -> bool:
        """Claiming and heartbeating: started, not stopping, and neither loop has died."""
        return bool(self._loops) and not self._stopping and not any(loop.done() for loop in self._loops)

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="pixelgate-claim"),
            asyncio.create_task(self._heartbeat_loop(), name="pixelgate-heartbeat"),
        ]

    async def stop(self, grace: float) -> None:
        """Stop claiming and starting work at a channel (what waits for a slot goes back to the queue at
        once); let running generations finish for up to ``grace`` seconds, then give the rest back to the
        queue, so that the next start (of this or another process) runs them, resuming their upstream
        tasks."""
        self._stopping = True
        self.router.stop_starting(LEFT_TO_OTHERS)
        self._wake.set()
        self._slot_free.set()
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=grace)
        running = list(self._running.values())
        for left in running:
            left.cancel(LEFT_TO_OTHERS)
        await asyncio.gather(*running, return_exceptions=True)
        for loop in self._loops:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop

    def claim_here(self, task: Task) -> tuple[Task, Lease] | None:
        """Hold a slot for ``task``, a synchronous request this process accepts: the task as a claim
        would leave it (running, its first attempt) and this worker's lease on it, to be saved so; None
        when this worker is stopping or has no free slot (the task is then queued as any other).

        Such a task never waits for the claim loop, and its caller never reads it back: ``run_here``
        starts it the moment it is saved, and its end reaches the caller on the bus. The slot is given
        up by ``run_here``, or by ``let_go`` if the task was not saved."""
        if not self.alive or self.concurrency - len(self._running) - self._held <= 0:
            return None
        self._held += 1
        now = time.time()
        claimed = dataclasses.replace(task, status=Status.RUNNING, attempts=1, started_at=now)
        return claimed, Lease(self.id, now + self.lease_seconds)

    def run_here(self, task: Task) -> None:
        """Run ``task``, saved with the lease ``claim_here`` gave it, in the slot that held for it."""
        self._held -= 1
        self._running[task.id] = asyncio.create_task(self._run(task), name=f"task-{task.id}")

    def let_go(self) -> None:
        """Give up a slot ``claim_here`` held, for a task that was not saved after all."""
        self._held -= 1
        self._slot_free.set()

    def cancel_local(self, task_id: str) -> None:
        """Stop running ``task_id`` here: it was cancelled (whoever cancelled it stops its upstream tasks),
        or another worker holds it now (and resumes them)."""
        running = self._running.get(task_id)
        if running is not None:
            self._cancelled.add(task_id)
            running.cancel(LEFT_TO_OTHERS)

    def _repace(self, event: WakeupsChanged) -> None:
        self.idle_wait = event.poll_interval
        self._wake.set()  # and claim now what was queued while nobody listened

    async def _claim_loop(self) -> None:
        while not self._stopping:
            free = self.concurrency - len(self._running) - self._held
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._wake.clear()
            wait = self.idle_wait
            try:
                claimed = await self.lifecycle.claim(
                    self.id,
                    free,
                    self.lease_seconds,
                    batch_limit=max(0, self.batch_slots - len(self._running_batch)),
                )
            except Exception:
                wait = self.poll_interval
                log.exception("claiming tasks failed; retrying in %.1f s", wait)
                claimed = []
            for task in claimed:
                self._running[task.id] = asyncio.create_task(self._run(task), name=f"task-{task.id}")
                if task.batch_id is not None:
                    self._running_batch.add(task.id)
            if not claimed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _heartbeat_loop(self) -> None:
        interval = self.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                lost = await self.queue.renew(self.id, list(self._running), self.lease_seconds)
            except Exception:
                log.exception("renewing leases failed")
                continue
            for task_id in lost:
                self.cancel_local(task_id)

    async def _run(self, task: Task) -> None:
        logs.event(
            log,
            "task.started",
            task_id=task.id,
            request_id=task.request_id,
            model=task.request.model,
            attempt=task.attempts,
            queued_ms=round((time.time() - task.created_at) * 1000),
        )
        try:
            if task.attempts > self.max_attempts:
                await self._fail(
                    task,
                    UpstreamError(
                        f"task {task.id} was started {task.attempts - 1} times and never finished: giving up "
                        f"(at most {self.max_attempts} attempts)",
                        code="too_many_attempts",
                    ),
                )
                self.router.abandon(task.upstream)
            else:
                await self._execute(task)
        except asyncio.CancelledError:
            if task.id not in self._cancelled and not self._stopping:
                raise
            if task.id not in self._cancelled:  # the process stops: the task goes back to the queue
                await asyncio.shield(self._requeue(task, started=True))
        except SlotsClosed:  # the process stops before the task reached a channel
            await asyncio.shield(self._requeue(task, started=False))
        except Exception:
            # A bug, not bad input: record it on the task rather than leave the task running forever.
            log.exception("task %s failed unexpectedly", task.id)
            await self._fail(
                task,
                PixelgateError(
                    f"task {task.id} failed inside pixelgate (see the server log); it was not billed",
                    code="internal_error",
                ),
            )
        finally:
            self._running.pop(task.id, None)
            self._running_batch.discard(task.id)
            self._cancelled.discard(task.id)
            self._slot_free.set()

    async def _fail(self, task: Task, error: PixelgateError) -> None:
        if not await self.lifecycle.fail(task.id, self.id, error):
            return  # another worker holds the task now (this one's lease ran out): its ending is theirs
        metrics.tasks_finished.labels(task.request.model, "failed").inc()
        logs.event(
            log,
            "task.failed",
            logging.WARNING,
            task_id=task.id,
            request_id=task.request_id,
            model=task.request.model,
            code=error.code,
            error=error.message,
            ms=round((time.time() - task.created_at) * 1000),
        )

    async def _requeue(self, task: Task, *, started: bool) -> None:
        """Give a task back as this process stops: one that never reached a channel does not count the
        claim as an attempt."""
        if started:
            await self.lifecycle.release(task.id, self.id)
        else:
            await self.lifecycle.defer(task.id, self.id, time.time())
        logs.event(log, "task.requeued", task_id=task.id, reason="shutdown", started=started)

    async def _defer(self, task: Task, unavailable: PixelgateError) -> bool:
        """Put a task that may wait (an asynchronous one, before its deadline) back in the queue until a
        channel can take it; whether it went back. One a caller waits for fails now: the caller is told
        when to come back instead."""
        until = time.time() + (unavailable.retry_after or self.poll_interval)
        if task.deadline_at is None or not self.router.policy.requeue_async:
            return False
        if until > task.deadline_at:
            unavailable.message += (
                f" (the task waited in the queue for a channel since {_clock(task.created_at)} UTC, "
                f"until its deadline at {_clock(task.deadline_at)} UTC)"
            )
            unavailable.args = (unavailable.message,)
            return False
        if not await self.lifecycle.defer(task.id, self.id, until):
            return True  # another worker holds the task now: what becomes of it is theirs
        # Claim it again when it is due, whatever the idle wait: nobody tells when a deferral runs out.
        asyncio.get_running_loop().call_later(max(0.0, until - time.time()), self._wake.set)
        logs.event(
            log,
            "task.deferred",
            task_id=task.id,
            request_id=task.request_id,
            model=task.request.model,
            seconds=round(until - time.time(), 1),
            reason=unavailable.code,
        )
        return True

    async def _execute(self, task: Task) -> None:
        """Run a task to its end: completed, failed (unbilled), or back in the queue to wait for a channel."""
        try:
            outcome = await self._produce(task)
        except (ChannelsUnavailable, RateLimited) as unavailable:
            if not await self._defer(task, unavailable):
                await self._fail(task, unavailable)
            return
        except PixelgateError as error:  # an upstream's, or the blob store's (storage_unavailable)
            await self._fail(task, error)
            return
        await self._complete(task, outcome)

    async def _produce(self, task: Task) -> TaskResult:
        """A task's inputs read, its images made, stored and priced."""
        spec = self.catalog.get(task.request.model)
        inputs = await load_inputs(self.blobs, task.request)
        upstream = UpstreamTasks(self.queue, task, self.id)
        results = await generate_all(self.router, task, spec, inputs, upstream, partial(self._progress, task))
        outcome = await store_outputs(self.blobs, task, results)
        cost = self.prices.cost(spec, outcome.usage, len(outcome.images), batch=task.batch_id is not None)
        return priced(outcome, cost)

    async def _progress(self, task: Task, done: int) -> None:
        await self.queue.set_progress(task.id, self.id, 100 * done // task.request.n)

    async def _complete(self, task: Task, outcome: TaskResult) -> None:
        if not await self.lifecycle.complete(task.id, self.id, outcome):
            return  # another worker holds the task now (this one's lease ran out): its ending is theirs
        model = task.request.model
        metrics.tasks_finished.labels(model, "completed").inc()
        metrics.task_seconds.labels(model, outcome.channel or "").observe(time.time() - task.created_at)
        logs.event(
            log,
            "task.completed",
            task_id=task.id,
            request_id=task.request_id,
            model=model,
            channel=outcome.channel,
            images=len(outcome.images),
            ms=round((time.time() - task.created_at) * 1000),
        )


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))
