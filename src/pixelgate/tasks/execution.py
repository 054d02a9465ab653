"""One run of a task, step by step: its inputs read back from the blob store, its images made (one
generation per image, all or none), its outputs stored. The worker (``worker.py``) decides when a task runs
and how its run ends; these are what it runs, each a function a test can call alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from pixelgate.catalog import ModelSpec
from pixelgate.core.images import convert_image
from pixelgate.core.request import MIME_TYPES, ImageRequest
from pixelgate.core.slots import SlotsClosed
from pixelgate.core.task import GeneratedImage, Task, TaskResult, Thought, Usage
from pixelgate.providers.base import LEFT_TO_OTHERS, Generation, PastTurn, ProviderImage, ProviderResult
from pixelgate.routing import Router
from pixelgate.store.blobs import BlobStore, extension_for
from pixelgate.tasks.queue import TaskQueue

log = logging.getLogger("pixelgate.worker")


@dataclass(frozen=True)
class Inputs:
    """A task's input images as bytes, as the providers take them."""

    references: tuple[bytes, ...] = ()
    mask: bytes | None = None
    history: tuple[PastTurn, ...] = ()
    videos: tuple[bytes | None, ...] = ()  # per request.videos: the uploaded bytes, None for a URI


async def load_inputs(blobs: BlobStore, request: ImageRequest) -> Inputs:
    async def load(keys: list[str]) -> tuple[bytes, ...]:
        return tuple(await asyncio.gather(*(blobs.get(key) for key in keys)))

    async def video(key: str | None) -> bytes | None:
        return await blobs.get(key) if key else None

    turns = await asyncio.gather(
        *(load([image.blob_key for image in turn.images]) for turn in request.history)
    )
    return Inputs(
        references=await load([reference.blob_key for reference in request.references]),
        mask=await blobs.get(request.mask.blob_key) if request.mask else None,
        history=tuple(
            PastTurn(turn=t, images=images) for t, images in zip(request.history, turns, strict=True)
        ),
        videos=tuple(await asyncio.gather(*(video(v.blob_key) for v in request.videos))),
    )


class UpstreamTasks:
    """The upstream tasks a task's images are being made by, saved with the task as each is created, so
    that whoever takes the task over polls them instead of paying for new ones."""

    def __init__(self, queue: TaskQueue, task: Task, worker_id: str) -> None:
        self.queue = queue
        self.task_id = task.id
        self.worker_id = worker_id
        self.known = dict(task.upstream)
        self._saving = asyncio.Lock()

    def of(self, index: int) -> dict[str, Any] | None:
        return self.known.get(str(index))

    async def remember(self, index: int, state: dict[str, Any]) -> bool:
        """Whether it was saved with a task this worker still runs (if not, nobody else knows of it)."""
        self.known[str(index)] = state
        try:
            async with self._saving:  # one write at a time, each of everything known so far
                return await self.queue.set_upstream(self.task_id, self.worker_id, dict(self.known))
        except Exception:
            # Only resumption after a crash is lost; the generation itself goes on.
            log.exception("saving the upstream task of %s failed", self.task_id)
            return False


async def generate_all(
    router: Router,
    task: Task,
    spec: ModelSpec,
    inputs: Inputs,
    upstream: UpstreamTasks,
    progress: Callable[[int], Awaitable[None]],
) -> list[ProviderResult]:
    """Every image of the task, one generation each, through the router; ``progress(done)`` after each
    image but the last."""
    request = task.request
    done = 0

    async def one(index: int) -> ProviderResult:
        nonlocal done
        result = await router.generate(
            Generation(
                request=request,
                spec=spec,
                references=inputs.references,
                mask=inputs.mask,
                index=index,
                history=inputs.history,
                videos=inputs.videos,
                resume=upstream.of(index),
                batch=task.batch_id is not None,
                remember=lambda state: upstream.remember(index, state),
                idempotency_key=f"pixelgate-{task.id}-{index}",
            )
        )
        done += 1
        if done < request.n:
            await progress(done)
        return result

    return await _all_or_none([one(index) for index in range(request.n)])


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


async def store_outputs(blobs: BlobStore, task: Task, results: list[ProviderResult]) -> TaskResult:
    """The images made, in the format asked for, and the first generation's thoughts, written to the blob
    store; usage summed over the generations, not yet priced."""
    request = task.request
    outputs = _Outputs(blobs, task.id)
    images: list[GeneratedImage] = []
    usage = Usage()
    for result in results:
        usage = usage + result.usage
        for produced in result.images:
            final = await _in_format(produced, request.output_format, request.output_compression)
            images.append(
                outputs.add(final, "out", revised_prompt=request.prompt, signature=result.signature)
            )
    # Thoughts of the first generation: the Gemini dialects show one turn per task. An interim image that
    # is the final one (seed 004: the last thought image is the final render) is stored once.
    first = results[0]
    thoughts = tuple(
        Thought(text=thought.text, images=tuple(outputs.add(i, "thought") for i in thought.images))
        for thought in first.thoughts
    )
    await outputs.flush()
    return TaskResult(
        images=tuple(images),
        usage=usage,
        text=first.text,
        thoughts=thoughts,
        searches=first.searches,
        signature=first.signature,
        channel=first.channel,
    )


def priced(outcome: TaskResult, cost_usd: float | None) -> TaskResult:
    """``outcome`` with its cost (None: the model has no price), as ``Prices.cost`` puts it."""
    if cost_usd is None:
        return outcome
    return replace(outcome, usage=replace(outcome.usage, cost_usd=cost_usd))


async def _in_format(image: ProviderImage, output_format: str, compression: int | None) -> ProviderImage:
    """The image in the format the caller asked for; re-encoded only if the upstream chose another."""
    wanted = MIME_TYPES[output_format]
    if image.mime_type == wanted:
        return image
    data = await asyncio.to_thread(convert_image, image.data, output_format, compression)
    return replace(image, data=data, mime_type=wanted)


class _Outputs:
    """Names and writes a task's output blobs (``out-0.png``, ``thought-0.png``), each image once."""

    def __init__(self, blobs: BlobStore, task_id: str) -> None:
        self.blobs = blobs
        self.task_id = task_id
        self._stored: dict[int, GeneratedImage] = {}
        self._counts: dict[str, int] = {}
        self._writes: list[Awaitable[None]] = []

    def add(
        self,
        produced: ProviderImage,
        kind: str,
        revised_prompt: str | None = None,
        signature: str | None = None,
    ) -> GeneratedImage:
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
            sha256=hashlib.sha256(produced.data).hexdigest() if signature else None,
            signature=signature,
        )
        self._stored[id(produced)] = image
        return image

    async def flush(self) -> None:
        await asyncio.gather(*self._writes)
        self._writes.clear()
