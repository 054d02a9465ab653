"""Bad input to the Gemini dialect, on the wire: whatever a caller sends to ``generateContent``,
``streamGenerateContent`` or the Interactions API, the answer is never a 500, never hangs and never stops the
server. Every refusal is a 4xx in Google's error shape ``{"error": {"code", "message", "status", "details":
[ErrorInfo]}}`` whose message names the field (as the caller spelled it), the value received and what is
allowed, and whose ``ErrorInfo.metadata.param`` is that field.

Tables of hand-made mistakes first, then hypothesis fuzzing of both endpoints against a server of its own,
then odd paths. Plain httpx is used so that the exact wire shape is asserted; the google-genai SDK for a few
cases, to see that its exceptions carry the message.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import MakeServer, ServerProcess, png_bytes, png_header_only
from pixelgate.catalog import default_catalog

CATALOG = default_catalog()
MODEL = "gemini-3.1-flash-image"
DEFAULT_MODEL = "gemini-3.1-flash-image"  # pixelgate's default_model setting
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
INTERACTIONS = "/v1beta/interactions"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
}
CATALOG_IDS = (
    "gemini-3.1-flash-image, gemini-3.1-flash-lite-image, gemini-3-pro-image, gemini-2.5-flash-image, "
    "gemini-3-pro-image-preview, gemini-3.1-flash-image-preview, "
    "gemini-3.1-flash-image-preview-official, gemini-3-pro-image-preview-4k, gemini-2.5-flash-image-preview "
    "or gemini-2-5-flash-image-preview"
)
FLASH_ASPECTS = "1:1, 1:4, 1:8, 2:3, 3:2, 3:4, 4:1, 4:3, 4:5, 5:4, 8:1, 9:16, 16:9 or 21:9"
IMAGE_MIMES = "image/png, image/jpeg, image/webp, image/heic, image/heif or image/gif"
VIDEO_MIMES = (
    "video/mp4, video/mpeg, video/mpg, video/mov, video/quicktime, video/avi, video/x-flv, video/webm, "
    "video/wmv or video/3gpp"
)
FUZZ_BODY_LIMIT = 300_000
_UNCHECKED = object()


def snake(path: str) -> str:
    """``generationConfig.candidateCount`` -> ``generation_config.candidate_count``, as the server reads
    keys (``api/gemini_common.snake_keys``)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", path).lower()


def assert_google_error(
    response: httpx.Response,
    status: int,
    *fragments: str,
    reason: str | None = None,
    param: object = _UNCHECKED,
) -> dict[str, Any]:
    """``response`` is exactly Google's error shape with this status, its ErrorInfo has this reason (when
    given) and ``metadata.param`` (when given, ``None`` meaning no param), and its message holds every
    fragment. Returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "status", "details"}, error
    assert error["code"] == status, error
    assert error["status"] == GOOGLE_STATUS[status], error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert isinstance(error["details"], list) and error["details"], error
    info = error["details"][0]
    assert info["@type"] == ERROR_INFO, info
    assert info["domain"] == "pixelgate", info
    assert re.fullmatch(r"[A-Z][A-Z0-9_]*", info["reason"]), info
    if reason is not None:
        assert info["reason"] == reason, info
    if param is not _UNCHECKED:
        assert info.get("metadata", {}).get("param") == param, info
    for fragment in fragments:
        assert fragment in error["message"], (fragment, error["message"])
    return error


def param_of(error: dict[str, Any]) -> str | None:
    param: str | None = error["details"][0].get("metadata", {}).get("param")
    return param


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def bmp_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, "BMP")
    return buffer.getvalue()


def post_raw(client: httpx.Client, path: str, content: bytes) -> httpx.Response:
    return client.post(path, content=content, headers={"content-type": "application/json"})


def decode_png(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    """One client per server for the whole module (conftest's makes one per test, ~50 ms each)."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


# --- generateContent bodies ---------------------------------------------------------------------------------

PNG = b64(png_bytes(32, 24))
VIDEO_URI = "https://example.invalid/clip.mp4"  # video URIs are passed on, never fetched


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def ask(text: str = "a red kite over a beach", **extra: Any) -> dict[str, Any]:
    return {"contents": [user({"text": text})], **extra}


def config(**generation_config: Any) -> dict[str, Any]:
    return ask(generationConfig=generation_config)


def image_config(**fields: Any) -> dict[str, Any]:
    return config(imageConfig=fields)


def with_part(part: dict[str, Any]) -> dict[str, Any]:
    return {"contents": [user({"text": "make it blue"}, part)]}


def case(
    case_id: str,
    body: dict[str, Any],
    reason: str,
    field: str,
    *fragments: str,
    named: bool = True,
    model: str = MODEL,
    status: int = 400,
) -> Any:
    """One row of a bad-input table: the refusal's reason, the field at fault in the caller's spelling
    (``named``: whether the message itself names it, not only ``metadata.param``) and message fragments."""
    return pytest.param(body, model, status, reason, field, named, fragments, id=case_id)


GENERATE_CASES = [
    # contents missing, of the wrong type, or empty
    case("contents-missing", {}, "MISSING_FIELD", "contents", "contents is required"),
    case("contents-null", {"contents": None}, "INVALID_FIELD", "contents", "None is not valid", "valid list"),
    case("contents-string", {"contents": "a cat"}, "INVALID_FIELD", "contents", "'a cat' is not valid"),
    case("contents-number", {"contents": 5}, "INVALID_FIELD", "contents", "contents 5 is not valid"),
    case(
        "contents-empty",
        {"contents": []},
        "MISSING_FIELD",
        "contents",
        "contents is empty: send at least one user turn",
    ),
    case("contents-of-numbers", {"contents": [1, 2]}, "INVALID_FIELD", "contents[0]", "1 is not valid"),
    case(
        "parts-string",
        {"contents": [{"parts": "a cat"}]},
        "INVALID_FIELD",
        "contents[0].parts",
        "'a cat' is not valid",
        "valid list",
    ),
    case(
        "parts-of-strings",
        {"contents": [{"parts": ["a cat"]}]},
        "INVALID_FIELD",
        "contents[0].parts[0]",
        "'a cat' is not valid",
    ),
    case(
        "parts-null",
        {"contents": [{"parts": None}]},
        "INVALID_FIELD",
        "contents[0].parts",
        "None is not valid",
    ),
    case(
        "text-number",
        {"contents": [{"parts": [{"text": 5}]}]},
        "INVALID_FIELD",
        "contents[0].parts[0].text",
        "5 is not valid",
        "valid string",
    ),
    case(
        "role-number",
        {"contents": [{"role": 5, "parts": [{"text": "x"}]}]},
        "INVALID_FIELD",
        "contents[0].role",
        "5 is not valid",
    ),
    case(
        "last-role-model",
        {"contents": [user({"text": "a cat"}), {"role": "model", "parts": [{"text": "here"}]}]},
        "INVALID_CONTENTS",
        "contents[1].role",
        "contents[1] is a model turn: the last content must be the user's turn to answer",
        named=False,
    ),
    # the prompt
    case(
        "empty-text",
        ask(""),
        "MISSING_PROMPT",
        "contents[0].parts",
        "contents[0].parts is empty: describe the image to generate",
    ),
    case("blank-text", ask(" \n\t "), "MISSING_PROMPT", "contents[0].parts", "is empty"),
    case("no-parts", {"contents": [{"role": "user"}]}, "MISSING_PROMPT", "contents[0].parts", "is empty"),
    case(
        "prompt-40000-chars",
        ask("a" * 40_000),
        "PROMPT_TOO_LONG",
        "contents[0].parts",
        "contents[0].parts is 40,000 characters long: at most 32,000 are allowed",
    ),
    # inlineData and fileData
    case(
        "inline-not-base64",
        with_part({"inlineData": {"mimeType": "image/png", "data": "!!!not base64!!!"}}),
        "INVALID_IMAGE",
        "contents[0].parts[1].inlineData",
        "is neither an http(s) URL nor valid base64 (starts with '!!!not base64!!!')",
    ),
    case(
        "inline-empty",
        with_part({"inlineData": {"mimeType": "image/png", "data": ""}}),
        "INVALID_MEDIA",
        "contents[0].parts[1].inlineData",
        "has neither data nor uri: give the base64 bytes in data, or a URI",
    ),
    case(
        "inline-not-an-image",
        with_part({"inlineData": {"mimeType": "image/png", "data": b64(b"hello")}}),
        "INVALID_IMAGE",
        "contents[0].parts[1].inlineData",
        "is not a readable image (5 bytes that Pillow cannot decode)",
        "send a PNG, JPEG, WebP or GIF image",
    ),
    case(
        "inline-png-bomb",
        with_part({"inlineData": {"mimeType": "image/png", "data": b64(png_header_only(50_000, 50_000))}}),
        "IMAGE_TOO_LARGE",
        "contents[0].parts[1].inlineData",
        "is 50000x50000 = 2,500,000,000 pixels: at most 67,108,864 are allowed",
    ),
    case(
        "inline-bmp",
        with_part({"inlineData": {"mimeType": "image/bmp", "data": b64(bmp_bytes())}}),
        "UNSUPPORTED_IMAGE_FORMAT",
        "contents[0].parts[1].inlineData",
        "is a BMP image: send PNG, JPEG, WebP or GIF",
    ),
    case(
        "inline-mime-pdf",
        with_part({"inlineData": {"mimeType": "application/pdf", "data": PNG}}),
        "INVALID_MIME_TYPE",
        "contents[0].parts[1].inlineData",
        f"'application/pdf': image models take images ({IMAGE_MIMES})",
    ),
    case(
        "inline-mime-text",
        with_part({"inlineData": {"mimeType": "text/plain", "data": b64(b"a cat")}}),
        "INVALID_MIME_TYPE",
        "contents[0].parts[1].inlineData",
        "'text/plain'",
    ),
    case(
        "inline-mime-mkv",
        with_part({"inlineData": {"mimeType": "video/x-matroska", "data": b64(b"\x1a\x45\xdf\xa3")}}),
        "INVALID_MIME_TYPE",
        "contents[0].parts[1].inlineData",
        f"'video/x-matroska': video must be {VIDEO_MIMES}",
    ),
    case(
        "inline-data-number",
        with_part({"inlineData": {"mimeType": "image/png", "data": 5}}),
        "INVALID_FIELD",
        "contents[0].parts[1].inlineData.data",
        "5 is not valid",
        "valid string",
    ),
    case(
        "filedata-file-uri",
        with_part({"fileData": {"mimeType": "image/png", "fileUri": "file:///etc/passwd"}}),
        "INVALID_URI",
        "contents[0].parts[1].fileData",
        "'file:///etc/passwd'",
        "http(s) URL",
    ),
    case(
        "filedata-loopback",
        with_part({"fileData": {"mimeType": "image/png", "fileUri": "http://127.0.0.1:1/cat.png"}}),
        "IMAGE_URL_FORBIDDEN",
        "contents[0].parts[1].fileData",
        "'http://127.0.0.1:1/cat.png' points at 127.0.0.1, a loopback address",
    ),
    case(
        "video-in-an-earlier-turn",
        {
            "contents": [
                user({"text": "x"}, {"fileData": {"mimeType": "video/mp4", "fileUri": VIDEO_URI}}),
                {"role": "model", "parts": [{"text": "y"}]},
                user({"text": "z"}),
            ]
        },
        "INVALID_MEDIA",
        "contents[0]",
        "contents[0] holds a video: give video context in the last user turn only",
    ),
    case(
        "video-on-lite",
        with_part({"fileData": {"mimeType": "video/mp4", "fileUri": VIDEO_URI}}),
        "VIDEO_NOT_SUPPORTED",
        "contents[0].parts",
        "gemini-3.1-flash-lite-image does not take video input: video is accepted only by "
        "gemini-3.1-flash-image",
        named=False,
        model="gemini-3.1-flash-lite-image",
    ),
    case(
        "four-refs-on-2.5",
        {"contents": [user({"text": "x"}, *[{"inlineData": {"mimeType": "image/png", "data": PNG}}] * 4)]},
        "TOO_MANY_REFERENCE_IMAGES",
        "contents[0].parts",
        "gemini-2.5-flash-image accepts at most 3 reference images, got 4",
        named=False,
        model="gemini-2.5-flash-image",
    ),
    # generationConfig
    case(
        "config-string",
        ask(generationConfig="fast"),
        "INVALID_FIELD",
        "generationConfig",
        "'fast' is not valid",
        "valid dictionary",
    ),
    case(
        "candidateCount-11",
        config(candidateCount=11),
        "INVALID_N",
        "generationConfig.candidateCount",
        "generationConfig.candidateCount 11 is out of range: use a value from 1 to 10",
    ),
    case(
        "candidateCount-minus-1",
        config(candidateCount=-1),
        "INVALID_N",
        "generationConfig.candidateCount",
        "generationConfig.candidateCount -1 is out of range: use a value from 1 to 10",
    ),
    case(
        "candidateCount-two",
        config(candidateCount="two"),
        "INVALID_FIELD",
        "generationConfig.candidateCount",
        "'two' is not valid",
        "valid integer",
    ),
    case(
        "candidateCount-1.5",
        config(candidateCount=1.5),
        "INVALID_FIELD",
        "generationConfig.candidateCount",
        "1.5 is not valid",
        "fractional part",
    ),
    case(
        "temperature-3",
        config(temperature=3),
        "INVALID_TEMPERATURE",
        "generationConfig.temperature",
        "generationConfig.temperature 3.0 is out of range: use a value from 0 to 2",
    ),
    case(
        "temperature-hot",
        config(temperature="hot"),
        "INVALID_FIELD",
        "generationConfig.temperature",
        "'hot' is not valid",
        "valid number",
    ),
    case(
        "topP-2",
        config(topP=2),
        "INVALID_TOP_P",
        "generationConfig.topP",
        "generationConfig.topP 2.0 is out of range: use a value from 0 to 1",
    ),
    case(
        "seed-minus-1",
        config(seed=-1),
        "INVALID_SEED",
        "generationConfig.seed",
        "generationConfig.seed -1 is out of range: use a value from 0 to 2147483647",
    ),
    case(
        "seed-2**31",
        config(seed=2**31),
        "INVALID_SEED",
        "generationConfig.seed",
        "generationConfig.seed 2147483648 is out of range",
    ),
    case(
        "aspectRatio-17:9",
        image_config(aspectRatio="17:9"),
        "INVALID_ASPECT_RATIO",
        "generationConfig.imageConfig.aspectRatio",
        f"aspect ratio 17:9 is not offered by gemini-3.1-flash-image: use {FLASH_ASPECTS}",
        named=False,
    ),
    case(
        "imageSize-1k",
        image_config(imageSize="1k"),
        "INVALID_IMAGE_SIZE",
        "generationConfig.imageConfig.imageSize",
        "generationConfig.imageConfig.imageSize '1k' is not valid for gemini-3.1-flash-image: "
        "use 512, 1K, 2K or 4K (uppercase K)",
    ),
    case(
        "imageSize-8K",
        image_config(imageSize="8K"),
        "INVALID_IMAGE_SIZE",
        "generationConfig.imageConfig.imageSize",
        "imageSize '8K' is not valid for gemini-3.1-flash-image: use 512, 1K, 2K or 4K",
    ),
    case(
        "imageSize-number",
        image_config(imageSize=4),
        "INVALID_FIELD",
        "generationConfig.imageConfig.imageSize",
        "4 is not valid",
        "valid string",
    ),
    case(
        "imageSize-512-on-pro",
        image_config(imageSize="512"),
        "INVALID_IMAGE_SIZE",
        "generationConfig.imageConfig.imageSize",
        "'512' is not valid for gemini-3-pro-image: use 1K, 2K or 4K",
        model="gemini-3-pro-image",
    ),
    case(
        "outputMimeType-bmp",
        image_config(outputMimeType="image/bmp"),
        "INVALID_MIME_TYPE",
        "generationConfig.imageConfig.outputMimeType",
        "generationConfig.imageConfig.outputMimeType 'image/bmp' is not an output format pixelgate makes: "
        "use image/png, image/jpeg or image/webp",
    ),
    case(
        "outputCompressionQuality-200",
        image_config(outputMimeType="image/jpeg", outputCompressionQuality=200),
        "INVALID_OUTPUT_COMPRESSION",
        "generationConfig.imageConfig.outputCompressionQuality",
        "outputCompressionQuality 200 is out of range: use a value from 0 to 100",
    ),
    case(
        "responseModalities-text-only",
        config(responseModalities=["TEXT"]),
        "INVALID_RESPONSE_MODALITIES",
        "generationConfig.responseModalities",
        "generationConfig.responseModalities ['TEXT'] leaves out IMAGE",
        '["IMAGE"] or ["TEXT", "IMAGE"]',
    ),
    case(
        "responseModalities-string",
        config(responseModalities="IMAGE"),
        "INVALID_FIELD",
        "generationConfig.responseModalities",
        "'IMAGE' is not valid",
        "valid list",
    ),
    case(
        "responseModalities-numbers",
        config(responseModalities=[5]),
        "INVALID_FIELD",
        "generationConfig.responseModalities[0]",
        "5 is not valid",
    ),
    case(
        "thinkingLevel-ultra",
        config(thinkingConfig={"thinkingLevel": "ultra"}),
        "INVALID_THINKING_LEVEL",
        "generationConfig.thinkingConfig.thinkingLevel",
        "generationConfig.thinkingConfig.thinkingLevel 'ultra' is not valid for gemini-3.1-flash-image: "
        "use minimal or high",
    ),
    case(
        "thinkingLevel-number",
        config(thinkingConfig={"thinkingLevel": 3}),
        "INVALID_FIELD",
        "generationConfig.thinkingConfig.thinkingLevel",
        "3 is not valid",
    ),
    case(
        "thinkingLevel-on-pro",
        config(thinkingConfig={"thinkingLevel": "high"}),
        "INVALID_THINKING_LEVEL",
        "generationConfig.thinkingConfig.thinkingLevel",
        "'high' cannot be set for gemini-3-pro-image: it thinks on its own and takes no level",
        model="gemini-3-pro-image",
    ),
    case(
        "thinkingLevel-on-2.5",
        config(thinkingConfig={"thinkingLevel": "minimal"}),
        "INVALID_THINKING_LEVEL",
        "generationConfig.thinkingConfig.thinkingLevel",
        "'minimal' cannot be set for gemini-2.5-flash-image: it does not think",
        model="gemini-2.5-flash-image",
    ),
    case(
        "includeThoughts-maybe",
        config(thinkingConfig={"includeThoughts": "maybe"}),
        "INVALID_FIELD",
        "generationConfig.thinkingConfig.includeThoughts",
        "'maybe' is not valid",
        "valid boolean",
    ),
    # tools
    case(
        "tool-functionDeclarations",
        ask(tools=[{"functionDeclarations": [{"name": "lookup"}]}]),
        "UNSUPPORTED_TOOL",
        "tools[0]",
        "image models take only the googleSearch tool",
    ),
    case(
        "tool-codeExecution",
        ask(tools=[{"codeExecution": {}}]),
        "UNSUPPORTED_TOOL",
        "tools[0]",
        "image models take only the googleSearch tool",
    ),
    case(
        "tool-empty",
        ask(tools=[{}]),
        "UNSUPPORTED_TOOL",
        "tools[0]",
        "tools[0] is an empty tool: image models take only the googleSearch tool",
    ),
    case(
        "tools-object",
        ask(tools={"googleSearch": {}}),
        "INVALID_FIELD",
        "tools",
        "is not valid",
        "valid list",
    ),
    case(
        "searchTypes-video",
        ask(tools=[{"googleSearch": {"searchTypes": ["video_search"]}}]),
        "INVALID_SEARCH_TYPE",
        "tools[0].googleSearch.searchTypes",
        "search type 'video_search' is not offered by gemini-3.1-flash-image: use web_search or image_search",
        named=False,
    ),
    case(
        "searchTypes-rest-form-video",
        ask(tools=[{"googleSearch": {"searchTypes": {"videoSearch": {}}}}]),
        "INVALID_SEARCH_TYPE",
        "tools[0].googleSearch.searchTypes",
        "search type 'video_search' is not offered by gemini-3.1-flash-image",
        named=False,
    ),
    case(
        "searchTypes-number",
        ask(tools=[{"googleSearch": {"searchTypes": 5}}]),
        "INVALID_FIELD",
        "tools[0].googleSearch.searchTypes",
        "5 is not valid",
        "valid list",
    ),
    case(
        "searchTypes-list-of-numbers",
        ask(tools=[{"googleSearch": {"searchTypes": [5]}}]),
        "INVALID_FIELD",
        "tools[0].googleSearch.searchTypes[0]",
        "5 is not valid",
        "valid string",
    ),
    case(
        "search-on-lite",
        ask(tools=[{"googleSearch": {}}]),
        "SEARCH_NOT_SUPPORTED",
        "tools[0].googleSearch.searchTypes",
        "gemini-3.1-flash-lite-image does not offer search grounding",
        named=False,
        model="gemini-3.1-flash-lite-image",
    ),
    case(
        "image-search-on-pro",
        ask(tools=[{"googleSearch": {"searchTypes": ["image_search"]}}]),
        "INVALID_SEARCH_TYPE",
        "tools[0].googleSearch.searchTypes",
        "search type 'image_search' is not offered by gemini-3-pro-image: use web_search",
        named=False,
        model="gemini-3-pro-image",
    ),
    # systemInstruction
    case(
        "systemInstruction-number",
        ask(systemInstruction=5),
        "INVALID_FIELD",
        "systemInstruction",
        "5 is not valid",
    ),
    case(
        "systemInstruction-list",
        ask(systemInstruction=["be terse"]),
        "INVALID_FIELD",
        "systemInstruction",
        "['be terse'] is not valid",
    ),
    case(
        "systemInstruction-text-number",
        ask(systemInstruction={"parts": [{"text": 5}]}),
        "INVALID_FIELD",
        "systemInstruction.parts[0].text",
        "5 is not valid",
    ),
    # conversations
    case(
        "history-on-lite",
        {"contents": [user({"text": "x"}), {"role": "model", "parts": [{"text": "y"}]}, user({"text": "z"})]},
        "MULTI_TURN_NOT_SUPPORTED",
        "contents",
        "gemini-3.1-flash-lite-image does not continue a conversation",
        named=False,
        model="gemini-3.1-flash-lite-image",
    ),
    case(
        "history-of-130-turns",
        {
            "contents": [
                {"role": "model" if i % 2 else "user", "parts": [{"text": f"turn {i}"}]} for i in range(131)
            ]
        },
        "HISTORY_TOO_LONG",
        "contents",
        "the conversation holds 130 earlier turns: at most 64 are allowed",
        named=False,
    ),
]


def check_case(
    response: httpx.Response,
    status: int,
    reason: str,
    field: str,
    named: bool,
    fragments: tuple[str, ...],
) -> dict[str, Any]:
    """A table row's refusal. The field may come back in either proto-JSON spelling here (the exact
    spelling is pinned by ``test_type_errors_name_the_field_as_the_caller_spelled_it``)."""
    error = assert_google_error(response, status, *fragments, reason=reason)
    assert param_of(error) in (field, snake(field)), (field, error)
    if named:
        spellings = {field, snake(field)}
        if field.endswith(".type"):  # "input[0] has type 'audio'" names input[0].type
            spellings.add(field.removesuffix(".type") + " has type")
        assert any(name in error["message"] for name in spellings), (field, error["message"])
    return error


@pytest.mark.parametrize(("body", "model", "status", "reason", "field", "named", "fragments"), GENERATE_CASES)
def test_generate_content_refuses_bad_bodies_by_name(
    http: httpx.Client,
    body: dict[str, Any],
    model: str,
    status: int,
    reason: str,
    field: str,
    named: bool,
    fragments: tuple[str, ...],
) -> None:
    response = http.post(f"/v1beta/models/{model}:generateContent", json=body)
    check_case(response, status, reason, field, named, fragments)


@pytest.mark.parametrize(
    ("content", "reason", "param", "fragments"),
    [
        (
            b'{"contents": [{"parts": [{"text": "a cat \\ud800"}]}]}',
            "INVALID_UNICODE",
            "contents[0].parts[0].text",
            (
                "contents[0].parts[0].text 'a cat \\ud800' holds a lone UTF-16 surrogate at character 6: "
                "send valid Unicode text",
            ),
        ),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"seed": ' + b"9" * 40 + b"}}",
            "NUMBER_OUT_OF_RANGE",
            "generationConfig.seed",
            (f"generationConfig.seed {'9' * 40} does not fit in 64 bits: give an integer from",),
        ),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": '
            + b"9" * 40
            + b"}}",
            "NUMBER_OUT_OF_RANGE",
            "generationConfig.candidateCount",
            (f"generationConfig.candidateCount {'9' * 40} does not fit in 64 bits",),
        ),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"seed": ' + b"9" * 5000 + b"}}",
            "INVALID_JSON",
            None,
            ("the request body is not valid JSON", "4300 digits"),
        ),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": NaN}}',
            "INVALID_JSON",
            "generationConfig.temperature",
            ("generationConfig.temperature is NaN, which is not JSON: give a finite number",),
        ),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topP": -Infinity}}',
            "INVALID_JSON",
            "generationConfig.topP",
            ("generationConfig.topP is -Infinity, which is not JSON: give a finite number",),
        ),
        (
            b'{"contents": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "INVALID_JSON",
            None,
            ("the request body is not valid JSON (it nests too deeply: flatten it)",),
        ),
        (b'{"contents": [', "INVALID_JSON", None, ("the request body is not valid JSON", "line 1 column")),
        (b"[]", "INVALID_JSON", None, ("the request body must be a JSON object, got an array",)),
        (b"null", "INVALID_JSON", None, ("the request body must be a JSON object, got null",)),
        (b"", "INVALID_JSON", None, ("the request body is empty: send a JSON object",)),
        (b'{"contents": "\xff\xfe"}', "INVALID_JSON", None, ("not valid JSON (it is not UTF-8)",)),
    ],
    ids=[
        "lone-surrogate",
        "40-digit-seed",
        "40-digit-candidateCount",
        "5000-digit-integer",
        "NaN-temperature",
        "minus-Infinity-topP",
        "nested-100000-deep",
        "truncated",
        "array",
        "null",
        "empty",
        "not-utf8",
    ],
)
@pytest.mark.parametrize("action", ["generateContent", "streamGenerateContent?alt=sse"])
def test_generate_content_refuses_bad_json(
    http: httpx.Client,
    action: str,
    content: bytes,
    reason: str,
    param: str | None,
    fragments: tuple[str, ...],
) -> None:
    """Refused before any stream starts: a streaming caller gets the same JSON error, not an SSE event."""
    response = post_raw(http, f"/v1beta/models/{MODEL}:{action}", content)
    assert_google_error(response, 400, *fragments, reason=reason, param=param)


@pytest.mark.parametrize("endpoint", ["generateContent", "interactions"])
def test_deeply_nested_but_parseable_json_is_a_400(server: ServerProcess, endpoint: str) -> None:
    depth = 600
    if endpoint == "generateContent":
        path, content = GENERATE, b'{"contents": ' + b"[" * depth + b"]" * depth + b"}"
    else:
        path, content = INTERACTIONS, b'{"input": ' + b"[" * depth + b"]" * depth + b"}"
    assert json.loads(content)  # Python itself reads it
    # A client of its own: a 500 makes the server drop the connection, which would break the next test.
    with httpx.Client(base_url=server.url, timeout=30, headers={"connection": "close"}) as client:
        response = post_raw(client, path, content)
    assert response.status_code == 400, response.text[:300]
    assert_google_error(response, 400, "nests more than 64 levels deep", reason="INVALID_JSON")


@pytest.mark.parametrize("endpoint", ["generateContent", "interactions"])
def test_moderately_nested_json_is_refused_by_field(http: httpx.Client, endpoint: str) -> None:
    depth = 40  # under the nesting cap: refused by the field, not the depth
    if endpoint == "generateContent":
        response = post_raw(http, GENERATE, b'{"contents": ' + b"[" * depth + b"]" * depth + b"}")
        assert_google_error(response, 400, "contents[0]", reason="INVALID_FIELD", param="contents[0]")
    else:
        response = post_raw(http, INTERACTIONS, b'{"input": ' + b"[" * depth + b"]" * depth + b"}")
        assert_google_error(response, 400, "input[0] is not a content block", param="input[0]")


# The proto-JSON spelling the caller used must come back in the error. Today pydantic's errors (and the
# media fields) are named after the snake_case copy the body is parsed from.
CAMEL_SPELLING_CASES = [
    pytest.param(config(candidateCount="two"), "generationConfig.candidateCount", id="candidateCount"),
    pytest.param(config(temperature="hot"), "generationConfig.temperature", id="temperature"),
    pytest.param(image_config(imageSize=4), "generationConfig.imageConfig.imageSize", id="imageSize"),
    pytest.param(config(responseModalities="IMAGE"), "generationConfig.responseModalities", id="modalities"),
    pytest.param(
        config(thinkingConfig={"thinkingLevel": 3}),
        "generationConfig.thinkingConfig.thinkingLevel",
        id="thinkingLevel",
    ),
    pytest.param(ask(systemInstruction=5), "systemInstruction", id="systemInstruction"),
    pytest.param(
        ask(tools=[{"googleSearch": {"searchTypes": 5}}]),
        "tools[0].googleSearch.searchTypes",
        id="searchTypes",
    ),
    pytest.param(
        with_part({"inlineData": {"mimeType": "image/png", "data": 5}}),
        "contents[0].parts[1].inlineData.data",
        id="inlineData.data",
    ),
    pytest.param(
        with_part({"inlineData": {"mimeType": "image/png", "data": "!!!"}}),
        "contents[0].parts[1].inlineData",
        id="inlineData-not-base64",
    ),
    pytest.param(
        with_part({"fileData": {"mimeType": "image/png", "fileUri": "file:///etc/passwd"}}),
        "contents[0].parts[1].fileData",
        id="fileData",
    ),
]


@pytest.mark.parametrize(("body", "field"), CAMEL_SPELLING_CASES)
def test_type_errors_name_the_field_as_the_caller_spelled_it(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    error = assert_google_error(http.post(GENERATE, json=body), 400)
    assert param_of(error) == field, error
    assert field in error["message"], error["message"]


def to_snake_case(value: Any) -> Any:
    if isinstance(value, dict):
        return {snake(key): to_snake_case(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_snake_case(item) for item in value]
    return value


@pytest.mark.parametrize(("body", "field"), CAMEL_SPELLING_CASES)
def test_snake_case_callers_get_snake_case_field_names(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    """The other proto-JSON spelling works today: a snake_case body gets snake_case names back."""
    error = assert_google_error(http.post(GENERATE, json=to_snake_case(body)), 400)
    assert param_of(error) == snake(field), error
    assert snake(field) in error["message"], error["message"]


def test_tool_name_is_given_as_the_caller_spelled_it(http: httpx.Client) -> None:
    response = http.post(GENERATE, json=ask(tools=[{"function_declarations": [{"name": "f"}]}]))
    assert_google_error(response, 400, "tools[0] is function_declarations", param="tools[0]")


def test_camel_case_tool_name_is_given_as_the_caller_spelled_it(http: httpx.Client) -> None:
    response = http.post(GENERATE, json=ask(tools=[{"functionDeclarations": [{"name": "f"}]}]))
    assert_google_error(response, 400, "tools[0] is functionDeclarations", param="tools[0]")


@pytest.mark.parametrize(
    ("path", "body", "field", "uri"),
    [
        (
            GENERATE,
            with_part({"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/a.png"}}),
            "contents[0].parts[1].fileData",
            "gs://bucket/a.png",
        ),
        (
            INTERACTIONS,
            {"input": [{"type": "text", "text": "x"}, {"type": "image", "uri": "gs://bucket/a.png"}]},
            "input[1]",
            "gs://bucket/a.png",
        ),
    ],
    ids=["fileData", "interactions-uri"],
)
def test_non_http_uri_is_refused_as_a_uri(
    http: httpx.Client, path: str, body: dict[str, Any], field: str, uri: str
) -> None:
    error = assert_google_error(http.post(path, json=body), 400, f"'{uri}'", "http")
    assert param_of(error) in (field, f"{field}.uri", f"{field}.fileUri", snake(field)), error
    assert "Pillow" not in error["message"], error["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (GENERATE, with_part({"fileData": {"mimeType": "image/png", "fileUri": PNG}})),
        (INTERACTIONS, {"input": [{"type": "text", "text": "x"}, {"type": "image", "uri": PNG}]}),
    ],
    ids=["fileData", "interactions-uri"],
)
def test_base64_in_a_uri_field_is_not_an_image(http: httpx.Client, path: str, body: dict[str, Any]) -> None:
    response = http.post(path, json=body)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert_google_error(response, response.status_code)


def test_unknown_role_is_refused(http: httpx.Client) -> None:
    body = {
        "contents": [{"role": "system", "parts": [{"text": "a cat"}]}],
        "generationConfig": {"imageConfig": {"imageSize": "512"}},
    }
    response = http.post(GENERATE, json=body)
    error = assert_google_error(response, 400, "'system'", "user", "model")
    assert param_of(error) == "contents[0].role", error


def test_candidate_count_zero_is_the_proto_default_or_refused(http: httpx.Client) -> None:
    """proto3 cannot tell 0 from unset, so Gemini treats ``candidateCount: 0`` as one candidate; a 400 that
    names the field would do too. Never a 500, never zero images."""
    body = ask(generationConfig={"candidateCount": 0, "imageConfig": {"imageSize": "512"}})
    response = http.post(GENERATE, json=body)
    if response.status_code == 200:
        candidates = response.json()["candidates"]
        assert len(candidates) == 1, candidates
        image_part = candidates[0]["content"]["parts"][-1]
        expected = CATALOG.get(MODEL).output_pixels("1:1", "512")
        assert decode_png(image_part["inlineData"]["data"]).size == expected
    else:
        assert_google_error(response, 400, "generationConfig.candidateCount", reason="INVALID_N")


@pytest.mark.parametrize("action", ["generateContent", "streamGenerateContent?alt=sse"])
def test_unknown_model_in_the_path_is_a_404_that_names_it(http: httpx.Client, action: str) -> None:
    """As Gemini answers for a model it does not have: NOT_FOUND (a model in a body is a 400)."""
    response = http.post(f"/v1beta/models/dall-e-3:{action}", json=ask())
    assert_google_error(
        response,
        404,
        f"model 'dall-e-3' is not in the catalog: use {CATALOG_IDS}",
        reason="MODEL_NOT_FOUND",
        param="model",
    )


# --- Interactions bodies --------------------------------------------------------------------------------------


def interact(**fields: Any) -> dict[str, Any]:
    """A valid interaction (512 px, cheap to render) with ``fields`` replaced; ``...`` removes a field."""
    body: dict[str, Any] = {"model": MODEL, "input": "a red kite over a beach"}
    body.update(fields)
    return {key: value for key, value in body.items() if value is not ...}


def blocks(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": "make it blue"}, *extra]


def step(kind: str, *content: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "content": list(content)}


INTERACTION_CASES = [
    # input
    case("input-missing", interact(input=...), "MISSING_FIELD", "input", "input is required: describe the"),
    case("input-null", interact(input=None), "MISSING_FIELD", "input", "input is required"),
    case("input-number", interact(input=5), "INVALID_FIELD", "input", "input 5 is not valid"),
    case("input-boolean", interact(input=True), "INVALID_FIELD", "input", "input True is not valid"),
    case(
        "input-list-of-numbers",
        interact(input=[1, 2]),
        "INVALID_INPUT",
        "input[0]",
        'input[0] is not a content block: use {"type": "text", "text": ...} or {"type": "image", "data": ..., '
        '"mime_type": ...}',
    ),
    case(
        "block-without-type",
        interact(input=[{"text": "a cat"}]),
        "UNSUPPORTED_CONTENT",
        "input[0].type",
        "input[0] has type None: image models take text, image or video blocks",
    ),
    case(
        "block-audio",
        interact(input=[{"type": "audio", "data": "AAAA", "mime_type": "audio/wav"}]),
        "UNSUPPORTED_CONTENT",
        "input[0].type",
        "input[0] has type 'audio': image models take text, image or video blocks",
    ),
    case(
        "text-number",
        interact(input=[{"type": "text", "text": 5}]),
        "INVALID_INPUT",
        "input[0].text",
        "input[0].text 5 is not valid: it must be a string",
    ),
    case(
        "image-without-data-or-uri",
        interact(input=blocks({"type": "image", "mime_type": "image/png"})),
        "INVALID_MEDIA",
        "input[1]",
        "input[1] has neither data nor uri: give the base64 bytes in data, or a URI",
    ),
    case(
        "image-data-not-base64",
        interact(input=blocks({"type": "image", "data": "!!!notbase64", "mime_type": "image/png"})),
        "INVALID_IMAGE",
        "input[1]",
        "input[1] is neither an http(s) URL nor valid base64 (starts with '!!!notbase64')",
    ),
    case(
        "image-data-number",
        interact(input=blocks({"type": "image", "data": 5})),
        "INVALID_INPUT",
        "input[1].data",
        "input[1].data must be a string, got int",
    ),
    case(
        "image-not-an-image",
        interact(input=blocks({"type": "image", "data": b64(b"hello"), "mime_type": "image/png"})),
        "INVALID_IMAGE",
        "input[1]",
        "input[1] is not a readable image (5 bytes",
    ),
    case(
        "image-png-bomb",
        interact(input=blocks({"type": "image", "data": b64(png_header_only(50_000, 50_000))})),
        "IMAGE_TOO_LARGE",
        "input[1]",
        "input[1] is 50000x50000 = 2,500,000,000 pixels: at most 67,108,864 are allowed",
    ),
    case(
        "image-mime-pdf",
        interact(input=blocks({"type": "image", "data": PNG, "mime_type": "application/pdf"})),
        "INVALID_MIME_TYPE",
        "input[1]",
        "input[1] has mime_type 'application/pdf'",
        IMAGE_MIMES,
    ),
    case(
        "video-on-lite",
        interact(model="gemini-3.1-flash-lite-image", input=blocks({"type": "video", "uri": VIDEO_URI})),
        "VIDEO_NOT_SUPPORTED",
        "input",
        "gemini-3.1-flash-lite-image does not take video input",
        named=False,
    ),
    # steps
    case(
        "steps-ending-with-model-output",
        interact(
            input=[step("user_input", {"type": "text", "text": "a cat"}), step("model_output", *blocks())]
        ),
        "INVALID_INPUT",
        "input[1]",
        "input ends with a model step: the last step must be the user_input to answer",
        named=False,
    ),
    case(
        "step-of-unknown-type",
        interact(input=[{"type": "banana"}, step("user_input", *blocks())]),
        "INVALID_INPUT",
        "input[0].type",
        "input[0] has type 'banana': a step of input is user_input, model_output, thought",
    ),
    case(
        "step-content-not-a-block",
        interact(input=[{"type": "user_input", "content": "a cat"}]),
        "INVALID_INPUT",
        "input[0].content[0]",
        "input[0].content[0] is not a content block",
    ),
    case(
        "thought-signature-number",
        interact(input=[{"type": "thought", "signature": 5}, step("user_input", *blocks())]),
        "INVALID_INPUT",
        "input[0].signature",
        "input[0].signature must be a string, got int",
    ),
    case(
        "history-on-lite",
        interact(
            model="gemini-3.1-flash-lite-image",
            input=[
                step("user_input", *blocks()),
                step("model_output", *blocks()),
                step("user_input", *blocks()),
            ],
        ),
        "MULTI_TURN_NOT_SUPPORTED",
        "input",
        "gemini-3.1-flash-lite-image does not continue a conversation",
        named=False,
    ),
    case("empty-input", interact(input=""), "MISSING_PROMPT", "input", "input is empty: describe the image"),
    case(
        "input-40000-chars",
        interact(input="a" * 40_000),
        "PROMPT_TOO_LONG",
        "input",
        "input is 40,000 characters long: at most 32,000 are allowed",
    ),
    # response_format
    case(
        "response-format-audio",
        interact(response_format={"type": "audio"}),
        "INVALID_RESPONSE_FORMAT",
        "response_format.type",
        "response_format has type 'audio': image models answer with image or text",
    ),
    case(
        "response-format-two-images",
        interact(response_format=[{"type": "image"}, {"type": "image", "aspect_ratio": "16:9"}]),
        "INVALID_RESPONSE_FORMAT",
        "response_format[1]",
        "response_format[1] is a second image format: give one",
    ),
    case(
        "delivery-email",
        interact(response_format={"type": "image", "delivery": "email"}),
        "INVALID_RESPONSE_FORMAT",
        "response_format.delivery",
        "response_format.delivery 'email' is not valid: use inline or uri",
    ),
    case(
        "delivery-number",
        interact(response_format={"type": "image", "delivery": 5}),
        "INVALID_RESPONSE_FORMAT",
        "response_format.delivery",
        "response_format.delivery 5 is not valid: use inline or uri",
    ),
    case(
        "mime-type-bmp",
        interact(response_format={"type": "image", "mime_type": "image/bmp"}),
        "INVALID_MIME_TYPE",
        "response_format.mime_type",
        "response_format.mime_type 'image/bmp' is not an output format pixelgate makes: "
        "use image/png, image/jpeg or image/webp",
    ),
    case(
        "response-format-string",
        interact(response_format="image"),
        "INVALID_FIELD",
        "response_format",
        "response_format 'image' is not valid",
    ),
    case(
        "response-format-text-only",
        interact(response_format={"type": "text"}),
        "INVALID_RESPONSE_FORMAT",
        "response_format",
        'response_format asks for no image: pixelgate serves image models; add {"type": "image"}',
    ),
    case(
        "aspect-ratio-number",
        interact(response_format={"type": "image", "aspect_ratio": 5}),
        "INVALID_INPUT",
        "response_format.aspect_ratio",
        "response_format.aspect_ratio must be a string, got int",
    ),
    case(
        "aspect-ratio-17:9",
        interact(response_format={"type": "image", "aspect_ratio": "17:9"}),
        "INVALID_ASPECT_RATIO",
        "response_format.aspect_ratio",
        f"aspect ratio 17:9 is not offered by gemini-3.1-flash-image: use {FLASH_ASPECTS}",
        named=False,
    ),
    case(
        "image-size-1k",
        interact(response_format={"type": "image", "image_size": "1k"}),
        "INVALID_IMAGE_SIZE",
        "response_format.image_size",
        "response_format.image_size '1k' is not valid for gemini-3.1-flash-image: use 512, 1K, 2K or 4K "
        "(uppercase K)",
    ),
    case(
        "response-modalities-string",
        interact(response_modalities="image"),
        "INVALID_FIELD",
        "response_modalities",
        "'image' is not valid",
        "valid list",
    ),
    # tools
    case(
        "tool-function",
        interact(tools=[{"type": "function", "name": "lookup"}]),
        "UNSUPPORTED_TOOL",
        "tools[0].type",
        "tools[0] has type 'function': image models take only the google_search tool",
    ),
    case(
        "tool-code-execution",
        interact(tools=[{"type": "code_execution"}]),
        "UNSUPPORTED_TOOL",
        "tools[0].type",
        "tools[0] has type 'code_execution'",
    ),
    case(
        "tool-string",
        interact(tools=["google_search"]),
        "INVALID_FIELD",
        "tools[0]",
        "tools[0] 'google_search' is not valid",
    ),
    case(
        "search-types-string",
        interact(tools=[{"type": "google_search", "search_types": "web_search"}]),
        "INVALID_TOOL",
        "tools[0].search_types",
        'tools[0].search_types must be a list of strings such as ["web_search", "image_search"]',
    ),
    case(
        "search-types-numbers",
        interact(tools=[{"type": "google_search", "search_types": [1]}]),
        "INVALID_TOOL",
        "tools[0].search_types",
        "tools[0].search_types must be a list of strings",
    ),
    case(
        "search-types-video",
        interact(tools=[{"type": "google_search", "search_types": ["video_search"]}]),
        "INVALID_SEARCH_TYPE",
        "tools[0].search_types",
        "search type 'video_search' is not offered by gemini-3.1-flash-image: use web_search or image_search",
        named=False,
    ),
    # generation_config
    case(
        "thinking-level-max",
        interact(generation_config={"thinking_level": "max"}),
        "INVALID_THINKING_LEVEL",
        "generation_config.thinking_level",
        "generation_config.thinking_level 'max' is not valid for gemini-3.1-flash-image: use minimal or high",
    ),
    case(
        "thinking-level-number",
        interact(generation_config={"thinking_level": 5}),
        "INVALID_FIELD",
        "generation_config.thinking_level",
        "5 is not valid",
    ),
    case(
        "thinking-level-on-pro",
        interact(model="gemini-3-pro-image", generation_config={"thinking_level": "high"}),
        "INVALID_THINKING_LEVEL",
        "generation_config.thinking_level",
        "cannot be set for gemini-3-pro-image",
    ),
    case(
        "generation-config-string",
        interact(generation_config="fast"),
        "INVALID_FIELD",
        "generation_config",
        "'fast' is not valid",
    ),
    case(
        "seed-minus-1",
        interact(generation_config={"seed": -1}),
        "INVALID_SEED",
        "generation_config.seed",
        "generation_config.seed -1 is out of range: use a value from 0 to 2147483647",
    ),
    case(
        "temperature-3",
        interact(generation_config={"temperature": 3}),
        "INVALID_TEMPERATURE",
        "generation_config.temperature",
        "generation_config.temperature 3.0 is out of range: use a value from 0 to 2",
    ),
    case(
        "top-p-2",
        interact(generation_config={"top_p": 2}),
        "INVALID_TOP_P",
        "generation_config.top_p",
        "generation_config.top_p 2.0 is out of range: use a value from 0 to 1",
    ),
    case(
        "config-aspect-ratio-17:9",
        interact(generation_config={"image_config": {"aspect_ratio": "17:9"}}),
        "INVALID_ASPECT_RATIO",
        "generation_config.image_config.aspect_ratio",
        "aspect ratio 17:9 is not offered by gemini-3.1-flash-image",
        named=False,
    ),
    # previous_interaction_id
    case(
        "previous-dot-dot",
        interact(previous_interaction_id="../../etc"),
        "INTERACTION_NOT_FOUND",
        "previous_interaction_id",
        "previous_interaction_id '../../etc' names no interaction",
        status=404,
    ),
    case(
        "previous-10kB",
        interact(previous_interaction_id="x" * 10_000),
        "INTERACTION_NOT_FOUND",
        "previous_interaction_id",
        "names no interaction",
        status=404,
    ),
    case(
        "previous-with-NUL",
        interact(previous_interaction_id="abc\x00def"),
        "INTERACTION_NOT_FOUND",
        "previous_interaction_id",
        "previous_interaction_id 'abc\\x00def' names no interaction",
        status=404,
    ),
    case(
        "previous-number",
        interact(previous_interaction_id=5),
        "INVALID_FIELD",
        "previous_interaction_id",
        "5 is not valid",
        "valid string",
    ),
    # flags and the rest
    case(
        "background-maybe",
        interact(background="maybe"),
        "INVALID_FIELD",
        "background",
        "background 'maybe' is not valid",
        "valid boolean",
    ),
    case("store-nope", interact(store="nope"), "INVALID_FIELD", "store", "store 'nope' is not valid"),
    case(
        "background-without-store",
        interact(background=True, store=False),
        "INVALID_STORE",
        "store",
        "background: true needs store: true",
    ),
    case(
        "uri-delivery-without-store",
        interact(store=False, response_format={"type": "image", "delivery": "uri"}),
        "INVALID_STORE",
        "store",
        'response_format.delivery "uri" needs store: true',
    ),
    case(
        "stream-string",
        interact(stream="sometimes"),
        "INVALID_FIELD",
        "stream",
        "stream 'sometimes' is not valid",
    ),
    case("agent", interact(agent="deep-research"), "UNSUPPORTED_AGENT", "agent", "agent 'deep-research'"),
    case("model-number", interact(model=5), "INVALID_FIELD", "model", "model 5 is not valid"),
    case(
        "model-unknown",
        interact(model="dall-e-3"),
        "MODEL_NOT_FOUND",
        "model",
        f"model 'dall-e-3' is not in the catalog: use {CATALOG_IDS}",
    ),
    case(
        "system-instruction-number",
        interact(system_instruction=5),
        "INVALID_FIELD",
        "system_instruction",
        "system_instruction 5 is not valid",
    ),
]


@pytest.mark.parametrize(
    ("body", "model", "status", "reason", "field", "named", "fragments"), INTERACTION_CASES
)
def test_interactions_refuse_bad_bodies_by_name(
    http: httpx.Client,
    body: dict[str, Any],
    model: str,
    status: int,
    reason: str,
    field: str,
    named: bool,
    fragments: tuple[str, ...],
) -> None:
    del model  # the model is in the body
    error = check_case(http.post(INTERACTIONS, json=body), status, reason, field, named, fragments)
    assert param_of(error) == field, error  # Interactions spell every field in snake_case


@pytest.mark.parametrize(
    ("content", "reason", "param", "fragment"),
    [
        (
            b'{"input": "a \\ud800 cat"}',
            "INVALID_UNICODE",
            "input",
            "input 'a \\ud800 cat' holds a lone UTF-16 surrogate",
        ),
        (
            b'{"input": "x", "generation_config": {"seed": ' + b"9" * 5000 + b"}}",
            "INVALID_JSON",
            None,
            "the request body is not valid JSON",
        ),
        (
            b'{"input": "x", "generation_config": {"seed": ' + b"9" * 40 + b"}}",
            "NUMBER_OUT_OF_RANGE",
            "generation_config.seed",
            f"generation_config.seed {'9' * 40} does not fit in 64 bits",
        ),
        (
            b'{"input": "x", "generation_config": {"temperature": Infinity}}',
            "INVALID_JSON",
            "generation_config.temperature",
            "generation_config.temperature is Infinity, which is not JSON",
        ),
        (
            b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "INVALID_JSON",
            None,
            "it nests too deeply",
        ),
        (b'"a cat"', "INVALID_JSON", None, "the request body must be a JSON object, got a string"),
    ],
    ids=["lone-surrogate", "5000-digit-integer", "40-digit-seed", "Infinity", "nested-100000-deep", "string"],
)
def test_interactions_refuse_bad_json(
    http: httpx.Client, content: bytes, reason: str, param: str | None, fragment: str
) -> None:
    assert_google_error(post_raw(http, INTERACTIONS, content), 400, fragment, reason=reason, param=param)


def model_output_image(interaction: dict[str, Any]) -> Image.Image:
    outputs = [s for s in interaction["steps"] if s["type"] == "model_output"]
    assert len(outputs) == 1, interaction["steps"]
    images = [block for block in outputs[0]["content"] if block["type"] == "image"]
    assert len(images) == 1, outputs
    return decode_png(images[0]["data"])


def test_interaction_without_model_uses_the_default_model(http: httpx.Client) -> None:
    response = http.post(
        INTERACTIONS,
        json=interact(
            model=..., response_format={"type": "image", "image_size": "512", "aspect_ratio": "3:2"}
        ),
    )
    assert response.status_code == 200, response.text
    interaction = response.json()
    assert interaction["model"] == DEFAULT_MODEL
    assert interaction["status"] == "completed"
    expected = CATALOG.get(DEFAULT_MODEL).output_pixels("3:2", "512")
    assert model_output_image(interaction).size == expected


def test_background_yes_is_a_lax_boolean(http: httpx.Client) -> None:
    """pydantic's lax mode (the project's rule, as for ``"n": "2"`` on the OpenAI side) reads ``"yes"`` as
    true: the interaction answers at once and completes in the background."""
    body = interact(background="yes", response_format={"type": "image", "image_size": "512"})
    response = http.post(INTERACTIONS, json=body)
    assert response.status_code == 200, response.text
    interaction = response.json()
    assert interaction["status"] in ("queued", "in_progress"), interaction
    deadline = time.monotonic() + 20
    while interaction["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        interaction = http.get(f"{INTERACTIONS}/{interaction['id']}").json()
    assert interaction["status"] == "completed", interaction
    assert model_output_image(interaction).size == CATALOG.get(MODEL).output_pixels("1:1", "512")


def test_empty_previous_interaction_id_is_unset_or_refused(http: httpx.Client) -> None:
    """``""`` is proto3's unset string: a new conversation, or a 4xx that names the field. Never a 500."""
    body = interact(previous_interaction_id="", response_format={"type": "image", "image_size": "512"})
    response = http.post(INTERACTIONS, json=body)
    if response.status_code == 200:
        interaction = response.json()
        assert "previous_interaction_id" not in interaction, interaction
        assert interaction["status"] == "completed"
    else:
        error = assert_google_error(response, response.status_code, "previous_interaction_id")
        assert 400 <= response.status_code < 500
        assert param_of(error) == "previous_interaction_id"


def test_lifecycle_mistakes_are_4xx_in_google_shape(http: httpx.Client) -> None:
    """Cancelling a finished interaction, deleting one twice, continuing a deleted one."""
    body = interact(response_format={"type": "image", "image_size": "512"})
    created = http.post(INTERACTIONS, json=body)
    assert created.status_code == 200, created.text
    interaction_id = created.json()["id"]

    cancel = http.post(f"{INTERACTIONS}/{interaction_id}/cancel")
    assert_google_error(cancel, 409, interaction_id, "can no longer be cancelled")
    assert http.delete(f"{INTERACTIONS}/{interaction_id}").status_code == 200
    assert_google_error(
        http.delete(f"{INTERACTIONS}/{interaction_id}"),
        404,
        f"no interaction has the id {interaction_id!r}",
        reason="INTERACTION_NOT_FOUND",
        param="id",
    )
    continued = http.post(INTERACTIONS, json=interact(input="bluer", previous_interaction_id=interaction_id))
    assert_google_error(
        continued,
        404,
        f"previous_interaction_id {interaction_id!r} names no interaction",
        reason="INTERACTION_NOT_FOUND",
        param="previous_interaction_id",
    )


@pytest.mark.parametrize("delivery", [[], False, {}])
def test_delivery_of_the_wrong_type_is_refused(http: httpx.Client, delivery: Any) -> None:
    body = interact(response_format={"type": "image", "image_size": "512", "delivery": delivery})
    assert_google_error(
        http.post(INTERACTIONS, json=body), 400, "response_format.delivery", param="response_format.delivery"
    )


# --- the SDK sees the same messages -----------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_sdk_client_error_carries_the_message(server: ServerProcess, api_version: str) -> None:
    client = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url=server.url, api_version=api_version, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(
            model=MODEL,
            contents="a red kite",
            config=types.GenerateContentConfig(
                image_config=types.ImageConfig(image_size="1k"),
            ),
        )
    error = caught.value
    assert error.code == 400 and error.status == "INVALID_ARGUMENT"
    assert error.message is not None
    assert (
        "generationConfig.imageConfig.imageSize '1k' is not valid for gemini-3.1-flash-image" in error.message
    )
    assert error.details["error"]["details"][0]["reason"] == "INVALID_IMAGE_SIZE"


def test_sdk_interactions_errors_carry_the_message(server: ServerProcess) -> None:
    client = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(
            base_url=server.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    with pytest.raises(Exception) as caught:
        client.interactions.create(
            model=MODEL, input="a red kite", response_format={"type": "image", "aspect_ratio": "17:9"}
        )
    error: Any = caught.value
    assert type(error).__name__ == "BadRequestError", type(error).__mro__
    assert error.status_code == 400
    body = error.body["error"]
    assert "aspect ratio 17:9 is not offered by gemini-3.1-flash-image" in body["message"]
    assert body["details"][0]["metadata"]["param"] == "response_format.aspect_ratio"

    with pytest.raises(Exception) as caught:
        client.interactions.get("task_img_00000000000000000000")
    error = caught.value
    assert type(error).__name__ == "NotFoundError", type(error).__mro__
    assert error.status_code == 404
    assert "no interaction has the id 'task_img_00000000000000000000'" in error.body["error"]["message"]


# --- odd paths ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status", "reason", "fragments"),
    [
        (
            "POST",
            "/v1beta/models/:generateContent",
            404,
            "UNKNOWN_ENDPOINT",
            ("there is no endpoint POST models/:generateContent: use models/{model}:generateContent",),
        ),
        ("POST", "/v1/models/:streamGenerateContent", 404, "UNKNOWN_ENDPOINT", ("models/{model}:",)),
        (
            "POST",
            "/v1beta/models/gemini-3.1-flash-image",
            404,
            "UNKNOWN_ENDPOINT",
            ("there is no endpoint POST models/gemini-3.1-flash-image: use models/{model}:generateContent",),
        ),
        (
            "POST",
            "/v1beta/models/gemini-3.1-flash-image:frobnicate",
            404,
            "UNKNOWN_ENDPOINT",
            (
                "models/gemini-3.1-flash-image:frobnicate is not served: pixelgate serves :generateContent, "
                ":streamGenerateContent and :predict",
            ),
        ),
        (
            "POST",
            "/v1beta/models/gemini-3.1-flash-image:generateContent:extra",
            404,
            "UNKNOWN_ENDPOINT",
            ("generateContent:extra is not served",),
        ),
        ("POST", "/v1beta/models/x:", 404, "UNKNOWN_ENDPOINT", ("models/x: is not served",)),
        (
            "POST",
            "/v1beta/models/%00:generateContent",
            404,
            "MODEL_NOT_FOUND",
            ("model '\\x00' is not in the catalog",),
        ),
        (
            "GET",
            "/v1beta/interactions/abc%00def",
            404,
            "INTERACTION_NOT_FOUND",
            ("no interaction has the id 'abc\\x00def'",),
        ),
        ("GET", "/v1/interactions/abc%00def", 404, "INTERACTION_NOT_FOUND", ("'abc\\x00def'",)),
        ("GET", "/v1beta/interactions/%2e%2e", 404, "INTERACTION_NOT_FOUND", ("the id '..'",)),
        ("POST", "/v1beta/interactions/%00/cancel", 404, "INTERACTION_NOT_FOUND", ("the id '\\x00'",)),
        (
            "DELETE",
            "/v1beta/interactions/a%20b%3Bc'%22%3C%3E",
            404,
            "INTERACTION_NOT_FOUND",
            ("no interaction has the id 'a b;c",),
        ),
        (
            "DELETE",
            "/v1beta/interactions/%ff%fe",
            404,
            "INTERACTION_NOT_FOUND",
            ("no interaction has the id",),
        ),
        ("DELETE", "/v1beta/interactions/%E2%80%AE", 404, "INTERACTION_NOT_FOUND", ("'\\u202e'",)),
        ("DELETE", "/v1/interactions/%00", 404, "INTERACTION_NOT_FOUND", ("'\\x00'",)),
        ("DELETE", "/v1beta/interactions/" + "a" * 10_000, 404, "INTERACTION_NOT_FOUND", ("'aaaa",)),
        (
            "DELETE",
            "/v1beta/interactions/..%2F..%2Fetc",
            404,
            "UNKNOWN_ENDPOINT",
            ("there is no endpoint DELETE /v1beta/interactions/../../etc",),
        ),
        (
            "GET",
            "/v1beta/models/%2e%2e",
            404,
            "MODEL_NOT_FOUND",
            (f"model '..' is not in the catalog: use {CATALOG_IDS}",),
        ),
        ("GET", "/v1beta/models/..%2F..%2Fhealthz", 404, "MODEL_NOT_FOUND", ("model '../../healthz'",)),
        ("GET", "/v1beta/models/%00", 404, "MODEL_NOT_FOUND", ("model '\\x00'",)),
        ("PUT", "/v1beta/interactions/abc", 405, "METHOD_NOT_ALLOWED", ("does not take PUT",)),
        (
            "GET",
            "/v1beta/models?pageSize=abc",
            400,
            "INVALID_PAGE",
            ("pageSize 'abc' is not valid: use a page size from 1 to 1000",),
        ),
        ("GET", "/v1beta/models?pageSize=0", 400, "INVALID_PAGE", ("pageSize '0' is not valid",)),
        (
            "GET",
            "/v1beta/models?pageSize=99999999999999999999999",
            400,
            "INVALID_PAGE",
            ("pageSize '99999999999999999999999' is not valid",),
        ),
    ],
    ids=lambda value: value[:60] if isinstance(value, str) else None,
)
def test_odd_paths_are_4xx_in_google_shape(
    http: httpx.Client, method: str, path: str, status: int, reason: str, fragments: tuple[str, ...]
) -> None:
    body = ask() if method in ("POST", "PUT") else None
    response = http.request(method, path, json=body)
    assert_google_error(response, status, *fragments, reason=reason)


def test_odd_model_on_the_shared_v1_path_answers_in_google_shape(http: httpx.Client) -> None:
    response = http.get("/v1/models/%2e%2e", headers={"x-goog-api-key": "k"})
    assert_google_error(response, 404, "model '..' is not in the catalog", reason="MODEL_NOT_FOUND")


# --- fuzzing, against a server of its own ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(make_server: MakeServer) -> ServerProcess:
    """SQLite only (the fuzz is about parsing, not storage), with a small body limit to reach the 413."""
    return make_server("sqlite", "--emulate", "--max-body-bytes", str(FUZZ_BODY_LIMIT))


@pytest.fixture(scope="module")
def fuzz_http(fuzz_server: ServerProcess) -> Iterator[httpx.Client]:
    # A timeout well under the fuzz's budget: a request that hangs fails the example.
    with httpx.Client(base_url=fuzz_server.url, timeout=15) as client:
        yield client


# JSON as json.loads gives it (ints far below the 4300-digit limit; NaN and Infinity are read too).
json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["\ud800", "a\udfffb", "\x00", "../..", "IMAGE", "TEXT", "1K", "16:9"])
)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
texts = st.text(max_size=30) | st.sampled_from(["a red kite", "", "  ", "a \ud800 cat", "x" * 33_000])
ASPECTS = sorted(
    {aspect for spec in CATALOG for aspect in spec.aspect_ratios} | {"17:9", "0:1", "1:0", "16:9 "}
)
SIZES = ["512", "1K", "1k", "8K", "", "4k", "1024", "2k"]  # no valid 2K/4K: renders cost time, not coverage
MIMES = ["image/png", "image/jpeg", "image/webp", "image/bmp", "IMAGE/PNG", "application/pdf", "text/plain"]
MEDIA_MIMES = [*MIMES, "video/mp4", "video/x-matroska", "", "image/"]
DATA = [
    PNG,
    "data:image/png;base64," + PNG,
    b64(png_header_only(50_000, 50_000)),
    b64(png_header_only(9000, 8000)),
    b64(bmp_bytes()),
    b64(b"hello"),
    "aGVsbG8",
    "!!!",
    "",
    PNG.replace("+", "-").replace("/", "_").rstrip("="),
]
# Every URI is local and refused at once (nothing may leave the machine, nothing may wait on DNS).
URIS = [
    "http://127.0.0.1:1/a.png",
    "https://127.0.0.1:1/v.mp4",
    "gs://bucket/a.png",
    "file:///etc/passwd",
    "",
]
SIGNATURES = ["skip_thought_signature_validator", "c2lnbmF0dXJl", "!!", ""]


# Every catalog model but the 4K-only alias, whose renders take seconds and add no parsing coverage.
FUZZ_MODELS = [model for model in CATALOG.ids if set(CATALOG.get(model).image_sizes) != {"4K"}]


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes anything JSON."""
    return strategy | json_value


parts = st.fixed_dictionaries(
    {},
    optional={
        "text": maybe(texts),
        "inlineData": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "mimeType": maybe(st.sampled_from(MEDIA_MIMES)),
                    "data": maybe(st.sampled_from(DATA)),
                },
            )
        ),
        "fileData": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "mimeType": maybe(st.sampled_from(MEDIA_MIMES)),
                    "fileUri": maybe(st.sampled_from(URIS)),
                },
            )
        ),
        "thought": maybe(st.booleans()),
        "thoughtSignature": maybe(st.sampled_from(SIGNATURES)),
    },
)
turns = st.fixed_dictionaries(
    {"parts": maybe(st.lists(maybe(parts), max_size=4))},
    optional={"role": maybe(st.sampled_from(["user", "model", "system", "", "USER"]))},
)
plausible_turn = st.builds(
    lambda text: {"role": "user", "parts": [{"text": text}]}, st.sampled_from(["a kite", "x"])
)
generation_configs = st.fixed_dictionaries(
    {},
    optional={
        "responseModalities": maybe(
            st.lists(st.sampled_from(["IMAGE", "TEXT", "image", "AUDIO"]), max_size=3)
        ),
        "candidateCount": maybe(st.integers(-2, 12)),
        "seed": maybe(st.integers(-3, 2**31 + 3)),
        "temperature": maybe(st.floats(-1, 3, allow_nan=False)),
        "topP": maybe(st.floats(-1, 2, allow_nan=False)),
        "imageConfig": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "aspectRatio": maybe(st.sampled_from(ASPECTS)),
                    "imageSize": maybe(st.sampled_from(SIZES)),
                    "outputMimeType": maybe(st.sampled_from(MIMES)),
                    "outputCompressionQuality": maybe(st.integers(-5, 105)),
                },
            )
        ),
        "thinkingConfig": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "thinkingLevel": maybe(st.sampled_from(["minimal", "high", "HIGH", "ultra", "", "low"])),
                    "includeThoughts": maybe(st.booleans()),
                    "thinkingBudget": maybe(st.integers(-1, 10_000)),
                },
            )
        ),
    },
)
gemini_tools = st.lists(
    maybe(
        st.sampled_from([{"codeExecution": {}}, {"functionDeclarations": [{"name": "f"}]}, {}])
        | st.fixed_dictionaries(
            {
                "googleSearch": maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "searchTypes": maybe(
                                st.lists(
                                    st.sampled_from(["web_search", "image_search", "video_search"]),
                                    max_size=3,
                                )
                                | st.just({"webSearch": {}, "imageSearch": {}})
                            )
                        },
                    )
                )
            }
        )
    ),
    max_size=2,
)
generate_bodies = st.fixed_dictionaries(
    {},
    optional={
        "contents": maybe(st.lists(plausible_turn | turns, min_size=1, max_size=4) | turns),
        "generationConfig": maybe(generation_configs),
        "tools": maybe(gemini_tools),
        "systemInstruction": maybe(
            st.text(max_size=10) | st.builds(lambda t: {"parts": [{"text": t}]}, texts)
        ),
    },
)


@st.composite
def generate_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A path (either version, plain or streaming, any catalog model or a made-up one) and a body, in
    either proto-JSON spelling."""
    version = draw(st.sampled_from(["v1beta", "v1"]))
    model = draw(st.sampled_from([*FUZZ_MODELS, "dall-e-3", "models/gemini-3.1-flash-image"]))
    action = draw(st.sampled_from(["generateContent", "generateContent", "streamGenerateContent?alt=sse"]))
    body = draw(
        plausible_generate_bodies()
        | wild_generate_bodies()
        | generate_bodies
        | st.dictionaries(st.text(max_size=12), json_value, max_size=4)
    )
    if draw(st.booleans()):
        body = to_snake_case(body)
    return f"/{version}/models/{model}:{action}", body


interaction_blocks = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, maybe(texts)),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["image", "video"])},
        optional={
            "data": maybe(st.sampled_from(DATA)),
            "uri": maybe(st.sampled_from(URIS)),
            "mime_type": maybe(st.sampled_from(MEDIA_MIMES)),
        },
    ),
    st.fixed_dictionaries({"type": maybe(st.sampled_from(["audio", "document", "", "thought"]))}),
    json_value,
)
interaction_steps = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["user_input", "model_output"])},
        optional={"content": maybe(st.lists(interaction_blocks, max_size=3) | interaction_blocks)},
    ),
    st.fixed_dictionaries(
        {"type": st.just("thought")}, optional={"signature": maybe(st.sampled_from(SIGNATURES))}
    ),
    json_value,
)
image_formats = st.fixed_dictionaries(
    {"type": maybe(st.sampled_from(["image", "image", "text", "audio"]))},
    optional={
        "aspect_ratio": maybe(st.sampled_from(ASPECTS)),
        "image_size": maybe(st.sampled_from(SIZES)),
        "mime_type": maybe(st.sampled_from(MIMES)),
        "delivery": maybe(st.sampled_from(["inline", "uri", "email", ""])),
    },
)
interaction_bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": maybe(st.sampled_from([*FUZZ_MODELS, "dall-e-3", ""])),
        "input": maybe(
            texts
            | st.lists(interaction_blocks, max_size=3)
            | st.lists(interaction_steps, min_size=1, max_size=4)
            | interaction_blocks
        ),
        "response_format": maybe(image_formats | st.lists(image_formats, max_size=3)),
        "response_modalities": maybe(st.lists(st.sampled_from(["image", "text", "audio"]), max_size=3)),
        "generation_config": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "thinking_level": maybe(st.sampled_from(["minimal", "high", "max", ""])),
                    "thinking_summaries": maybe(st.sampled_from(["auto", "none", "NONE", "all"])),
                    "image_config": maybe(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "aspect_ratio": maybe(st.sampled_from(ASPECTS)),
                                "image_size": maybe(st.sampled_from(SIZES)),
                            },
                        )
                    ),
                    "seed": maybe(st.integers(-3, 2**31 + 3)),
                    "temperature": maybe(st.floats(-1, 3, allow_nan=False)),
                    "top_p": maybe(st.floats(-1, 2, allow_nan=False)),
                },
            )
        ),
        "tools": maybe(
            st.lists(
                maybe(
                    st.fixed_dictionaries(
                        {"type": maybe(st.sampled_from(["google_search", "function", "url_context"]))},
                        optional={
                            "search_types": maybe(
                                st.lists(st.sampled_from(["web_search", "image_search", "x"]), max_size=3)
                            )
                        },
                    )
                ),
                max_size=2,
            )
        ),
        "system_instruction": maybe(st.text(max_size=10)),
        "previous_interaction_id": maybe(
            st.sampled_from(["", "../../etc", "abc\x00def", "task_img_00000000000000000000", "x" * 300])
        ),
        "store": maybe(st.booleans()),
        "background": maybe(st.booleans() | st.sampled_from(["yes", "no", "maybe"])),
        "stream": maybe(st.booleans()),
        "agent": maybe(st.sampled_from(["deep-research"])),
    },
)


# --- plausible bodies, and plausible bodies with one or two fields gone wild -------------------------------

_DROP = object()  # a mutation that removes the field
SKIP = "skip_thought_signature_validator"


def mutate(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """``body`` (a deep copy) with the field at ``path`` set to ``value`` (or removed), creating the objects
    on the way; a path through something that is no longer an object or list is left alone."""
    body = json.loads(json.dumps(body))
    node: Any = body
    for key in path[:-1]:
        if isinstance(key, int) and isinstance(node, list):
            if key >= len(node):
                node.append({})
                key = len(node) - 1
            node = node[key]
        elif isinstance(key, str) and isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            return body
    last = path[-1]
    if isinstance(node, dict) and isinstance(last, str):
        if value is _DROP:
            node.pop(last, None)
        else:
            node[last] = value
    elif isinstance(node, list) and isinstance(last, int):
        if value is _DROP:
            del node[last:]
        elif last < len(node):
            node[last] = value
        else:
            node.append(value)
    return body


def wild(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A near miss from ``strategy``, anything JSON, or the field removed."""
    return strategy | json_value | st.just(_DROP)


@st.composite
def plausible_generate_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A body the server should take (or refuse only for a value the chosen model does not offer)."""
    turn: list[dict[str, Any]] = [{"text": draw(st.sampled_from(["a red kite", "a lighthouse at dusk"]))}]
    if draw(st.booleans()):
        turn.append({"inlineData": {"mimeType": "image/png", "data": PNG}})
    contents: list[dict[str, Any]] = [{"role": "user", "parts": turn}]
    if draw(st.booleans()):  # a conversation: an earlier turn and the model's answer with its signature
        model_turn = [{"text": "here it is"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]
        if draw(st.booleans()):
            model_turn[1]["thoughtSignature"] = SKIP
        contents = [{"role": "user", "parts": [{"text": "a kite"}]}, {"role": "model", "parts": model_turn}]
        contents.append({"role": "user", "parts": turn})
    generation_config = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "responseModalities": st.sampled_from([["IMAGE"], ["TEXT", "IMAGE"], ["image"]]),
                "candidateCount": st.integers(1, 2),
                "seed": st.integers(0, 2**31 - 1),
                "temperature": st.floats(0, 2),
                "topP": st.floats(0, 1),
                "imageConfig": st.fixed_dictionaries(
                    {"imageSize": st.sampled_from(["512", "512", "1K"])},
                    optional={
                        "aspectRatio": st.sampled_from(["1:1", "16:9", "9:16", "4:3", "1:8", "21:9"]),
                        "outputMimeType": st.sampled_from(["image/png", "image/jpeg", "image/webp"]),
                    },
                ),
                "thinkingConfig": st.fixed_dictionaries(
                    {},
                    optional={
                        "thinkingLevel": st.sampled_from(["minimal", "high", "MINIMAL"]),
                        "includeThoughts": st.booleans(),
                    },
                ),
            },
        )
    )
    body: dict[str, Any] = {"contents": contents, "generationConfig": generation_config}
    if draw(st.booleans()):
        kinds = draw(st.sampled_from([[], ["web_search"], ["web_search", "image_search"]]))
        body["tools"] = [{"googleSearch": {"searchTypes": kinds} if kinds else {}}]
    if draw(st.booleans()):
        body["systemInstruction"] = {"parts": [{"text": "draw in pencil"}]}
    return body


GENERATE_WILD_PATHS: dict[tuple[str | int, ...], st.SearchStrategy[Any]] = {
    ("contents",): wild(st.lists(turns, max_size=3)),
    ("contents", 0): wild(turns),
    ("contents", 0, "role"): wild(st.sampled_from(["model", "system", "", "USER"])),
    ("contents", 0, "parts"): wild(st.lists(parts, max_size=3)),
    ("contents", 0, "parts", 0, "text"): wild(texts),
    ("contents", 0, "parts", 1): wild(parts),
    ("contents", 0, "parts", 1, "inlineData", "data"): wild(st.sampled_from(DATA)),
    ("contents", 0, "parts", 1, "inlineData", "mimeType"): wild(st.sampled_from(MEDIA_MIMES)),
    ("contents", 1, "parts", 1, "thoughtSignature"): wild(st.sampled_from(SIGNATURES)),
    ("contents", 2): wild(turns),
    ("contents", 2, "role"): wild(st.sampled_from(["model", "system"])),
    ("generationConfig",): wild(generation_configs),
    ("generationConfig", "candidateCount"): wild(st.integers(-2, 12)),
    ("generationConfig", "seed"): wild(st.integers(-3, 2**31 + 3)),
    ("generationConfig", "temperature"): wild(st.floats(-1, 3)),
    ("generationConfig", "topP"): wild(st.floats(-1, 2)),
    ("generationConfig", "responseModalities"): wild(st.lists(st.sampled_from(["TEXT", "AUDIO", "IMAGE"]))),
    ("generationConfig", "imageConfig", "aspectRatio"): wild(st.sampled_from(ASPECTS)),
    ("generationConfig", "imageConfig", "imageSize"): wild(st.sampled_from(SIZES)),
    ("generationConfig", "imageConfig", "outputMimeType"): wild(st.sampled_from(MIMES)),
    ("generationConfig", "imageConfig", "outputCompressionQuality"): wild(st.integers(-5, 105)),
    ("generationConfig", "thinkingConfig", "thinkingLevel"): wild(st.sampled_from(["ultra", "", "low"])),
    ("generationConfig", "thinkingConfig", "includeThoughts"): wild(st.booleans()),
    ("tools",): wild(gemini_tools),
    ("tools", 0, "googleSearch", "searchTypes"): wild(st.lists(st.sampled_from(["video_search", "x"]))),
    ("systemInstruction",): wild(st.text(max_size=10)),
}


@st.composite
def wild_generate_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(plausible_generate_bodies())
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(sorted(GENERATE_WILD_PATHS, key=str)))
        body = mutate(body, path, draw(GENERATE_WILD_PATHS[path]))
    return body


@st.composite
def plausible_interaction_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if draw(st.integers(0, 3)):
        body["model"] = draw(st.sampled_from(FUZZ_MODELS))
    text = draw(st.sampled_from(["a red kite", "a lighthouse at dusk"]))
    image = {"type": "image", "data": PNG, "mime_type": "image/png"}
    shape = draw(st.sampled_from(["text", "blocks", "steps"]))
    if shape == "text":
        body["input"] = text
    elif shape == "blocks":
        body["input"] = [{"type": "text", "text": text}, *([image] if draw(st.booleans()) else [])]
    else:
        steps: list[dict[str, Any]] = [
            {"type": "user_input", "content": [{"type": "text", "text": "a kite"}]},
            {"type": "model_output", "content": [image]},
        ]
        if draw(st.booleans()):
            steps.insert(1, {"type": "thought", "signature": SKIP})
        body["input"] = [*steps, {"type": "user_input", "content": [{"type": "text", "text": text}]}]
    image_format: dict[str, Any] = {
        "type": "image",
        "image_size": draw(st.sampled_from(["512", "512", "1K"])),
    }
    if draw(st.booleans()):
        image_format["aspect_ratio"] = draw(st.sampled_from(["1:1", "16:9", "3:2", "8:1"]))
    if draw(st.booleans()):
        image_format["delivery"] = draw(st.sampled_from(["inline", "uri"]))
    if draw(st.booleans()):
        image_format["mime_type"] = draw(st.sampled_from(["image/png", "image/jpeg", "image/webp"]))
    body["response_format"] = (
        image_format
        if draw(st.booleans())
        else [image_format, *([{"type": "text"}] if draw(st.booleans()) else [])]
    )
    body.update(
        draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "generation_config": st.fixed_dictionaries(
                        {},
                        optional={
                            "thinking_level": st.sampled_from(["minimal", "high"]),
                            "thinking_summaries": st.sampled_from(["auto", "none"]),
                            "seed": st.integers(0, 2**31 - 1),
                            "temperature": st.floats(0, 2),
                            "top_p": st.floats(0, 1),
                        },
                    ),
                    "tools": st.sampled_from(
                        [
                            [{"type": "google_search"}],
                            [{"type": "google_search", "search_types": ["web_search"]}],
                        ]
                    ),
                    "system_instruction": st.just("draw in pencil"),
                    "store": st.booleans(),
                    "background": st.booleans(),
                },
            )
        )
    )
    if body.get("store") is False:  # background and uri delivery need a stored interaction
        body.pop("background", None)
        image_format.pop("delivery", None)
    return body


INTERACTION_WILD_PATHS: dict[tuple[str | int, ...], st.SearchStrategy[Any]] = {
    ("model",): wild(st.sampled_from(["dall-e-3", "", "models/gemini-3.1-flash-image"])),
    ("input",): wild(
        texts | st.lists(interaction_blocks, max_size=3) | st.lists(interaction_steps, max_size=3)
    ),
    ("input", 0): wild(interaction_blocks | interaction_steps),
    ("input", 1): wild(interaction_blocks | interaction_steps),
    ("input", 0, "type"): wild(st.sampled_from(["audio", "thought", "model_output", "user_input", ""])),
    ("input", 1, "data"): wild(st.sampled_from(DATA)),
    ("input", 1, "uri"): wild(st.sampled_from(URIS)),
    ("input", 1, "signature"): wild(st.sampled_from(SIGNATURES)),
    ("response_format",): wild(image_formats | st.lists(image_formats, max_size=3)),
    ("response_format", "type"): wild(st.sampled_from(["text", "audio", ""])),
    ("response_format", "image_size"): wild(st.sampled_from(SIZES)),
    ("response_format", "aspect_ratio"): wild(st.sampled_from(ASPECTS)),
    ("response_format", "delivery"): wild(st.sampled_from(["email", "", "URI"])),
    ("response_format", "mime_type"): wild(st.sampled_from(MIMES)),
    ("response_format", 1): wild(image_formats),
    ("generation_config",): json_value,
    ("generation_config", "thinking_level"): wild(st.sampled_from(["max", "", "HIGH"])),
    ("generation_config", "seed"): wild(st.integers(-3, 2**31 + 3)),
    ("generation_config", "temperature"): wild(st.floats(-1, 3)),
    ("generation_config", "image_config", "aspect_ratio"): wild(st.sampled_from(ASPECTS)),
    ("tools",): json_value,
    ("tools", 0, "search_types"): wild(st.lists(st.sampled_from(["video_search", "web_search"]))),
    ("previous_interaction_id",): wild(st.sampled_from(["", "../../etc", "abc\x00def", "x" * 300])),
    ("background",): wild(st.sampled_from(["yes", "no", "maybe"])),
    ("store",): wild(st.sampled_from(["yes", 0, 1])),
    ("stream",): wild(st.sampled_from(["sometimes", 2])),
    ("agent",): wild(st.sampled_from(["deep-research"])),
    ("system_instruction",): json_value,
}


@st.composite
def wild_interaction_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(plausible_interaction_bodies())
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(sorted(INTERACTION_WILD_PATHS, key=str)))
        body = mutate(body, path, draw(INTERACTION_WILD_PATHS[path]))
    return body


@st.composite
def interaction_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    version = draw(st.sampled_from(["v1beta", "v1"]))
    body = draw(
        plausible_interaction_bodies()
        | wild_interaction_bodies()
        | interaction_bodies
        | st.dictionaries(st.text(max_size=12), json_value, max_size=4)
    )
    return f"/{version}/interactions", body


def check_answer(response: httpx.Response, body: Any) -> None:
    """Any answer to a fuzzed request: a 2xx, or a 4xx in Google's shape that names a field the caller
    sent (or had to send). Never a 5xx."""
    assert response.status_code < 500, (response.status_code, response.text[:500], body)
    if response.status_code >= 400:
        error = assert_google_error(response, response.status_code)
        reason = error["details"][0]["reason"]
        event(f"{response.status_code} {reason}")
        if reason in ("INVALID_FIELD", "MISSING_FIELD"):
            param = param_of(error)
            assert param, error
            assert error["message"].startswith(param), error
            top = re.split(r"[.[]", param, maxsplit=1)[0]
            sent = set(body) | {snake(key) for key in body if isinstance(key, str)}
            assert top in sent or reason == "MISSING_FIELD", (param, sorted(map(str, body)))
        return
    event(f"{response.status_code}")
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events, response.text[:300]
        for data in events:
            payload = json.loads(data)
            error = payload.get("error")
            if isinstance(error, dict):  # a failure after the stream began: still never a 5xx
                event(f"stream error {error.get('code')}")
                assert not isinstance(error.get("code"), int) or error["code"] < 500, payload
    else:
        answer = response.json()
        assert "candidates" in answer or "id" in answer, answer.keys()


FUZZ = settings(
    # 300 generateContent + 300 Interactions + 100 raw-byte examples run in about 20 s on SQLite: about a
    # fifth of the bodies are valid and render (512 px or 1K, never the 4K-only alias); the rest are refused
    # in a few ms. The table tests above pin the exact messages; this is about "never a 5xx".
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def send(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    # json.dumps, not httpx's encoder: NaN, Infinity and lone surrogates go out as Python writes them.
    return post_raw(client, path, json.dumps(body).encode())


@FUZZ
@given(request=generate_requests())
@example(request=(GENERATE, {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"seed": 2**31}}))
@example(request=(GENERATE, {"contents": {"parts": [{"inlineData": {"data": DATA[2]}}]}}))
@example(
    request=("/v1/models/gemini-3-pro-image:generateContent", {"contents": [{"parts": [{"text": "x"}]}]})
)
def test_fuzzed_generate_content_is_never_a_5xx(
    fuzz_http: httpx.Client, request: tuple[str, dict[str, Any]]
) -> None:
    path, body = request
    check_answer(send(fuzz_http, path, body), body)


@FUZZ
@given(request=interaction_requests())
@example(request=(INTERACTIONS, {"input": "x", "previous_interaction_id": "abc\x00def"}))
@example(request=(INTERACTIONS, {"input": [{"type": "thought", "signature": "!!"}]}))
@example(request=(INTERACTIONS, {"input": "x", "background": True, "response_format": {"type": "image"}}))
def test_fuzzed_interactions_are_never_a_5xx(
    fuzz_http: httpx.Client, request: tuple[str, dict[str, Any]]
) -> None:
    path, body = request
    check_answer(send(fuzz_http, path, body), body)


@settings(FUZZ, max_examples=100)
@given(
    path=st.sampled_from(
        [GENERATE, INTERACTIONS, "/v1/interactions", "/v1/models/gemini-3-pro-image:generateContent"]
    ),
    content=st.binary(max_size=200) | json_value.map(lambda value: json.dumps(value).encode()),
)
@example(path=GENERATE, content=b"\xff\xfe")
@example(path=INTERACTIONS, content=b'{"input": NaN}')
def test_fuzzed_raw_bytes_are_never_a_5xx(fuzz_http: httpx.Client, path: str, content: bytes) -> None:
    response = post_raw(fuzz_http, path, content)
    assert response.status_code < 500, (response.status_code, response.text[:300], content)
    if response.status_code >= 400:
        assert_google_error(response, response.status_code)


@pytest.mark.parametrize(
    "path", [GENERATE, INTERACTIONS, "/v1/interactions", "/v1/models/gemini-3.1-flash-image:generateContent"]
)
def test_body_over_the_limit_is_a_413_in_google_shape(fuzz_http: httpx.Client, path: str) -> None:
    big = b64(b"\0" * FUZZ_BODY_LIMIT)
    response = fuzz_http.post(path, json={"input": big, "contents": [{"parts": [{"text": big}]}]})
    assert_google_error(
        response,
        413,
        f"at most {FUZZ_BODY_LIMIT:,} are accepted",
        "--max-body-bytes",
        reason="REQUEST_TOO_LARGE",
    )


def test_fuzzed_server_still_serves(fuzz_http: httpx.Client, fuzz_server: ServerProcess) -> None:
    """After every fuzzed body: alive, healthy, no unexpected error in its log, and still generating."""
    assert fuzz_server.process is not None and fuzz_server.process.poll() is None
    assert fuzz_http.get("/healthz").status_code == 200
    log = fuzz_server.log()
    assert "unexpected error" not in log and "Traceback" not in log, log[-3000:]
    body = ask(generationConfig={"imageConfig": {"aspectRatio": "16:9", "imageSize": "512"}})
    response = fuzz_http.post(GENERATE, json=body)
    assert response.status_code == 200, response.text
    image = decode_png(response.json()["candidates"][0]["content"]["parts"][-1]["inlineData"]["data"])
    assert image.size == CATALOG.get(MODEL).output_pixels("16:9", "512")


# --- and the shared server kept serving too (last in this module on purpose) -----------------------------------


def test_server_still_serves_after_all_of_the_above(http: httpx.Client, server: ServerProcess) -> None:
    assert server.process is not None and server.process.poll() is None
    assert http.get("/healthz").status_code == 200
    response = http.post(INTERACTIONS, json=interact(response_format={"type": "image", "image_size": "512"}))
    assert response.status_code == 200, response.text
    assert model_output_image(response.json()).size == CATALOG.get(MODEL).output_pixels("1:1", "512")
