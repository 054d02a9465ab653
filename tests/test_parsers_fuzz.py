"""Property tests of the OpenAI dialect's parsing, in-process (no server).

Whatever JSON a caller sends, parsing it into :class:`ImageBody`, translating it into an
:class:`ImageRequest` and validating that against the catalog either succeeds with the catalog's own pixels,
or raises a :class:`PixelgateError` with a 4xx status and a message: never anything else (which the server
would turn into a 500).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from starlette.requests import Request

from conftest import png_header_only
from pixelgate.api.openai import QUALITIES, ImageBody, reference_inputs, to_image_request
from pixelgate.api.parsing import parse_model, read_json_object
from pixelgate.catalog import REFERENCE_KINDS, default_catalog
from pixelgate.catalog.validation import check_references, validate
from pixelgate.core.errors import InvalidRequest, PayloadTooLarge, PixelgateError
from pixelgate.core.images import ACCEPTED_FORMATS, decode_inline_image, inspect_image
from pixelgate.core.request import MAX_IMAGES_PER_REQUEST, MAX_SEED, Limits

CATALOG = default_catalog()
DEFAULT_MODEL = "gemini-3.1-flash-image"
LIMITS = Limits()
ALL_ASPECTS = sorted({aspect for spec in CATALOG for aspect in spec.aspect_ratios} | {"7:3", "0:1", "1:0"})
ALL_SIZES = sorted({size for spec in CATALOG for size in spec.image_sizes} | {"1k", "2k", "8K", "", "1024"})

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies --------------------------------------------------------------------------------------------

# JSON as json.loads gives it: ints stay far below the 4300-digit limit json.loads itself enforces.
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

models = st.sampled_from(CATALOG.ids) | st.text(max_size=30) | json_value
sizes = (
    st.builds(lambda w, h: f"{w}x{h}", st.integers(0, 99_999), st.integers(0, 99_999))
    | st.builds(lambda w, h: f"{w}:{h}", st.integers(0, 99), st.integers(0, 99))
    | st.sampled_from(["auto", "", " 16:9 ", "1024X1024", "big", "1:1:1", "100000x1", "-1x5", "1e3x1"])
    | st.sampled_from(ALL_ASPECTS)
    | st.text(max_size=12)
    | json_value
)
image_sizes = st.sampled_from(ALL_SIZES) | st.text(max_size=6) | json_value
numbers = st.integers(-(10**12), 10**12) | st.floats(allow_nan=True, allow_infinity=True) | json_value
small_numbers = st.integers(-3, 14) | st.floats(-1, 3, allow_nan=False) | numbers
reference_sources = st.sampled_from(
    ["aGVsbG8=", "http://127.0.0.1:1/a.png", "data:image/png;base64,AAAA", "data:,x", ""]
) | st.text(max_size=40)
reference_objects = st.fixed_dictionaries(
    {},
    optional={
        "url": reference_sources,
        "image_url": reference_sources | st.fixed_dictionaries({"url": reference_sources}),
        "data": reference_sources,
        "b64_json": reference_sources,
        "kind": st.sampled_from([*REFERENCE_KINDS, "pose", "", "Style"]) | json_value,
    },
)
reference_lists = st.lists(reference_sources | reference_objects, max_size=16) | json_value

# Every field the dialect reads: a wild value (anything JSON, or a near miss) ...
WILD_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": models,
    "prompt": st.text(max_size=40) | json_value,
    "n": small_numbers,
    "size": sizes,
    "quality": st.sampled_from([*QUALITIES, "ultra", "HD"]) | json_value,
    "response_format": st.sampled_from(["url", "b64_json", "xml"]) | json_value,
    "output_format": st.sampled_from(["png", "jpeg", "jpg", "webp", "gif"]) | json_value,
    "output_compression": st.integers(-5, 105) | json_value,
    "resolution": image_sizes,
    "image_size": image_sizes,
    "aspect_ratio": st.sampled_from(ALL_ASPECTS) | st.text(max_size=6) | json_value,
    "metadata": st.fixed_dictionaries({}, optional={"resolution": image_sizes, "user_tag": json_value})
    | json_value,
    "reference_images": reference_lists,
    "image_urls": reference_lists,
    "images": reference_lists,
    "temperature": numbers,
    "top_p": numbers,
    "topP": numbers,
    "seed": st.integers(-5, MAX_SEED + 5) | numbers,
    "thinking_level": st.sampled_from(["minimal", "high", "low", "ultra", "", "HIGH"]) | json_value,
    "async": json_value,
}
# ... or a plausible one, so that a good share of bodies get all the way through validate().
PLAUSIBLE_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(CATALOG.ids),
    "n": st.integers(1, MAX_IMAGES_PER_REQUEST),
    "size": st.builds(lambda w, h: f"{w}x{h}", st.integers(1, 9000), st.integers(1, 9000))
    | st.sampled_from(["auto", "1:1", "16:9", "9:16", "4:3", "3:2", "21:9"]),
    "quality": st.sampled_from(QUALITIES),
    "response_format": st.sampled_from(["url", "b64_json"]),
    "output_format": st.sampled_from(["png", "jpeg", "jpg", "webp"]),
    "output_compression": st.integers(0, 100),
    "resolution": st.sampled_from(["1K", "2K", "4K", "512"]),
    "aspect_ratio": st.sampled_from(ALL_ASPECTS),
    "reference_images": st.lists(st.sampled_from(["aGVsbG8=", "http://127.0.0.1:1/a.png"]), max_size=4),
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0, 1),
    "seed": st.integers(0, MAX_SEED),
    "thinking_level": st.sampled_from(["minimal", "high"]),
    "user": st.text(max_size=10),
    "async": st.booleans(),
}
wild_bodies = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries({}, optional=WILD_FIELDS),
    st.dictionaries(st.text(max_size=10), json_value, max_size=3),
)
plausible_bodies = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=40).filter(str.strip)}, optional=PLAUSIBLE_FIELDS
)


@st.composite
def one_wild_field(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible body with exactly one field replaced by a wild value."""
    body = draw(plausible_bodies)
    field = draw(st.sampled_from(sorted(WILD_FIELDS)))
    return {**body, field: draw(WILD_FIELDS[field])}


bodies = plausible_bodies | one_wild_field() | wild_bodies


def _check_error(exc: PixelgateError, data: dict[str, Any]) -> None:
    assert 400 <= exc.status <= 499, (exc.status, exc.message)
    assert exc.message.strip(), exc
    assert exc.code, exc
    if exc.code in ("invalid_field", "missing_field"):
        # A pydantic error names a field the caller sent (or had to send), first thing in the message.
        assert exc.param, exc.message
        assert exc.message.startswith(exc.param), (exc.param, exc.message)
        top = re.split(r"[.[]", exc.param, maxsplit=1)[0]
        assert top in data or exc.code == "missing_field", (exc.param, sorted(data))


# --- the whole parse -> translate -> validate chain -------------------------------------------------------


@FUZZ
@given(data=bodies)
@example(data={"prompt": "x", "size": "0x100"})
@example(data={"prompt": "x", "size": "99999x1", "model": "gemini-2.5-flash-image"})
@example(data={"prompt": "x", "temperature": float("nan")})
@example(data={"prompt": "x", "metadata": {"resolution": {"a": 1}}})
@example(data={"prompt": "x", "reference_images": [{"kind": "style", "data": "aGVsbG8="}]})
@example(data={"prompt": "x", "model": "dall-e-3", "size": "1024x1024"})
def test_any_body_is_a_request_or_a_4xx(data: dict[str, Any]) -> None:
    try:
        body = parse_model(ImageBody, data)
        refs = reference_inputs(body)
        request = to_image_request(body, CATALOG, DEFAULT_MODEL)
        spec = CATALOG.get(request.model, param=request.name("model"))
        check_references(request, spec, [ref.kind for ref in refs])  # as TaskService.submit does
        validated, spec = validate(request, CATALOG, LIMITS)
    except PixelgateError as exc:
        event(f"refused: {exc.code}")
        _check_error(exc, data)
        return
    event("validated")
    assert validated.aspect_ratio in spec.aspect_ratios
    assert validated.image_size in spec.image_sizes
    assert (validated.width, validated.height) == spec.output_pixels(
        validated.aspect_ratio, validated.image_size
    )
    assert 1 <= validated.n <= MAX_IMAGES_PER_REQUEST
    assert validated.seed is None or 0 <= validated.seed <= MAX_SEED
    assert validated.temperature is None or 0 <= validated.temperature <= 2
    assert validated.top_p is None or 0 <= validated.top_p <= 1
    assert validated.prompt.strip() and len(validated.prompt) <= LIMITS.max_prompt_chars
    assert len(refs) <= spec.max_reference_images
    assert validated.output_format in ("png", "jpeg", "webp")


@FUZZ
@given(
    model=st.sampled_from(CATALOG.ids),
    width=st.integers(1, 99_999),
    height=st.integers(1, 99_999),
)
def test_any_positive_wxh_size_maps_onto_the_catalog(model: str, width: int, height: int) -> None:
    """A WxH size never fails: it becomes the model's nearest aspect ratio at its nearest size."""
    body = parse_model(ImageBody, {"model": model, "prompt": "x", "size": f"{width}x{height}"})
    request, spec = validate(to_image_request(body, CATALOG, DEFAULT_MODEL), CATALOG, LIMITS)
    assert request.aspect_ratio == spec.nearest_aspect_ratio(width, height)
    assert request.requested_size == f"{width}x{height}"
    assert request.image_size in spec.image_sizes
    assert (request.width, request.height) == spec.output_pixels(request.aspect_ratio, request.image_size)
    assert request.image_size == spec.nearest_image_size(request.aspect_ratio, width, height)

    # An independent oracle: the chosen aspect ratio is at least as close (on a log scale) as every other.
    def distance(aspect: str) -> float:
        a, b = aspect.split(":")
        return abs(math.log(int(a) / int(b)) - math.log(width / height))

    assert all(distance(request.aspect_ratio) <= distance(other) + 1e-12 for other in spec.aspect_ratios)


@FUZZ
@given(
    model=st.sampled_from(CATALOG.ids),
    w=st.integers(0, 99),
    h=st.integers(0, 99),
    size=st.sampled_from(ALL_SIZES) | st.none(),
    field=st.sampled_from(["size", "aspect_ratio"]),
)
def test_aspect_ratio_and_size_are_offered_or_named(
    model: str, w: int, h: int, size: str | None, field: str
) -> None:
    spec = CATALOG.get(model)
    aspect = f"{w}:{h}"
    data: dict[str, Any] = {"model": model, "prompt": "x", field: aspect}
    if size is not None:
        data["resolution"] = size
    request = to_image_request(parse_model(ImageBody, data), CATALOG, DEFAULT_MODEL)
    if aspect not in spec.aspect_ratios:
        with pytest.raises(InvalidRequest) as caught:
            validate(request, CATALOG, LIMITS)
        assert caught.value.code == "invalid_aspect_ratio"
        assert caught.value.param == field
        assert f"aspect ratio {aspect} is not offered by {model}: use " in caught.value.message
    elif size is not None and size not in spec.image_sizes:
        with pytest.raises(InvalidRequest) as caught:
            validate(request, CATALOG, LIMITS)
        assert caught.value.code == "invalid_image_size"
        assert caught.value.param == "resolution"
        assert f"resolution {size!r} is not valid for {model}" in caught.value.message
    else:
        validated, _ = validate(request, CATALOG, LIMITS)
        expected_size = size if size is not None else spec.default_image_size
        assert (validated.width, validated.height) == spec.output_pixels(aspect, expected_size)


RANGES: dict[str, tuple[str, float, float]] = {
    # wire field: (code suffix, low, high)
    "n": ("n", 1, MAX_IMAGES_PER_REQUEST),
    "temperature": ("temperature", 0, 2),
    "top_p": ("top_p", 0, 1),
    "topP": ("top_p", 0, 1),
    "seed": ("seed", 0, MAX_SEED),
    "output_compression": ("output_compression", 0, 100),
}


@st.composite
def ranged_field(draw: st.DrawFn) -> tuple[str, float]:
    field = draw(st.sampled_from(sorted(RANGES)))
    _, low, high = RANGES[field]
    near = st.sampled_from([low - 1, low, high, high + 1])
    if field in ("temperature", "top_p", "topP"):
        value: float = draw(near | st.floats(low - 5, high + 5, allow_nan=False))
    else:
        value = draw(near.map(int) | st.integers(int(low) - 10**6, int(high) + 10**6))
    return field, value


@FUZZ
@given(body=plausible_bodies, field_value=ranged_field())
@example(body={"prompt": "x"}, field_value=("seed", MAX_SEED + 1))
@example(body={"prompt": "x"}, field_value=("n", 0))
def test_numbers_are_in_range_or_refused_by_name(
    body: dict[str, Any], field_value: tuple[str, float]
) -> None:
    field, value = field_value
    code, low, high = RANGES[field]
    data = {key: val for key, val in body.items() if key not in RANGES} | {field: value}
    request = to_image_request(parse_model(ImageBody, data), CATALOG, DEFAULT_MODEL)
    if low <= value <= high:
        try:
            validate(request, CATALOG, LIMITS)
        except InvalidRequest as exc:  # something else in the body may be refused, never this field
            assert exc.param != field and exc.code != f"invalid_{code}", exc.message
    else:
        with pytest.raises(InvalidRequest) as caught:
            validate(request, CATALOG, LIMITS)
        assert caught.value.code == f"invalid_{code}", caught.value.message
        assert caught.value.param == field
        assert caught.value.message.startswith(f"{field} ")
        assert "is out of range: use a value from" in caught.value.message


@FUZZ
@given(
    model=st.sampled_from(CATALOG.ids),
    kinds=st.lists(st.sampled_from([*REFERENCE_KINDS, None]), max_size=20),
)
def test_reference_counts_and_kinds_against_the_model(model: str, kinds: list[str | None]) -> None:
    spec = CATALOG.get(model)
    refs = [{"data": "aGVsbG8=", **({"kind": kind} if kind else {})} for kind in kinds]
    body = parse_model(ImageBody, {"model": model, "prompt": "x", "reference_images": refs})
    inputs = reference_inputs(body)
    assert [ref.field for ref in inputs] == [f"reference_images[{i}]" for i in range(len(kinds))]
    request = to_image_request(body, CATALOG, DEFAULT_MODEL)
    over_kind = [k for k in REFERENCE_KINDS if kinds.count(k) > spec.reference_limits[k]]
    if len(kinds) > spec.max_reference_images:
        with pytest.raises(InvalidRequest) as caught:
            check_references(request, spec, [ref.kind for ref in inputs])
        assert caught.value.message == (
            f"{model} accepts at most {spec.max_reference_images} reference images, got {len(kinds)}"
        )
    elif over_kind:
        with pytest.raises(InvalidRequest) as caught:
            check_references(request, spec, [ref.kind for ref in inputs])
        assert caught.value.code == "too_many_reference_images"
        assert any(
            caught.value.message
            == f"{model} accepts at most {spec.reference_limits[k]} {k} reference images, got {kinds.count(k)}"
            for k in over_kind
        ), caught.value.message
    else:
        check_references(request, spec, [ref.kind for ref in inputs])


def test_prompt_that_is_not_unicode_is_refused() -> None:
    body = parse_model(ImageBody, {"prompt": json.loads('"a cat \\ud800"')})
    with pytest.raises(InvalidRequest) as caught:
        validate(to_image_request(body, CATALOG, DEFAULT_MODEL), CATALOG, LIMITS)
    assert caught.value.param == "prompt"


# --- reading the body itself -------------------------------------------------------------------------------


def _read(body: bytes) -> dict[str, Any]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    return asyncio.run(read_json_object(Request(scope, receive)))


@FUZZ
@given(
    body=st.binary(max_size=200)
    | json_value.map(lambda value: json.dumps(value).encode())
    | bodies.map(lambda value: json.dumps(value).encode())
)
@example(body=b"")
@example(body=b"[]")
@example(body=b"\xff")
@example(body=b'{"a": NaN}')
def test_any_bytes_are_an_object_or_an_invalid_json_error(body: bytes) -> None:
    try:
        data = _read(body)
    except InvalidRequest as exc:
        assert exc.status == 400, exc.message
        # JSON that nothing can keep is named by its place in the body
        assert exc.code in ("invalid_json", "invalid_unicode", "number_out_of_range"), exc.code
        assert exc.message.startswith(exc.param or "the request body "), exc.message
        return
    assert isinstance(data, dict)


@pytest.mark.parametrize(
    "body",
    [b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", b'{"seed": ' + b"9" * 5000 + b"}"],
    ids=["deep-nesting", "huge-integer"],
)
def test_pathological_json_is_an_invalid_json_error(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _read(body)
    assert caught.value.code == "invalid_json"


# --- images ------------------------------------------------------------------------------------------------


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (10, 200, 30)).save(buffer, fmt)
    return buffer.getvalue()


SAMPLE_IMAGES = [_image(fmt) for fmt in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLE_IMAGES)))
    for _ in range(draw(st.integers(0, 5))):
        action = draw(st.sampled_from(["flip", "truncate", "insert"]))
        if action == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif action == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        else:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def _inspect_or_refuse(data: bytes, max_pixels: int) -> None:
    try:
        info = inspect_image(data, field="reference_images[0]", max_pixels=max_pixels)
    except InvalidRequest as exc:
        assert exc.status == 400
        assert exc.param == "reference_images[0]"
        assert exc.message.startswith("reference_images[0] ")
        assert exc.code in ("invalid_image", "unsupported_image_format", "image_too_large"), exc.code
        return
    assert info.mime_type in ACCEPTED_FORMATS.values()
    assert info.width >= 1 and info.height >= 1
    assert info.width * info.height <= max_pixels


@FUZZ
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's warnings about corrupt TIFF/EXIF data
@given(
    data=st.binary(max_size=512) | mutated_images(), max_pixels=st.sampled_from([64 * 1024 * 1024, 150, 10])
)
@example(data=b"", max_pixels=100)
@example(data=b"hello", max_pixels=100)
def test_inspect_image_only_ever_raises_invalid_request(data: bytes, max_pixels: int) -> None:
    _inspect_or_refuse(data, max_pixels)


@FUZZ
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1))
@example(width=50_000, height=50_000)
@example(width=8192, height=8192)
@example(width=8192, height=8193)
@example(width=5, height=1)
@example(width=1, height=5)
def test_declared_pixels_are_checked_before_decoding(width: int, height: int) -> None:
    """A header that claims a huge image is refused as image_too_large from its header alone; one within
    the limit is refused for the pixel data it lacks (it carries 16 bytes of it)."""
    max_pixels = 64 * 1024 * 1024
    data = png_header_only(width, height)
    if width * height > max_pixels:
        with pytest.raises(InvalidRequest) as caught:
            inspect_image(data, field="image[0]", max_pixels=max_pixels)
        assert caught.value.code == "image_too_large"
        assert "image[0]" in caught.value.message and f"{max_pixels:,}" in caught.value.message
    elif height * (1 + 3 * width) <= 16:  # its rows (a filter byte, then RGB) fit the 16 bytes it carries
        info = inspect_image(data, field="image[0]", max_pixels=max_pixels)
        assert (info.width, info.height, info.mime_type) == (width, height, "image/png")
    else:
        with pytest.raises(InvalidRequest) as caught:
            inspect_image(data, field="image[0]", max_pixels=max_pixels)
        assert caught.value.code == "invalid_image"
        assert "image[0] is a PNG whose pixel data stops short" in caught.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_inspect_image_reads_real_images(fmt: str) -> None:
    info = inspect_image(_image(fmt), field="image[0]", max_pixels=1000)
    assert (info.width, info.height) == (16, 12)
    assert info.mime_type == ACCEPTED_FORMATS[fmt]


@FUZZ
@given(
    payload=st.binary(max_size=300),
    as_uri=st.booleans(),
    mime=st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", ""]),
)
def test_decode_inline_image_round_trips_base64(payload: bytes, as_uri: bool, mime: str) -> None:
    text = base64.b64encode(payload).decode("ascii")
    if as_uri:
        text = f"data:{mime};base64,{text}"
    assert decode_inline_image(text, field="reference_images[0]", max_bytes=1024) == payload


@FUZZ
@given(
    value=st.text(max_size=120) | st.sampled_from(["data:image/png,abc", "data:;base64,!!", "a", "====", "é"])
)
def test_decode_inline_image_returns_bytes_or_a_4xx(value: str) -> None:
    try:
        result = decode_inline_image(value, field="reference_images[0]", max_bytes=64)
    except (InvalidRequest, PayloadTooLarge) as exc:
        assert exc.status in (400, 413)
        assert exc.param == "reference_images[0]"
        assert exc.message.startswith("reference_images[0] ")
        return
    assert isinstance(result, bytes)
    assert len(result) <= 64


@FUZZ
@given(size=st.integers(65, 4000))
def test_decode_inline_image_refuses_oversized_payloads_before_decoding(size: int) -> None:
    text = base64.b64encode(b"\0" * size).decode("ascii")
    with pytest.raises(PayloadTooLarge) as caught:
        decode_inline_image(text, field="image[0]", max_bytes=64)
    assert caught.value.status == 413
    assert "at most 64 bytes per image" in caught.value.message


def test_decode_inline_image_accepts_exactly_max_bytes() -> None:
    payload = bytes(range(64))
    text = base64.b64encode(payload).decode("ascii")
    assert decode_inline_image(text, field="image[0]", max_bytes=64) == payload


@pytest.mark.parametrize("size", [61, 62, 63])
def test_decode_inline_image_accepts_payloads_under_max_bytes(size: int) -> None:
    payload = bytes(range(size))
    assert decode_inline_image(base64.b64encode(payload).decode(), field="image[0]", max_bytes=64) == payload
