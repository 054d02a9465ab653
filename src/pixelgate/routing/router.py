"""The router: takes each image through the channels that serve its model, with priority, weight, retries
with backoff, failover, and a circuit breaker per channel (``breaker.py``).

For each image:

1. The candidates are the channels that serve the model, less those the admin disabled. The router takes
   the highest priority among those ready now, and among equals draws by weight (preferring one with a free
   concurrency slot). A channel whose cooldown is over is ready for one request, its probe.
2. A 429 makes that channel wait ``Retry-After`` (else 1 s, 2 s, 4 s… with jitter) for every request, and
   the image is tried again: on another ready channel at once, or here once the wait is over.
3. A 5xx, a timeout, a cut connection or a malformed answer moves the image to a channel it has not tried
   yet; once all are tried, the same ones are tried again after a backoff. A channel that fails
   ``failure_threshold`` times in a row cools down (is skipped).
4. An upstream's 4xx (``UpstreamRejected``) is the request's fault, not the channel's: never retried.

A request never waits for a channel that is cooling down, and waits for the others (a rate limit, a
backoff, a probe in flight) ``max_wait_seconds`` at most in all: when no channel can take the image within
that, it fails at once with ``ChannelsUnavailable`` (503), whose ``retry_after`` says when the first one is
ready. The worker puts an asynchronous task back in the queue until then instead of failing it.

Each channel's ``concurrency`` is a semaphore: work beyond it waits here instead of flooding the upstream.
(The limit is per process; several processes sharing a database each hold their own.)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from pixelgate.catalog import ModelSpec
from pixelgate.config import RoutingConfig
from pixelgate.core import metrics
from pixelgate.core.errors import (
    ChannelsUnavailable,
    NotFound,
    NoUpstreamConfigured,
    PixelgateError,
    RateLimited,
    UpstreamError,
    one_of,
)
from pixelgate.providers.base import Generation, ProviderResult
from pixelgate.routing.breaker import Breaker, State
from pixelgate.routing.channel import Channel, Disabled

# When the only channel left is probing and the wait ran out: how soon to ask again (the probe's answer
# either puts the channel back in rotation or starts a cooldown, which the next try then names).
PROBE_RETRY_SECONDS = 5.0
# When every channel serving the model is disabled: nothing says when one comes back.
DISABLED_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class _Blocked:
    """Why one channel cannot take this image now, and for how long (None: until its probe ends)."""

    channel: Channel
    state: State
    seconds: float | None

    def describe(self) -> str:
        name = self.channel.name
        if self.state is State.DISABLED:
            disabled = self.channel.disabled
            why = f" ({disabled.reason})" if disabled and disabled.reason else ""
            return f"{name} is disabled by the admin{why}"
        if self.state is State.PROBING:
            return f"{name} is being probed after its cooldown (one request finds out whether it answers)"
        assert self.seconds is not None
        what = {
            State.COOLING_DOWN: "is cooling down after failing",
            State.RATE_LIMITED: "is rate limited by its upstream",
        }.get(self.state, "failed this image and backs off")
        return f"{name} {what} for {self.seconds:.0f} s more"


class Router:
    def __init__(
        self,
        channels: list[Channel],
        policy: RoutingConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.channels = channels
        self.policy = policy or RoutingConfig()
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.breakers = {c.name: Breaker(c.name, self.policy, clock=clock, rng=self.rng) for c in channels}

    def channel(self, name: str) -> Channel:
        found = next((c for c in self.channels if c.name == name), None)
        if found is None:
            raise NotFound(
                f"no channel is named {name[:64]!r}: the channels are {one_of([c.name for c in self.channels])}",
                param="name",
                code="channel_not_found",
            )
        return found

    def state(self, channel: Channel) -> State:
        return State.DISABLED if channel.disabled is not None else self.breakers[channel.name].state()

    def channels_for(self, spec: ModelSpec) -> list[Channel]:
        serving = [c for c in self.channels if c.upstream_model(spec) is not None]
        if serving:
            return serving
        if not self.channels:
            hint = (
                "start the server with --emulate to serve every catalog model from the offline emulator, "
                "set GEMINI_API_KEY (or OPENAI_API_KEY), or declare channels in pixelgate.toml"
            )
        else:
            names = ", ".join(c.name for c in self.channels)
            hint = f"the configured channels ({names}) don't list it: add it to a channel's models"
        raise NoUpstreamConfigured(f"no upstream is configured for {spec.id}: {hint}", param="model")

    async def generate(self, generation: Generation) -> ProviderResult:
        candidates = self.channels_for(generation.spec)
        budget = self.policy.max_wait_for(generation.spec.id)
        waited = 0.0
        tried: set[str] = set()
        last: PixelgateError | None = None
        attempts: list[str] = []
        resume_on = (generation.resume or {}).get("channel")
        while len(attempts) < self.policy.max_attempts:
            # An upstream task started before a restart is polled where it runs, before anything else,
            # whatever that channel's state: it is paid for already.
            resumed = next((c for c in candidates if c.name == resume_on), None) if not attempts else None
            channel = resumed or self._choose(candidates, tried)
            if channel is None:
                waited += await self._wait_for_a_channel(
                    generation.spec, candidates, tried, budget - waited, last
                )
                continue
            if attempts:
                metrics.retries.labels(channel.name).inc()
            attempts.append(channel.name)
            model = channel.upstream_model(generation.spec) or generation.spec.upstream_id
            attempt = replace(
                generation,
                upstream_model=model,
                resume=generation.resume if resumed is not None else None,
                remember=_remember_on(channel.name, generation.remember),
                # The n-th attempt at this channel: the same one, and so the same key, after a takeover.
                idempotency_key=f"{generation.idempotency_key}-{channel.name}-{attempts.count(channel.name)}"
                if generation.idempotency_key
                else None,
            )
            breaker = self.breakers[channel.name]
            probe = breaker.begin(may_probe=resumed is None)
            started = self.clock()
            try:
                result = await channel.generate(attempt)
            except RateLimited as exc:
                last = channel.redact(exc)
                breaker.rate_limited(exc, probe=probe)
                metrics.upstream_errors.labels(channel.name, exc.code or "rate_limited").inc()
            except UpstreamError as exc:
                last = channel.redact(exc)
                tried.add(channel.name)
                breaker.failed(exc, probe=probe)
                metrics.upstream_errors.labels(channel.name, exc.code or "upstream_error").inc()
            except PixelgateError as exc:
                breaker.refused(exc, probe=probe)
                raise channel.redact(exc) from None
            except BaseException:
                breaker.abandoned(probe=probe)
                raise
            else:
                breaker.succeeded(self.clock() - started, probe=probe)
                return replace(result, channel=channel.name)
        assert last is not None
        if len(attempts) > 1:
            last.message += f" (gave up after {len(attempts)} attempts: {', '.join(attempts)})"
            last.args = (last.message,)
        raise last

    def _choose(self, candidates: list[Channel], tried: set[str]) -> Channel | None:
        """The channel for the next attempt, or None if none can take it now."""
        now = self.clock()
        ready = [
            c
            for c in candidates
            if self.state(c) in (State.READY, State.HALF_OPEN)
            and (c.name not in tried or self.breakers[c.name].retry_at <= now)
        ]
        if not ready:
            return None
        best = max(c.config.priority for c in ready)
        tier = [c for c in ready if c.config.priority == best]
        tier = [c for c in tier if c.has_free_slot] or tier
        return self.rng.choices(tier, weights=[c.config.weight for c in tier])[0]

    def _blocked(self, channel: Channel, tried: set[str]) -> _Blocked:
        state = self.state(channel)
        breaker = self.breakers[channel.name]
        if state in (State.DISABLED, State.PROBING):
            return _Blocked(channel, state, math.inf if state is State.DISABLED else None)
        seconds = breaker.seconds_left()
        if channel.name in tried:  # it failed this image: its backoff applies too
            seconds = max(seconds, breaker.retry_at - self.clock())
        return _Blocked(channel, state, seconds)

    async def _wait_for_a_channel(
        self,
        spec: ModelSpec,
        candidates: list[Channel],
        tried: set[str],
        remaining: float,
        last: PixelgateError | None,
    ) -> float:
        """Wait until a channel may be ready, if that fits in ``remaining`` seconds, and return the seconds
        spent; else raise."""
        blocked = [self._blocked(c, tried) for c in candidates]
        probes = [
            e for b in blocked if b.state is State.PROBING and (e := self.breakers[b.channel.name].probe)
        ]
        # Cooling channels are never waited for by themselves; their end counts once there is a wait anyway.
        waitable = [b for b in blocked if b.state not in (State.COOLING_DOWN, State.DISABLED, State.PROBING)]
        timed = [b.seconds for b in blocked if b.seconds is not None and b.seconds < math.inf]
        soonest = min(timed, default=math.inf)
        if (probes or waitable) and remaining > 0 and (probes or soonest <= remaining):
            return await self._pause(min(soonest, remaining), probes)
        retry_after = soonest if soonest < math.inf else None
        if probes:
            retry_after = min(retry_after or PROBE_RETRY_SECONDS, PROBE_RETRY_SECONDS)
        if (
            isinstance(last, RateLimited)
            and all(b.state is State.RATE_LIMITED for b in waitable)
            and waitable
        ):
            last.retry_after = retry_after  # the upstream's own answer, with when this channel is ready
            raise last
        reasons = "; ".join(b.describe() for b in blocked)
        if last is None:  # this request sent nothing: the channels' own last word explains their state
            said = [f for b in blocked if (f := self.breakers[b.channel.name].figures.last_error)]
            last = UpstreamError(said[0]) if said else None
        after = (
            f"try again in {max(1, round(retry_after))} s"
            if retry_after is not None
            else "the gateway's admin can enable one"
        )
        quoted = f"; last error: {last.message}" if last is not None else ""
        raise ChannelsUnavailable(
            f"no channel can take an image of {spec.id} now: {reasons}{quoted}; {after}",
            retry_after=retry_after if retry_after is not None else DISABLED_RETRY_SECONDS,
        )

    async def _pause(self, seconds: float, probes: list[asyncio.Event]) -> float:
        """Sleep ``seconds``, or less if a probe ends first; the seconds spent."""
        if not probes:
            await self.sleep(seconds)
            return seconds
        loop = asyncio.get_running_loop()
        started = loop.time()
        ends = [asyncio.ensure_future(probe.wait()) for probe in probes]
        try:
            done, _ = await asyncio.wait(ends, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in ends:
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
        return loop.time() - started if done else seconds

    def stop_starting(self, why: str) -> None:
        """No attempt starts from now on (the process stops): each one waiting for a channel's slot, or
        asking for one later, is cancelled with ``why`` instead."""
        for channel in self.channels:
            channel.slots.close(why)

    # -- the admin's hand: out of rotation, back in, reset ------------------------------------------------

    def disable(self, name: str, disabled: Disabled) -> None:
        self.channel(name).disabled = disabled

    def enable(self, name: str) -> None:
        self.channel(name).disabled = None

    def reset(self, name: str) -> None:
        self.breakers[self.channel(name).name].reset()

    def abandon(self, upstream: dict[str, dict[str, Any]]) -> None:
        """Stop the upstream tasks a pixelgate task left behind (see ``Task.upstream``), on the channels
        that hold them."""
        by_name = {c.name: c for c in self.channels}
        for state in upstream.values():
            channel = by_name.get(str(state.get("channel")))
            if channel is not None:
                channel.provider.abandon(state)

    def describe(self) -> list[dict[str, Any]]:
        """Each channel's configuration, live state and figures since start (``GET /admin/channels``)."""
        described = []
        for c in self.channels:
            breaker = self.breakers[c.name].describe()
            disabled = c.disabled
            described.append(
                {
                    "name": c.name,
                    "provider": c.config.provider,
                    "base_url": c.base_url,
                    "priority": c.config.priority,
                    "weight": c.config.weight,
                    "models": c.config.models if c.config.models is not None else "all",
                    **breaker,
                    "state": self.state(c).value,
                    "disabled_at": disabled.at if disabled else None,
                    "disabled_reason": disabled.reason if disabled else None,
                    "in_flight": c.in_flight,
                    "concurrency": c.config.concurrency,
                }
            )
        return described

    async def close(self) -> None:
        await asyncio.gather(*(c.provider.close() for c in self.channels), return_exceptions=True)


def _remember_on(
    channel: str, remember: Callable[[dict[str, Any]], Awaitable[bool]] | None
) -> Callable[[dict[str, Any]], Awaitable[bool]] | None:
    """``remember`` with the channel added, so that a resumed task is polled where it runs."""
    if remember is None:
        return None

    async def on_channel(state: dict[str, Any]) -> bool:
        return await remember({**state, "channel": channel})

    return on_channel
