"""What happened, told to whoever listens in this process: small typed events, published after the change
they announce is committed, and the parts that act on them subscribed when they are built.

A part that publishes never names the parts that listen: the service does not wake the worker, the queue
does not wake the webhook sender, a dialect does not wake the batch runner. Each of them subscribes::

    bus.subscribe(TaskQueued, lambda event: worker.wake())

Handlers run at once, in the publisher's task, in the order they subscribed: they must be quick and must
not block (wake a loop, cancel an asyncio task, resolve a future). Events are this process's only: other
processes sharing the database find the same changes by polling it.
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


Event = TaskQueued | TaskEnded | TaskCancelled | BatchChanged | WebhooksQueued
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
