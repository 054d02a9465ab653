"""The worker: claims tasks, runs them through the router's provider, stores the images, settles the task.

One worker runs in each server process (``run_workers``); any number of processes may share a database.
A lease heartbeat keeps the tasks this worker runs; a task cancelled through the API (in this process or
another) is noticed at the next heartbeat, or at once when the cancel came through this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from functools import partial
from typing import Any

from pixelgate.catalog import Catalog, Prices
from pixelgate.core import logs, metrics
from pixelgate.core.errors import ChannelsUnavailable, PixelgateError, RateLimited, UpstreamError
from pixelgate.core.images import convert_image
from pixelgate.core.request import MIME_TYPES
from pixelgate.core.slots import SlotsClosed
from pixelgate.core.task import GeneratedImage, Task, TaskResult, Thought, Usage
from pixelgate.providers.base import LEFT_TO_OTHERS, Generation, PastTurn, ProviderImage, ProviderResult
from pixelgate.routing import Router
from pixelgate.store.blobs import BlobStore, extension_for
from pixelgate.tasks.events import TaskEvents
from pixelgate.tasks.queue import TaskQueue

log = logging.getLogger("pixelgate.worker")


class Worker:
    def __init__(
        self,
        *,
        queue: TaskQueue,
        events: TaskEvents,
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
        self.queue = queue
        self.events = events
        self.router = router
        self.catalog = catalog
        self.blobs = blobs
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.prices = prices or Prices()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._running_batch: set[str] = set()  # the ids in _running that are batch lines
        # Batch lines may hold all but a quarter of the slots: interactive work always finds room.
        self.batch_slots = concurrency - concurrency // 4
        self.on_ended: Callable[[Task], None] | None = None  # told of every task that ends here
        self._cancelled: set[str] = set()
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stopping = False
        self._loops: list[asyncio.Task[None]] = []

    @property
    def alive(self) -> bool:
        """Claiming and heartbeating: started, not stopping, and neither loop has died."""
        return bool(self._loops) and not self._stopping and not any(loop.done() for loop in self._loops)

    def wake(self) -> None:
        """Claim now rather than at the next poll: a task was just queued in this process."""
        self._wake.set()

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

    def cancel_local(self, task_id: str) -> None:
        """Stop running ``task_id`` here: it was cancelled through the API (which stops its upstream
        tasks), or another worker holds it now (and resumes them)."""
        running = self._running.get(task_id)
        if running is not None:
            self._cancelled.add(task_id)
            running.cancel(LEFT_TO_OTHERS)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            self._wake.clear()
            try:
                claimed = await self.queue.claim(
                    self.id,
                    free,
                    self.lease_seconds,
                    batch_limit=max(0, self.batch_slots - len(self._running_batch)),
                )
            except Exception:
                log.exception("claiming tasks failed; retrying in %.1f s", self.poll_interval)
                claimed = []
            for task in claimed:
                self._running[task.id] = asyncio.create_task(self._run(task), name=f"task-{task.id}")
                if task.batch_id is not None:
                    self._running_batch.add(task.id)
            if not claimed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)

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
            if self.on_ended is not None:
                self.on_ended(task)
            if not self._stopping and self.events.has_waiters(task.id):
                with contextlib.suppress(Exception):
                    ended = await self.queue.get(task.id)
                    if ended.status.is_terminal:  # not one that went back to the queue
                        self.events.finished(ended)

    async def _fail(self, task: Task, error: PixelgateError) -> None:
        if not await self.queue.fail(task.id, self.id, error):
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
            await self.queue.release(task.id, self.id)
        else:
            await self.queue.defer(task.id, self.id, time.time())
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
        if not await self.queue.defer(task.id, self.id, until):
            return True  # another worker holds the task now: what becomes of it is theirs
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

    async def _load(self, keys: list[str]) -> tuple[bytes, ...]:
        return tuple(await asyncio.gather(*(self.blobs.get(key) for key in keys)))

    async def _execute(self, task: Task) -> None:
        request = task.request
        spec = self.catalog.get(request.model)
        references = await self._load([r.blob_key for r in request.references])
        mask = await self.blobs.get(request.mask.blob_key) if request.mask else None
        history = tuple(
            PastTurn(turn=turn, images=images)
            for turn, images in zip(
                request.history,
                await asyncio.gather(*(self._load([i.blob_key for i in t.images]) for t in request.history)),
                strict=True,
            )
        )
        videos = tuple(
            await asyncio.gather(
                *(self.blobs.get(v.blob_key) if v.blob_key else _none() for v in request.videos)
            )
        )

        done = 0
        upstream = dict(task.upstream)
        saving = asyncio.Lock()

        async def remember(index: int, state: dict[str, Any]) -> bool:
            upstream[str(index)] = state
            try:
                async with saving:  # one write at a time, each of everything known so far
                    return await self.queue.set_upstream(task.id, self.id, dict(upstream))
            except Exception:
                # Only resumption after a crash is lost; the generation itself goes on.
                log.exception("saving the upstream task of %s failed", task.id)
                return False

        async def one(index: int) -> ProviderResult:
            nonlocal done
            result = await self.router.generate(
                Generation(
                    request=request,
                    spec=spec,
                    references=references,
                    mask=mask,
                    index=index,
                    history=history,
                    videos=videos,
                    resume=upstream.get(str(index)),
                    batch=task.batch_id is not None,
                    remember=partial(remember, index),
                    idempotency_key=f"pixelgate-{task.id}-{index}",
                )
            )
            done += 1
            if request.n > 1 and done < request.n:
                await self.queue.set_progress(task.id, self.id, 100 * done // request.n)
            return result

        try:
            results = await _all_or_none([one(i) for i in range(request.n)])
        except (ChannelsUnavailable, RateLimited) as unavailable:
            if not await self._defer(task, unavailable):
                await self._fail(task, unavailable)
            return
        except PixelgateError as error:
            await self._fail(task, error)
            return

        outputs = _Outputs(self.blobs, task.id)
        images: list[GeneratedImage] = []
        usage = Usage()
        for result in results:
            usage = usage + result.usage
            for produced in result.images:
                final = await _in_format(produced, request.output_format, request.output_compression)
                images.append(outputs.add(final, "out", revised_prompt=request.prompt))
        # Thoughts of the first generation: the Gemini dialects show one turn per task. An interim image
        # that is the final one (seed 004: the last thought image is the final render) is stored once.
        first = results[0]
        thoughts = tuple(
            Thought(text=thought.text, images=tuple(outputs.add(i, "thought") for i in thought.images))
            for thought in first.thoughts
        )
        await outputs.flush()
        price = self.prices.price_of(spec, batch=task.batch_id is not None)
        if price is not None:
            usage = usage + Usage(cost_usd=round(price * len(images), 6))
        outcome = TaskResult(
            images=tuple(images),
            usage=usage,
            text=first.text,
            thoughts=thoughts,
            searches=first.searches,
            signature=first.signature,
            channel=first.channel,
        )
        if not await self.queue.complete(task.id, self.id, outcome):
            return  # another worker holds the task now (this one's lease ran out): its ending is theirs
        metrics.tasks_finished.labels(spec.id, "completed").inc()
        metrics.task_seconds.labels(spec.id, first.channel or "").observe(time.time() - task.created_at)
        logs.event(
            log,
            "task.completed",
            task_id=task.id,
            request_id=task.request_id,
            model=spec.id,
            channel=first.channel,
            images=len(images),
            ms=round((time.time() - task.created_at) * 1000),
        )


async def _all_or_none(calls: list[Coroutine[Any, Any, ProviderResult]]) -> list[ProviderResult]:
    """Every image of a task, or the first error: once one image fails the task fails, so the others
    are stopped (and their upstream tasks cancelled) rather than made and paid for upstream."""
    jobs = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*jobs))
    except BaseException as exc:
        # A stop from outside, or the channels closing as the process stops, is passed on as such: the
        # others' upstream tasks are then resumed by whoever takes the task over, not cancelled.
        why = None
        if isinstance(exc, SlotsClosed):
            why = LEFT_TO_OTHERS
        elif isinstance(exc, asyncio.CancelledError) and exc.args:
            why = exc.args[0]
        for job in jobs:
            job.cancel(why)
        await asyncio.gather(*jobs, return_exceptions=True)
        raise


async def _in_format(image: ProviderImage, output_format: str, compression: int | None) -> ProviderImage:
    """The image in the format the caller asked for; re-encoded only if the upstream chose another."""
    wanted = MIME_TYPES[output_format]
    if image.mime_type == wanted:
        return image
    data = await asyncio.to_thread(convert_image, image.data, output_format, compression)
    return replace(image, data=data, mime_type=wanted)


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


async def _none() -> None:
    """A video given by URI has no stored bytes."""
    return None


class _Outputs:
    """Names and writes a task's output blobs (``out-0.png``, ``thought-0.png``), each image once."""

    def __init__(self, blobs: BlobStore, task_id: str) -> None:
        self.blobs = blobs
        self.task_id = task_id
        self._stored: dict[int, GeneratedImage] = {}
        self._counts: dict[str, int] = {}
        self._writes: list[Awaitable[None]] = []

    def add(self, produced: ProviderImage, kind: str, revised_prompt: str | None = None) -> GeneratedImage:
        known = self._stored.get(id(produced))
        if known is not None:
            return known
        number = self._counts.get(kind, 0)
        self._counts[kind] = number + 1
        key = f"{self.task_id}/{kind}-{number}{extension_for(produced.mime_type)}"
        self._writes.append(self.blobs.put(key, produced.data))
        image = GeneratedImage(
            blob_key=key,
            mime_type=produced.mime_type,
            width=produced.width,
            height=produced.height,
            revised_prompt=revised_prompt,
            text=produced.text,
        )
        self._stored[id(produced)] = image
        return image

    async def flush(self) -> None:
        await asyncio.gather(*self._writes)
        self._writes.clear()
