"""Waiting for a task to finish: at once when it ends in this process (``TaskEnded``, ``TaskCancelled``
on the bus), by polling the database with backoff when another process ends it."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from pixelgate.core.task import Task
from pixelgate.tasks.bus import Bus, TaskCancelled, TaskEnded
from pixelgate.tasks.queue import TaskQueue


class Waiters:
    def __init__(self, queue: TaskQueue, bus: Bus, *, max_poll_interval: float = 1.0) -> None:
        self.queue = queue
        self.max_poll_interval = max_poll_interval
        self._waiters: dict[str, list[asyncio.Future[Task]]] = defaultdict(list)
        bus.subscribe(TaskEnded, lambda event: self.finished(event.task))
        bus.subscribe(TaskCancelled, lambda event: self.finished(event.task))

    def finished(self, task: Task) -> None:
        """``task`` reached a terminal state here: its waiters have it at once."""
        for future in self._waiters.pop(task.id, []):
            if not future.done():
                future.set_result(task)

    async def wait(self, task_id: str) -> Task:
        future: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
        self._waiters[task_id].append(future)
        try:
            interval = 0.05
            while True:
                try:
                    return await asyncio.wait_for(asyncio.shield(future), timeout=interval)
                except TimeoutError:
                    task = await self.queue.get(task_id)
                    if task.status.is_terminal:
                        return task
                    interval = min(interval * 2, self.max_poll_interval)
        finally:
            waiters = self._waiters.get(task_id)
            if waiters and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[task_id]
