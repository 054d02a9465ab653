"""The upstream simulators themselves: each answers its vendor's normal shape, records what it received, and
misbehaves exactly as asked. Plain sync tests over real sockets with httpx."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from upstreams import GeminiSimulator, OpenAISimulator, Simulator, TaskGatewaySimulator

KEY = "sk-test-0123456789abcdef"
GEMINI_PATH = "/v1beta/models/gemini-3-pro-image:generateContent"
GEMINI_BODY: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "a red bicycle"}]}]}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture
def gemini() -> Iterator[GeminiSimulator]:
    with GeminiSimulator(api_key=KEY) as sim:
        yield sim


@pytest.fixture
def openai_sim() -> Iterator[OpenAISimulator]:
    with OpenAISimulator(api_key=KEY) as sim:
        yield sim


@pytest.fixture
def tasks() -> Iterator[TaskGatewaySimulator]:
    with TaskGatewaySimulator(api_key=KEY, task_duration=0.2) as sim:
        yield sim


def gemini_client(sim: GeminiSimulator, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(base_url=sim.url, headers={"x-goog-api-key": KEY}, timeout=timeout)


def bearer_client(sim: Simulator, timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(base_url=sim.url, headers={"authorization": f"Bearer {KEY}"}, timeout=timeout)


def gemini_image(answer: dict[str, Any]) -> Image.Image:
    parts = answer["candidates"][0]["content"]["parts"]
    return decode(base64.b64decode(next(p for p in parts if "inlineData" in p)["inlineData"]["data"]))


# -- Gemini -----------------------------------------------------------------------------------------------


def test_gemini_generate_content_answers_and_records(gemini: GeminiSimulator) -> None:
    body = {
        **GEMINI_BODY,
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "imageConfig": {"aspectRatio": "16:9", "imageSize": "4K"},
            "thinkingConfig": {"includeThoughts": True},
        },
        "tools": [{"googleSearch": {}}],
    }
    with gemini_client(gemini) as client:
        answer = client.post(GEMINI_PATH, json=body).raise_for_status().json()

    candidate = answer["candidates"][0]
    parts = candidate["content"]["parts"]
    assert parts[0] == {"text": "thinking about it", "thought": True}
    assert parts[1]["thoughtSignature"] in gemini.issued_signatures
    assert parts[2] == {"text": "Here is your image."}
    assert candidate["finishReason"] == "STOP"
    assert candidate["groundingMetadata"]["webSearchQueries"] == ["a red bicycle"]
    assert gemini_image(answer).size == (1536, 864)  # 4K 16:9, capped at 1536 on the long side
    assert answer["modelVersion"] == "gemini-3-pro-image"
    usage = answer["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] + 40

    [recorded] = gemini.calls(":generateContent")
    assert recorded.method == "POST" and recorded.path == GEMINI_PATH
    assert recorded.headers["x-goog-api-key"] == KEY
    assert recorded.json == body


def test_gemini_rejects_bad_keys_and_unknown_models(gemini: GeminiSimulator) -> None:
    gemini.models = {"gemini-3-pro-image"}
    with httpx.Client(base_url=gemini.url) as client:
        bad_key = client.post(GEMINI_PATH, json=GEMINI_BODY, headers={"x-goog-api-key": "nope"})
        by_query = client.post(GEMINI_PATH, json=GEMINI_BODY, params={"key": KEY})
        unknown = client.post("/v1beta/models/xyz:generateContent", json=GEMINI_BODY, params={"key": KEY})
    assert bad_key.status_code == 400
    assert bad_key.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert by_query.status_code == 200
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "code": 404,
        "message": "models/xyz is not found for API version v1beta, or is not supported for generateContent.",
        "status": "NOT_FOUND",
    }
    assert len(gemini.requests) == 3  # refused requests are recorded too


def test_gemini_streams_sse(gemini: GeminiSimulator) -> None:
    path = "/v1beta/models/gemini-3-pro-image:streamGenerateContent"
    with gemini_client(gemini) as client:
        response = client.post(path, params={"alt": "sse"}, json=GEMINI_BODY)
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert chunks and chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert gemini_image(chunks[0]).size == (1024, 1024)
    assert gemini.calls()[0].query == {"alt": "sse"}


def test_gemini_interactions_are_created_and_stored(gemini: GeminiSimulator) -> None:
    body = {
        "model": "gemini-3-pro-image",
        "input": [{"type": "text", "text": "a lighthouse"}],
        "response_format": {"type": "image", "aspect_ratio": "3:4", "image_size": "1K"},
        "generation_config": {"thinking_level": "high"},
    }
    with gemini_client(gemini) as client:
        created = client.post("/v1beta/interactions", json=body).raise_for_status().json()
        fetched = client.get(f"/v1beta/interactions/{created['id']}")
        missing = client.get("/v1beta/interactions/int_999")
        follow_up = client.post("/v1beta/interactions", json={**body, "previous_interaction_id": "int_999"})
    assert created["status"] == "completed" and created["id"].startswith("int_")
    thought, output = created["steps"]
    assert thought["type"] == "thought" and thought["signature"] in gemini.issued_signatures
    image = output["content"][0]
    assert image["mime_type"] == "image/png"
    assert decode(base64.b64decode(image["data"])).size == (768, 1024)
    assert fetched.json() == created
    assert missing.status_code == 404 and follow_up.status_code == 404


# -- OpenAI ----------------------------------------------------------------------------------------------


def test_openai_generations_in_url_and_b64_modes(openai_sim: OpenAISimulator) -> None:
    with bearer_client(openai_sim) as client:
        by_url = client.post(
            "/v1/images/generations", json={"model": "m", "prompt": "a fox", "n": 2, "size": "1024x1536"}
        ).json()
        inline = client.post(
            "/v1/images/generations",
            json={"prompt": "a fox", "response_format": "b64_json", "output_format": "jpeg"},
        ).json()
        downloaded = httpx.get(by_url["data"][0]["url"])  # no auth needed for files

    assert [set(item) for item in by_url["data"]] == [{"url", "revised_prompt"}] * 2
    assert by_url["size"] == "1024x1536" and by_url["usage"]["total_tokens"] > 0
    assert decode(downloaded.content).size == (1024, 1536)
    assert inline["size"] == "64x64" and inline["output_format"] == "jpeg"
    assert decode(base64.b64decode(inline["data"][0]["b64_json"])).format == "JPEG"
    assert openai_sim.calls("/files/")[0].method == "GET"


def test_openai_rejects_sizes_and_masks_wrong_keys(openai_sim: OpenAISimulator) -> None:
    openai_sim.sizes = {"1024x1024", "1024x1536", "1536x1024"}
    with bearer_client(openai_sim) as client:
        bad_size = client.post("/v1/images/generations", json={"prompt": "p", "size": "640x480"})
    wrong_key = httpx.post(
        f"{openai_sim.url}/v1/images/generations",
        json={"prompt": "p"},
        headers={"authorization": "Bearer sk-wrong-key-abcxyz"},
    )
    assert bad_size.status_code == 400
    assert bad_size.json()["error"] == {
        "message": "Invalid size '640x480'. Supported sizes are 1024x1024, 1024x1536, 1536x1024, and auto.",
        "type": "invalid_request_error",
        "param": "size",
        "code": "invalid_size",
    }
    assert wrong_key.status_code == 401
    error = wrong_key.json()["error"]
    assert error["code"] == "invalid_api_key" and "sk-...xyz" in error["message"]
    assert "sk-wrong-key-abcxyz" not in wrong_key.text


def test_openai_edits_record_multipart_files(openai_sim: OpenAISimulator) -> None:
    files = [("image[]", ("a.png", b"first", "image/png")), ("image[]", ("b.png", b"second", "image/png"))]
    with bearer_client(openai_sim) as client:
        answer = client.post(
            "/v1/images/edits",
            data={"prompt": "make it blue", "response_format": "b64_json"},
            files=[*files, ("mask", ("m.png", b"mask", "image/png"))],
        ).json()
    assert len(answer["data"]) == 1
    [recorded] = openai_sim.calls("/edits")
    assert recorded.form == {"prompt": ["make it blue"], "response_format": ["b64_json"]}
    assert recorded.files is not None
    assert recorded.files["image[]"] == [("a.png", "image/png", b"first"), ("b.png", "image/png", b"second")]
    assert recorded.files["mask"] == [("m.png", "image/png", b"mask")]


def test_openai_async_tasks_complete_or_fail(openai_sim: OpenAISimulator) -> None:
    openai_sim.async_duration = 0.2
    openai_sim.fail_task_next("the model refused")
    with bearer_client(openai_sim) as client:
        failing = client.post("/v1/images/generations", json={"prompt": "p", "async": True}).json()
        working = client.post("/v1/images/generations", json={"prompt": "p", "async": True}).json()
        assert working["status"] == "queued" and working["object"] == "generation.task"
        assert client.get(f"/v1/tasks/{working['id']}").json()["status"] in ("queued", "processing")
        time.sleep(0.25)
        failed = client.get(f"/v1/tasks/{failing['id']}").json()
        done = client.get(f"/v1/tasks/{working['id']}").json()
        unknown = client.get("/v1/tasks/task_nope")
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "generation_failed", "message": "the model refused"}
    assert done["status"] == "completed" and done["progress"] == 100 and done["data"][0]["url"]
    assert unknown.status_code == 404 and "error" in unknown.json()


# -- task gateway ----------------------------------------------------------------------------------------


def test_task_gateway_lifecycle_and_expiring_results(
    tasks: TaskGatewaySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows of a second, and the end of the task awaited: with windows of 0.2-0.3 s, a loaded machine
    # (four test workers on two cores) polled after the task had ended or downloaded after the URL expired.
    monkeypatch.setattr(tasks, "task_duration", 1.0)
    monkeypatch.setattr(tasks, "url_ttl", 1.0)
    with bearer_client(tasks) as client:
        created = client.post(
            "/v1/images/generations",
            json={
                "model": "m",
                "prompt": "a moon",
                "size": "16:9",
                "resolution": "2K",
                "metadata": {"k": "v"},
            },
        ).json()
        assert created["status"] == "queued" and created["id"].startswith("task_img_")
        running = client.get(f"/v1/images/generations/{created['id']}").json()
        deadline = time.monotonic() + 30
        while (done := client.get(f"/v1/images/generations/{created['id']}").json())["status"] != "completed":
            assert time.monotonic() < deadline, done
            time.sleep(0.05)
        image = httpx.get(done["url"])
        time.sleep(1.1)  # the URL expires a second after the task completed, which was before the download
        expired = httpx.get(done["url"])
    assert running["status"] == "in_progress" and running["progress"] == 50
    assert done["expires_at"] >= done["completed_at"]
    [item] = done["result"]["data"]
    assert decode(image.content).size == (item["width"], item["height"]) == (1536, 864)
    assert expired.status_code == 403 and b"<Code>AccessDenied</Code>" in expired.content
    assert len(tasks.calls("/results/")) == 2


def test_task_gateway_failures_cancels_and_auth(tasks: TaskGatewaySimulator) -> None:
    tasks.fail_task_next("content_policy", "refused")
    with bearer_client(tasks) as client:
        failing = client.post("/v1/images/generations", json={"model": "m", "prompt": "p"}).json()
        cancelling = client.post("/v1/images/generations", json={"model": "m", "prompt": "p"}).json()
        cancelled = client.post(f"/v1/images/generations/{cancelling['id']}/cancel").json()
        time.sleep(0.25)
        failed = client.get(f"/v1/images/generations/{failing['id']}").json()
        bad_ratio = client.post("/v1/images/generations", json={"model": "m", "prompt": "p", "size": "wide"})
    unauthorized = httpx.post(f"{tasks.url}/v1/images/generations", json={"model": "m", "prompt": "p"})
    assert failed["status"] == "failed" and failed["error"] == {
        "code": "content_policy",
        "message": "refused",
    }
    assert cancelled["status"] == "cancelled" and tasks.cancelled_ids == [cancelling["id"]]
    assert bad_ratio.status_code == 400 and bad_ratio.json()["error"]["type"] == "invalid_request_error"
    assert unauthorized.status_code == 401
    assert unauthorized.json()["error"]["type"] == "authentication_error"


# -- faults ----------------------------------------------------------------------------------------------


def test_429_carries_retry_after_only_when_asked(openai_sim: OpenAISimulator) -> None:
    openai_sim.fail_next("429")
    openai_sim.fail_next("429", retry_after=2)
    with bearer_client(openai_sim) as client:
        plain = client.post("/v1/images/generations", json={"prompt": "p"})
        with_header = client.post("/v1/images/generations", json={"prompt": "p"})
        normal = client.post("/v1/images/generations", json={"prompt": "p"})
    assert plain.status_code == 429 and "retry-after" not in plain.headers
    assert plain.json()["error"]["message"] == "Rate limit reached for images per minute."
    assert with_header.status_code == 429 and with_header.headers["retry-after"] == "2"
    assert normal.status_code == 200


@pytest.mark.parametrize(
    ("fault", "status", "google_status"),
    [("400", 400, "INVALID_ARGUMENT"), ("500", 500, "INTERNAL"), ("503", 503, "UNAVAILABLE")],
)
def test_status_faults_use_the_vendor_error_shape(
    gemini: GeminiSimulator, fault: str, status: int, google_status: str
) -> None:
    gemini.fail_next(fault, times=2)
    with gemini_client(gemini) as client:
        answers = [client.post(GEMINI_PATH, json=GEMINI_BODY) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [status, status, 200]
    error = answers[0].json()["error"]
    assert error["code"] == status and error["status"] == google_status
    if fault == "400":
        assert error["message"].startswith("simulated bad request: ")


def test_html_fault_answers_a_proxy_page(tasks: TaskGatewaySimulator) -> None:
    tasks.fail_next("html")
    with bearer_client(tasks) as client:
        response = client.post("/v1/images/generations", json={"model": "m", "prompt": "p"})
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "nginx" in response.text


def test_cut_fault_breaks_the_body(openai_sim: OpenAISimulator) -> None:
    openai_sim.fail_next("cut")
    with bearer_client(openai_sim) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/v1/images/generations", json={"prompt": "p", "response_format": "b64_json"})
        assert client.post("/v1/images/generations", json={"prompt": "p"}).status_code == 200


def test_hang_fault_is_released_by_seconds(gemini: GeminiSimulator) -> None:
    gemini.fail_next("hang", seconds=0.3)
    started = time.monotonic()
    with gemini_client(gemini) as client:
        response = client.post(GEMINI_PATH, json=GEMINI_BODY)
    assert 0.3 <= time.monotonic() - started < 2
    assert response.status_code == 200 and gemini_image(response.json()).size == (1024, 1024)


def test_stop_does_not_wait_for_a_hung_request() -> None:
    sim = GeminiSimulator().start()
    sim.fail_next("hang")  # an hour
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.post(f"{sim.url}{GEMINI_PATH}", json=GEMINI_BODY, timeout=10).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while not sim.requests:
        time.sleep(0.01)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 2.5
    caller.join(timeout=5)
    # uvicorn cancels the hung handler and, as nothing was sent yet, answers its plain-text 500.
    assert outcome and outcome[0] != 200


@pytest.mark.parametrize("fault", ["no_image", "bad_base64", "not_image"])
def test_payload_faults_break_only_the_image(gemini: GeminiSimulator, fault: str) -> None:
    gemini.fail_next(fault)
    with gemini_client(gemini) as client:
        answer = client.post(GEMINI_PATH, json=GEMINI_BODY).raise_for_status().json()
    parts = answer["candidates"][0]["content"]["parts"]
    inline = [part["inlineData"]["data"] for part in parts if "inlineData" in part]
    if fault == "no_image":
        assert inline == [] and parts[0]["text"]
    elif fault == "bad_base64":
        assert inline == ["!!!notbase64"]
    else:
        assert base64.b64decode(inline[0]) == b"hello world"


def test_faults_skip_polls_unless_aimed_at_them(tasks: TaskGatewaySimulator) -> None:
    tasks.fail_next("503", path_contains="/v1/images/generations/")
    tasks.fail_next("500")
    with bearer_client(tasks) as client:
        create_failed = client.post("/v1/images/generations", json={"model": "m", "prompt": "p"})
        created = client.post("/v1/images/generations", json={"model": "m", "prompt": "p"}).json()
        poll_failed = client.get(f"/v1/images/generations/{created['id']}")
        poll = client.get(f"/v1/images/generations/{created['id']}")
    assert (create_failed.status_code, poll_failed.status_code, poll.status_code) == (500, 503, 200)
    assert poll_failed.json()["error"]["type"] == "server_error"
    assert tasks.pending_faults() == []


def test_delay_is_measured_as_concurrency_and_reset_forgets(openai_sim: OpenAISimulator) -> None:
    openai_sim.delay = 0.3
    openai_sim.fail_next("500", times=5)

    def call() -> None:
        with bearer_client(openai_sim) as client:
            client.post("/v1/images/generations", json={"prompt": "p"})

    callers = [threading.Thread(target=call) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=5)
    assert openai_sim.max_in_flight == 3 and len(openai_sim.requests) == 3
    openai_sim.reset()
    assert openai_sim.requests == [] and openai_sim.pending_faults() == [] and openai_sim.max_in_flight == 0


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        GeminiSimulator().fail_next("teapot")
