"""State shared by the simulators that answer with tasks and URLs instead of images."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """A generation that "runs" for ``duration`` seconds after it is created.

    Nothing actually runs: the answer is computed at creation (so faults bind to the create call) and
    revealed once the clock says the work is done.
    """

    id: str
    model: str | None
    duration: float
    #: The vendor's body for a completed job, merged into the poll answer.
    result: dict[str, Any]
    #: (code, message) when the job is to end as failed.
    failure: tuple[str, str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    cancelled: bool = False
    created_at: float = field(default_factory=time.time)
    _started: float = field(default_factory=time.monotonic, repr=False)

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    @property
    def finished(self) -> bool:
        return self.elapsed() >= self.duration

    @property
    def finished_at(self) -> float:
        return self.created_at + self.duration

    def progress(self) -> int:
        if self.duration <= 0:
            return 100
        return min(99, int(100 * self.elapsed() / self.duration))


@dataclass
class Blob:
    """A generated file served over plain HTTP, the way vendors hand out results by URL."""

    content: bytes
    media_type: str
    #: Unix times; before ``available_from`` the file does not exist yet, after ``expires_at`` it has expired.
    available_from: float = 0.0
    expires_at: float | None = None


def next_failure(pending: list[tuple[tuple[str, str], int]]) -> tuple[str, str] | None:
    """Pops one use of the first queued task failure (see ``fail_task_next``)."""
    if not pending:
        return None
    failure, left = pending[0]
    if left > 1:
        pending[0] = (failure, left - 1)
    else:
        pending.pop(0)
    return failure
