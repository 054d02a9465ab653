"""Chat completions with image output, from client libraries none of us wrote: OpenRouter's AI SDK
provider (``@openrouter/ai-sdk-provider`` with ``ai``, run with Node, see ``js_clients.py``) and LiteLLM's
``completion`` (its own venv, see ``litellm_clients.py``).

The request names ``modalities: ["image", "text"]`` (and, from OpenRouter's provider, ``image_config``);
the answer carries the images in ``choices[0].message.images`` (streamed: ``choices[0].delta.images``) as
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}`` and the text in ``content``."""

from __future__ import annotations

import pytest

from conftest import ServerProcess
from js_clients import NodeClients, node_clients
from litellm_clients import litellm_result, litellm_results, start_install

start_install()  # about a minute the first time on a machine: in the background, while other tests run

FLASH = "gemini-3.1-flash-image"


@pytest.fixture(scope="session")
def js() -> NodeClients:
    return node_clients()


@pytest.mark.parametrize("scenario", ["generate", "stream"])
def test_openrouter_provider_reads_the_images_into_files(
    js: NodeClients, server: ServerProcess, scenario: str
) -> None:
    result = js.run("openrouter_chat.mjs", scenario, server.url)
    assert result["files"] == [{"mediaType": "image/png", "pixels": [1376, 768]}]  # image_config 16:9 at 1K
    assert isinstance(result["text"], str) and result["finishReason"] == "stop"
    (request,) = result["requests"]
    assert (request["method"], request["path"]) == ("POST", "/v1/chat/completions")
    assert {"modalities", "image_config"} <= set(request["json"])


def test_litellm_completion_reads_message_images(server: ServerProcess) -> None:
    result = litellm_result(litellm_results(server.url), "chat")
    assert [(image["type"], image["data_url"], image["pixels"]) for image in result["images"]] == [
        ("image_url", "data:image/png;base64", [1024, 1024])
    ]
    assert isinstance(result["content"], str)
