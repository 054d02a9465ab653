"""The offline emulator: every catalog model, with its exact output pixels, and no network.

The picture is a pure function of the request: the same model, prompt, size, seed, references, history
and index give byte-identical images. It shows the prompt, the model, the size and thumbnails of the
references and of the conversation's earlier images, and says plainly that it is an emulation. Simulated
latency and injected faults (429 with Retry-After, 5xx, timeouts) let people exercise their clients'
retry logic against it.

It behaves like the Gemini image models where clients can tell: thinking models return a thought (with
a draft and the final image as interim thought images when they think hard), a text part when text is
asked for, emulated search-grounding steps, and a thought signature with every turn that it checks when
the turn comes back as history (Gemini 3 refuses multi-turn edits without them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import textwrap
from typing import Any

from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel, ConfigDict, Field

from pixelgate.catalog import ModelSpec
from pixelgate.core.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from pixelgate.core.faults import FaultPlan, FaultSpec
from pixelgate.core.images import encode_image
from pixelgate.core.request import SKIP_THOUGHT_SIGNATURE
from pixelgate.core.task import SearchStep, Usage
from pixelgate.core.thumbnails import thumbnail
from pixelgate.core.tokens import estimate_text_tokens
from pixelgate.providers.base import (
    Generation,
    ProviderImage,
    ProviderResult,
    ProviderThought,
    estimated_usage,
)
from pixelgate.providers.registry import ProviderKind

_SIGNATURE_KEY = b"pixelgate-emulator-thought-signature"


class Options(BaseModel):
    """A channel's ``options`` for the emulator (``--emulate`` fills them from its flags)."""

    model_config = ConfigDict(extra="forbid")

    latency: float = Field(0.0, ge=0)
    faults: FaultSpec = ""
    fault_seed: int | None = None
    retry_after: float = Field(2.0, ge=0)
    timeout_after: float = Field(30.0, ge=0)


def build(config: object, api_key: str | None, options: Options) -> EmulatorProvider:
    return EmulatorProvider(
        latency=options.latency,
        faults=FaultPlan.parse(options.faults),
        fault_seed=options.fault_seed,
        retry_after=options.retry_after,
        timeout_after=options.timeout_after,
    )


KIND = ProviderKind(
    name="emulator",
    options=Options,
    build=build,
    description="The offline emulator: every catalog model, its exact output pixels, no network",
)


class EmulatorProvider:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: FaultPlan | None = None,
        fault_seed: int | None = None,
        retry_after: float = 2.0,
        timeout_after: float = 30.0,
    ) -> None:
        self.latency = latency
        self.faults = faults or FaultPlan()
        self._rng = random.Random(fault_seed)
        self.retry_after = retry_after
        self.timeout_after = timeout_after

    async def check(self) -> str:
        return "offline emulator: always answers"

    def abandon(self, state: dict[str, Any]) -> None:
        return None  # it keeps no tasks

    async def close(self) -> None:
        return None

    async def generate(self, generation: Generation) -> ProviderResult:
        fault = self.faults.pick(self._rng)
        if fault == "timeout":
            await asyncio.sleep(self.timeout_after)
            raise UpstreamTimeout(
                f"the emulated upstream did not answer within {self.timeout_after:g} s (injected timeout)"
            )
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault == "429":
            raise RateLimited(
                f"the emulated upstream is rate limiting (injected 429): retry after {self.retry_after:g} s",
                retry_after=self.retry_after,
            )
        if fault is not None:
            raise UpstreamError(
                f"the emulated upstream answered HTTP {fault} (injected fault)", code=f"upstream_http_{fault}"
            )
        check_signatures(generation)
        image = await asyncio.to_thread(render, generation)
        request, spec = generation.request, generation.spec
        thoughts = await asyncio.to_thread(think, generation, image)
        text = _answer_text(generation, image) if request.want_text else None
        usage = estimated_usage(generation, text=text) + Usage(
            thought_tokens=sum(estimate_text_tokens(t.text) * 8 for t in thoughts)
        )
        return ProviderResult(
            images=(image,),
            usage=usage,
            text=text,
            thoughts=thoughts,
            searches=_searches(generation),
            signature=sign(image.data) if _thinks(spec) else None,
        )


def _thinks(spec: ModelSpec) -> bool:
    return bool(spec.thinking_levels) or spec.always_thinks


def sign(image: bytes) -> str:
    """The emulator's thought signature for a turn whose image is ``image``."""
    digest = hmac.new(_SIGNATURE_KEY, hashlib.sha256(image).digest(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def check_signatures(generation: Generation) -> None:
    """Refuse history whose model turns lack the signature this emulator issued for their image, as
    Gemini 3 does: a gateway that drops signatures fails here, not only against the real upstream."""
    if not _thinks(generation.spec):
        return
    for position, past in enumerate(generation.history):
        if past.turn.role != "model" or not past.images:
            continue
        signature = past.turn.signature
        if signature == SKIP_THOUGHT_SIGNATURE:
            continue
        if signature is None or not hmac.compare_digest(signature, sign(past.images[0])):
            problem = "carries no thought signature" if signature is None else "carries a thought signature "
            if signature is not None:
                problem += "that was not issued for its image"
            raise InvalidRequest(
                f"the model turn at position {position} of the conversation {problem}: "
                f"{generation.spec.id} needs every model turn sent back with the thought_signature it came "
                "with (continue with previous_interaction_id, or send the model's parts back unchanged)",
                param="contents",
                code="missing_thought_signature",
            )


def think(generation: Generation, final: ProviderImage) -> tuple[ProviderThought, ...]:
    """Thinking models think: a summary, and when they think hard (Pro always, Flash at ``high``) two
    interim images, a draft and the final render, as seed 004 describes."""
    request, spec = generation.request, generation.spec
    if not _thinks(spec):
        return ()
    level = request.thinking_level or spec.default_thinking_level or "high"
    summary = (
        f"Emulated thinking ({level}): planning a {request.aspect_ratio} composition at "
        f"{request.width}x{request.height} for: {_clip(request.prompt, 120)}"
    )
    if not spec.always_thinks and level != "high":
        return (ProviderThought(text=summary),)
    draft_size = spec.image_sizes[0]
    width, height = spec.output_pixels(request.aspect_ratio or spec.default_aspect_ratio, draft_size)
    draft_request = request.model_copy(
        update={
            "prompt": "DRAFT - " + request.prompt,
            "image_size": draft_size,
            "width": width,
            "height": height,
        }
    )
    draft = render(Generation(request=draft_request, spec=spec, index=generation.index))
    return (
        ProviderThought(text=summary + ". A quick draft to test the layout.", images=(draft,)),
        ProviderThought(text="Refining the draft into the final image.", images=(final,)),
    )


def _answer_text(generation: Generation, image: ProviderImage) -> str:
    return (
        f"Here is an emulated {image.width}x{image.height} image for: "
        f"{_clip(generation.request.prompt, 160)} (made by the pixelgate emulator, not by "
        f"{generation.spec.id})"
    )


def _searches(generation: Generation) -> tuple[SearchStep, ...]:
    search_types = generation.request.search_types
    if search_types is None:
        return ()
    query = _clip(generation.request.prompt, 100)
    return tuple(
        SearchStep(
            search_type=search_type,
            queries=(query,),
            suggestions=(
                '<div class="pixelgate-emulated-search">Emulated search: the pixelgate emulator made no '
                f"{search_type.replace('_', ' ')} and found nothing.</div>"
            ),
        )
        for search_type in (search_types or ["web_search"])
    )


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fingerprint(generation: Generation) -> bytes:
    request = generation.request
    digest = hashlib.sha256()
    for part in (
        request.model,
        request.prompt,
        request.aspect_ratio,
        request.image_size,
        request.seed,
        request.output_format,
        request.thinking_level,
        generation.index,
        request.search_types,
        [(v.uri, v.mime_type) for v in request.videos],
    ):
        digest.update(repr(part).encode() + b"\0")
    for reference in generation.references:
        digest.update(hashlib.sha256(reference).digest())
    for past in generation.history:
        digest.update(repr((past.turn.role, past.turn.text)).encode() + b"\0")
        for image in past.images:
            digest.update(hashlib.sha256(image).digest())
    for video in generation.videos:
        digest.update(hashlib.sha256(video or b"").digest())
    return digest.digest()


def _color(seed: bytes, offset: int) -> tuple[int, int, int]:
    r, g, b = seed[offset : offset + 3]
    # Keep the background mid-dark so white text stays readable on it.
    return (40 + r // 3, 40 + g // 3, 60 + b // 3)


def render(generation: Generation) -> ProviderImage:
    request = generation.request
    if request.width is None or request.height is None:
        raise InvalidRequest("the emulator needs a validated request with output pixels")
    width, height = request.width, request.height
    seed = fingerprint(generation)

    # A diagonal two-colour gradient and a few discs whose places follow from the request fingerprint.
    gradient = Image.linear_gradient("L").rotate(45, expand=False).resize((width, height))
    image = Image.composite(
        Image.new("RGB", (width, height), _color(seed, 0)),
        Image.new("RGB", (width, height), _color(seed, 3)),
        gradient,
    )
    draw = ImageDraw.Draw(image)
    unit = min(width, height)
    for i in range(5):
        cx, cy = seed[6 + i] / 255 * width, seed[11 + i] / 255 * height
        radius = (0.08 + seed[16 + i] / 255 * 0.25) * unit
        draw.ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius),
            fill=_color(seed, 20 + i),
            outline=(255, 255, 255),
            width=max(1, unit // 256),
        )

    margin = max(4, unit // 24)
    font_size = max(8, min(unit // 14, width // 28))
    small = max(8, font_size * 2 // 3)
    title_font = ImageFont.load_default(size=font_size)
    text_font = ImageFont.load_default(size=small)
    lines = [
        (
            "EMULATED IMAGE - pixelgate emulator" + (f" #{generation.index + 1}" if generation.index else ""),
            title_font,
        ),
        (f"model: {request.model}", text_font),
        (f"size: {request.image_size} {request.aspect_ratio} -> {width}x{height}", text_font),
        (f"seed: {request.seed if request.seed is not None else 'none'}", text_font),
    ]
    if generation.history:
        turn = sum(1 for past in generation.history if past.turn.role == "user") + 1
        lines.append((f"turn {turn}: edits the image of the turn before", text_font))
    if request.videos:
        lines.append((f"video context: {len(request.videos)} (not decoded by the emulator)", text_font))
    chars_per_line = max(10, int((width - 2 * margin) / (small * 0.55)))
    max_prompt_lines = max(1, int((height - 2 * margin) / (small * 1.3)) - 8)
    prompt_lines = textwrap.wrap("prompt: " + request.prompt, chars_per_line)
    if len(prompt_lines) > max_prompt_lines:
        prompt_lines = [*prompt_lines[: max_prompt_lines - 1], prompt_lines[max_prompt_lines - 1] + " ..."]
    lines += [(line, text_font) for line in prompt_lines]

    y = margin
    for text, font in lines:
        draw.text((margin + 2, y + 2), text, font=font, fill=(0, 0, 0))
        draw.text((margin, y), text, font=font, fill=(255, 255, 255))
        y += int((font_size if font is title_font else small) * 1.3)

    # The references, then the conversation's earlier images (latest last): an edit shows what it edits.
    thumbnails = [*generation.references, *(i for past in generation.history for i in past.images)]
    if thumbnails:
        _paste_thumbnails(image, tuple(thumbnails[-12:]), margin, unit)

    data = encode_image(image, request.output_format, request.output_compression)
    return ProviderImage(data=data, mime_type=request.mime_type, width=width, height=height)


def _paste_thumbnails(image: Image.Image, references: tuple[bytes, ...], margin: int, unit: int) -> None:
    side = max(16, unit // 6)
    gap = max(2, side // 10)
    x, y = margin, image.height - margin - side
    for data in references:
        if x + side > image.width - margin:
            break
        thumb = thumbnail(data, side)  # decoded at a reduced size, within the process's pixel budget
        frame = Image.new("RGB", (side, side), (255, 255, 255))
        frame.paste(thumb, ((side - thumb.width) // 2, (side - thumb.height) // 2))
        image.paste(frame, (x, y))
        x += side + gap
