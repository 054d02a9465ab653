"""A channel's concurrency slots, with interactive work first and a share kept free of batch lines.

A plain semaphore serves waiters in arrival order: a batch of a thousand lines queued at a channel would
make the next interactive request wait behind all of them. Here an interactive waiter is always served
before a batch one, and batch lines may hold at most ``size - reserve`` slots, so that an interactive
request finds a free slot at once unless interactive work alone fills the channel.
"""

from __future__ import annotations

import asyncio
from collections import deque


class SlotsClosed(Exception):
    """The process is stopping: no new work starts at a channel, and what waited for a slot goes back to
    the queue (the worker sees to it)."""


class PrioritySlots:
    def __init__(self, size: int) -> None:
        self.size = size
        self.reserve = size // 4  # a channel of 1 to 3 slots keeps none back (batch work could not run)
        self.busy = 0
        self.closed: str | None = None  # why, once closed
        self._interactive: deque[asyncio.Future[None]] = deque()
        self._batch: deque[asyncio.Future[None]] = deque()

    def _batch_may_take(self) -> bool:
        return not self._interactive and self.busy < self.size - self.reserve

    async def acquire(self, *, batch: bool) -> None:
        if self.closed is not None:
            raise SlotsClosed(self.closed)
        waiting = self._batch if batch else self._interactive
        free = self._batch_may_take() if batch else self.busy < self.size
        if free and not waiting:
            self.busy += 1
            return
        granted = asyncio.get_running_loop().create_future()
        waiting.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # granted just as it was cancelled: the slot goes to the next waiter
            else:
                waiting.remove(granted)
                self._grant()  # an interactive waiter gone may let a batch one in
            raise

    def release(self) -> None:
        self.busy -= 1
        self._grant()

    def close(self, why: str) -> None:
        """Hand out no slot from now on: every waiter, and whoever asks later, gets ``SlotsClosed(why)``.
        Work that holds a slot goes on. (A slot freed as the process stops must not start new upstream
        work that the stop would then cut short, and that whoever takes the task over would pay for again.)"""
        self.closed = why
        for waiting in (self._interactive, self._batch):
            while waiting:
                waiter = waiting.popleft()
                if not waiter.done():
                    waiter.set_exception(SlotsClosed(why))

    def _grant(self) -> None:
        if self.closed is not None:
            return
        # A granted waiter counts as busy from now on, before it even wakes.
        while self._interactive and self.busy < self.size:
            self._give(self._interactive.popleft())
        while self._batch and self._batch_may_take():
            self._give(self._batch.popleft())

    def _give(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self.busy += 1
            waiter.set_result(None)
