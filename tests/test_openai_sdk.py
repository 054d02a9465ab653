"""The official openai SDK, pointed at pixelgate, works unmodified."""

from __future__ import annotations

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from conftest import ServerProcess, png_bytes


@pytest.fixture()
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_generate_b64_has_the_catalog_pixels(client: openai.OpenAI) -> None:
    response = client.images.generate(
        model="gemini-3.1-flash-image", prompt="a lighthouse at dusk", size="16:9", response_format="b64_json"
    )
    assert response.data is not None and len(response.data) == 1
    image = Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json or "")))
    assert image.size == (1376, 768)
    assert response.size == "1376x768"
    assert response.usage is not None and response.usage.output_tokens == 1120


def test_a_4k_b64_answer_is_sent_whole_from_its_file(client: openai.OpenAI) -> None:
    """A 4K answer's base64 is encoded from the stored file piece by piece as it is sent: the length it
    declares is its length, and it carries the whole image."""
    raw = client.images.with_raw_response.generate(
        model="gemini-3-pro-image",
        prompt="a harbour at dawn",
        size="16:9",
        response_format="b64_json",
        extra_body={"resolution": "4K"},
    )
    body = raw.http_response.content
    assert int(raw.headers["content-length"]) == len(body) > 3 * 256 * 1024  # more than one piece
    response = raw.parse()
    assert response.data and response.data[0].b64_json
    image = base64.b64decode(response.data[0].b64_json, validate=True)
    assert Image.open(io.BytesIO(image)).size == (5504, 3072)


def test_wxh_size_maps_to_nearest_aspect_and_size(client: openai.OpenAI) -> None:
    response = client.images.generate(
        model="gemini-3.1-flash-image", prompt="a cozy coffee shop", size="1536x1024"
    )
    assert response.size == "1264x848"  # 3:2 at 1K
    assert response.data and response.data[0].url
    fetched = httpx.get(response.data[0].url)
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).size == (1264, 848)


def test_n_fans_out_and_sums_usage(client: openai.OpenAI) -> None:
    response = client.images.generate(
        model="gemini-2.5-flash-image",
        prompt="three apples",
        n=3,
        response_format="b64_json",
        extra_body={"seed": 5},
    )
    assert response.data is not None and len(response.data) == 3
    images = {item.b64_json for item in response.data}
    assert len(images) == 3, "each of the n images differs"
    assert response.usage is not None and response.usage.output_tokens == 3 * 1290


def test_edit_with_multipart_images(client: openai.OpenAI) -> None:
    response = client.images.edit(
        model="gemini-3-pro-image",
        prompt="put these together",
        image=[("a.png", png_bytes(), "image/png"), ("b.png", png_bytes(color=(0, 0, 255)), "image/png")],
        response_format="b64_json",
        extra_body={"resolution": "2K", "aspect_ratio": "4:3"},
    )
    assert response.data is not None
    image = Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json or "")))
    assert image.size == (2400, 1792)
    assert response.usage is not None and response.usage.input_tokens_details.image_tokens == 2 * 258


def test_bad_size_is_a_400_with_a_clear_message(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="gemini-3.1-flash-image", prompt="x", extra_body={"resolution": "2k"})
    assert caught.value.status_code == 400
    message = caught.value.message
    assert (
        "resolution '2k' is not valid for gemini-3.1-flash-image: use 512, 1K, 2K or 4K (uppercase K)"
        in message
    )


def test_unknown_model_lists_the_catalog(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="dall-e-3", prompt="x")
    assert "dall-e-3" in caught.value.message and "gemini-3-pro-image" in caught.value.message
    assert caught.value.code == "model_not_found"


def test_models_list(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {
        "gemini-2.5-flash-image",
        "gemini-3.1-flash-image",
        "gemini-3.1-flash-lite-image",
        "gemini-3-pro-image",
        "gemini-3.1-flash-image-preview-official",
        "gemini-3-pro-image-preview-4k",
        "gemini-2.5-flash-image-preview",
        "gemini-2-5-flash-image-preview",
    } <= ids
