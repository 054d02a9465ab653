"""Waiting for a task to finish: at once when it ends in this process (``TaskEnded``, ``TaskCancelled`` on
the bus) or when another process says it ended it (``TaskEndedElsewhere``, PostgreSQL's NOTIFY); else by
reading it from the database now and then.

How often depends on whether other processes are heard (``WakeupsChanged``). While they are not (SQLite, or
the LISTEN connection is down), a waiter reads its task after 50 ms, then twice as long each time, up to
``poll_interval``: a quick task is found quickly without a query per millisecond. While they are, every end
is told, and reading is only the safety net, every ``poll_interval`` of the event (10 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

from pixelgate.core.task import Task
from pixelgate.tasks.bus import Bus, TaskCancelled, TaskEnded, TaskEndedElsewhere, WakeupsChanged
from pixelgate.tasks.queue import TaskQueue

_FIRST_POLL = 0.05


class Waiters:
    def __init__(self, queue: TaskQueue, bus: Bus, *, poll_interval: float = 1.0) -> None:
        self.queue = queue
        self.poll_interval = poll_interval
        self.listening = False
        # Resolved with the task when it ended here; with None when it is to be read again (it ended
        # elsewhere, or what tells us of other processes' changes came up or went down).
        self._waiters: dict[str, list[asyncio.Future[Task | None]]] = defaultdict(list)
        # Of those, the ones registered by ``expect`` for a task that has not started yet.
        self._expected: dict[str, asyncio.Future[Task | None]] = {}
        bus.subscribe(TaskEnded, lambda event: self.finished(event.task))
        bus.subscribe(TaskCancelled, lambda event: self.finished(event.task))
        bus.subscribe(TaskEndedElsewhere, lambda event: self._look(event.task_id))
        bus.subscribe(WakeupsChanged, self._repace)

    def expect(self, task_id: str) -> None:
        """``task_id`` is about to start in this process, which publishes its end here: the first wait for
        it waits for that, without reading the task first. Called before it can end."""
        future: asyncio.Future[Task | None] = asyncio.get_running_loop().create_future()
        self._waiters[task_id].append(future)
        self._expected[task_id] = future

    def finished(self, task: Task) -> None:
        """``task`` reached a terminal state here: its waiters have it at once."""
        self._expected.pop(task.id, None)
        for future in self._waiters.pop(task.id, []):
            if not future.done():
                future.set_result(task)

    def _look(self, task_id: str) -> None:
        self._expected.pop(task_id, None)
        for future in self._waiters.pop(task_id, []):
            if not future.done():
                future.set_result(None)

    def _repace(self, event: WakeupsChanged) -> None:
        self.listening = event.listening
        self.poll_interval = event.poll_interval
        for task_id in list(self._waiters):
            self._look(task_id)

    async def wait(self, task_id: str) -> Task:
        expected = self._expected.pop(task_id, None)
        if expected is not None:  # registered before the task started: nothing to read first
            try:
                with contextlib.suppress(TimeoutError):
                    ended = await asyncio.wait_for(expected, timeout=self.poll_interval)
                    if ended is not None:
                        return ended
            finally:
                self._forget(task_id, expected)
        interval = _FIRST_POLL
        while True:
            future: asyncio.Future[Task | None] = asyncio.get_running_loop().create_future()
            self._waiters[task_id].append(future)
            try:
                # Read after registering: an end told before this registration is seen in the row, one told
                # after it resolves the future.
                task = await self.queue.get(task_id)
                if task.status.is_terminal:
                    return task
                timeout = self.poll_interval if self.listening else min(interval, self.poll_interval)
                with contextlib.suppress(TimeoutError):
                    ended = await asyncio.wait_for(future, timeout=timeout)
                    if ended is not None:
                        return ended
                interval *= 2
            finally:
                self._forget(task_id, future)

    def _forget(self, task_id: str, future: asyncio.Future[Task | None]) -> None:
        waiters = self._waiters.get(task_id)
        if waiters and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[task_id]
