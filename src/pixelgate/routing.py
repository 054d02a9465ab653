"""Channels, and the router that takes each image through them: priority, weight, retries with backoff,
failover and cooldown.

A *channel* is one upstream (a provider, its base URL and key) with the models it serves. For each image:

1. The candidates are the channels that serve the model. The router takes the highest priority among those
   ready now, and among equals draws by weight (preferring one with a free concurrency slot).
2. A 429 makes that channel wait ``Retry-After`` (else 1 s, 2 s, 4 s… with jitter) for every request, and
   the image is tried again: on another ready channel at once, or here once the wait is over.
3. A 5xx, a timeout, a cut connection or a malformed answer moves the image to a channel it has not tried
   yet; once all are tried, the same ones are tried again after a backoff. A channel that fails
   ``failure_threshold`` times in a row cools down (is skipped) for ``cooldown_seconds``, doubling each
   time it trips again; one success resets it.
4. An upstream's 4xx (``UpstreamRejected``) is the request's fault, not the channel's: never retried.

Each channel's ``concurrency`` is a semaphore: work beyond it waits here instead of flooding the upstream.
(The limit is per process; several processes sharing a database each hold their own.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from pixelgate.catalog import ModelSpec
from pixelgate.config import ChannelConfig, ConfigError, GatewayConfig, RoutingConfig
from pixelgate.core import metrics
from pixelgate.core.errors import (
    NoUpstreamConfigured,
    PixelgateError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from pixelgate.core.slots import PrioritySlots
from pixelgate.providers.base import Generation, Provider, ProviderResult

log = logging.getLogger("pixelgate.routing")


@dataclass
class ChannelHealth:
    """What the router remembers about a channel between requests."""

    ready_at: float = 0.0  # skipped until then: rate limited (Retry-After) or cooling down
    reason: str | None = None  # why it is waiting: "rate limited" or "cooling down"
    failures_in_a_row: int = 0
    rate_limits_in_a_row: int = 0
    trips: int = 0  # cooldowns in a row, for the doubling
    retry_at: float = 0.0  # when an image that already failed here may try here again
    succeeded: int = 0
    failed: int = 0
    last_error: str | None = None


class Channel:
    def __init__(
        self,
        config: ChannelConfig,
        provider: Provider,
        secret: str | None = None,
        base_url: str | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.secret = secret
        self.base_url = config.base_url or base_url
        self.health = ChannelHealth()
        self.slots = PrioritySlots(config.concurrency)
        self.in_flight = 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def has_free_slot(self) -> bool:
        return self.in_flight < self.config.concurrency

    async def generate(self, generation: Generation) -> ProviderResult:
        await self.slots.acquire(batch=generation.batch)
        try:
            return await self._generate(generation)
        finally:
            self.slots.release()

    async def _generate(self, generation: Generation) -> ProviderResult:
        self.in_flight += 1
        try:
            async with asyncio.timeout(self.config.timeout) as deadline:
                return await self.provider.generate(generation)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise UpstreamTimeout(
                f"channel {self.name!r}: no image within its timeout of {self.config.timeout:g} s",
                code="upstream_timeout",
            ) from None
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
            # An answer of a shape the provider did not expect: the upstream's fault, so the next
            # channel is tried; the traceback goes to the log for whoever fixes the provider.
            log.warning("channel %s: unreadable answer", self.name, exc_info=True)
            raise UpstreamError(
                f"channel {self.name!r}: the upstream's answer could not be read ({type(exc).__name__})",
                code="upstream_malformed",
            ) from None
        finally:
            self.in_flight -= 1

    def redact(self, error: PixelgateError) -> PixelgateError:
        """A last guard: whatever a provider quoted, the channel's key never leaves this process."""
        if self.secret and self.secret in error.message:
            error.message = error.message.replace(self.secret, "[redacted]")
            error.args = (error.message,)
        return error


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

    def channels_for(self, spec: ModelSpec) -> list[Channel]:
        serving = [c for c in self.channels if c.config.upstream_model(spec) is not None]
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
        tried: set[str] = set()
        last: PixelgateError | None = None
        attempts: list[str] = []
        resume_on = (generation.resume or {}).get("channel")
        for _ in range(self.policy.max_attempts):
            # An upstream task started before a restart is polled where it runs, before anything else.
            resumed = next((c for c in candidates if c.name == resume_on), None) if not attempts else None
            channel, wait = (resumed, 0.0) if resumed is not None else self._choose(candidates, tried)
            if wait > self.policy.max_wait_seconds:
                if last is not None:
                    break
                raise UpstreamError(
                    f"every channel serving {generation.spec.id} is {channel.health.reason or 'waiting'} "
                    f"({', '.join(c.name for c in candidates)}): the first is ready again in {wait:.0f} s; "
                    f"last error: {channel.health.last_error}",
                    code="channels_unavailable",
                    retry_after=wait,
                )
            if wait > 0:
                await self.sleep(wait)
            if attempts:
                metrics.retries.labels(channel.name).inc()
            attempts.append(channel.name)
            model = channel.config.upstream_model(generation.spec) or generation.spec.upstream_id
            attempt = replace(
                generation,
                upstream_model=model,
                resume=generation.resume if resumed is not None else None,
                remember=_remember_on(channel.name, generation.remember),
            )
            try:
                result = await channel.generate(attempt)
            except RateLimited as exc:
                last = channel.redact(exc)
                self._rate_limited(channel, exc)
            except UpstreamError as exc:
                last = channel.redact(exc)
                tried.add(channel.name)
                self._failed(channel, exc)
            except PixelgateError as exc:
                raise channel.redact(exc) from None
            else:
                self._succeeded(channel)
                return replace(result, channel=channel.name)
        assert last is not None
        if len(attempts) > 1:
            last.message += f" (gave up after {len(attempts)} attempts: {', '.join(attempts)})"
            last.args = (last.message,)
        raise last

    def _choose(self, candidates: list[Channel], tried: set[str]) -> tuple[Channel, float]:
        """The channel for the next attempt, and how long to wait before it is ready."""
        now = self.clock()

        def ready_at(channel: Channel) -> float:
            # A channel this image already failed on also waits out its backoff before another try.
            at = channel.health.ready_at
            return max(at, channel.health.retry_at) if channel.name in tried else at

        ready = [c for c in candidates if ready_at(c) <= now]
        if not ready:
            soonest = min(candidates, key=ready_at)
            return soonest, ready_at(soonest) - now
        best = max(c.config.priority for c in ready)
        tier = [c for c in ready if c.config.priority == best]
        tier = [c for c in tier if c.has_free_slot] or tier
        return self.rng.choices(tier, weights=[c.config.weight for c in tier])[0], 0.0

    def _backoff(self, streak: int) -> float:
        base = self.policy.backoff_seconds * 2.0 ** max(0, streak - 1)
        return float(min(self.policy.max_backoff_seconds, base * self.rng.uniform(0.75, 1.25)))

    def _rate_limited(self, channel: Channel, exc: RateLimited) -> None:
        metrics.upstream_errors.labels(channel.name, exc.code or "rate_limited").inc()
        health = channel.health
        now = self.clock()
        if health.ready_at > now and health.reason == "rate limited":
            # Another request already met this limit and set the wait: a burst of 429s from requests
            # that were in flight together is one event, not a streak that jumps to the longest backoff.
            return
        health.rate_limits_in_a_row += 1
        wait = exc.retry_after if exc.retry_after is not None else self._backoff(health.rate_limits_in_a_row)
        wait = min(wait, self.policy.max_cooldown_seconds)  # a Retry-After of a day is not obeyed blindly
        health.ready_at = max(health.ready_at, now + wait)
        health.reason = "rate limited"
        health.last_error = exc.message
        log.warning("channel %s rate limited: waiting %.1f s (%s)", channel.name, wait, exc.message)

    def _failed(self, channel: Channel, exc: UpstreamError) -> None:
        health = channel.health
        now = self.clock()
        metrics.upstream_errors.labels(channel.name, exc.code or "upstream_error").inc()
        health.failed += 1
        health.failures_in_a_row += 1
        health.last_error = exc.message
        health.retry_at = now + self._backoff(health.failures_in_a_row)
        cooling = health.ready_at > now and health.reason == "cooling down"
        if health.failures_in_a_row >= self.policy.failure_threshold and not cooling:
            # One trip per cooldown: the failures of requests that were in flight together when the
            # upstream went down do not each double it.
            cooldown = min(self.policy.max_cooldown_seconds, self.policy.cooldown_seconds * 2**health.trips)
            health.trips += 1
            metrics.cooldowns.labels(channel.name).inc()
            health.ready_at = now + cooldown
            health.reason = "cooling down"
            log.warning(
                "channel %s failed %d times in a row: cooling down for %.0f s (%s)",
                channel.name,
                health.failures_in_a_row,
                cooldown,
                exc.message,
            )
        else:
            log.warning("channel %s failed: %s", channel.name, exc.message)

    def _succeeded(self, channel: Channel) -> None:
        health = channel.health
        health.succeeded += 1
        health.failures_in_a_row = health.rate_limits_in_a_row = health.trips = 0
        health.retry_at = 0.0
        if health.reason == "cooling down":
            health.ready_at = 0.0  # it answers again; a rate limit's wait, though, still stands
        if health.ready_at <= self.clock():
            health.reason = None

    def abandon(self, upstream: dict[str, dict[str, Any]]) -> None:
        """Stop the upstream tasks a pixelgate task left behind (see ``Task.upstream``), on the channels
        that hold them."""
        by_name = {c.name: c for c in self.channels}
        for state in upstream.values():
            channel = by_name.get(str(state.get("channel")))
            if channel is not None:
                channel.provider.abandon(state)

    def describe(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [
            {
                "name": c.name,
                "provider": c.config.provider,
                "priority": c.config.priority,
                "in_flight": c.in_flight,
                "concurrency": c.config.concurrency,
                "succeeded": c.health.succeeded,
                "failed": c.health.failed,
                "waiting_seconds": max(0.0, c.health.ready_at - now),
                "state": c.health.reason if c.health.ready_at > now else "ready",
                "last_error": c.health.last_error,
            }
            for c in self.channels
        ]

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


def _provider_module(kind: str) -> Any:
    from pixelgate.providers import emulator, google, openai, tasks

    return {"google": google, "openai": openai, "tasks": tasks, "emulator": emulator}[kind]


def provider_options(config: ChannelConfig) -> BaseModel:
    """A channel's ``options``, checked against its provider's own ``Options`` (and whatever else the
    provider needs of a channel): every mistake is a ``ConfigError`` before anything starts."""
    module = _provider_module(config.provider)
    if hasattr(module, "check_channel"):
        module.check_channel(config)
    options_type: type[BaseModel] = module.Options
    try:
        options = options_type.model_validate(config.options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        allowed = ", ".join(f.alias or name for name, f in options_type.model_fields.items()) or "none"
        raise ConfigError(
            f"channel {config.name!r}: options.{where}: {first['msg']} (got {first.get('input')!r}; "
            f"the {config.provider} provider takes {allowed})"
        ) from None
    return options


def check_channels(config: GatewayConfig) -> None:
    for channel in config.channels:
        provider_options(channel)


def build_provider(config: ChannelConfig, api_key: str | None) -> Provider:
    """The provider of one channel (its options checked first)."""
    options = provider_options(config)
    provider: Provider = _provider_module(config.provider).build(config, api_key, options)
    return provider


def build_router(config: GatewayConfig, environ: Mapping[str, str] | None = None) -> Router:
    channels = []
    for channel_config in config.channels:
        key = channel_config.api_key(environ) if environ is not None else channel_config.api_key()
        provider = build_provider(channel_config, key)
        default_url = getattr(_provider_module(channel_config.provider), "DEFAULT_BASE_URL", None)
        channels.append(Channel(channel_config, provider, secret=key, base_url=default_url))
    return Router(channels, config.routing)
