"""``tasks/wakeups.py`` on its own, on a PostgreSQL database of its own: two ``Wakeups`` stand for two
processes, each with its bus. (``test_cross_process.py`` runs two real servers.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import PostgresDatabases
from pixelgate.store.db import Database
from pixelgate.tasks.bus import Bus, Event, TaskEndedElsewhere, TaskQueuedElsewhere, WakeupsChanged
from pixelgate.tasks.wakeups import APPLICATION_NAME, Connect, Wakeups, connector

WAIT = 10.0  # a bound on what should take milliseconds


@pytest.fixture()
async def db(postgres: PostgresDatabases | None, tmp_path: Path) -> AsyncIterator[Database]:
    if postgres is None:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's: set PIXELGATE_TEST_DATABASE_URL")
    url = await asyncio.to_thread(postgres.create)  # it runs an event loop of its own
    database = await Database.open(url, data_dir=tmp_path)
    yield database
    await database.close()


class Heard:
    """A bus and what was published on it; ``until`` waits until what was published passes a check."""

    def __init__(self) -> None:
        self.bus = Bus()
        self.events: list[Event] = []
        self._waiting: tuple[Callable[[list[Event]], bool], asyncio.Future[None]] | None = None
        for kind in (TaskQueuedElsewhere, TaskEndedElsewhere, WakeupsChanged):
            self.bus.subscribe(kind, self._heard)

    def _heard(self, event: Event) -> None:
        self.events.append(event)
        if self._waiting is not None and self._waiting[0](self.events) and not self._waiting[1].done():
            self._waiting[1].set_result(None)

    async def until(self, check: Callable[[list[Event]], bool]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting = (check, future)
        if not check(self.events):
            await asyncio.wait_for(future, WAIT)


LISTENING = WakeupsChanged(listening=True, poll_interval=10.0)
POLLING = WakeupsChanged(listening=False, poll_interval=1.0)


def wakeups(connect: Connect, heard: Heard, **timing: Any) -> Wakeups:
    return Wakeups(connect, heard.bus, poll_interval=1.0, notified_poll_interval=10.0, **timing)


async def test_a_committed_change_is_heard_by_the_others_and_nothing_else_is(db: Database) -> None:
    one, other = Heard(), Heard()
    sender, listener = wakeups(connector(db.engine), one), wakeups(connector(db.engine), other)
    await listener.start()
    try:
        async with db.transaction() as conn:
            await conn.run_sync(sender.announce, "queued", ["task_1", "task_2"])
        with pytest.raises(RuntimeError):
            async with db.transaction() as conn:
                await conn.run_sync(sender.announce, "ended", ["rolled_back"])
                raise RuntimeError("the change fails")
        async with db.transaction() as conn:
            await conn.run_sync(listener.announce, "ended", ["its_own"])  # published on its own bus already
            await conn.run_sync(sender.announce, "requeued", ["task_3"])
            await conn.run_sync(sender.announce, "cancelled", ["task_1"])
        async with db.transaction() as conn:
            await conn.run_sync(sender.announce, "ended", ["task_2"])
        await other.until(lambda events: TaskEndedElsewhere("task_2") in events)
    finally:
        await listener.stop()
    assert other.events == [
        LISTENING,
        TaskQueuedElsewhere("task_1"),
        TaskQueuedElsewhere("task_2"),
        TaskQueuedElsewhere("task_3"),
        TaskEndedElsewhere("task_1"),
        TaskEndedElsewhere("task_2"),
    ]
    assert one.events == [], "a Wakeups not started hears nothing"


async def test_a_killed_connection_falls_back_to_polling_and_listens_again(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    heard = Heard()
    listener = wakeups(connector(db.engine), heard, first_retry=0.01)
    await listener.start()
    try:
        async with db.engine.connect() as conn:
            killed = await conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = current_database() AND application_name = '{APPLICATION_NAME}'"
            )
            assert killed.all() == [(True,)]
        await heard.until(lambda events: events.count(LISTENING) == 2)
        async with db.transaction() as conn:
            await conn.run_sync(wakeups(connector(db.engine), Heard()).announce, "queued", ["after"])
        await heard.until(lambda events: TaskQueuedElsewhere("after") in events)
    finally:
        await listener.stop()
    assert heard.events == [LISTENING, POLLING, LISTENING, TaskQueuedElsewhere("after")]
    warnings = [r for r in caplog.records if r.name == "pixelgate.wakeups" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "polling every 1 s" in warnings[0].getMessage(), warnings


async def test_no_connection_at_start_is_polling_until_one_is_made(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    real = connector(db.engine)
    attempts = 0

    async def refused_three_times() -> Any:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return await real()

    heard = Heard()
    listener = wakeups(refused_three_times, heard, first_retry=0.01)
    await listener.start()
    try:
        assert attempts == 1 and not listener.listening, "start does not wait for a database that refuses"
        await heard.until(lambda events: LISTENING in events)
    finally:
        await listener.stop()
    assert attempts == 4
    assert heard.events == [LISTENING], "polling was the default: nothing said otherwise until then"
    warnings = [r for r in caplog.records if r.name == "pixelgate.wakeups" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "ConnectionRefusedError" in warnings[0].getMessage(), warnings
