"""Client libraries none of us wrote, from npm, pointed at pixelgate unmodified: openai-node (``openai``) and
the Vercel AI SDK (``ai``) with its OpenAI and Google providers. Each test runs one scenario script in
``tests/js`` with Node (``js_clients.py`` installs the pinned packages on first use) and checks what the
library returned: event types, sizes, and each image's pixels as its PNG header declares them.

The providers' requests are recorded by the scripts (a fetch that notes them and sends them unchanged),
so the tests also say which endpoint and body shape each library uses."""

from __future__ import annotations

import pytest

from conftest import MakeServer, ServerProcess, png_bytes
from js_clients import NodeClients, node_clients

FLASH = "gemini-3.1-flash-image"


@pytest.fixture(scope="session")
def js() -> NodeClients:
    return node_clients()


@pytest.fixture(scope="module")
def input_png(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("js-input") / "room.png"
    path.write_bytes(png_bytes(640, 480))
    return {"PIXELGATE_INPUT_PNG": str(path)}


# -- openai-node ------------------------------------------------------------------------------------------


def test_openai_node_generate_answers_a_url_with_the_nearest_size(
    js: NodeClients, server: ServerProcess
) -> None:
    result = js.run("openai_images.mjs", "generate", server.url)
    assert result["size"] == "1264x848"  # 1536x1024 is 3:2; at 1K the model makes 1264x848
    (image,) = result["images"]
    assert image["url"] and image["url_pixels"] == [1264, 848]


def test_openai_node_streams_partial_images_then_the_final_one(
    js: NodeClients, server: ServerProcess
) -> None:
    events = js.run("openai_images.mjs", "stream", server.url)["events"]
    assert [event["type"] for event in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [event["partial_image_index"] for event in events[:2]] == [0, 1]
    for event in events:
        assert event["pixels"] == [int(n) for n in event["size"].split("x")], event
    assert events[-1]["size"] == "1264x848" and events[-1]["output_tokens"] > 0


def test_openai_node_edits_an_uploaded_png(
    js: NodeClients, server: ServerProcess, input_png: dict[str, str]
) -> None:
    result = js.run("openai_images.mjs", "edit", server.url, env=input_png)
    assert result["size"] == "1024x1024"
    (image,) = result["images"]
    assert image["url_pixels"] == image["b64_pixels"] == [1024, 1024]


# -- AI SDK, OpenAI provider ------------------------------------------------------------------------------


def test_ai_sdk_openai_generate_image_has_the_model_s_pixels(js: NodeClients, server: ServerProcess) -> None:
    result = js.run("ai_openai.mjs", "generate", server.url)
    assert result["images"] == [{"mediaType": "image/png", "pixels": [1264, 848]}]
    assert result["sizes"] == ["1264x848"] and result["warnings"] == []
    (request,) = result["requests"]
    assert (request["method"], request["path"]) == ("POST", "/v1/images/generations")
    assert "response_format" in request["json"]  # b64_json, asked for models other than gpt-image-*


def test_ai_sdk_openai_edit_posts_multipart_without_a_response_format(
    js: NodeClients, server: ServerProcess, input_png: dict[str, str]
) -> None:
    result = js.run("ai_openai.mjs", "edit", server.url, env=input_png)
    assert result["images"] == [{"mediaType": "image/png", "pixels": [1024, 1024]}]
    (request,) = result["requests"]
    assert (request["method"], request["path"]) == ("POST", "/v1/images/edits")
    assert "image" in request["multipart"] and "response_format" not in request["multipart"]


# -- AI SDK, Google provider ------------------------------------------------------------------------------


def test_ai_sdk_google_generate_image_with_an_aspect_ratio(js: NodeClients, server: ServerProcess) -> None:
    result = js.run("ai_google.mjs", "image", server.url)
    assert result["images"] == [{"mediaType": "image/png", "pixels": [1376, 768]}]  # 16:9 at 1K
    assert result["warnings"] == []
    # This provider sends gemini-* image models to generateContent (imageConfig.aspectRatio), not :predict.
    assert [r["path"] for r in result["requests"]] == [f"/v1beta/models/{FLASH}:generateContent"]


def test_ai_sdk_google_generate_text_returns_the_image_as_a_file(
    js: NodeClients, server: ServerProcess
) -> None:
    result = js.run("ai_google.mjs", "text", server.url)
    assert result["files"] == [{"mediaType": "image/png", "pixels": [1024, 1024]}]
    assert isinstance(result["text"], str) and result["finishReason"] == "stop"
    assert [r["path"] for r in result["requests"]] == [f"/v1beta/models/{FLASH}:generateContent"]


@pytest.fixture(scope="module")
def imagen_alias(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """A server where an Imagen model name is an operator's alias of Flash: the Google provider sends
    names that do not start with ``gemini-`` to ``:predict``."""
    config = tmp_path_factory.mktemp("imagen-alias") / "pixelgate.toml"
    config.write_text(f'[aliases]\n"imagen-4.0-generate-001" = "{FLASH}"\n')
    return make_server("sqlite", "--emulate", "--config", str(config))


def test_ai_sdk_google_generate_image_with_an_imagen_name_calls_predict(
    js: NodeClients, imagen_alias: ServerProcess
) -> None:
    result = js.run(
        "ai_google.mjs", "imagen", imagen_alias.url, env={"PIXELGATE_IMAGEN_MODEL": "imagen-4.0-generate-001"}
    )
    assert result["images"] == [{"mediaType": "image/png", "pixels": [1376, 768]}] * 2
    assert result["distinct"] == 2
    assert [r["path"] for r in result["requests"]] == ["/v1beta/models/imagen-4.0-generate-001:predict"]
