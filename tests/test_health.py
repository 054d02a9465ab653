"""``/healthz`` (the process is up) and ``/readyz`` (it can work now: the database answers, the workers
claim), answered without a key; a database that stops taking connections turns ready into a 503 that
says so, and back once it takes them again."""

from __future__ import annotations

import time

import httpx
import pytest

from conftest import MakeServer, PostgresDatabases, ServerProcess


def ready(server: ServerProcess) -> httpx.Response:
    return httpx.get(f"{server.url}/readyz", timeout=10)


def test_ready_with_its_database_and_workers(make_server: MakeServer) -> None:
    server = make_server("sqlite", "--emulate", "--auth")
    assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {"status": "ok"}
    answer = ready(server)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ready", "checks": {"database": "ok", "workers": "running"}}


def test_an_api_only_process_is_ready_without_workers(make_server: MakeServer) -> None:
    server = make_server("sqlite", "--emulate", "--no-workers")
    answer = ready(server)
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"]["workers"] == "not run by this process (--no-workers)"


def test_a_database_that_refuses_connections_is_not_ready(
    make_server: MakeServer, postgres: PostgresDatabases | None
) -> None:
    if postgres is None:
        pytest.skip("needs PIXELGATE_TEST_DATABASE_URL")
    server = make_server("postgres", "--emulate")
    assert server.database_url is not None
    name = server.database_url.rpartition("/")[2]
    assert ready(server).status_code == 200
    postgres.admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    postgres.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        answer = ready(server)
        assert answer.status_code == 503, answer.text
        assert answer.json()["status"] == "not ready"
        assert answer.json()["checks"]["database"].startswith("unreachable ("), answer.text
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200  # alive all the same
    finally:
        postgres.admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    deadline = time.monotonic() + 30
    while (answer := ready(server)).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answer.status_code == 200, answer.text
