"""One endpoint, three kinds of client: how POST /v1/images/generations chooses between the synchronous
answer and the task (the rule is in api/openai.py's docstring and the README)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import MakeServer

SYNC_KEYS = {"created", "data", "usage", "size", "output_format"}
TASK_KEYS = {"id", "object", "model", "status", "progress", "created_at", "metadata"}


def kind_of(body: dict[str, Any]) -> str:
    if body.get("object") == "generation.task":
        assert set(body) >= TASK_KEYS
        return "task"
    assert set(body) >= SYNC_KEYS
    return "sync"


@pytest.mark.parametrize(
    ("extra", "headers", "expected"),
    [
        ({"size": "1024x1024"}, {}, "sync"),  # plain OpenAI Images call
        ({}, {}, "sync"),
        ({"size": "16:9"}, {}, "task"),  # task-style: ratio size
        ({"resolution": "1K"}, {}, "task"),
        ({"metadata": {"resolution": "2K"}}, {}, "task"),
        ({"size": "16:9", "response_format": "url"}, {}, "sync"),  # asks for an OpenAI answer
        ({"size": "16:9"}, {"X-Stainless-Lang": "python"}, "sync"),  # an official OpenAI SDK
        ({"size": "16:9", "async": False}, {}, "sync"),
        ({"size": "1024x1024", "async": True}, {}, "task"),  # seed 003's async mode
        ({"size": "1024x1024"}, {"Prefer": "respond-async"}, "task"),
        ({"size": "16:9"}, {"Prefer": "wait"}, "sync"),
    ],
)
def test_sync_or_task(
    http: httpx.Client, extra: dict[str, Any], headers: dict[str, str], expected: str
) -> None:
    body = {"model": "gemini-3.1-flash-image", "prompt": "a blue door", **extra}
    response = http.post("/v1/images/generations", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert kind_of(response.json()) == expected


def test_no_upstream_says_how_to_configure_one(backend: str, make_server: MakeServer) -> None:
    server = make_server(backend)  # no --emulate, no upstream
    response = httpx.post(
        f"{server.url}/v1/images/generations", json={"model": "gemini-3-pro-image", "prompt": "x"}, timeout=30
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "model_not_configured" and error["param"] == "model"
    assert "no upstream is configured for gemini-3-pro-image" in error["message"]
    assert "--emulate" in error["message"]
    assert httpx.get(f"{server.url}/v1/models", timeout=30).status_code == 200
