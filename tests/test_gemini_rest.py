"""The Gemini API on the wire, with plain httpx: raw JSON bodies as the vendor guide's REST (curl) examples
send them, so the exact field names and shapes are what is asserted, not what an SDK makes of them.

- Every ``curl -s -X POST .../v1beta/interactions`` body of the image-generation guide (seed 004), sent as
  written (base64 images where it has placeholders), answers a completed Interaction whose image decodes
  to the catalog's pixels (the one the guide mistyped is refused as invalid JSON, as Google refuses it).
- ``generateContent`` bodies in camelCase, snake_case and the SDK's mix give the same pixels; the answer
  uses Google's field names; URL-safe base64 works.
- ``:streamGenerateContent?alt=sse``: events, keep-alive lines, a refused request (plain JSON 400) and a
  generation that fails mid-stream (an error event).
- Errors in Google's shape, the shared ``/v1/models`` path, model paging, the chat-endpoint mistake and the
  raw Interactions verbs (DELETE, cancel, refused fields, ``stream: true`` as events, any interaction is a
  task).
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
from PIL import Image

from conftest import MakeServer, ServerProcess, db_rows, png_bytes
from pixelgate.catalog import default_catalog

FLASH = "gemini-3.1-flash-image"
CATALOG = default_catalog()
API_KEY = {"x-goog-api-key": "test-key"}
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_UNCHECKED = object()

# Colours the emulator never paints by itself (its backgrounds and discs keep every channel within 40..145,
# its text is white or black), so finding one in an answer shows the reference image was decoded and used.
GREEN = (0, 210, 0)
ORANGE = (250, 140, 0)
CYAN = (0, 220, 230)


# The REST examples of the guide (seed 004), keyed by the line of their "curl -s -X POST", with the shell
# quoting undone: the bodies exactly as curl sends them.
SEED_BODIES: dict[int, str] = {
    53: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "text", "text": "Create a picture of a nano banana dish in a fancy restaurant with a Gemini theme"}
]
}""",
    122: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "text", "text": "Create a picture of my cat eating a nano-banana in a fancy restaurant under the Gemini constellation"},
{
"type": "image",
"mime_type": "image/jpeg",
"data": "<BASE64_IMAGE_DATA>"
}
]
}""",
    169: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "text", "text": "Create a vibrant infographic that explains photosynthesis as if it were a recipe for a plants favorite food. Show the \"ingredients\" (sunlight, water, CO2) and the \"finished dish\" (sugar/energy). The style should be like a page from a colorful kids cookbook, suitable for a 4th grader."}
],
"tools": [{"type": "google_search"}]
}""",
    215: r"""{
"model": "gemini-3.1-flash-image",
"input": "Update this infographic to be in Spanish. Do not change any other elements of the image.",
"previous_interaction_id": "<PREVIOUS_INTERACTION_ID>",
"response_format": {
"type": "image",
"mime_type": "image/jpeg",
"aspect_ratio": "16:9",
"image_size": "2K"
}
}""",
    328: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "text", "text": "An office group photo of these people, they are making funny faces."},
{"type": "image", "mime_type": "image/png", "data": "<BASE64_DATA_IMG_1>"},
{"type": "image", "mime_type": "image/png", "data": "<BASE64_DATA_IMG_2>"},
{"type": "image", "mime_type": "image/png", "data": "<BASE64_DATA_IMG_3>"},
{"type": "image", "mime_type": "image/png", "data": "<BASE64_DATA_IMG_4>"},
{"type": "image", "mime_type": "image/png", "data": "<BASE64_DATA_IMG_5>"}
],
"response_format": {
"type": "image",
"aspect_ratio": "5:4",
"image_size": "2K"
}
}""",
    390: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "text", "text": "Visualize the current weather forecast for the next 5 days in San Francisco as a clean, modern weather chart. Add a visual on what I should wear each day"}
],
"tools": [{"type": "google_search"}],
"response_format": {
"type": "image",
"mime_type": "image/jpeg",
"aspect_ratio": "16:9"
}
}""",
    437: r"""{
"model": "gemini-3.1-flash-image",
"input": "A detailed painting of a Timareta butterfly resting on a flower",
"tools": [{"type": "google_search", "search_types": ["web_search", "image_search"]}]
}""",
    518: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{
"type": "video",
"uri": "https://www.youtube.com/watch?v=UTdfxFyOQTI",
"mime_type": "video/mp4"
},
{
"type": "text",
"text": "Generate a poster image that captures the key themes of this video."
}
],
"response_format": {
"type": "image",
"aspect_ratio": "16:9"
}
}""",
    583: r"""{
"model": "gemini-3.1-flash-image",
"input": "Da Vinci style anatomical sketch of a dissected Monarch butterfly. Detailed drawings of the head, wings, and legs on textured parchment with notes in English.",
"response_format": {
"type": "image",
"mime_type": "image/jpeg",
"aspect_ratio": "1:1",
"image_size": "1K"
}
}""",
    697: r"""{
"model": "gemini-3.1-flash-image",
"input": "A futuristic city built inside a giant glass bottle floating in space",
"generation_config": {
"thinking_level": "high"
}
}""",
    766: r"""{
"model": "gemini-3.1-flash-image",
"input": "A photorealistic wide-angle shot of a vibrant coral reef teeming with tropical fish. Crystal-clear turquoise water with sunbeams filtering down from the surface, illuminating a sea turtle gliding gracefully over the coral. Shot from a low perspective with a wide-angle lens. Aspect ratio 16:9.",
"response_format": {
"type": "image",
"mime_type": "image/png",
"aspect_ratio": "16:9"
}
}""",
    827: r"""{
"model": "gemini-3.1-flash-image",
"input": "A kawaii-style sticker of a happy red panda wearing a tiny bamboo hat. It is munching on a green bamboo leaf. The design features bold, clean outlines, simple cel-shading, and a vibrant color palette. The background must be white."
}""",
    885: r"""{
"model": "gemini-3.1-flash-image",
"input": "Create a modern, minimalist logo for a coffee shop called The Daily Grind. The text should be in a clean, bold, sans-serif font. The color scheme is black and white. Put the logo in a circle. Use a coffee bean in a clever way.",
"response_format": {
"type": "image",
"aspect_ratio": "1:1"
}
}""",
    952: r"""{
"model": "gemini-3.1-flash-image",
"input": "A high-resolution, studio-lit product photograph of a minimalist ceramic coffee mug in matte black, presented on a polished concrete surface. The lighting is a three-point softbox setup designed to create soft, diffused highlights and eliminate harsh shadows. The camera angle is a slightly elevated 45-degree shot to showcase its clean lines. Ultra-realistic, with sharp focus on the steam rising from the coffee. Square image."
}""",
    1012: r"""{
"model": "gemini-3.1-flash-image",
"input": "A minimalist composition featuring a single, delicate red maple leaf positioned in the bottom-right of the frame. The background is a vast, empty off-white canvas, creating significant negative space for text. Soft, diffused lighting from the top left. Square image."
}""",
    1088: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "text", "text": "Make a 3 panel comic in a gritty, noir art style with high-contrast black and white inks. Put the character in a humurous scene."},
{"type": "image", "data": "<BASE64_IMAGE_DATA>", "mime_type": "image/jpeg"}
]
}""",
    1152: r"""{
"model": "gemini-3.1-flash-image",
"input": "Make a simple but stylish graphic of last nights Arsenal game in the Champions League",
"tools": [{"type": "google_search"}],
"response_format": {
"type": "image",
"aspect_ratio": "16:9"
}
}""",
    1239: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "text", "text": "Using the provided image of my cat, please add a small, knitted wizard hat on its head. Make it look like it's sitting comfortably and not falling off."},
{"type": "image", "mime_type":"image/png", "data": "<BASE64_IMAGE_DATA>"}
]
}""",
    1326: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "image", "mime_type":"image/png", "data": "<BASE64_IMAGE_DATA>"},
{"type": "text", "text": "Using the provided image of a living room, change only the blue sofa to be a vintage, brown leather chesterfield sofa. Keep the rest of the room, including the pillows on the sofa and the lighting, unchanged."}
]
}""",
    1407: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "image", "mime_type":"image/png", "data": "<BASE64_IMAGE_DATA>"},
{"type": "text", "text": "Transform the provided photograph of a modern city street at night into the artistic style of Vincent van Gogh's 'Starry Night'. Preserve the original composition of buildings and cars, but render all elements with swirling, impasto brushstrokes and a dramatic palette of deep blues and bright yellows."}
]
}""",
    1510: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "image", "mime_type":"image/png", "data": "<BASE64_IMAGE_DATA_1>"},
{"type": "image", "mime_type":"image/png", "data": "<BASE64_IMAGE_DATA_2>"},
{"type": "text", "text": "Create a professional e-commerce fashion photo. Take the blue floral dress from the first image and let the woman from the second image wear it. Generate a realistic, full-body shot of the woman wearing the dress, with the lighting and shadows adjusted to match the outdoor environment."}
}]
}""",
    1602: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "image", "mime_type":"image/png", "data": "<BASE64_IMAGE_DATA_1>"},
{"type": "image", "mime_type":"image/png", "data": "<BASE64_IMAGE_DATA_2>"},
{"type": "text", "text": "Take the first image of the woman with brown hair, blue eyes, and a neutral expression. Add the logo from the second image onto her black t-shirt. Ensure the woman's face and features remain completely unchanged. The logo should look like it's naturally printed on the fabric, following the folds of the shirt."}
]
}""",
    1681: r"""{
"model": "gemini-3.1-flash-image",
"input": [
{"type": "image", "mime_type":"image/png", "data": "<BASE64_IMAGE_DATA>"},
{"type": "text", "text": "Turn this rough pencil sketch of a futuristic car into a polished photo of the finished concept car in a showroom. Keep the sleek lines and low profile from the sketch but add metallic blue paint and neon rim lighting."}
]
}""",
    1770: r"""{
"model": "gemini-3.1-flash-image",
"input": "Write a short poem about a starry night and generate an image of it.",
"response_format": [
{ "type": "text" },
{ "type": "image" }
]
}""",
    1805: r"""{
"model": "gemini-3.1-flash-image",
"input": "Create a picture of a nano banana dish in a fancy restaurant with a Gemini theme",
"response_format": {
"type": "image",
"aspect_ratio": "16:9",
"image_size": "2K"
}
}""",
}

# The guide's table (3.1 Flash Image) for the sizes these tests meet.
GUIDE_PIXELS = {
    ("1:1", "512"): (512, 512),
    ("1:1", "1K"): (1024, 1024),
    ("4:3", "1K"): (1200, 896),
    ("3:4", "1K"): (896, 1200),
    ("16:9", "512"): (688, 384),
    ("16:9", "1K"): (1376, 768),
    ("16:9", "2K"): (2752, 1536),
    ("5:4", "2K"): (2304, 1856),
}

# What each REST example of the guide must produce: aspect ratio, size and MIME type of the final image.
# Without an aspect ratio the output follows the first input image (4:3 for <BASE64_IMAGE_DATA>, 3:4 for
# <BASE64_IMAGE_DATA_1>), else 1:1.
SEED_EXPECTED: dict[int, tuple[str, str, str]] = {
    53: ("1:1", "1K", "image/png"),
    122: ("4:3", "1K", "image/png"),
    169: ("1:1", "1K", "image/png"),
    215: ("16:9", "2K", "image/jpeg"),
    328: ("5:4", "2K", "image/png"),
    390: ("16:9", "1K", "image/jpeg"),
    437: ("1:1", "1K", "image/png"),
    518: ("16:9", "1K", "image/png"),
    583: ("1:1", "1K", "image/jpeg"),
    697: ("1:1", "1K", "image/png"),
    766: ("16:9", "1K", "image/png"),
    827: ("1:1", "1K", "image/png"),
    885: ("1:1", "1K", "image/png"),
    952: ("1:1", "1K", "image/png"),
    1012: ("1:1", "1K", "image/png"),
    1088: ("4:3", "1K", "image/png"),
    1152: ("16:9", "1K", "image/png"),
    1239: ("4:3", "1K", "image/png"),
    1326: ("4:3", "1K", "image/png"),
    1407: ("4:3", "1K", "image/png"),
    1602: ("3:4", "1K", "image/png"),
    1681: ("4:3", "1K", "image/png"),
    1770: ("1:1", "1K", "image/png"),
    1805: ("16:9", "2K", "image/png"),
}
# The example at line 1510 closes its input list with "}]": not JSON (the real API refuses it too).
MALFORMED_SEED = 1510
PLACEHOLDER = re.compile(r"<([A-Z0-9_]+)>")
PLACEHOLDER_IMAGES: dict[str, tuple[int, int, tuple[int, int, int]]] = {
    "BASE64_IMAGE_DATA": (600, 448, GREEN),
    "BASE64_IMAGE_DATA_1": (448, 600, ORANGE),
    "BASE64_IMAGE_DATA_2": (600, 448, CYAN),
    "BASE64_DATA_IMG_1": (300, 300, GREEN),
    "BASE64_DATA_IMG_2": (320, 240, ORANGE),
    "BASE64_DATA_IMG_3": (240, 320, CYAN),
    "BASE64_DATA_IMG_4": (300, 300, ORANGE),
    "BASE64_DATA_IMG_5": (300, 300, GREEN),
}


def image_bytes(width: int, height: int, color: tuple[int, int, int], mime_type: str = "image/png") -> bytes:
    if mime_type == "image/png":
        return png_bytes(width, height, color)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decode_image(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    image.load()
    return image


def has_color(image: Image.Image, color: tuple[int, int, int], tolerance: int = 30) -> bool:
    rgb = image.convert("RGB")
    colors = rgb.getcolors(rgb.width * rgb.height) or []
    return any(all(abs(a - b) <= tolerance for a, b in zip(c, color, strict=True)) for _, c in colors)


def fill_placeholders(
    template: str, previous_id: str | None = None
) -> tuple[str, list[tuple[int, int, int]]]:
    """The example's body with each ``<BASE64_...>`` replaced by a solid-colour image in the MIME type its
    block names; the colours of the images, in order."""
    mime_of: dict[str, str] = {}
    try:
        parsed = json.loads(template)
    except json.JSONDecodeError:
        parsed = {}
    blocks = parsed.get("input") if isinstance(parsed.get("input"), list) else []
    for block in blocks:
        match = PLACEHOLDER.fullmatch(str(block.get("data", "")))
        if match:
            mime_of[match.group(1)] = block.get("mime_type", "image/png")
    colors: list[tuple[int, int, int]] = []

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "PREVIOUS_INTERACTION_ID":
            assert previous_id is not None
            return previous_id
        width, height, color = PLACEHOLDER_IMAGES[name]
        colors.append(color)
        return b64(image_bytes(width, height, color, mime_of.get(name, "image/png")))

    return PLACEHOLDER.sub(substitute, template), colors


def assert_google_error(
    response: httpx.Response,
    code: int,
    status: str,
    reason: str,
    *fragments: str,
    param: object = _UNCHECKED,
) -> dict[str, Any]:
    """``response`` is exactly Google's error shape: ``{"error": {"code", "message", "status", "details"}}``
    with a ``google.rpc.ErrorInfo`` first in ``details``; ``param`` (``None``: no metadata) when given."""
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "status", "details"}, error
    assert error["code"] == code, error
    assert error["status"] == status, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    info = error["details"][0]
    assert info["@type"] == ERROR_INFO, error
    assert info["reason"] == reason, error
    assert info["domain"] == "pixelgate", error
    if param is None:
        assert "metadata" not in info, info
    elif param is not _UNCHECKED:
        assert info["metadata"] == {"param": param}, info
    for fragment in fragments:
        assert fragment in error["message"], (fragment, error["message"])
    return error


def assert_openai_list(body: dict[str, Any]) -> None:
    assert body["object"] == "list", body
    assert "models" not in body
    assert [entry["id"] for entry in body["data"]] == CATALOG.ids


def assert_gemini_list(body: dict[str, Any]) -> None:
    assert "object" not in body and "data" not in body, body
    assert [model["name"] for model in body["models"]] == [f"models/{m}" for m in CATALOG.ids]


@pytest.fixture()
def gemini(server: ServerProcess) -> Iterator[httpx.Client]:
    """A client that sends the key the way the guide's curl examples do."""
    with httpx.Client(base_url=server.url, timeout=60, headers=API_KEY) as client:
        yield client


def generate(
    client: httpx.Client, body: dict[str, Any] | str, model: str = FLASH, version: str = "v1beta"
) -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return client.post(
        f"/{version}/models/{model}:generateContent",
        content=content,
        headers={"content-type": "application/json"},
    )


def interact(client: httpx.Client, body: dict[str, Any] | str, version: str = "v1beta") -> httpx.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return client.post(
        f"/{version}/interactions", content=content, headers={"content-type": "application/json"}
    )


def image_blocks(interaction: dict[str, Any]) -> list[dict[str, Any]]:
    (output,) = [step for step in interaction["steps"] if step["type"] == "model_output"]
    return [block for block in output["content"] if block["type"] == "image"]


ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


# --- The guide's REST examples, as sent by curl -----------------------------------------------------


def test_the_guide_examples_and_table_are_all_here() -> None:
    assert len(SEED_BODIES) == 25
    assert set(SEED_EXPECTED) == set(SEED_BODIES) - {MALFORMED_SEED}
    spec = CATALOG.get(FLASH)
    for (aspect, size), pixels in GUIDE_PIXELS.items():
        assert spec.output_pixels(aspect, size) == pixels, (aspect, size)


@pytest.mark.parametrize("line", sorted(SEED_EXPECTED))
def test_guide_rest_example_answers_a_completed_interaction(gemini: httpx.Client, line: int) -> None:
    template = SEED_BODIES[line]
    previous_id = None
    if "<PREVIOUS_INTERACTION_ID>" in template:
        # The guide continues the photosynthesis infographic of its line-169 example.
        first = interact(gemini, SEED_BODIES[169])
        assert first.status_code == 200, first.text
        previous_id = first.json()["id"]
    content, colors = fill_placeholders(template, previous_id)
    sent = json.loads(content)

    response = interact(gemini, content)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    interaction = response.json()
    assert interaction["status"] == "completed", interaction
    assert interaction["model"] == FLASH
    assert isinstance(interaction["id"], str) and interaction["id"]
    assert ISO_TIME.fullmatch(interaction["created"]) and ISO_TIME.fullmatch(interaction["updated"])
    assert "errors" not in interaction
    assert interaction.get("previous_interaction_id") == previous_id
    steps = interaction["steps"]
    assert steps[-1]["type"] == "model_output", [s["type"] for s in steps]
    assert all(step["type"] != "user_input" for step in steps), "user_input only with ?include_input=true"

    # The final image: one block, the asked MIME type, the table's pixels, the references drawn in.
    aspect, size, mime = SEED_EXPECTED[line]
    (block,) = image_blocks(interaction)
    assert block["mime_type"] == mime
    assert "uri" not in block
    image = decode_image(block["data"])
    assert image.format == ("JPEG" if mime == "image/jpeg" else "PNG")
    assert image.size == GUIDE_PIXELS[(aspect, size)]
    for color in colors:
        assert has_color(image, color), f"reference colour {color} is not in the answer"

    # A text block only when response_format lists one, and then before the image.
    formats = sent.get("response_format")
    wants_text = isinstance(formats, list) and any(entry.get("type") == "text" for entry in formats)
    output = steps[-1]["content"]
    assert [b["type"] for b in output] == (["text", "image"] if wants_text else ["image"])
    if wants_text:
        assert output[0]["text"].strip()

    # Thoughts: flash at minimal thinks once in words; at high it drafts at 512 first, then the final image.
    thoughts = [step for step in steps if step["type"] == "thought"]
    if sent.get("generation_config", {}).get("thinking_level") == "high":
        assert len(thoughts) == 2
        assert [[b["type"] for b in t["summary"]] for t in thoughts] == [["text", "image"], ["text", "image"]]
        draft, final = (decode_image(t["summary"][1]["data"]) for t in thoughts)
        assert draft.size == GUIDE_PIXELS[(aspect, "512")]
        assert final.size == image.size
    else:
        assert len(thoughts) == 1
        assert [b["type"] for b in thoughts[0]["summary"]] == ["text"]
    assert isinstance(thoughts[-1]["signature"], str) and thoughts[-1]["signature"]
    assert all("signature" not in t for t in thoughts[:-1])

    # Search grounding: a call and a result step per search type asked for (web search by default).
    wanted = [kind for tool in sent.get("tools", []) for kind in tool.get("search_types") or ["web_search"]]
    calls = [step for step in steps if step["type"] == "google_search_call"]
    results = [step for step in steps if step["type"] == "google_search_result"]
    assert [call["search_type"] for call in calls] == wanted
    assert [result["call_id"] for result in results] == [call["id"] for call in calls]
    for result in results:
        assert "Emulated search" in result["result"][0]["search_suggestions"]

    usage = interaction["usage"]
    image_tokens = CATALOG.get(FLASH).tokens_for(size)
    assert {"modality": "image", "tokens": image_tokens} in usage["output_tokens_by_modality"]
    assert usage["total_output_tokens"] == sum(e["tokens"] for e in usage["output_tokens_by_modality"])
    assert usage["total_input_tokens"] == sum(e["tokens"] for e in usage["input_tokens_by_modality"])
    assert usage["total_thought_tokens"] > 0
    assert usage["total_tokens"] == (
        usage["total_input_tokens"] + usage["total_output_tokens"] + usage["total_thought_tokens"]
    )
    input_modalities = {e["modality"] for e in usage["input_tokens_by_modality"]}
    # Input images are billed: the references, or in a continued conversation the earlier turn's image.
    assert ("image" in input_modalities) == bool(colors or previous_id)

    # Reading it back gives the same interaction.
    again = gemini.get(f"/v1beta/interactions/{interaction['id']}")
    assert again.status_code == 200, again.text
    assert again.json() == interaction


def test_guide_example_with_a_stray_brace_is_refused_as_invalid_json(gemini: httpx.Client) -> None:
    content, _ = fill_placeholders(SEED_BODIES[MALFORMED_SEED])
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    assert_google_error(
        interact(gemini, content),
        400,
        "INVALID_ARGUMENT",
        "INVALID_JSON",
        "not valid JSON",
        "line 7",
        param=None,
    )


# --- generateContent: key spellings, response field names, base64 alphabets -------------------------


def _spellings(data: str) -> dict[str, dict[str, Any]]:
    prompt = "a lighthouse on a cliff, seen from the sea"
    camel = {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": prompt}, {"inlineData": {"mimeType": "image/png", "data": data}}],
            }
        ],
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "seed": 7,
            "imageConfig": {"aspectRatio": "16:9", "imageSize": "512"},
        },
    }
    snake = {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": prompt}, {"inline_data": {"mime_type": "image/png", "data": data}}],
            }
        ],
        "generation_config": {
            "response_modalities": ["TEXT", "IMAGE"],
            "seed": 7,
            "image_config": {"aspect_ratio": "16:9", "image_size": "512"},
        },
    }
    # What google-genai sends: camelCase field names, but Blob's own fields in snake_case.
    mixed = {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": prompt}, {"inlineData": {"data": data, "mime_type": "image/png"}}],
            }
        ],
        "generationConfig": {
            "response_modalities": ["TEXT", "IMAGE"],
            "seed": 7,
            "imageConfig": {"aspect_ratio": "16:9", "imageSize": "512"},
        },
    }
    return {"camel": camel, "snake": snake, "mixed": mixed}


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def _final_image(response: dict[str, Any]) -> Image.Image:
    parts = response["candidates"][0]["content"]["parts"]
    return decode_image(parts[-1]["inlineData"]["data"])


def test_generate_content_key_spellings_give_the_same_pixels(gemini: httpx.Client) -> None:
    data = b64(png_bytes(600, 448, GREEN))
    answers: dict[str, dict[str, Any]] = {}
    for name, body in _spellings(data).items():
        response = generate(gemini, body)
        assert response.status_code == 200, (name, response.text)
        answers[name] = response.json()
    v1 = generate(gemini, _spellings(data)["camel"], version="v1")
    assert v1.status_code == 200, v1.text
    answers["camel on /v1"] = v1.json()

    images = {name: _final_image(answer) for name, answer in answers.items()}
    expected = GUIDE_PIXELS[("16:9", "512")]
    for name, image in images.items():
        assert image.format == "PNG" and image.size == expected, name
        assert has_color(image, GREEN), f"{name}: the reference image is not drawn in"
    pixels = {name: image.tobytes() for name, image in images.items()}
    assert len(set(pixels.values())) == 1, "every spelling asks for the same image"

    # Google's field names, exactly, whatever the request's spelling.
    for name, answer in answers.items():
        assert set(answer) == {"candidates", "usageMetadata", "modelVersion", "responseId"}, name
        assert all("_" not in key for key in _keys(answer)), f"{name}: a snake_case key in the answer"
        (candidate,) = answer["candidates"]
        assert set(candidate) == {"content", "finishReason", "index"}
        assert candidate["finishReason"] == "STOP" and candidate["index"] == 0
        assert candidate["content"]["role"] == "model"
        text_part, image_part = candidate["content"]["parts"]
        assert isinstance(text_part["text"], str) and text_part["text"].strip()
        assert "thought" not in text_part, "thought parts only with includeThoughts"
        assert set(image_part) == {"inlineData", "thoughtSignature"}
        assert set(image_part["inlineData"]) == {"mimeType", "data"}
        assert image_part["inlineData"]["mimeType"] == "image/png"
        assert text_part["thoughtSignature"] == image_part["thoughtSignature"]

        usage = answer["usageMetadata"]
        assert {
            "promptTokenCount",
            "candidatesTokenCount",
            "totalTokenCount",
            "candidatesTokensDetails",
        } <= set(usage)
        image_tokens = CATALOG.get(FLASH).tokens_for("512")
        assert {"modality": "IMAGE", "tokenCount": image_tokens} in usage["candidatesTokensDetails"]
        assert usage["candidatesTokenCount"] == sum(e["tokenCount"] for e in usage["candidatesTokensDetails"])
        assert {e["modality"] for e in usage["candidatesTokensDetails"]} == {"TEXT", "IMAGE"}
        assert {e["modality"] for e in usage["promptTokensDetails"]} == {"TEXT", "IMAGE"}
        assert usage["promptTokenCount"] == sum(e["tokenCount"] for e in usage["promptTokensDetails"])
        assert usage["totalTokenCount"] == (
            usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)
        )
        assert answer["modelVersion"] == FLASH
        assert isinstance(answer["responseId"], str) and answer["responseId"]
    assert len({answer["responseId"] for answer in answers.values()}) == len(answers)

    # Any generation is a task, and an interaction.
    response_id = answers["snake"]["responseId"]
    task = gemini.get(f"/v1/tasks/{response_id}")
    assert task.status_code == 200, task.text
    assert task.json()["status"] == "completed" and task.json()["size"] == "688x384"
    interaction = gemini.get(f"/v1beta/interactions/{response_id}")
    assert interaction.status_code == 200, interaction.text
    assert interaction.json()["status"] == "completed"
    (block,) = image_blocks(interaction.json())
    assert decode_image(block["data"]).tobytes() == pixels["snake"]


def _png_with_both_urlsafe_characters() -> bytes:
    for shade in range(256):
        for width in range(40, 80):
            data = png_bytes(width, 30, (shade, 200, 255 - shade))
            encoded = b64(data)
            if "+" in encoded and "/" in encoded and encoded.endswith("="):
                return data
    raise AssertionError("no small PNG whose base64 has both + and / and padding")


def test_url_safe_base64_is_accepted_and_gives_the_same_pixels(gemini: httpx.Client) -> None:
    reference = _png_with_both_urlsafe_characters()
    standard = b64(reference)
    url_safe = base64.urlsafe_b64encode(reference).decode().rstrip("=")
    assert url_safe != standard.rstrip("=")

    def body(data: str) -> dict[str, Any]:
        return {
            "contents": [
                {"parts": [{"text": "the same cat"}, {"inlineData": {"mimeType": "image/png", "data": data}}]}
            ],
            "generationConfig": {"seed": 3, "imageConfig": {"imageSize": "512"}},
        }

    first, second = generate(gemini, body(standard)), generate(gemini, body(url_safe))
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    one, two = _final_image(first.json()), _final_image(second.json())
    assert one.tobytes() == two.tobytes()
    # No aspect ratio: the output follows the reference's aspect ratio, at 512.
    spec = CATALOG.get(FLASH)
    ref = Image.open(io.BytesIO(reference))
    assert one.size == spec.output_pixels(spec.nearest_aspect_ratio(*ref.size), "512")

    # Interactions read the URL-safe alphabet too.
    response = interact(
        gemini,
        {
            "model": FLASH,
            "input": [
                {"type": "text", "text": "x"},
                {"type": "image", "mime_type": "image/png", "data": url_safe},
            ],
            "response_format": {"type": "image", "image_size": "512"},
        },
    )
    assert response.status_code == 200, response.text
    (block,) = image_blocks(response.json())
    assert decode_image(block["data"]).size == one.size


# --- streamGenerateContent?alt=sse -------------------------------------------------------------------


def read_sse(response: httpx.Response) -> tuple[list[str], list[dict[str, Any]]]:
    """The raw lines of an SSE answer and its events; every non-blank line must be ``data: {json}``."""
    lines = list(response.iter_lines())
    events = []
    for line in lines:
        if not line.strip():
            continue
        assert line.startswith("data: "), line[:80]
        events.append(json.loads(line.removeprefix("data: ")))
    return lines, events


def stream_url(model: str = FLASH, version: str = "v1beta") -> str:
    return f"/{version}/models/{model}:streamGenerateContent?alt=sse"


def test_stream_sends_data_events_ending_with_finish_reason_and_usage(gemini: httpx.Client) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "a paper boat on a puddle"}]}],
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "thinkingConfig": {"includeThoughts": True},
            "imageConfig": {"aspectRatio": "16:9", "imageSize": "512"},
        },
    }
    with gemini.stream("POST", stream_url(), json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines, events = read_sse(response)

    # Each event is one data line and a blank line.
    data_at = [i for i, line in enumerate(lines) if line.startswith("data: ")]
    assert all(i + 1 < len(lines) and lines[i + 1] == "" for i in data_at), lines
    assert len(events) == 3, "a thought, the text, the image"
    thought, text, last = events
    assert thought["candidates"][0]["content"]["parts"] == [
        {"text": thought["candidates"][0]["content"]["parts"][0]["text"], "thought": True}
    ]
    assert "thought" not in text["candidates"][0]["content"]["parts"][0]
    for event in (thought, text):
        assert "usageMetadata" not in event and "finishReason" not in event["candidates"][0]
    assert {e["responseId"] for e in events} == {last["responseId"]}
    assert {e["modelVersion"] for e in events} == {FLASH}

    (candidate,) = last["candidates"]
    assert candidate["finishReason"] == "STOP"
    (image_part,) = candidate["content"]["parts"]
    assert image_part["inlineData"]["mimeType"] == "image/png"
    image = decode_image(image_part["inlineData"]["data"])
    assert image.size == GUIDE_PIXELS[("16:9", "512")]
    usage = last["usageMetadata"]
    assert {"modality": "IMAGE", "tokenCount": CATALOG.get(FLASH).tokens_for("512")} in usage[
        "candidatesTokensDetails"
    ]
    assert usage["totalTokenCount"] == (
        usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage.get("thoughtsTokenCount", 0)
    )

    # The same request without streaming: the same parts, in the same order, and the same pixels.
    whole = generate(gemini, body)
    assert whole.status_code == 200, whole.text
    parts = whole.json()["candidates"][0]["content"]["parts"]
    streamed = [part for e in events for part in e["candidates"][0]["content"]["parts"]]
    assert [set(p) for p in streamed] == [set(p) for p in parts]
    assert [p.get("thought", False) for p in streamed] == [p.get("thought", False) for p in parts]
    assert _final_image(whole.json()).tobytes() == image.tobytes()


def test_stream_sends_keepalive_lines_while_the_image_is_made(backend: str, make_server: MakeServer) -> None:
    slow = make_server(backend, "--emulate", "--emulate-latency", "1.5", "--stream-keepalive", "0.2")
    body = {
        "contents": [{"parts": [{"text": "a slow sunrise"}]}],
        "generationConfig": {"imageConfig": {"imageSize": "512"}},
    }
    seen: list[tuple[float, str]] = []
    with httpx.Client(base_url=slow.url, timeout=60, headers=API_KEY) as client:
        start = time.monotonic()
        with client.stream("POST", stream_url(), json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                seen.append((time.monotonic() - start, line))
    data = [(at, line) for at, line in seen if line.strip()]
    assert len(data) == 1, "flash at minimal without includeThoughts sends one event"
    data_at = data[0][0]
    keepalives = [at for at, line in seen if at < data_at and line == ""]
    assert len(keepalives) >= 3, seen
    assert keepalives[0] < data_at - 0.5, "the first keep-alive line comes long before the image"
    assert all(line.startswith("data: ") or line == "" for _, line in seen)
    event = json.loads(data[0][1].removeprefix("data: "))
    assert event["candidates"][0]["finishReason"] == "STOP"
    assert _final_image(event).size == GUIDE_PIXELS[("1:1", "512")]


def test_stream_refused_by_validation_is_a_plain_json_400(gemini: httpx.Client) -> None:
    body = {
        "contents": [{"parts": [{"text": "x"}]}],
        "generationConfig": {"imageConfig": {"imageSize": "1k"}},
    }
    response = gemini.post(stream_url(), json=body)
    assert not response.headers["content-type"].startswith("text/event-stream")
    assert_google_error(
        response,
        400,
        "INVALID_ARGUMENT",
        "INVALID_IMAGE_SIZE",
        "'1k'",
        "uppercase K",
        param="generationConfig.imageConfig.imageSize",
    )
    empty = gemini.post(stream_url(), json={"contents": []})
    assert_google_error(empty, 400, "INVALID_ARGUMENT", "MISSING_FIELD", param="contents")


def _history(signature: str | None) -> dict[str, Any]:
    model_part: dict[str, Any] = {
        "inlineData": {"mimeType": "image/png", "data": b64(png_bytes(64, 64, CYAN))}
    }
    if signature is not None:
        model_part["thoughtSignature"] = signature
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "a cyan square"}]},
            {"role": "model", "parts": [model_part]},
            {"role": "user", "parts": [{"text": "now make it round"}]},
        ],
        "generationConfig": {"imageConfig": {"imageSize": "512"}},
    }


def test_stream_whose_generation_fails_ends_with_an_error_event(gemini: httpx.Client) -> None:
    # A hand-made history: the model turn carries no thought signature, which Gemini 3 refuses.
    with gemini.stream("POST", stream_url(), json=_history(None)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        _, events = read_sse(response)
    assert events, "the stream must say why it ended"
    assert all("candidates" not in event for event in events)
    last = events[-1]
    assert set(last) == {"error"}
    error = last["error"]
    assert set(error) == {"code", "message", "status", "details"}
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["@type"] == ERROR_INFO
    assert error["details"][0]["reason"] == "MISSING_THOUGHT_SIGNATURE"
    assert "thought" in error["message"] and "signature" in error["message"]

    # Without streaming the same failure is a plain 400.
    assert_google_error(
        generate(gemini, _history(None)), 400, "INVALID_ARGUMENT", "MISSING_THOUGHT_SIGNATURE", "signature"
    )
    # The model's own parts sent back unchanged (signatures included) continue the conversation.
    first = generate(
        gemini,
        {
            "contents": [{"role": "user", "parts": [{"text": "a cyan square"}]}],
            "generationConfig": {"imageConfig": {"imageSize": "512"}},
        },
    )
    assert first.status_code == 200, first.text
    model_turn = first.json()["candidates"][0]["content"]
    assert model_turn["parts"][-1]["thoughtSignature"]
    round_trip = {
        "contents": [
            {"role": "user", "parts": [{"text": "a cyan square"}]},
            model_turn,
            {"role": "user", "parts": [{"text": "now make it round"}]},
        ],
        "generationConfig": {"imageConfig": {"imageSize": "512"}},
    }
    with gemini.stream("POST", stream_url(), json=round_trip) as response:
        assert response.status_code == 200
        _, events = read_sse(response)
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert _final_image(events[-1]).size == GUIDE_PIXELS[("1:1", "512")]


@pytest.mark.parametrize("surface", ["generateContent", "interactions"])
def test_the_skip_signature_magic_value_is_accepted(gemini: httpx.Client, surface: str) -> None:
    magic = "skip_thought_signature_validator"
    if surface == "generateContent":
        response = generate(gemini, _history(magic))
    else:
        model_image = {"type": "image", "mime_type": "image/png", "data": b64(png_bytes(64, 64, CYAN))}
        response = interact(
            gemini,
            {
                "model": FLASH,
                "input": [
                    {"type": "user_input", "content": [{"type": "text", "text": "a cyan square"}]},
                    {"type": "thought", "signature": magic},
                    {"type": "model_output", "content": [model_image]},
                    {"type": "user_input", "content": [{"type": "text", "text": "now make it round"}]},
                ],
                "response_format": {"type": "image", "image_size": "512"},
            },
        )
    assert response.status_code == 200, response.text


# --- Errors in Google's shape ------------------------------------------------------------------------


def test_unknown_model_is_a_404_not_found(gemini: httpx.Client, http: httpx.Client) -> None:
    for client in (gemini, http):  # /v1beta is Gemini's with or without the key
        error = assert_google_error(
            client.get("/v1beta/models/nope"), 404, "NOT_FOUND", "MODEL_NOT_FOUND", "'nope'", param="model"
        )
        assert FLASH in error["message"], "the message lists the models there are"
    assert_google_error(gemini.get("/v1/models/nope"), 404, "NOT_FOUND", "MODEL_NOT_FOUND", param="model")
    openai_shape = http.get("/v1/models/nope")
    assert openai_shape.status_code == 404
    assert set(openai_shape.json()["error"]) == {"message", "type", "param", "code"}
    assert openai_shape.json()["error"]["code"] == "model_not_found"


def test_generate_content_with_an_unknown_model_is_a_404(gemini: httpx.Client) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    assert_google_error(
        generate(gemini, body, model="nope"), 404, "NOT_FOUND", "MODEL_NOT_FOUND", param="model"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1beta/models/x:countTokens"),
        ("POST", f"/v1beta/models/{FLASH}:countTokens"),
        ("POST", f"/v1beta/models/{FLASH}:embedContent"),
        ("POST", "/v1/models/x:countTokens"),
        ("POST", f"/v1beta/models/{FLASH}"),
        ("GET", "/v1beta/nothing"),
        ("GET", "/v1beta/cachedContents/abc"),
        ("POST", "/v1beta/cachedContents"),
    ],
)
def test_unknown_gemini_path_answers_in_googles_shape(http: httpx.Client, method: str, path: str) -> None:
    # No key header: the path alone says the caller speaks Gemini.
    response = http.request(
        method, path, json={"contents": [{"parts": [{"text": "x"}]}]} if method == "POST" else None
    )
    assert_google_error(response, 404, "NOT_FOUND", "UNKNOWN_ENDPOINT", param=None)


def test_wrong_method_on_a_gemini_path_is_a_405_in_googles_shape(http: httpx.Client) -> None:
    assert_google_error(
        http.delete(f"/v1beta/models/{FLASH}"),
        405,
        "UNIMPLEMENTED",
        "METHOD_NOT_ALLOWED",
        "DELETE",
        param=None,
    )


@pytest.mark.parametrize(
    "path",
    [f"/v1beta/models/{FLASH}:generateContent", stream_url(), "/v1beta/interactions", "/v1/interactions"],
)
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"contents": [', "not valid JSON"),
        (b"{'model': 'x'}", "not valid JSON"),
        (b"[]", "must be a JSON object, got an array"),
        (b"", "empty"),
        (b'{"a": "\xc3\x28"}', "not UTF-8"),
    ],
)
def test_invalid_json_is_a_400_invalid_argument(
    gemini: httpx.Client, path: str, content: bytes, fragment: str
) -> None:
    response = gemini.post(path, content=content, headers={"content-type": "application/json"})
    assert_google_error(response, 400, "INVALID_ARGUMENT", "INVALID_JSON", fragment, param=None)


@pytest.fixture(scope="module")
def own_server(backend: str, make_server: MakeServer) -> ServerProcess:
    """A server of this module's own (its task table holds only what these tests make), with a 2,000-byte
    body limit."""
    return make_server(backend, "--emulate", "--max-body-bytes", "2000")


def test_body_over_the_limit_is_a_413_in_googles_shape(own_server: ServerProcess) -> None:
    small = own_server
    big = json.dumps({"model": FLASH, "contents": [{"parts": [{"text": "a" * 3000}]}], "input": "a" * 3000})
    with httpx.Client(base_url=small.url, timeout=60) as client:
        for path in (f"/v1beta/models/{FLASH}:generateContent", stream_url(), "/v1beta/interactions"):
            response = client.post(path, content=big, headers={"content-type": "application/json"})
            assert_google_error(
                response, 413, "INVALID_ARGUMENT", "REQUEST_TOO_LARGE", "at most 2,000", param=None
            )
            # Without a Content-Length the limit is enforced as the bytes arrive.
            chunked = client.post(path, content=iter([big.encode()[:1000], big.encode()[1000:]]))
            assert "content-length" not in chunked.request.headers
            assert_google_error(
                chunked, 413, "INVALID_ARGUMENT", "REQUEST_TOO_LARGE", "at most 2,000", param=None
            )
        # The same body on an OpenAI path answers in OpenAI's shape.
        openai_shape = client.post(
            "/v1/images/generations", content=big, headers={"content-type": "application/json"}
        )
        assert openai_shape.status_code == 413
        assert set(openai_shape.json()["error"]) == {"message", "type", "param", "code"}
        # And a body under the limit still works.
        ok = generate(
            client,
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"imageConfig": {"imageSize": "512"}},
            },
        )
        assert ok.status_code == 200, ok.text


# --- GET /v1/models: one path, two dialects; paging --------------------------------------------------


def test_v1_models_answers_in_the_callers_dialect(server: ServerProcess) -> None:
    url = f"{server.url}/v1/models"
    assert_openai_list(httpx.get(url).json())
    assert_openai_list(httpx.get(url, headers={"authorization": "Bearer sk-test"}).json())
    assert_gemini_list(httpx.get(url, headers=API_KEY).json())
    assert_gemini_list(httpx.get(url, params={"key": "test-key"}).json())
    assert_gemini_list(
        httpx.get(url, headers={"x-goog-api-client": "google-genai-sdk/1.0 gl-python/3.11"}).json()
    )
    assert_gemini_list(httpx.get(f"{server.url}/v1beta/models").json())

    gemini_model = httpx.get(f"{url}/{FLASH}", params={"key": "k"}).json()
    assert gemini_model["name"] == f"models/{FLASH}"
    assert gemini_model["supportedGenerationMethods"] == [
        "generateContent",
        "streamGenerateContent",
        "batchGenerateContent",
    ]
    assert "object" not in gemini_model
    openai_model = httpx.get(f"{url}/{FLASH}").json()
    assert openai_model["id"] == FLASH and openai_model["object"] == "model"
    assert httpx.get(f"{server.url}/v1beta/models/models/{FLASH}").json() == gemini_model


@pytest.mark.parametrize("path", ["/v1beta/models", "/v1/models?key=k"])
def test_models_page_through_with_page_tokens(http: httpx.Client, path: str) -> None:
    separator = "&" if "?" in path else "?"
    names: list[str] = []
    pages: list[dict[str, Any]] = []
    token = None
    while True:
        query = "pageSize=3" + (f"&pageToken={token}" if token else "")
        response = http.get(f"{path}{separator}{query}")
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        assert 1 <= len(page["models"]) <= 3
        names += [model["name"] for model in page["models"]]
        token = page.get("nextPageToken")
        if token is None:
            break
        assert isinstance(token, str) and token
        assert len(pages) < 10, "the page tokens never end"
    assert names == [f"models/{m}" for m in CATALOG.ids]
    assert len(pages) == -(-len(CATALOG.ids) // 3)
    assert all("nextPageToken" in page for page in pages[:-1])
    whole = http.get(f"{path}{separator}pageSize=1000").json()
    assert "nextPageToken" not in whole and len(whole["models"]) == len(CATALOG.ids)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("pageToken=zz", "pageToken"),
        ("pageToken=99", "pageToken"),
        ("pageToken=-3", "pageToken"),
        ("pageSize=0", "pageSize"),
        ("pageSize=1001", "pageSize"),
        ("pageSize=abc", "pageSize"),
    ],
)
def test_bad_page_size_or_token_is_a_400(http: httpx.Client, query: str, param: str) -> None:
    response = http.get(f"/v1beta/models?{query}")
    assert_google_error(response, 400, "INVALID_ARGUMENT", "INVALID_PAGE", query.split("=")[1], param=param)


# --- The chat-endpoint mistake ----------------------------------------------------------------------

# /v1/responses is served now (api/openai_responses.py), so it is no chat mistake.
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions", "/v1/completions")


def _chat_body(path: str, model: str) -> dict[str, Any]:
    if path == "/v1/completions":
        return {"model": model, "prompt": "draw a cat wearing a hat"}
    return {"model": model, "messages": [{"role": "user", "content": "draw a cat wearing a hat"}]}


def _openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == code, error
    return error


def test_chat_endpoint_mistake_names_the_image_endpoints_and_creates_no_task(
    own_server: ServerProcess,
) -> None:
    own = own_server

    def task_count() -> int:
        return int(db_rows(own, "SELECT count(*) FROM tasks")[0][0])

    before = task_count()
    with httpx.Client(base_url=own.url, timeout=60) as client:
        for path in CHAT_PATHS:
            for model in (FLASH, "gemini-2.5-flash-image-preview"):
                error = _openai_error(client.post(path, json=_chat_body(path, model)), 400, "wrong_endpoint")
                assert error["param"] == "model" and error["type"] == "invalid_request_error"
                for endpoint in (
                    "/v1/images/generations",
                    f"/v1beta/models/{model}:generateContent",
                    "/interactions",
                ):
                    assert endpoint in error["message"], (endpoint, error["message"])
                assert path in error["message"]
            streamed = client.post(path, json={**_chat_body(path, FLASH), "stream": True})
            _openai_error(streamed, 400, "wrong_endpoint")
            # A model that is not in the catalog: there is no chat here at all.
            error = _openai_error(client.post(path, json=_chat_body(path, "gpt-4o")), 404, "wrong_endpoint")
            assert "'gpt-4o'" in error["message"]
            for endpoint in ("/v1/images/generations", ":generateContent", "/interactions"):
                assert endpoint in error["message"], (endpoint, error["message"])
        assert task_count() == before, "a chat-endpoint mistake must not create (or bill) a task"

        # The count does move when something is generated.
        made = generate(
            client,
            {
                "contents": [{"parts": [{"text": "a cat"}]}],
                "generationConfig": {"imageConfig": {"imageSize": "512"}},
            },
        )
        assert made.status_code == 200, made.text
        assert task_count() == before + 1
        made_id = made.json()["responseId"]
        assert db_rows(own, f"SELECT model, dialect FROM tasks WHERE id = '{made_id}'") == [(FLASH, "gemini")]


# --- Interactions, raw -------------------------------------------------------------------------------


def _small_interaction(client: httpx.Client, version: str = "v1beta", aspect: str = "1:1") -> dict[str, Any]:
    response = interact(
        client,
        {
            "model": FLASH,
            "input": "a tiny red kite",
            "response_format": {"type": "image", "aspect_ratio": aspect, "image_size": "512"},
        },
        version=version,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "completed"
    return body


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_delete_answers_empty_object_and_then_the_interaction_is_gone(
    gemini: httpx.Client, version: str
) -> None:
    interaction_id = _small_interaction(gemini, version)["id"]
    deleted = gemini.delete(f"/{version}/interactions/{interaction_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {}

    gone = gemini.get(f"/{version}/interactions/{interaction_id}")
    assert_google_error(gone, 404, "NOT_FOUND", "INTERACTION_NOT_FOUND", interaction_id, param="id")
    assert_google_error(
        gemini.delete(f"/{version}/interactions/{interaction_id}"), 404, "NOT_FOUND", "INTERACTION_NOT_FOUND"
    )
    assert gemini.get(f"/v1/tasks/{interaction_id}").status_code == 404
    # It cannot be continued either.
    follow_up = interact(
        gemini, {"model": FLASH, "input": "make it blue", "previous_interaction_id": interaction_id}
    )
    assert follow_up.status_code in (400, 404), follow_up.text
    assert interaction_id in follow_up.json()["error"]["message"]


def test_cancel_or_get_of_an_unknown_interaction_is_a_404(gemini: httpx.Client) -> None:
    for version in ("v1beta", "v1"):
        for response in (
            gemini.post(f"/{version}/interactions/int_nope/cancel"),
            gemini.get(f"/{version}/interactions/int_nope"),
            gemini.delete(f"/{version}/interactions/int_nope"),
        ):
            assert_google_error(response, 404, "NOT_FOUND", "INTERACTION_NOT_FOUND", "'int_nope'", param="id")


@pytest.mark.parametrize(
    ("extra", "reason", "param", "fragment"),
    [
        ({"stream": True, "background": True}, "INVALID_STREAM", "stream", "background"),
        ({"agent": "deep-research-pro-preview"}, "UNSUPPORTED_AGENT", "agent", "deep-research-pro-preview"),
        (
            {"input": [{"type": "audio", "data": "UklGRg==", "mime_type": "audio/wav"}]},
            "UNSUPPORTED_CONTENT",
            "input[0].type",
            "'audio'",
        ),
        (
            {"input": [{"type": "text", "text": "sing"}, {"type": "audio", "uri": "https://e.x/a.wav"}]},
            "UNSUPPORTED_CONTENT",
            "input[1].type",
            "'audio'",
        ),
        (
            {"input": [{"type": "user_input", "content": [{"type": "audio", "data": "UklGRg=="}]}]},
            "UNSUPPORTED_CONTENT",
            "input[0].content[0].type",
            "'audio'",
        ),
    ],
)
def test_interaction_refuses_what_image_models_cannot_do(
    gemini: httpx.Client, extra: dict[str, Any], reason: str, param: str, fragment: str
) -> None:
    body = {"model": FLASH, "input": "a kite", **extra}
    assert_google_error(interact(gemini, body), 400, "INVALID_ARGUMENT", reason, fragment, param=param)


def test_any_interaction_is_a_task(gemini: httpx.Client) -> None:
    interaction = _small_interaction(gemini, "v1", aspect="16:9")
    (block,) = image_blocks(interaction)
    image_data = base64.b64decode(block["data"])

    task = gemini.get(f"/v1/tasks/{interaction['id']}")
    assert task.status_code == 200, task.text
    body = task.json()
    assert body["id"] == interaction["id"] and body["status"] == "completed"
    assert body["model"] == FLASH and body["size"] == "688x384"
    fetched = httpx.get(body["data"][0]["url"], timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == image_data, "the task's URL serves the interaction's image"

    task_style = gemini.get(f"/v1/images/generations/{interaction['id']}")
    assert task_style.status_code == 200 and task_style.json()["status"] == "completed"

    with_input = gemini.get(f"/v1beta/interactions/{interaction['id']}", params={"include_input": "true"})
    assert with_input.status_code == 200
    steps = with_input.json()["steps"]
    assert steps[0] == {"type": "user_input", "content": [{"type": "text", "text": "a tiny red kite"}]}
    assert steps[1:] == interaction["steps"]


def read_interaction_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """An Interactions stream's events as (event name, data): each is ``event:``, ``id:`` and ``data:``
    lines ended by a blank line; comment lines (``:``) keep the connection alive."""
    events: list[tuple[str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if fields:
                assert set(fields) == {"event", "id", "data"}, fields
                data = json.loads(fields["data"])
                assert data["event_type"] == fields["event"] and data["event_id"] == fields["id"], fields
                events.append((fields["event"], data))
                fields = {}
            continue
        name, _, value = line.partition(": ")
        assert name in ("event", "id", "data") and name not in fields, line[:80]
        fields[name] = value
    assert not fields, "the stream ended in the middle of an event"
    assert [int(data["event_id"]) for _, data in events] == list(range(1, len(events) + 1))
    return events


def test_interaction_stream_sends_the_steps_as_events(gemini: httpx.Client) -> None:
    body = {
        "model": FLASH,
        "input": "a red kite over a beach",
        "stream": True,
        "response_format": [{"type": "text"}, {"type": "image", "aspect_ratio": "16:9", "image_size": "512"}],
    }
    with gemini.stream("POST", "/v1beta/interactions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_interaction_events(response)

    names = [name for name, _ in events]
    assert names[0] == "interaction.created" and names[-1] == "interaction.completed", names
    created, completed = events[0][1]["interaction"], events[-1][1]["interaction"]
    assert created["status"] in ("queued", "in_progress") and created["model"] == FLASH
    assert completed["id"] == created["id"] and completed["status"] == "completed"
    assert completed["usage"]["total_output_tokens"] > 0
    # Every step: a start, its deltas, a stop, in order.
    starts = [data for name, data in events if name == "step.start"]
    assert [s["index"] for s in starts] == list(range(len(starts)))
    assert [s["step"]["type"] for s in starts] == ["thought", "model_output"]
    deltas = [data["delta"] for name, data in events if name == "step.delta" and data["index"] == 1]
    assert [d["type"] for d in deltas] == ["text", "image"]
    image = decode_image(deltas[1]["data"])
    assert image.size == GUIDE_PIXELS[("16:9", "512")]

    # The streamed interaction is stored like any other, with the same image.
    stored = gemini.get(f"/v1beta/interactions/{created['id']}")
    assert stored.status_code == 200, stored.text
    (block,) = image_blocks(stored.json())
    assert decode_image(block["data"]).tobytes() == image.tobytes()


def test_interaction_stream_refused_or_failed(gemini: httpx.Client) -> None:
    # Refused before it starts: a plain JSON 400, not a stream.
    refused = interact(
        gemini,
        {
            "model": FLASH,
            "input": "x",
            "stream": True,
            "response_format": {"type": "image", "image_size": "1k"},
        },
    )
    assert not refused.headers["content-type"].startswith("text/event-stream")
    assert_google_error(refused, 400, "INVALID_ARGUMENT", "INVALID_IMAGE_SIZE", "uppercase K")

    # Failed while generating (a hand-made conversation without thought signatures): an error event last.
    model_image = {"type": "image", "mime_type": "image/png", "data": b64(png_bytes(64, 64, CYAN))}
    body = {
        "model": FLASH,
        "stream": True,
        "input": [
            {"type": "user_input", "content": [{"type": "text", "text": "a cyan square"}]},
            {"type": "model_output", "content": [model_image]},
            {"type": "user_input", "content": [{"type": "text", "text": "now make it round"}]},
        ],
        "response_format": {"type": "image", "image_size": "512"},
    }
    with gemini.stream("POST", "/v1beta/interactions", json=body) as response:
        assert response.status_code == 200
        events = read_interaction_events(response)
    assert [name for name, _ in events] == ["interaction.created", "error"]
    error = events[-1][1]["error"]
    assert "signature" in error["message"]
