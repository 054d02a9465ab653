"""The one interface every provider implements: turn a validated request into images.

A provider never sees the client's HTTP, keys or billing: it gets a :class:`Generation` (the request, the
model's catalog entry and the reference images' bytes) and returns a :class:`ProviderResult`, or raises
one of the errors of :mod:`pixelgate.core.errors` (``RateLimited``, ``UpstreamError``, ``UpstreamTimeout``).
Upstream image models make one image per call; the worker calls ``generate`` once per image asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pixelgate.catalog import ModelSpec
from pixelgate.core.request import ImageRequest, Turn
from pixelgate.core.task import SearchStep, Usage


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


class Provider(Protocol):
    name: str

    def serves(self, spec: ModelSpec) -> bool:
        """Whether this provider can make images for ``spec``."""
        ...

    async def generate(self, generation: Generation) -> ProviderResult: ...

    async def close(self) -> None: ...


def estimate_text_tokens(text: str) -> int:
    # About four bytes of UTF-8 per token: the usual rule of thumb for Gemini's tokenizer.
    return max(1, (len(text.encode()) + 3) // 4)


def image_input_tokens(width: int, height: int) -> int:
    """Gemini's count for an input image: 258 tokens if both sides are at most 384 px, else 258 per
    768x768 tile."""
    if width <= 384 and height <= 384:
        return 258
    return 258 * (-(-width // 768)) * (-(-height // 768))
