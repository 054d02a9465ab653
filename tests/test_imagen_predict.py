"""The Imagen-style ``:predict`` call, in the two shapes real clients send (../shared/reference/clients.md):
the Vercel AI SDK's Google provider (``instances`` a list, ``parameters.sampleCount`` and ``aspectRatio``) and
Open WebUI's Gemini engine (``instances`` an object, ``outputOptions.mimeType``), served by catalog models
with their exact pixels; bad bodies are 400s in Google's shape."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from conftest import ServerProcess

FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"
KEY = {"x-goog-api-key": "unused"}


def predict(
    server: ServerProcess, model: str, body: dict[str, Any], version: str = "v1beta"
) -> httpx.Response:
    return httpx.post(f"{server.url}/{version}/models/{model}:predict", json=body, headers=KEY, timeout=60)


def decoded(prediction: dict[str, Any]) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(prediction["bytesBase64Encoded"])))
    image.load()
    return image


def test_the_ai_sdk_s_call_gets_each_sample_at_the_model_s_pixels(server: ServerProcess) -> None:
    body = {
        "instances": [{"prompt": "a watercolor fox"}],
        "parameters": {"sampleCount": 2, "aspectRatio": "16:9", "personGeneration": "allow_adult"},
    }
    response = predict(server, FLASH, body)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    for prediction in predictions:
        assert prediction["mimeType"] == "image/png"
        image = decoded(prediction)
        assert (image.format, image.size) == ("PNG", (1376, 768))  # 16:9 at 1K
    assert predictions[0]["bytesBase64Encoded"] != predictions[1]["bytesBase64Encoded"]


def test_open_webui_s_call_with_an_instance_object_and_a_mime_type(server: ServerProcess) -> None:
    body = {
        "instances": {"prompt": "a lighthouse"},
        "parameters": {"sampleCount": 1, "outputOptions": {"mimeType": "image/jpeg"}},
    }
    response = predict(server, PRO, body, version="v1")
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert prediction["mimeType"] == "image/jpeg"
    image = decoded(prediction)
    assert (image.format, image.size) == ("JPEG", (1024, 1024))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"instances": []}, "send one instance per call"),
        ({"instances": [{"prompt": "a"}, {"prompt": "b"}]}, "instances holds 2 prompts"),
        ({"instances": [{}]}, "prompt"),
        ({"instances": [{"prompt": "a"}], "parameters": {"sampleCount": 9}}, "sampleCount"),
        ({"instances": [{"prompt": "a"}], "parameters": {"aspectRatio": "7:3"}}, "7:3"),
        (
            {"instances": [{"prompt": "a"}], "parameters": {"outputOptions": {"mimeType": "image/bmp"}}},
            "'image/bmp' is not valid: use image/png, image/jpeg or image/webp",
        ),
    ],
)
def test_a_bad_predict_body_is_a_400_in_google_s_shape(
    server: ServerProcess, body: dict[str, Any], fragment: str
) -> None:
    response = predict(server, FLASH, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and fragment in error["message"], error


def test_an_unknown_model_is_a_404(server: ServerProcess) -> None:
    response = predict(server, "imagen-4.0-generate-001", {"instances": [{"prompt": "a"}]})
    assert response.status_code == 404, response.text
    assert "'imagen-4.0-generate-001' is not in the catalog" in response.json()["error"]["message"]
