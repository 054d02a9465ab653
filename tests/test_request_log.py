"""Every request gets an id (the caller's ``X-Request-Id`` where usable, else a new one), sent back in
``X-Request-Id``; the server logs one JSON line per request, and the task the request made carries the id
into the log lines of each of its state changes."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from conftest import MakeServer, ServerProcess

FLASH = "gemini-3.1-flash-image"


@pytest.fixture(scope="module")
def logged(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", "--log-level", "info", "--log-format", "json")


def lines(server: ServerProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def wait_for(server: ServerProcess, **fields: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in lines(server):
            if all(line.get(k) == v for k, v in fields.items()):
                return line
        time.sleep(0.1)
    raise AssertionError(f"no log line with {fields}:\n{server.log()[-3000:]}")


def test_a_request_and_its_task_share_the_caller_s_id(logged: ServerProcess) -> None:
    response = httpx.post(
        f"{logged.url}/v1/images/generations",
        json={"model": FLASH, "prompt": "a lamp", "response_format": "url"},
        headers={"X-Request-Id": "checkout-42.a"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "checkout-42.a"
    request = wait_for(logged, event="request", request_id="checkout-42.a")
    assert request["method"] == "POST" and request["path"] == "/v1/images/generations"
    assert request["status"] == 200 and request["dialect"] == "openai" and request["duration_ms"] > 0
    queued = wait_for(logged, event="task.queued", request_id="checkout-42.a")
    assert queued["model"] == FLASH and queued["task_id"].startswith("task_img_")
    for state in ("task.started", "task.completed"):
        line = wait_for(logged, event=state, task_id=queued["task_id"])
        assert line["request_id"] == "checkout-42.a"
    assert wait_for(logged, event="task.completed", task_id=queued["task_id"])["channel"] == "emulator"


def test_an_unusable_id_is_replaced_and_failures_are_logged(logged: ServerProcess) -> None:
    response = httpx.post(
        f"{logged.url}/v1/images/generations",
        json={"model": FLASH, "prompt": "x", "size": "8K"},
        headers={"X-Request-Id": "has spaces and {braces}"},
        timeout=60,
    )
    assert response.status_code == 400
    made = response.headers["x-request-id"]
    assert made.startswith("req_") and len(made) == 28
    line = wait_for(logged, event="request", request_id=made)
    assert line["status"] == 400 and line["path"] == "/v1/images/generations"


def test_a_gemini_request_is_logged_in_its_dialect(logged: ServerProcess) -> None:
    response = httpx.post(
        f"{logged.url}/v1beta/models/{FLASH}:generateContent",
        json={"contents": [{"parts": [{"text": "a kite"}]}]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    line = wait_for(logged, event="request", request_id=response.headers["x-request-id"])
    assert line["dialect"] == "gemini" and line["status"] == 200


def test_an_unknown_log_format_is_refused(make_server: MakeServer) -> None:
    server = make_server("sqlite", "--emulate", "--log-format", "xml", start=False)
    with pytest.raises(RuntimeError) as caught:
        server.start(timeout=30)
    said = " ".join(str(caught.value).translate({ord(c): " " for c in "│╭╮╰╯─"}).split())  # rich's box
    assert "'xml' is not a log format: use auto, json or text" in said


def test_a_field_named_like_a_log_record_attribute_is_kept_under_another_name() -> None:
    """``logging`` refuses ``message`` (and the record's own attributes) as extra fields; an event that
    has one must still be written, not raise inside the code that reports a failure."""
    import io
    import logging

    from pixelgate.core.logs import JsonFormatter, event

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("pixelgate.test-clash")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        event(logger, "task.failed", message="boom", name="x", code="upstream_error")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["event"] == "task.failed" and line["code"] == "upstream_error"
    assert line["message_"] == "boom" and line["name_"] == "x" and line["logger"] == "pixelgate.test-clash"
