"""The ``tasks`` provider against the task-style gateway simulator (seeds 000-002), through a real pixelgate
server: the exact create body, polling until the task completes, one download per result URL, failed
upstream tasks (a refusal is not retried, a generation failure is), result URLs that expired or answer an
error page, cancellation passed upstream, 429s, and the channel key kept secret."""

from __future__ import annotations

import base64
import io
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

from conftest import MakeServer, ServerProcess, png_bytes
from pixelgate.catalog import default_catalog
from upstreams import TaskGatewaySimulator

KEY = "k-secret-123"
FLASH = "gemini-3.1-flash-image"
PRO_4K = "gemini-3-pro-image-preview-4k"
CREATE = "/v1/images/generations"
TASKS = "/v1/images/generations/"
TASK_DURATION = 0.1


@pytest.fixture(scope="module")
def sim() -> Iterator[TaskGatewaySimulator]:
    with TaskGatewaySimulator(api_key=KEY, task_duration=TASK_DURATION) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def server(
    sim: TaskGatewaySimulator, make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    # failure_threshold is high so that tests which make the one channel fail on purpose never cool it
    # down for the tests after them.
    path = tmp_path_factory.mktemp("tasks-provider") / "pixelgate.toml"
    path.write_text(
        "[routing]\nmax_attempts = 3\nbackoff_seconds = 0.05\nmax_backoff_seconds = 0.5\n"
        "max_wait_seconds = 30\nfailure_threshold = 100\n\n"
        f'[[channels]]\nname = "tasks-sim"\nprovider = "tasks"\nbase_url = "{sim.url}/v1"\n'
        'api_key_env = "SIM_KEY"\noptions = { poll_interval = 0.05, max_poll_interval = 0.2 }\n'
    )
    started = make_server("sqlite", "--no-auth", "--config", str(path), env={"SIM_KEY": KEY})
    yield started
    started.stop()


@pytest.fixture()
def upstream(sim: TaskGatewaySimulator) -> Iterator[TaskGatewaySimulator]:
    sim.reset()
    sim.cancelled_ids.clear()
    sim.tasks.clear()
    sim.results.clear()
    yield sim
    sim.task_duration = TASK_DURATION
    sim.url_ttl = 3600.0
    sim.api_key = KEY


@pytest.fixture()
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture()
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=60)


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def create_task(http: httpx.Client, **body: Any) -> str:
    created = http.post(CREATE, json=body)
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "queued"
    task_id: str = created.json()["id"]
    return task_id


def wait_task(http: httpx.Client, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = http.get(f"{TASKS}{task_id}").json()
        if body["status"] not in ("queued", "in_progress"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish in {timeout} s")


def create_bodies(sim: TaskGatewaySimulator) -> list[dict[str, Any]]:
    calls = sim.calls(CREATE)
    creates = [c for c in calls if c.method == "POST" and c.path == CREATE]
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in creates)
    return [c.json for c in creates if isinstance(c.json, dict)]


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    error: dict[str, Any] = exc.response.json()["error"]
    return error


# -- the exact create body -----------------------------------------------------------------------------


def test_create_body_with_alias_references_and_sampling(
    upstream: TaskGatewaySimulator, http: httpx.Client
) -> None:
    first = png_bytes(64, 48, (200, 40, 40))
    second = png_bytes(40, 40, (0, 90, 0))
    task_id = create_task(
        http,
        model=PRO_4K,
        prompt="merge the two",
        size="16:9",
        resolution="4K",
        reference_images=[data_uri(first), data_uri(second)],
        temperature=0.4,
        top_p=0.9,
        seed=7,
    )
    task = wait_task(http, task_id)
    assert task["status"] == "completed", task
    assert create_bodies(upstream) == [
        {
            "model": PRO_4K,  # the alias: the gateway knows it by this name
            "prompt": "merge the two",
            "size": "16:9",
            "resolution": "4K",
            "reference_images": [data_uri(first), data_uri(second)],
            "temperature": 0.4,
            "topP": 0.9,
            "seed": 7,
        }
    ]
    fetched = http.get(task["result"]["data"][0]["url"])
    assert fetched.status_code == 200
    assert decode(fetched.content).size == (1536, 864)  # 16:9 at 4K, capped at 1536 by the simulator


def test_every_aspect_ratio_and_size_reaches_the_gateway(
    upstream: TaskGatewaySimulator, http: httpx.Client
) -> None:
    """Every aspect ratio of Flash at each of the gateway's resolutions (it has no 512), submitted at
    once: each create body carries the pair as the seeds spell it, and each image comes back."""
    spec = default_catalog().get(FLASH)
    pairs = [(a, r) for a in spec.aspect_ratios for r in ("1K", "2K", "4K")]
    ids = {
        create_task(http, model=FLASH, prompt=f"tiles {a} {r}", size=a, resolution=r): (a, r)
        for a, r in pairs
    }
    for task_id in ids:
        assert wait_task(http, task_id)["status"] == "completed"
    sent = {(body["size"], body["resolution"]) for body in create_bodies(upstream)}
    assert sent == set(pairs)
    assert len(upstream.calls("/results/")) == len(pairs)


@pytest.mark.parametrize(
    ("model", "size", "resolution"),
    [
        (FLASH, "21:9", "2K"),
        (FLASH, "1:1", "1K"),
        (PRO_4K, "9:16", "4K"),
        ("gemini-2.5-flash-image", "3:2", "1K"),
    ],
)
def test_create_body_from_the_openai_sdk(
    upstream: TaskGatewaySimulator, client: openai.OpenAI, model: str, size: str, resolution: str
) -> None:
    response = client.images.generate(
        model=model,
        prompt="a quiet street",
        size=size,
        response_format="b64_json",
        extra_body={"resolution": resolution},
    )
    assert create_bodies(upstream) == [
        {"model": model, "prompt": "a quiet street", "size": size, "resolution": resolution}
    ]
    assert response.data and response.data[0].b64_json
    assert decode(base64.b64decode(response.data[0].b64_json)).format == "PNG"


def test_create_body_from_the_google_genai_sdk(upstream: TaskGatewaySimulator, server: ServerProcess) -> None:
    google = genai.Client(
        api_key="x",
        http_options=types.HttpOptions(
            base_url=server.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    response = google.models.generate_content(
        model=FLASH,
        contents="a tall ship",
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="9:16", image_size="2K"),
            temperature=0.3,
            top_p=0.8,
            seed=42,
        ),
    )
    assert create_bodies(upstream) == [
        {
            "model": FLASH,
            "prompt": "a tall ship",
            "size": "9:16",
            "resolution": "2K",
            "temperature": 0.3,
            "topP": 0.8,
            "seed": 42,
        }
    ]
    assert response.candidates and response.candidates[0].content
    parts = [p for p in response.candidates[0].content.parts or [] if p.inline_data is not None]
    assert len(parts) == 1 and parts[0].inline_data is not None and parts[0].inline_data.data
    assert decode(parts[0].inline_data.data).size == (864, 1536)


# -- polling and downloading ---------------------------------------------------------------------------


def test_polls_until_completed_and_downloads_once(upstream: TaskGatewaySimulator, http: httpx.Client) -> None:
    upstream.task_duration = 0.4
    task_id = create_task(http, model=FLASH, prompt="a red barn", size="4:3", resolution="1K")
    task = wait_task(http, task_id)
    assert task["status"] == "completed", task
    assert task["result"]["data"][0]["width"] == 1024 and task["result"]["data"][0]["height"] == 768
    (upstream_id,) = upstream.tasks
    polls = [c for c in upstream.calls(TASKS) if c.method == "GET"]
    assert len(polls) >= 2, "a 0.4 s task is polled more than once at 0.05 s growing by half"
    assert {c.path for c in polls} == {f"{TASKS}{upstream_id}"}
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in polls)
    downloads = upstream.calls("/results/")
    assert [c.path for c in downloads] == [f"/results/{upstream_id}-0.png"]
    assert "authorization" not in downloads[0].headers, "result URLs are fetched without the channel key"
    assert decode(http.get(task["url"]).content).size == (1024, 768)


def test_poll_misses_are_waited_out(upstream: TaskGatewaySimulator, http: httpx.Client) -> None:
    """A poll that fails does not fail the task: it runs on upstream whatever our GET met."""
    upstream.fail_next("500", times=2, path_contains="/v1/images/generations/task_img_")
    task = wait_task(http, create_task(http, model=FLASH, prompt="a red barn", size="1:1", resolution="1K"))
    assert task["status"] == "completed", task
    assert len(create_bodies(upstream)) == 1
    assert upstream.pending_faults() == []


# -- failed upstream tasks -----------------------------------------------------------------------------


def test_refused_task_is_a_400_and_not_retried(
    upstream: TaskGatewaySimulator, client: openai.OpenAI, http: httpx.Client
) -> None:
    upstream.fail_task_next("invalid_request_error", "the prompt asks for something not allowed")
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model=FLASH, prompt="x", size="1:1", response_format="b64_json")
    error = error_of(caught.value)
    assert error["code"] == "invalid_request_error"
    assert error["type"] == "invalid_request_error"
    assert "the prompt asks for something not allowed" in error["message"]
    assert len(create_bodies(upstream)) == 1

    # Through the task API: failed, the message kept, nothing to download and nothing charged.
    upstream.reset()
    upstream.fail_task_next("content_policy_violation", "no trademarks please")
    task = wait_task(http, create_task(http, model=FLASH, prompt="x", size="1:1", resolution="1K"))
    assert task["status"] == "failed"
    assert task["error"]["code"] == "content_policy_violation"
    assert "no trademarks please" in task["error"]["message"]
    assert "result" not in task and "url" not in task and "usage" not in task
    assert len(create_bodies(upstream)) == 1
    assert upstream.calls("/results/") == []


def test_failed_generation_is_retried(upstream: TaskGatewaySimulator, http: httpx.Client) -> None:
    upstream.fail_task_next("generation_failed", "the model produced nothing")
    task = wait_task(http, create_task(http, model=FLASH, prompt="a fox", size="1:1", resolution="1K"))
    assert task["status"] == "completed", task
    assert len(create_bodies(upstream)) == 2
    assert len(upstream.calls("/results/")) == 1


def test_failed_generation_every_time_fails_the_task(
    upstream: TaskGatewaySimulator, client: openai.OpenAI, http: httpx.Client
) -> None:
    upstream.fail_task_next("generation_failed", "the model produced nothing", times=3)
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=FLASH, prompt="a fox", size="1:1", response_format="b64_json")
    assert caught.value.status_code == 502
    error = error_of(caught.value)
    assert error["code"] == "upstream_task_failed"
    assert "channel 'tasks-sim'" in error["message"]
    assert "the model produced nothing" in error["message"]
    assert "gave up after 3 attempts" in error["message"]
    assert len(create_bodies(upstream)) == 3

    upstream.reset()
    upstream.fail_task_next("generation_failed", "the model produced nothing", times=3)
    task = wait_task(http, create_task(http, model=FLASH, prompt="a fox", size="1:1", resolution="1K"))
    assert task["status"] == "failed"
    assert task["error"]["code"] == "upstream_task_failed"
    assert "the model produced nothing" in task["error"]["message"]
    assert "result" not in task and "usage" not in task


# -- result URLs ---------------------------------------------------------------------------------------


def test_expired_result_url_is_a_clear_error(upstream: TaskGatewaySimulator, client: openai.OpenAI) -> None:
    upstream.url_ttl = 0.0  # every result URL has expired by the time anyone fetches it
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=FLASH, prompt="a fox", size="1:1", response_format="b64_json")
    assert caught.value.status_code == 502
    error = error_of(caught.value)
    assert error["code"] == "upstream_malformed"
    assert "channel 'tasks-sim'" in error["message"]
    assert "HTTP 403 for its result image" in error["message"]
    assert "Request has expired" in error["message"]
    creates = len(create_bodies(upstream))
    assert creates == 3
    assert len(upstream.calls("/results/")) == creates


def test_expired_result_url_error_does_not_call_xml_html(
    upstream: TaskGatewaySimulator, client: openai.OpenAI
) -> None:
    upstream.url_ttl = 0.0
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=FLASH, prompt="a fox", size="1:1", response_format="b64_json")
    message = error_of(caught.value)["message"]
    assert "Request has expired" in message
    assert "HTML" not in message


def test_error_page_for_a_result_is_retried(upstream: TaskGatewaySimulator, http: httpx.Client) -> None:
    upstream.fail_next("html", path_contains="/results/")
    task = wait_task(http, create_task(http, model=FLASH, prompt="a fox", size="1:1", resolution="1K"))
    assert task["status"] == "completed", task
    assert len(create_bodies(upstream)) == 2
    assert len(upstream.calls("/results/")) == 2


def test_error_page_for_every_result_names_it(upstream: TaskGatewaySimulator, http: httpx.Client) -> None:
    upstream.fail_next("html", times=3, path_contains="/results/")
    task = wait_task(http, create_task(http, model=FLASH, prompt="a fox", size="1:1", resolution="1K"))
    assert task["status"] == "failed"
    assert task["error"]["code"] == "upstream_malformed"
    assert "HTTP 502 for its result image" in task["error"]["message"]
    assert "502 Bad Gateway" in task["error"]["message"]
    assert "<" not in task["error"]["message"], "an HTML page is summarised, not pasted"


def test_an_abandoned_upstream_task_is_cancelled(upstream: TaskGatewaySimulator, http: httpx.Client) -> None:
    upstream.task_duration = 5.0
    # Six failed polls in a row: pixelgate stops waiting for this upstream task and creates another.
    upstream.fail_next("500", times=6, path_contains="/v1/images/generations/task_img_")
    task_id = create_task(http, model=FLASH, prompt="abandon ship", size="1:1", resolution="1K")
    deadline = time.monotonic() + 5
    while not upstream.tasks and time.monotonic() < deadline:
        time.sleep(0.02)
    (abandoned,) = upstream.tasks
    upstream.task_duration = TASK_DURATION  # the retry's task finishes at once
    assert wait_task(http, task_id)["status"] == "completed"
    assert len(create_bodies(upstream)) == 2
    deadline = time.monotonic() + 2
    while not upstream.cancelled_ids and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.cancelled_ids == [abandoned]


# -- cancellation --------------------------------------------------------------------------------------


def test_cancelling_the_task_cancels_upstream(upstream: TaskGatewaySimulator, http: httpx.Client) -> None:
    upstream.task_duration = 5.0
    task_id = create_task(http, model=FLASH, prompt="never mind", size="1:1", resolution="1K")
    deadline = time.monotonic() + 5
    while not [c for c in upstream.calls(TASKS) if c.method == "GET"] and time.monotonic() < deadline:
        time.sleep(0.02)
    (upstream_id,) = upstream.tasks
    cancelled = http.post(f"{TASKS}{task_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    started = time.monotonic()
    while upstream.cancelled_ids != [upstream_id] and time.monotonic() - started < 2:
        time.sleep(0.02)
    assert upstream.cancelled_ids == [upstream_id]
    assert [c.path for c in upstream.calls("/cancel")] == [f"{TASKS}{upstream_id}/cancel"]
    assert upstream.calls("/cancel")[0].headers["authorization"] == f"Bearer {KEY}"
    assert upstream.calls("/results/") == []
    assert wait_task(http, task_id)["status"] == "cancelled"


# -- 429 and keys --------------------------------------------------------------------------------------


def test_429_on_create_then_success(upstream: TaskGatewaySimulator, client: openai.OpenAI) -> None:
    upstream.fail_next("429")
    response = client.images.generate(model=FLASH, prompt="a fox", size="1:1", response_format="b64_json")
    assert response.data and response.data[0].b64_json
    assert len(create_bodies(upstream)) == 2  # the 429, then the create that ran
    assert len(upstream.tasks) == 1


def test_429_with_retry_after_on_create(upstream: TaskGatewaySimulator, client: openai.OpenAI) -> None:
    upstream.fail_next("429", retry_after=1)
    started = time.monotonic()
    response = client.images.generate(model=FLASH, prompt="a fox", size="1:1", response_format="b64_json")
    assert time.monotonic() - started >= 0.9
    assert response.data and response.data[0].b64_json
    assert len(create_bodies(upstream)) == 2


def test_wrong_key_is_upstream_auth_failed_and_the_key_stays_secret(
    upstream: TaskGatewaySimulator, server: ServerProcess, client: openai.OpenAI
) -> None:
    upstream.api_key = "k-the-upstream-wants-this-one"
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=FLASH, prompt="a fox", size="1:1", response_format="b64_json")
    assert caught.value.status_code == 502
    error = error_of(caught.value)
    assert error["code"] == "upstream_auth_failed"
    assert "channel 'tasks-sim'" in error["message"]
    assert KEY not in caught.value.response.text
    assert KEY not in server.log()


# -- restarts: the upstream task is resumed, not paid for twice ------------------------------------------


@pytest.mark.parametrize("stop", ["sigkill", "sigterm"])
def test_a_restart_resumes_the_upstream_task(
    stop: str, upstream: TaskGatewaySimulator, make_server: MakeServer, tmp_path: Path
) -> None:
    """A server that dies (or is stopped) while an upstream task runs leaves it running; the server that
    takes the task over polls that same upstream task, and the upstream is asked to make it only once."""
    upstream.task_duration = 3.0
    path = tmp_path / "pixelgate.toml"
    path.write_text(
        f'[[channels]]\nname = "tasks-sim"\nprovider = "tasks"\nbase_url = "{upstream.url}/v1"\n'
        'api_key_env = "SIM_KEY"\noptions = { poll_interval = 0.05, max_poll_interval = 0.2 }\n'
    )
    # A short lease and grace: the killed server's task is taken over quickly; the stopped one is put
    # back in the queue at once.
    args = ("--no-auth", "--config", str(path), "--lease-seconds", "1")
    env = {"SIM_KEY": KEY, "PIXELGATE_SHUTDOWN_GRACE_SECONDS": "0.2"}
    first = make_server("sqlite", *args, env=env, data_dir=tmp_path / "data")
    with httpx.Client(base_url=first.url, timeout=30) as before:
        task_id = create_task(before, model=FLASH, prompt="outlive me", size="1:1", resolution="1K")
    deadline = time.monotonic() + 5
    while not [c for c in upstream.calls(TASKS) if c.method == "GET"] and time.monotonic() < deadline:
        time.sleep(0.02)
    (upstream_id,) = upstream.tasks
    first.kill() if stop == "sigkill" else first.stop()

    second = make_server("sqlite", *args, env=env, data_dir=tmp_path / "data")
    with httpx.Client(base_url=second.url, timeout=30) as after:
        done = wait_task(after, task_id)
        assert done["status"] == "completed", done
        assert decode(after.get(done["url"]).content).size == (1024, 1024)
    assert len(create_bodies(upstream)) == 1, "the upstream was asked for the image once"
    assert upstream.cancelled_ids == [], "a restart does not cancel the upstream task it will resume"
    assert {c.path for c in upstream.calls(TASKS) if c.method == "GET"} == {f"{TASKS}{upstream_id}"}
    assert len(upstream.calls("/results/")) == 1


def test_cancelling_a_task_left_queued_by_a_crash_cancels_its_upstream_task(
    upstream: TaskGatewaySimulator, make_server: MakeServer, tmp_path: Path
) -> None:
    """The server dies while an upstream task runs; the task is cancelled before any worker resumes it
    (here: a server that runs no workers). Nobody will poll that upstream task again, so it is cancelled
    there rather than left to finish and be billed."""
    upstream.task_duration = 30.0
    path = tmp_path / "pixelgate.toml"
    path.write_text(
        f'[[channels]]\nname = "tasks-sim"\nprovider = "tasks"\nbase_url = "{upstream.url}/v1"\n'
        'api_key_env = "SIM_KEY"\noptions = { poll_interval = 0.05, max_poll_interval = 0.2 }\n'
    )
    env = {"SIM_KEY": KEY}
    first = make_server("sqlite", "--no-auth", "--config", str(path), env=env, data_dir=tmp_path / "data")
    with httpx.Client(base_url=first.url, timeout=30) as before:
        task_id = create_task(before, model=FLASH, prompt="orphan", size="1:1", resolution="1K")
    deadline = time.monotonic() + 5
    while not [c for c in upstream.calls(TASKS) if c.method == "GET"] and time.monotonic() < deadline:
        time.sleep(0.02)
    (upstream_id,) = upstream.tasks
    first.kill()

    idle = make_server(
        "sqlite", "--no-auth", "--config", str(path), "--no-workers", env=env, data_dir=tmp_path / "data"
    )
    with httpx.Client(base_url=idle.url, timeout=30) as after:
        assert after.post(f"{TASKS}{task_id}/cancel").json()["status"] == "cancelled"
    deadline = time.monotonic() + 5
    while not upstream.cancelled_ids and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.cancelled_ids == [upstream_id]
