"""OpenAI Images streaming with openai-python unmodified: ``images.generate(stream=True, partial_images=…)``
and ``images.edit(stream=True)`` get the SDK's event types in order, the partials are the thinking model's
interim images, the final image has the catalog's exact pixels, a slow image is kept alive, and a failure
after the stream began reaches the SDK as an error. Also what an answer holds when the request names no
``response_format`` (both ``url`` and ``b64_json``, for clients that read only one of them)."""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from conftest import MakeServer, ServerProcess, png_bytes

PRO = "gemini-3-pro-image"  # always thinks: a draft and the final render as interim images
FLASH = "gemini-3.1-flash-image"  # thinks hard only at thinking_level high


@pytest.fixture()
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def pixels(b64: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        image.load()
        return image.size


def test_generate_streams_partials_then_the_final_image(client: openai.OpenAI) -> None:
    events = list(
        client.images.generate(
            model=PRO, prompt="a lighthouse at dusk", size="1536x1024", stream=True, partial_images=2
        )
    )
    assert [event.type for event in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    partials, final = events[:2], events[2]
    assert [p.partial_image_index for p in partials] == [0, 1]
    for event in events:
        assert pixels(event.b64_json) == tuple(int(n) for n in event.size.split("x"))
        assert (event.output_format, event.quality, event.background) == ("png", "auto", "auto")
        assert isinstance(event.created_at, int)
    assert final.size == "1264x848"  # 3:2 at 1K, the catalog's exact pixels
    assert final.usage.output_tokens > 0 and final.usage.total_tokens >= final.usage.output_tokens


def test_partial_images_is_at_most_what_the_model_drew(client: openai.OpenAI) -> None:
    one = [e.type for e in client.images.generate(model=PRO, prompt="x", stream=True, partial_images=1)]
    assert one == ["image_generation.partial_image", "image_generation.completed"]
    none = [e.type for e in client.images.generate(model=PRO, prompt="x", stream=True)]
    assert none == ["image_generation.completed"]
    # Flash at its default thinking level draws no interim image: the final one still arrives.
    quick = [e.type for e in client.images.generate(model=FLASH, prompt="x", stream=True, partial_images=3)]
    assert quick == ["image_generation.completed"]
    hard = client.images.generate(
        model=FLASH, prompt="x", stream=True, partial_images=3, extra_body={"thinking_level": "high"}
    )
    assert [e.type for e in hard] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]


def test_every_image_of_n_completes(client: openai.OpenAI) -> None:
    events = list(client.images.generate(model=FLASH, prompt="two kites", n=2, size="1024x1024", stream=True))
    assert [e.type for e in events] == ["image_generation.completed"] * 2
    assert [pixels(e.b64_json) for e in events] == [(1024, 1024), (1024, 1024)]


def test_an_edit_streams_image_edit_events(client: openai.OpenAI) -> None:
    events = list(
        client.images.edit(
            model=PRO,
            image=("room.png", png_bytes(640, 480), "image/png"),
            prompt="paint the walls blue",
            size="1024x1024",
            stream=True,
            partial_images=1,
        )
    )
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert pixels(events[-1].b64_json) == (1024, 1024)


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"partial_images": 9}, "partial_images", "partial_images 9 is not valid: use 0 to 3"),
        ({"partial_images": -1}, "partial_images", "use 0 to 3"),
        ({"background": "transparent"}, "background", "these models make opaque images"),
        ({"background": "clear"}, "background", "use auto, opaque or transparent"),
    ],
)
def test_bad_stream_fields_are_400s_before_any_event(
    client: openai.OpenAI, fields: dict[str, Any], param: str, says: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        list(client.images.generate(model=FLASH, prompt="x", stream=True, extra_body=fields))
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == param and says in body["message"]


@pytest.fixture(scope="module")
def slow(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", "--emulate-latency", "1", "--stream-keepalive", "0.2")


def test_a_slow_image_is_kept_alive_and_the_sdk_reads_through(slow: ServerProcess) -> None:
    body = {"model": FLASH, "prompt": "slow", "stream": True}
    with httpx.stream("POST", f"{slow.url}/v1/images/generations", json=body, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[0] == ": keep-alive"  # before the image: the connection does not look idle
    assert lines[-1].startswith("data: ") and '"type":"image_generation.completed"' in lines[-1]
    client = openai.OpenAI(base_url=f"{slow.url}/v1", api_key="unused", max_retries=0)
    assert [e.type for e in client.images.generate(model=FLASH, prompt="slow", stream=True)] == [
        "image_generation.completed"
    ]


@pytest.fixture(scope="module")
def failing(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", "--emulate-faults", "503:1")


def test_a_failure_after_the_stream_began_is_raised_by_the_sdk(failing: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{failing.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIError) as caught:
        list(client.images.generate(model=FLASH, prompt="doomed", stream=True))
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "upstream_http_503"


def test_an_edit_that_names_no_format_answers_both_url_and_b64_json(server: ServerProcess) -> None:
    """The Vercel AI SDK's edit: multipart, no response_format, reads only data[].b64_json."""
    form = {"model": PRO, "prompt": "paint the walls blue", "n": "1", "size": "1536x1024"}
    files = {"image": ("room.png", png_bytes(640, 480), "image/png")}
    response = httpx.post(f"{server.url}/v1/images/edits", data=form, files=files, timeout=60)
    assert response.status_code == 200, response.text
    (entry,) = response.json()["data"]
    assert pixels(entry["b64_json"]) == (1264, 848)
    assert httpx.get(entry["url"], timeout=30).content == base64.b64decode(entry["b64_json"])
    asked = httpx.post(
        f"{server.url}/v1/images/edits", data={**form, "response_format": "url"}, files=files, timeout=60
    )
    assert set(asked.json()["data"][0]) == {"url", "revised_prompt"}
