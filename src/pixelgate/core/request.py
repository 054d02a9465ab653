"""The one internal request type that every dialect parses into (its checks against a model's
capabilities are the catalog's: ``catalog/validation.py``).

A dialect builds an :class:`ImageRequest` in pixelgate's own terms (aspect ratio, image size, references)
and records in ``wire_names`` how its caller spells each field, so that an error names the field the caller
actually sent (``resolution`` for a task-style client, ``image_size`` for a Gemini one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

OutputFormat = Literal["png", "jpeg", "webp"]
OUTPUT_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp")
MIME_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}

MAX_IMAGES_PER_REQUEST = 10
MAX_SEED = 2**31 - 1


class ReferenceImage(BaseModel):
    """An input image, already stored in the blob store (so that an accepted task never loses it)."""

    blob_key: str
    mime_type: str
    width: int
    height: int
    kind: str | None = None  # object, character or style; None counts only against the total


# Gemini accepts this in place of a real thought signature (for history made elsewhere); so does pixelgate.
SKIP_THOUGHT_SIGNATURE = "skip_thought_signature_validator"


class Turn(BaseModel):
    """One earlier turn of a multi-turn edit session, as the provider must see it again.

    Images are stored blobs (copied into the new task's own folder, so that deleting an earlier
    interaction never breaks a later one). ``signature`` is the upstream's opaque thought signature of a
    model turn: Gemini 3 refuses a multi-turn edit whose model turns come back without theirs.
    """

    role: Literal["user", "model"]
    text: str = ""
    images: list[ReferenceImage] = Field(default_factory=list)
    signature: str | None = None


class VideoInput(BaseModel):
    """A video given as context (gemini-3.1-flash-image): a URI passed on as is, or a stored upload."""

    mime_type: str
    uri: str | None = None
    blob_key: str | None = None


class ImageRequest(BaseModel):
    model: str
    prompt: str
    n: int = 1
    aspect_ratio: str | None = None
    image_size: str | None = None
    output_format: OutputFormat = "png"
    output_compression: int | None = None
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    thinking_level: str | None = None
    quality: str | None = None
    references: list[ReferenceImage] = Field(default_factory=list)
    mask: ReferenceImage | None = None
    # Gemini-dialect context: earlier turns, videos, grounding, and what to return beside the image.
    history: list[Turn] = Field(default_factory=list)
    continues: str | None = None  # the task (interaction) whose conversation this one continues
    videos: list[VideoInput] = Field(default_factory=list)
    system_instruction: str | None = None
    search_types: list[str] | None = None  # None: no search grounding; else the kinds of search allowed
    want_text: bool = False  # a short text part beside the image (responseModalities TEXT, a text format)
    # Whether the caller shows the model's thoughts: only the Gemini dialects can; for the others they
    # aren't asked of the upstream at all.
    include_thoughts: bool = False
    user: str | None = None
    requested_size: str | None = None  # the caller's own size string (e.g. "1536x1024"), for the record
    metadata: dict[str, Any] = Field(default_factory=dict)
    # Filled in by validate(): the output pixels the model will produce.
    width: int | None = None
    height: int | None = None
    # How the caller's dialect spells each field, for error messages: {"image_size": "resolution", ...}.
    wire_names: dict[str, str] = Field(default_factory=dict, exclude=True)

    def name(self, field: str) -> str:
        return self.wire_names.get(field, field)

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.output_format]


@dataclass(frozen=True)
class Limits:
    """Input limits with safe defaults; all configurable (see :class:`pixelgate.config.Settings`)."""

    max_prompt_chars: int = 32_000
    max_image_pixels: int = 64 * 1024 * 1024
    max_reference_bytes: int = 20 * 1024 * 1024
    max_history_turns: int = 64
