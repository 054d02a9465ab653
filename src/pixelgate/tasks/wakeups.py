"""Wake-ups across processes on PostgreSQL, by LISTEN/NOTIFY.

Within a process the bus wakes the worker and the waiters the moment a task is queued or ends; what another
process sharing the database does they would find only when they next look. On PostgreSQL every change of a
task's state (the lifecycle's ``on_change`` hook, ``announce``) also runs, in its own transaction::

    SELECT pg_notify('pixelgate_tasks', '<change> <task id> <origin>')

``pg_notify`` is transactional: PostgreSQL delivers it at commit, so whoever it wakes finds the row changed,
and a change rolled back is never told. Each process holds one connection of its own, outside the pool,
that LISTENs (``application_name`` ``pixelgate-listen``), and publishes on its bus what the other processes
told; its own changes were published already (the origin, random per process, tells them apart)::

    queued, requeued   ─►  TaskQueuedElsewhere   the worker claims now
    ended, cancelled   ─►  TaskEndedElsewhere    its waiters read the task; a worker running it stops

While that connection is up (``WakeupsChanged``), the worker and the waiters still look in the database, as a
safety net, but every ``notified_poll_interval`` (10 s by default) instead of every ``poll_interval`` (1 s).
When it drops, or stops answering the check made every ``check_seconds``, they go back to ``poll_interval``
and look once at once; the listener says so once in the log and reconnects with backoff (0.5 s, doubling
up to 30 s); once it is back they look once more (for what was told while nobody listened) and slow down.

Why 10 s and not longer: the safety net is all there is for what no NOTIFY tells. A worker that died leaves
its tasks running until its lease runs out, and nobody says when it has; they are taken over at the next
claim, up to this long after the lease (30 s). 10 s is a tenth of the idle claims and of the reads each
waiting request made at 1 s, and adds a third of a lease to a crash's delay; a longer interval saves
little more (the other loops of an idle process still look every second).

SQLite has no LISTEN: nothing here is built for it, and its processes poll as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, NoReturn

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from pixelgate.tasks.bus import Bus, TaskEndedElsewhere, TaskQueuedElsewhere, WakeupsChanged
from pixelgate.tasks.lifecycle import Change

log = logging.getLogger("pixelgate.wakeups")

CHANNEL = "pixelgate_tasks"
APPLICATION_NAME = "pixelgate-listen"
_HEARD: dict[str, type[TaskQueuedElsewhere] | type[TaskEndedElsewhere]] = {
    "queued": TaskQueuedElsewhere,
    "requeued": TaskQueuedElsewhere,
    "ended": TaskEndedElsewhere,
    "cancelled": TaskEndedElsewhere,
}
# One statement for any number of tasks (a stopped batch cancels hundreds in one transaction).
_NOTIFY = sa.text("SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) AS payload")
_CONNECT_SECONDS = 10.0

Connect = Callable[[], Awaitable[Any]]  # an asyncpg connection


def connector(engine: AsyncEngine) -> Connect:
    """``asyncpg.connect`` with what the engine connects with (host, port, user, password, database, ssl…
    from its URL), less the options that only SQLAlchemy's dialect understands."""
    _, params = engine.dialect.create_connect_args(engine.url)
    known = inspect.signature(asyncpg.connect).parameters
    given = {name: value for name, value in params.items() if name in known}
    return partial(
        asyncpg.connect,
        **given,
        timeout=_CONNECT_SECONDS,
        server_settings={"application_name": APPLICATION_NAME},
    )


class Wakeups:
    def __init__(
        self,
        connect: Connect,
        bus: Bus,
        *,
        poll_interval: float,
        notified_poll_interval: float,
        check_seconds: float = 10.0,
        first_retry: float = 0.5,
        max_retry: float = 30.0,
    ) -> None:
        self.connect = connect
        self.bus = bus
        self.poll_interval = poll_interval
        self.notified_poll_interval = notified_poll_interval
        self.check_seconds = check_seconds
        self.first_retry = first_retry
        self.max_retry = max_retry
        self.origin = secrets.token_hex(4)
        self.listening = False
        self._tried = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    def announce(self, conn: Connection, change: Change, task_ids: Sequence[str]) -> None:
        """The lifecycle's ``on_change`` hook: tell the other processes, when ``conn`` commits."""
        payloads = [f"{change} {task_id} {self.origin}" for task_id in task_ids]
        conn.execute(_NOTIFY, {"channel": CHANNEL, "payloads": payloads})

    async def start(self) -> None:
        """Listen from now on; returns once the first connection is made, or has failed (the process then
        polls until a later one is made)."""
        self._loop_task = asyncio.create_task(self._run(), name="pixelgate-listen")
        await self._tried.wait()

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task

    async def _run(self) -> None:
        retry = self.first_retry
        while True:
            try:
                await self._listen()
            except Exception as exc:  # whatever the driver raises (refused, reset, timed out): try again
                if self.listening or not self._tried.is_set():  # once per outage
                    log.warning(
                        "pixelgate: no LISTEN connection to PostgreSQL (%s: %s): other processes' tasks "
                        "are found by polling every %g s until it is back; reconnecting",
                        type(exc).__name__,
                        exc,
                        self.poll_interval,
                    )
                else:
                    log.debug("reconnecting to LISTEN failed: %s: %s", type(exc).__name__, exc)
            self._tried.set()
            if self.listening:
                self._set(listening=False)
                retry = self.first_retry  # it was up: a new outage starts the backoff afresh
            await asyncio.sleep(retry * random.uniform(1.0, 1.5))
            retry = min(retry * 2, self.max_retry)

    async def _listen(self) -> NoReturn:
        """Listen on one connection until it is lost."""
        conn = await self.connect()
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._heard)
            if self._tried.is_set():
                log.info("pixelgate: listening to PostgreSQL again: other processes' tasks wake this one")
            self._tried.set()
            self._set(listening=True)
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=self.check_seconds)
                    break
                # A connection can die without a word (a host or a link gone): ask it something. LISTEN
                # on a channel it listens to already does nothing, and keeps the connection showing as
                # LISTEN in pg_stat_activity, where an operator looks for it.
                await asyncio.wait_for(conn.execute(f'LISTEN "{CHANNEL}"'), timeout=self.check_seconds)
            raise ConnectionError("the connection was closed")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)
            conn.terminate()

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        change, _, rest = payload.partition(" ")
        task_id, _, origin = rest.partition(" ")
        event = _HEARD.get(change)
        if event is not None and task_id and origin != self.origin:
            self.bus.publish(event(task_id))

    def _set(self, *, listening: bool) -> None:
        self.listening = listening
        interval = self.notified_poll_interval if listening else self.poll_interval
        self.bus.publish(WakeupsChanged(listening, interval))
