"""The task service: what the dialects call. A create request becomes a task in named steps (admit, load its
inputs, place them, validate, accept); then the service waits for a task, reads it, cancels it, deletes it.
The lifecycle (``lifecycle.py``) saves and ends tasks; the worker runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial

from sqlalchemy.exc import IntegrityError

from pixelgate.auth.keys import ANONYMOUS, Caller, owner_scope
from pixelgate.auth.rate import RequestRate
from pixelgate.catalog import Catalog, ModelSpec, Prices
from pixelgate.catalog.validation import check_references, validate
from pixelgate.core import logs, metrics
from pixelgate.core.errors import Conflict, Forbidden, StillRunning, TaskCancelled, one_of
from pixelgate.core.references import ImageFetcher, ReferenceInput, TurnInput, VideoSource
from pixelgate.core.request import ImageRequest, Limits
from pixelgate.core.task import BATCH_PRIORITY, Callback, Status, Task, new_task_id
from pixelgate.routing import Router
from pixelgate.store.blobs import BlobStore
from pixelgate.tasks.idempotency import IdempotencyKeys, Idempotent, check_key
from pixelgate.tasks.lifecycle import Admission, Lifecycle
from pixelgate.tasks.submission import InputFiles, Submission, load_inputs
from pixelgate.tasks.waiting import Waiters
from pixelgate.tasks.webhook_targets import check_callback
from pixelgate.tasks.worker import Worker

log = logging.getLogger("pixelgate.tasks")


class TaskService:
    def __init__(
        self,
        *,
        catalog: Catalog,
        limits: Limits,
        lifecycle: Lifecycle,
        waiters: Waiters,
        blobs: BlobStore,
        router: Router,
        fetcher: ImageFetcher,
        idempotency: IdempotencyKeys,
        rate: RequestRate,
        prices: Prices,
        runner: Worker | None = None,
        sync_wait_seconds: float = 900.0,
        queue_deadline_seconds: float = 24 * 3600,
    ) -> None:
        self.catalog = catalog
        self.limits = limits
        self.lifecycle = lifecycle
        self.queue = lifecycle.queue
        self.waiters = waiters
        self.blobs = blobs
        self.router = router
        self.fetcher = fetcher
        self.idempotency = idempotency
        self.rate = rate
        self.prices = prices
        # This process's worker, which runs the synchronous requests it can take at once without queueing
        # them (None: a process that only accepts, ``--no-workers``).
        self.runner = runner
        self.sync_wait_seconds = sync_wait_seconds
        self.queue_deadline_seconds = queue_deadline_seconds

    async def submit(
        self,
        request: ImageRequest,
        *,
        references: list[ReferenceInput] | None = None,
        mask: ReferenceInput | None = None,
        history: list[TurnInput] | None = None,
        videos: list[VideoSource] | None = None,
        continue_from: str | None = None,
        dialect: str,
        caller_waits: bool,
        response_format: str = "url",
        caller: Caller = ANONYMOUS,
        idempotency_key: str | None = None,
        callback: Callback | None = None,
        batch_line: tuple[str, str] | None = None,
    ) -> Task:
        """Validate ``request``, store its input images and persist it as a queued task.

        ``continue_from`` names an earlier task of the same owner whose conversation this one continues
        (Interactions' ``previous_interaction_id``); ``history`` holds turns the caller sent itself.
        Every image of the conversation is copied into the new task's own folder. With an
        ``idempotency_key`` the same request sent again gets this one's task (see ``idempotency.py``).
        ``callback`` is the request's own webhook (its URLs pass the same address checks as image URLs).
        A ``batch_line`` (batch id, task id) runs at batch priority and price, outside the key's
        requests per minute and concurrent tasks. A task the caller does not wait for (``caller_waits``
        false) may wait in the queue for a channel, up to ``queue_deadline_seconds``; one it waits for is
        failed at once when no channel can take it, so that the caller hears when to come back.
        """
        submission = Submission(
            dialect=dialect,
            caller_waits=caller_waits,
            response_format=response_format,
            references=references or [],
            mask=mask,
            history=history or [],
            videos=videos or [],
            continue_from=continue_from,
            callback=callback,
            batch_id=batch_line[0] if batch_line else None,
        )
        if batch_line is not None:
            return await self._submit(batch_line[1], request, submission, caller)
        if idempotency_key is None:
            return await self._submit(new_task_id(), request, submission, caller)
        claim = Idempotent(
            owner_scope(caller.owner), check_key(idempotency_key), submission.fingerprint(request)
        )
        return await self.idempotency.once(
            claim,
            lambda: self._submit(new_task_id(), request, submission, caller, claim),
            partial(self.queue.get, owner=caller.owner),
        )

    async def _submit(
        self,
        task_id: str,
        request: ImageRequest,
        submission: Submission,
        caller: Caller,
        claim: Idempotent | None = None,
    ) -> Task:
        spec = await self._admit(request, submission, caller)
        loaded = await load_inputs(
            submission,
            request,
            queue=self.queue,
            fetcher=self.fetcher,
            limits=self.limits,
            owner=caller.owner,
        )
        files = InputFiles(self.blobs, task_id, self.limits)
        request, spec = validate(files.place(request, loaded, submission), self.catalog, self.limits)
        task = Task(
            id=task_id,
            request=request,
            dialect=submission.dialect,
            response_format=submission.response_format,
            owner=caller.owner,
            request_id=logs.request_id.get(),
            callback=submission.callback,
            priority=BATCH_PRIORITY if submission.batch_id else 0,
            batch_id=submission.batch_id,
            deadline_at=None if submission.caller_waits else time.time() + self.queue_deadline_seconds,
        )
        estimate = self.prices.cost_of(spec, request, batch=task.batch_id is not None) or 0.0
        task = await self._accept(
            task, Admission(caller, estimate, claim), files, here=submission.caller_waits
        )
        metrics.credits_reserved.inc(estimate)
        logs.event(
            log,
            "task.queued",
            task_id=task.id,
            request_id=task.request_id,
            model=spec.id,
            dialect=task.dialect,
            images=request.n,
            key_id=caller.key_id,
        )
        return task

    async def _admit(self, request: ImageRequest, submission: Submission, caller: Caller) -> ModelSpec:
        """What can be refused before anything is fetched: a model the key may not use (or nobody serves),
        the key's requests per minute, references of kinds the model does not take, a callback URL
        pointing where it may not."""
        spec = self.catalog.get(request.model, param=request.name("model"))
        if not caller.may_use(spec.id):
            allowed = one_of(caller.models or ())
            raise Forbidden(
                f"key {caller.key_id} ({caller.name!r}) may not use {spec.id}: it may use {allowed}",
                param=request.name("model"),
                code="model_not_allowed",
            )
        rpm = caller.limits.requests_per_minute
        if rpm is not None and caller.key_id is not None and not submission.batch_id:
            await self.rate.hit(caller.key_id, rpm)
        check_references(request, spec, [ref.kind for ref in submission.references])
        if submission.callback is not None:
            await check_callback(submission.callback, self.fetcher.policy)
        self.router.channels_for(spec)  # a model nobody serves fails now, not after queueing
        return spec

    async def _accept(self, task: Task, admission: Admission, files: InputFiles, *, here: bool) -> Task:
        """Store the inputs, then save the task with its reservation (and Idempotency-Key) in one
        transaction, so that a crash leaves all or none: a batch line made again after a crash must not
        find half, a key must not name a task that was never saved. A request the key's limits refuse, or
        that another request with its Idempotency-Key beat, has its stored inputs deleted.

        With ``here`` (a caller waits for it) and a free slot in this process's worker, the task is saved
        claimed by it and starts at once: the task as saved is returned."""
        runner = self.runner if here else None
        claimed = runner.claim_here(task) if runner is not None else None
        try:
            await files.store()
            if claimed is None:
                await self.lifecycle.accept(task, admission)
                return task
            task, lease = claimed
            await self.lifecycle.accept(task, admission, lease=lease)
        except BaseException as exc:
            if runner is not None and claimed is not None:
                runner.let_go()
            # After an IntegrityError without an Idempotency-Key, the task exists already (a batch line
            # made before a crash): its files are its own. With one, the id was this request's own.
            if not isinstance(exc, IntegrityError) or admission.claim is not None:
                await files.discard()
            raise
        assert runner is not None
        self.waiters.expect(task.id)  # before it can end: its end is then handed over, never read back
        runner.run_here(task)
        return task

    async def wait(self, task_id: str) -> Task:
        return await self.waiters.wait(task_id)

    async def wait_for_result(self, task_id: str) -> Task:
        """Wait for a task and raise its error if it did not succeed: the synchronous path. Past
        ``sync_wait_seconds`` the caller is told to poll; the task itself goes on."""
        try:
            async with asyncio.timeout(self.sync_wait_seconds):
                done = await self.wait(task_id)
        except TimeoutError:
            raise StillRunning(
                f"task {task_id} is still running after {self.sync_wait_seconds:g} s, the longest a "
                f"synchronous call waits (--sync-wait): it goes on, and GET /v1/tasks/{task_id} (or "
                f"/v1beta/interactions/{task_id}) gives its "
                "images once it is done; ask asynchronously for work that takes this long"
            ) from None
        if done.status is Status.CANCELLED:
            raise TaskCancelled(f"task {done.id} was cancelled before it finished", code="task_cancelled")
        error = done.error
        if error is not None:
            raise error
        return done

    async def get(self, task_id: str, *, owner: str | None = None) -> Task:
        return await self.queue.get(task_id, owner=owner)

    async def cancel(self, task_id: str, *, owner: str | None = None) -> Task:
        """Cancel a task; what follows (its worker stops, its upstream tasks are stopped, its waiters are
        told) listens for ``TaskCancelled``."""
        task = await self.lifecycle.cancel(task_id, owner=owner)
        logs.event(
            log, "task.cancelled", task_id=task.id, request_id=task.request_id, model=task.request.model
        )
        return task

    async def cancel_batch(self, batch_id: str) -> int:
        """Cancel the queued and running tasks of a stopped batch; how many there were."""
        cancelled = await self.lifecycle.cancel_batch(batch_id)
        if cancelled:
            logs.event(log, "batch.lines_cancelled", batch_id=batch_id, tasks=len(cancelled))
        return len(cancelled)

    async def delete(self, task_id: str, *, owner: str | None = None, keep_images: bool = False) -> None:
        """Forget a task and its images; one still running is cancelled first. ``keep_images``: the
        caller deletes them with :meth:`delete_images` once an answer that reads them is sent."""
        with contextlib.suppress(Conflict):
            await self.cancel(task_id, owner=owner)
        await self.queue.delete(task_id, owner=owner)
        if not keep_images:
            await self.delete_images(task_id)

    async def delete_images(self, task_id: str) -> None:
        await self.blobs.delete_prefix(task_id)
