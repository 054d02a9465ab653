"""The batch runner against a cancel that lands between its reading a batch and its writing it: the cancel
is never lost, on SQLite and PostgreSQL. The runner works on a snapshot of the batch; a cancel (another
request, maybe another process) can commit after that snapshot was read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from pixelgate.auth.keys import ANONYMOUS, Caller, KeyStore
from pixelgate.tasks.batch_runner import BatchRunner
from pixelgate.tasks.batches import Batch, BatchLine, BatchState, BatchStore, LineResult
from pixelgate.tasks.bus import Bus
from pixelgate.tasks.queue import TaskQueue


class CancelledAfterItIsRead(BatchStore):
    """A store whose next read of a batch is followed at once by a cancel of it: what the runner gets is a
    snapshot that the cancel has already made stale."""

    cancel_after_next_read = False

    async def get(self, batch_id: str, *, owner: str | None = None, dialect: str | None = None) -> Batch:
        batch = await super().get(batch_id, owner=owner, dialect=dialect)
        if self.cancel_after_next_read:
            self.cancel_after_next_read = False
            await self.cancel(batch_id)
        return batch


class Recorded:
    """A batch dialect that makes no tasks: it records which lines it was asked to make, and can have the
    batch cancelled while it makes one."""

    def __init__(self, store: BatchStore) -> None:
        self.store = store
        self.submitted: list[int] = []
        self.cancel_at: int | None = None

    async def submit_line(self, batch: Batch, line: BatchLine, task_id: str, caller: Caller) -> None:
        self.submitted.append(line.line)
        if line.line == self.cancel_at:
            await self.store.cancel(batch.id)

    async def finalize(self, batch: Batch, results: AsyncIterator[LineResult]) -> dict[str, Any]:
        return {}


async def no_tasks_to_cancel(batch_id: str) -> int:
    return 0


@pytest.fixture()
async def runner_parts(queue: TaskQueue) -> tuple[CancelledAfterItIsRead, BatchRunner, Recorded]:
    bus = Bus()
    store = CancelledAfterItIsRead(queue.db, queue, bus)
    dialect = Recorded(store)
    runner = BatchRunner(
        store=store,
        keys=KeyStore(queue.db),
        bus=bus,
        dialects={"openai": dialect},
        cancel_tasks=no_tasks_to_cancel,
        poll_interval=0.05,
        lease_seconds=30,
    )
    return store, runner, dialect


async def three_lines(store: BatchStore) -> Batch:
    lines: list[tuple[str | None, dict[str, Any]]] = [
        (f"line-{i}", {"prompt": f"tile {i}"}) for i in range(3)
    ]
    return await store.create(
        dialect="openai", endpoint="/v1/images/generations", caller=ANONYMOUS, lines=lines
    )


async def ended(store: BatchStore, runner: BatchRunner, batch_id: str) -> Batch:
    for _ in range(5):
        await runner.run_once()
        batch = await store.get(batch_id)
        if batch.state.is_terminal:
            return batch
    raise AssertionError(f"batch {batch_id} is still {batch.state.value} after five passes")


@pytest.mark.parametrize(
    ("read_as", "submitted"),
    [
        (BatchState.VALIDATING, 0),  # the runner is about to start it
        (BatchState.IN_PROGRESS, 3),  # every line has ended: the runner is about to write its results
    ],
)
async def test_a_cancel_committed_after_the_runner_read_the_batch_ends_it_cancelled(
    runner_parts: tuple[CancelledAfterItIsRead, BatchRunner, Recorded], read_as: BatchState, submitted: int
) -> None:
    store, runner, dialect = runner_parts
    batch = await three_lines(store)
    await store.update(batch.id, state=read_as.value, submitted=submitted)

    store.cancel_after_next_read = True  # the runner's read: its first pass is the next thing to read it
    done = await ended(store, runner, batch.id)

    assert done.state is BatchState.CANCELLED, f"the cancel was answered, yet the batch {done.state.value}"
    assert dialect.submitted == [], "no line of a cancelled batch is made a task after its cancel"


async def test_a_cancel_committed_while_the_runner_makes_the_last_lines_ends_the_batch_cancelled(
    runner_parts: tuple[CancelledAfterItIsRead, BatchRunner, Recorded],
) -> None:
    store, runner, dialect = runner_parts
    batch = await three_lines(store)

    dialect.cancel_at = 2  # the runner then sees every line made and none running: it would write the results
    done = await ended(store, runner, batch.id)

    assert done.state is BatchState.CANCELLED, f"the cancel was answered, yet the batch {done.state.value}"
    assert dialect.submitted == [0, 1, 2]
