"""The ``openai`` provider against an OpenAI Images simulator, through a real pixelgate server: the exact
upstream request for each dialect, edits as multipart, the async task mode, URL answers, usage passed
through, format conversion, 429s, failover, cooldown, a per-channel concurrency limit held under 50
concurrent requests, a chained pair of pixelgate servers, and the channel key kept secret."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import types
from PIL import Image

from conftest import MakeServer, ServerProcess, db_rows, png_bytes
from pixelgate.catalog import default_catalog
from upstreams import OpenAISimulator, Recorded
from upstreams.faults import Fault

KEY = "k-secret-123"
ENV = {"SIM_KEY": KEY}
FLASH = "gemini-3.1-flash-image"
LITE = "gemini-3.1-flash-lite-image"
PRO = "gemini-3-pro-image"
NANO = "gemini-2.5-flash-image"
NARROW = "gemini-3.1-flash-image-preview-official"
GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
SIZES = ["1024x1024", "1536x1024", "1024x1536"]


class TimedList(list[Recorded]):
    """The simulator's request log, noting when each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, recorded: Recorded) -> None:
        self.times.append(time.monotonic())
        super().append(recorded)

    def clear(self) -> None:
        self.times.clear()
        super().clear()


class OpenAIUpstream(OpenAISimulator):
    """The simulator, noting when each request arrived, and able to ignore the output_format it is asked
    for (an upstream that only makes PNG)."""

    force_png = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.requests = TimedList()

    def arrivals(self, path_contains: str) -> list[float]:
        """time.monotonic() of each request whose path contains ``path_contains``."""
        with self._lock:
            assert isinstance(self.requests, TimedList)
            return [
                t for t, r in zip(self.requests.times, self.requests, strict=True) if path_contains in r.path
            ]

    def _images_body(
        self,
        prompt: str,
        count: int,
        width: int,
        height: int,
        response_format: str,
        output_format: str,
        fault: Fault | None,
    ) -> dict[str, Any]:
        if self.force_png:
            output_format = "png"
        return super()._images_body(prompt, count, width, height, response_format, output_format, fault)


# -- helpers -------------------------------------------------------------------------------------------


def channel(name: str, url: str, *, extra: str = "") -> str:
    return (
        f'[[channels]]\nname = "{name}"\nprovider = "openai"\nbase_url = "{url}/v1"\n'
        f'api_key_env = "SIM_KEY"\n{extra}\n'
    )


def start(make_server: MakeServer, tmp: Path, toml: str) -> ServerProcess:
    path = tmp / "pixelgate.toml"
    path.write_text(toml)
    return make_server("sqlite", "--no-auth", "--config", str(path), env=ENV)


def sdk(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=60)


def genai_client(server: ServerProcess) -> genai.Client:
    options = types.HttpOptions(
        base_url=server.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key="x", http_options=options)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def b64_image(response: Any) -> Image.Image:
    assert response.data is not None and len(response.data) == 1
    return decode(base64.b64decode(response.data[0].b64_json or ""))


def genai_image(response: types.GenerateContentResponse) -> Image.Image:
    assert response.candidates and response.candidates[0].content
    parts = response.candidates[0].content.parts or []
    images = [p for p in parts if p.inline_data is not None and not p.thought]
    assert len(images) == 1, parts
    assert images[0].inline_data is not None and images[0].inline_data.data
    return decode(images[0].inline_data.data)


def wait_task(http: httpx.Client, path: str, timeout: float = 30.0) -> dict[str, Any]:
    """GET ``path`` until the task is no longer queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = http.get(path).json()
        if body["status"] not in ("queued", "in_progress", "processing"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"{path} did not finish in {timeout} s")


def only_body(sim: OpenAISimulator, path: str = GENERATIONS) -> dict[str, Any]:
    calls = sim.calls(path)
    assert len(calls) == 1, [c.path for c in sim.calls()]
    assert calls[0].headers["authorization"] == f"Bearer {KEY}"
    body = calls[0].json
    assert isinstance(body, dict)
    return body


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert isinstance(body, dict)
    error: dict[str, Any] = body["error"]
    return error


# -- one server, one simulator, a channel per behaviour --------------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream(api_key=KEY) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def server(
    sim: OpenAIUpstream, make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # failure_threshold is high so that tests which make the one channel fail on purpose never cool it
    # down for the tests after them; cooldown has its own server below.
    toml = (
        "[routing]\nmax_attempts = 3\nbackoff_seconds = 0.05\nmax_backoff_seconds = 0.5\n"
        "max_wait_seconds = 30\nfailure_threshold = 100\n\n"
        + channel("openai-exact", sim.url, extra=f'models = ["{FLASH}"]')
        + channel(
            "openai-sized", sim.url, extra=f'models = ["{LITE}"]\noptions = {{ sizes = {json.dumps(SIZES)} }}'
        )
        + channel(
            "openai-async",
            sim.url,
            extra=f'models = ["{PRO}"]\noptions = {{ async = true, poll_interval = 0.05, max_poll_interval = 0.1 }}',
        )
        + channel(
            "openai-url",
            sim.url,
            extra=f'models = {{ "{NANO}" = "nano-banana" }}\noptions = {{ response_format = "omit" }}',
        )
        + channel("openai-narrow", sim.url, extra=f'models = ["{NARROW}"]\nconcurrency = 3')
    )
    server = start(make_server, tmp_path_factory.mktemp("openai-provider"), toml)
    yield server
    server.stop()


@pytest.fixture()
def upstream(sim: OpenAIUpstream) -> Iterator[OpenAIUpstream]:
    sim.reset()
    sim.tasks.clear()
    yield sim
    sim.force_png = False
    sim.delay = 0.0
    sim.api_key = KEY
    sim.default_response_format = "url"
    sim.async_duration = 0.3
    sim.tasks.clear()


@pytest.fixture()
def client(server: ServerProcess) -> openai.OpenAI:
    return sdk(server)


@pytest.fixture()
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


# -- the exact upstream request ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("aspect_ratio", "image_size", "size"),
    [
        ("16:9", "2K", "2752x1536"),
        ("21:9", "512", "792x336"),
        ("1:1", "1K", "1024x1024"),
        ("9:16", "4K", "3072x5504"),
        ("4:1", "2K", "4096x1024"),
    ],
)
def test_text_to_image_sends_the_catalog_pixels(
    upstream: OpenAIUpstream, client: openai.OpenAI, aspect_ratio: str, image_size: str, size: str
) -> None:
    response = client.images.generate(
        model=FLASH,
        prompt="a lighthouse at dusk",
        size=aspect_ratio,
        response_format="b64_json",
        extra_body={"resolution": image_size},
    )
    assert only_body(upstream) == {
        "model": FLASH,
        "prompt": "a lighthouse at dusk",
        "n": 1,
        "size": size,
        "response_format": "b64_json",
    }
    # The simulator caps its pictures at 1536 px; pixelgate hands on what the upstream made.
    width, height = (int(side) for side in size.split("x"))
    scale = min(1.0, 1536 / max(width, height))
    assert b64_image(response).size == (round(width * scale), round(height * scale))


def test_every_aspect_ratio_and_size_is_sent_as_its_pixels(
    upstream: OpenAIUpstream, client: openai.OpenAI
) -> None:
    spec = default_catalog().get(FLASH)
    sent = {}
    for aspect_ratio in spec.aspect_ratios:
        for image_size in spec.image_sizes:
            client.images.generate(
                model=FLASH,
                prompt="a grid of tiles",
                size=aspect_ratio,
                response_format="b64_json",
                extra_body={"resolution": image_size},
            )
            sent[aspect_ratio, image_size] = only_body(upstream)["size"]
            upstream.reset()
    assert sent == {
        key: "{}x{}".format(*spec.output_pixels(*key))
        for key in ((a, s) for a in spec.aspect_ratios for s in spec.image_sizes)
    }


@pytest.mark.parametrize(
    ("aspect_ratio", "sent"),
    [
        ("16:9", "1536x1024"),
        ("9:16", "1024x1536"),
        ("1:1", "1024x1024"),
        ("4:3", "1536x1024"),
        ("3:4", "1024x1536"),
    ],
)
def test_a_channel_with_sizes_gets_the_nearest(
    upstream: OpenAIUpstream, client: openai.OpenAI, aspect_ratio: str, sent: str
) -> None:
    response = client.images.generate(
        model=LITE,
        prompt="a red kite",
        size=aspect_ratio,
        response_format="b64_json",
    )
    assert only_body(upstream) == {
        "model": LITE,
        "prompt": "a red kite",
        "n": 1,
        "size": sent,
        "response_format": "b64_json",
    }
    assert b64_image(response).size == tuple(int(side) for side in sent.split("x"))


EXPECTED_16_9_2K = {
    "model": FLASH,
    "prompt": "a harbour at night",
    "n": 1,
    "size": "2752x1536",
    "response_format": "b64_json",
}


def test_openai_sdk_dialect(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    response = client.images.generate(
        model=FLASH,
        prompt="a harbour at night",
        size="16:9",
        response_format="b64_json",
        extra_body={"resolution": "2K"},
    )
    assert only_body(upstream) == EXPECTED_16_9_2K
    assert b64_image(response).size == (1536, 857)


def test_openai_sdk_wxh_size_dialect(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    """A client's WxH is mapped to the catalog first (2752x1536 is 16:9 at 2K), then sent as the catalog's."""
    client.images.generate(
        model=FLASH, prompt="a harbour at night", size="2752x1536", response_format="b64_json"
    )
    assert only_body(upstream) == EXPECTED_16_9_2K


def test_google_genai_dialect(upstream: OpenAIUpstream, server: ServerProcess) -> None:
    google = genai_client(server)  # kept: the SDK closes its HTTP client when the Client is collected
    response = google.models.generate_content(
        model=FLASH,
        contents="a harbour at night",
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"),
        ),
    )
    assert only_body(upstream) == EXPECTED_16_9_2K
    assert genai_image(response).size == (1536, 857)


def test_task_style_dialect(upstream: OpenAIUpstream, http: httpx.Client) -> None:
    created = http.post(
        GENERATIONS, json={"model": FLASH, "prompt": "a harbour at night", "size": "16:9", "resolution": "2K"}
    )
    assert created.status_code == 200, created.text
    task = wait_task(http, f"{GENERATIONS}/{created.json()['id']}")
    assert task["status"] == "completed", task
    assert only_body(upstream) == EXPECTED_16_9_2K
    fetched = http.get(task["result"]["data"][0]["url"])
    assert fetched.status_code == 200
    assert decode(fetched.content).size == (1536, 857)


# -- edits ---------------------------------------------------------------------------------------------


def test_edit_sends_multipart_with_the_exact_bytes(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    first = png_bytes(64, 48, (200, 40, 40))
    second = png_bytes(64, 48, (0, 0, 255))
    mask = png_bytes(64, 48, (0, 0, 0))
    response = client.images.edit(
        model=FLASH,
        prompt="put these together",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        mask=("mask.png", mask, "image/png"),
        size="1536x1024",
        response_format="b64_json",
    )
    assert upstream.calls(GENERATIONS) == []
    calls = upstream.calls(EDITS)
    assert len(calls) == 1
    call = calls[0]
    assert call.headers["content-type"].startswith("multipart/form-data")
    assert call.headers["authorization"] == f"Bearer {KEY}"
    assert call.form == {
        "model": [FLASH],
        "prompt": ["put these together"],
        "n": ["1"],
        "size": ["1264x848"],  # 1536x1024 is 3:2 at 1K in the catalog
        "response_format": ["b64_json"],
    }
    assert call.files is not None
    assert set(call.files) == {"image[]", "mask"}
    assert [(kind, data) for _, kind, data in call.files["image[]"]] == [
        ("image/png", first),
        ("image/png", second),
    ]
    assert [(kind, data) for _, kind, data in call.files["mask"]] == [("image/png", mask)]
    assert b64_image(response).size == (1264, 848)


# -- async mode ----------------------------------------------------------------------------------------


def test_async_mode_polls_the_upstream_task(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    response = client.images.generate(
        model=PRO,
        prompt="a snowy owl",
        size="1:1",
        response_format="b64_json",
    )
    assert only_body(upstream) == {
        "model": PRO,
        "prompt": "a snowy owl",
        "n": 1,
        "size": "1024x1024",
        "response_format": "b64_json",
        "async": True,
    }
    polls = upstream.calls("/v1/tasks/")
    assert polls, "pixelgate never polled the upstream task"
    (task_id,) = upstream.tasks
    assert {call.path for call in polls} == {f"/v1/tasks/{task_id}"}
    assert all(call.headers["authorization"] == f"Bearer {KEY}" for call in polls)
    assert b64_image(response).size == (1024, 1024)


def test_async_mode_edit_sends_async_as_a_form_field(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    reference = png_bytes(48, 64)
    response = client.images.edit(
        model=PRO,
        prompt="make it winter",
        image=("a.png", reference, "image/png"),
        response_format="b64_json",
    )
    (call,) = upstream.calls(EDITS)
    assert call.form == {
        "model": [PRO],
        "prompt": ["make it winter"],
        "n": ["1"],
        "size": ["896x1200"],  # no size asked: the nearest to the reference's 3:4 shape, at 1K
        "response_format": ["b64_json"],
        "async": ["true"],
    }
    assert call.files is not None and [data for _, _, data in call.files["image[]"]] == [reference]
    assert upstream.calls("/v1/tasks/")
    assert b64_image(response).size == (896, 1200)


def test_cancelling_an_async_task_cancels_upstream(upstream: OpenAIUpstream, http: httpx.Client) -> None:
    upstream.async_duration = 5.0
    created = http.post(
        GENERATIONS, json={"model": PRO, "prompt": "never mind", "size": "1:1", "async": True}
    )
    assert created.status_code == 200, created.text
    deadline = time.monotonic() + 5
    while not upstream.calls("/v1/tasks/") and time.monotonic() < deadline:
        time.sleep(0.02)
    (upstream_id,) = upstream.tasks
    cancelled = http.post(f"/v1/tasks/{created.json()['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    deadline = time.monotonic() + 2
    while not upstream.calls("/cancel") and time.monotonic() < deadline:
        time.sleep(0.02)
    # The simulator has no cancel endpoint (it answers 404), but pixelgate asks, with the channel's key.
    (cancel,) = upstream.calls("/cancel")
    assert (cancel.method, cancel.path) == ("POST", f"/v1/tasks/{upstream_id}/cancel")
    assert cancel.headers["authorization"] == f"Bearer {KEY}"


def test_async_task_that_fails_once_is_retried(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    """A failed upstream task (code generation_failed) is the channel's failure: the router tries again."""
    upstream.fail_task_next("the GPU caught fire")
    response = client.images.generate(model=PRO, prompt="a snowy owl", size="1:1", response_format="b64_json")
    assert b64_image(response).size == (1024, 1024)
    assert len(upstream.calls(GENERATIONS)) == 2


def test_async_task_that_keeps_failing_reaches_the_client(
    upstream: OpenAIUpstream, client: openai.OpenAI, http: httpx.Client
) -> None:
    upstream.fail_task_next("the GPU caught fire", times=3)
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=PRO, prompt="a snowy owl", size="1:1", response_format="b64_json")
    assert caught.value.status_code == 502
    error = error_of(caught.value)
    assert error["code"] == "upstream_task_failed"
    assert "the GPU caught fire" in error["message"]
    assert "channel 'openai-async'" in error["message"]
    assert "gave up after 3 attempts" in error["message"]
    assert len(upstream.calls(GENERATIONS)) == 3

    # The same through the async API: the task is failed, with the message and no result or usage.
    upstream.reset()
    upstream.fail_task_next("the GPU caught fire", times=3)
    created = http.post(
        GENERATIONS, json={"model": PRO, "prompt": "a snowy owl", "size": "1:1", "async": True}
    )
    assert created.status_code == 200, created.text
    task = wait_task(http, f"/v1/tasks/{created.json()['id']}")
    assert task["status"] == "failed"
    assert task["error"]["code"] == "upstream_task_failed"
    assert "the GPU caught fire" in task["error"]["message"]
    assert "data" not in task and "usage" not in task


# -- URL answers, usage, output format -----------------------------------------------------------------


def test_url_answer_is_downloaded(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    # The channel omits response_format (as gpt-image upstreams want); this upstream then answers a URL.
    response = client.images.generate(
        model=NANO,
        prompt="a paper boat",
        size="16:9",
        response_format="b64_json",
    )
    assert only_body(upstream) == {
        "model": "nano-banana",  # the channel renames the model
        "prompt": "a paper boat",
        "n": 1,
        "size": "1344x768",
    }
    downloads = upstream.calls("/files/")
    assert len(downloads) == 1
    assert "authorization" not in downloads[0].headers, "result URLs are fetched without the channel key"
    assert b64_image(response).size == (1344, 768)


def test_upstream_usage_passes_through(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    prompt = "four words of prompt"
    response = client.images.generate(model=FLASH, prompt=prompt, size="1:1", response_format="b64_json")
    assert response.usage is not None
    # The simulator's own counts (1056 per image, one per word), not the catalog's 1120 for Flash at 1K.
    assert response.usage.output_tokens == 1056
    assert response.usage.input_tokens == 4
    assert response.usage.total_tokens == 1060
    assert response.usage.input_tokens_details.text_tokens == 4
    assert response.usage.input_tokens_details.image_tokens == 0


def test_jpeg_is_delivered_even_when_the_upstream_answers_png(
    upstream: OpenAIUpstream, client: openai.OpenAI
) -> None:
    upstream.force_png = True
    response = client.images.generate(
        model=FLASH,
        prompt="a bowl of cherries",
        size="1:1",
        response_format="b64_json",
        output_format="jpeg",
    )
    assert only_body(upstream)["output_format"] == "jpeg"
    assert response.data and response.data[0].b64_json
    raw = base64.b64decode(response.data[0].b64_json)
    assert raw[:3] == b"\xff\xd8\xff"
    assert decode(raw).format == "JPEG"
    assert response.output_format == "jpeg"


# -- 429s ----------------------------------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    upstream.fail_next("429", retry_after=1)
    response = client.images.generate(model=FLASH, prompt="patience", size="1:1", response_format="b64_json")
    assert b64_image(response).size == (1024, 1024)
    assert len(upstream.calls(GENERATIONS)) == 2
    first, second = upstream.arrivals(GENERATIONS)
    assert second - first >= 0.9, f"the retry came {second - first:.2f} s after a 429 with Retry-After: 1"


def test_429_without_retry_after_backs_off(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    upstream.fail_next("429")
    response = client.images.generate(model=FLASH, prompt="patience", size="1:1", response_format="b64_json")
    assert b64_image(response).size == (1024, 1024)
    assert len(upstream.calls(GENERATIONS)) == 2
    # A backoff of backoff_seconds = 0.05 (with jitter) from the channel file, not the 1 s default.
    first, second = upstream.arrivals(GENERATIONS)
    assert 0.03 <= second - first < 0.8


def test_429_forever_reaches_the_client_as_429(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    upstream.fail_next("429", times=3)
    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(model=FLASH, prompt="patience", size="1:1", response_format="b64_json")
    assert caught.value.status_code == 429
    error = error_of(caught.value)
    assert error["type"] == "rate_limit_exceeded"
    assert "channel 'openai-exact'" in error["message"] and "429" in error["message"]
    assert len(upstream.calls(GENERATIONS)) == 3  # max_attempts = 3
    assert upstream.pending_faults() == []


# -- errors and secrecy --------------------------------------------------------------------------------


def test_upstream_400_is_passed_on_and_not_retried(upstream: OpenAIUpstream, client: openai.OpenAI) -> None:
    upstream.fail_next("400")
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model=FLASH, prompt="x", size="1:1", response_format="b64_json")
    assert "simulated bad request" in error_of(caught.value)["message"]
    assert len(upstream.calls(GENERATIONS)) == 1


def test_wrong_key_is_upstream_auth_failed_and_the_key_stays_secret(
    upstream: OpenAIUpstream, server: ServerProcess, client: openai.OpenAI
) -> None:
    upstream.api_key = "k-the-upstream-wants-this-one"
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=FLASH, prompt="x", size="1:1", response_format="b64_json")
    assert caught.value.status_code == 502
    error = error_of(caught.value)
    assert error["code"] == "upstream_auth_failed"
    assert "channel 'openai-exact'" in error["message"]
    calls = upstream.calls(GENERATIONS)
    assert calls and all(c.headers["authorization"] == f"Bearer {KEY}" for c in calls)
    assert KEY not in caught.value.response.text
    assert KEY not in json.dumps(dict(caught.value.response.headers))
    assert KEY not in server.log()


# -- per-channel concurrency ---------------------------------------------------------------------------


def test_channel_concurrency_is_held_under_50_requests(upstream: OpenAIUpstream, http: httpx.Client) -> None:
    upstream.delay = 0.2
    ids = []
    for number in range(50):
        created = http.post(
            GENERATIONS,
            json={"model": NARROW, "prompt": f"image {number}", "size": "1:1", "async": True},
        )
        assert created.status_code == 200, created.text
        ids.append(created.json()["id"])
    tasks = [wait_task(http, f"/v1/tasks/{task_id}", timeout=60) for task_id in ids]
    assert [t["status"] for t in tasks] == ["completed"] * 50
    assert len(upstream.calls(GENERATIONS)) == 50
    assert upstream.max_in_flight == 3


# -- failover and cooldown: two upstreams ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[OpenAIUpstream, OpenAIUpstream]]:
    with OpenAIUpstream(api_key=KEY) as first, OpenAIUpstream(api_key=KEY) as second:
        yield first, second


@pytest.fixture(scope="module")
def pair_server(
    pair: tuple[OpenAIUpstream, OpenAIUpstream],
    make_server: MakeServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    a, b = pair
    toml = (
        "[routing]\nmax_attempts = 3\nbackoff_seconds = 0.05\nfailure_threshold = 2\ncooldown_seconds = 60\n\n"
        + channel("a", a.url, extra="priority = 10\ntimeout = 2")
        + channel("b", b.url, extra="priority = 0")
    )
    server = start(make_server, tmp_path_factory.mktemp("openai-pair"), toml)
    yield server
    server.stop()


@pytest.fixture()
def two(pair: tuple[OpenAIUpstream, OpenAIUpstream]) -> tuple[OpenAIUpstream, OpenAIUpstream]:
    for sim in pair:
        sim.reset()
    return pair


def generate_one(client: openai.OpenAI) -> None:
    response = client.images.generate(
        model=FLASH, prompt="either will do", size="1:1", response_format="b64_json"
    )
    assert b64_image(response).size == (1024, 1024)


@pytest.mark.parametrize("fault", ["500", "503", "html", "cut", "no_image", "bad_base64", "not_image"])
def test_a_failure_fails_over_to_the_next_channel(
    two: tuple[OpenAIUpstream, OpenAIUpstream], pair_server: ServerProcess, fault: str
) -> None:
    a, b = two
    a.fail_next(fault)
    client = sdk(pair_server)
    generate_one(client)
    assert len(a.calls(GENERATIONS)) == 1
    assert len(b.calls(GENERATIONS)) == 1
    # One failure is below failure_threshold: a is still first in line (and its success resets it).
    generate_one(client)
    assert (len(a.calls(GENERATIONS)), len(b.calls(GENERATIONS))) == (2, 1)


def test_a_hanging_upstream_times_out_and_fails_over(
    two: tuple[OpenAIUpstream, OpenAIUpstream], pair_server: ServerProcess
) -> None:
    a, b = two
    a.fail_next("hang", seconds=60)
    client = sdk(pair_server)
    started = time.monotonic()
    generate_one(client)  # a hangs past its 2 s timeout; b answers
    assert 1.9 < time.monotonic() - started < 10
    assert (len(a.calls(GENERATIONS)), len(b.calls(GENERATIONS))) == (1, 1)
    generate_one(client)  # the worker goes on, and a (one failure, below the threshold) is first again
    assert (len(a.calls(GENERATIONS)), len(b.calls(GENERATIONS))) == (2, 1)


def test_a_failing_channel_cools_down(
    two: tuple[OpenAIUpstream, OpenAIUpstream], pair_server: ServerProcess
) -> None:
    a, b = two
    client = sdk(pair_server)
    generate_one(client)  # a success on a resets it, whatever earlier tests left
    assert (len(a.calls(GENERATIONS)), len(b.calls(GENERATIONS))) == (1, 0)

    a.fail_next("500", times=2)
    generate_one(client)
    generate_one(client)
    assert (len(a.calls(GENERATIONS)), len(b.calls(GENERATIONS))) == (3, 2)
    assert a.pending_faults() == []

    generate_one(client)  # two failures in a row: a cools down for 60 s, so this goes straight to b
    assert (len(a.calls(GENERATIONS)), len(b.calls(GENERATIONS))) == (3, 3)


# -- a chained pixelgate pair --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(
    make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    front = make_server("sqlite", "--emulate")
    toml = channel("pixelgate-a", front.url, extra=f'models = ["{FLASH}"]') + channel(
        "pixelgate-a-async",
        front.url,
        extra=f'models = ["{PRO}"]\noptions = {{ async = true, poll_interval = 0.05, max_poll_interval = 0.2 }}',
    )
    back = start(make_server, tmp_path_factory.mktemp("openai-chain"), toml)
    yield front, back
    back.stop()
    front.stop()


def emulated_tasks(server: ServerProcess, prompt: str) -> list[tuple[str, str]]:
    rows = db_rows(server, "SELECT model, status, request FROM tasks")
    found = []
    for model, status, request in rows:
        body = json.loads(request) if isinstance(request, str) else request
        if body.get("prompt") == prompt:
            found.append((model, status))
    return found


def test_chained_pixelgate_openai_sdk(chain: tuple[ServerProcess, ServerProcess]) -> None:
    front, back = chain
    response = sdk(back).images.generate(
        model=FLASH,
        prompt="a chained lighthouse",
        size="21:9",
        response_format="b64_json",
        extra_body={"resolution": "2K"},
    )
    assert b64_image(response).size == (3168, 1344)  # the emulator's exact pixels: no 1536 cap upstream
    assert response.usage is not None and response.usage.output_tokens == 1120  # the emulator's count
    assert emulated_tasks(front, "a chained lighthouse") == [(FLASH, "succeeded")]


def test_chained_pixelgate_google_genai_async_channel(chain: tuple[ServerProcess, ServerProcess]) -> None:
    front, back = chain
    google = genai_client(back)
    response = google.models.generate_content(
        model=PRO,
        contents="a chained harbour",
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="21:9", image_size="2K"),
        ),
    )
    assert genai_image(response).size == (3168, 1344)
    assert emulated_tasks(front, "a chained harbour") == [(PRO, "succeeded")]
