"""What a create request brings besides its ``ImageRequest``, and the steps that turn it into a task's
inputs: the conversation it continues read back, its images fetched and checked, and their place in the
task's own folder planned (``InputFiles``) but written only once the request has passed validation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from hashlib import sha256
from itertools import count

import orjson

from pixelgate.core.errors import InvalidRequest, NotFound, PayloadTooLarge
from pixelgate.core.references import (
    ImageFetcher,
    LoadedReference,
    ReferenceInput,
    TurnInput,
    VideoSource,
    load_references,
)
from pixelgate.core.request import (
    SKIP_THOUGHT_SIGNATURE,
    ImageRequest,
    Limits,
    ReferenceImage,
    Turn,
    VideoInput,
)
from pixelgate.core.task import Callback, GeneratedImage, Status
from pixelgate.store.blobs import BlobStore, extension_for
from pixelgate.tasks.idempotency import fingerprint
from pixelgate.tasks.queue import TaskQueue


@dataclass(frozen=True)
class Submission:
    """A create request's inputs besides the ImageRequest, as the dialects hand them over."""

    dialect: str
    caller_waits: bool  # a synchronous request: its task never waits in the queue for a channel
    response_format: str = "url"
    references: list[ReferenceInput] = field(default_factory=list)
    mask: ReferenceInput | None = None
    history: list[TurnInput] = field(default_factory=list)
    videos: list[VideoSource] = field(default_factory=list)
    continue_from: str | None = None  # the earlier task whose conversation it continues
    callback: Callback | None = None
    batch_id: str | None = None  # the batch whose line it is (at batch priority and price)

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
            parts += ["recover-signature"] if turn.recover_signature else []
            for image in turn.images:
                parts += reference(image)
        for video in self.videos:
            parts += [video.mime_type, video.field, video.uri, video.data]
        return fingerprint(*parts)


# A conversation turn with its images: fetched and checked now, or stored already (an earlier task's).
LoadedTurn = tuple[str, str, list[LoadedReference | ReferenceImage], str | None]


@dataclass(frozen=True)
class LoadedInputs:
    references: list[LoadedReference]
    mask: LoadedReference | None
    turns: list[LoadedTurn]  # the conversation continued from, then the turns the caller sent


async def load_inputs(
    submission: Submission,
    request: ImageRequest,
    *,
    queue: TaskQueue,
    fetcher: ImageFetcher,
    limits: Limits,
    owner: str | None,
) -> LoadedInputs:
    """Every input image, fetched (URLs) or decoded (base64) and checked, and the conversation continued."""

    async def turn(sent: TurnInput) -> LoadedTurn:
        loaded = await load_references(list(sent.images), fetcher, limits)
        signature = sent.signature
        if sent.recover_signature and sent.role == "model" and signature is None:
            found = (
                await queue.signature_of(sha256(loaded[0].data).hexdigest(), owner=owner) if loaded else None
            )
            signature = found or SKIP_THOUGHT_SIGNATURE
        images: list[LoadedReference | ReferenceImage] = list(loaded)
        return (sent.role, sent.text, images, signature)

    earlier = (
        await conversation(queue, submission.continue_from, request, owner)
        if submission.continue_from
        else []
    )
    references, mask, sent = await asyncio.gather(
        load_references(submission.references, fetcher, limits),
        load_references([submission.mask] if submission.mask else [], fetcher, limits),
        asyncio.gather(*(turn(t) for t in submission.history)),
    )
    return LoadedInputs(references=references, mask=mask[0] if mask else None, turns=[*earlier, *sent])


async def conversation(
    queue: TaskQueue, task_id: str, request: ImageRequest, owner: str | None
) -> list[LoadedTurn]:
    """The turns of the conversation that task ``task_id`` ended: its own history, its input and its
    output (with the upstream's thought signature)."""
    field_name = request.name("previous_interaction_id")
    try:
        earlier = await queue.get(task_id, owner=owner)
    except NotFound:
        raise NotFound(
            f"{field_name} {task_id!r} names no interaction (unknown, deleted, or stored with store=false)",
            param=field_name,
            code="interaction_not_found",
        ) from None
    if earlier.status is not Status.SUCCEEDED or earlier.result is None:
        state = {Status.QUEUED: "still queued", Status.RUNNING: "still in progress"}.get(
            earlier.status, earlier.status.value
        )
        raise InvalidRequest(
            f"{field_name} {task_id!r} is {state}: a conversation continues only from a completed "
            "interaction" + (" (poll it until it completes)" if not earlier.status.is_terminal else ""),
            param=field_name,
            code="previous_interaction_not_completed",
        )
    if earlier.result_expired():
        raise NotFound(
            f"{field_name} {task_id!r} expired and its images are gone: start a new conversation",
            param=field_name,
            code="interaction_expired",
        )
    previous = earlier.request
    outputs: list[LoadedReference | ReferenceImage] = [
        _as_reference(image) for image in earlier.result.images
    ]
    turns: list[LoadedTurn] = [(t.role, t.text, list(t.images), t.signature) for t in previous.history]
    return [
        *turns,
        ("user", previous.prompt, list(previous.references), None),
        ("model", earlier.result.text or "", outputs, earlier.result.signature),
    ]


class InputFiles:
    """A task's input images in its own folder (``{task id}/ref-0.png``…): ``place`` points the request at
    them, and nothing is written until ``store``, once the request has passed validation, so that a
    refused request stores nothing; ``discard`` removes them again if the task is not saved after all."""

    def __init__(self, blobs: BlobStore, task_id: str, limits: Limits) -> None:
        self.blobs = blobs
        self.task_id = task_id
        self.limits = limits
        self._writes: list[Callable[[], Awaitable[None]]] = []

    def place(self, request: ImageRequest, loaded: LoadedInputs, submission: Submission) -> ImageRequest:
        names = count()
        turns = [
            Turn(
                role=role,
                text=text,
                images=[self._keep(image, f"hist-{next(names)}") for image in images],
                signature=signature,
            )
            for role, text, images, signature in loaded.turns
        ]
        return request.model_copy(
            update={
                "references": [
                    self._keep(ref, f"ref-{i}", ref.kind) for i, ref in enumerate(loaded.references)
                ],
                "mask": self._keep(loaded.mask, "mask") if loaded.mask else None,
                "history": turns,
                "continues": submission.continue_from,
                "videos": [self._keep_video(i, video) for i, video in enumerate(submission.videos)],
            }
        )

    async def store(self) -> None:
        await asyncio.gather(*(write() for write in self._writes))

    async def discard(self) -> None:
        if self._writes:
            await asyncio.shield(self.blobs.delete_prefix(self.task_id))

    def _keep(
        self, source: LoadedReference | ReferenceImage, stem: str, kind: str | None = None
    ) -> ReferenceImage:
        if isinstance(source, ReferenceImage):
            key = f"{self.task_id}/{stem}{extension_for(source.mime_type)}"
            self._writes.append(partial(self.blobs.copy, source.blob_key, key))
            return source.model_copy(update={"blob_key": key})
        key = f"{self.task_id}/{stem}{extension_for(source.info.mime_type)}"
        self._writes.append(partial(self.blobs.put, key, source.data))
        return ReferenceImage(
            blob_key=key,
            mime_type=source.info.mime_type,
            width=source.info.width,
            height=source.info.height,
            kind=kind,
        )

    def _keep_video(self, index: int, video: VideoSource) -> VideoInput:
        if video.data is None:
            return VideoInput(mime_type=video.mime_type, uri=video.uri)
        if len(video.data) > self.limits.max_reference_bytes:
            raise PayloadTooLarge(
                f"{video.field} is {len(video.data):,} bytes: at most {self.limits.max_reference_bytes:,} "
                "can be sent inline; give a larger video by uri",
                param=video.field,
            )
        key = f"{self.task_id}/video-{index}{extension_for(video.mime_type)}"
        self._writes.append(partial(self.blobs.put, key, video.data))
        return VideoInput(mime_type=video.mime_type, blob_key=key)


def _as_reference(image: GeneratedImage) -> ReferenceImage:
    return ReferenceImage(
        blob_key=image.blob_key, mime_type=image.mime_type, width=image.width, height=image.height
    )
