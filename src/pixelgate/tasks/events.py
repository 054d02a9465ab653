"""Waiting for a task to finish: instantly when this process's worker ran it, by polling the database
with backoff when another process did."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from pixelgate.core.task import Task
from pixelgate.tasks.queue import TaskQueue


class TaskEvents:
    def __init__(self, queue: TaskQueue, *, max_poll_interval: float = 1.0) -> None:
        self.queue = queue
        self.max_poll_interval = max_poll_interval
        self._waiters: dict[str, list[asyncio.Future[Task]]] = defaultdict(list)

    def has_waiters(self, task_id: str) -> bool:
        return task_id in self._waiters

    def finished(self, task: Task) -> None:
        """Called by the worker when a task reaches a terminal state (or is cancelled here)."""
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
