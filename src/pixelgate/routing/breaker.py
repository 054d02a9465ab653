"""A channel's circuit breaker, its rate-limit wait, and its figures since this process started.

::

    closed ── failure_threshold failures in a row ──► open (cooling down)
      ▲                                                   │ cooldown over
      │                                                   ▼
      └──────── the probe gets an answer ◄──────── half-open: the next request is the probe
                                                          │ the probe fails
                                                          └──► open again, for twice as long

While the probe is in flight no other request is sent to the channel: they wait for its outcome (the router
bounds how long), so that an upstream that comes back serves again the moment one request shows it, and one
that is still down costs one failed request per cooldown, not a burst. Failures of requests that were in
flight together when the upstream went down trip it once, not once each; a success from one of them closes
it (the upstream answers). A refusal of the request itself (an upstream 4xx) and a rate limit (429) are
answers too: the upstream is up. A ``cooldown_seconds`` of 0 turns the breaker off.

Breakers live in each process: every process finds out for itself that an upstream is down, with one
failed request per cooldown.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pixelgate.config import RoutingConfig
from pixelgate.core import metrics
from pixelgate.core.errors import PixelgateError

log = logging.getLogger("pixelgate.routing")


class State(StrEnum):
    READY = "ready"
    RATE_LIMITED = "rate_limited"  # the upstream asked to wait (Retry-After, else a backoff)
    COOLING_DOWN = "cooling_down"  # open: it kept failing, and is skipped until the cooldown ends
    HALF_OPEN = "half_open"  # cooled down: the next request is the probe
    PROBING = "probing"  # the probe is in flight; other requests wait for its outcome
    DISABLED = "disabled"  # taken out of rotation by the admin (see controls.py)


@dataclass
class Figures:
    """What a channel did since this process started."""

    requests: int = 0  # attempts sent
    succeeded: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # by the error's code
    busy_seconds: float = 0.0  # the time its successful attempts took, in all
    last_error: str | None = None
    last_error_at: float | None = None  # wall-clock time
    last_success_at: float | None = None

    def failed(self, error: PixelgateError) -> None:
        self.errors[error.code] += 1
        self.last_error = error.message
        self.last_error_at = time.time()


class Breaker:
    def __init__(
        self,
        name: str,
        policy: RoutingConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()
        self.failures_in_a_row = 0
        self.trips = 0  # cooldowns in a row, for the doubling
        self.tripped = False  # open or half-open, until an answer closes it
        self.open_until = 0.0  # clock time the cooldown ends
        self.probe: asyncio.Event | None = None  # set when the probe in flight ends
        self.limited_until = 0.0
        self.rate_limits_in_a_row = 0
        self.retry_at = 0.0  # when an image that already failed here may try here again
        self.figures = Figures()

    def state(self) -> State:
        now = self.clock()
        if self.probe is not None:
            return State.PROBING
        if self.tripped and self.open_until > now:
            return State.COOLING_DOWN
        if self.limited_until > now:
            return State.RATE_LIMITED
        return State.HALF_OPEN if self.tripped else State.READY

    def seconds_left(self) -> float:
        """How long the present wait (cooldown or rate limit) lasts; 0 when there is none."""
        now = self.clock()
        if self.tripped and self.open_until > now:
            return self.open_until - now
        return max(0.0, self.limited_until - now)

    def backoff(self, streak: int) -> float:
        base = self.policy.backoff_seconds * 2.0 ** max(0, streak - 1)
        return float(min(self.policy.max_backoff_seconds, base * self.rng.uniform(0.75, 1.25)))

    # -- an attempt, from start to outcome --------------------------------------------------------------

    def begin(self, *, may_probe: bool = True) -> bool:
        """An attempt is sent now; whether it is the probe (the channel was half-open)."""
        self.figures.requests += 1
        if may_probe and self.probe is None and self.state() is State.HALF_OPEN:
            self.probe = asyncio.Event()
            log.info("channel %s: cooldown over, sending one request to see whether it answers", self.name)
            return True
        return False

    def succeeded(self, seconds: float, *, probe: bool) -> None:
        self.figures.succeeded += 1
        self.figures.busy_seconds += seconds
        self.figures.last_success_at = time.time()
        self.rate_limits_in_a_row = 0
        self._answered(probe)

    def refused(self, error: PixelgateError, *, probe: bool) -> None:
        """The upstream refused the request itself (a 4xx, a safety block): the request's fault, and an
        answer, so the channel is up."""
        self.figures.errors[error.code] += 1
        self._answered(probe)

    def rate_limited(self, error: PixelgateError, *, probe: bool) -> None:
        self.figures.failed(error)
        if probe or self.tripped:
            self._answered(probe)
        now = self.clock()
        if self.limited_until > now:
            # Another request already met this limit and set the wait: a burst of 429s from requests
            # that were in flight together is one event, not a streak that jumps to the longest backoff.
            return
        self.rate_limits_in_a_row += 1
        wait = error.retry_after if error.retry_after is not None else self.backoff(self.rate_limits_in_a_row)
        wait = min(wait, self.policy.max_cooldown_seconds)  # a Retry-After of a day is not obeyed blindly
        self.limited_until = now + wait
        log.warning("channel %s rate limited: waiting %.1f s (%s)", self.name, wait, error.message)

    def failed(self, error: PixelgateError, *, probe: bool) -> None:
        self.figures.failed(error)
        self.failures_in_a_row += 1
        self.retry_at = self.clock() + self.backoff(self.failures_in_a_row)
        # While tripped only the probe decides: a request sent before the trip that fails now says nothing
        # new about the upstream, and must not double the cooldown.
        trips = probe or (not self.tripped and self.failures_in_a_row >= self.policy.failure_threshold)
        if trips and self.policy.cooldown_seconds > 0:
            self._trip(error)
        else:
            log.warning("channel %s failed: %s", self.name, error.message)
        if probe:
            self._end_probe()

    def abandoned(self, *, probe: bool) -> None:
        """The attempt ended with no outcome (its task was cancelled): the next request probes instead."""
        if probe:
            self._end_probe()

    def reset(self) -> None:
        """Closed, as if it had just answered: the admin says it is fixed (figures are kept)."""
        self.failures_in_a_row = self.trips = self.rate_limits_in_a_row = 0
        self.tripped = False
        self.open_until = self.limited_until = self.retry_at = 0.0
        self._end_probe()

    # -- transitions ------------------------------------------------------------------------------------

    def _trip(self, error: PixelgateError) -> None:
        cooldown = min(self.policy.max_cooldown_seconds, self.policy.cooldown_seconds * 2**self.trips)
        self.trips += 1
        self.tripped = True
        self.open_until = self.clock() + cooldown
        metrics.cooldowns.labels(self.name).inc()
        log.warning(
            "channel %s failed %d times in a row: cooling down for %.0f s (%s)",
            self.name,
            self.failures_in_a_row,
            cooldown,
            error.message,
        )

    def _answered(self, probe: bool) -> None:
        if self.tripped:
            log.info("channel %s answers again: back in rotation", self.name)
        self.failures_in_a_row = self.trips = 0
        self.tripped = False
        self.open_until = self.retry_at = 0.0
        if probe or self.probe is not None:
            self._end_probe()

    def _end_probe(self) -> None:
        if self.probe is not None:
            self.probe.set()
            self.probe = None

    def describe(self) -> dict[str, Any]:
        """The breaker's part of ``GET /admin/channels``: times are wall-clock (Unix seconds)."""
        left = self.seconds_left()
        figures = self.figures
        return {
            "state": self.state().value,
            "until": round(time.time() + left, 3) if left > 0 else None,
            "seconds_left": round(left, 3),
            "failures_in_a_row": self.failures_in_a_row,
            "cooldowns_in_a_row": self.trips,
            "requests": figures.requests,
            "succeeded": figures.succeeded,
            "errors": dict(sorted(figures.errors.items())),
            "mean_seconds": round(figures.busy_seconds / figures.succeeded, 3) if figures.succeeded else None,
            "last_error": figures.last_error,
            "last_error_at": figures.last_error_at,
            "last_success_at": figures.last_success_at,
        }
