"""Guessing keys: failed key checks are counted per client address, and past a limit refused with a 429.

(Per process for now; with several processes each counts its own.)
"""

from __future__ import annotations

import time
from collections import deque

from pixelgate.core.errors import RateLimited

MAX_FAILURES = 20
FAILURE_WINDOW = 60.0


class FailureGuard:
    """Failed key checks per client address, in a sliding window."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def check(self, address: str) -> None:
        now = time.monotonic()
        failures = self._recent(address, now)
        if len(failures) >= self.limit:
            wait = failures[0] + self.window - now
            raise RateLimited(
                f"too many invalid API keys from {address}: {len(failures)} in the last "
                f"{self.window:g} s (at most {self.limit}); try again in {wait:.0f} s",
                code="too_many_invalid_keys",
                retry_after=wait,
            )

    def failed(self, address: str) -> None:
        now = time.monotonic()
        self._recent(address, now).append(now)
        if len(self._failures) > 10_000:  # forget quiet addresses rather than grow without bound
            for stale in [a for a, f in self._failures.items() if not f or f[-1] <= now - self.window]:
                del self._failures[stale]
