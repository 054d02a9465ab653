"""What one synchronous image costs, on SQLite and PostgreSQL: its task row is written twice (saved already
claimed by this process's worker, then ended), in two transactions, and never read back; nothing goes
through the claim loop. When the worker has no free slot, the request is queued as before. And no route
dependency costs a thread hop.

The runtime runs in the test's process, so that every statement it sends can be seen."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from conftest import PostgresDatabases
from pixelgate.app import create_app
from pixelgate.catalog import default_catalog
from pixelgate.config import Settings, resolve_config
from pixelgate.core.request import ImageRequest
from pixelgate.core.task import Status
from pixelgate.runtime import Runtime, build_runtime
from pixelgate.store.db import Database
from pixelgate.store.schema import tasks


class Statements:
    """The SQL statements a database is sent, as ``VERB table`` (``SELECT tasks``, ``UPDATE tasks``), by any
    of its engines."""

    def __init__(self, db: Database) -> None:
        self.seen: list[str] = []
        for engine in db.sync_engines:
            sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        text = " ".join(statement.split())
        verb = text.split(" ", 1)[0].upper()
        table = re.search(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", text, re.I)
        self.seen.append(f"{verb} {table.group(1) if table else '-'}")

    def on(self, table: str) -> list[str]:
        return [s for s in self.seen if s.endswith(f" {table}")]


@pytest.fixture()
async def runtime(backend: str, postgres: PostgresDatabases | None, tmp_path: Path) -> AsyncIterator[Runtime]:
    url = await asyncio.to_thread(postgres.create) if backend == "postgres" and postgres else None
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        emulate=True,
        emulate_latency=0.2,
        worker_concurrency=2,
        auth=False,
        listen=False,
    )
    async with build_runtime(settings, resolve_config(settings, default_catalog(), {})) as built:
        yield built


def request(prompt: str) -> ImageRequest:
    return ImageRequest(model="gemini-3.1-flash-image", prompt=prompt, image_size="512")


async def test_a_synchronous_image_writes_its_task_twice_and_never_reads_it(runtime: Runtime) -> None:
    await runtime.service.wait_for_result(  # a first request, so that nothing made once is counted
        (await runtime.service.submit(request("warm"), dialect="openai", caller_waits=True)).id
    )
    seen = Statements(runtime.db)
    task = await runtime.service.submit(request("a lighthouse"), dialect="openai", caller_waits=True)
    assert task.status is Status.RUNNING and task.attempts == 1, "saved already claimed"
    done = await runtime.service.wait_for_result(task.id)

    assert done.status is Status.SUCCEEDED and done.result is not None and len(done.result.images) == 1
    assert seen.on("tasks") == ["INSERT tasks", "UPDATE tasks"], seen.seen
    async with runtime.db.engine.connect() as conn:
        row = (await conn.execute(sa.select(tasks).where(tasks.c.id == task.id))).one()
    assert (row.status, row.attempts, row.worker_id, row.progress) == ("succeeded", 1, None, 100)


async def test_a_request_the_worker_has_no_slot_for_is_queued(runtime: Runtime) -> None:
    """Two slots: two requests are saved claimed, the third queued, and all three finish."""
    submitted = [
        await runtime.service.submit(request(f"busy {i}"), dialect="openai", caller_waits=True)
        for i in range(3)
    ]
    assert [t.status for t in submitted] == [Status.RUNNING, Status.RUNNING, Status.QUEUED]
    async with runtime.db.engine.connect() as conn:
        held = (await conn.execute(sa.select(tasks.c.id, tasks.c.worker_id))).all()
    assert {worker for _, worker in held} == {runtime.worker.id if runtime.worker else None, None}
    done = await asyncio.gather(*(runtime.service.wait_for_result(t.id) for t in submitted))
    assert [t.status for t in done] == [Status.SUCCEEDED] * 3
    assert all(t.attempts == 1 for t in done)


async def test_an_asynchronous_request_is_queued_as_before(runtime: Runtime) -> None:
    task = await runtime.service.submit(request("later"), dialect="tasks", caller_waits=False)
    assert task.status is Status.QUEUED
    assert (await runtime.service.wait(task.id)).status is Status.SUCCEEDED


def dependencies_of(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from dependencies_of(sub)


def test_no_route_dependency_runs_in_the_thread_pool(tmp_path: Path) -> None:
    """FastAPI runs a plain-function dependency in its thread pool: a thread hop per dependency per
    request. Every dependency of every route is a coroutine function."""
    app = create_app(Settings(data_dir=tmp_path, emulate=True))
    routers = [route.original_router for route in app.routes if hasattr(route, "original_router")]
    seen: set[Any] = set()
    for router in routers:
        seen.update(depends.dependency for depends in router.dependencies)
        for route in router.routes:
            if isinstance(route, APIRoute):
                seen.update(dependencies_of(route.dependant))
    assert len(seen) > 10, "the walk found the dependencies"
    plain = sorted(
        f"{call.__module__}.{call.__qualname__}" for call in seen if not inspect.iscoroutinefunction(call)
    )
    assert plain == []
