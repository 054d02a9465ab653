"""The offline emulator in process: deterministic pictures of the catalog's exact pixels, output formats,
reference thumbnails, fault plans, injected faults and latency."""

from __future__ import annotations

import io
import random
import time
from typing import Any

import pytest
from PIL import Image

from conftest import png_bytes
from pixelgate.catalog import default_catalog
from pixelgate.catalog.validation import validate
from pixelgate.core.errors import RateLimited, UpstreamError, UpstreamTimeout
from pixelgate.core.faults import FaultPlan
from pixelgate.core.request import ImageRequest, Limits, ReferenceImage
from pixelgate.providers.base import Generation
from pixelgate.providers.emulator import EmulatorProvider, render


def generation(index: int = 0, references: tuple[bytes, ...] = (), **fields: Any) -> Generation:
    """A validated request (with its references described as the task service stores them) and their bytes."""
    described = []
    for i, data in enumerate(references):
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME[image.format or "PNG"]
            described.append(
                ReferenceImage(blob_key=f"t/ref-{i}", mime_type=mime, width=image.width, height=image.height)
            )
    fields = {
        "model": "gemini-3.1-flash-image",
        "prompt": "a red fox in snow",
        "references": described,
        **fields,
    }
    request, spec = validate(ImageRequest(**fields), default_catalog(), Limits())
    return Generation(request=request, spec=spec, references=references, index=index)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- render ------------------------------------------------------------------------------------------------


def test_render_is_deterministic() -> None:
    first = render(generation(seed=3, aspect_ratio="16:9", image_size="512"))
    second = render(generation(seed=3, aspect_ratio="16:9", image_size="512"))
    assert first.data == second.data
    assert (first.width, first.height, first.mime_type) == (688, 384, "image/png")


@pytest.mark.parametrize(
    ("changed", "fields"),
    [
        ("seed", {"seed": 4}),
        ("prompt", {"prompt": "a grey wolf in snow"}),
        ("model", {"model": "gemini-3.1-flash-image-preview-official"}),
        ("no seed", {"seed": None}),
    ],
)
def test_render_follows_the_request(changed: str, fields: dict[str, Any]) -> None:
    base = {"seed": 3, "aspect_ratio": "1:1", "image_size": "512"}
    assert render(generation(**base)).data != render(generation(**{**base, **fields})).data, changed


def test_each_of_n_images_differs() -> None:
    fields = {"seed": 3, "aspect_ratio": "1:1", "image_size": "512", "n": 3}
    images = {render(generation(index=i, **fields)).data for i in range(3)}
    assert len(images) == 3


@pytest.mark.parametrize(
    ("model", "aspect", "size", "pixels"),
    [
        ("gemini-3.1-flash-image", "1:1", "512", (512, 512)),
        ("gemini-3.1-flash-image", "21:9", "512", (792, 336)),
        ("gemini-3.1-flash-image", "1:8", "512", (192, 1536)),
        ("gemini-3.1-flash-image", "8:1", "512", (1536, 192)),
        ("gemini-3.1-flash-image", "1:8", "1K", (384, 3072)),
        ("gemini-3.1-flash-image", "9:16", "1K", (768, 1376)),
        ("gemini-3-pro-image", "4:5", "1K", (928, 1152)),
        ("gemini-3-pro-image", "3:2", "2K", (2528, 1696)),
        ("gemini-2.5-flash-image", "21:9", "1K", (1536, 672)),
        ("gemini-2.5-flash-image", "3:4", "1K", (864, 1184)),
        ("gemini-3.1-flash-lite-image", "16:9", "1K", (1376, 768)),
    ],
)
def test_pixels_are_the_catalogs(model: str, aspect: str, size: str, pixels: tuple[int, int]) -> None:
    result = render(generation(model=model, aspect_ratio=aspect, image_size=size))
    image = decode(result.data)
    assert image.format == "PNG" and image.mode == "RGB"
    assert image.size == pixels
    assert (result.width, result.height) == pixels


def test_defaults_are_square_1k() -> None:
    result = render(generation())
    assert decode(result.data).size == (1024, 1024)


@pytest.mark.parametrize(
    ("fmt", "pil_format", "mime"), [("jpeg", "JPEG", "image/jpeg"), ("webp", "WEBP", "image/webp")]
)
def test_jpeg_and_webp_output(fmt: str, pil_format: str, mime: str) -> None:
    result = render(generation(output_format=fmt, aspect_ratio="3:2", image_size="512"))
    assert result.mime_type == mime
    image = decode(result.data)
    assert image.format == pil_format and image.size == (632, 424)
    assert render(generation(output_format=fmt, aspect_ratio="3:2", image_size="512")).data == result.data


def test_output_compression_sets_the_jpeg_quality() -> None:
    low = render(generation(output_format="jpeg", output_compression=5, image_size="512"))
    high = render(generation(output_format="jpeg", output_compression=100, image_size="512"))
    assert len(low.data) < len(high.data)
    assert decode(low.data).size == decode(high.data).size == (512, 512)


def test_reference_thumbnails_change_the_image() -> None:
    fields = {"seed": 1, "aspect_ratio": "1:1", "image_size": "512"}
    plain = render(generation(**fields)).data
    red = render(generation(references=(png_bytes(color=(255, 0, 0)),), **fields)).data
    blue = render(generation(references=(png_bytes(color=(0, 0, 255)),), **fields)).data
    assert len({plain, red, blue}) == 3
    # The thumbnail sits at the bottom-left corner: the red reference shows there as red pixels.
    image = decode(red).convert("RGB")
    side, margin = 512 // 6, 512 // 24
    centre = (margin + side // 2, 512 - margin - side // 2)
    assert image.getpixel(centre) == (255, 0, 0)


def test_jpeg_reference_thumbnail() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (0, 200, 0)).save(buffer, "JPEG")
    result = render(generation(references=(buffer.getvalue(),), image_size="512"))
    # No aspect ratio given: the output follows the input image (seed 004), 800x600 -> 4:3.
    assert decode(result.data).size == (600, 448)
    # Its thumbnail (side 448 // 6, margin 448 // 24) shows the reference's green at the frame's centre.
    side, margin = 448 // 6, 448 // 24
    red, green, blue = (
        decode(result.data).convert("RGB").getpixel((margin + side // 2, 448 - margin - side // 2))
    )
    assert green > 180 and red < 30 and blue < 30


# --- FaultPlan ---------------------------------------------------------------------------------------------


def test_fault_plan_parses_rates() -> None:
    plan = FaultPlan.parse("429:0.1,503:0.05,timeout:0.01")
    assert plan.rates == (("429", 0.1), ("503", 0.05), ("timeout", 0.01))
    assert FaultPlan.parse("").rates == ()
    assert FaultPlan.parse("500:1").rates == (("500", 1.0),)
    assert FaultPlan.parse(" 429:0.5 , 502:0.5 ").rates == (("429", 0.5), ("502", 0.5))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("404:0.1", "fault '404' in '404:0.1' is not known: use 429, 500, 502, 503 or timeout"),
        ("bogus:1", "fault 'bogus' in 'bogus:1' is not known: use 429, 500, 502, 503 or timeout"),
        ("429:1.5", "fault rate 1.5 in '429:1.5' is out of range: use 0 to 1"),
        ("503:-0.1", "fault rate -0.1 in '503:-0.1' is out of range: use 0 to 1"),
        ("429:x", "fault rate 'x' in '429:x' is not a number from 0 to 1"),
        ("429", "fault rate '' in '429' is not a number from 0 to 1"),
        ("429:0.6,503:0.5", "fault rates in '429:0.6,503:0.5' add up to more than 1"),
        (
            "429:0.5,503:0.5,timeout:0.01",
            "fault rates in '429:0.5,503:0.5,timeout:0.01' add up to more than 1",
        ),
    ],
)
def test_fault_plan_rejects_bad_plans(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        FaultPlan.parse(text)
    assert str(caught.value) == message


def test_fault_plan_rates_adding_up_to_exactly_one() -> None:
    plan = FaultPlan.parse("429:0.34,503:0.56,timeout:0.1")
    assert plan.rates == (("429", 0.34), ("503", 0.56), ("timeout", 0.1))


def test_fault_plan_pick() -> None:
    rng = random.Random(0)
    assert {FaultPlan.parse("503:1").pick(rng) for _ in range(50)} == {"503"}
    assert {FaultPlan().pick(rng) for _ in range(50)} == {None}
    assert {FaultPlan.parse("429:0").pick(rng) for _ in range(50)} == {None}
    picks = [FaultPlan.parse("429:0.5,500:0.5").pick(rng) for _ in range(400)]
    assert set(picks) == {"429", "500"}
    assert 120 < picks.count("429") < 280
    # A fault seed makes the sequence repeatable.
    plan = FaultPlan.parse("429:0.3,503:0.3")

    def sequence() -> list[str | None]:
        seeded = random.Random(42)
        return [plan.pick(seeded) for _ in range(30)]

    assert sequence() == sequence()
    assert set(sequence()) == {"429", "503", None}


# --- EmulatorProvider --------------------------------------------------------------------------------------


async def test_provider_generates_with_usage() -> None:
    provider = EmulatorProvider()
    job = generation(
        references=(png_bytes(), png_bytes(800, 800)), aspect_ratio="16:9", image_size="512", seed=2
    )
    result = await provider.generate(job)
    assert len(result.images) == 1
    assert result.images[0].data == render(job).data
    usage = result.usage
    assert usage.output_image_tokens == 747 and usage.images == 1
    assert usage.input_text_tokens == (len(b"a red fox in snow") + 3) // 4
    assert usage.input_image_tokens == 258 + 258 * 2 * 2  # 64x48 is one unit; 800x800 is 2x2 tiles
    assert await EmulatorProvider().generate(job) == result


async def test_rate_limit_fault() -> None:
    provider = EmulatorProvider(faults=FaultPlan.parse("429:1"))
    with pytest.raises(RateLimited) as caught:
        await provider.generate(generation())
    assert caught.value.retry_after == 2.0
    assert caught.value.status == 429 and caught.value.code == "rate_limit_exceeded"
    custom = EmulatorProvider(faults=FaultPlan.parse("429:1"), retry_after=7.5)
    with pytest.raises(RateLimited) as caught:
        await custom.generate(generation())
    assert caught.value.retry_after == 7.5
    assert "retry after 7.5 s" in caught.value.message


@pytest.mark.parametrize("kind", ["500", "502", "503"])
async def test_server_error_faults(kind: str) -> None:
    provider = EmulatorProvider(faults=FaultPlan.parse(f"{kind}:1"))
    with pytest.raises(UpstreamError) as caught:
        await provider.generate(generation())
    assert not isinstance(caught.value, UpstreamTimeout)
    assert caught.value.status == 502
    assert caught.value.code == f"upstream_http_{kind}"
    assert caught.value.message == f"the emulated upstream answered HTTP {kind} (injected fault)"


async def test_timeout_fault() -> None:
    provider = EmulatorProvider(faults=FaultPlan.parse("timeout:1"), timeout_after=0.05)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as caught:
        await provider.generate(generation())
    assert time.monotonic() - started >= 0.05
    assert caught.value.status == 504


async def test_latency_is_honoured() -> None:
    provider = EmulatorProvider(latency=0.2)
    started = time.monotonic()
    result = await provider.generate(generation(image_size="512"))
    assert time.monotonic() - started >= 0.2
    assert decode(result.images[0].data).size == (512, 512)


async def test_latency_comes_before_an_injected_429() -> None:
    provider = EmulatorProvider(latency=0.2, faults=FaultPlan.parse("429:1"))
    started = time.monotonic()
    with pytest.raises(RateLimited):
        await provider.generate(generation())
    assert time.monotonic() - started >= 0.2


async def test_fault_seed_repeats_the_fault_sequence() -> None:
    async def outcomes(seed: int) -> list[str]:
        provider = EmulatorProvider(faults=FaultPlan.parse("429:0.5"), fault_seed=seed)
        seen = []
        for _ in range(12):
            try:
                await provider.generate(generation(image_size="512"))
                seen.append("ok")
            except RateLimited:
                seen.append("429")
        return seen

    first = await outcomes(11)
    assert first == await outcomes(11)
    assert set(first) == {"ok", "429"}
