"""Channels that fail fast and come back, and the admin's view of them, end to end: a front pixelgate whose
channel is a back ``pixelgate serve --emulate`` (killed and restarted here), the official SDKs as clients.

What an operator of a gateway in front of an upstream that goes down expects: the first synchronous request
fails within the wait budget, later ones at once with Retry-After, asynchronous tasks wait in the queue and
complete once the upstream is back, each billed once, and the upstream serves again within seconds of its
cooldown's end. ``/admin/channels`` shows all this, and disable, enable and reset reach a second process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from conftest import MakeServer, ServerProcess, db_rows, free_port

FLASH = "gemini-3.1-flash-image"
COOLDOWN = 3.0
MAX_WAIT = 5.0
TIMEOUT = 10.0


def front_config(path: Path, channels: str, **routing: Any) -> Path:
    policy = {
        "backoff_seconds": 0.1,
        "failure_threshold": 2,
        "cooldown_seconds": COOLDOWN,
        "max_cooldown_seconds": COOLDOWN,
        "max_wait_seconds": MAX_WAIT,
        **routing,
    }
    path.write_text("[routing]\n" + "".join(f"{k} = {v}\n" for k, v in policy.items()) + channels)
    return path


def channel(name: str, url: str, priority: int = 0) -> str:
    return (
        f'\n[[channels]]\nname = "{name}"\nprovider = "openai"\nbase_url = "{url}/v1"\n'
        f"priority = {priority}\ntimeout = {TIMEOUT}\n"
    )


def sdk(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=60)


def generate(server: ServerProcess) -> Any:
    return sdk(server).images.generate(model=FLASH, prompt="a lighthouse", size="1024x1024")


def refused(server: ServerProcess) -> tuple[openai.APIStatusError, float]:
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        generate(server)
    return caught.value, time.monotonic() - started


def channels(server: ServerProcess) -> dict[str, dict[str, Any]]:
    listed = httpx.get(f"{server.url}/admin/channels", timeout=10)
    assert listed.status_code == 200, listed.text
    return {c["name"]: c for c in listed.json()["data"]}


def eventually(check: Any, seconds: float, what: str) -> float:
    """Poll ``check`` until it is true; how long that took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"{what}: not within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def back(make_server: MakeServer) -> Iterator[ServerProcess]:
    server = make_server("sqlite", "--emulate")
    yield server
    server.stop()


def test_a_dead_upstream_fails_fast_and_serves_again_after_its_cooldown(
    back: ServerProcess, make_server: MakeServer, tmp_path: Path
) -> None:
    config = front_config(tmp_path / "front.toml", channel("back", back.url))
    front = make_server("sqlite", "--no-auth", "--config", str(config))
    assert generate(front).data[0].url

    back.kill()
    first, took = refused(front)
    assert first.status_code == 503, first.response.text
    assert first.response.json()["error"]["code"] == "channels_unavailable"
    assert took < MAX_WAIT + TIMEOUT, took
    assert "cannot connect to the upstream" in first.message, first.message

    # The channel cools down: later requests are refused at once, told when to come back.
    for _ in range(3):
        later, took = refused(front)
        assert later.status_code == 503 and took < 1.0, (later.message, took)
        assert 1 <= int(later.response.headers["retry-after"]) <= COOLDOWN
        assert "back is cooling down after failing" in later.message, later.message
    google = genai.Client(api_key="unused", http_options=types.HttpOptions(base_url=front.url))
    with pytest.raises(genai_errors.ServerError) as gemini:
        google.models.generate_content(model=FLASH, contents="a lighthouse")
    assert gemini.value.code == 503 and gemini.value.status == "UNAVAILABLE"
    assert channels(front)["back"]["state"] in ("cooling_down", "half_open", "probing")

    # Asynchronous tasks accepted meanwhile are not failed: they wait in the queue for the channel.
    with httpx.Client(base_url=front.url, timeout=30) as client:
        waiting = []
        for i in range(5):
            made = client.post(
                "/v1/images/generations", json={"model": FLASH, "prompt": f"lighthouse {i}", "async": True}
            )
            assert made.status_code == 200, made.text
            waiting.append(made.json()["id"])
        time.sleep(COOLDOWN + 1)  # a probe fails meanwhile: the tasks go back to the queue again
        for task_id in waiting:
            assert client.get(f"/v1/tasks/{task_id}").json()["status"] in ("queued", "processing")

        back.start()
        back_again = time.monotonic()

        def serves() -> bool:
            try:
                return bool(generate(front).data)
            except openai.APIStatusError as exc:
                assert exc.status_code == 503, exc.message
                return False

        eventually(serves, COOLDOWN + 2, "the front serves again once the back is up")
        assert time.monotonic() - back_again <= COOLDOWN + 2

        def all_done() -> bool:
            states = {client.get(f"/v1/tasks/{task_id}").json()["status"] for task_id in waiting}
            assert "failed" not in states, states
            return states == {"completed"}

        eventually(all_done, 30, "every waiting task completes")

    # Each image billed once at the front, and made once at the back; every refusal released at no cost.
    billed = db_rows(front, "SELECT state, COUNT(*) FROM usage GROUP BY state")
    settled = dict(billed)["settled"]
    assert dict(billed).get("reserved", 0) == 0, billed
    ids = ",".join(f"'{task_id}'" for task_id in waiting)
    assert db_rows(front, f"SELECT COUNT(*) FROM usage WHERE state = 'settled' AND task_id IN ({ids})") == [
        (5,)
    ]
    assert db_rows(back, "SELECT COUNT(*) FROM tasks WHERE status = 'succeeded'") == [(settled,)]
    assert dict(billed)["released"] >= 5, billed


def test_an_async_task_fails_once_its_deadline_passes_with_no_channel(
    make_server: MakeServer, tmp_path: Path
) -> None:
    config = front_config(tmp_path / "dead.toml", channel("dead", f"http://127.0.0.1:{free_port()}"))
    front = make_server(
        "sqlite", "--no-auth", "--config", str(config), env={"PIXELGATE_QUEUE_DEADLINE_SECONDS": "2"}
    )
    with httpx.Client(base_url=front.url, timeout=30) as client:
        made = client.post("/v1/images/generations", json={"model": FLASH, "prompt": "x", "async": True})
        task_id = made.json()["id"]

        def ended() -> bool:
            return client.get(f"/v1/tasks/{task_id}").json()["status"] not in ("queued", "processing")

        eventually(ended, 15, "the task ends at its deadline")
        task = client.get(f"/v1/tasks/{task_id}").json()
    assert task["status"] == "failed", task
    assert task["error"]["code"] == "channels_unavailable", task
    assert "waited in the queue for a channel" in task["error"]["message"], task
    assert db_rows(front, f"SELECT state, cost_usd FROM usage WHERE task_id = '{task_id}'") == [
        ("released", 0)
    ]


@pytest.fixture(scope="module")
def pair(back: ServerProcess, make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two processes sharing one database: channel "dead" (tried first, never answers) and "good"."""
    data_dir = tmp_path_factory.mktemp("pair")
    config = front_config(
        data_dir / "pair.toml",
        channel("dead", f"http://127.0.0.1:{free_port()}", priority=10) + channel("good", back.url),
        cooldown_seconds=60,
        max_cooldown_seconds=60,
    )
    if back.process is None or back.process.poll() is not None:
        back.start()
    first = make_server("sqlite", "--no-auth", "--config", str(config), data_dir=data_dir)
    second = make_server("sqlite", "--no-auth", "--config", str(config), data_dir=data_dir)
    return first, second


def test_admin_channels_shows_exact_figures_after_a_known_workload(pair: Any) -> None:
    first, _ = pair
    for _ in range(3):  # dead fails twice (then cools down) and good makes every image
        assert generate(first).data[0].url
    listing = httpx.get(f"{first.url}/admin/channels", timeout=10).json()
    assert listing["object"] == "list" and listing["process"]
    dead, good = channels(first)["dead"], channels(first)["good"]
    assert {k: dead[k] for k in ("state", "failures_in_a_row", "requests", "succeeded", "errors")} == {
        "state": "cooling_down",
        "failures_in_a_row": 2,
        "requests": 2,
        "succeeded": 0,
        "errors": {"upstream_unreachable": 2},
    }
    assert 55 < dead["seconds_left"] <= 60 and dead["until"] > time.time() + 55
    assert "cannot connect to the upstream" in dead["last_error"]
    assert (dead["in_flight"], dead["concurrency"], dead["cooldowns_in_a_row"]) == (0, 16, 1)
    assert {k: good[k] for k in ("state", "failures_in_a_row", "requests", "succeeded", "errors")} == {
        "state": "ready",
        "failures_in_a_row": 0,
        "requests": 3,
        "succeeded": 3,
        "errors": {},
    }
    assert good["mean_seconds"] > 0 and good["last_error"] is None


def test_reset_and_disable_reach_the_other_process_within_a_second_or_two(pair: Any) -> None:
    first, second = pair
    for _ in range(2):  # the second process finds out for itself that dead is down
        assert generate(second).data[0].url
    assert channels(second)["dead"]["state"] == "cooling_down"

    reset = httpx.post(f"{first.url}/admin/channels/dead/reset", timeout=10)
    assert reset.status_code == 200 and reset.json()["state"] == "ready", reset.text
    took = eventually(lambda: channels(second)["dead"]["state"] == "ready", 3, "the reset reaches the second")
    assert took <= 2.5

    disabled = httpx.post(
        f"{first.url}/admin/channels/good/disable", json={"reason": "upstream maintenance"}, timeout=10
    )
    assert disabled.json()["state"] == "disabled", disabled.text
    eventually(lambda: channels(second)["good"]["state"] == "disabled", 3, "the disable reaches the second")
    assert channels(second)["good"]["disabled_reason"] == "upstream maintenance"
    error, _ = refused(second)  # dead fails, good is out of rotation
    assert error.status_code == 503, error.message
    assert "good is disabled by the admin (upstream maintenance)" in error.message, error.message

    enabled = httpx.post(f"{second.url}/admin/channels/good/enable", timeout=10)
    assert enabled.json()["state"] == "ready", enabled.text
    eventually(lambda: channels(first)["good"]["state"] == "ready", 3, "the enable reaches the first")
    assert generate(second).data[0].url


def test_unknown_channels_and_bad_bodies_are_4xx(pair: Any) -> None:
    first, _ = pair
    unknown = httpx.post(f"{first.url}/admin/channels/nope/reset", timeout=10)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "no channel is named 'nope': the channels are dead or good"
    bad = httpx.post(f"{first.url}/admin/channels/good/disable", json={"why": "x"}, timeout=10)
    assert bad.status_code == 400 and "why" in bad.json()["error"]["message"], bad.text
    assert channels(first)["good"]["state"] != "disabled"


def test_the_cli_shows_and_steers_the_running_server(pair: Any) -> None:
    first, _ = pair

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
        env.pop("PIXELGATE_ADMIN_KEY", None)
        return subprocess.run(
            [sys.executable, "-m", "pixelgate", "channels", *args, "--server", first.url],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    assert generate(first).data[0].url  # dead has failed at least once by now, here or in a test before
    disabled = cli("disable", "dead", "--reason", "moved to the new region")
    assert disabled.returncode == 0, disabled.stdout + disabled.stderr
    assert "channel dead is disabled: moved to the new region" in " ".join(disabled.stdout.split())
    shown = cli()
    assert shown.returncode == 0, shown.stdout + shown.stderr
    rows = {line.split("│")[1].strip(): line for line in shown.stdout.splitlines() if line.count("│") > 5}
    assert "disabled: moved to the new region" in rows["dead"] and "ready" in rows["good"], shown.stdout
    assert "16" in rows["good"] and "upstream_unreachable" in rows["dead"], shown.stdout
    enabled = cli("enable", "dead")
    assert enabled.returncode == 0 and "disabled" not in enabled.stdout, enabled.stdout
    reset = cli("reset", "dead")
    assert reset.returncode == 0 and "channel dead is ready" in reset.stdout, reset.stdout
    unknown = cli("reset", "nope")
    assert unknown.returncode == 3 and "no channel is named 'nope'" in unknown.stderr, unknown.stderr
    assert unknown.stdout == "", "errors go to stderr"
