"""The task service: what the dialects call. Validates, stores the inputs, persists the task before any
answer goes out, wakes the worker, waits, cancels."""

from __future__ import annotations

import asyncio

from pixelgate.catalog import Catalog
from pixelgate.core.errors import TaskCancelled
from pixelgate.core.references import ImageFetcher, ReferenceInput, load_references
from pixelgate.core.request import ImageRequest, Limits, ReferenceImage, check_references, validate
from pixelgate.core.task import Status, Task, new_task_id
from pixelgate.routing import Router
from pixelgate.store.blobs import BlobStore, extension_for
from pixelgate.tasks.events import TaskEvents
from pixelgate.tasks.queue import TaskQueue
from pixelgate.tasks.worker import Worker


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
    ) -> None:
        self.catalog = catalog
        self.limits = limits
        self.queue = queue
        self.events = events
        self.blobs = blobs
        self.router = router
        self.fetcher = fetcher
        self.worker = worker

    async def submit(
        self,
        request: ImageRequest,
        *,
        references: list[ReferenceInput] | None = None,
        mask: ReferenceInput | None = None,
        dialect: str,
        response_format: str = "url",
        owner: str | None = None,
    ) -> Task:
        """Validate ``request``, store its input images and persist it as a queued task."""
        task_id = new_task_id()
        references = references or []
        spec = self.catalog.get(request.model, param=request.name("model"))
        check_references(request, spec, [ref.kind for ref in references])
        self.router.provider_for(spec)  # a model nobody serves fails now, not after queueing
        loaded = await load_references(references, self.fetcher, self.limits)
        loaded_mask = (await load_references([mask], self.fetcher, self.limits))[0] if mask else None
        stored = [
            ReferenceImage(
                blob_key=f"{task_id}/ref-{i}{extension_for(ref.info.mime_type)}",
                mime_type=ref.info.mime_type,
                width=ref.info.width,
                height=ref.info.height,
                kind=ref.kind,
            )
            for i, ref in enumerate(loaded)
        ]
        stored_mask = (
            ReferenceImage(
                blob_key=f"{task_id}/mask{extension_for(loaded_mask.info.mime_type)}",
                mime_type=loaded_mask.info.mime_type,
                width=loaded_mask.info.width,
                height=loaded_mask.info.height,
            )
            if loaded_mask
            else None
        )
        request = request.model_copy(update={"references": stored, "mask": stored_mask})
        request, spec = validate(request, self.catalog, self.limits)

        writes = [self.blobs.put(ref.blob_key, data.data) for ref, data in zip(stored, loaded, strict=True)]
        if stored_mask and loaded_mask:
            writes.append(self.blobs.put(stored_mask.blob_key, loaded_mask.data))
        await asyncio.gather(*writes)

        task = Task(
            id=task_id, request=request, dialect=dialect, response_format=response_format, owner=owner
        )
        await self.queue.insert(task)
        if self.worker is not None:
            self.worker.wake()
        return task

    async def wait(self, task_id: str) -> Task:
        return await self.events.wait(task_id)

    async def wait_for_result(self, task_id: str) -> Task:
        """Wait for a task and raise its error if it did not succeed: the synchronous path."""
        done = await self.wait(task_id)
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
        if self.worker is not None:
            self.worker.cancel_local(task_id)
        self.events.finished(task)
        return task
