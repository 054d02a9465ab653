"""Two processes on one PostgreSQL database, woken by each other's NOTIFY (``tasks/wakeups.py``).

A accepts requests and runs nothing (``--no-workers``); B runs every task, one at a time. Both share one
data dir (the images are files there). Both look in the database only every 30 s (the safety net and the
fallback alike), and every client gives up after 10 s: a request that has to wait for a poll fails, so each
of these passes only if NOTIFY woke the other process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import openai
import pytest

from conftest import MakeServer, PostgresDatabases, ServerProcess

FAST = "gemini-3.1-flash-image"
SLOW = "gemini-3-pro-image"
CLIENT_TIMEOUT = 10.0  # a third of the polls: only a wake-up answers within it
SLOW_SECONDS = 300  # a task of the slow model runs until it is cancelled
CHANNELS = f"""
[[channels]]
name = "fast"
provider = "emulator"
models = ["{FAST}"]

[[channels]]
name = "slow"
provider = "emulator"
models = ["{SLOW}"]
options = {{ latency = {SLOW_SECONDS} }}
"""
SLOW_POLLS = {"PIXELGATE_POLL_INTERVAL": "30", "PIXELGATE_NOTIFIED_POLL_INTERVAL": "30"}
LISTENERS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' "
    "AND application_name = 'pixelgate-listen'"
)


class Pair:
    def __init__(self, front: ServerProcess, back: ServerProcess, url: str) -> None:
        self.front = front  # accepts, runs nothing
        self.back = back  # runs every task, one at a time
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    def sql(self, query: str) -> list[Any]:
        async def run() -> list[Any]:
            conn = await asyncpg.connect(self.dsn)
            try:
                return [tuple(row) for row in await conn.fetch(query)]
            finally:
                await conn.close()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def pair(
    make_server: MakeServer, postgres: PostgresDatabases | None, tmp_path_factory: pytest.TempPathFactory
) -> Pair:
    if postgres is None:
        pytest.skip("wake-ups across processes are PostgreSQL's: set PIXELGATE_TEST_DATABASE_URL")
    url = postgres.create()
    shared = tmp_path_factory.mktemp("cross-process")
    config = shared / "pixelgate.toml"
    config.write_text(CHANNELS)
    common = ("--no-auth", "--config", str(config))
    back = make_server(
        "postgres",
        *common,
        "--worker-concurrency",
        "1",
        # Heartbeats every 40 s: a cancel seen only by the heartbeat would come after the client gave up.
        "--lease-seconds",
        "120",
        database_url=url,
        data_dir=shared,
        env=SLOW_POLLS,
    )
    front = make_server(
        "postgres", *common, "--no-workers", database_url=url, data_dir=shared, env=SLOW_POLLS
    )
    return Pair(front, back, url)


@pytest.fixture()
def client(pair: Pair) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{pair.front.url}/v1", api_key="unused", timeout=CLIENT_TIMEOUT, max_retries=0
    ) as client:
        yield client


@pytest.fixture()
def http(pair: Pair) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pair.front.url, timeout=CLIENT_TIMEOUT) as client:
        yield client


def until(check: Callable[[], Any], what: str, within: float = CLIENT_TIMEOUT) -> Any:
    """``check()`` once it is truthy, asked every 50 ms; fails after ``within`` s (a bound, like a client's
    timeout: the polls it must beat take 30 s)."""
    deadline = time.monotonic() + within
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:g} s")
        time.sleep(0.05)
    return found


def status(http: httpx.Client, task_id: str) -> str:
    response = http.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def queue_async(http: httpx.Client, model: str, prompt: str) -> str:
    response = http.post("/v1/images/generations", json={"model": model, "prompt": prompt, "async": True})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def generate(client: openai.OpenAI, prompt: str) -> None:
    answer = client.images.generate(model=FAST, prompt=prompt, response_format="b64_json")
    assert answer.data and answer.data[0].b64_json, answer


def test_each_process_listens_on_its_own_connection(pair: Pair) -> None:
    assert len(pair.sql(LISTENERS)) == 2


def test_a_synchronous_request_returns_when_the_other_process_ran_it(client: openai.OpenAI) -> None:
    for i in range(3):  # the first is no luck: each one needs its own wake-ups, both ways
        generate(client, f"a lighthouse at dusk, take {i}")


def test_an_async_task_is_claimed_by_the_other_process(http: httpx.Client) -> None:
    task_id = queue_async(http, FAST, "a red kite over a field")
    assert until(lambda: status(http, task_id) == "completed", "the task completed on the other process")


def test_a_cancel_stops_the_task_where_it_runs(pair: Pair, http: httpx.Client, client: openai.OpenAI) -> None:
    task_id = queue_async(http, SLOW, "a very slow cathedral")
    until(lambda: status(http, task_id) == "processing", "the slow task started on the other process")
    cancelled = http.post(f"/v1/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    # The other process runs one task at a time: this one runs there only once the cancelled one stopped.
    generate(client, "the next one in line")
    assert status(http, task_id) == "cancelled"


def test_a_process_listens_again_after_its_connection_is_killed(pair: Pair, client: openai.OpenAI) -> None:
    killed = {pid for (pid,) in pair.sql(LISTENERS)}
    assert len(killed) == 2
    assert pair.sql(f"SELECT pg_terminate_backend(pid) FROM ({LISTENERS}) AS listeners") == [(True,), (True,)]
    # Each process reconnects after 0.5 to 0.75 s, on a connection of its own again.
    until(lambda: len({pid for (pid,) in pair.sql(LISTENERS)} - killed) == 2, "both processes listen again")
    generate(client, "after the reconnect")
    for server in (pair.front, pair.back):
        assert server.log().count("no LISTEN connection to PostgreSQL") == 1, server.log()[-3000:]
