"""The official google-genai SDK, pointed at pixelgate's Gemini API (``generateContent``, its SSE stream,
chats and the model list), works unmodified; the openai SDK still reads the same ``/v1/models`` path."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from conftest import MakeServer, ServerProcess, png_bytes
from pixelgate.catalog import default_catalog

CATALOG = default_catalog()
FLASH = "gemini-3.1-flash-image"
LITE = "gemini-3.1-flash-lite-image"
PRO = "gemini-3-pro-image"
NANO = "gemini-2.5-flash-image"
BASE_MODELS = (FLASH, LITE, PRO, NANO)
THINKING_MODELS = {FLASH, PRO}
SKIP_SIGNATURE = b"skip_thought_signature_validator"


def sdk_client(server: ServerProcess, api_version: str | None = "v1beta") -> genai.Client:
    """A client on ``server``; ``api_version=None`` keeps the SDK's own default (v1). No retries: a test
    that fails should fail at once."""
    options = types.HttpOptions(base_url=server.url, retry_options=types.HttpRetryOptions(attempts=1))
    if api_version is not None:
        options.api_version = api_version
    return genai.Client(api_key="k", http_options=options)


@pytest.fixture()
def client(server: ServerProcess) -> genai.Client:
    return sdk_client(server)


def config(
    aspect_ratio: str | None = None, image_size: str | None = None, **fields: Any
) -> types.GenerateContentConfig:
    image_config = None
    if aspect_ratio is not None or image_size is not None:
        image_config = types.ImageConfig(aspect_ratio=aspect_ratio, image_size=image_size)
    return types.GenerateContentConfig(image_config=image_config, **fields)


def parts_of(response: types.GenerateContentResponse, index: int = 0) -> list[types.Part]:
    assert response.candidates is not None and len(response.candidates) > index
    content = response.candidates[index].content
    assert content is not None and content.parts is not None
    return content.parts


def final_images(parts: list[types.Part]) -> list[types.Part]:
    return [p for p in parts if p.inline_data is not None and not p.thought]


def thought_parts(parts: list[types.Part]) -> list[types.Part]:
    return [p for p in parts if p.thought]


def decode(part: types.Part) -> Image.Image:
    assert part.inline_data is not None and part.inline_data.data
    return Image.open(io.BytesIO(part.inline_data.data))


def the_image(response: types.GenerateContentResponse) -> Image.Image:
    images = final_images(parts_of(response))
    assert len(images) == 1, parts_of(response)
    assert images[0].inline_data is not None and images[0].inline_data.mime_type == "image/png"
    image = decode(images[0])
    assert image.format == "PNG"
    return image


def modality_tokens(details: list[types.ModalityTokenCount] | None) -> dict[str, int]:
    return {str(d.modality.value if d.modality else None): d.token_count or 0 for d in details or []}


def image_part(data: bytes, signature: bytes | None = None) -> types.Part:
    return types.Part(inline_data=types.Blob(data=data, mime_type="image/png"), thought_signature=signature)


def client_error(call: Callable[[], object]) -> errors.ClientError:
    with pytest.raises(errors.ClientError) as caught:
        call()
    return caught.value


def error_info(error: errors.APIError) -> dict[str, Any]:
    """The ``google.rpc.ErrorInfo`` detail of a Google-shaped error body."""
    body = error.details
    assert isinstance(body, dict) and "error" in body, body
    infos = [d for d in body["error"]["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert len(infos) == 1, body
    info: dict[str, Any] = infos[0]
    return info


# 1. Text to image: every aspect ratio at the smallest size, every size at one aspect ratio, the defaults.


def pixel_cases() -> list[Any]:
    cases = []
    for model in BASE_MODELS:
        spec = CATALOG.get(model)
        smallest = spec.image_sizes[0]
        cases.append(pytest.param(model, None, None, id=f"{model}-defaults"))
        cases += [pytest.param(model, a, smallest, id=f"{model}-{a}-{smallest}") for a in spec.aspect_ratios]
        for size in spec.image_sizes[1:]:
            if size == "4K" and model != FLASH:
                continue  # one 4K render is enough (it costs about a second)
            cases.append(pytest.param(model, "16:9", size, id=f"{model}-16:9-{size}"))
    return cases


@pytest.mark.parametrize(("model", "aspect_ratio", "image_size"), pixel_cases())
def test_text_to_image_pixels_and_usage(
    client: genai.Client, model: str, aspect_ratio: str | None, image_size: str | None
) -> None:
    spec = CATALOG.get(model)
    response = client.models.generate_content(
        model=model, contents="a lighthouse at dusk", config=config(aspect_ratio, image_size)
    )
    assert response.candidates is not None and len(response.candidates) == 1
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content is not None and candidate.content.role == "model"
    parts = parts_of(response)
    assert len(parts) == 1, "no text and no thoughts unless asked for"

    size = image_size or spec.default_image_size
    assert the_image(response).size == spec.output_pixels(aspect_ratio or "1:1", size)
    assert bool(parts[0].thought_signature) == (model in THINKING_MODELS)

    usage = response.usage_metadata
    assert usage is not None
    tokens = spec.tokens_for(size)
    assert tokens == {"512": 747, "1K": 1290 if model == NANO else 1120, "2K": 1120, "4K": 2000}[size]
    assert modality_tokens(usage.candidates_tokens_details) == {"IMAGE": tokens}
    assert usage.candidates_token_count == tokens
    assert usage.prompt_token_count and usage.prompt_token_count > 0
    assert modality_tokens(usage.prompt_tokens_details) == {"TEXT": usage.prompt_token_count}
    if model in THINKING_MODELS:
        assert usage.thoughts_token_count and usage.thoughts_token_count > 0
    else:
        assert not usage.thoughts_token_count
    assert usage.total_token_count == tokens + usage.prompt_token_count + (usage.thoughts_token_count or 0)
    assert response.model_version == model
    assert response.response_id


def test_response_ids_differ(client: genai.Client) -> None:
    first, second = (
        client.models.generate_content(model=NANO, contents="a lighthouse at dusk") for _ in range(2)
    )
    assert first.response_id and second.response_id and first.response_id != second.response_id


# 2. Editing with reference images.


@pytest.mark.parametrize("model", BASE_MODELS)
def test_edit_output_follows_the_input_aspect_ratio(client: genai.Client, model: str) -> None:
    picture = types.Part.from_bytes(data=png_bytes(1600, 900), mime_type="image/png")
    response = client.models.generate_content(model=model, contents=[picture, "make it night"])
    assert the_image(response).size == CATALOG.get(model).output_pixels("16:9", "1K")
    usage = response.usage_metadata
    assert usage is not None
    assert modality_tokens(usage.prompt_tokens_details)["IMAGE"] == 258 * 3 * 2  # 768-px tiles


def test_edit_explicit_aspect_ratio_wins_over_the_input(client: genai.Client) -> None:
    picture = types.Part.from_bytes(data=png_bytes(1600, 900), mime_type="image/png")
    response = client.models.generate_content(
        model=FLASH, contents=[picture, "square it"], config=config("1:1", "512")
    )
    assert the_image(response).size == (512, 512)


def test_edit_with_five_references_follows_the_first(client: genai.Client) -> None:
    colors = [(0, 255, 0), (255, 0, 255), (0, 255, 255), (255, 255, 0), (0, 0, 255)]
    first = types.Part.from_bytes(data=png_bytes(300, 400, colors[0]), mime_type="image/png")
    others = [types.Part.from_bytes(data=png_bytes(384, 216, c), mime_type="image/png") for c in colors[1:]]
    response = client.models.generate_content(model=FLASH, contents=[first, *others, "put them together"])
    image = the_image(response)
    assert image.size == CATALOG.get(FLASH).output_pixels("3:4", "1K") == (896, 1200)
    usage = response.usage_metadata
    assert usage is not None and modality_tokens(usage.prompt_tokens_details)["IMAGE"] == 5 * 258
    # The emulator shows every reference as a thumbnail: each pure colour must be in the picture.
    seen = {color for _, color in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    assert set(colors) <= seen


# 3. A three-turn edit session with client.chats.


@pytest.mark.parametrize(
    ("model", "chat_config"),
    [
        pytest.param(FLASH, config("4:3", "512"), id="flash"),
        pytest.param(
            PRO,
            config(
                response_modalities=["TEXT", "IMAGE"],
                thinking_config=types.ThinkingConfig(include_thoughts=True),
            ),
            id="pro-thoughts-and-text",
        ),
        pytest.param(NANO, config("3:2"), id="2.5-no-signatures"),
    ],
)
def test_chat_three_turns(client: genai.Client, model: str, chat_config: types.GenerateContentConfig) -> None:
    spec = CATALOG.get(model)
    aspect = chat_config.image_config.aspect_ratio if chat_config.image_config else None
    size = chat_config.image_config.image_size if chat_config.image_config else None
    expected = spec.output_pixels(aspect or "1:1", size or spec.default_image_size)
    chat = client.chats.create(model=model, config=chat_config)
    images: list[bytes] = []
    history_image_tokens: list[int] = []
    for message in ("a cat on a sofa", "make the cat blue", "add a top hat"):
        response = chat.send_message(message)
        parts = parts_of(response)
        finals = final_images(parts)
        assert len(finals) == 1
        assert decode(finals[0]).size == expected
        assert bool(finals[0].thought_signature) == (model in THINKING_MODELS)
        assert finals[0].inline_data is not None and finals[0].inline_data.data
        images.append(finals[0].inline_data.data)
        usage = response.usage_metadata
        assert usage is not None
        history_image_tokens.append(modality_tokens(usage.prompt_tokens_details).get("IMAGE", 0))
    assert len(set(images)) == 3, "each turn makes a new image"
    assert history_image_tokens[0] == 0 < history_image_tokens[1] < history_image_tokens[2], (
        "later turns see the earlier images"
    )
    history = chat.get_history()
    assert [c.role for c in history] == ["user", "model"] * 3


# 4. Response modalities, thoughts, candidate count.


@pytest.mark.parametrize("model", [FLASH, NANO])
def test_text_and_image_modalities_give_a_text_part(client: genai.Client, model: str) -> None:
    response = client.models.generate_content(
        model=model, contents="a red fox", config=config(response_modalities=["TEXT", "IMAGE"])
    )
    parts = parts_of(response)
    texts = [p.text for p in parts if p.text and not p.thought]
    assert len(texts) == 1 and "fox" in texts[0]
    assert response.text == texts[0]
    assert the_image(response).size == CATALOG.get(model).output_pixels("1:1", "1K")
    usage = response.usage_metadata
    assert usage is not None
    by_modality = modality_tokens(usage.candidates_tokens_details)
    assert by_modality["TEXT"] > 0 and by_modality["IMAGE"] == CATALOG.get(model).tokens_for("1K")
    assert usage.candidates_token_count == by_modality["TEXT"] + by_modality["IMAGE"]


def test_image_modality_alone_gives_no_text(client: genai.Client) -> None:
    response = client.models.generate_content(
        model=FLASH, contents="a red fox", config=config(response_modalities=["IMAGE"])
    )
    assert [p for p in parts_of(response) if p.text is not None] == []
    assert response.text is None
    the_image(response)


@pytest.mark.parametrize(
    ("model", "level", "interim_images"),
    [
        pytest.param(FLASH, "HIGH", 2, id="flash-high"),
        pytest.param(FLASH, "MINIMAL", 0, id="flash-minimal"),
        pytest.param(FLASH, None, 0, id="flash-default-is-minimal"),
        pytest.param(PRO, None, 2, id="pro"),
    ],
)
def test_include_thoughts_shows_thought_parts(
    client: genai.Client, model: str, level: str | None, interim_images: int
) -> None:
    spec = CATALOG.get(model)
    size = spec.image_sizes[1]  # above the smallest, so the draft (at the smallest) differs in size
    thinking = types.ThinkingConfig(include_thoughts=True, thinking_level=level)
    response = client.models.generate_content(
        model=model, contents="a red fox", config=config("16:9", size, thinking_config=thinking)
    )
    parts = parts_of(response)
    thoughts = thought_parts(parts)
    assert thoughts, "includeThoughts shows the thoughts"
    assert parts[: len(thoughts)] == thoughts, "thoughts come before the answer"
    thought_texts = [p for p in thoughts if p.text]
    thought_images = [p for p in thoughts if p.inline_data is not None]
    assert thought_texts and (thought_texts[0].text or "").startswith("Emulated thinking")
    assert len(thought_images) == interim_images
    final = the_image(response)
    assert final.size == spec.output_pixels("16:9", size)
    if interim_images:
        draft, last = (decode(p) for p in thought_images)
        assert draft.size == spec.output_pixels("16:9", spec.image_sizes[0]), "a draft at the smallest size"
        assert last.size == final.size
    usage = response.usage_metadata
    assert usage is not None and usage.thoughts_token_count and usage.thoughts_token_count > 0
    # Interim thought images are not billed.
    assert modality_tokens(usage.candidates_tokens_details) == {"IMAGE": spec.tokens_for(size)}


@pytest.mark.parametrize(("model", "level"), [(FLASH, "HIGH"), (PRO, None)])
def test_no_thought_parts_without_include_thoughts(
    client: genai.Client, model: str, level: str | None
) -> None:
    thinking = types.ThinkingConfig(thinking_level=level)
    response = client.models.generate_content(
        model=model, contents="a red fox", config=config(thinking_config=thinking)
    )
    parts = parts_of(response)
    assert thought_parts(parts) == [] and len(parts) == 1
    usage = response.usage_metadata
    assert usage is not None and usage.thoughts_token_count and usage.thoughts_token_count > 0


def test_thinking_level_changes_the_thought_tokens(client: genai.Client) -> None:
    def thought_tokens(level: str) -> int:
        thinking = types.ThinkingConfig(thinking_level=level)
        response = client.models.generate_content(
            model=FLASH, contents="a red fox", config=config(image_size="512", thinking_config=thinking)
        )
        assert response.usage_metadata is not None
        return response.usage_metadata.thoughts_token_count or 0

    assert thought_tokens("HIGH") > thought_tokens("MINIMAL") > 0


def test_candidate_count_two(client: genai.Client) -> None:
    response = client.models.generate_content(
        model=FLASH, contents="a red fox", config=config("9:16", "512", candidate_count=2)
    )
    assert response.candidates is not None and len(response.candidates) == 2
    assert [c.index or 0 for c in response.candidates] == [0, 1]
    datas = []
    for index in range(2):
        images = final_images(parts_of(response, index))
        assert len(images) == 1
        assert decode(images[0]).size == (384, 688)
        assert images[0].inline_data is not None
        datas.append(images[0].inline_data.data)
    assert datas[0] != datas[1], "two candidates are two different images"
    usage = response.usage_metadata
    assert usage is not None and modality_tokens(usage.candidates_tokens_details) == {"IMAGE": 2 * 747}


# 5. Streaming.


def test_stream_with_thoughts(client: genai.Client) -> None:
    thinking = types.ThinkingConfig(include_thoughts=True, thinking_level="HIGH")
    chunks = list(
        client.models.generate_content_stream(
            model=FLASH, contents="a red fox", config=config("1:1", "512", thinking_config=thinking)
        )
    )
    assert len(chunks) >= 2
    parts = [part for chunk in chunks for part in parts_of(chunk)]
    thoughts = thought_parts(parts)
    assert parts[: len(thoughts)] == thoughts, "the thought parts come first"
    assert len([p for p in thoughts if p.inline_data is not None]) == 2
    last = chunks[-1]
    assert not thought_parts(parts_of(last))
    assert the_image(last).size == (512, 512)
    assert final_images(parts_of(last))[0].thought_signature
    for chunk in chunks[:-1]:
        assert final_images(parts_of(chunk)) == [], "only the last chunk has the answer"
        assert chunk.usage_metadata is None
    assert last.usage_metadata is not None
    assert modality_tokens(last.usage_metadata.candidates_tokens_details) == {"IMAGE": 747}
    assert {c.response_id for c in chunks} == {last.response_id} and last.response_id
    assert {c.model_version for c in chunks} == {FLASH}


def test_stream_without_thoughts_ends_with_image_and_usage(client: genai.Client) -> None:
    chunks = list(
        client.models.generate_content_stream(model=NANO, contents="a red fox", config=config("16:9"))
    )
    assert chunks
    assert all(not thought_parts(parts_of(c)) for c in chunks)
    last = chunks[-1]
    assert the_image(last).size == (1344, 768)
    assert last.usage_metadata is not None
    assert modality_tokens(last.usage_metadata.candidates_tokens_details) == {"IMAGE": 1290}


def test_stream_survives_keepalive_lines(backend: str, make_server: MakeServer) -> None:
    slow = make_server(backend, "--emulate", "--emulate-latency", "1", "--stream-keepalive", "0.2")
    raw = httpx.post(
        f"{slow.url}/v1beta/models/{NANO}:streamGenerateContent?alt=sse",
        json={"contents": [{"role": "user", "parts": [{"text": "a red fox"}]}]},
        timeout=30,
    )
    assert raw.status_code == 200
    assert raw.text.startswith("\n"), "blank keep-alive lines come first while the image is made"
    client = sdk_client(slow)  # kept in a name: a Client closes its HTTP client when it is collected
    chunks = list(client.models.generate_content_stream(model=NANO, contents="a red fox"))
    assert the_image(chunks[-1]).size == (1024, 1024)


def test_stream_error_is_a_client_error(client: genai.Client) -> None:
    contents = [
        types.Content(role="user", parts=[types.Part.from_text(text="a cat")]),
        types.Content(role="model", parts=[image_part(png_bytes())]),
        types.Content(role="user", parts=[types.Part.from_text(text="make it blue")]),
    ]
    error = client_error(lambda: list(client.models.generate_content_stream(model=FLASH, contents=contents)))
    assert error.code == 400 and "thought signature" in (error.message or "")


# 6. Search grounding.


def test_google_search_grounding_on_flash(client: genai.Client) -> None:
    response = client.models.generate_content(
        model=FLASH,
        contents="the Eiffel tower at noon today",
        config=config(image_size="512", tools=[types.Tool(google_search=types.GoogleSearch())]),
    )
    assert response.candidates is not None
    grounding = response.candidates[0].grounding_metadata
    assert grounding is not None
    assert grounding.web_search_queries == ["the Eiffel tower at noon today"]
    assert grounding.search_entry_point is not None
    assert "Emulated search" in (grounding.search_entry_point.rendered_content or "")
    the_image(response)


def test_image_search_queries_are_reported_apart(client: genai.Client) -> None:
    search = types.GoogleSearch(
        search_types=types.SearchTypes(web_search=types.WebSearch(), image_search=types.ImageSearch())
    )
    response = client.models.generate_content(
        model=FLASH,
        contents="a red fox",
        config=config(image_size="512", tools=[types.Tool(google_search=search)]),
    )
    assert response.candidates is not None
    grounding = response.candidates[0].grounding_metadata
    assert grounding is not None and grounding.search_entry_point is not None
    assert "image search" in (grounding.search_entry_point.rendered_content or "")
    assert grounding.web_search_queries == ["a red fox"]
    assert grounding.image_search_queries == ["a red fox"]


# 7. The model list.


@pytest.mark.parametrize("api_version", ["v1beta", None], ids=["v1beta", "default-v1"])
def test_models_list_and_get(server: ServerProcess, api_version: str | None) -> None:
    client = sdk_client(server, api_version)
    models = list(client.models.list())
    names = [m.name for m in models]
    assert len(names) == len(set(names)) == len(CATALOG)
    assert set(names) == {f"models/{spec.id}" for spec in CATALOG}
    for model in models:
        assert model.name is not None
        spec = CATALOG.get(model.name.removeprefix("models/"))
        assert model.display_name == spec.name
        assert model.supported_actions == ["generateContent", "streamGenerateContent", "batchGenerateContent"]
        assert model.thinking == (spec.upstream_id in THINKING_MODELS)

    paged = list(client.models.list(config={"page_size": 3}))
    assert [m.name for m in paged] == names

    for name in (PRO, f"models/{PRO}"):
        got = client.models.get(model=name)
        assert got.name == f"models/{PRO}"
        assert got.display_name == CATALOG.get(PRO).name
        assert got.thinking is True
    alias = client.models.get(model="gemini-3-pro-image-preview-4k")
    assert alias.name == "models/gemini-3-pro-image-preview-4k" and alias.version == PRO

    error = client_error(lambda: client.models.get(model="no-such-model"))
    assert error.code == 404 and error.status == "NOT_FOUND"
    assert "no-such-model" in (error.message or "") and FLASH in (error.message or "")


def test_default_api_version_generates(server: ServerProcess) -> None:
    client = sdk_client(server, None)
    response = client.models.generate_content(model=NANO, contents="a red fox", config=config("21:9"))
    assert the_image(response).size == (1536, 672)


def test_openai_sdk_still_gets_openai_models(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    models = list(client.models.list())
    assert {m.id for m in models} == set(CATALOG.ids)
    assert all(m.object == "model" for m in models)
    assert client.models.retrieve(PRO).id == PRO
    raw = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer unused"})
    assert raw.status_code == 200 and raw.json()["object"] == "list" and "models" not in raw.json()


# 8. Capability violations and thought signatures.


def refs(count: int) -> list[types.Part]:
    return [types.Part.from_bytes(data=png_bytes(), mime_type="image/png") for _ in range(count)]


def conversation(signature: bytes | None, image: bytes | None = None) -> list[types.Content]:
    """A hand-built two-turn edit: the model turn carries ``image`` with ``signature``."""
    return [
        types.Content(role="user", parts=[types.Part.from_text(text="a cat on a sofa")]),
        types.Content(role="model", parts=[image_part(image or png_bytes(), signature)]),
        types.Content(role="user", parts=[types.Part.from_text(text="make the cat blue")]),
    ]


VIOLATIONS = [
    pytest.param(
        FLASH,
        "x",
        config(image_size="1k"),
        ["imageSize", "'1k'", "512, 1K, 2K or 4K", "uppercase K"],
        "INVALID_IMAGE_SIZE",
        "generationConfig.imageConfig.imageSize",
        id="image-size-1k",
    ),
    pytest.param(
        LITE,
        "x",
        config("1:8"),
        ["aspect ratio", "1:8", LITE, "1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9 or 21:9"],
        "INVALID_ASPECT_RATIO",
        "generationConfig.imageConfig.aspectRatio",
        id="lite-aspect-1:8",
    ),
    pytest.param(
        LITE,
        "x",
        config(thinking_config=types.ThinkingConfig(thinking_level="HIGH")),
        ["thinking_level", "'high'", LITE, "does not think"],
        "INVALID_THINKING_LEVEL",
        "generationConfig.thinkingConfig.thinking_level",
        id="lite-thinking-level",
    ),
    pytest.param(
        PRO,
        "x",
        config(thinking_config=types.ThinkingConfig(thinking_level="HIGH")),
        ["thinking_level", "'high'", PRO, "takes no level"],
        "INVALID_THINKING_LEVEL",
        "generationConfig.thinkingConfig.thinking_level",
        id="pro-thinking-level",
    ),
    pytest.param(
        FLASH,
        "x",
        config(thinking_config=types.ThinkingConfig(thinking_level="LOW")),
        ["thinking_level", "'low'", "minimal or high"],
        "INVALID_THINKING_LEVEL",
        "generationConfig.thinkingConfig.thinking_level",
        id="flash-thinking-level-low",
    ),
    pytest.param(
        PRO,
        "x",
        config(
            tools=[
                types.Tool(
                    google_search=types.GoogleSearch(
                        search_types=types.SearchTypes(image_search=types.ImageSearch())
                    )
                )
            ]
        ),
        ["image_search", PRO, "web_search"],
        "INVALID_SEARCH_TYPE",
        "tools[0].googleSearch.searchTypes",
        id="pro-image-search",
    ),
    pytest.param(
        LITE,
        "x",
        config(tools=[types.Tool(google_search=types.GoogleSearch())]),
        [LITE, "search grounding", "google_search"],
        "SEARCH_NOT_SUPPORTED",
        "tools[0].googleSearch.searchTypes",
        id="lite-google-search",
    ),
    pytest.param(
        PRO,
        [types.Part.from_uri(file_uri="https://example.com/clip.mp4", mime_type="video/mp4"), "x"],
        None,
        [PRO, "video", FLASH],
        "VIDEO_NOT_SUPPORTED",
        "contents[0].parts",
        id="pro-video-uri",
    ),
    pytest.param(
        PRO,
        [types.Part.from_bytes(data=b"\x00\x00\x00\x18ftypmp42" + bytes(64), mime_type="video/mp4"), "x"],
        None,
        [PRO, "video", FLASH],
        "VIDEO_NOT_SUPPORTED",
        "contents[0].parts",
        id="pro-video-inline",
    ),
    pytest.param(
        NANO,
        [*refs(4), "combine them"],
        None,
        [NANO, "at most 3 reference images", "got 4"],
        "TOO_MANY_REFERENCE_IMAGES",
        "contents[0].parts",
        id="2.5-four-references",
    ),
    pytest.param(
        LITE,
        conversation(None),
        None,
        [LITE, "multi-turn", FLASH, PRO, NANO],
        "MULTI_TURN_NOT_SUPPORTED",
        "contents",
        id="lite-multi-turn",
    ),
]


@pytest.mark.parametrize(("model", "contents", "cfg", "fragments", "reason", "param"), VIOLATIONS)
def test_capability_violation_is_a_400(
    client: genai.Client,
    model: str,
    contents: Any,
    cfg: types.GenerateContentConfig | None,
    fragments: list[str],
    reason: str,
    param: str,
) -> None:
    error = client_error(lambda: client.models.generate_content(model=model, contents=contents, config=cfg))
    assert error.code == 400 and error.status == "INVALID_ARGUMENT"
    message = error.message or ""
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} is not in {message!r}"
    info = error_info(error)
    assert info["reason"] == reason
    assert info["metadata"]["param"] == param


def test_video_is_accepted_by_flash(client: genai.Client) -> None:
    video = types.Part.from_uri(file_uri="https://example.com/clip.mp4", mime_type="video/mp4")
    response = client.models.generate_content(
        model=FLASH, contents=[video, "a still from this"], config=config(image_size="512")
    )
    assert the_image(response).size == (512, 512)


def test_unknown_model(client: genai.Client) -> None:
    error = client_error(lambda: client.models.generate_content(model="no-such-model", contents="x"))
    # pixelgate answers 400 (INVALID_ARGUMENT, like its other dialects); Gemini itself says 404: either is
    # a ClientError, and the status must match the code.
    assert (error.code, error.status) in {(400, "INVALID_ARGUMENT"), (404, "NOT_FOUND")}
    assert "no-such-model" in (error.message or "") and FLASH in (error.message or "")
    assert error_info(error)["reason"] == "MODEL_NOT_FOUND"


@pytest.mark.parametrize("model", [FLASH, PRO])
def test_model_turn_without_signature_is_refused(client: genai.Client, model: str) -> None:
    error = client_error(lambda: client.models.generate_content(model=model, contents=conversation(None)))
    assert error.code == 400 and error.status == "INVALID_ARGUMENT"
    assert "thought signature" in (error.message or "") and model in (error.message or "")
    assert error_info(error)["reason"] == "MISSING_THOUGHT_SIGNATURE"


def test_forged_or_misplaced_signature_is_refused(client: genai.Client) -> None:
    forged = client_error(
        lambda: client.models.generate_content(model=FLASH, contents=conversation(b"not a real signature"))
    )
    assert forged.code == 400 and "thought signature" in (forged.message or "")

    # A genuine signature, but attached to another image than the one it was issued for.
    issued = client.models.generate_content(
        model=FLASH, contents="a cat on a sofa", config=config(image_size="512")
    )
    signature = final_images(parts_of(issued))[0].thought_signature
    assert signature
    misplaced = client_error(
        lambda: client.models.generate_content(model=FLASH, contents=conversation(signature, png_bytes()))
    )
    assert misplaced.code == 400 and error_info(misplaced)["reason"] == "MISSING_THOUGHT_SIGNATURE"


def test_hand_built_history_with_the_issued_signature_succeeds(client: genai.Client) -> None:
    first = client.models.generate_content(
        model=FLASH, contents="a cat on a sofa", config=config(image_size="512")
    )
    part = final_images(parts_of(first))[0]
    assert part.inline_data is not None and part.inline_data.data and part.thought_signature
    contents = conversation(part.thought_signature, part.inline_data.data)
    second = client.models.generate_content(model=FLASH, contents=contents, config=config(image_size="512"))
    assert the_image(second).size == (512, 512)


def skip_part_with_str() -> types.Part:
    """The literal sentinel on the wire: a ``str`` set after construction is passed through as is (pydantic
    does not validate assignments), as langchain-google does for Gemini 3."""
    part = image_part(png_bytes())
    part.thought_signature = SKIP_SIGNATURE.decode()  # type: ignore[assignment]
    return part


def skip_part_with_bytes() -> types.Part:
    # The SDK writes bytes in URL-safe base64: these 24 bytes go out as "skip_thought_signature_validator".
    return image_part(png_bytes(), base64.urlsafe_b64decode(SKIP_SIGNATURE))


@pytest.mark.parametrize("make_part", [skip_part_with_str, skip_part_with_bytes], ids=["str", "bytes"])
def test_skip_signature_literal_is_accepted(
    client: genai.Client, make_part: Callable[[], types.Part]
) -> None:
    contents = conversation(None)
    contents[1] = types.Content(role="model", parts=[make_part()])
    response = client.models.generate_content(model=FLASH, contents=contents, config=config(image_size="512"))
    assert the_image(response).size == (600, 448)  # 4:3 at 512: the shape of the conversation's last image


def test_skip_signature_as_raw_bytes_is_refused_like_gemini(client: genai.Client) -> None:
    """``thought_signature=b"skip_thought_signature_validator"`` goes out base64-encoded
    ("c2tpcF90aG91...="), which Gemini 3 refuses too (langchain-ai/langchain-google#1972): only the
    literal string on the wire skips the check."""
    error = client_error(
        lambda: client.models.generate_content(model=FLASH, contents=conversation(SKIP_SIGNATURE))
    )
    assert error.code == 400 and error_info(error)["reason"] == "MISSING_THOUGHT_SIGNATURE"


def test_gemini_2_5_needs_no_signature(client: genai.Client) -> None:
    response = client.models.generate_content(model=NANO, contents=conversation(None))
    assert the_image(response).size == (1184, 864)  # 4:3, the shape of the conversation's last image
    usage = response.usage_metadata
    assert usage is not None and modality_tokens(usage.prompt_tokens_details)["IMAGE"] == 258
