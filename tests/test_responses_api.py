"""OpenAI's Responses API with an image model, with openai-python unmodified against a real server:
``client.responses.create`` with a catalog model or in OpenAI's own shape (a text model and the
``image_generation`` tool), sizes mapped to the catalog's exact pixels, ``input_image`` references, a
multi-turn edit with ``previous_response_id`` (thought signatures kept), streaming with partial images,
background responses read back, and bad input as 4xx in OpenAI's error shape."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response
from PIL import Image

from conftest import ServerProcess, png_bytes
from pixelgate.catalog import default_catalog

PRO = "gemini-3-pro-image"  # always thinks: a draft and the final render as interim images
FLASH = "gemini-3.1-flash-image"
NO_THOUGHTS = "gemini-2.5-flash-image"  # does not think: its turns carry no thought signature
CATALOG = default_catalog()


@pytest.fixture()
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def decoded(b64: str | None) -> Image.Image:
    assert b64
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def pixels(model: str, aspect_ratio: str, image_size: str = "1K") -> tuple[int, int]:
    return CATALOG.get(model).output_pixels(aspect_ratio, image_size)


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_call(response: Response, index: int = 0) -> Any:
    item = response.output[index]
    assert item.type == "image_generation_call", item
    return item


def test_create_with_a_catalog_model(client: openai.OpenAI, server: ServerProcess) -> None:
    response = client.responses.create(model=FLASH, input="a cozy coffee shop")
    assert isinstance(response, Response)
    assert (response.object, response.status, response.model) == ("response", "completed", FLASH)
    assert response.id.startswith("task_img_") and response.created_at > 0
    assert response.error is None and response.previous_response_id is None
    assert [item.type for item in response.output] == ["image_generation_call"]
    call = image_call(response)
    assert call.status == "completed" and call.id == f"ig_{response.id}"
    assert (call.output_format, call.quality, call.background) == ("png", "auto", "opaque")
    image = decoded(call.result)
    assert image.format == "PNG" and image.size == pixels(FLASH, "1:1")
    assert call.size == "{}x{}".format(*image.size)
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens >= 0
    assert response.tools[0].type == "image_generation" and response.tool_choice == "auto"
    assert response.parallel_tool_calls is True and response.output_text == ""

    # A response is a task: read back at /v1/responses/{id} (and at the task's own address).
    again = client.responses.retrieve(response.id)
    assert again.status == "completed" and image_call(again).result == call.result
    task = httpx.get(f"{server.url}/v1/tasks/{response.id}", timeout=30).json()
    assert base64.b64decode(task["data"][0]["b64_json"]) == base64.b64decode(call.result)


def test_the_path_without_v1_answers_too(server: ServerProcess) -> None:
    answer = httpx.post(f"{server.url}/responses", json={"model": FLASH, "input": "a kite"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"][0]["type"] == "image_generation_call"


def test_the_image_generation_tool_with_a_text_model(client: openai.OpenAI) -> None:
    """OpenAI's own shape: a text model, and the image model named by the tool (its model wins)."""
    response = client.responses.create(
        model="gpt-5",
        input="a product poster",
        tools=[
            {
                "type": "image_generation",
                "model": PRO,
                "size": "1024x1536",
                "quality": "high",
                "output_format": "jpeg",
                "output_compression": 80,
            }
        ],
    )
    assert response.model == PRO
    call = image_call(response)
    image = decoded(call.result)
    assert image.format == "JPEG" and image.size == pixels(PRO, "2:3")
    assert (call.output_format, call.quality, call.size) == ("jpeg", "high", "{}x{}".format(*image.size))
    tool = response.tools[0]
    assert tool.type == "image_generation" and tool.model == PRO and tool.size == "1024x1536"


@pytest.mark.parametrize(
    ("size", "aspect_ratio"),
    [("1536x1024", "3:2"), ("1024x1536", "2:3"), ("1024x1024", "1:1"), ("auto", "1:1")],
)
def test_size_gives_the_catalogs_exact_pixels(client: openai.OpenAI, size: str, aspect_ratio: str) -> None:
    response = client.responses.create(
        model=FLASH, input="a lighthouse", tools=[{"type": "image_generation", "size": size}]
    )
    assert decoded(image_call(response).result).size == pixels(FLASH, aspect_ratio)


def test_1536x1024_on_flash_is_1264x848(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=FLASH, input="a lighthouse", tools=[{"type": "image_generation", "size": "1536x1024"}]
    )
    assert image_call(response).size == "1264x848"


def test_input_images_are_references(client: openai.OpenAI) -> None:
    plain = client.responses.create(model=FLASH, input="a room")
    response = client.responses.create(
        model=FLASH,
        input=[
            {"role": "system", "content": "You are an interior designer."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "paint the walls blue"},
                    {"type": "input_image", "image_url": data_url(png_bytes(640, 480))},
                ],
            },
        ],
    )
    call = image_call(response)
    assert call.action == "edit"
    # With no size, the output takes the reference's shape (4:3), at the model's default size.
    assert decoded(call.result).size == pixels(FLASH, "4:3")
    assert response.instructions == "You are an interior designer."
    assert response.usage is not None and plain.usage is not None
    assert response.usage.input_tokens > plain.usage.input_tokens  # the image went to the model


def test_a_three_turn_edit_session_on_a_thinking_model(client: openai.OpenAI) -> None:
    """Each turn continues the one before with previous_response_id; the emulator refuses a Pro turn whose
    history lacks the thought signatures it issued, so every turn succeeding proves they were kept."""
    first = client.responses.create(
        model=PRO, input="a red house on a hill", tools=[{"type": "image_generation", "size": "1536x1024"}]
    )
    second = client.responses.create(model=PRO, input="make the house blue", previous_response_id=first.id)
    third = client.responses.create(model=PRO, input="add a tree", previous_response_id=second.id)
    turns = (first, second, third)
    assert [turn.status for turn in turns] == ["completed"] * 3
    assert (second.previous_response_id, third.previous_response_id) == (first.id, second.id)
    results = [image_call(turn).result for turn in turns]
    assert len(set(results)) == 3, "each edit is a new image"
    # A turn that names no size keeps the conversation's shape and size.
    assert {decoded(result).size for result in results} == {pixels(PRO, "3:2")}
    assert [image_call(turn).action for turn in turns] == ["generate", "edit", "edit"]
    usages = [turn.usage for turn in turns]
    assert all(usage is not None for usage in usages)
    inputs = [usage.input_tokens for usage in usages if usage is not None]
    assert inputs[0] < inputs[1] < inputs[2], "the earlier turns' images go to the model"
    got = client.responses.retrieve(third.id)
    assert got.previous_response_id == second.id and image_call(got).result == results[2]


def test_streaming_with_partial_images(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(
            model=PRO,
            input="a lighthouse at dusk",
            tools=[{"type": "image_generation", "size": "1536x1024", "partial_images": 2}],
            stream=True,
        )
    )
    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.completed",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    created, completed = events[0], events[-1]
    assert created.type == "response.created" and created.response.status == "in_progress"
    assert completed.type == "response.completed"
    response = completed.response
    assert response.id == created.response.id and response.status == "completed"
    call = image_call(response)
    added, done = events[2], events[8]
    assert added.type == "response.output_item.added" and added.item.id == call.id
    assert added.item.status == "in_progress"
    assert done.type == "response.output_item.done" and done.item.result == call.result
    partials = [e for e in events if e.type == "response.image_generation_call.partial_image"]
    assert [p.partial_image_index for p in partials] == [0, 1]
    for partial in partials:
        assert partial.item_id == call.id and partial.output_index == 0
        size = decoded(partial.partial_image_b64).size
        assert partial.size == "{}x{}".format(*size)
    assert decoded(partials[0].partial_image_b64).size == pixels(PRO, "3:2", "1K")  # the draft
    assert decoded(call.result).size == pixels(PRO, "3:2") == (1264, 848)
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0


def test_a_stream_without_partial_images_and_with_text(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(model=FLASH, input="a kite", text={"format": {"type": "text"}}, stream=True)
    )
    kinds = [event.type for event in events]
    assert "response.image_generation_call.partial_image" not in kinds
    assert kinds[-7:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]
    assert final.type == "response.completed"
    assert [item.type for item in final.response.output] == ["image_generation_call", "message"]
    assert final.response.output_text and final.response.output_text == events[-4].text


def test_text_asked_for_is_a_message_output_item(client: openai.OpenAI) -> None:
    response = client.responses.create(model=FLASH, input="a kite", text={"format": {"type": "text"}})
    assert [item.type for item in response.output] == ["image_generation_call", "message"]
    assert response.output_text.strip()


def test_a_failure_after_the_stream_began_is_response_failed(client: openai.OpenAI) -> None:
    """A turn of a model that does not think carries no thought signature: Pro, asked to continue it, is
    refused by the (emulated) upstream once the task runs, after the stream began."""
    first = client.responses.create(model=NO_THOUGHTS, input="a red house")
    events = list(
        client.responses.create(model=PRO, input="make it blue", previous_response_id=first.id, stream=True)
    )
    assert [event.type for event in events][-2:] == ["response.output_item.done", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.status == "failed"
    error = failed.response.error
    assert error is not None and error.code == "invalid_prompt" and "thought signature" in error.message
    done = events[-2]
    assert done.type == "response.output_item.done" and done.item.type == "image_generation_call"
    assert done.item.status == "failed" and done.item.error is not None
    assert done.item.error.code == "missing_thought_signature"  # pixelgate's own code
    # Read back, the response is failed the same way.
    got = client.responses.retrieve(failed.response.id)
    assert got.status == "failed" and got.error is not None and got.error.code == "invalid_prompt"
    assert image_call(got).status == "failed"


def test_a_background_response_is_polled(client: openai.OpenAI) -> None:
    queued = client.responses.create(model=FLASH, input="a slow painting", background=True)
    assert queued.status in ("queued", "in_progress", "completed") and queued.model == FLASH
    deadline = time.monotonic() + 30
    response = client.responses.retrieve(queued.id)
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        response = client.responses.retrieve(queued.id)
    assert response.status == "completed"
    assert decoded(image_call(response).result).size == pixels(FLASH, "1:1")


def test_delete_and_store_false_forget_the_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model=FLASH, input="a kite")
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    unstored = client.responses.create(model=FLASH, input="a kite", store=False)
    assert decoded(image_call(unstored).result).size == pixels(FLASH, "1:1")
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model=FLASH, input="make it red", previous_response_id=unstored.id)
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "previous_response_not_found"
    assert body["param"] == "previous_response_id" and unstored.id in body["message"]


# --- bad input -------------------------------------------------------------------------------------------


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    error: dict[str, Any] = body["error"]
    return error


def not_an_image() -> str:
    return data_url(b"this is plain text, not a picture", "image/png")


@pytest.mark.parametrize(
    ("body", "status", "code", "param", "says"),
    [
        pytest.param(
            {"model": "dall-e-9", "input": "x"},
            404,
            "model_not_found",
            "model",
            ["'dall-e-9'", FLASH, PRO],
            id="unknown-model",
        ),
        pytest.param(
            {"model": "gpt-5", "input": "x", "tools": [{"type": "image_generation", "model": "gpt-image-1"}]},
            404,
            "model_not_found",
            "tools[0].model",
            ["'gpt-5'", "'gpt-image-1'", FLASH],
            id="unknown-model-and-tool-model",
        ),
        pytest.param(
            {"model": FLASH, "input": "x", "tools": [{"type": "image_generation", "partial_images": 9}]},
            400,
            "invalid_partial_images",
            "tools[0].partial_images",
            ["tools[0].partial_images 9 is not valid: use 0 to 3"],
            id="partial-images-9",
        ),
        pytest.param(
            {
                "model": FLASH,
                "input": "x",
                "tools": [{"type": "image_generation", "background": "transparent"}],
            },
            400,
            "unsupported_background",
            "tools[0].background",
            ["'transparent'", "opaque"],
            id="transparent",
        ),
        pytest.param(
            {"model": FLASH, "input": "x", "background": "transparent"},
            400,
            "invalid_background",
            "background",
            ["'transparent'", "image_generation tool's background"],
            id="transparent-at-the-top",
        ),
        pytest.param(
            {
                "model": FLASH,
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "edit this"},
                            {"type": "input_image", "image_url": not_an_image()},
                        ],
                    }
                ],
            },
            400,
            None,
            "input[0].content[1].image_url",
            ["input[0].content[1].image_url"],
            id="input-image-not-an-image",
        ),
        pytest.param(
            {"model": FLASH, "input": ""}, 400, "missing_prompt", "input", ["input is empty"], id="empty"
        ),
        pytest.param(
            {"model": FLASH, "input": []}, 400, "missing_prompt", "input", ["input is empty"], id="empty-list"
        ),
        pytest.param({"model": FLASH}, 400, "missing_field", "input", ["input is required"], id="no-input"),
        pytest.param(
            {"model": FLASH, "input": "x", "tools": [{"type": "image_generation", "size": "huge"}]},
            400,
            "invalid_size",
            "tools[0].size",
            ["tools[0].size 'huge' is not valid", "WxH"],
            id="bad-size",
        ),
        pytest.param(
            {"model": FLASH, "input": "x", "tools": [{"type": "image_generation", "output_format": "gif"}]},
            400,
            "invalid_output_format",
            "tools[0].output_format",
            ["'gif'", "png, jpeg or webp"],
            id="gif",
        ),
        pytest.param(
            {"model": FLASH, "input": "x", "tools": [{"type": "web_search"}]},
            400,
            "unsupported_tool",
            "tools[0].type",
            ["'web_search'", "image_generation"],
            id="other-tool",
        ),
        pytest.param(
            {"model": FLASH, "input": [{"role": "assistant", "content": "here you go"}, "x"]},
            400,
            "unsupported_input",
            "input[0]",
            ["previous_response_id"],
            id="assistant-message",
        ),
        pytest.param(
            {"model": FLASH, "input": "x", "previous_response_id": "task_img_nope"},
            404,
            "previous_response_not_found",
            "previous_response_id",
            ["'task_img_nope'", "names no response"],
            id="unknown-previous",
        ),
        pytest.param(
            {"model": FLASH, "input": "x", "tools": [{"type": "image_generation", "quality": "ultra"}]},
            400,
            "invalid_quality",
            "tools[0].quality",
            ["tools[0].quality 'ultra'"],
            id="bad-quality",
        ),
        pytest.param(
            {"model": FLASH, "input": 7},
            400,
            "invalid_field",
            "input",
            ["input 7 is not valid"],
            id="input-number",
        ),
    ],
)
def test_bad_input_is_a_4xx_in_openais_shape(
    http: httpx.Client, body: dict[str, Any], status: int, code: str | None, param: str, says: list[str]
) -> None:
    error = openai_error(http.post("/v1/responses", json=body), status)
    if code is not None:
        assert error["code"] == code, error
    assert error["param"] == param, error
    for fragment in says:
        assert fragment in error["message"], (fragment, error["message"])


def test_bad_input_through_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="dall-e-9", input="x")
    assert isinstance(missing.value.body, dict) and missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as partial:
        client.responses.create(
            model=PRO, input="x", tools=[{"type": "image_generation", "partial_images": 9}], stream=True
        )
    assert isinstance(partial.value.body, dict) and partial.value.body["param"] == "tools[0].partial_images"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.responses.retrieve("task_img_nope")
    assert isinstance(unknown.value.body, dict) and unknown.value.body["code"] == "response_not_found"
