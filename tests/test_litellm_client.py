"""LiteLLM as a client library (its own venv, see ``litellm_clients.py``), pointed at pixelgate:
``litellm.image_generation`` through its OpenAI provider and through its Gemini provider with a custom
``api_base``, each answer's image at the model's exact pixels."""

from __future__ import annotations

from conftest import ServerProcess
from litellm_clients import litellm_result, litellm_results, start_install

start_install()  # about a minute the first time on a machine: in the background, while other tests run


def test_litellm_openai_image_generation_answers_a_url(server: ServerProcess) -> None:
    (image,) = litellm_result(litellm_results(server.url), "image_openai")["images"]
    assert image["url"] and image["url_pixels"] == [1264, 848]  # 1536x1024 -> 3:2 at 1K


def test_litellm_gemini_image_generation_with_a_custom_api_base(server: ServerProcess) -> None:
    # size 1536x1024 becomes imageConfig {aspectRatio: 3:2, imageSize: 1K} on :generateContent.
    (image,) = litellm_result(litellm_results(server.url), "image_gemini")["images"]
    assert image["b64_pixels"] == [1264, 848]
