"""Bad input, on the wire: every mistake a caller can make gets a 4xx (never a 500) in OpenAI's error shape
``{"error": {"message", "type", "param", "code"}}``, whose message names the field, the value received and
what is allowed; and the server keeps serving afterwards (the last tests of this module check that).

Plain httpx is used so that the exact wire shape is asserted; the official openai SDK for a few cases.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from conftest import MakeServer, ServerProcess, png_bytes, png_header_only

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
CATALOG_IDS = (
    "gemini-3.1-flash-image, gemini-3.1-flash-lite-image, gemini-3-pro-image, gemini-2.5-flash-image, "
    "gemini-3-pro-image-preview, gemini-3.1-flash-image-preview, "
    "gemini-3.1-flash-image-preview-official, gemini-3-pro-image-preview-4k, gemini-2.5-flash-image-preview "
    "or gemini-2-5-flash-image-preview"
)
PRO_ASPECTS = "1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9 or 21:9"
SMALL_LIMIT = 100_000
_UNCHECKED = object()


def assert_error(
    response: httpx.Response,
    status: int,
    code: str,
    *fragments: str,
    param: object = _UNCHECKED,
    kind: str | None = None,
) -> dict[str, Any]:
    """``response`` is exactly OpenAI's error shape with this status and code, and its message holds every
    fragment; ``param`` is checked when given (``None`` included)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["code"] == code, error
    if kind is not None:
        assert error["type"] == kind, error
    if param is not _UNCHECKED:
        assert error["param"] == param, error
    for fragment in fragments:
        assert fragment in error["message"], (fragment, error["message"])
    return error


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="module")
def small_server(backend: str, make_server: MakeServer) -> ServerProcess:
    """A server that accepts request bodies of at most 100,000 bytes."""
    return make_server(backend, "--emulate", "--max-body-bytes", str(SMALL_LIMIT))


@pytest.fixture()
def small_http(small_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small_server.url, timeout=60) as client:
        yield client


@pytest.fixture()
def sdk(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


# --- bodies that are not a JSON object -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (b'{"prompt": "a cat", "n": ', ("the request body is not valid JSON", "line 1 column")),
        (b"{'prompt': 'single quotes'}", ("the request body is not valid JSON",)),
        (b'["a cat"]', ("the request body must be a JSON object, got an array",)),
        (b'"a cat"', ("the request body must be a JSON object, got ",)),
        (b"42", ("the request body must be a JSON object, got ",)),
        (b"null", ("the request body must be a JSON object, got ",)),
        (b"", ("the request body is empty: send a JSON object",)),
        (b"  \n ", ("the request body is empty: send a JSON object",)),
        (b'{"prompt": "\xff\xfe a cat"}', ("the request body is not valid JSON", "not UTF-8")),
    ],
    ids=["truncated", "single-quotes", "list", "string", "number", "null", "empty", "blank", "not-utf8"],
)
def test_body_that_is_not_a_json_object(
    http: httpx.Client, content: bytes, fragments: tuple[str, ...]
) -> None:
    response = http.post(GENERATIONS, content=content, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json", *fragments, param=None, kind="invalid_request_error")


@pytest.mark.parametrize(
    ("content", "json_name"),
    [(b"null", "null"), (b"42", "a number"), (b'"a"', "a string"), (b"true", "a boolean")],
)
def test_non_object_body_is_named_in_json_terms(http: httpx.Client, content: bytes, json_name: str) -> None:
    response = http.post(GENERATIONS, content=content, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json", f"the request body must be a JSON object, got {json_name}")


def test_deeply_nested_json_is_a_400(http: httpx.Client) -> None:
    depth = 100_000
    content = b'{"prompt": "x", "metadata": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    response = http.post(GENERATIONS, content=content, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json", "the request body is not valid JSON")


def test_json_nested_past_the_cap_is_a_400_even_where_python_reads_it(http: httpx.Client) -> None:
    # 450 levels parse fine, but used to overflow the serializer when the task was stored: a 500.
    depth = 450
    content = b'{"prompt": "x", "metadata": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    response = http.post(GENERATIONS, content=content, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json", "the request body nests more than 64 levels deep")


def test_empty_resolution_is_refused_by_name_not_ignored(http: httpx.Client) -> None:
    response = http.post(GENERATIONS, json={"prompt": "x", "resolution": ""})
    assert_error(response, 400, "invalid_image_size", "resolution '' is not valid")


def test_integer_with_too_many_digits_is_a_400(http: httpx.Client) -> None:
    content = b'{"prompt": "x", "seed": ' + b"1" * 5000 + b"}"
    response = http.post(GENERATIONS, content=content, headers={"content-type": "application/json"})
    assert_error(response, 400, "invalid_json", "the request body is not valid JSON")


# --- fields of the wrong type, or missing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "fragments"),
    [
        ({"prompt": "x", "n": "two"}, "n", ("n 'two' is not valid", "input should be a valid integer")),
        ({"prompt": "x", "n": 2.5}, "n", ("n 2.5 is not valid", "fractional part")),
        ({"prompt": 5}, "prompt", ("prompt 5 is not valid", "input should be a valid string")),
        ({"prompt": ["a", "b"]}, "prompt", ("prompt ['a', 'b'] is not valid", "valid string")),
        ({"prompt": "x", "temperature": "hot"}, "temperature", ("temperature 'hot' is not valid", "number")),
        ({"prompt": "x", "seed": "lucky"}, "seed", ("seed 'lucky' is not valid", "valid integer")),
        ({"prompt": "x", "size": 1024}, "size", ("size 1024 is not valid", "valid string")),
        ({"prompt": "x", "model": 3}, "model", ("model 3 is not valid", "valid string")),
        (
            {"prompt": "x", "reference_images": "abc"},
            "reference_images",
            ("reference_images 'abc' is not valid", "valid list"),
        ),
        ({"prompt": "x", "metadata": [1]}, "metadata", ("metadata [1] is not valid", "valid dictionary")),
        (
            {"prompt": "x", "response_format": "xml"},
            "response_format",
            ("response_format 'xml' is not valid", "'url' or 'b64_json'"),
        ),
        (
            {"prompt": "x", "output_format": "gif"},
            "output_format",
            ("output_format 'gif' is not valid", "'png', 'jpeg', 'jpg' or 'webp'"),
        ),
        ({"prompt": "x", "async": "later"}, "async", ("async 'later' is not valid", "valid boolean")),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else None,
)
def test_wrong_type_names_field_value_and_what_is_allowed(
    http: httpx.Client, body: dict[str, Any], param: str, fragments: tuple[str, ...]
) -> None:
    assert_error(http.post(GENERATIONS, json=body), 400, "invalid_field", *fragments, param=param)


def test_lax_mode_accepts_numeric_strings(http: httpx.Client) -> None:
    """pydantic's lax mode takes ``"2"`` for an int and ``"0.5"`` for a float: not errors, and honoured."""
    response = http.post(
        GENERATIONS,
        json={
            "prompt": "two pears",
            "n": "2",
            "temperature": "0.5",
            "seed": "7",
            "response_format": "b64_json",
        },
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2


@pytest.mark.parametrize("body", [{}, {"model": "gemini-3.1-flash-image", "n": 1}, {"prompt": None}])
def test_missing_prompt(http: httpx.Client, body: dict[str, Any]) -> None:
    response = http.post(GENERATIONS, json=body)
    if "prompt" in body:  # an explicit null is a wrong type, not a missing field
        assert_error(response, 400, "invalid_field", "prompt None is not valid", param="prompt")
    else:
        assert_error(response, 400, "missing_field", "prompt is required", param="prompt")


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_blank_prompt(http: httpx.Client, prompt: str) -> None:
    response = http.post(GENERATIONS, json={"prompt": prompt})
    assert_error(response, 400, "missing_prompt", "prompt is empty: describe the image", param="prompt")


def test_union_field_error_names_the_item(http: httpx.Client) -> None:
    response = http.post(GENERATIONS, json={"prompt": "x", "reference_images": [5]})
    assert_error(response, 400, "invalid_field", "5 is not valid")


def test_union_field_error_param_is_the_callers_field(http: httpx.Client) -> None:
    response = http.post(GENERATIONS, json={"prompt": "x", "reference_images": [5]})
    assert_error(response, 400, "invalid_field", "reference_images[0]", param="reference_images[0]")


def test_prompt_with_a_lone_surrogate_is_a_400(http: httpx.Client) -> None:
    content = b'{"prompt": "a cat \\ud800", "response_format": "b64_json"}'
    response = http.post(GENERATIONS, content=content, headers={"content-type": "application/json"})
    assert_error(
        response,
        400,
        "invalid_unicode",
        "prompt 'a cat \\ud800' holds a lone UTF-16 surrogate at character 6",
        param="prompt",
    )


# --- model, prompt length ----------------------------------------------------------------------------------


def test_unknown_model(http: httpx.Client) -> None:
    response = http.post(GENERATIONS, json={"model": "dall-e-9", "prompt": "x"})
    assert_error(
        response,
        400,
        "model_not_found",
        f"model 'dall-e-9' is not in the catalog: use {CATALOG_IDS}",
        param="model",
        kind="invalid_request_error",
    )


def test_unknown_model_with_a_pixel_size(http: httpx.Client) -> None:
    """The WxH size is mapped with the model's table, so an unknown model must fail before that, cleanly."""
    response = http.post(GENERATIONS, json={"model": "dall-e-9", "prompt": "x", "size": "1024x1024"})
    assert_error(response, 400, "model_not_found", "'dall-e-9'", param="model")


def test_get_unknown_model_is_a_404(http: httpx.Client) -> None:
    assert_error(http.get("/v1/models/dall-e-9"), 404, "model_not_found", "'dall-e-9'", param="model")


def test_two_megabyte_prompt(http: httpx.Client) -> None:
    response = http.post(GENERATIONS, json={"prompt": "a" * 2_000_000})
    assert_error(
        response,
        400,
        "prompt_too_long",
        "prompt is 2,000,000 characters long: at most 32,000 are allowed",
        param="prompt",
    )


# --- the body limit: 413 before the body is read -----------------------------------------------------------


def test_body_over_the_limit_by_content_length(small_http: httpx.Client) -> None:
    content = json.dumps({"prompt": "a" * 200_000}).encode()
    response = small_http.post(GENERATIONS, content=content, headers={"content-type": "application/json"})
    assert response.request.headers["content-length"] == str(len(content))
    assert_error(
        response,
        413,
        "request_too_large",
        f"the request body is {len(content):,} bytes: at most {SMALL_LIMIT:,} are accepted",
        "--max-body-bytes",
        kind="request_too_large",
    )


def test_body_over_the_limit_streamed_without_content_length(small_http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(30):
            yield b"a" * 10_000
        yield b'"}'

    response = small_http.post(GENERATIONS, content=chunks(), headers={"content-type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_error(
        response,
        413,
        "request_too_large",
        f"the request body is more than {SMALL_LIMIT:,} bytes: at most {SMALL_LIMIT:,} are accepted",
    )


def test_multipart_edit_over_the_limit_streamed(small_http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield (
            b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n'
            b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n"
        )
        for _ in range(30):
            yield b"a" * 10_000
        yield b"\r\n--b--\r\n"

    response = small_http.post(
        EDITS, content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert_error(response, 413, "request_too_large", f"at most {SMALL_LIMIT:,} are accepted")


def test_body_under_the_limit_is_read_and_judged(small_http: httpx.Client) -> None:
    """Just under the limit the body is parsed: the prompt, not the body, is what is too long."""
    response = small_http.post(GENERATIONS, json={"prompt": "a" * 90_000})
    assert_error(response, 400, "prompt_too_long", "prompt is 90,000 characters long", param="prompt")


def test_small_server_still_serves(small_http: httpx.Client, small_server: ServerProcess) -> None:
    assert small_http.get("/healthz").status_code == 200
    response = small_http.post(GENERATIONS, json={"prompt": "a small lighthouse", "response_format": "url"})
    assert response.status_code == 200, response.text
    assert response.json()["size"] == "1024x1024"
    assert small_server.process is not None and small_server.process.poll() is None


# --- reference images --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "code", "fragments"),
    [
        (b64(b"hello"), "invalid_image", ("reference_images[0] is not a readable image (5 bytes",)),
        (
            "data:image/png;base64," + b64(b"hello"),
            "invalid_image",
            ("reference_images[0] is not a readable",),
        ),
        ("data:image/png,abc", "invalid_image", ("reference_images[0] is a data URI without ;base64",)),
        (
            "!!!notbase64",
            "invalid_image",
            ("reference_images[0] is neither an http(s) URL nor valid base64",),
        ),
        ("", "invalid_image", ("reference_images[0] is empty: send a PNG, JPEG, WebP or GIF image",)),
        (
            "http://127.0.0.1:1/cat.png",
            "image_url_forbidden",
            ("reference_images[0]: 'http://127.0.0.1:1/cat.png' points at 127.0.0.1, a loopback address",),
        ),
    ],
    ids=["hello", "hello-data-uri", "uri-not-base64", "not-base64", "empty", "loopback-url"],
)
def test_reference_that_is_not_an_image(
    http: httpx.Client, source: str, code: str, fragments: tuple[str, ...]
) -> None:
    response = http.post(GENERATIONS, json={"prompt": "x", "reference_images": [source]})
    assert_error(response, 400, code, *fragments, param="reference_images[0]")


def test_bmp_reference_is_an_unsupported_format(http: httpx.Client) -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "BMP")
    response = http.post(GENERATIONS, json={"prompt": "x", "reference_images": [b64(buffer.getvalue())]})
    assert_error(
        response,
        400,
        "unsupported_image_format",
        "reference_images[0] is a BMP image: send PNG, JPEG, WebP or GIF",
        param="reference_images[0]",
    )


def test_malformed_reference_url_is_a_400(http: httpx.Client) -> None:
    response = http.post(GENERATIONS, json={"prompt": "x", "reference_images": ["http://[::1/x.png"]})
    assert_error(response, 400, "image_fetch_failed", "'http://[::1/x.png'", param="reference_images[0]")


def test_reference_object_without_an_image(http: httpx.Client) -> None:
    response = http.post(GENERATIONS, json={"prompt": "x", "reference_images": [{"kind": "object"}]})
    assert_error(
        response,
        400,
        "invalid_image",
        "reference_images[0] has no image: give url, image_url, data or b64_json",
        param="reference_images[0]",
    )


def test_decompression_bomb_is_refused_quickly(http: httpx.Client) -> None:
    bomb = png_header_only(50_000, 50_000)
    assert len(bomb) < 200
    started = time.monotonic()
    response = http.post(GENERATIONS, json={"prompt": "x", "reference_images": [b64(bomb)]})
    elapsed = time.monotonic() - started
    assert_error(
        response, 400, "image_too_large", "reference_images[0]", "67,108,864", param="reference_images[0]"
    )
    assert elapsed < 2.0, f"a 50000x50000 header took {elapsed:.2f} s to refuse"


def test_decompression_bomb_uploaded_to_edits(http: httpx.Client) -> None:
    bomb = png_header_only(50_000, 50_000)
    response = http.post(EDITS, data={"prompt": "x"}, files={"image": ("bomb.png", bomb, "image/png")})
    assert_error(response, 400, "image_too_large", "image[0]", "67,108,864", param="image[0]")


def test_image_just_over_the_pixel_limit_names_its_size(http: httpx.Client) -> None:
    response = http.post(
        GENERATIONS, json={"prompt": "x", "reference_images": [b64(png_header_only(9000, 8000))]}
    )
    assert_error(
        response,
        400,
        "image_too_large",
        "reference_images[0] is 9000x8000 = 72,000,000 pixels: at most 67,108,864 are allowed",
        param="reference_images[0]",
    )


def test_decompression_bomb_message_names_its_size(http: httpx.Client) -> None:
    response = http.post(
        GENERATIONS, json={"prompt": "x", "reference_images": [b64(png_header_only(50_000, 50_000))]}
    )
    assert_error(response, 400, "image_too_large", "50000x50000", "67,108,864", param="reference_images[0]")


def test_more_references_than_the_model_allows(http: httpx.Client) -> None:
    refs = [b64(png_bytes(color=(i * 40, 0, 0))) for i in range(4)]
    response = http.post(
        GENERATIONS, json={"model": "gemini-2.5-flash-image", "prompt": "x", "reference_images": refs}
    )
    assert_error(
        response,
        400,
        "too_many_reference_images",
        "gemini-2.5-flash-image accepts at most 3 reference images, got 4",
        param="reference_images",
    )


def test_more_uploads_than_the_model_allows_on_edits(http: httpx.Client) -> None:
    files = [("image[]", (f"{i}.png", png_bytes(), "image/png")) for i in range(4)]
    response = http.post(EDITS, data={"prompt": "x", "model": "gemini-2.5-flash-image"}, files=files)
    assert_error(
        response,
        400,
        "too_many_reference_images",
        "gemini-2.5-flash-image accepts at most 3 reference images, got 4",
    )


@pytest.mark.parametrize(
    ("model", "kinds", "message"),
    [
        (
            "gemini-3.1-flash-image",
            ["style"],
            "gemini-3.1-flash-image accepts at most 0 style reference images, got 1",
        ),
        (
            "gemini-3-pro-image",
            ["style"] * 4,
            "gemini-3-pro-image accepts at most 3 style reference images, got 4",
        ),
        (
            "gemini-3.1-flash-image",
            ["character"] * 5 + ["object"],
            "gemini-3.1-flash-image accepts at most 4 character reference images, got 5",
        ),
        (
            "gemini-3.1-flash-lite-image",
            ["character"],
            "gemini-3.1-flash-lite-image accepts at most 0 character reference images, got 1",
        ),
    ],
    ids=["flash-style", "pro-style", "flash-character", "lite-character"],
)
def test_per_kind_reference_limits(http: httpx.Client, model: str, kinds: list[str], message: str) -> None:
    refs = [{"data": b64(png_bytes()), "kind": kind} for kind in kinds]
    response = http.post(GENERATIONS, json={"model": model, "prompt": "x", "reference_images": refs})
    assert_error(response, 400, "too_many_reference_images", message, param="reference_images")


@pytest.mark.parametrize("kind", ["pose", "Style", ""])
def test_unknown_reference_kind(http: httpx.Client, kind: str) -> None:
    refs = [{"data": b64(png_bytes()), "kind": kind}]
    response = http.post(GENERATIONS, json={"prompt": "x", "reference_images": refs})
    assert_error(
        response,
        400,
        "invalid_reference_kind",
        f"reference image kind {kind!r} is not known: use object, character or style",
        param="reference_images",
    )


def test_references_within_the_per_kind_limits_are_accepted(http: httpx.Client) -> None:
    refs = [{"data": b64(png_bytes()), "kind": "style"}] * 3 + [{"data": b64(png_bytes()), "kind": "object"}]
    response = http.post(
        GENERATIONS,
        json={"model": "gemini-3-pro-image", "prompt": "x", "reference_images": refs, "async": False},
    )
    assert response.status_code == 200, response.text


# --- values the model does not offer -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gemini-3-pro-image", "prompt": "x", "size": "1:8"}, "size"),
        ({"model": "gemini-3-pro-image", "prompt": "x", "aspect_ratio": "1:8"}, "aspect_ratio"),
    ],
    ids=["via-size", "via-aspect_ratio"],
)
def test_aspect_ratio_not_offered(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    assert_error(
        http.post(GENERATIONS, json=body),
        400,
        "invalid_aspect_ratio",
        f"aspect ratio 1:8 is not offered by gemini-3-pro-image: use {PRO_ASPECTS}",
        param=param,
    )


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (
            {"prompt": "x", "resolution": "2k"},
            "resolution",
            "resolution '2k' is not valid for gemini-3.1-flash-image: use 512, 1K, 2K or 4K (uppercase K)",
        ),
        (
            {"model": "gemini-3-pro-image-preview-4k", "prompt": "x", "resolution": "1K"},
            "resolution",
            "resolution '1K' is not valid for gemini-3-pro-image-preview-4k: use 4K (uppercase K)",
        ),
        (
            {"prompt": "x", "metadata": {"resolution": "8K"}},
            "metadata.resolution",
            "metadata.resolution '8K' is not valid for gemini-3.1-flash-image: use 512, 1K, 2K or 4K",
        ),
        (
            {"model": "gemini-2.5-flash-image", "prompt": "x", "image_size": "2K"},
            "image_size",
            "image_size '2K' is not valid for gemini-2.5-flash-image: use 1K (uppercase K)",
        ),
    ],
    ids=["lowercase-k", "alias-4k-only", "metadata", "image_size"],
)
def test_image_size_not_offered(http: httpx.Client, body: dict[str, Any], param: str, message: str) -> None:
    assert_error(http.post(GENERATIONS, json=body), 400, "invalid_image_size", message, param=param)


@pytest.mark.parametrize(
    ("body", "param", "code", "message"),
    [
        (
            {"temperature": 3},
            "temperature",
            "invalid_temperature",
            "temperature 3.0 is out of range: use a value from 0 to 2",
        ),
        ({"temperature": -0.1}, "temperature", "invalid_temperature", "temperature -0.1 is out of range"),
        ({"top_p": 2}, "top_p", "invalid_top_p", "top_p 2.0 is out of range: use a value from 0 to 1"),
        ({"topP": 2}, "topP", "invalid_top_p", "topP 2.0 is out of range: use a value from 0 to 1"),
        ({"seed": -1}, "seed", "invalid_seed", "seed -1 is out of range: use a value from 0 to "),
        ({"n": 0}, "n", "invalid_n", "n 0 is out of range: use a value from 1 to 10"),
        ({"n": 11}, "n", "invalid_n", "n 11 is out of range: use a value from 1 to 10"),
        ({"n": -3}, "n", "invalid_n", "n -3 is out of range: use a value from 1 to 10"),
        (
            {"output_compression": 101},
            "output_compression",
            "invalid_output_compression",
            "output_compression 101 is out of range: use a value from 0 to 100",
        ),
    ],
    ids=[
        "temperature-3",
        "temperature-neg",
        "top_p-2",
        "topP-2",
        "seed-neg",
        "n-0",
        "n-11",
        "n-neg",
        "compression",
    ],
)
def test_out_of_range_numbers(
    http: httpx.Client, body: dict[str, Any], param: str, code: str, message: str
) -> None:
    assert_error(http.post(GENERATIONS, json={"prompt": "x", **body}), 400, code, message, param=param)


@pytest.mark.parametrize(
    ("literal", "read"), [("NaN", "NaN"), ("Infinity", "Infinity"), ("-1e999", "-Infinity")]
)
def test_non_finite_temperature(http: httpx.Client, literal: str, read: str) -> None:
    """Python's JSON reader takes these; no JSON column (nor PostgreSQL's json) keeps them: refused as the
    body is read, whatever the field."""
    content = b'{"prompt": "x", "temperature": ' + literal.encode() + b"}"
    response = http.post(GENERATIONS, content=content, headers={"content-type": "application/json"})
    assert_error(
        response,
        400,
        "invalid_json",
        f"temperature is {read}, which is not JSON: give a finite number",
        param="temperature",
    )


def test_seed_range_is_written_exactly(http: httpx.Client) -> None:
    response = http.post(GENERATIONS, json={"prompt": "x", "seed": 2**31})
    assert_error(
        response,
        400,
        "invalid_seed",
        "seed 2147483648 is out of range: use a value from 0 to 2147483647",
        param="seed",
    )


@pytest.mark.parametrize(
    ("model", "level", "message"),
    [
        (
            "gemini-3-pro-image",
            "high",
            "thinking_level 'high' cannot be set for gemini-3-pro-image: "
            "it thinks on its own and takes no level",
        ),
        (
            "gemini-2.5-flash-image",
            "minimal",
            "thinking_level 'minimal' cannot be set for gemini-2.5-flash-image: it does not think",
        ),
        (
            "gemini-3.1-flash-image",
            "ultra",
            "thinking_level 'ultra' is not valid for gemini-3.1-flash-image: use minimal or high",
        ),
    ],
    ids=["pro-always-thinks", "2.5-does-not-think", "flash-ultra"],
)
def test_thinking_level(http: httpx.Client, model: str, level: str, message: str) -> None:
    response = http.post(GENERATIONS, json={"model": model, "prompt": "x", "thinking_level": level})
    assert_error(response, 400, "invalid_thinking_level", message, param="thinking_level")


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("big", "size 'big' is not valid: use WxH (e.g. 1024x1024), an aspect ratio (e.g. 16:9) or auto"),
        ("1024*1024", "size '1024*1024' is not valid: use WxH"),
        ("1:1:1", "size '1:1:1' is not valid: use WxH"),
        ("0x100", "size '0x100' has a zero side: use WxH with both sides above 0"),
        ("100x0", "size '100x0' has a zero side: use WxH with both sides above 0"),
    ],
)
def test_bad_size(http: httpx.Client, size: str, message: str) -> None:
    assert_error(
        http.post(GENERATIONS, json={"prompt": "x", "size": size}), 400, "invalid_size", message, param="size"
    )


def test_bad_quality(http: httpx.Client) -> None:
    response = http.post(GENERATIONS, json={"prompt": "x", "quality": "ultra"})
    assert_error(
        response,
        400,
        "invalid_quality",
        "quality 'ultra' is not valid: use auto, standard, hd, low, medium, high, xhigh or max",
        param="quality",
    )


# --- edits -------------------------------------------------------------------------------------------------


def test_multipart_edit_without_an_image(http: httpx.Client) -> None:
    response = http.post(EDITS, files={"prompt": (None, "make it blue")})
    assert response.request.headers["content-type"].startswith("multipart/form-data")
    assert_error(
        response,
        400,
        "missing_image",
        "image is required for an edit: upload at least one image file",
        param="image",
    )


def test_multipart_edit_with_image_as_a_text_field(http: httpx.Client) -> None:
    response = http.post(EDITS, files={"prompt": (None, "x"), "image": (None, b64(png_bytes()))})
    assert_error(response, 400, "missing_image", "upload at least one image file", param="image")


def test_json_edit_without_images(http: httpx.Client) -> None:
    response = http.post(EDITS, json={"prompt": "make it blue"})
    assert_error(response, 400, "missing_image", "images is required for an edit", param="images")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_edit_with_wrong_content_type(http: httpx.Client, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = http.post(EDITS, content=b"prompt=make+it+blue", headers=headers)
    expected = content_type or "no content type"
    assert_error(
        response,
        400,
        "invalid_content_type",
        f"an edit is sent as multipart/form-data (or JSON), not {expected}",
        param=None,
    )


def test_multipart_edit_without_a_boundary(http: httpx.Client) -> None:
    response = http.post(EDITS, content=b"garbage", headers={"content-type": "multipart/form-data"})
    error = assert_error(response, 400, "invalid_request", param=None)
    assert "boundary" in error["message"].lower()


def test_edit_upload_that_is_not_an_image(http: httpx.Client) -> None:
    response = http.post(EDITS, data={"prompt": "x"}, files={"image": ("a.png", b"hello", "image/png")})
    assert_error(
        response, 400, "invalid_image", "image[0] is not a readable image (5 bytes", param="image[0]"
    )


def test_edit_with_a_bad_field_in_the_form(http: httpx.Client) -> None:
    response = http.post(
        EDITS, data={"prompt": "x", "n": "two"}, files={"image": ("a.png", png_bytes(), "image/png")}
    )
    assert_error(response, 400, "invalid_field", "n 'two' is not valid", param="n")


# --- routes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    # GET / is the playground (tests/test_playground.py).
    [
        ("GET", "/v1/nope"),
        ("POST", "/v1/images/generation"),
        ("GET", "/index.html"),
        ("DELETE", "/v1/images"),
    ],
)
def test_unknown_endpoint(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert_error(
        response,
        404,
        "unknown_endpoint",
        f"there is no endpoint {method} {path}",
        "POST /v1/images/generations",
        param=None,
        kind="not_found_error",
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", GENERATIONS), ("PUT", GENERATIONS), ("GET", EDITS), ("DELETE", "/v1/tasks/task_img_x")],
)
def test_wrong_method(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert_error(response, 405, "method_not_allowed", f"{path} does not take {method}", param=None)


def test_wrong_method_says_what_is_allowed(http: httpx.Client) -> None:
    response = http.get(GENERATIONS)
    assert response.status_code == 405
    assert response.headers.get("allow") == "POST"
    assert_error(response, 405, "method_not_allowed", "POST")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/tasks/task_img_00000000000000000000"),
        ("GET", "/v1/images/generations/task_img_00000000000000000000"),
        ("GET", "/v1/tasks/nope"),
        ("GET", "/v1/images/generations/nope"),
        ("POST", "/v1/tasks/nope/cancel"),
        ("POST", "/v1/images/generations/nope/cancel"),
    ],
)
def test_unknown_task(http: httpx.Client, method: str, path: str) -> None:
    task_id = path.removesuffix("/cancel").rsplit("/", 1)[1]
    response = http.request(method, path)
    assert_error(
        response,
        404,
        "task_not_found",
        f"no task has the id {task_id!r}",
        param="task_id",
        kind="not_found_error",
    )


def test_task_id_with_a_nul_byte(http: httpx.Client, backend: str, request: pytest.FixtureRequest) -> None:
    response = http.get("/v1/tasks/a%00b")
    assert_error(response, 404, "task_not_found", "no task has the id", param="task_id")


# --- the official openai SDK -------------------------------------------------------------------------------


def test_sdk_out_of_range_n(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="gemini-3.1-flash-image", prompt="x", n=11)
    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_n"
    assert caught.value.param == "n"
    assert caught.value.type == "invalid_request_error"
    assert "n 11 is out of range: use a value from 1 to 10" in caught.value.message


def test_sdk_edit_with_bytes_that_are_not_an_image(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(model="gemini-3.1-flash-image", prompt="x", image=("a.png", b"hello", "image/png"))
    assert caught.value.code == "invalid_image"
    assert caught.value.param == "image[0]"
    assert "image[0] is not a readable image" in caught.value.message


def test_sdk_retrieve_unknown_model(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.models.retrieve("dall-e-9")
    assert caught.value.code == "model_not_found"


# --- and the server is still serving (keep these last) ------------------------------------------------------


def test_zz_server_is_still_healthy(http: httpx.Client, server: ServerProcess) -> None:
    assert server.process is not None and server.process.poll() is None, server.log()
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_zz_a_valid_generation_still_succeeds(http: httpx.Client) -> None:
    response = http.post(
        GENERATIONS,
        json={
            "model": "gemini-3.1-flash-image",
            "prompt": "a lighthouse at dusk",
            "size": "16:9",
            "response_format": "b64_json",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["size"] == "1376x768"
    assert len(body["data"]) == 1 and body["data"][0]["b64_json"]
    edit = http.post(
        EDITS, data={"prompt": "make it blue"}, files={"image": ("a.png", png_bytes(), "image/png")}
    )
    assert edit.status_code == 200, edit.text
