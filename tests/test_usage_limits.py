"""Per-key limits and the usage ledger (issue 5, parts 3 and 4), against real servers with auth on.

- The ledger after a mix of succeeded, failed (an upstream that always answers 503), timed-out and
  cancelled (queued and running) tasks in both dialects and Interactions (also one forgotten or deleted
  after it was answered, which still counts): ``GET /v1/usage`` and ``pixelgate usage`` equal
  exactly the succeeded tasks' images, tokens (by modality) and cost: price x images where the channel file
  sets a price, the catalog's published token prices otherwise; nothing else costs anything.
- ``requests_per_minute`` (task reads are not counted), ``concurrent_tasks`` under a burst of 200
  concurrent requests, ``images_per_day`` (``n`` counts, resets at 00:00 UTC), ``credit_budget_usd``
  (402 ``insufficient_quota`` in OpenAI's and Google's shapes, also through both SDKs); a failed task gives
  its reservation back.
- ``requests_per_minute`` is per process without Redis, shared by every process with ``--redis-url``
  (two processes on one PostgreSQL database; skipped without ``PIXELGATE_TEST_DATABASE_URL``); the
  concurrency limit, kept in the database, holds across two processes either way.
- The admin API refuses limits that make no sense and shows the limits of every key.

Every failure here is deterministic: the failing and the slow models are served by channels of their own
(emulators with a fault rate of 1, a timeout, or a latency) declared in a channel file; ``--emulate``
serves the other models at once. Routing makes one attempt and never cools a channel down, so a failing
model never falls through to the healthy emulator.

Per-minute counts live in a fixed wall-clock window: a test that happens to straddle a minute's edge runs
again with a new key rather than sleeping until the window is a safe one.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import errors, types

from conftest import MakeServer, PostgresDatabases, ServerProcess, db_rows

ADMIN = "pga_" + secrets.token_urlsafe(32)
ADMIN_ENV = {"PIXELGATE_ADMIN_KEY": ADMIN}
REDIS_URL = "redis://127.0.0.1:6379/0"

FLASH = "gemini-3.1-flash-image"  # priced by the channel file: $0.04
PREVIEW = "gemini-2.5-flash-image-preview"  # priced by the catalog, as its model NANO
NANO = "gemini-2.5-flash-image"  # priced by the catalog (made free by the limits server's channel file)
PRO = "gemini-3-pro-image"  # served by the "broken" channel only: always a 503
PRO_4K = "gemini-3-pro-image-preview-4k"  # served by the "stuck" channel only: always a timeout
LITE = "gemini-3.1-flash-lite-image"  # served by the "slow" channel only: 30 s per image
FLASH_ALIAS = "gemini-3.1-flash-image-preview-official"  # an alias of FLASH
PRICES = {FLASH: 0.04, PRO: 0.25, PRO_4K: 0.3, LITE: 0.02}
# Google's published prices of gemini-2.5-flash-image (models.toml: ai.google.dev/gemini-api/docs/pricing,
# read 2026-12-06), USD per 1M tokens: input (text and image) $0.30, output text $2.50, output images $30
# (1290 tokens an image: "$0.039 per image").
NANO_RATES = {"input": 0.30, "output_text": 2.50, "output_image": 30.00}
TERMINAL = {"completed", "failed", "cancelled"}
BOX = str.maketrans("", "", "│╭╮╰╯─┃┏┓┗┛━")

CHANNELS_HEAD = f"""
[routing]
max_attempts = 1
failure_threshold = 1000

[prices]
"{FLASH}" = {PRICES[FLASH]}
"{PRO}" = {PRICES[PRO]}
"{PRO_4K}" = {PRICES[PRO_4K]}
"{LITE}" = {PRICES[LITE]}
"""


def channel(name: str, model: str, options: str) -> str:
    return f"""
[[channels]]
name = "{name}"
provider = "emulator"
models = ["{model}"]
priority = 10
options = {{ {options} }}
"""


def channel_file(path: Path, *channels: str, prices: str = "") -> Path:
    """CHANNELS_HEAD with more ``[prices]`` lines, if given, and the channels."""
    path.write_text(CHANNELS_HEAD + prices + "".join(channels))
    return path


def catalog_cost(usage: dict[str, Any], rates: dict[str, float]) -> float:
    """What a task's answered ``usage`` (OpenAI Images' shape) costs at the vendor's token ``rates``: input at
    the input rate, output images at the image rate, output text and thoughts at the text rate."""
    given, made = usage["input_tokens_details"], usage["output_tokens_details"]
    thoughts = usage["total_tokens"] - usage["input_tokens"] - usage["output_tokens"]
    assert given["text_tokens"] + given["image_tokens"] == usage["input_tokens"], usage
    assert made["text_tokens"] + made["image_tokens"] == usage["output_tokens"], usage
    per_million = (
        usage["input_tokens"] * rates["input"]
        + (made["text_tokens"] + thoughts) * rates["output_text"]
        + made["image_tokens"] * rates["output_image"]
    )
    return per_million / 1_000_000


# --- helpers ------------------------------------------------------------------------------------------------


def call(
    server: ServerProcess,
    method: str,
    path: str,
    key: str | None,
    body: dict[str, Any] | None = None,
    *,
    google: bool = False,
) -> httpx.Response:
    headers = (
        {} if key is None else ({"x-goog-api-key": key} if google else {"Authorization": f"Bearer {key}"})
    )
    with httpx.Client(base_url=server.url, timeout=60) as http:
        return http.request(method, path, headers=headers, json=body)


def new_key(server: ServerProcess, name: str, **fields: Any) -> dict[str, Any]:
    response = call(server, "POST", "/admin/keys", ADMIN, {"name": name, **fields})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def unique(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


def generate(
    server: ServerProcess, key: str, model: str = FLASH, n: int = 1, *, run_async: bool = True
) -> httpx.Response:
    body = {"model": model, "prompt": "a lighthouse at dusk", "n": n, "response_format": "b64_json"}
    return call(server, "POST", "/v1/images/generations", key, {**body, "async": run_async})


def accepted(response: httpx.Response) -> str:
    """The id of a task that was accepted asynchronously."""
    assert response.status_code in (200, 202), response.text[:1000]
    task_id: str = response.json()["id"]
    return task_id


def gemini_generate(server: ServerProcess, key: str, model: str = FLASH) -> httpx.Response:
    body = {"contents": [{"role": "user", "parts": [{"text": "a red kite"}]}]}
    return call(server, "POST", f"/v1beta/models/{model}:generateContent", key, body, google=True)


def poll(server: ServerProcess, task_id: str, key: str, *, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = call(server, "GET", f"/v1/tasks/{task_id}", key)
        assert response.status_code == 200, response.text[:1000]
        body: dict[str, Any] = response.json()
        if body["status"] in TERMINAL:
            return body
        assert time.monotonic() < deadline, f"{task_id} is still {body['status']} after {timeout} s"
        time.sleep(0.05)


def openai_error(
    response: httpx.Response, status: int, code: str, param: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text[:1000]
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert error["code"] == code, body
    if param is not None:
        assert error["param"] == param, body
    return error


def gemini_error(response: httpx.Response, status: int, google_status: str, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text[:1000]
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == status and error["status"] == google_status, body
    reasons = [d["reason"] for d in error["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert reasons == [reason], body
    return error


def retry_after(response: httpx.Response) -> int:
    value = response.headers.get("retry-after")
    assert value is not None and value.isdigit(), f"no Retry-After in {dict(response.headers)}"
    return int(value)


def seconds_to_utc_midnight() -> float:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


def minute() -> int:
    return int(time.time() // 60)


def in_one_minute(attempt: Callable[[], None]) -> None:
    """Run ``attempt`` (which makes its own key) again if a minute's edge fell inside it, whether it passed
    or failed: a per-minute count starts afresh there, so the attempt proved nothing."""
    for _ in range(3):
        started = minute()
        try:
            attempt()
        except AssertionError:
            if minute() == started:
                raise
            continue
        if minute() == started:
            return
    pytest.fail("three attempts in a row straddled a minute's edge")


def usage(server: ServerProcess, key: str, query: str = "group_by=key,model,day") -> dict[str, Any]:
    response = call(server, "GET", f"/v1/usage?{query}", key)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def ledger_rows(server: ServerProcess, key_id: str) -> list[tuple[Any, ...]]:
    assert re.fullmatch(r"[\w-]+", key_id)
    return db_rows(
        server,
        f"SELECT task_id, state, model, images, cost_usd, created_at, settled_at FROM usage "
        f"WHERE key_id = '{key_id}'",
    )


def pixelgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    for name in ("PIXELGATE_SERVER", "PIXELGATE_ADMIN_KEY", "PIXELGATE_API_KEY"):
        full_env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pixelgate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**full_env, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).translate(BOX).split())


def genai_sdk(server: ServerProcess, key: str) -> genai.Client:
    options = types.HttpOptions(
        base_url=server.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key=key, http_options=options)


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- servers ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger_server(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """One task at a time (so a second slow task stays queued); PRO always fails with a 503, PRO_4K
    always times out, LITE takes 30 s (to be cancelled); the rest answer at once."""
    path = channel_file(
        tmp_path_factory.mktemp("ledger") / "pixelgate.toml",
        channel("broken", PRO, 'faults = "503:1"'),
        channel("stuck", PRO_4K, 'faults = "timeout:1", timeout_after = 0.3'),
        channel("slow", LITE, "latency = 30"),
    )
    return make_server(
        "sqlite", "--emulate", "--auth", "--config", str(path), "--worker-concurrency", "1", env=ADMIN_ENV
    )


@pytest.fixture(scope="module")
def limits_server(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """PRO fails with a 503 after 1 s (its reservation is held meanwhile); NANO takes 2 s an image (for the
    burst) and is free (the channel file prices it at 0); FLASH answers at once."""
    path = channel_file(
        tmp_path_factory.mktemp("limits") / "pixelgate.toml",
        channel("broken", PRO, 'faults = "503:1", latency = 1.0'),
        channel("slow", NANO, "latency = 2.0"),
        prices=f'"{NANO}" = 0.0\n',
    )
    return make_server("sqlite", "--emulate", "--auth", "--config", str(path), env=ADMIN_ENV)


# --- 1. the ledger equals the succeeded tasks, exactly --------------------------------------------------------


def test_ledger_counts_only_succeeded_tasks(ledger_server: ServerProcess) -> None:
    server = ledger_server
    made = new_key(server, unique("ledger-a"))
    key, key_id, owner = made["key"], made["id"], made["owner"]
    other = new_key(server, unique("ledger-b"))
    day_before = datetime.now(UTC).strftime("%Y-%m-%d")

    # (model, images, input tokens, total tokens, cost) of every task that succeeded, as its own answer
    # says: the channel file's price x images, else the catalog's token prices on the tokens it reports.
    succeeded: list[tuple[str, int, int, int, float]] = []

    def record(model: str, body: dict[str, Any]) -> None:
        assert body.get("status", "completed") == "completed", body
        assert body["data"], body
        use = body["usage"]
        assert use["total_tokens"] >= use["input_tokens"] + use["output_tokens"] > 0, use
        images = len(body["data"])
        cost = PRICES[model] * images if model in PRICES else catalog_cost(use, NANO_RATES)
        succeeded.append((model, images, use["input_tokens"], use["total_tokens"], cost))

    # Succeeded: OpenAI async (n=2 and n=1, a priced model and two catalog-priced ones, an alias and its
    # model), OpenAI sync, and Gemini's generateContent (whose responseId is the task's id).
    for model, n in ((FLASH, 2), (PREVIEW, 1), (NANO, 1)):
        record(model, poll(server, accepted(generate(server, key, model, n)), key))
    sync = generate(server, key, FLASH, run_async=False)
    assert sync.status_code == 200, sync.text[:1000]
    record(FLASH, sync.json())
    gemini = gemini_generate(server, key, FLASH)
    assert gemini.status_code == 200, gemini.text[:1000]
    task = poll(server, gemini.json()["responseId"], key)
    meta = gemini.json()["usageMetadata"]
    assert (meta["promptTokenCount"], meta["totalTokenCount"]) == (
        task["usage"]["input_tokens"],
        task["usage"]["total_tokens"],
    )
    record(FLASH, task)

    # Interactions: one answered and forgotten (store: false), one stored and deleted afterwards. Both
    # were made, so both are billed: a ledger row outlives its task.
    for store in (False, True):
        body = {"model": FLASH, "input": "a paper boat", "store": store}
        answer = call(server, "POST", "/v1beta/interactions", key, body, google=True)
        assert answer.status_code == 200, answer.text[:1000]
        made_now = answer.json()
        outputs = [b for step in made_now["steps"] if step["type"] == "model_output" for b in step["content"]]
        images_made = sum(1 for block in outputs if block["type"] == "image")
        assert images_made == 1, made_now
        use = made_now["usage"]
        succeeded.append(
            (FLASH, images_made, use["total_input_tokens"], use["total_tokens"], PRICES[FLASH] * images_made)
        )
        if store:
            deleted = call(server, "DELETE", f"/v1beta/interactions/{made_now['id']}", key, google=True)
            assert deleted.status_code == 200, deleted.text

    # Failed: an upstream that answers 503 (async n=2, sync, Gemini) and one that times out.
    failed = poll(server, accepted(generate(server, key, PRO, 2)), key)
    assert failed["status"] == "failed" and failed["error"]["code"] == "upstream_http_503", failed
    openai_error(generate(server, key, PRO, run_async=False), 502, "upstream_http_503")
    refused = gemini_generate(server, key, PRO)
    assert refused.status_code == 502, refused.text
    timed_out = poll(server, accepted(generate(server, key, PRO_4K)), key)
    assert timed_out["status"] == "failed" and timed_out["error"]["code"] == "upstream_timeout", timed_out

    # Cancelled: one while it runs (30 s an image), one while it waits behind it (one task at a time).
    running = accepted(generate(server, key, LITE))
    deadline = time.monotonic() + 10
    while call(server, "GET", f"/v1/tasks/{running}", key).json()["status"] != "processing":
        assert time.monotonic() < deadline, "the slow task never started"
        time.sleep(0.05)
    waiting = accepted(generate(server, key, LITE))
    assert call(server, "GET", f"/v1/tasks/{waiting}", key).json()["status"] == "queued"
    for task_id in (waiting, running):
        cancelled = call(server, "POST", f"/v1/tasks/{task_id}/cancel", key)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text

    # Another key (another owner) succeeds once: it is in the admin's report, never in this owner's.
    other_task = poll(server, accepted(generate(server, other["key"], FLASH)), other["key"])

    day_after = datetime.now(UTC).strftime("%Y-%m-%d")
    expected_models: dict[str, dict[str, float]] = {}
    for model, images, input_tokens, total_tokens, task_cost in succeeded:
        bucket = expected_models.setdefault(
            model, dict.fromkeys(("tasks", "images", "input", "total", "cost"), 0)
        )
        bucket["tasks"] += 1
        bucket["images"] += images
        bucket["input"] += input_tokens
        bucket["total"] += total_tokens
        bucket["cost"] += task_cost
    tasks = sum(b["tasks"] for b in expected_models.values())
    images = sum(b["images"] for b in expected_models.values())
    input_tokens = sum(b["input"] for b in expected_models.values())
    total_tokens = sum(b["total"] for b in expected_models.values())
    cost = sum(b["cost"] for b in expected_models.values())
    # Six FLASH images at the channel file's $0.04, and one image each of PREVIEW and NANO at Google's
    # price: 1290 tokens x $30 per 1M = $0.0387, plus the prompt's tokens at $0.30 per 1M.
    catalog_priced = expected_models[PREVIEW]["cost"] + expected_models[NANO]["cost"]
    assert 2 * 0.0387 < catalog_priced < 2 * 0.0387 + 0.0001, expected_models
    assert (tasks, images) == (7, 8) and cost == pytest.approx(6 * 0.04 + catalog_priced, abs=1e-9)

    report = usage(server, key)
    assert report["group_by"] == ["key", "model", "day"]
    assert {row["key"] for row in report["data"]} == {key_id}
    assert {row["day"] for row in report["data"]} <= {day_before, day_after}
    by_model: dict[str, dict[str, float]] = {}
    for row in report["data"]:
        got = by_model.setdefault(
            row["model"], dict.fromkeys(("tasks", "images", "input", "total", "cost"), 0)
        )
        got["tasks"] += row["tasks"]
        got["images"] += row["images"]
        got["input"] += row["input_tokens"]
        got["total"] += row["total_tokens"]
        got["cost"] += row["cost_usd"]
        # Output tokens in the ledger are everything the model made: images, text and thoughts; each
        # split by modality as Gemini's usageMetadata splits it.
        assert row["output_tokens"] == row["total_tokens"] - row["input_tokens"], row
        given, made = row["input_tokens_details"], row["output_tokens_details"]
        assert given["text_tokens"] + given["image_tokens"] == row["input_tokens"], row
        assert made["text_tokens"] + made["image_tokens"] + made["thought_tokens"] == row["output_tokens"], (
            row
        )
        assert made["image_tokens"] >= 747 * row["images"], row
    assert set(by_model) == set(expected_models), "failed, timed-out and cancelled models must not appear"
    for model, want in expected_models.items():
        got = by_model[model]
        assert {k: got[k] for k in ("tasks", "images", "input", "total")} == {
            k: want[k] for k in ("tasks", "images", "input", "total")
        }, model
        assert got["cost"] == pytest.approx(want["cost"], abs=1e-9), model
    total = report["total"]
    assert (total["tasks"], total["images"], total["input_tokens"], total["total_tokens"]) == (
        tasks,
        images,
        input_tokens,
        total_tokens,
    )
    assert total["output_tokens"] == total_tokens - input_tokens
    assert total["cost_usd"] == pytest.approx(cost, abs=1e-9)

    # The same totals however they are grouped, and for the admin asking for this owner.
    for query in (
        "group_by=model,day",
        "",
        "group_by=day",
        f"group_by=key&start={day_before}&end={day_after}",
    ):
        assert usage(server, key, query)["total"] == total, query
    assert call(server, "GET", f"/v1/usage?owner={other['owner']}", key).json()["total"] == total, (
        "a key sees its own owner's usage, whatever owner= says"
    )
    assert usage(server, ADMIN, f"owner={owner}&group_by=key,model,day") == report
    everyone = usage(server, ADMIN, "group_by=key")["data"]
    assert {row["key"]: row["images"] for row in everyone} == {key_id: images, other["id"]: 1}
    assert other_task["status"] == "completed"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert usage(server, key, f"start={tomorrow}")["total"]["tasks"] == 0
    openai_error(call(server, "GET", "/v1/usage?group_by=week", key), 400, "invalid_group", "group_by")
    openai_error(call(server, "GET", "/v1/usage?start=yesterday", key), 400, "invalid_date", "start")

    # In the database: one row per task; the failed, timed-out and cancelled ones released at no cost.
    rows = ledger_rows(server, key_id)
    states = sorted(state for _, state, *_ in rows)
    assert states == ["released"] * 6 + ["settled"] * 7, rows
    assert all(images == 0 and cost == 0 for _, state, _, images, cost, *_ in rows if state == "released")
    assert all(settled is not None for *_, settled in rows)

    # pixelgate usage prints the same totals.
    printed = pixelgate(
        "usage", "--group-by", "key,model,day", "--server", server.url, env={"PIXELGATE_API_KEY": key}
    )
    assert printed.returncode == 0, said(printed)
    words = said(printed)
    assert key_id in words and all(model in words for model in expected_models), words
    match = re.search(r"\btotal " + r"([\d,]+) " * 7 + r"([\d.]+)", words)
    assert match, words
    given, made = total["input_tokens_details"], total["output_tokens_details"]
    assert [int(g.replace(",", "")) for g in match.groups()[:7]] == [
        tasks,
        images,
        given["text_tokens"],
        given["image_tokens"],
        made["text_tokens"],
        made["image_tokens"],
        made["thought_tokens"],
    ], words
    assert given["text_tokens"] + given["image_tokens"] == input_tokens
    assert sum(made.values()) == total_tokens - input_tokens
    assert float(match.group(8)) == pytest.approx(cost, abs=1e-9), words  # printed to the nano-dollar


# --- 2. limits ----------------------------------------------------------------------------------------------


def test_requests_per_minute_counts_only_task_creation(limits_server: ServerProcess) -> None:
    server = limits_server

    def attempt() -> None:
        made = new_key(server, unique("rpm"), limits={"requests_per_minute": 3})
        key = made["key"]
        first = accepted(generate(server, key))
        for _ in range(10):  # reading tasks (as clients are told to poll) is never limited
            assert call(server, "GET", f"/v1/tasks/{first}", key).status_code == 200
            assert call(server, "GET", f"/v1/images/generations/{first}", key).status_code == 200
        assert call(server, "GET", "/v1/usage", key).status_code == 200
        assert call(server, "GET", "/v1/models", key).status_code == 200
        accepted(generate(server, key))
        accepted(generate(server, key))

        over = generate(server, key)
        expected_wait = 60 - time.time() % 60
        error = openai_error(over, 429, "rate_limit_exceeded", "requests_per_minute")
        off = (retry_after(over) - expected_wait) % 60  # the count resets at the next minute's start
        assert min(off, 60 - off) <= 2, (retry_after(over), expected_wait)
        assert 1 <= retry_after(over) <= 60
        assert "3 requests per minute" in error["message"] and "resets in" in error["message"], error

        google = gemini_generate(server, key)
        refused = gemini_error(google, 429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")
        assert "requests per minute" in refused["message"]
        assert any(d["@type"].endswith("google.rpc.RetryInfo") for d in refused["details"]), refused
        assert retry_after(google) >= 1

        # Over the limit, a key still reads its tasks; and the admin key has no limits.
        assert call(server, "GET", f"/v1/tasks/{first}", key).status_code == 200
        accepted(generate(server, ADMIN))
        assert len(ledger_rows(server, made["id"])) == 3, "refused requests reserve nothing"

    in_one_minute(attempt)


class Burst:
    """``count`` concurrent task requests of one key, sent round-robin to ``servers``, while a thread
    counts the key's open reservations in the database every 10 ms."""

    def __init__(self, servers: list[ServerProcess], key: str, key_id: str, model: str) -> None:
        self.servers, self.key, self.key_id, self.model = servers, key, key_id, model
        self.observed: list[int] = []

    def watch(self, stop: threading.Event) -> None:
        query = f"SELECT COUNT(*) FROM usage WHERE key_id = '{self.key_id}' AND state = 'reserved'"
        while not stop.is_set():
            self.observed.append(db_rows(self.servers[0], query)[0][0])
            time.sleep(0.01)

    async def send(self, count: int) -> list[httpx.Response]:
        body = {"model": self.model, "prompt": "one of many", "async": True}
        headers = {"Authorization": f"Bearer {self.key}"}
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            return list(
                await asyncio.gather(
                    *(
                        http.post(
                            f"{self.servers[i % len(self.servers)].url}/v1/images/generations",
                            json=body,
                            headers=headers,
                        )
                        for i in range(count)
                    )
                )
            )

    def run(self, count: int, limit: int) -> list[str]:
        """Send the burst, check every refusal, wait for the accepted tasks; their ids."""
        stop = threading.Event()
        watcher = threading.Thread(target=self.watch, args=(stop,), daemon=True)
        watcher.start()
        try:
            responses = asyncio.run(self.send(count))
            ok = [accepted(r) for r in responses if r.status_code in (200, 202)]
            refused = [r for r in responses if r.status_code not in (200, 202)]
            for response in refused:
                error = openai_error(response, 429, "rate_limit_exceeded", "concurrent_tasks")
                assert f"{limit} concurrent tasks" in error["message"], error
                assert retry_after(response) >= 1
            assert limit <= len(ok) < count, f"{len(ok)} of {count} accepted"
            done = [poll(self.servers[0], task_id, self.key) for task_id in ok]
            assert {task["status"] for task in done} == {"completed"}
        finally:
            stop.set()
            watcher.join(10)
        assert self.observed and max(self.observed) <= limit, (
            f"at most {limit} queued or running, saw {max(self.observed)}"
        )

        # The ledger agrees: one row per accepted task; and when every answer came before the first task
        # ended (the usual case: the tasks take longer than the burst), exactly ``limit`` were let in.
        rows = ledger_rows(self.servers[0], self.key_id)
        assert sorted(r[0] for r in rows) == sorted(ok) and {r[1] for r in rows} == {"settled"}
        if min(r[6] for r in rows) > max(r[5] for r in rows):
            assert len(ok) == limit, f"{len(ok)} tasks were open at once, over the limit of {limit}"
        return ok


def test_concurrent_tasks_hold_under_a_burst_and_reset(limits_server: ServerProcess) -> None:
    server = limits_server
    made = new_key(server, unique("burst"), limits={"concurrent_tasks": 5})
    burst = Burst([server], made["key"], made["id"], NANO)
    burst.run(200, 5)

    # Once they are done the key may run 5 again, and no more.
    again = asyncio.run(burst.send(5))
    assert all(r.status_code in (200, 202) for r in again), [r.text for r in again]
    openai_error(generate(server, made["key"], NANO), 429, "rate_limit_exceeded", "concurrent_tasks")
    for response in again:
        assert poll(server, accepted(response), made["key"])["status"] == "completed"


def test_a_key_without_its_own_limit_has_the_server_s(make_server: MakeServer) -> None:
    """PIXELGATE_MAX_TASKS_PER_KEY (10,000 by default) bounds the queued and running tasks of a key that has
    no concurrent_tasks of its own; a key with its own limit goes by that one."""
    server = make_server(
        "sqlite", "--emulate", "--auth", "--no-workers", env={**ADMIN_ENV, "PIXELGATE_MAX_TASKS_PER_KEY": "2"}
    )
    plain = new_key(server, unique("plain"))
    for _ in range(2):
        accepted(generate(server, plain["key"], NANO))
    error = openai_error(generate(server, plain["key"], NANO), 429, "rate_limit_exceeded", "concurrent_tasks")
    assert error["message"] == (
        f"key {plain['id']} has 2 tasks queued or running, the server's limit for keys without their own "
        "(PIXELGATE_MAX_TASKS_PER_KEY) of 2 concurrent tasks: retry when one of them has finished"
    )
    own = new_key(server, unique("own"), limits={"concurrent_tasks": 3})
    for _ in range(3):
        accepted(generate(server, own["key"], NANO))
    openai_error(generate(server, own["key"], NANO), 429, "rate_limit_exceeded", "concurrent_tasks")


def test_images_per_day_counts_n_and_resets_at_utc_midnight(limits_server: ServerProcess) -> None:
    server = limits_server
    made = new_key(server, unique("daily"), limits={"images_per_day": 4})
    key = made["key"]
    accepted(generate(server, key, FLASH, 2))
    over = generate(server, key, FLASH, 3)  # 2 made + 3 asked > 4
    wait = seconds_to_utc_midnight()
    error = openai_error(over, 429, "rate_limit_exceeded", "images_per_day")
    assert abs(retry_after(over) - wait) <= 5, (retry_after(over), wait)
    assert "4 images a day" in error["message"] and "00:00 UTC" in error["message"], error
    accepted(generate(server, key, FLASH, 2))  # exactly 4
    openai_error(generate(server, key, FLASH, 1), 429, "rate_limit_exceeded", "images_per_day")
    google = gemini_error(gemini_generate(server, key), 429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")
    assert "images a day" in google["message"]


def test_credit_budget_in_both_dialects_and_sdks(limits_server: ServerProcess) -> None:
    server = limits_server
    made = new_key(server, unique("budget"), limits={"credit_budget_usd": 0.10})
    key = made["key"]
    first = accepted(generate(server, key, FLASH))  # $0.04
    error = openai_error(generate(server, key, FLASH, 2), 402, "insufficient_quota", "credit_budget_usd")
    assert error["type"] == "insufficient_quota" and "budget" in error["message"], error
    second = accepted(generate(server, key, FLASH))  # $0.08
    openai_error(generate(server, key, FLASH), 402, "insufficient_quota", "credit_budget_usd")

    with pytest.raises(openai.APIStatusError) as raised:
        openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0).images.generate(
            model=FLASH, prompt="one more"
        )
    assert raised.value.status_code == 402 and raised.value.code == "insufficient_quota"

    google = gemini_error(gemini_generate(server, key), 402, "RESOURCE_EXHAUSTED", "INSUFFICIENT_QUOTA")
    streamed = call(
        server,
        "POST",
        f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse",
        key,
        {"contents": [{"role": "user", "parts": [{"text": "a red kite"}]}]},
        google=True,
    )
    gemini_error(streamed, 402, "RESOURCE_EXHAUSTED", "INSUFFICIENT_QUOTA")
    interaction = call(
        server, "POST", "/v1beta/interactions", key, {"model": FLASH, "input": "x"}, google=True
    )
    gemini_error(interaction, 402, "RESOURCE_EXHAUSTED", "INSUFFICIENT_QUOTA")
    assert "budget" in google["message"]
    client = genai_sdk(server, key)  # held: the SDK closes its connections once the client is collected
    with pytest.raises(errors.ClientError) as sdk:
        client.models.generate_content(model=FLASH, contents="one more")
    assert sdk.value.code == 402 and sdk.value.status == "RESOURCE_EXHAUSTED", sdk.value

    # A model the channel file prices at 0 costs nothing against the budget.
    free = accepted(generate(server, key, NANO))
    for task_id in (first, second, free):
        assert poll(server, task_id, key)["status"] == "completed"
    assert usage(server, key)["total"]["cost_usd"] == pytest.approx(0.08)


@pytest.mark.parametrize(
    ("limit", "value", "status", "code"),
    [
        ("credit_budget_usd", PRICES[PRO], 402, "insufficient_quota"),
        ("images_per_day", 1, 429, "rate_limit_exceeded"),
        ("concurrent_tasks", 1, 429, "rate_limit_exceeded"),
    ],
)
def test_a_failed_task_returns_its_reservation(
    limits_server: ServerProcess, limit: str, value: float, status: int, code: str
) -> None:
    server = limits_server
    made = new_key(server, unique("refund"), limits={limit: value})
    key = made["key"]
    for _ in range(2):
        first = accepted(generate(server, key, PRO))  # reserved now; fails with a 503 after 1 s
        openai_error(generate(server, key, PRO), status, code, limit)  # held while it runs
        task = poll(server, first, key)
        assert task["status"] == "failed" and task["error"]["code"] == "upstream_http_503", task
        # ...and given back when it fails: the next request is accepted again (and again).
    assert usage(server, key)["total"] == {
        "tasks": 0,
        "images": 0,
        "input_tokens": 0,
        "input_tokens_details": {"text_tokens": 0, "image_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"text_tokens": 0, "image_tokens": 0, "thought_tokens": 0},
        "total_tokens": 0,
        "cost_usd": 0.0,
    }
    assert {row[1] for row in ledger_rows(server, made["id"])} == {"released"}


def test_an_alias_costs_what_its_model_costs(limits_server: ServerProcess) -> None:
    server = limits_server
    made = new_key(server, unique("alias"), limits={"credit_budget_usd": 0.05})
    key = made["key"]
    task = poll(server, accepted(generate(server, key, FLASH_ALIAS)), key)
    assert task["status"] == "completed"
    assert usage(server, key)["total"]["cost_usd"] == pytest.approx(PRICES[FLASH])
    openai_error(generate(server, key, FLASH_ALIAS), 402, "insufficient_quota", "credit_budget_usd")


# --- 3. across processes ------------------------------------------------------------------------------------


def alternate(servers: list[ServerProcess], key: str, count: int) -> list[tuple[int, int]]:
    """``count`` requests sent to the servers in turn: (server index, status) of each."""
    outcomes = []
    for i in range(count):
        response = generate(servers[i % len(servers)], key)
        assert response.status_code in (200, 202, 429), response.text[:1000]
        if response.status_code == 429:
            openai_error(response, 429, "rate_limit_exceeded", "requests_per_minute")
        outcomes.append((i % len(servers), response.status_code))
    return outcomes


PAIR_ARGS = ("--emulate", "--auth", "--emulate-latency", "1.5")


@pytest.fixture(scope="module")
def sqlite_pair(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> list[ServerProcess]:
    """Two processes on one SQLite database, without Redis; every image takes 1.5 s."""
    data_dir = tmp_path_factory.mktemp("shared-sqlite")
    return [make_server("sqlite", *PAIR_ARGS, data_dir=data_dir, env=ADMIN_ENV) for _ in range(2)]


@pytest.fixture(scope="module")
def redis_pair(
    make_server: MakeServer, postgres: PostgresDatabases | None, tmp_path_factory: pytest.TempPathFactory
) -> list[ServerProcess]:
    """Two processes on one PostgreSQL database and one data dir (where the images are: a task made by one
    is read on the other), sharing per-minute counts through Redis."""
    if postgres is None:
        pytest.skip("limits shared through Redis are tested on PostgreSQL: set PIXELGATE_TEST_DATABASE_URL")
    if not redis_answers():
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    url = postgres.create()
    data_dir = tmp_path_factory.mktemp("shared-redis")
    return [
        make_server(
            "postgres",
            *PAIR_ARGS,
            "--redis-url",
            REDIS_URL,
            database_url=url,
            data_dir=data_dir,
            env=ADMIN_ENV,
        )
        for _ in range(2)
    ]


def test_requests_per_minute_is_per_process_without_redis(sqlite_pair: list[ServerProcess]) -> None:
    """Documented behaviour: without --redis-url each process counts on its own, so two processes sharing
    one database let a key through twice as often (the other limits, kept in the database, hold)."""

    def attempt() -> None:
        key = new_key(sqlite_pair[0], unique("local-rpm"), limits={"requests_per_minute": 2})["key"]
        outcomes = alternate(sqlite_pair, key, 6)
        assert [s for _, s in outcomes if s != 429] == [200] * 4, outcomes
        assert {i for i, s in outcomes if s == 200} == {0, 1}

    in_one_minute(attempt)


def test_requests_per_minute_is_shared_through_redis(redis_pair: list[ServerProcess]) -> None:
    def attempt() -> None:
        key = new_key(redis_pair[0], unique("shared-rpm"), limits={"requests_per_minute": 4})["key"]
        outcomes = alternate(redis_pair, key, 10)
        assert [s for _, s in outcomes] == [200] * 4 + [429] * 6, outcomes
        assert {i for i, s in outcomes if s == 429} == {0, 1}, "both processes refuse"

    in_one_minute(attempt)


@pytest.mark.parametrize("pair", ["sqlite_pair", "redis_pair"])
def test_concurrent_tasks_hold_across_processes(request: pytest.FixtureRequest, pair: str) -> None:
    """Counted in the database, the concurrency limit holds across processes, with or without Redis."""
    servers: list[ServerProcess] = request.getfixturevalue(pair)
    made = new_key(servers[0], unique("burst-pair"), limits={"concurrent_tasks": 5})
    Burst(servers, made["key"], made["id"], FLASH).run(100, 5)


# --- 4. the admin API's limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limits",
    [
        {"requests_per_minute": 0},
        {"requests_per_minute": -1},
        {"concurrent_tasks": 0},
        {"concurrent_tasks": -5},
        {"images_per_day": 0},
        {"images_per_day": -1},
        {"credit_budget_usd": -0.01},
        {"requests_per_minute": 2.5},
        {"images_per_day": "many"},
        {"tokens_per_day": 10},
    ],
    ids=lambda limits: "-".join(f"{k}={v}" for k, v in limits.items()),
)
def test_admin_refuses_limits_that_make_no_sense(
    limits_server: ServerProcess, limits: dict[str, Any]
) -> None:
    (field,) = limits
    response = call(limits_server, "POST", "/admin/keys", ADMIN, {"name": unique("bad"), "limits": limits})
    error = openai_error(response, 400, "invalid_field")
    assert error["type"] == "invalid_request_error" and field in (error["param"] or ""), error
    assert field in error["message"], error


def test_admin_lists_the_limits_of_every_key(limits_server: ServerProcess) -> None:
    server = limits_server
    limits = {
        "requests_per_minute": 60,
        "concurrent_tasks": 5,
        "images_per_day": 100,
        "credit_budget_usd": 2.5,
    }
    full = new_key(server, unique("limited"), owner="limits-owner", limits=limits)
    assert full["limits"] == limits
    plain = new_key(server, unique("plain"), owner="limits-owner")
    assert plain["limits"] == {}, "a key made without limits has none"
    free = new_key(server, unique("free-only"), owner="limits-owner", limits={"credit_budget_usd": 0})
    assert free["limits"] == {"credit_budget_usd": 0}

    listed = call(server, "GET", "/admin/keys?owner=limits-owner", ADMIN).json()["data"]
    assert {k["id"]: k["limits"] for k in listed} == {
        full["id"]: limits,
        plain["id"]: {},
        free["id"]: {"credit_budget_usd": 0},
    }
    assert call(server, "GET", f"/admin/keys/{full['id']}", ADMIN).json()["limits"] == limits

    # A budget of 0 allows free models only.
    openai_error(generate(server, free["key"], FLASH), 402, "insufficient_quota", "credit_budget_usd")
    assert poll(server, accepted(generate(server, free["key"], NANO)), free["key"])["status"] == "completed"

    # pixelgate keys create sets the same limits.
    made = pixelgate(
        "keys",
        "create",
        unique("from-cli"),
        "--owner",
        "limits-owner",
        "--rpm",
        "30",
        "--concurrent",
        "2",
        "--images-per-day",
        "10",
        "--budget",
        "1.5",
        "--server",
        server.url,
        env={"PIXELGATE_ADMIN_KEY": ADMIN},
    )
    assert made.returncode == 0, said(made)
    secret = made.stdout.strip().splitlines()[-1]
    key_id = secret.split("_")[1]
    assert call(server, "GET", f"/admin/keys/{key_id}", ADMIN).json()["limits"] == {
        "requests_per_minute": 30,
        "concurrent_tasks": 2,
        "images_per_day": 10,
        "credit_budget_usd": 1.5,
    }
    bad = pixelgate(
        "keys", "create", "x", "--rpm", "0", "--server", server.url, env={"PIXELGATE_ADMIN_KEY": ADMIN}
    )
    assert bad.returncode != 0 and "requests_per_minute" in said(bad), said(bad)
