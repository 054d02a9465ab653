"""What happened, told to whoever listens in this process: small typed events, published after the change
they announce is committed, and the parts that act on them subscribed when they are built.

A part that publishes never names the parts that listen: the service does not wake the worker, the queue
does not wake the webhook sender, a dialect does not wake the batch runner. Each of them subscribes::

    bus.subscribe(TaskQueued, lambda event: worker.wake())

Handlers run at once, in the publisher's task, in the order they subscribed: they must be quick and must
not block (wake a loop, cancel an asyncio task, resolve a future). Events are this process's only: what
other processes sharing the database change arrives, on PostgreSQL, as ``Task…Elsewhere`` events (only a
task id: ``wakeups.py`` hears them by LISTEN/NOTIFY), and is otherwise found by polling the database.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pixelgate.core.task import Task

log = logging.getLogger("pixelgate.tasks")


@dataclass(frozen=True)
class TaskQueued:
    """A task was saved, ready to be claimed."""

    task: Task


@dataclass(frozen=True)
class TaskEnded:
    """A task succeeded or failed (its ledger row settled, its webhook event queued with it)."""

    task: Task


@dataclass(frozen=True)
class TaskCancelled:
    """A queued or running task was cancelled: whoever runs it stops, its upstream tasks are stopped."""

    task: Task


@dataclass(frozen=True)
class BatchChanged:
    """A batch was made or asked to stop: the runner has work."""

    batch_id: str


@dataclass(frozen=True)
class WebhooksQueued:
    """Deliveries were written to the outbox."""

    count: int


@dataclass(frozen=True)
class TaskQueuedElsewhere:
    """Another process sharing the database queued a task, or gave one back to the queue: a worker here may
    claim it."""

    task_id: str


@dataclass(frozen=True)
class TaskEndedElsewhere:
    """Another process ended a task (succeeded, failed or cancelled): whoever waits for it here reads it;
    a worker here that still runs it no longer holds it."""

    task_id: str


@dataclass(frozen=True)
class WakeupsChanged:
    """Whether this process hears other processes' changes changed (PostgreSQL's LISTEN connection came up,
    or dropped). Who looks for those changes in the database looks every ``poll_interval`` seconds from now,
    and once at once, for what was changed while nobody listened."""

    listening: bool
    poll_interval: float


Event = (
    TaskQueued
    | TaskEnded
    | TaskCancelled
    | BatchChanged
    | WebhooksQueued
    | TaskQueuedElsewhere
    | TaskEndedElsewhere
    | WakeupsChanged
)
E = TypeVar("E", bound=Event)


class Bus:
    def __init__(self) -> None:
        self._handlers: dict[type[Any], list[Callable[[Any], None]]] = defaultdict(list)

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> None:
        self._handlers[kind].append(handler)

    def publish(self, event: Event) -> None:
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception:  # a listener's bug must not undo what the publisher has committed
                log.exception("a handler of %s failed", type(event).__name__)
