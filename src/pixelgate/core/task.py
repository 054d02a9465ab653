"""Tasks: every generation, synchronous or not, is one persisted task."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pixelgate.core.errors import PixelgateError, error_from_record
from pixelgate.core.request import ImageRequest


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


@dataclass(frozen=True)
class GeneratedImage:
    """One stored output image."""

    blob_key: str
    mime_type: str
    width: int
    height: int
    revised_prompt: str | None = None
    text: str | None = None
    # For an image whose generation the upstream signed: its bytes' SHA-256 and that thought signature, so
    # that a client that sends the image back without the signature (chat completions) gets it restored.
    sha256: str | None = None
    signature: str | None = None


@dataclass(frozen=True)
class Usage:
    input_text_tokens: int = 0
    input_image_tokens: int = 0
    output_image_tokens: int = 0
    output_text_tokens: int = 0
    thought_tokens: int = 0  # billed as output by Gemini; the interim thought images are not
    images: int = 0
    cost_usd: float = 0.0

    @property
    def input_tokens(self) -> int:
        return self.input_text_tokens + self.input_image_tokens

    @property
    def output_tokens(self) -> int:
        return self.output_image_tokens + self.output_text_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.thought_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_text_tokens=self.input_text_tokens + other.input_text_tokens,
            input_image_tokens=self.input_image_tokens + other.input_image_tokens,
            output_image_tokens=self.output_image_tokens + other.output_image_tokens,
            output_text_tokens=self.output_text_tokens + other.output_text_tokens,
            thought_tokens=self.thought_tokens + other.thought_tokens,
            images=self.images + other.images,
            cost_usd=round(self.cost_usd + other.cost_usd, 9),  # nano-dollars (catalog/prices.py)
        )


@dataclass(frozen=True)
class Thought:
    """A step of the model's thinking: a summary and up to two interim images (not billed)."""

    text: str
    images: tuple[GeneratedImage, ...] = ()

    def to_record(self) -> dict[str, Any]:
        return {"text": self.text, "images": [image.__dict__ for image in self.images]}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Thought:
        return cls(text=record["text"], images=tuple(GeneratedImage(**i) for i in record["images"]))


@dataclass(frozen=True)
class SearchStep:
    """One search-grounding call the model made, and what it found."""

    search_type: str
    queries: tuple[str, ...]
    suggestions: str  # Gemini's search_suggestions: an HTML snippet the caller must show

    def to_record(self) -> dict[str, Any]:
        return {
            "search_type": self.search_type,
            "queries": list(self.queries),
            "suggestions": self.suggestions,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SearchStep:
        return cls(record["search_type"], tuple(record["queries"]), record["suggestions"])


@dataclass(frozen=True)
class TaskResult:
    """What a task made. ``text``, ``thoughts``, ``searches`` and ``signature`` are those of the first
    image's generation (the Gemini dialects show one conversation turn per task); every image keeps its
    own ``text``."""

    images: tuple[GeneratedImage, ...]
    usage: Usage
    text: str | None = None
    thoughts: tuple[Thought, ...] = ()
    searches: tuple[SearchStep, ...] = ()
    signature: str | None = None  # the upstream's thought signature, sent back with the next turn
    channel: str | None = None  # the channel that made the first image

    def to_record(self) -> dict[str, Any]:
        return {
            "images": [image.__dict__ for image in self.images],
            "usage": self.usage.__dict__,
            "text": self.text,
            "thoughts": [thought.to_record() for thought in self.thoughts],
            "searches": [search.to_record() for search in self.searches],
            "signature": self.signature,
            "channel": self.channel,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> TaskResult:
        return cls(
            images=tuple(GeneratedImage(**image) for image in record["images"]),
            usage=Usage(**record["usage"]),
            text=record.get("text"),
            thoughts=tuple(Thought.from_record(t) for t in record.get("thoughts", ())),
            searches=tuple(SearchStep.from_record(s) for s in record.get("searches", ())),
            signature=record.get("signature"),
            channel=record.get("channel"),
        )


@dataclass(frozen=True)
class Callback:
    """A request's own webhook: Interactions' ``webhook_config`` (``uris`` and ``user_metadata``) or the
    ``callback_url`` of the other dialects. URLs given here replace the owner's registered webhooks for
    this task; with none, the registered ones get the event, with ``user_metadata`` in it."""

    urls: tuple[str, ...] = ()
    user_metadata: dict[str, Any] | None = None
    field: str = "callback_url"  # where the caller gave the URLs, for error messages (not stored)

    def param(self, index: int) -> str:
        return self.field if self.field == "callback_url" else f"{self.field}[{index}]"

    def to_record(self) -> dict[str, Any]:
        return {"urls": list(self.urls), "user_metadata": self.user_metadata}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Callback | None:
        if not record:
            return None
        return cls(urls=tuple(record.get("urls") or ()), user_metadata=record.get("user_metadata"))


# Below every interactive task (priority 0): a batch line runs in the capacity interactive work leaves.
BATCH_PRIORITY = -10


def new_task_id() -> str:
    # The task-style gateway's ids look like task_img_xxxxxxxx; 20 random base32 chars are 100 bits.
    return "task_img_" + secrets.token_hex(10)


@dataclass
class Task:
    id: str
    request: ImageRequest
    status: Status = Status.QUEUED
    # How the task's answer is rendered: the dialect that created it and its response_format.
    dialect: str = "openai"
    response_format: str = "url"
    owner: str | None = None
    progress: int = 0
    priority: int = 0
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    completed_at: float | None = None
    expires_at: float | None = None
    result: TaskResult | None = None
    error_record: dict[str, Any] | None = None
    # Per image index ("0", "1", …): the upstream task that is making it, so that a worker that takes
    # this task over polls that one instead of paying the upstream for a second.
    upstream: dict[str, dict[str, Any]] = field(default_factory=dict)
    request_id: str | None = None  # the request that made it (X-Request-Id), for its log lines
    callback: Callback | None = None  # the request's own webhook, if it gave one
    batch_id: str | None = None  # the batch job whose line it runs (at BATCH_PRIORITY)
    # Until when it may wait in the queue for a channel that cannot take it yet; None when a caller waits
    # for it (a synchronous request), which is then told at once instead.
    deadline_at: float | None = None

    def result_expired(self, now: float | None = None) -> bool:
        """Whether the stored images are past their time (their URLs can no longer be signed)."""
        return self.expires_at is not None and self.expires_at < (now if now is not None else time.time())

    @property
    def error(self) -> PixelgateError | None:
        return error_from_record(self.error_record) if self.error_record else None
