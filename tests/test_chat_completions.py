"""Chat completions with image output, driven by openai-python unmodified (``extra_body`` carries
OpenRouter's ``modalities`` and ``image_config``): the images in ``message.images`` as data URIs with the
catalog's exact pixels, text in ``content``, usage with image tokens; streamed as ``delta.images``; a
three-turn edit session on a thinking model; ``n``; references and history in every shape chat clients
send; and every request that cannot make an image a 4xx that creates no task.

That the thought signatures of earlier turns reach a real upstream is proven against the Gemini simulator
in ``test_google_provider.py``."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from conftest import MakeServer, ServerProcess, db_rows, png_bytes

PRO = "gemini-3-pro-image"  # always thinks
FLASH = "gemini-3.1-flash-image"
IMAGE_AND_TEXT = {"modalities": ["image", "text"]}


@pytest.fixture()
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def images_of(message: Any) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = message.model_extra["images"]
    return images


def decoded(item: dict[str, Any]) -> bytes:
    assert item["type"] == "image_url"
    head, data = item["image_url"]["url"].split(",", 1)
    assert head == "data:image/png;base64"
    return base64.b64decode(data)


def pixels(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_a_chat_answer_carries_the_image_its_text_and_image_usage(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=FLASH,
        messages=[{"role": "user", "content": "a lighthouse at dusk"}],
        extra_body={**IMAGE_AND_TEXT, "image_config": {"aspect_ratio": "16:9", "image_size": "2K"}},
    )
    assert answer.object == "chat.completion" and answer.model == FLASH
    (choice,) = answer.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert "a lighthouse at dusk" in (choice.message.content or "")
    (image,) = images_of(choice.message)
    assert pixels(decoded(image)) == (2752, 1536)  # 16:9 at 2K, the catalog's exact pixels
    usage = answer.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.model_extra["image_tokens"] > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_image_only_modalities_answer_no_text(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": "a kite"}], extra_body={"modalities": ["image"]}
    )
    assert answer.choices[0].message.content == ""
    assert pixels(decoded(images_of(answer.choices[0].message)[0])) == (1024, 1024)


def test_n_answers_one_choice_per_image(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(
        model=FLASH, messages=[{"role": "user", "content": "a kite"}], n=2, extra_body=IMAGE_AND_TEXT
    )
    assert [c.index for c in answer.choices] == [0, 1]
    assert all(len(images_of(c.message)) == 1 for c in answer.choices)


def test_streamed_chat_sends_delta_images_then_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=PRO,
            messages=[{"role": "user", "content": "a red fox"}],
            stream=True,
            extra_body={**IMAGE_AND_TEXT, "image_config": {"aspect_ratio": "3:2"}},
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert any(d.model_extra.get("reasoning") for d in deltas)  # the thinking model's summary
    (images,) = [d.model_extra["images"] for d in deltas if d.model_extra.get("images")]
    assert pixels(decoded(images[0])) == (1264, 848)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage is not None and last.usage.total_tokens > 0


def test_a_three_turn_chat_edit_session_on_a_thinking_model(client: openai.OpenAI) -> None:
    """Each assistant turn goes back as the client got it; its thought signature is restored from pixelgate's
    own record, and the conversation keeps its first image's shape."""
    messages: list[dict[str, Any]] = []
    sizes = []
    for i, ask in enumerate(("a cabin in the woods", "add snow on the roof", "make it night")):
        messages.append({"role": "user", "content": ask})
        config = {"image_config": {"aspect_ratio": "4:3"}} if i == 0 else {}
        answer = client.chat.completions.create(
            model=PRO, messages=messages, extra_body={**IMAGE_AND_TEXT, **config}
        )
        message = answer.choices[0].message
        sizes.append(pixels(decoded(images_of(message)[0])))
        messages.append({"role": "assistant", "content": message.content, "images": images_of(message)})
    assert sizes == [(1200, 896)] * 3


def test_references_and_history_in_every_shape_clients_send(
    client: openai.OpenAI, server: ServerProcess
) -> None:
    photo = data_uri(png_bytes(300, 200))
    earlier = data_uri(png_bytes(64, 64, (10, 200, 10)))
    messages = [
        {"role": "system", "content": "You draw in watercolour."},
        {"role": "user", "content": [{"type": "text", "text": "a garden"}]},
        # Some relays answer with the image as Markdown in the content, and clients send that back.
        {"role": "assistant", "content": f"Here it is. ![image]({earlier})"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "put this bench in it"},
                {"type": "image_url", "image_url": {"url": photo, "detail": "auto"}},
            ],
        },
    ]
    answer = client.chat.completions.create(model=FLASH, messages=messages, extra_body=IMAGE_AND_TEXT)
    request = db_rows(server, f"SELECT request FROM tasks WHERE id = '{answer.id}'")[0][0]
    stored = request if isinstance(request, dict) else json.loads(request)
    assert stored["system_instruction"] == "You draw in watercolour."
    assert [(t["role"], t["text"], len(t["images"])) for t in stored["history"]] == [
        ("user", "a garden", 0),
        ("model", "Here it is.", 1),
    ]
    assert len(stored["references"]) == 1 and stored["prompt"] == "put this bench in it"


def task_count(server: ServerProcess) -> int:
    return int(db_rows(server, "SELECT count(*) FROM tasks")[0][0])


USER = {"role": "user", "content": "a cat"}


@pytest.mark.parametrize(
    ("body", "status", "param", "says"),
    [
        ({"modalities": ["image", "audio"]}, 400, "modalities[1]", "'audio'"),
        ({"modalities": ["text"]}, 400, "modalities", "asks for no image"),
        ({"messages": []}, 400, "messages", "at least 1"),
        ({"messages": [{"role": "system", "content": "be nice"}]}, 400, "messages", "no user message"),
        (
            {"messages": [USER, {"role": "assistant", "content": "ok"}]},
            400,
            "messages[1].role",
            "last message",
        ),
        ({"messages": [{"role": "tool", "content": "x"}, USER]}, 400, "messages[0].role", "'tool'"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            400,
            "messages[0].content[0].type",
            "'input_audio'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}
                        ],
                    }
                ]
            },
            400,
            "messages[0].content[0]",
            "not a readable image",
        ),
        ({"messages": [{"role": "user", "content": ""}]}, 400, "messages[0].content", "describe the image"),
        ({"model": "gpt-4o"}, 404, "model", "'gpt-4o' is not in the catalog"),
        ({"image_config": {"image_size": "1k"}}, 400, "image_config.image_size", "'1k'"),
    ],
)
def test_requests_that_cannot_make_an_image_are_4xx_and_create_no_task(
    server: ServerProcess, body: dict[str, Any], status: int, param: str, says: str
) -> None:
    before = task_count(server)
    for stream in (False, True):
        sent = {"model": FLASH, "messages": [USER], **body, "stream": stream}
        response = httpx.post(f"{server.url}/v1/chat/completions", json=sent, timeout=30)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["param"] == param and says in error["message"], error
    assert task_count(server) == before


def test_legacy_text_completions_are_a_404_naming_the_image_endpoints(server: ServerProcess) -> None:
    response = httpx.post(f"{server.url}/v1/completions", json={"model": FLASH, "prompt": "x"}, timeout=30)
    assert response.status_code == 404
    assert "/v1/chat/completions" in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def slow(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", "--emulate-latency", "1", "--stream-keepalive", "0.2")


def test_a_slow_image_is_kept_alive(slow: ServerProcess) -> None:
    body = {"model": FLASH, "messages": [USER], "stream": True}
    with httpx.stream("POST", f"{slow.url}/v1/chat/completions", json=body, timeout=30) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[0].startswith("data: ") and '"role":"assistant"' in lines[0]  # the turn opens at once
    assert lines[1] == ": keep-alive"
    assert lines[-1] == "data: [DONE]"


@pytest.fixture(scope="module")
def failing(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", "--emulate-faults", "503:1")


def test_a_failure_after_the_stream_began_is_raised_by_the_sdk(failing: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{failing.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIError) as caught:
        list(client.chat.completions.create(model=FLASH, messages=[USER], stream=True))
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "upstream_http_503"
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model=FLASH, messages=[USER])
    assert refused.value.status_code in (502, 503)
