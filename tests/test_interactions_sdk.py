"""The official google-genai SDK's Interactions client (``client.interactions``), pointed at pixelgate, works
unmodified on ``v1beta`` and on the SDK's default ``v1``: the seed's examples, multi-turn editing with
``previous_interaction_id``, stateless step lists with thought signatures, background interactions,
cancel and delete, ``store: false``, URI delivery, thought steps and the models' capability errors."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from google import genai
from google.genai._interactions import APIStatusError, BadRequestError, ConflictError, NotFoundError
from PIL import Image

from conftest import MakeServer, ServerProcess, png_bytes
from pixelgate.catalog import default_catalog

FLASH = "gemini-3.1-flash-image"
LITE = "gemini-3.1-flash-lite-image"
PRO = "gemini-3-pro-image"
NANO = "gemini-2.5-flash-image"
CATALOG = default_catalog()
SMALL = {"type": "image", "image_size": "512"}  # flash's cheapest render
VIDEO = {"type": "video", "uri": "https://www.youtube.com/watch?v=x", "mime_type": "video/mp4"}
UNKNOWN_ID = "task_img_00000000000000000000"
SKIP_SIGNATURE = "skip_thought_signature_validator"
TERMINAL = {"completed", "failed", "cancelled"}
LATENCY = 3


def sdk_client(server: ServerProcess, api_version: str | None) -> genai.Client:
    """No retries: the SDK retries 408/409/429/5xx by default, which only slows a test down."""
    options: dict[str, Any] = {"base_url": server.url, "timeout": 60_000, "retry_options": {"attempts": 1}}
    if api_version is not None:
        options["api_version"] = api_version
    return genai.Client(api_key="k", http_options=options)


@pytest.fixture(params=["v1beta", "default-v1"])
def client(request: pytest.FixtureRequest, server: ServerProcess) -> Iterator[genai.Client]:
    made = sdk_client(server, "v1beta" if request.param == "v1beta" else None)
    yield made
    made.close()


@pytest.fixture()
def beta(server: ServerProcess) -> Iterator[genai.Client]:
    made = sdk_client(server, "v1beta")
    yield made
    made.close()


@pytest.fixture(scope="module")
def slow_server(backend: str, make_server: MakeServer) -> ServerProcess:
    return make_server(backend, "--emulate", "--emulate-latency", str(LATENCY))


@pytest.fixture()
def slow(slow_server: ServerProcess) -> Iterator[genai.Client]:
    made = sdk_client(slow_server, None)
    yield made
    made.close()


def image_of(block: Any) -> Image.Image:
    assert block is not None and block.type == "image" and block.data, f"an inline image block: {block!r}"
    image = Image.open(io.BytesIO(base64.b64decode(block.data)))
    image.load()
    return image


def pixels(model: str, aspect_ratio: str, image_size: str) -> tuple[int, int]:
    return CATALOG.get(model).output_pixels(aspect_ratio, image_size)


def modality_tokens(entries: Any) -> dict[str, int]:
    return {entry.modality: entry.tokens for entry in entries or []}


def reason_of(exc: APIStatusError) -> tuple[int, str, str]:
    """(code, status, ErrorInfo reason) of a Google-shaped error body."""
    error = exc.body["error"]  # type: ignore[index]
    return error["code"], error["status"], error["details"][0]["reason"]


def wait_until_done(client: genai.Client, interaction_id: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = client.interactions.get(interaction_id)
        if got.status in TERMINAL:
            return got
        assert time.monotonic() < deadline, f"{interaction_id} is still {got.status}"
        time.sleep(0.05)


def user_input(text: str) -> dict[str, Any]:
    return {"type": "user_input", "content": [{"type": "text", "text": text}]}


def assert_well_formed(interaction: Any, model: str, image_size: str) -> None:
    """Completed, with an id, the model, a recent creation time and usage that counts the image."""
    assert interaction.status == "completed"
    assert interaction.id and isinstance(interaction.id, str)
    assert interaction.model == model
    created = datetime.fromisoformat(interaction.created.replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - created).total_seconds()) < 300
    usage = interaction.usage
    output = modality_tokens(usage.output_tokens_by_modality)
    assert output["image"] == CATALOG.get(model).tokens_for(image_size)
    assert usage.total_output_tokens == sum(output.values()) >= output["image"]
    assert usage.total_input_tokens == sum(modality_tokens(usage.input_tokens_by_modality).values()) > 0
    assert usage.total_tokens == (
        usage.total_input_tokens + usage.total_output_tokens + (usage.total_thought_tokens or 0)
    )
    assert interaction.steps[-1].type == "model_output"


# --- 1. the seed's examples ---------------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["v1beta", None], ids=["v1beta", "default-v1"])
def test_requests_go_to_the_chosen_api_version(server: ServerProcess, api_version: str | None) -> None:
    version = api_version or "v1"
    with sdk_client(server, api_version) as made:
        raw = made.interactions.with_raw_response.create(model=NANO, input="a pear")
        assert raw.http_request.url.path == f"/{version}/interactions"
        created = raw.parse()
        got = made.interactions.with_raw_response.get(created.id)
        assert got.http_request.url.path == f"/{version}/interactions/{created.id}"
        assert got.parse().id == created.id
        with pytest.raises(ConflictError) as caught:
            made.interactions.cancel(created.id)
        assert caught.value.response.request.url.path == f"/{version}/interactions/{created.id}/cancel"
        deleted = made.interactions.with_raw_response.delete(created.id)
        assert deleted.http_request.url.path == f"/{version}/interactions/{created.id}"


def test_text_prompt_makes_the_default_image(client: genai.Client) -> None:
    interaction = client.interactions.create(
        model=FLASH, input="Create a picture of a nano banana dish in a fancy restaurant with a Gemini theme"
    )
    assert_well_formed(interaction, FLASH, "1K")
    image = image_of(interaction.output_image)
    assert image.size == pixels(FLASH, "1:1", "1K") and image.format == "PNG"
    assert interaction.output_image.mime_type == "image/png"
    assert not interaction.output_text, "no text unless asked for"
    assert [step.type for step in interaction.steps] == ["thought", "model_output"]
    assert [block.type for block in interaction.steps[-1].content] == ["image"]


def test_blocks_with_a_reference_image_follow_its_aspect_ratio(client: genai.Client) -> None:
    reference = png_bytes(64, 48, (10, 200, 30))  # 4:3
    interaction = client.interactions.create(
        model=FLASH,
        input=[
            {"type": "text", "text": "An office group photo of these people"},
            {"type": "image", "data": base64.b64encode(reference).decode(), "mime_type": "image/png"},
        ],
        response_format=SMALL,
    )
    assert_well_formed(interaction, FLASH, "512")
    assert image_of(interaction.output_image).size == pixels(FLASH, "4:3", "512")
    assert modality_tokens(interaction.usage.input_tokens_by_modality)["image"] == 258

    with_input = client.interactions.get(interaction.id, include_input=True)
    first = with_input.steps[0]
    assert first.type == "user_input"
    assert [block.type for block in first.content] == ["text", "image"]
    assert first.content[0].text == "An office group photo of these people"
    assert base64.b64decode(first.content[1].data) == reference
    assert [step.type for step in with_input.steps[1:]] == [step.type for step in interaction.steps]
    assert "user_input" not in [step.type for step in client.interactions.get(interaction.id).steps]


def test_several_references_with_an_explicit_aspect_ratio_and_size(client: genai.Client) -> None:
    refs = [png_bytes(40, 40, (255, 0, 0)), png_bytes(40, 40, (0, 0, 255))]
    interaction = client.interactions.create(
        model=FLASH,
        input=[
            {"type": "text", "text": "these two, together"},
            *[
                {"type": "image", "data": base64.b64encode(r).decode(), "mime_type": "image/png"}
                for r in refs
            ],
        ],
        response_format={"type": "image", "aspect_ratio": "5:4", "image_size": "2K"},
    )
    assert_well_formed(interaction, FLASH, "2K")
    assert image_of(interaction.output_image).size == pixels(FLASH, "5:4", "2K")
    assert modality_tokens(interaction.usage.input_tokens_by_modality)["image"] == 2 * 258


def test_response_format_object_asks_for_a_2k_jpeg(client: genai.Client) -> None:
    interaction = client.interactions.create(
        model=FLASH,
        input="Da Vinci style anatomical sketch of a dissected Monarch butterfly",
        response_format={
            "type": "image",
            "mime_type": "image/jpeg",
            "aspect_ratio": "16:9",
            "image_size": "2K",
        },
    )
    assert_well_formed(interaction, FLASH, "2K")
    image = image_of(interaction.output_image)
    assert image.format == "JPEG" and image.size == pixels(FLASH, "16:9", "2K") == (2752, 1536)
    assert interaction.output_image.mime_type == "image/jpeg"


def test_response_format_list_with_text(client: genai.Client) -> None:
    interaction = client.interactions.create(
        model=FLASH,
        input="a lighthouse at dusk",
        response_format=[
            {"type": "image", "mime_type": "image/jpeg", "aspect_ratio": "16:9", "image_size": "512"},
            {"type": "text"},
        ],
    )
    assert_well_formed(interaction, FLASH, "512")
    image = image_of(interaction.output_image)
    assert image.format == "JPEG" and image.size == pixels(FLASH, "16:9", "512")
    output = interaction.steps[-1].content
    assert sorted(block.type for block in output) == ["image", "text"]
    text = next(block.text for block in output if block.type == "text")
    assert text and interaction.output_text == text
    tokens = modality_tokens(interaction.usage.output_tokens_by_modality)
    assert tokens["text"] > 0
    assert interaction.usage.total_output_tokens == tokens["text"] + CATALOG.get(FLASH).tokens_for("512")


def test_thinking_level_high(client: genai.Client) -> None:
    interaction = client.interactions.create(
        model=FLASH,
        input="A futuristic city built inside a giant glass bottle floating in space",
        generation_config={"thinking_level": "high"},
        response_format=SMALL,
    )
    assert_well_formed(interaction, FLASH, "512")
    assert [step.type for step in interaction.steps] == ["thought", "thought", "model_output"]
    assert interaction.usage.total_thought_tokens > 0
    assert image_of(interaction.output_image).size == pixels(FLASH, "1:1", "512")


@pytest.mark.parametrize(
    ("tool", "expected_types"),
    [
        ({"type": "google_search"}, ["web_search"]),
        (
            {"type": "google_search", "search_types": ["web_search", "image_search"]},
            ["web_search", "image_search"],
        ),
    ],
    ids=["plain", "web+image"],
)
def test_google_search_steps(client: genai.Client, tool: dict[str, Any], expected_types: list[str]) -> None:
    interaction = client.interactions.create(
        model=FLASH,
        input="Use image search to find a resplendent quetzal and make a 3:2 wallpaper of it",
        tools=[tool],
        generation_config={"thinking_level": "high"},
        response_format={"type": "image", "aspect_ratio": "3:2", "image_size": "512"},
    )
    assert_well_formed(interaction, FLASH, "512")
    assert image_of(interaction.output_image).size == pixels(FLASH, "3:2", "512")
    steps = interaction.steps
    kinds = [step.type for step in steps]
    assert kinds.count("thought") == 2 and kinds.count("model_output") == 1
    assert kinds[-1] == "model_output", "the answer comes after the thinking and the searching"
    assert kinds.count("google_search_call") == kinds.count("google_search_result") == len(expected_types)
    search_types = []
    for i, step in enumerate(steps):
        if step.type != "google_search_call":
            continue
        call = step.model_dump(mode="json")
        result = steps[i + 1].model_dump(mode="json")
        assert result["type"] == "google_search_result" and result["call_id"] == call["id"]
        assert call["arguments"]["queries"]
        assert "Emulated search" in result["result"][0]["search_suggestions"]
        search_types.append(call["search_type"])
    assert search_types == expected_types
    assert len({step.id for step in steps if step.type == "google_search_call"}) == len(expected_types)


def test_video_input_is_taken_by_flash(client: genai.Client) -> None:
    interaction = client.interactions.create(
        model=FLASH,
        input=[
            VIDEO,
            {"type": "text", "text": "Generate a poster image that captures the key themes of this video."},
        ],
        response_format={"type": "image", "aspect_ratio": "16:9", "image_size": "512"},
    )
    assert_well_formed(interaction, FLASH, "512")
    assert image_of(interaction.output_image).size == pixels(FLASH, "16:9", "512")


# --- 2. multi-turn with previous_interaction_id --------------------------------------------------------------


def test_a_continued_conversation_keeps_its_image_s_shape_and_size(beta: genai.Client) -> None:
    """The README's example: a second turn that names no aspect ratio or size edits the image in the shape
    and size it has (seed 004: with no aspect ratio the output matches the input image)."""
    first = beta.interactions.create(
        model=FLASH,
        input="an infographic of photosynthesis",
        response_format={"type": "image", "aspect_ratio": "16:9", "image_size": "2K"},
    )
    second = beta.interactions.create(
        model=FLASH, input="now make it Spanish", previous_interaction_id=first.id
    )
    third = beta.interactions.create(
        model=FLASH,
        input="and square",
        previous_interaction_id=second.id,
        response_format={"type": "image", "aspect_ratio": "1:1"},
    )
    assert image_of(first.output_image).size == image_of(second.output_image).size == (2752, 1536)
    assert image_of(third.output_image).size == pixels(FLASH, "1:1", "2K")  # the size still carries over


def test_three_turn_edit_session_survives_deleting_turn_one(beta: genai.Client) -> None:
    first = beta.interactions.create(model=FLASH, input="a red house on a hill", response_format=SMALL)
    second = beta.interactions.create(
        model=FLASH, input="make the house blue", previous_interaction_id=first.id, response_format=SMALL
    )
    third = beta.interactions.create(
        model=FLASH, input="add a tree", previous_interaction_id=second.id, response_format=SMALL
    )
    images = [image_of(turn.output_image) for turn in (first, second, third)]
    for turn in (second, third):
        assert_well_formed(turn, FLASH, "512")
    assert all(image.size == pixels(FLASH, "1:1", "512") for image in images)
    assert len({turn.output_image.data for turn in (first, second, third)}) == 3, "each edit is a new image"
    assert second.previous_interaction_id == first.id
    # The earlier turns' images go to the model: one more image of input per turn.
    assert [modality_tokens(t.usage.input_tokens_by_modality).get("image", 0) for t in (second, third)] == [
        258,
        2 * 258,
    ]
    got = beta.interactions.get(third.id)
    assert got.previous_interaction_id == second.id and got.status == "completed"
    assert got.output_image.data == third.output_image.data

    beta.interactions.delete(first.id)
    with pytest.raises(NotFoundError):
        beta.interactions.get(first.id)
    again = beta.interactions.create(
        model=FLASH, input="add a tree", previous_interaction_id=second.id, response_format=SMALL
    )
    assert again.status == "completed" and again.previous_interaction_id == second.id
    # The same conversation as turn 3, turn 1's image included: the emulator paints the same picture.
    assert again.output_image.data == third.output_image.data
    assert again.usage.total_input_tokens == third.usage.total_input_tokens


def test_unknown_previous_interaction_is_a_404(client: genai.Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.interactions.create(model=FLASH, input="x", previous_interaction_id=UNKNOWN_ID)
    assert reason_of(caught.value) == (404, "NOT_FOUND", "INTERACTION_NOT_FOUND")
    assert UNKNOWN_ID in caught.value.message


def test_continuing_a_failed_interaction_is_a_400(beta: genai.Client) -> None:
    first = beta.interactions.create(model=FLASH, input="a red house", response_format=SMALL)
    model_turn = {"type": "model_output", "content": [first.output_image.model_dump(exclude_none=True)]}
    queued = beta.interactions.create(
        model=FLASH,
        input=[user_input("a red house"), model_turn, user_input("make it blue")],  # no thought signature
        background=True,
        response_format=SMALL,
    )
    failed = wait_until_done(beta, queued.id)
    assert failed.status == "failed"
    assert failed.errors and failed.errors[0].code == "missing_thought_signature"
    assert failed.output_image is None
    with pytest.raises(BadRequestError) as caught:
        beta.interactions.create(model=FLASH, input="go on", previous_interaction_id=failed.id)
    assert reason_of(caught.value) == (400, "INVALID_ARGUMENT", "PREVIOUS_INTERACTION_NOT_COMPLETED")


# --- 3. a conversation as a list of steps (stateless) ---------------------------------------------------------


@pytest.fixture()
def first_turn(beta: genai.Client) -> Any:
    return beta.interactions.create(model=FLASH, input="a red house", response_format=SMALL)


def model_steps(turn: Any, signature: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    image = {"type": "image", "data": turn.output_image.data, "mime_type": turn.output_image.mime_type}
    return {"type": "model_output", "content": [image]}, {"type": "thought", "signature": signature}


def test_steps_as_returned_continue_statelessly(beta: genai.Client, first_turn: Any) -> None:
    echoed = [step.model_dump(mode="json", exclude_none=True) for step in first_turn.steps]
    assert [step["type"] for step in echoed] == ["thought", "model_output"] and echoed[0]["signature"]
    stateless = beta.interactions.create(
        model=FLASH,
        input=[user_input("a red house"), *echoed, user_input("make it blue")],
        response_format=SMALL,
    )
    assert_well_formed(stateless, FLASH, "512")
    assert stateless.output_image.data != first_turn.output_image.data
    assert modality_tokens(stateless.usage.input_tokens_by_modality)["image"] == 258
    # Stateless and stored conversations are the same conversation.
    stored = beta.interactions.create(
        model=FLASH, input="make it blue", previous_interaction_id=first_turn.id, response_format=SMALL
    )
    assert stored.output_image.data == stateless.output_image.data


def test_signature_step_before_the_model_output(beta: genai.Client, first_turn: Any) -> None:
    output, thought = model_steps(first_turn, first_turn.steps[0].signature)
    answer = beta.interactions.create(
        model=FLASH,
        input=[user_input("a red house"), thought, output, user_input("make it blue")],
        response_format=SMALL,
    )
    assert answer.status == "completed"
    assert image_of(answer.output_image).size == pixels(FLASH, "1:1", "512")


def test_signature_step_after_the_model_output(beta: genai.Client, first_turn: Any) -> None:
    output, thought = model_steps(first_turn, first_turn.steps[0].signature)
    answer = beta.interactions.create(
        model=FLASH,
        input=[user_input("a red house"), output, thought, user_input("make it blue")],
        response_format=SMALL,
    )
    assert answer.status == "completed"


def test_steps_without_the_signature_are_a_400(beta: genai.Client, first_turn: Any) -> None:
    output, _ = model_steps(first_turn, None)
    with pytest.raises(BadRequestError) as caught:
        beta.interactions.create(
            model=FLASH,
            input=[user_input("a red house"), output, user_input("make it blue")],
            response_format=SMALL,
        )
    assert reason_of(caught.value) == (400, "INVALID_ARGUMENT", "MISSING_THOUGHT_SIGNATURE")
    forged, thought = model_steps(first_turn, base64.b64encode(b"0" * 32).decode())
    with pytest.raises(BadRequestError) as caught:
        beta.interactions.create(
            model=FLASH, input=[user_input("a red house"), thought, forged, user_input("make it blue")]
        )
    assert reason_of(caught.value)[2] == "MISSING_THOUGHT_SIGNATURE"


def test_the_skip_signature_magic_value_is_accepted(beta: genai.Client, first_turn: Any) -> None:
    output, thought = model_steps(first_turn, SKIP_SIGNATURE)
    answer = beta.interactions.create(
        model=FLASH,
        input=[user_input("a red house"), thought, output, user_input("make it blue")],
        response_format=SMALL,
    )
    assert answer.status == "completed"


def test_steps_of_a_searching_turn_can_be_sent_back(beta: genai.Client) -> None:
    first = beta.interactions.create(
        model=FLASH, input="a quetzal", tools=[{"type": "google_search"}], response_format=SMALL
    )
    echoed = [step.model_dump(mode="json", exclude_none=True) for step in first.steps]
    assert "google_search_call" in [step["type"] for step in echoed]
    answer = beta.interactions.create(
        model=FLASH,
        input=[user_input("a quetzal"), *echoed, user_input("in the rain")],
        response_format=SMALL,
    )
    assert answer.status == "completed"


def test_nano_banana_needs_no_signature(beta: genai.Client) -> None:
    first = beta.interactions.create(model=NANO, input="a red house")
    assert [step.type for step in first.steps] == ["model_output"]
    output, _ = model_steps(first, None)
    answer = beta.interactions.create(
        model=NANO,
        input=[user_input("a red house"), output, user_input("make it blue")],
        response_format={"type": "image", "aspect_ratio": "16:9"},
    )
    assert_well_formed(answer, NANO, "1K")
    assert image_of(answer.output_image).size == pixels(NANO, "16:9", "1K") == (1344, 768)


# --- 4. background, cancel, delete ----------------------------------------------------------------------------


def test_background_interaction_is_polled_to_completion(client: genai.Client) -> None:
    started = client.interactions.create(
        model=FLASH,
        input="a windmill",
        background=True,
        response_format={"type": "image", "aspect_ratio": "9:16", "image_size": "512"},
    )
    assert started.status in {"queued", "in_progress"}
    assert started.id and started.steps == [] and started.output_image is None and started.usage is None
    done = wait_until_done(client, started.id)
    assert_well_formed(done, FLASH, "512")
    assert done.id == started.id and done.created == started.created
    assert image_of(done.output_image).size == pixels(FLASH, "9:16", "512")


def test_cancel_and_delete_a_running_background_interaction(slow: genai.Client) -> None:
    t0 = time.monotonic()
    started = slow.interactions.create(model=FLASH, input="slow", background=True, response_format=SMALL)
    assert time.monotonic() - t0 < LATENCY, "background answers before the image is made"
    assert started.status in {"queued", "in_progress"}

    with pytest.raises(BadRequestError) as caught:
        slow.interactions.create(model=FLASH, input="go on", previous_interaction_id=started.id)
    assert reason_of(caught.value)[2] == "PREVIOUS_INTERACTION_NOT_COMPLETED"

    cancelled = slow.interactions.cancel(started.id)
    assert cancelled.id == started.id and cancelled.status == "cancelled"
    assert cancelled.output_image is None and cancelled.usage is None
    time.sleep(0.2)
    got = slow.interactions.get(started.id)
    assert got.status == "cancelled" and got.output_image is None
    # Cancelling again is idempotent, as POST /v1/tasks/{id}/cancel (tests/test_task_api.py) is.
    again = slow.interactions.cancel(started.id)
    assert again.status == "cancelled" and again.updated == cancelled.updated

    with pytest.raises(BadRequestError) as caught:
        slow.interactions.create(model=FLASH, input="go on", previous_interaction_id=started.id)
    assert reason_of(caught.value) == (400, "INVALID_ARGUMENT", "PREVIOUS_INTERACTION_NOT_COMPLETED")

    assert slow.interactions.delete(started.id) is None
    for call in (slow.interactions.get, slow.interactions.cancel, slow.interactions.delete):
        with pytest.raises(NotFoundError) as missing:
            call(started.id)
        assert reason_of(missing.value) == (404, "NOT_FOUND", "INTERACTION_NOT_FOUND")


def test_delete_a_running_interaction(slow: genai.Client) -> None:
    started = slow.interactions.create(model=FLASH, input="slow too", background=True, response_format=SMALL)
    slow.interactions.delete(started.id)
    with pytest.raises(NotFoundError):
        slow.interactions.get(started.id)
    time.sleep(0.2)
    with pytest.raises(NotFoundError):
        slow.interactions.get(started.id)


def test_cancelling_a_completed_interaction_is_a_409(client: genai.Client) -> None:
    done = client.interactions.create(model=FLASH, input="a kite", response_format=SMALL)
    with pytest.raises(ConflictError) as caught:
        client.interactions.cancel(done.id)
    assert caught.value.status_code == 409
    assert client.interactions.get(done.id).status == "completed"


# --- 5. store=False ---------------------------------------------------------------------------------------------


def test_store_false_answers_then_forgets(client: genai.Client) -> None:
    answer = client.interactions.create(
        model=FLASH,
        input="a teapot",
        store=False,
        response_format={"type": "image", "aspect_ratio": "4:1", "image_size": "512"},
    )
    assert_well_formed(answer, FLASH, "512")
    assert image_of(answer.output_image).size == pixels(FLASH, "4:1", "512")
    with pytest.raises(NotFoundError):
        client.interactions.get(answer.id)
    with pytest.raises(NotFoundError) as caught:
        client.interactions.create(model=FLASH, input="go on", previous_interaction_id=answer.id)
    assert reason_of(caught.value)[2] == "INTERACTION_NOT_FOUND"


@pytest.mark.parametrize(
    "extra",
    [{"background": True}, {"response_format": {"type": "image", "delivery": "uri"}}],
    ids=["background", "uri-delivery"],
)
def test_store_false_with_what_needs_storing_is_a_400(client: genai.Client, extra: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.interactions.create(model=FLASH, input="x", store=False, **extra)
    assert reason_of(caught.value) == (400, "INVALID_ARGUMENT", "INVALID_STORE")


# --- 6. delivery "uri" ----------------------------------------------------------------------------------------


def test_uri_delivery_downloads_the_right_pixels(client: genai.Client) -> None:
    interaction = client.interactions.create(
        model=FLASH,
        input="a harbour",
        generation_config={"thinking_level": "high"},
        response_format={
            "type": "image",
            "mime_type": "image/jpeg",
            "aspect_ratio": "3:2",
            "image_size": "1K",
            "delivery": "uri",
        },
    )
    assert_well_formed(interaction, FLASH, "1K")
    blocks = [interaction.output_image]
    blocks += [block for step in interaction.steps if step.type == "thought" for block in step.summary or []]
    blocks = [block for block in blocks if block.type == "image"]
    assert len(blocks) == 3, "the output and the two interim thought images"
    sizes = []
    for block in blocks:
        assert block.uri and not block.data and block.mime_type == "image/jpeg"
        fetched = httpx.get(block.uri, timeout=30)
        assert fetched.status_code == 200
        image = Image.open(io.BytesIO(fetched.content))
        assert image.format == "JPEG"
        sizes.append(image.size)
    assert sizes == [pixels(FLASH, "3:2", "1K"), pixels(FLASH, "3:2", "512"), pixels(FLASH, "3:2", "1K")]
    final = httpx.get(interaction.output_image.uri, timeout=30).content
    assert httpx.get(blocks[2].uri, timeout=30).content == final, "the last thought image is the final image"
    later = client.interactions.get(interaction.id)
    assert later.output_image.uri and httpx.get(later.output_image.uri, timeout=30).content == final


# --- 7. thought steps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "config", "response_format", "interim"),
    [
        (FLASH, {}, SMALL, None),
        (FLASH, {"thinking_level": "minimal"}, SMALL, None),
        (FLASH, {"thinking_level": "high"}, {"type": "image"}, ("512", "1K")),
        (PRO, {}, {"type": "image"}, ("1K", "1K")),
    ],
    ids=["flash-default", "flash-minimal", "flash-high", "pro"],
)
def test_thought_steps_of_thinking_models(
    beta: genai.Client,
    model: str,
    config: dict[str, Any],
    response_format: dict[str, Any],
    interim: tuple[str, str] | None,
) -> None:
    size = response_format.get("image_size", "1K")
    interaction = beta.interactions.create(
        model=model, input="a glass bottle city", generation_config=config, response_format=response_format
    )
    assert_well_formed(interaction, model, size)
    thoughts = [step for step in interaction.steps if step.type == "thought"]
    assert interaction.steps[: len(thoughts)] == thoughts, "thoughts come first"
    assert thoughts[-1].signature, "thinking models sign their turn"
    assert interaction.usage.total_thought_tokens > 0
    if interim is None:
        assert len(thoughts) == 1
        assert [block.type for block in thoughts[0].summary] == ["text"] and thoughts[0].summary[0].text
        return
    assert len(thoughts) == 2
    images = []
    for thought in thoughts:
        assert [block.type for block in thought.summary] == ["text", "image"] and thought.summary[0].text
        images.append(thought.summary[1])
    assert [image_of(block).size for block in images] == [pixels(model, "1:1", s) for s in interim]
    assert images[-1].data == interaction.output_image.data, "the last thought image is the final image"
    assert images[0].data != interaction.output_image.data, "the first is a draft"
    # Interim images are not billed: one image's tokens.
    output = modality_tokens(interaction.usage.output_tokens_by_modality)
    assert output == {"image": CATALOG.get(model).tokens_for(size)}


@pytest.mark.parametrize("model", [NANO, LITE])
def test_models_that_do_not_think_have_no_thought_step(beta: genai.Client, model: str) -> None:
    interaction = beta.interactions.create(model=model, input="a bicycle")
    assert_well_formed(interaction, model, "1K")
    assert [step.type for step in interaction.steps] == ["model_output"]
    assert not interaction.usage.total_thought_tokens


@pytest.mark.parametrize(
    ("model", "config"),
    [
        (FLASH, {"thinking_level": "high", "thinking_summaries": "none"}),
        (PRO, {"thinking_summaries": "none"}),
    ],
    ids=["flash-high", "pro"],
)
def test_thinking_summaries_none_hides_them(beta: genai.Client, model: str, config: dict[str, Any]) -> None:
    interaction = beta.interactions.create(
        model=model, input="a castle", generation_config=config, response_format={"type": "image"}
    )
    assert_well_formed(interaction, model, "1K")
    thoughts = [step for step in interaction.steps if step.type == "thought"]
    assert all(not step.summary for step in thoughts), "no thought summaries"
    assert [bool(step.signature) for step in thoughts] == [True], "the signature is still given"
    assert interaction.usage.total_thought_tokens > 0, "the model still thought"
    assert image_of(interaction.output_image).size == pixels(model, "1:1", "1K")


# --- 8. capability violations and unknown ids ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason", "param"),
    [
        (
            {"model": FLASH, "response_format": {"type": "image", "image_size": "1k"}},
            "INVALID_IMAGE_SIZE",
            "response_format.image_size",
        ),
        (
            {"model": FLASH, "generation_config": {"image_config": {"image_size": "1k"}}},
            "INVALID_IMAGE_SIZE",
            "generation_config.image_config.image_size",
        ),
        (
            {"model": PRO, "response_format": {"type": "image", "aspect_ratio": "8:1"}},
            "INVALID_ASPECT_RATIO",
            "response_format.aspect_ratio",
        ),
        (
            {"model": LITE, "response_format": {"type": "image", "aspect_ratio": "1:4"}},
            "INVALID_ASPECT_RATIO",
            "response_format.aspect_ratio",
        ),
        (
            {"model": PRO, "generation_config": {"thinking_level": "high"}},
            "INVALID_THINKING_LEVEL",
            "generation_config.thinking_level",
        ),
        (
            {"model": LITE, "generation_config": {"thinking_level": "minimal"}},
            "INVALID_THINKING_LEVEL",
            "generation_config.thinking_level",
        ),
        ({"model": LITE, "tools": [{"type": "google_search"}]}, "SEARCH_NOT_SUPPORTED", None),
        (
            {"model": PRO, "tools": [{"type": "google_search", "search_types": ["image_search"]}]},
            "INVALID_SEARCH_TYPE",
            None,
        ),
        (
            {"model": PRO, "input": [VIDEO, {"type": "text", "text": "a poster"}]},
            "VIDEO_NOT_SUPPORTED",
            "input",
        ),
        (
            {"model": LITE, "input": [VIDEO, {"type": "text", "text": "a poster"}]},
            "VIDEO_NOT_SUPPORTED",
            "input",
        ),
        ({"model": FLASH, "stream": True, "background": True}, "INVALID_STREAM", "stream"),
    ],
    ids=[
        "size-1k",
        "size-1k-image-config",
        "aspect-8:1-pro",
        "aspect-1:4-lite",
        "thinking-pro",
        "thinking-lite",
        "search-lite",
        "image-search-pro",
        "video-pro",
        "video-lite",
        "stream-and-background",
    ],
)
def test_capability_violations_are_400s(
    client: genai.Client, kwargs: dict[str, Any], reason: str, param: str | None
) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.interactions.create(**{"input": "a fox", **kwargs})
    assert isinstance(caught.value, APIStatusError) and caught.value.status_code == 400
    assert reason_of(caught.value) == (400, "INVALID_ARGUMENT", reason)
    details = caught.value.body["error"]["details"][0]  # type: ignore[index]
    assert details["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    if param is not None:
        assert details["metadata"]["param"] == param


def test_lite_does_not_continue_a_conversation(client: genai.Client) -> None:
    lite_turn = client.interactions.create(model=LITE, input="a fox")
    flash_turn = client.interactions.create(model=FLASH, input="a fox", response_format=SMALL)
    for previous in (lite_turn.id, flash_turn.id):
        with pytest.raises(BadRequestError) as caught:
            client.interactions.create(model=LITE, input="make it red", previous_interaction_id=previous)
        assert reason_of(caught.value) == (400, "INVALID_ARGUMENT", "MULTI_TURN_NOT_SUPPORTED")
        assert caught.value.body["error"]["details"][0]["metadata"]["param"] == "previous_interaction_id"  # type: ignore[index]


@pytest.mark.parametrize("interaction_id", [UNKNOWN_ID, "nope"])
def test_get_of_an_unknown_interaction_is_a_404(client: genai.Client, interaction_id: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.interactions.get(interaction_id)
    assert caught.value.status_code == 404
    assert reason_of(caught.value) == (404, "NOT_FOUND", "INTERACTION_NOT_FOUND")
