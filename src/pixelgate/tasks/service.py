"""The task service: what the dialects call. Validates, stores the inputs, persists the task before any
answer goes out, wakes the worker, waits, cancels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from itertools import count

import orjson
from sqlalchemy.exc import IntegrityError

from pixelgate.auth.keys import ANONYMOUS, Caller, owner_scope
from pixelgate.auth.ledger import BATCH_SUFFIX, Ledger
from pixelgate.auth.rate import RequestRate
from pixelgate.catalog import Catalog, Prices
from pixelgate.core import logs, metrics
from pixelgate.core.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    StillRunning,
    TaskCancelled,
    one_of,
)
from pixelgate.core.references import (
    ImageFetcher,
    LoadedReference,
    ReferenceInput,
    TurnInput,
    VideoSource,
    load_references,
)
from pixelgate.core.request import (
    ImageRequest,
    Limits,
    ReferenceImage,
    Turn,
    VideoInput,
    check_references,
    validate,
)
from pixelgate.core.task import BATCH_PRIORITY, Callback, GeneratedImage, Status, Task, new_task_id
from pixelgate.routing import Router
from pixelgate.store.blobs import BlobStore, extension_for
from pixelgate.tasks.events import TaskEvents
from pixelgate.tasks.idempotency import IdempotencyKeys, Idempotent, check_key, fingerprint
from pixelgate.tasks.queue import TaskQueue
from pixelgate.tasks.webhook_targets import check_callback
from pixelgate.tasks.worker import Worker

log = logging.getLogger("pixelgate.tasks")


@dataclass(frozen=True)
class _Inputs:
    """A create request's inputs besides the ImageRequest, as the dialects hand them over."""

    references: list[ReferenceInput]
    mask: ReferenceInput | None
    history: list[TurnInput]
    videos: list[VideoSource]
    continue_from: str | None
    dialect: str
    response_format: str
    callback: Callback | None = None
    batch_id: str | None = None
    caller_waits: bool = False

    def fingerprint(self, request: ImageRequest) -> str:
        """What makes two requests the same, for Idempotency-Key: every field and every input's bytes."""

        def reference(ref: ReferenceInput | None) -> list[bytes | str | None]:
            return [] if ref is None else [ref.field, ref.kind, ref.source]

        parts: list[bytes | str | None] = [
            request.model_dump_json(),
            self.dialect,
            self.response_format,
            self.continue_from,
            orjson.dumps(self.callback.to_record(), option=orjson.OPT_SORT_KEYS) if self.callback else None,
        ]
        for ref in [*self.references, self.mask]:
            parts += reference(ref)
        for turn in self.history:
            parts += [turn.role, turn.text, turn.signature]
            for image in turn.images:
                parts += reference(image)
        for video in self.videos:
            parts += [video.mime_type, video.field, video.uri, video.data]
        return fingerprint(*parts)


class TaskService:
    def __init__(
        self,
        *,
        catalog: Catalog,
        limits: Limits,
        queue: TaskQueue,
        events: TaskEvents,
        blobs: BlobStore,
        router: Router,
        fetcher: ImageFetcher,
        worker: Worker | None,
        ledger: Ledger,
        rate: RequestRate,
        prices: Prices,
        sync_wait_seconds: float = 900.0,
        queue_deadline_seconds: float = 24 * 3600,
    ) -> None:
        self.catalog = catalog
        self.limits = limits
        self.queue = queue
        self.idempotency = IdempotencyKeys(queue.db)
        self.events = events
        self.blobs = blobs
        self.router = router
        self.fetcher = fetcher
        self.worker = worker
        self.sync_wait_seconds = sync_wait_seconds
        self.queue_deadline_seconds = queue_deadline_seconds
        self.ledger = ledger
        self.rate = rate
        self.prices = prices

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
        inputs = _Inputs(
            references or [],
            mask,
            history or [],
            videos or [],
            continue_from,
            dialect,
            response_format,
            callback,
            batch_line[0] if batch_line else None,
            caller_waits,
        )
        if batch_line is not None:
            return await self._submit(batch_line[1], request, inputs, caller)
        if idempotency_key is None:
            return await self._submit(new_task_id(), request, inputs, caller)
        claim = Idempotent(owner_scope(caller.owner), check_key(idempotency_key), inputs.fingerprint(request))
        return await self.idempotency.once(
            claim,
            lambda: self._submit(new_task_id(), request, inputs, caller, claim),
            partial(self.queue.get, owner=caller.owner),
        )

    async def _submit(
        self,
        task_id: str,
        request: ImageRequest,
        inputs: _Inputs,
        caller: Caller,
        claim: Idempotent | None = None,
    ) -> Task:
        references, mask, history, videos = inputs.references, inputs.mask, inputs.history, inputs.videos
        continue_from, dialect, response_format = inputs.continue_from, inputs.dialect, inputs.response_format
        owner = caller.owner
        spec = self.catalog.get(request.model, param=request.name("model"))
        if not caller.may_use(spec.id):
            allowed = one_of(caller.models or ())
            raise Forbidden(
                f"key {caller.key_id} ({caller.name!r}) may not use {spec.id}: it may use {allowed}",
                param=request.name("model"),
                code="model_not_allowed",
            )
        batch_id = inputs.batch_id
        if caller.limits.requests_per_minute is not None and caller.key_id is not None and not batch_id:
            await self.rate.hit(caller.key_id, caller.limits.requests_per_minute)
        check_references(request, spec, [ref.kind for ref in references])
        if inputs.callback is not None:
            await check_callback(inputs.callback, self.fetcher.policy)
        self.router.channels_for(spec)  # a model nobody serves fails now, not after queueing
        earlier = await self._conversation(continue_from, request, owner) if continue_from else []
        loaded, loaded_mask, sent_turns = await asyncio.gather(
            load_references(references, self.fetcher, self.limits),
            load_references([mask] if mask else [], self.fetcher, self.limits),
            asyncio.gather(*(self._load_turn(turn) for turn in history or [])),
        )
        # Blob writes wait until the request has passed validation: a refused request stores nothing.
        writes: list[Callable[[], Awaitable[None]]] = []
        names = count()

        def keep(
            source: LoadedReference | ReferenceImage, stem: str, kind: str | None = None
        ) -> ReferenceImage:
            if isinstance(source, ReferenceImage):
                key = f"{task_id}/{stem}{extension_for(source.mime_type)}"
                writes.append(partial(self.blobs.copy, source.blob_key, key))
                return source.model_copy(update={"blob_key": key})
            key = f"{task_id}/{stem}{extension_for(source.info.mime_type)}"
            writes.append(partial(self.blobs.put, key, source.data))
            return ReferenceImage(
                blob_key=key,
                mime_type=source.info.mime_type,
                width=source.info.width,
                height=source.info.height,
                kind=kind,
            )

        turns = [
            Turn(
                role=role,
                text=text,
                images=[keep(image, f"hist-{next(names)}") for image in images],
                signature=signature,
            )
            for role, text, images, signature in [*earlier, *sent_turns]
        ]
        request = request.model_copy(
            update={
                "references": [keep(ref, f"ref-{i}", ref.kind) for i, ref in enumerate(loaded)],
                "mask": keep(loaded_mask[0], "mask") if loaded_mask else None,
                "history": turns,
                "continues": continue_from,
                "videos": [self._keep_video(task_id, i, v, writes) for i, v in enumerate(videos or [])],
            }
        )
        request, spec = validate(request, self.catalog, self.limits)
        estimate_usd = round((self.prices.price_of(spec, batch=bool(batch_id)) or 0.0) * request.n, 6)
        task = Task(
            id=task_id,
            request=request,
            dialect=dialect,
            response_format=response_format,
            owner=owner,
            request_id=logs.request_id.get(),
            callback=inputs.callback,
            priority=BATCH_PRIORITY if batch_id else 0,
            batch_id=batch_id,
            deadline_at=None if inputs.caller_waits else time.time() + self.queue_deadline_seconds,
        )
        # The inputs are stored first; then the Idempotency-Key, the reservation and the task are saved in
        # one transaction, so that a crash leaves all or none (a batch line made again after a crash must
        # not find half; a key must not name a task that was never saved). A request the key's limits
        # refuse, or that another request with its Idempotency-Key beat, has its stored inputs deleted.
        try:
            await asyncio.gather(*(write() for write in writes))
            async with self.queue.db.transaction() as conn:
                if claim is not None:
                    await self.idempotency.keep(conn, claim, task_id)
                await self.ledger.reserve(
                    task_id=task_id,
                    key_id=caller.key_id if not caller.is_admin else None,
                    owner=owner,
                    limits=caller.limits,
                    model=spec.id,
                    dialect=dialect + BATCH_SUFFIX if batch_id else dialect,
                    images=request.n,
                    estimate_usd=estimate_usd,
                    batch_line=bool(batch_id),
                    conn=conn,
                )
                await self.queue.insert(task, conn=conn)
        except IntegrityError:
            if claim is not None and writes:  # this request's own new task id: nobody else's files
                await asyncio.shield(self.blobs.delete_prefix(task_id))
            raise  # else the task exists already (a batch line made before a crash): its files are its own
        except BaseException:
            if writes:
                await asyncio.shield(self.blobs.delete_prefix(task_id))
            raise
        metrics.credits_reserved.inc(estimate_usd)
        logs.event(
            log,
            "task.queued",
            task_id=task.id,
            request_id=task.request_id,
            model=spec.id,
            dialect=dialect,
            images=request.n,
            key_id=caller.key_id,
        )
        if self.worker is not None:
            self.worker.wake()
        return task

    _Turn = tuple[str, str, list[LoadedReference | ReferenceImage], str | None]

    async def _load_turn(self, turn: TurnInput) -> _Turn:
        images: list[LoadedReference | ReferenceImage] = list(
            await load_references(list(turn.images), self.fetcher, self.limits)
        )
        return (turn.role, turn.text, images, turn.signature)

    async def _conversation(self, task_id: str, request: ImageRequest, owner: str | None) -> list[_Turn]:
        """The turns of the conversation that task ``task_id`` ended: its own history, its input and its
        output (with the upstream's thought signature)."""
        field = request.name("previous_interaction_id")
        try:
            earlier = await self.queue.get(task_id, owner=owner)
        except NotFound:
            raise NotFound(
                f"{field} {task_id!r} names no interaction (unknown, deleted, or stored with store=false)",
                param=field,
                code="interaction_not_found",
            ) from None
        if earlier.status is not Status.SUCCEEDED or earlier.result is None:
            state = {Status.QUEUED: "still queued", Status.RUNNING: "still in progress"}.get(
                earlier.status, earlier.status.value
            )
            raise InvalidRequest(
                f"{field} {task_id!r} is {state}: a conversation continues only from a completed "
                "interaction" + (" (poll it until it completes)" if not earlier.status.is_terminal else ""),
                param=field,
                code="previous_interaction_not_completed",
            )
        if earlier.result_expired():
            raise NotFound(
                f"{field} {task_id!r} expired and its images are gone: start a new conversation",
                param=field,
                code="interaction_expired",
            )
        previous = earlier.request
        outputs = [_as_reference(image) for image in earlier.result.images]
        turns: list[TaskService._Turn] = [
            (t.role, t.text, list(t.images), t.signature) for t in previous.history
        ]
        return [
            *turns,
            ("user", previous.prompt, list(previous.references), None),
            ("model", earlier.result.text or "", list(outputs), earlier.result.signature),
        ]

    def _keep_video(
        self, task_id: str, index: int, video: VideoSource, writes: list[Callable[[], Awaitable[None]]]
    ) -> VideoInput:
        if video.data is None:
            return VideoInput(mime_type=video.mime_type, uri=video.uri)
        if len(video.data) > self.limits.max_reference_bytes:
            raise PayloadTooLarge(
                f"{video.field} is {len(video.data):,} bytes: at most {self.limits.max_reference_bytes:,} "
                "can be sent inline; give a larger video by uri",
                param=video.field,
            )
        key = f"{task_id}/video-{index}{extension_for(video.mime_type)}"
        writes.append(partial(self.blobs.put, key, video.data))
        return VideoInput(mime_type=video.mime_type, blob_key=key)

    async def wait(self, task_id: str) -> Task:
        return await self.events.wait(task_id)

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
        task = await self.queue.cancel(task_id, owner=owner)
        logs.event(
            log, "task.cancelled", task_id=task.id, request_id=task.request_id, model=task.request.model
        )
        self._stop_cancelled(task)
        return task

    def _stop_cancelled(self, task: Task) -> None:
        """What follows a cancel saved in the database: the worker running it, its upstream tasks
        (whoever cancels stops them, wherever the task ran or was left in a crash), its waiters."""
        metrics.tasks_finished.labels(task.request.model, "cancelled").inc()
        if self.worker is not None:
            self.worker.cancel_local(task.id)
        self.router.abandon(task.upstream)
        self.events.finished(task)

    async def cancel_batch(self, batch_id: str) -> int:
        """Cancel the queued and running tasks of a stopped batch; how many there were."""
        cancelled = await self.queue.cancel_batch(batch_id)
        for task in cancelled:
            self._stop_cancelled(task)
        if cancelled:
            logs.event(log, "batch.lines_cancelled", batch_id=batch_id, tasks=len(cancelled))
        return len(cancelled)

    async def delete(self, task_id: str, *, owner: str | None = None) -> None:
        """Forget a task and its images; one still running is cancelled first."""
        with contextlib.suppress(Conflict):
            await self.cancel(task_id, owner=owner)
        await self.queue.delete(task_id, owner=owner)
        await self.blobs.delete_prefix(task_id)


def _as_reference(image: GeneratedImage) -> ReferenceImage:
    return ReferenceImage(
        blob_key=image.blob_key, mime_type=image.mime_type, width=image.width, height=image.height
    )
