"""An upstream is never paid twice for one image, across a graceful stop and a crash: a front pixelgate whose
channel is a back ``pixelgate serve --emulate``, which keeps every image it is asked for as a task of its
own, so its tasks count what the front paid for.

SIGTERM stops the front while images are in flight and more wait for a channel slot; SIGKILL kills it in the
middle of synchronous upstream calls. Either way the front, started again, finishes every task, and the back
made each image exactly once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import BACKENDS, MakeServer, PostgresDatabases, ServerProcess, db_rows

FLASH = "gemini-3.1-flash-image"
TASKS = 24


@pytest.fixture(scope="module")
def back(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", "--emulate-latency", "0.4")


def back_tasks(back: ServerProcess) -> int:
    return int(db_rows(back, "SELECT COUNT(*) FROM tasks")[0][0])


def front(
    make_server: MakeServer, backend: str, back: ServerProcess, tmp_path: Path, options: str, *args: str
) -> ServerProcess:
    config = tmp_path / "front.toml"
    config.write_text(
        f'[[channels]]\nname = "back"\nprovider = "openai"\nbase_url = "{back.url}/v1"\nconcurrency = 4\n'
        f"options = {{ {options} }}\n"
    )
    return make_server(
        backend,
        "--no-auth",
        "--config",
        str(config),
        *args,
        data_dir=tmp_path / "front",
        env={"PIXELGATE_SHUTDOWN_GRACE_SECONDS": "0.2"},
    )


def submit(server: ServerProcess) -> list[str]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        made = [
            client.post("/v1/images/generations", json={"model": FLASH, "prompt": f"tile {i}", "async": True})
            for i in range(TASKS)
        ]
    assert all(m.status_code == 200 for m in made), [m.text for m in made]
    return [m.json()["id"] for m in made]


def statuses(server: ServerProcess, ids: list[str]) -> list[str]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return [client.get(f"/v1/tasks/{i}").json()["status"] for i in ids]


def wait_for(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.1)


def finish_and_count(server: ServerProcess, back: ServerProcess, ids: list[str], before: int) -> None:
    server.start()
    wait_for(
        lambda: set(statuses(server, ids)) == {"completed"}, 60, "every task completes after the restart"
    )
    billed = db_rows(server, "SELECT state, COUNT(*) FROM usage GROUP BY state")
    assert billed == [("settled", TASKS)], billed
    assert back_tasks(back) - before == TASKS, "the back made each image once"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_graceful_stop_pays_for_no_image_twice(
    backend: str,
    back: ServerProcess,
    make_server: MakeServer,
    postgres: PostgresDatabases | None,
    tmp_path: Path,
) -> None:
    """The grace period ends with images in flight upstream (async tasks there) and more waiting for the
    channel's four slots: the slots freed by the stop go to nobody, and the images in flight are taken
    over after the restart, not made again."""
    if backend == "postgres" and postgres is None:
        pytest.skip("PostgreSQL runs need PIXELGATE_TEST_DATABASE_URL; .ci/run sets it")
    before = back_tasks(back)
    server = front(make_server, backend, back, tmp_path, "async = true, poll_interval = 0.1")
    ids = submit(server)
    wait_for(lambda: statuses(server, ids).count("completed") >= 4, 30, "the first images are made")
    server.stop()
    left = {status for (status,) in db_rows(server, "SELECT status FROM tasks")}
    assert "running" not in left, f"a graceful stop gives every task it holds back to the queue: {left}"
    finish_and_count(server, back, ids, before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_crash_pays_for_no_image_twice(
    backend: str,
    back: ServerProcess,
    make_server: MakeServer,
    postgres: PostgresDatabases | None,
    tmp_path: Path,
) -> None:
    """SIGKILL in the middle of synchronous upstream calls: the worker that takes the tasks over sends the
    same calls again with the same Idempotency-Key, and the back answers with the images it made."""
    if backend == "postgres" and postgres is None:
        pytest.skip("PostgreSQL runs need PIXELGATE_TEST_DATABASE_URL; .ci/run sets it")
    before = back_tasks(back)
    server = front(make_server, backend, back, tmp_path, "", "--lease-seconds", "1")
    ids = submit(server)
    wait_for(lambda: statuses(server, ids).count("completed") >= 4, 30, "the first images are made")
    server.kill()
    finish_and_count(server, back, ids, before)
