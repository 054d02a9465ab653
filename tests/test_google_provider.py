"""The ``google`` provider against the Gemini simulator, through a real pixelgate server, driven by the
official google-genai SDK (and the openai SDK and httpx where a dialect matters): the exact upstream body
for every aspect ratio and image size, for each dialect's way of asking, aliases and channel renames,
edits with references, multi-turn with thought signatures, thinking, search grounding, sampling fields,
text beside the image, the Interactions upstream API, the channel key kept secret, and the upstream's
faults (safety blocks, malformed answers, cut connections, its 400s) as the client sees them."""

from __future__ import annotations

import base64
import io
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from conftest import MakeServer, ServerProcess, png_bytes
from pixelgate.catalog import default_catalog
from upstreams import GeminiSimulator
from upstreams.base import SIMULATED_BAD_REQUEST
from upstreams.gemini import BAD_KEY, IMAGE_TEXT, NO_IMAGE_TEXT, THOUGHT_TEXT, THOUGHT_TOKENS
from upstreams.images import png, size_for

KEY = "k-secret-123"
OTHER_KEY = "k-other-456"
ENV = {"SIM_KEY": KEY}
FLASH = "gemini-3.1-flash-image"
LITE = "gemini-3.1-flash-lite-image"
PRO = "gemini-3-pro-image"
NANO = "gemini-2.5-flash-image"
PRO_4K = "gemini-3-pro-image-preview-4k"
FLASH_OFFICIAL = "gemini-3.1-flash-image-preview-official"
RENAMED_FLASH = "nano-banana-2-preview"
RENAMED_PRO_4K = "nano-banana-pro-4k"
GENERATE = ":generateContent"
INTERACTIONS = "/v1beta/interactions"
CATALOG = default_catalog()
TERMINAL = {"completed", "failed", "cancelled"}


class GeminiUpstream(GeminiSimulator):
    """The simulator with two twists.

    Its thought signatures start with bytes that encode to ``+/``: the SDK re-encodes a signature in the
    URL-safe alphabet (``-_``) when it sends it back, and pixelgate must still return the very string
    Google issued. ``reset()`` forgets them. And with :attr:`echo_key` its key error quotes the key it
    received, as some upstreams do, so that pixelgate's redaction is put to the test.
    """

    echo_key = False

    def _reset_vendor_state(self) -> None:
        self.issued_signatures.clear()

    def _new_signature(self) -> str:
        number = len(self.issued_signatures) + 1
        raw = b"\xfb\xff" + f"sig-{number}-".encode() + secrets.token_bytes(9)
        signature = base64.b64encode(raw).decode("ascii")
        self.issued_signatures.append(signature)
        return signature

    def auth_error(self, request: Request) -> Response:
        if not self.echo_key:
            return super().auth_error(request)
        sent = request.headers.get("x-goog-api-key", "")
        error = {**BAD_KEY["error"], "message": f"API key not valid: {sent}. Please pass a valid API key."}
        return JSONResponse({"error": error}, status_code=400)


# -- servers, simulator and clients ------------------------------------------------------------------------


def channel(name: str, url: str, extra: str = "") -> str:
    return (
        f'[[channels]]\nname = "{name}"\nprovider = "google"\nbase_url = "{url}"\n'
        f'api_key_env = "SIM_KEY"\n{extra}\n'
    )


def start(make_server: MakeServer, tmp: Path, toml: str) -> ServerProcess:
    path = tmp / "pixelgate.toml"
    path.write_text(toml)
    return make_server("sqlite", "--no-auth", "--config", str(path), env=ENV)


# Two tries per image, retried at once; the channel never cools down, so that one test's faults do not
# slow down the next.
ROUTING = """[routing]
max_attempts = 2
backoff_seconds = 0.01
max_backoff_seconds = 0.05
failure_threshold = 1000
cooldown_seconds = 0
max_wait_seconds = 30
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[GeminiUpstream]:
    with GeminiUpstream(api_key=KEY) as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def fresh(sim: GeminiUpstream) -> Iterator[None]:
    sim.reset()
    yield
    sim.api_key = KEY
    sim.echo_key = False
    sim.no_image_finish_reason = "STOP"


@pytest.fixture(scope="module")
def server(
    make_server: MakeServer, sim: GeminiUpstream, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """One google channel (generateContent) serving every catalog model."""
    toml = ROUTING + channel("gemini-sim", sim.url)
    return start(make_server, tmp_path_factory.mktemp("google-main"), toml)


@pytest.fixture(scope="module")
def renamed_server(
    make_server: MakeServer, sim: GeminiUpstream, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    models = f'models = {{ "{FLASH}" = "{RENAMED_FLASH}", "{PRO_4K}" = "{RENAMED_PRO_4K}" }}'
    toml = ROUTING + channel("gemini-renamed", sim.url, models)
    return start(make_server, tmp_path_factory.mktemp("google-renamed"), toml)


@pytest.fixture(scope="module")
def interactions_server(
    make_server: MakeServer, sim: GeminiUpstream, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    toml = ROUTING + channel("gemini-interactions", sim.url, 'options = { api = "interactions" }')
    return start(make_server, tmp_path_factory.mktemp("google-interactions"), toml)


def genai_client(server: ServerProcess) -> genai.Client:
    options = types.HttpOptions(
        base_url=server.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key="x", http_options=options)


@pytest.fixture(scope="module")
def gemini(server: ServerProcess) -> Iterator[genai.Client]:
    client = genai_client(server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def renamed(renamed_server: ServerProcess) -> Iterator[genai.Client]:
    client = genai_client(renamed_server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def via_interactions(interactions_server: ServerProcess) -> Iterator[genai.Client]:
    client = genai_client(interactions_server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def oai(server: ServerProcess) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=60)
    yield client
    client.close()


@pytest.fixture()
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


# -- helpers -----------------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def jpeg_bytes(width: int, height: int, color: tuple[int, int, int] = (20, 160, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "JPEG")
    return buffer.getvalue()


def sim_image(aspect_ratio: str | None, image_size: str | None) -> bytes:
    """The very PNG the simulator answers with for this imageConfig (its pictures are capped at 1536 px)."""
    return png(*size_for(aspect_ratio, image_size))


def the_call(sim: GeminiUpstream, path: str) -> Any:
    """The one upstream request made for the last client call, checked for the channel's key (in the header,
    never in the URL); its JSON body."""
    calls = sim.calls()
    assert [c.path for c in calls] == [path], [c.path for c in calls]
    call = calls[0]
    assert call.method == "POST"
    assert call.headers["x-goog-api-key"] == KEY
    assert "key" not in call.query
    assert call.headers["content-type"].startswith("application/json")
    return call.json


def generate_body(sim: GeminiUpstream, model: str = FLASH) -> Any:
    return the_call(sim, f"/v1beta/models/{model}{GENERATE}")


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


def text(value: str) -> dict[str, Any]:
    return {"text": value}


def inline(data: bytes, mime_type: str = "image/png") -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime_type, "data": b64(data)}}


def body(
    contents: str | list[dict[str, Any]],
    image_config: dict[str, Any],
    *,
    modalities: tuple[str, ...] = ("IMAGE",),
    **generation: Any,
) -> dict[str, Any]:
    """The generateContent body pixelgate must send: ``contents`` (a prompt alone, or whole contents),
    ``generationConfig`` with the modalities, ``image_config`` and any further ``generation`` fields."""
    if isinstance(contents, str):
        contents = [user(text(contents))]
    config: dict[str, Any] = {"responseModalities": list(modalities), "imageConfig": image_config}
    config.update(generation)
    return {"contents": contents, "generationConfig": config}


def image_config(
    aspect_ratio: str | None = None, image_size: str | None = None, **fields: Any
) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        image_config=types.ImageConfig(aspect_ratio=aspect_ratio, image_size=image_size), **fields
    )


def parts_of(response: types.GenerateContentResponse) -> list[types.Part]:
    assert response.candidates is not None and len(response.candidates) == 1
    content = response.candidates[0].content
    assert content is not None and content.parts is not None
    return content.parts


def final_image(response: types.GenerateContentResponse) -> types.Part:
    images = [p for p in parts_of(response) if p.inline_data is not None and not p.thought]
    assert len(images) == 1, parts_of(response)
    return images[0]


def image_bytes(response: types.GenerateContentResponse) -> bytes:
    """The answer's one image: its bytes, after checking that it decodes as the PNG it says it is."""
    part = final_image(response)
    assert part.inline_data is not None and part.inline_data.mime_type == "image/png"
    data = part.inline_data.data
    assert data
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    assert decoded.format == "PNG"
    return data


def error_info_reason(error: errors.APIError) -> str:
    details = error.details["error"]["details"]  # type: ignore[index]
    infos = [d for d in details if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert len(infos) == 1, details
    return str(infos[0]["reason"])


def error_message(error: openai.APIStatusError) -> str:
    """The ``error.message`` of an OpenAI-shaped error body (the SDK's own ``message`` adds a prefix)."""
    assert isinstance(error.body, dict), error.body
    return str(error.body["message"])


def poll_task(http: httpx.Client, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"/v1/images/generations/{task_id}")
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        if task["status"] in TERMINAL:
            return task
        assert time.monotonic() < deadline, f"task {task_id} is still {task['status']}"
        time.sleep(0.05)


def signature_bytes(signature: str) -> bytes:
    return base64.b64decode(signature)


# -- 1. text to image: every aspect ratio at every size --------------------------------------------------


@pytest.mark.parametrize("image_size", CATALOG.get(FLASH).image_sizes)
def test_flash_every_aspect_ratio(gemini: genai.Client, sim: GeminiUpstream, image_size: str) -> None:
    aspect_ratios = CATALOG.get(FLASH).aspect_ratios
    assert len(aspect_ratios) == 14
    for aspect in aspect_ratios:
        sim.reset()
        prompt = f"a lighthouse at dusk, {aspect} at {image_size}"
        response = gemini.models.generate_content(
            model=FLASH, contents=prompt, config=image_config(aspect, image_size)
        )
        assert generate_body(sim) == body(prompt, {"aspectRatio": aspect, "imageSize": image_size}), aspect
        assert image_bytes(response) == sim_image(aspect, image_size), aspect
        assert final_image(response).thought_signature == signature_bytes(sim.issued_signatures[-1])


@pytest.mark.parametrize("image_size", CATALOG.get(PRO).image_sizes)
def test_pro_every_aspect_ratio(gemini: genai.Client, sim: GeminiUpstream, image_size: str) -> None:
    for aspect in CATALOG.get(PRO).aspect_ratios:
        sim.reset()
        response = gemini.models.generate_content(
            model=PRO, contents="a castle", config=image_config(aspect, image_size)
        )
        expected = body("a castle", {"aspectRatio": aspect, "imageSize": image_size})
        assert generate_body(sim, PRO) == expected, aspect
        assert image_bytes(response) == sim_image(aspect, image_size), aspect


@pytest.mark.parametrize("model", [NANO, LITE])
def test_one_size_models_send_the_aspect_ratio_but_no_image_size(
    gemini: genai.Client, sim: GeminiUpstream, model: str
) -> None:
    spec = CATALOG.get(model)
    assert spec.image_sizes == ("1K",)
    for aspect in spec.aspect_ratios:
        sim.reset()
        response = gemini.models.generate_content(model=model, contents="a pear", config=image_config(aspect))
        assert generate_body(sim, model) == body("a pear", {"aspectRatio": aspect}), aspect
        assert image_bytes(response) == sim_image(aspect, None), aspect
    # The one size named explicitly is accepted, and still not sent.
    sim.reset()
    gemini.models.generate_content(model=model, contents="a pear", config=image_config("16:9", "1K"))
    assert generate_body(sim, model) == body("a pear", {"aspectRatio": "16:9"})


def test_defaults_are_sent_resolved(gemini: genai.Client, sim: GeminiUpstream) -> None:
    """With no imageConfig pixelgate sends what it resolved: 1:1 at the default size, or the aspect ratio
    nearest to the first reference's shape."""
    response = gemini.models.generate_content(model=FLASH, contents="a pear")
    assert generate_body(sim) == body("a pear", {"aspectRatio": "1:1", "imageSize": "1K"})
    assert image_bytes(response) == sim_image("1:1", "1K")

    sim.reset()
    wide = png_bytes(1600, 900)
    picture = types.Part.from_bytes(data=wide, mime_type="image/png")
    gemini.models.generate_content(model=FLASH, contents=[picture, "make it night"])
    expected = body([user(text("make it night"), inline(wide))], {"aspectRatio": "16:9", "imageSize": "1K"})
    assert generate_body(sim) == expected


# -- 2. aspect ratio and size through each dialect -------------------------------------------------------


def without_include_thoughts(sent: Any) -> Any:
    """The body without ``thinkingConfig: {includeThoughts: true}``, which the OpenAI-style dialects send
    although their callers can neither ask for thoughts nor see them (pinned apart, in
    test_openai_style_dialects_ask_for_no_thoughts)."""
    config = sent["generationConfig"]
    if config.get("thinkingConfig") == {"includeThoughts": True}:
        config = {k: v for k, v in config.items() if k != "thinkingConfig"}
    return {**sent, "generationConfig": config}


def test_openai_sdk_wxh_size_becomes_the_nearest_aspect_ratio_and_size(
    oai: openai.OpenAI, sim: GeminiUpstream
) -> None:
    response = oai.images.generate(
        model=FLASH, prompt="a cozy coffee shop", size="1536x1024", response_format="b64_json"
    )
    sent = without_include_thoughts(generate_body(sim))
    assert sent == body("a cozy coffee shop", {"aspectRatio": "3:2", "imageSize": "1K"})
    assert response.data is not None and len(response.data) == 1
    data = base64.b64decode(response.data[0].b64_json or "")
    assert data == sim_image("3:2", "1K")
    width, height = Image.open(io.BytesIO(data)).size
    assert response.size == f"{width}x{height}" == "1024x683", "the size of the image actually made"
    assert response.usage is not None and response.usage.output_tokens == 1120


def test_openai_sdk_aspect_ratio_and_resolution_fields(oai: openai.OpenAI, sim: GeminiUpstream) -> None:
    response = oai.images.generate(
        model=FLASH,
        prompt="a harbour",
        response_format="b64_json",
        extra_body={"aspect_ratio": "21:9", "resolution": "512"},
    )
    sent = without_include_thoughts(generate_body(sim))
    assert sent == body("a harbour", {"aspectRatio": "21:9", "imageSize": "512"})
    assert response.data is not None
    assert base64.b64decode(response.data[0].b64_json or "") == sim_image("21:9", "512")


def test_task_style_size_and_resolution(http: httpx.Client, sim: GeminiUpstream) -> None:
    created = http.post(
        "/v1/images/generations",
        json={"model": FLASH_OFFICIAL, "prompt": "a dog on a beach", "size": "16:9", "resolution": "2K"},
    )
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "queued"
    task = poll_task(http, created.json()["id"])
    assert task["status"] == "completed", task
    # The alias goes to Google by the id of the model it fronts.
    sent = without_include_thoughts(generate_body(sim, FLASH))
    assert sent == body("a dog on a beach", {"aspectRatio": "16:9", "imageSize": "2K"})
    (item,) = task["result"]["data"]
    downloaded = http.get(item["url"])
    assert downloaded.status_code == 200
    assert downloaded.content == sim_image("16:9", "2K")
    assert (item["width"], item["height"]) == size_for("16:9", "2K")


@pytest.mark.parametrize("dialect", ["openai-sdk", "task-style"])
def test_openai_style_dialects_ask_for_no_thoughts(
    oai: openai.OpenAI, http: httpx.Client, sim: GeminiUpstream, dialect: str
) -> None:
    if dialect == "openai-sdk":
        oai.images.generate(model=FLASH, prompt="a fox", size="1024x1024", response_format="b64_json")
    else:
        created = http.post(
            "/v1/images/generations",
            json={"model": FLASH, "prompt": "a fox", "size": "1:1", "resolution": "1K"},
        )
        assert poll_task(http, created.json()["id"])["status"] == "completed"
    assert generate_body(sim) == body("a fox", {"aspectRatio": "1:1", "imageSize": "1K"})


def test_interactions_sdk_response_format(gemini: genai.Client, sim: GeminiUpstream) -> None:
    interaction = gemini.interactions.create(
        model=FLASH,
        input="a red fox in snow",
        response_format={"type": "image", "aspect_ratio": "4:5", "image_size": "512"},
    )
    assert interaction.status == "completed"
    # Interactions shows thought summaries unless told not to, so they are asked for.
    expected = body(
        "a red fox in snow",
        {"aspectRatio": "4:5", "imageSize": "512"},
        thinkingConfig={"includeThoughts": True},
    )
    assert generate_body(sim) == expected
    assert interaction.output_image is not None
    assert base64.b64decode(interaction.output_image.data) == sim_image("4:5", "512")


# -- 3. aliases and renames ------------------------------------------------------------------------------


def test_alias_goes_to_google_by_its_upstream_id(gemini: genai.Client, sim: GeminiUpstream) -> None:
    response = gemini.models.generate_content(model=PRO_4K, contents="a city", config=image_config("16:9"))
    sent = generate_body(sim, PRO)  # models/gemini-3-pro-image, not the alias
    assert sent["contents"] == [user(text("a city"))]
    assert sent["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"
    image_bytes(response)


@pytest.mark.parametrize("size", [None, "4K"], ids=["default", "explicit"])
def test_pro_4k_alias_sends_image_size_4k(
    gemini: genai.Client, sim: GeminiUpstream, size: str | None
) -> None:
    response = gemini.models.generate_content(
        model=PRO_4K, contents="a city", config=image_config("16:9", size)
    )
    assert generate_body(sim, PRO) == body("a city", {"aspectRatio": "16:9", "imageSize": "4K"})
    assert image_bytes(response) == sim_image("16:9", "4K")


def test_pro_4k_alias_sends_image_size_4k_to_interactions(
    via_interactions: genai.Client, sim: GeminiUpstream
) -> None:
    via_interactions.models.generate_content(model=PRO_4K, contents="a city", config=image_config("16:9"))
    sent = the_call(sim, INTERACTIONS)
    assert sent["model"] == PRO
    assert sent["response_format"] == [{"type": "image", "aspect_ratio": "16:9", "image_size": "4K"}]


def test_channel_rename_is_the_upstream_model(renamed: genai.Client, sim: GeminiUpstream) -> None:
    response = renamed.models.generate_content(
        model=FLASH, contents="a banana", config=image_config("9:16", "2K")
    )
    sent = the_call(sim, f"/v1beta/models/{RENAMED_FLASH}{GENERATE}")
    assert sent == body("a banana", {"aspectRatio": "9:16", "imageSize": "2K"})
    assert image_bytes(response) == sim_image("9:16", "2K")
    assert response.model_version == FLASH, "the client sees the model it asked for"

    # A rename of an alias overrides its upstream id too.
    sim.reset()
    renamed.models.generate_content(model=PRO_4K, contents="a banana", config=image_config("1:1"))
    sent = the_call(sim, f"/v1beta/models/{RENAMED_PRO_4K}{GENERATE}")
    assert sent["contents"] == [user(text("a banana"))]


def test_model_missing_from_the_rename_table_is_not_served(
    renamed: genai.Client, sim: GeminiUpstream
) -> None:
    with pytest.raises(errors.APIError) as caught:
        renamed.models.generate_content(model=PRO, contents="a banana")
    assert caught.value.code == 503
    assert PRO in (caught.value.message or "") and "gemini-renamed" in (caught.value.message or "")
    assert sim.calls() == []


# -- 4. edits with references ----------------------------------------------------------------------------


def test_edit_with_two_references(gemini: genai.Client, sim: GeminiUpstream) -> None:
    first = png_bytes(300, 400, (200, 40, 40))
    second = jpeg_bytes(640, 480)
    contents = [
        types.Part.from_bytes(data=first, mime_type="image/png"),
        types.Part.from_bytes(data=second, mime_type="image/jpeg"),
        "put the cat from the first on the sofa from the second",
    ]
    response = gemini.models.generate_content(model=FLASH, contents=contents)
    prompt = "put the cat from the first on the sofa from the second"
    # The text first, then each reference's own bytes and MIME type; the aspect ratio follows the first.
    expected = body(
        [user(text(prompt), inline(first), inline(second, "image/jpeg"))],
        {"aspectRatio": "3:4", "imageSize": "1K"},
    )
    assert generate_body(sim) == expected
    assert image_bytes(response) == sim_image("3:4", "1K")
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_tokens_details is not None
    by_modality = {
        d.modality.value if d.modality else None: d.token_count for d in usage.prompt_tokens_details
    }
    assert by_modality["IMAGE"] == 2 * 258, "the upstream's usage passes through"


def test_openai_sdk_edit_with_two_references(oai: openai.OpenAI, sim: GeminiUpstream) -> None:
    first = png_bytes(64, 64, (0, 0, 255))
    second = png_bytes(48, 64, (255, 255, 0))
    response = oai.images.edit(
        model=PRO,
        prompt="blend them",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        response_format="b64_json",
        extra_body={"aspect_ratio": "4:3", "resolution": "2K"},
    )
    sent = without_include_thoughts(generate_body(sim, PRO))
    expected = body(
        [user(text("blend them"), inline(first), inline(second))], {"aspectRatio": "4:3", "imageSize": "2K"}
    )
    assert sent == expected
    assert response.data is not None
    assert base64.b64decode(response.data[0].b64_json or "") == sim_image("4:3", "2K")


# -- 5. multi-turn with thought signatures ---------------------------------------------------------------


def test_chat_sends_back_the_issued_thought_signature(gemini: genai.Client, sim: GeminiUpstream) -> None:
    chat = gemini.chats.create(model=FLASH, config=image_config("1:1", "512"))
    first = chat.send_message("a cat on a sofa")
    assert generate_body(sim) == body("a cat on a sofa", {"aspectRatio": "1:1", "imageSize": "512"})
    (issued,) = sim.issued_signatures
    turn_one_image = image_bytes(first)
    assert final_image(first).thought_signature == signature_bytes(issued)

    sim.reset()
    second = chat.send_message("make the cat blue")
    model_turn = {"role": "model", "parts": [{**inline(turn_one_image), "thoughtSignature": issued}]}
    expected = body(
        [user(text("a cat on a sofa")), model_turn, user(text("make the cat blue"))],
        {"aspectRatio": "1:1", "imageSize": "512"},
    )
    assert generate_body(sim) == expected
    assert turn_one_image == sim_image("1:1", "512")
    assert image_bytes(second) == sim_image("1:1", "512")
    (issued_now,) = sim.issued_signatures
    assert final_image(second).thought_signature == signature_bytes(issued_now) != signature_bytes(issued)


def test_chat_with_text_sends_the_signature_back_on_its_image_part(
    gemini: genai.Client, sim: GeminiUpstream
) -> None:
    config = image_config("1:1", "512", response_modalities=["TEXT", "IMAGE"])
    chat = gemini.chats.create(model=FLASH, config=config)
    first = chat.send_message("a cat on a sofa")
    (issued,) = sim.issued_signatures  # the simulator signs the image part, its text follows unsigned
    turn_one_image = image_bytes(first)
    sim.reset()
    chat.send_message("make the cat blue")
    model_parts = generate_body(sim)["contents"][1]["parts"]
    image_parts = [p for p in model_parts if "inlineData" in p]
    assert image_parts == [{**inline(turn_one_image), "thoughtSignature": issued}]


def test_interaction_continued_by_id_sends_back_the_upstream_signature(
    gemini: genai.Client, sim: GeminiUpstream
) -> None:
    """Server-side history (previous_interaction_id): pixelgate kept the upstream's signature itself."""
    small = {"type": "image", "aspect_ratio": "3:2", "image_size": "512"}
    first = gemini.interactions.create(model=FLASH, input="a red house", response_format=small)
    (issued,) = sim.issued_signatures
    first_image = base64.b64decode(first.output_image.data)
    sim.reset()
    second = gemini.interactions.create(
        model=FLASH, input="make it blue", previous_interaction_id=first.id, response_format=small
    )
    assert second.status == "completed"
    model_turn = {"role": "model", "parts": [{**inline(first_image), "thoughtSignature": issued}]}
    expected = body(
        [user(text("a red house")), model_turn, user(text("make it blue"))],
        {"aspectRatio": "3:2", "imageSize": "512"},
        thinkingConfig={"includeThoughts": True},
    )
    assert generate_body(sim) == expected


def test_chat_completions_restore_the_signature_that_chat_messages_cannot_carry(
    oai: openai.OpenAI, sim: GeminiUpstream
) -> None:
    """A chat message has no place for a thought signature: pixelgate knows its own image by its bytes and
    sends the upstream the signature it issued; an image it never made goes as an unsigned turn."""
    small = {"modalities": ["image"], "image_config": {"aspect_ratio": "1:1", "image_size": "512"}}
    first = oai.chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": "a cat on a sofa"}], extra_body=small
    )
    (issued,) = sim.issued_signatures
    images = first.choices[0].message.model_extra["images"]
    turn_one_image = base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1])
    assert turn_one_image == sim_image("1:1", "512")

    def second_turn(image: list[dict[str, Any]]) -> Any:
        sim.reset()
        messages = [
            {"role": "user", "content": "a cat on a sofa"},
            {"role": "assistant", "content": "", "images": image},
            {"role": "user", "content": "make the cat blue"},
        ]
        oai.chat.completions.create(model=FLASH, messages=messages, extra_body=small)
        return generate_body(sim)["contents"][1]

    assert second_turn(images) == {
        "role": "model",
        "parts": [{**inline(turn_one_image), "thoughtSignature": issued}],
    }
    foreign = png_bytes(32, 32)
    foreign_image = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(foreign)}"}}]
    assert second_turn(foreign_image) == {
        "role": "model",
        "parts": [{**inline(foreign), "thoughtSignature": "skip_thought_signature_validator"}],
    }


# -- 6. thinking, search, sampling, text -----------------------------------------------------------------


def test_thinking_level_high_with_thoughts(gemini: genai.Client, sim: GeminiUpstream) -> None:
    thinking = types.ThinkingConfig(thinking_level="HIGH", include_thoughts=True)
    response = gemini.models.generate_content(
        model=FLASH, contents="a glass city", config=image_config("16:9", "512", thinking_config=thinking)
    )
    expected = body(
        "a glass city",
        {"aspectRatio": "16:9", "imageSize": "512"},
        thinkingConfig={"thinkingLevel": "HIGH", "includeThoughts": True},
    )
    assert generate_body(sim) == expected
    parts = parts_of(response)
    thoughts = [p for p in parts if p.thought]
    assert [p.text for p in thoughts] == [THOUGHT_TEXT]
    assert parts[0].thought, "thoughts come first"
    assert image_bytes(response) == sim_image("16:9", "512")
    assert response.usage_metadata is not None
    assert response.usage_metadata.thoughts_token_count == THOUGHT_TOKENS


def test_thinking_level_alone_and_pro_thoughts(gemini: genai.Client, sim: GeminiUpstream) -> None:
    thinking = types.ThinkingConfig(thinking_level="HIGH")
    response = gemini.models.generate_content(
        model=FLASH, contents="a glass city", config=image_config("1:1", "512", thinking_config=thinking)
    )
    expected = body(
        "a glass city", {"aspectRatio": "1:1", "imageSize": "512"}, thinkingConfig={"thinkingLevel": "HIGH"}
    )
    assert generate_body(sim) == expected
    assert not [p for p in parts_of(response) if p.thought]

    # Pro always thinks and takes no level: only includeThoughts goes up.
    sim.reset()
    thinking = types.ThinkingConfig(include_thoughts=True)
    response = gemini.models.generate_content(
        model=PRO, contents="a glass city", config=image_config("1:1", "1K", thinking_config=thinking)
    )
    expected = body(
        "a glass city", {"aspectRatio": "1:1", "imageSize": "1K"}, thinkingConfig={"includeThoughts": True}
    )
    assert generate_body(sim, PRO) == expected
    assert [p.text for p in parts_of(response) if p.thought] == [THOUGHT_TEXT]


WEB_AND_IMAGE_SEARCH = types.Tool(
    google_search=types.GoogleSearch(
        search_types=types.SearchTypes(web_search=types.WebSearch(), image_search=types.ImageSearch())
    )
)


def test_google_search_with_image_search(gemini: genai.Client, sim: GeminiUpstream) -> None:
    prompt = "a resplendent quetzal"
    response = gemini.models.generate_content(
        model=FLASH, contents=prompt, config=image_config("3:2", "512", tools=[WEB_AND_IMAGE_SEARCH])
    )
    sent = generate_body(sim)
    assert sent == {
        **body(prompt, {"aspectRatio": "3:2", "imageSize": "512"}),
        "tools": [{"googleSearch": {"searchTypes": {"webSearch": {}, "imageSearch": {}}}}],
    }
    assert response.candidates is not None
    grounding = response.candidates[0].grounding_metadata
    assert grounding is not None
    assert grounding.web_search_queries == [prompt]
    assert grounding.image_search_queries == [prompt]
    assert grounding.search_entry_point is not None
    assert "<div>suggestions</div>" in (grounding.search_entry_point.rendered_content or "")
    assert image_bytes(response) == sim_image("3:2", "512")


def test_search_entry_point_is_passed_on_once(gemini: genai.Client, sim: GeminiUpstream) -> None:
    response = gemini.models.generate_content(
        model=FLASH, contents="a quetzal", config=image_config("3:2", "512", tools=[WEB_AND_IMAGE_SEARCH])
    )
    assert response.candidates is not None
    grounding = response.candidates[0].grounding_metadata
    assert grounding is not None and grounding.search_entry_point is not None
    assert grounding.search_entry_point.rendered_content == "<div>suggestions</div>"


def test_plain_google_search(gemini: genai.Client, sim: GeminiUpstream) -> None:
    response = gemini.models.generate_content(
        model=FLASH,
        contents="today's weather in Paris",
        config=image_config("1:1", "512", tools=[types.Tool(google_search=types.GoogleSearch())]),
    )
    sent = generate_body(sim)
    assert sent == {
        **body("today's weather in Paris", {"aspectRatio": "1:1", "imageSize": "512"}),
        "tools": [{"googleSearch": {}}],
    }
    assert response.candidates is not None
    grounding = response.candidates[0].grounding_metadata
    assert grounding is not None
    assert grounding.web_search_queries == ["today's weather in Paris"]
    assert not grounding.image_search_queries
    assert grounding.search_entry_point is not None
    assert grounding.search_entry_point.rendered_content == "<div>suggestions</div>"


def test_system_instruction_seed_temperature_top_p(gemini: genai.Client, sim: GeminiUpstream) -> None:
    response = gemini.models.generate_content(
        model=FLASH,
        contents="a bowl of fruit",
        config=image_config(
            "4:3",
            "1K",
            system_instruction="You paint in the style of Cezanne.",
            seed=1234,
            temperature=0.4,
            top_p=0.85,
        ),
    )
    assert generate_body(sim) == {
        **body(
            "a bowl of fruit",
            {"aspectRatio": "4:3", "imageSize": "1K"},
            seed=1234,
            temperature=0.4,
            topP=0.85,
        ),
        "systemInstruction": {"parts": [{"text": "You paint in the style of Cezanne."}]},
    }
    assert image_bytes(response) == sim_image("4:3", "1K")


def test_text_and_image_modalities_pass_the_text_on(gemini: genai.Client, sim: GeminiUpstream) -> None:
    response = gemini.models.generate_content(
        model=FLASH,
        contents="a red fox",
        config=image_config("1:1", "512", response_modalities=["TEXT", "IMAGE"]),
    )
    expected = body("a red fox", {"aspectRatio": "1:1", "imageSize": "512"}, modalities=("TEXT", "IMAGE"))
    assert generate_body(sim) == expected
    assert response.text == IMAGE_TEXT
    assert image_bytes(response) == sim_image("1:1", "512")


# -- 7. the channel key ----------------------------------------------------------------------------------


def test_key_goes_in_the_header_and_never_back(server: ServerProcess, sim: GeminiUpstream) -> None:
    raw = httpx.post(
        f"{server.url}/v1beta/models/{FLASH}{GENERATE}",
        json={"contents": [{"role": "user", "parts": [{"text": "a kite"}]}]},
        timeout=60,
    )
    assert raw.status_code == 200, raw.text
    generate_body(sim)  # the header is the channel's key, the URL carries none
    assert KEY not in raw.text
    assert all(KEY not in f"{name}: {value}" for name, value in raw.headers.items())
    assert KEY not in server.log()


def test_refused_key_is_a_502_that_names_the_channel_and_hides_the_key(
    server: ServerProcess, oai: openai.OpenAI, gemini: genai.Client, http: httpx.Client, sim: GeminiUpstream
) -> None:
    sim.api_key = OTHER_KEY
    sim.echo_key = True  # the upstream quotes the key it got: pixelgate must not pass it on

    with pytest.raises(openai.APIStatusError) as caught:
        oai.images.generate(model=FLASH, prompt="a kite", response_format="b64_json")
    error = caught.value
    assert error.status_code == 502
    assert error.code == "upstream_auth_failed"
    message = error_message(error)
    assert message.startswith("channel 'gemini-sim': the upstream refused the channel's key (HTTP 400): ")
    assert "[redacted]" in message
    assert KEY not in error.response.text
    calls = sim.calls(GENERATE)
    assert len(calls) == 2, "a refused key is the channel's failure: tried max_attempts times"
    assert all(c.headers["x-goog-api-key"] == KEY for c in calls)

    sim.reset()
    with pytest.raises(errors.ServerError) as google_caught:
        gemini.models.generate_content(model=FLASH, contents="a kite")
    assert google_caught.value.code == 502
    assert error_info_reason(google_caught.value) == "UPSTREAM_AUTH_FAILED"
    assert "gemini-sim" in (google_caught.value.message or "")
    assert KEY not in str(google_caught.value.details)

    # The failed task, read back: failed, not charged, no key.
    sim.reset()
    created = http.post(
        "/v1/images/generations", json={"model": FLASH, "prompt": "a kite", "size": "1:1", "resolution": "1K"}
    )
    task = poll_task(http, created.json()["id"])
    assert task["status"] == "failed"
    assert task["error"]["code"] == "upstream_auth_failed"
    assert "result" not in task and "usage" not in task
    assert KEY not in http.get(f"/v1/images/generations/{task['id']}").text
    assert KEY not in server.log()


# -- 8. the Interactions upstream API --------------------------------------------------------------------


def interactions_body(sim: GeminiUpstream) -> Any:
    return the_call(sim, INTERACTIONS)


def user_input(value: str) -> dict[str, Any]:
    return {"type": "user_input", "content": [{"type": "text", "text": value}]}


def test_interactions_channel(via_interactions: genai.Client, sim: GeminiUpstream) -> None:
    thinking = types.ThinkingConfig(thinking_level="HIGH", include_thoughts=True)
    response = via_interactions.models.generate_content(
        model=FLASH, contents="a glass city", config=image_config("16:9", "512", thinking_config=thinking)
    )
    assert interactions_body(sim) == {
        "model": FLASH,
        "input": [user_input("a glass city")],
        "response_format": [{"type": "image", "aspect_ratio": "16:9", "image_size": "512"}],
        "generation_config": {"thinking_level": "high", "thinking_summaries": "auto"},
        "store": False,
    }
    assert image_bytes(response) == sim_image("16:9", "512")
    assert [p.text for p in parts_of(response) if p.thought] == [THOUGHT_TEXT]
    assert final_image(response).thought_signature == signature_bytes(sim.issued_signatures[-1])


def test_interactions_channel_every_field(via_interactions: genai.Client, sim: GeminiUpstream) -> None:
    reference = png_bytes(40, 40)
    response = via_interactions.models.generate_content(
        model=FLASH,
        contents=[types.Part.from_bytes(data=reference, mime_type="image/png"), "a poster of this"],
        config=image_config(
            "2:3",
            "1K",
            system_instruction="Bold colours.",
            seed=9,
            temperature=0.3,
            top_p=0.7,
            response_modalities=["TEXT", "IMAGE"],
            tools=[WEB_AND_IMAGE_SEARCH],
        ),
    )
    assert interactions_body(sim) == {
        "model": FLASH,
        "input": [
            {
                "type": "user_input",
                "content": [
                    {"type": "text", "text": "a poster of this"},
                    {"type": "image", "mime_type": "image/png", "data": b64(reference)},
                ],
            }
        ],
        "response_format": [{"type": "image", "aspect_ratio": "2:3", "image_size": "1K"}, {"type": "text"}],
        "generation_config": {"seed": 9, "temperature": 0.3, "top_p": 0.7},
        "system_instruction": "Bold colours.",
        "tools": [{"type": "google_search", "search_types": ["web_search", "image_search"]}],
        "store": False,
    }
    assert image_bytes(response) == sim_image("2:3", "1K")


def test_interactions_channel_one_size_model(via_interactions: genai.Client, sim: GeminiUpstream) -> None:
    response = via_interactions.models.generate_content(
        model=NANO, contents="a pear", config=image_config("4:5")
    )
    assert interactions_body(sim) == {
        "model": NANO,
        "input": [user_input("a pear")],
        "response_format": [{"type": "image", "aspect_ratio": "4:5"}],
        "store": False,
    }
    assert image_bytes(response) == sim_image("4:5", None)


def test_interactions_channel_chat_sends_back_steps_with_the_signature(
    via_interactions: genai.Client, sim: GeminiUpstream
) -> None:
    thinking = types.ThinkingConfig(thinking_level="HIGH")
    chat = via_interactions.chats.create(
        model=FLASH, config=image_config("1:1", "512", thinking_config=thinking)
    )
    first = chat.send_message("a cat on a sofa")
    (issued,) = sim.issued_signatures
    turn_one_image = image_bytes(first)
    assert turn_one_image == sim_image("1:1", "512")
    sim.reset()
    second = chat.send_message("make the cat blue")
    assert interactions_body(sim) == {
        "model": FLASH,
        "input": [
            user_input("a cat on a sofa"),
            {"type": "thought", "signature": issued},
            {
                "type": "model_output",
                "content": [{"type": "image", "mime_type": "image/png", "data": b64(turn_one_image)}],
            },
            user_input("make the cat blue"),
        ],
        "response_format": [{"type": "image", "aspect_ratio": "1:1", "image_size": "512"}],
        "generation_config": {"thinking_level": "high"},
        "store": False,
    }
    image_bytes(second)


def test_interactions_channel_pro_thoughts(via_interactions: genai.Client, sim: GeminiUpstream) -> None:
    thinking = types.ThinkingConfig(include_thoughts=True)
    response = via_interactions.models.generate_content(
        model=PRO, contents="a castle", config=image_config("1:1", "1K", thinking_config=thinking)
    )
    assert interactions_body(sim) == {
        "model": PRO,
        "input": [user_input("a castle")],
        "response_format": [{"type": "image", "aspect_ratio": "1:1", "image_size": "1K"}],
        "generation_config": {"thinking_summaries": "auto"},
        "store": False,
    }
    assert [p.text for p in parts_of(response) if p.thought] == [THOUGHT_TEXT]


# -- 9. faults -------------------------------------------------------------------------------------------


def test_safety_block_is_a_400_and_not_retried(
    oai: openai.OpenAI, gemini: genai.Client, sim: GeminiUpstream
) -> None:
    sim.no_image_finish_reason = "IMAGE_SAFETY"
    sim.fail_next("no_image", 2)
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(model=FLASH, contents="something forbidden")
    assert caught.value.code == 400
    assert error_info_reason(caught.value) == "CONTENT_BLOCKED"
    assert "IMAGE_SAFETY" in (caught.value.message or "")
    assert NO_IMAGE_TEXT in (caught.value.message or ""), "the upstream's explanation is passed on"
    assert len(sim.calls(GENERATE)) == 1, "another channel would refuse too: never retried"

    sim.reset()
    sim.fail_next("no_image", 2)
    with pytest.raises(openai.BadRequestError) as openai_caught:
        oai.images.generate(model=FLASH, prompt="something forbidden", response_format="b64_json")
    assert openai_caught.value.code == "content_blocked"
    assert openai_caught.value.type == "invalid_request_error"
    assert len(sim.calls(GENERATE)) == 1


FAULTS = [
    pytest.param(
        "no_image", "upstream_malformed", "the upstream sent an answer with no image", id="no_image"
    ),
    pytest.param("bad_base64", "upstream_malformed", "the upstream sent broken base64", id="bad_base64"),
    pytest.param(
        "not_image",
        "upstream_malformed",
        "the upstream sent something that is not a usable image",
        id="not_image",
    ),
    # The simulator's HTML page comes with HTTP 502 (nginx in front of a dead upstream): a 5xx, and said so.
    pytest.param(
        "html", "upstream_error", "the upstream answered HTTP 502: an HTML page (502 Bad Gateway)", id="html"
    ),
    pytest.param(
        "cut",
        "upstream_connection_lost",
        "the upstream closed the connection before its answer was complete",
        id="cut",
    ),
]


@pytest.mark.parametrize(("fault", "code", "said"), FAULTS)
def test_malformed_answers_are_retried_then_a_502(
    oai: openai.OpenAI, sim: GeminiUpstream, fault: str, code: str, said: str
) -> None:
    # Once: the retry succeeds and the client never knows.
    sim.fail_next(fault)
    response = oai.images.generate(model=FLASH, prompt="a kite", response_format="b64_json")
    assert response.data is not None
    assert base64.b64decode(response.data[0].b64_json or "") == sim_image("1:1", "1K")
    assert len(sim.calls(GENERATE)) == 2

    # On every attempt: a 502 that names the channel and says what was wrong.
    sim.reset()
    sim.fail_next(fault, 2)
    with pytest.raises(openai.APIStatusError) as caught:
        oai.images.generate(model=FLASH, prompt="a kite", response_format="b64_json")
    error = caught.value
    assert error.status_code == 502
    assert error.code == code
    message = error_message(error)
    assert message.startswith(f"channel 'gemini-sim': {said}"), message
    assert message.endswith("(gave up after 2 attempts: gemini-sim, gemini-sim)")
    assert KEY not in error.response.text
    assert len(sim.calls(GENERATE)) == 2
    assert sim.pending_faults() == []


def test_malformed_answer_through_the_gemini_sdk(gemini: genai.Client, sim: GeminiUpstream) -> None:
    sim.fail_next("bad_base64", 2)
    with pytest.raises(errors.ServerError) as caught:
        gemini.models.generate_content(model=FLASH, contents="a kite")
    assert caught.value.code == 502
    assert error_info_reason(caught.value) == "UPSTREAM_MALFORMED"
    assert "channel 'gemini-sim': the upstream sent broken base64" in (caught.value.message or "")


def test_upstream_400_is_passed_on_and_not_retried(
    oai: openai.OpenAI, gemini: genai.Client, sim: GeminiUpstream
) -> None:
    sim.fail_next("400", 2)
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(model=FLASH, contents="a kite")
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert SIMULATED_BAD_REQUEST in (caught.value.message or "")
    assert len(sim.calls(GENERATE)) == 1

    sim.reset()
    sim.fail_next("400", 2)
    with pytest.raises(openai.BadRequestError) as openai_caught:
        oai.images.generate(model=FLASH, prompt="a kite", response_format="b64_json")
    assert openai_caught.value.status_code == 400
    assert openai_caught.value.type == "invalid_request_error"
    assert (
        error_message(openai_caught.value)
        == f"the upstream refused the request (HTTP 400): {SIMULATED_BAD_REQUEST}"
    )
    assert len(sim.calls(GENERATE)) == 1
    assert len(sim.pending_faults()) == 1, "the second 400 was never asked for"
