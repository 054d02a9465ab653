"""``stream: true`` on Interactions, read by Google's SDK and raw: events in order, the image in its deltas,
keep-alive comments while the model works, and errors as an ``error`` event."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import pytest
from google import genai
from PIL import Image

from conftest import MakeServer, ServerProcess

FLASH = "gemini-3.1-flash-image"


@pytest.fixture(scope="module")
def slow_server(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", "--emulate-latency", "1", "--stream-keepalive", "0.2")


def _client(server: ServerProcess) -> genai.Client:
    return genai.Client(
        api_key="k",
        http_options={"base_url": server.url, "api_version": "v1beta", "retry_options": {"attempts": 1}},
    )


def _raw_events(server: ServerProcess, body: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The raw lines and the decoded events of one streamed interaction."""
    lines: list[str] = []
    with httpx.stream("POST", f"{server.url}/v1beta/interactions", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = list(response.iter_lines())
    events = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    return lines, events


def test_the_sdk_streams_thoughts_search_text_and_image_in_order(server: ServerProcess) -> None:
    client = _client(server)  # held: a collected client closes the connection the stream reads
    stream = client.interactions.create(
        model=FLASH,
        input="a lighthouse at dusk",
        stream=True,
        generation_config={"thinking_level": "high"},
        tools=[{"type": "google_search"}],
        response_format=[{"type": "image", "aspect_ratio": "16:9", "image_size": "512"}, {"type": "text"}],
    )
    events = list(stream)
    kinds = [event.event_type for event in events]
    assert kinds[0] == "interaction.created" and kinds[-1] == "interaction.completed"
    starts = [event.step.type for event in events if event.event_type == "step.start"]  # type: ignore[union-attr]
    assert starts == ["thought", "thought", "google_search_call", "google_search_result", "model_output"]
    assert kinds.count("step.start") == kinds.count("step.stop")

    output_index = len(starts) - 1
    deltas = [e.delta for e in events if e.event_type == "step.delta" and e.index == output_index]  # type: ignore[union-attr]
    assert [d.type for d in deltas] == ["text", "image"]
    image = Image.open(io.BytesIO(base64.b64decode(deltas[1].data)))  # type: ignore[union-attr]
    assert image.size == (688, 384)
    assert "emulated" in deltas[0].text  # type: ignore[union-attr]

    signatures = [
        e.delta for e in events if e.event_type == "step.delta" and e.delta.type == "thought_signature"
    ]  # type: ignore[union-attr]
    assert len(signatures) == 1 and signatures[0].signature  # type: ignore[union-attr]
    completed = events[-1].interaction  # type: ignore[union-attr]
    assert completed.status == "completed" and completed.id == events[0].interaction.id  # type: ignore[union-attr]
    assert completed.usage is not None and completed.usage.total_output_tokens >= 747


def test_a_streamed_interaction_can_be_continued(server: ServerProcess) -> None:
    client = _client(server)
    events = list(client.interactions.create(model=FLASH, input="a red fox", stream=True))
    first_id = events[0].interaction.id  # type: ignore[union-attr]
    second = client.interactions.create(model=FLASH, input="now in snow", previous_interaction_id=first_id)
    assert second.status == "completed" and second.output_image is not None


def test_keepalive_comments_while_the_model_works(slow_server: ServerProcess) -> None:
    lines, events = _raw_events(slow_server, {"model": FLASH, "input": "a slow cat", "stream": True})
    assert ": keep-alive" in lines
    first_keepalive = lines.index(": keep-alive")
    created = next(i for i, line in enumerate(lines) if '"interaction.created"' in line)
    assert created < first_keepalive  # the caller learns the id before the wait
    assert events[-1]["event_type"] == "interaction.completed"
    assert next(line for line in lines if line.startswith("event: ")) == "event: interaction.created"


def test_a_failed_generation_ends_with_an_error_event(server: ServerProcess) -> None:
    png = base64.b64encode(_png()).decode()
    body = {
        "model": FLASH,
        "stream": True,
        "input": [
            {"type": "user_input", "content": [{"type": "text", "text": "a cat"}]},
            {"type": "model_output", "content": [{"type": "image", "data": png, "mime_type": "image/png"}]},
            {"type": "user_input", "content": [{"type": "text", "text": "make it blue"}]},
        ],
    }
    _, events = _raw_events(server, body)
    assert [e["event_type"] for e in events] == ["interaction.created", "error"]
    assert events[-1]["error"]["code"] == "missing_thought_signature"
    assert "thought_signature" in events[-1]["error"]["message"]


def test_store_false_stream_forgets_the_interaction(server: ServerProcess) -> None:
    _, events = _raw_events(server, {"model": FLASH, "input": "a ghost", "stream": True, "store": False})
    interaction_id = events[0]["interaction"]["id"]
    assert events[-1]["event_type"] == "interaction.completed"
    assert httpx.get(f"{server.url}/v1beta/interactions/{interaction_id}").status_code == 404


def test_invalid_streamed_request_is_a_plain_400(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}/v1beta/interactions",
        json={
            "model": FLASH,
            "input": "x",
            "stream": True,
            "response_format": {"type": "image", "image_size": "1k"},
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()
