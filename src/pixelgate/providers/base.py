"""The one interface every provider implements: turn a validated request into images.

A provider never sees the client's HTTP, keys or billing: it gets a :class:`Generation` (the request, the
model's catalog entry, the model's name upstream and the reference images' bytes) and returns a
:class:`ProviderResult`, or raises one of the errors of :mod:`pixelgate.core.errors`. What it raises
decides what the router does next:

- ``RateLimited``: wait (``retry_after``, else backoff) and try again, here or on another channel;
- ``UpstreamError`` / ``UpstreamTimeout``: this channel failed; try the next one;
- ``UpstreamRejected`` (or any other ``InvalidRequest``): the request itself was refused; never retried.

One provider instance serves one channel (its base URL, key and timeout). Upstream image models make one
image per call; the worker calls ``generate`` once per image asked for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pixelgate.catalog import ModelSpec
from pixelgate.core.request import ImageRequest, Turn
from pixelgate.core.task import SearchStep, Usage
from pixelgate.core.tokens import estimate_text_tokens, known_usage

# The message a worker stops a generation with from outside: the process stops or another worker took
# the task over (which resumes its upstream task, see ``Generation.resume``), or the task was cancelled
# (and whoever cancelled it stops its upstream tasks, see ``Router.abandon``). Either way the upstream
# task is not the provider's to cancel.
LEFT_TO_OTHERS = "stopped here; its upstream work is resumed or stopped elsewhere"


def abandons_upstream_task(exc: BaseException) -> bool:
    """Whether leaving a provider with ``exc`` means it gave up on its upstream task and must cancel it:
    its own failures and timeouts, not a stop from outside."""
    return not (isinstance(exc, asyncio.CancelledError) and LEFT_TO_OTHERS in exc.args)


@dataclass(frozen=True)
class PastTurn:
    """An earlier turn with its images' bytes: what a provider sends back as conversation history."""

    turn: Turn
    images: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Generation:
    request: ImageRequest
    spec: ModelSpec
    references: tuple[bytes, ...] = ()
    mask: bytes | None = None
    index: int = 0  # which of the request's n images this call makes
    history: tuple[PastTurn, ...] = ()
    videos: tuple[bytes | None, ...] = ()  # per request.videos: the uploaded bytes, None for a URI
    upstream_model: str = ""  # the model's name at the channel's upstream (set by the router)
    batch: bool = False  # a batch line: it takes a channel slot only when interactive work leaves one
    # For providers whose upstream runs a task of its own: what they saved with ``remember`` when they
    # created it (given back only on the same channel, after a restart), and how to save it. It answers
    # whether the state was saved with a task still running here: if not, nobody else knows of the
    # upstream task, and the provider must stop it itself when it stops.
    resume: dict[str, Any] | None = None
    remember: Callable[[dict[str, Any]], Awaitable[bool]] | None = field(default=None, repr=False)
    # Names this attempt at this image for good (its task, the image, the channel and the attempt there):
    # sent upstream as ``Idempotency-Key`` where the upstream takes one (another pixelgate does), so that
    # whoever takes the task over after a crash, making the same attempts again, is answered with what
    # the upstream already made instead of paying for it twice. None: no key is sent.
    idempotency_key: str | None = None

    @property
    def model(self) -> str:
        return self.upstream_model or self.spec.upstream_id


@dataclass(frozen=True)
class ProviderImage:
    data: bytes = field(repr=False)
    mime_type: str
    width: int
    height: int
    text: str | None = None


@dataclass(frozen=True)
class ProviderThought:
    text: str
    images: tuple[ProviderImage, ...] = ()


@dataclass(frozen=True)
class ProviderResult:
    images: tuple[ProviderImage, ...]
    usage: Usage
    text: str | None = None
    thoughts: tuple[ProviderThought, ...] = ()
    searches: tuple[SearchStep, ...] = ()
    signature: str | None = None  # opaque: stored with the turn and handed back on the next one
    channel: str | None = None  # the channel that made it (set by the router)


class Provider(Protocol):
    async def generate(self, generation: Generation) -> ProviderResult: ...

    async def check(self) -> str:
        """Ask the upstream whether it answers (and accepts the key), cheaply and without generating.
        Returns a short note (e.g. "12 models"); raises a ``PixelgateError`` saying what is wrong."""
        ...

    def abandon(self, state: dict[str, Any]) -> None:
        """Stop, without waiting, an upstream task this provider saved with ``remember`` and nobody
        polls any more (its pixelgate task was cancelled while queued, or given up on)."""
        ...

    async def close(self) -> None: ...


def idempotent(generation: Generation) -> dict[str, str] | None:
    """The headers that make an upstream's create call idempotent, where there is a key to send."""
    return {"Idempotency-Key": generation.idempotency_key} if generation.idempotency_key else None


def estimated_usage(generation: Generation, *, images: int = 1, text: str | None = None) -> Usage:
    """The catalog's count, for an upstream that reports no usage (and for the emulator): what is known
    before the model answers (``core/tokens.py``: the prompt and the conversation's text, every input image
    by its tiles, the model's tokens per output image) and the text it answered with, if any."""
    request, spec = generation.request, generation.spec
    known = known_usage(
        request,
        output_image_tokens=spec.tokens_for(request.image_size or spec.default_image_size),
        images=images,
    )
    return known + Usage(output_text_tokens=estimate_text_tokens(text) if text else 0)
