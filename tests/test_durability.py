"""Nothing accepted is ever lost: SIGKILL while tasks are queued and running, start again, and every task
completes exactly once. Real processes, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import httpx
import pytest

from conftest import MakeServer, ServerProcess, db_rows

SLOW = ("--emulate", "--emulate-latency", "1.5", "--worker-concurrency", "3", "--lease-seconds", "3")
# A dead process's lease running out is told by nobody: a process listening on PostgreSQL finds it at its
# safety-net poll, 10 s by default. These tests wait for exactly that, so they poll every second.
TAKEOVER = {"PIXELGATE_NOTIFIED_POLL_INTERVAL": "1"}


def submit(server: ServerProcess, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(count):
            response = client.post(
                "/v1/images/generations",
                json={
                    "model": "gemini-3.1-flash-image",
                    "prompt": f"durable {i}",
                    "size": "1:1",
                    "resolution": "512",
                    "async": True,
                },
            )
            assert response.status_code == 200, response.text
            ids.append(response.json()["id"])
    return ids


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def statuses(server: ServerProcess, ids: list[str]) -> dict[str, str]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return {task_id: client.get(f"/v1/tasks/{task_id}").json()["status"] for task_id in ids}


def wait_all_completed(server: ServerProcess, ids: list[str], timeout: float) -> None:
    wait_until(
        lambda: set(statuses(server, ids).values()) == {"completed"}, timeout, "every task to complete"
    )


def assert_completed_exactly_once(server: ServerProcess, ids: list[str]) -> list[int]:
    found = dict(
        (row[0], row[1:]) for row in db_rows(server, "SELECT id, status, attempts, worker_id FROM tasks")
    )
    assert set(found) == set(ids), "no task lost, none made up"
    for task_id in ids:
        status, _attempts, worker_id = found[task_id]
        assert status == "succeeded", f"{task_id} is {status}"
        assert worker_id is None, "a settled task holds no lease"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for task_id in ids:
            body = client.get(f"/v1/tasks/{task_id}").json()
            assert body["status"] == "completed" and body["progress"] == 100
            assert len(body["data"]) == 1, "one image: the task was settled once"
            assert client.get(body["data"][0]["url"]).status_code == 200
    blobs = sorted(p.name for p in (server.data_dir / "blobs").glob("task_img_*/out-*"))
    assert len(blobs) == len(ids), "exactly one output blob per task"
    return [found[task_id][1] for task_id in ids]


def test_sigkill_loses_nothing(backend: str, make_server: MakeServer) -> None:
    first = make_server(backend, *SLOW, env=TAKEOVER)
    ids = submit(first, 12)
    wait_until(lambda: "processing" in statuses(first, ids).values(), 20, "a task to start running")
    first.kill()

    running_at_kill = {row[0] for row in db_rows(first, "SELECT id FROM tasks WHERE status = 'running'")}
    queued_at_kill = {row[0] for row in db_rows(first, "SELECT id FROM tasks WHERE status = 'queued'")}
    assert running_at_kill and queued_at_kill, "the kill caught tasks both running and queued"

    second = make_server(
        backend, *SLOW, env=TAKEOVER, database_url=first.database_url, data_dir=first.data_dir
    )
    wait_all_completed(second, ids, 60)
    attempts = dict(zip(ids, assert_completed_exactly_once(second, ids), strict=True))
    assert all(attempts[task_id] == 2 for task_id in running_at_kill), "running tasks were recovered by lease"
    assert all(attempts[task_id] == 1 for task_id in queued_at_kill), "queued tasks simply ran"


def test_a_synchronous_request_saved_claimed_is_taken_over_after_a_kill(
    backend: str, make_server: MakeServer
) -> None:
    """A synchronous request is saved already running, held by its own process's worker: when that process
    dies with it, the lease runs out and the next process runs it, once."""
    first = make_server(backend, *SLOW, env=TAKEOVER)
    body = {"model": "gemini-3.1-flash-image", "prompt": "held", "size": "1:1", "resolution": "512"}

    def call() -> None:
        with contextlib.suppress(httpx.TransportError):
            httpx.post(f"{first.url}/v1/images/generations", json=body, timeout=30)

    callers = [threading.Thread(target=call) for _ in range(2)]
    for caller in callers:
        caller.start()
    running = "SELECT id, attempts, worker_id FROM tasks WHERE status = 'running'"
    wait_until(lambda: len(db_rows(first, running)) == 2, 20, "both requests to be saved running")
    held = db_rows(first, running)
    assert all(attempts == 1 and worker_id for _, attempts, worker_id in held)
    first.kill()
    for caller in callers:
        caller.join(30)

    second = make_server(
        backend, *SLOW, env=TAKEOVER, database_url=first.database_url, data_dir=first.data_dir
    )
    ids = [task_id for task_id, _, _ in held]
    wait_all_completed(second, ids, 60)
    assert assert_completed_exactly_once(second, ids) == [2, 2], "each taken over once, after its lease"


def test_two_workers_one_killed(backend: str, make_server: MakeServer) -> None:
    """Two processes share one database (and data dir); one dies mid-work; the other finishes its tasks."""
    doomed = make_server(backend, *SLOW, env=TAKEOVER)
    survivor = make_server(
        backend, *SLOW, env=TAKEOVER, database_url=doomed.database_url, data_dir=doomed.data_dir
    )
    ids = submit(doomed, 10) + submit(survivor, 10)

    def doomed_is_working() -> bool:
        return bool(
            db_rows(
                doomed,
                f"SELECT id FROM tasks WHERE status = 'running' AND worker_id LIKE "
                f"'%-{doomed.process.pid}-%'",
            )
        )  # type: ignore[union-attr]

    wait_until(doomed_is_working, 20, "the first process to run a task")
    doomed.kill()
    wait_all_completed(survivor, ids, 90)
    assert_completed_exactly_once(survivor, ids)


def test_sigterm_finishes_or_requeues(backend: str, make_server: MakeServer) -> None:
    server = make_server(backend, *SLOW, env=TAKEOVER)
    ids = submit(server, 6)
    wait_until(lambda: "processing" in statuses(server, ids).values(), 20, "a task to start running")
    server.stop()
    left = {row[1] for row in db_rows(server, "SELECT id, status FROM tasks")}
    assert "running" not in left, "a graceful stop leaves no task holding a lease"
    again = make_server(
        backend, *SLOW, env=TAKEOVER, database_url=server.database_url, data_dir=server.data_dir
    )
    wait_all_completed(again, ids, 60)
    assert_completed_exactly_once(again, ids)


@pytest.mark.parametrize("count", [40])
def test_sync_and_async_under_concurrency(server: ServerProcess, count: int) -> None:
    """Many synchronous calls at once all come back, each with its own image."""

    async def one(client: httpx.AsyncClient, i: int) -> str:
        response = await client.post(
            "/v1/images/generations",
            json={"model": "gemini-2.5-flash-image", "prompt": f"parallel {i}", "response_format": "url"},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["data"][0]["url"])

    async def run() -> list[str]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(*(one(client, i) for i in range(count)))

    urls = asyncio.run(run())
    assert len(set(urls)) == count
