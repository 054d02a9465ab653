"""The router on its own: priority, weight, retries with backoff, failover, cooldown, per-channel concurrency
and timeouts, with small scripted providers, a fake clock and a sleep that only records (and moves the clock).

Only the timeout and concurrency tests use real time (tens of milliseconds)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from pixelgate.catalog import default_catalog
from pixelgate.catalog.validation import validate
from pixelgate.config import ChannelConfig, RoutingConfig
from pixelgate.core.errors import (
    ChannelsUnavailable,
    InvalidRequest,
    NotFound,
    NoUpstreamConfigured,
    PixelgateError,
    RateLimited,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from pixelgate.core.request import ImageRequest, Limits
from pixelgate.core.task import Usage
from pixelgate.providers.base import Generation, ProviderResult
from pixelgate.routing import Breaker, Channel, Disabled, Router, State

CATALOG = default_catalog()
FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"
PRO_4K_ALIAS = "gemini-3-pro-image-preview-4k"

# What a scripted provider does on one call: return an image, or raise this error.
OK = "ok"
Outcome = str | PixelgateError | Callable[[], PixelgateError]


def generation(model: str = FLASH, prompt: str = "a red fox in the snow") -> Generation:
    request, spec = validate(ImageRequest(model=model, prompt=prompt), CATALOG, Limits())
    return Generation(request=request, spec=spec)


def result() -> ProviderResult:
    return ProviderResult(images=(), usage=Usage(images=1))


@dataclass
class Scripted:
    """A provider that plays ``script`` in order (then repeats ``then`` forever) and records each call."""

    script: list[Outcome] = field(default_factory=list)
    then: Outcome = OK
    delay: float = 0.0  # real seconds each call takes
    calls: list[Generation] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    closed: bool = False
    abandoned: list[dict[str, Any]] = field(default_factory=list)

    async def generate(self, generation: Generation) -> ProviderResult:
        self.calls.append(generation)
        outcome = self.script.pop(0) if self.script else self.then
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if callable(outcome):
            outcome = outcome()
        if isinstance(outcome, PixelgateError):
            raise outcome
        return result()

    async def check(self) -> str:
        return "scripted"

    def abandon(self, state: dict[str, Any]) -> None:
        self.abandoned.append(state)

    async def close(self) -> None:
        self.closed = True


class Clock:
    """A monotonic clock that only moves when told to (or when the fake sleep sleeps)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeper:
    """``sleep`` for the router: records each wait and moves the clock past it, without waiting."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


def channel(
    name: str,
    provider: Scripted | None = None,
    *,
    secret: str | None = None,
    **fields: Any,
) -> Channel:
    return Channel(
        ChannelConfig(name=name, provider="openai", **fields), provider or Scripted(), secret=secret
    )


@dataclass
class Rig:
    router: Router
    clock: Clock
    sleeper: Sleeper

    def channel(self, name: str) -> Channel:
        return next(c for c in self.router.channels if c.name == name)

    def breaker(self, name: str) -> Breaker:
        return self.router.breakers[name]

    def provider(self, name: str) -> Scripted:
        provider = self.channel(name).provider
        assert isinstance(provider, Scripted)
        return provider


def rig(channels: Iterable[Channel], seed: int = 7, **policy: Any) -> Rig:
    clock = Clock()
    sleeper = Sleeper(clock)
    router = Router(
        list(channels), RoutingConfig(**policy), clock=clock, sleep=sleeper, rng=random.Random(seed)
    )
    return Rig(router, clock, sleeper)


def unavailable(name: str = "a") -> UpstreamError:
    return UpstreamError(
        f"channel {name!r}: the upstream answered HTTP 503: overloaded", code="upstream_unavailable"
    )


def rate_limited(retry_after: float | None = None) -> RateLimited:
    return RateLimited(
        "the upstream answered HTTP 429: slow down", retry_after=retry_after, code="upstream_rate_limited"
    )


# -- choosing a channel -----------------------------------------------------------------------------------


async def test_higher_priority_is_used_first() -> None:
    r = rig([channel("low", priority=0), channel("high", priority=10), channel("mid", priority=5)])
    for _ in range(20):
        assert (await r.router.generate(generation())).channel == "high"
    assert len(r.provider("high").calls) == 20
    assert r.provider("low").calls == [] and r.provider("mid").calls == []
    assert r.sleeper.waits == []


async def test_a_failing_high_priority_channel_falls_to_the_next_priority() -> None:
    high = Scripted(then=unavailable("high"))
    r = rig([channel("low", priority=0), channel("high", high, priority=10), channel("mid", priority=5)])
    assert (await r.router.generate(generation())).channel == "mid"
    assert len(high.calls) == 1 and r.provider("low").calls == []
    assert r.sleeper.waits == []


async def test_equal_priorities_share_by_weight() -> None:
    r = rig([channel("heavy", weight=3), channel("light", weight=1)], seed=12345)
    counts = {"heavy": 0, "light": 0}
    for _ in range(2000):
        used = (await r.router.generate(generation())).channel
        assert used is not None
        counts[used] += 1
    share = counts["heavy"] / 2000
    assert 0.71 <= share <= 0.79, counts  # 0.75 expected; ~4.5 standard deviations either side
    assert r.sleeper.waits == []


async def test_weight_only_shares_within_the_highest_priority() -> None:
    r = rig([channel("heavy", weight=100, priority=0), channel("light", weight=1, priority=1)])
    for _ in range(50):
        assert (await r.router.generate(generation())).channel == "light"


async def test_a_channel_not_listing_the_model_is_never_used() -> None:
    r = rig(
        [
            channel("pro-only", priority=10, models=[PRO]),
            channel("renamed", priority=9, models={PRO: "pro-upstream"}),
            channel("everything", priority=0),
        ]
    )
    for _ in range(20):
        assert (await r.router.generate(generation(FLASH))).channel == "everything"
    assert r.provider("pro-only").calls == [] and r.provider("renamed").calls == []
    assert (await r.router.generate(generation(PRO))).channel == "pro-only"


async def test_a_failing_channel_never_fails_over_to_one_without_the_model() -> None:
    only = Scripted(then=unavailable("only"))
    r = rig([channel("only", only, models=[FLASH]), channel("other", models=[PRO])], max_attempts=2)
    with pytest.raises(UpstreamError):
        await r.router.generate(generation(FLASH))
    assert len(only.calls) == 2
    assert r.provider("other").calls == []


async def test_no_channel_serving_the_model_names_the_channels() -> None:
    r = rig([channel("alpha", models=[PRO]), channel("beta", models={PRO: "x"})])
    with pytest.raises(NoUpstreamConfigured) as caught:
        await r.router.generate(generation(FLASH))
    error = caught.value
    assert error.status == 503 and error.code == "model_not_configured" and error.param == "model"
    assert FLASH in error.message
    assert "alpha, beta" in error.message
    assert "add it to a channel's models" in error.message
    assert r.provider("alpha").calls == [] and r.provider("beta").calls == []


async def test_no_channels_at_all_says_how_to_configure_one() -> None:
    r = rig([])
    with pytest.raises(NoUpstreamConfigured) as caught:
        await r.router.generate(generation(FLASH))
    message = caught.value.message
    assert f"no upstream is configured for {FLASH}" in message
    for hint in ("--emulate", "GEMINI_API_KEY", "OPENAI_API_KEY", "pixelgate.toml"):
        assert hint in message, message


async def test_result_names_the_channel_and_the_provider_sees_the_renamed_model() -> None:
    renamed = Scripted()
    r = rig([channel("renamed", renamed, models={FLASH: "nano-banana-2"})])
    original = generation(FLASH)
    made = await r.router.generate(original)
    assert made.channel == "renamed"
    seen = renamed.calls[0]
    assert seen.upstream_model == "nano-banana-2" and seen.model == "nano-banana-2"
    assert seen.spec.id == FLASH and seen.request is original.request
    assert original.upstream_model == "", "the caller's generation is not changed"


async def test_upstream_model_follows_the_provider_kind_for_aliases() -> None:
    """Google knows the vendor's own ids (an alias goes there by its upstream id); other gateways know the
    alias itself; a listed model keeps the same rule; a rename always wins."""
    google, gateway, listed, renamed = Scripted(), Scripted(), Scripted(), Scripted()
    spec = CATALOG.get(PRO_4K_ALIAS)
    assert spec.upstream_id == PRO
    cases = [
        (Channel(ChannelConfig(name="g", provider="google"), google), google, PRO),
        (Channel(ChannelConfig(name="o", provider="openai"), gateway), gateway, PRO_4K_ALIAS),
        (
            Channel(ChannelConfig(name="t", provider="tasks", models=[PRO_4K_ALIAS]), listed),
            listed,
            PRO_4K_ALIAS,
        ),
        (
            Channel(ChannelConfig(name="r", provider="google", models={PRO_4K_ALIAS: "pro-4k"}), renamed),
            renamed,
            "pro-4k",
        ),
    ]
    for chan, provider, expected in cases:
        made = await rig([chan]).router.generate(generation(PRO_4K_ALIAS))
        assert made.channel == chan.name
        assert provider.calls[0].upstream_model == expected, chan.name


# -- 429 ---------------------------------------------------------------------------------------------------


async def test_429_with_retry_after_waits_that_long_and_retries_the_only_channel() -> None:
    only = Scripted([rate_limited(retry_after=7)])
    r = rig([channel("only", only)])
    made = await r.router.generate(generation())
    assert made.channel == "only"
    assert r.sleeper.waits == [pytest.approx(7)]
    assert len(only.calls) == 2
    breaker = r.breaker("only")
    assert breaker.failures_in_a_row == 0, "a 429 is not a failure of the channel"
    assert breaker.figures.succeeded == 1 and breaker.figures.errors == {"upstream_rate_limited": 1}


async def test_429_without_retry_after_backs_off_1_2_4_seconds_with_jitter() -> None:
    seen: list[list[float]] = []
    for seed in range(8):
        only = Scripted([rate_limited(), rate_limited(), rate_limited()])
        r = rig([channel("only", only)], seed=seed)  # the default policy: 4 attempts, 1 s backoff
        assert (await r.router.generate(generation())).channel == "only"
        assert len(only.calls) == 4
        assert len(r.sleeper.waits) == 3, r.sleeper.waits
        for wait, base in zip(r.sleeper.waits, (1.0, 2.0, 4.0), strict=True):
            assert 0.75 * base - 1e-9 <= wait <= 1.25 * base + 1e-9, r.sleeper.waits
        seen.append(r.sleeper.waits)
    # Jitter: the waits differ from run to run, and are not the bare 1, 2, 4.
    assert len({tuple(round(w, 6) for w in waits) for waits in seen}) == len(seen)
    assert all(waits != [1.0, 2.0, 4.0] for waits in seen)


async def test_429_runs_out_of_attempts_with_a_429() -> None:
    only = Scripted(then=lambda: rate_limited(retry_after=1))
    r = rig([channel("only", only)], max_attempts=3)
    with pytest.raises(RateLimited) as caught:
        await r.router.generate(generation())
    assert caught.value.status == 429
    assert len(only.calls) == 3
    assert r.sleeper.waits == [pytest.approx(1), pytest.approx(1)]
    assert "gave up after 3 attempts: only, only, only" in caught.value.message


async def test_429_on_one_channel_moves_to_another_at_once() -> None:
    a = Scripted([rate_limited(retry_after=5)])
    r = rig([channel("a", a, priority=10), channel("b", priority=0)])
    assert (await r.router.generate(generation())).channel == "b"
    assert r.sleeper.waits == []
    assert len(a.calls) == 1
    # The channel waits out its Retry-After for every request, not only the one that met the 429.
    assert (await r.router.generate(generation())).channel == "b"
    assert len(a.calls) == 1 and r.sleeper.waits == []
    r.clock.advance(5)
    assert (await r.router.generate(generation())).channel == "a"
    assert r.sleeper.waits == []


async def test_429_longer_than_max_wait_returns_the_429_with_its_retry_after() -> None:
    only = Scripted(then=lambda: rate_limited(retry_after=500))
    r = rig([channel("only", only)], max_wait_seconds=120, max_cooldown_seconds=600)
    with pytest.raises(RateLimited) as caught:
        await r.router.generate(generation())
    assert caught.value.retry_after == 500
    assert len(only.calls) == 1 and r.sleeper.waits == []


# -- failures: failover, backoff, giving up ----------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(lambda: unavailable("a"), id="503"),
        pytest.param(lambda: UpstreamError("channel 'a': HTTP 500", code="upstream_error"), id="500"),
        pytest.param(lambda: UpstreamTimeout("channel 'a': no answer"), id="timeout"),
        pytest.param(
            lambda: UpstreamError("channel 'a': the upstream sent no image", code="upstream_malformed"),
            id="malformed",
        ),
    ],
)
async def test_a_failure_moves_to_the_next_channel_at_once(error: Callable[[], PixelgateError]) -> None:
    a = Scripted([error()])
    r = rig([channel("a", a, priority=1), channel("b", priority=0)])
    assert (await r.router.generate(generation())).channel == "b"
    assert r.sleeper.waits == []
    assert len(a.calls) == 1
    breaker = r.breaker("a")
    assert sum(breaker.figures.errors.values()) == 1 and breaker.failures_in_a_row == 1
    assert r.breaker("b").figures.succeeded == 1


async def test_when_every_channel_failed_they_are_retried_after_a_backoff_then_given_up() -> None:
    a = Scripted(then=lambda: unavailable("a"))
    b = Scripted(then=lambda: unavailable("b"))
    r = rig([channel("a", a, priority=1), channel("b", b, priority=0)], failure_threshold=10)
    with pytest.raises(UpstreamError) as caught:
        await r.router.generate(generation())
    error = caught.value
    assert error.code == "upstream_unavailable" and error.status == 502
    assert len(a.calls) + len(b.calls) == 4
    assert len(a.calls) >= 2 and len(b.calls) >= 2, "both channels are tried again"
    # a and b at once, then each again after its backoff (1 s with jitter, then 2 s).
    assert r.sleeper.waits, "the second round waits"
    assert 0.75 - 1e-9 <= r.sleeper.waits[0] <= 1.25 + 1e-9, r.sleeper.waits
    assert sum(r.sleeper.waits) <= 2.5 + 1e-9, r.sleeper.waits
    assert "gave up after 4 attempts: a, b, " in error.message, error.message
    assert error.args == (error.message,)


async def test_a_single_failure_with_one_attempt_says_nothing_about_giving_up() -> None:
    r = rig([channel("a", Scripted(then=lambda: unavailable("a")))], max_attempts=1)
    with pytest.raises(UpstreamError) as caught:
        await r.router.generate(generation())
    assert "gave up" not in caught.value.message
    assert r.sleeper.waits == []


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            lambda: UpstreamRejected("the upstream refused the request (HTTP 400): bad prompt"), id="rejected"
        ),
        pytest.param(
            lambda: UpstreamRejected("the upstream refused the prompt", code="content_blocked"), id="blocked"
        ),
        pytest.param(lambda: InvalidRequest("the model turn carries no thought signature"), id="invalid"),
    ],
)
async def test_a_refused_request_is_raised_at_once_and_never_retried(
    error: Callable[[], PixelgateError],
) -> None:
    raised = error()
    a = Scripted([raised])
    r = rig([channel("a", a, priority=1), channel("b", priority=0)])
    with pytest.raises(InvalidRequest) as caught:
        await r.router.generate(generation())
    assert caught.value is raised and caught.value.status == 400
    assert "gave up" not in caught.value.message
    assert len(a.calls) == 1 and r.provider("b").calls == []
    assert r.sleeper.waits == []
    breaker = r.breaker("a")
    assert (breaker.failures_in_a_row, breaker.open_until, breaker.retry_at) == (0, 0.0, 0.0)
    assert breaker.state() is State.READY and breaker.figures.last_error is None
    assert breaker.figures.errors == {raised.code: 1}, "counted as an answer of its kind, not a failure"


# -- cooldown: the circuit breaker ------------------------------------------------------------------------


async def test_a_channel_that_keeps_failing_cools_down_doubling_and_a_success_resets_it() -> None:
    flaky = Scripted(then=lambda: unavailable("flaky"))
    r = rig(
        [channel("flaky", flaky, priority=10), channel("steady", priority=0)],
        failure_threshold=3,
        cooldown_seconds=30,
        max_cooldown_seconds=600,
    )
    breaker = r.breaker("flaky")

    async def used() -> str | None:
        return (await r.router.generate(generation())).channel

    # Three failures in a row: each request still tries flaky first, then steady serves it.
    for count in (1, 2, 3):
        assert await used() == "steady"
        assert len(flaky.calls) == count
    assert breaker.failures_in_a_row == 3 and breaker.state() is State.COOLING_DOWN
    assert breaker.open_until == pytest.approx(r.clock.now + 30)
    assert r.router.describe()[0]["state"] == "cooling_down"
    assert r.router.describe()[0]["seconds_left"] == pytest.approx(30)

    # Cooling: skipped (not even tried) until the clock passes the cooldown.
    for step in (0.0, 10.0, 19.9):
        r.clock.advance(step)
        assert await used() == "steady"
    assert len(flaky.calls) == 3
    assert r.sleeper.waits == []

    # Once the 30 s are over it is half-open: one request probes it; it fails, so it cools for 60 s.
    r.clock.advance(0.2)
    assert breaker.state() is State.HALF_OPEN
    assert await used() == "steady"
    assert len(flaky.calls) == 4
    assert breaker.open_until == pytest.approx(r.clock.now + 60)
    r.clock.advance(59.9)
    assert await used() == "steady"
    assert len(flaky.calls) == 4

    # It recovers: the probe succeeds, which resets the streak and the doubling.
    r.clock.advance(0.2)
    flaky.then = OK
    assert await used() == "flaky"
    assert (breaker.failures_in_a_row, breaker.trips, breaker.state()) == (0, 0, State.READY)
    assert r.router.describe()[0]["state"] == "ready"

    # Failing again starts from scratch: two failures do not cool it down, the third cools for 30 s.
    flaky.then = lambda: unavailable("flaky")
    assert await used() == "steady"
    assert await used() == "steady"
    assert breaker.state() is State.READY
    assert await used() == "steady"
    assert breaker.open_until == pytest.approx(r.clock.now + 30)


async def test_cooldown_doubling_stops_at_the_maximum() -> None:
    bad = Scripted(then=lambda: unavailable("bad"))
    r = rig(
        [channel("bad", bad, priority=1), channel("good")],
        failure_threshold=1,
        cooldown_seconds=30,
        max_cooldown_seconds=100,
    )
    breaker = r.breaker("bad")
    cooldowns = []
    for _ in range(4):
        assert (await r.router.generate(generation())).channel == "good"
        cooldowns.append(breaker.open_until - r.clock.now)
        r.clock.advance(cooldowns[-1] + 0.01)
    assert cooldowns == [pytest.approx(30), pytest.approx(60), pytest.approx(100), pytest.approx(100)]
    assert len(bad.calls) == 4, "one probe per cooldown"


async def test_a_request_that_finds_every_channel_cooling_fails_at_once_with_a_503() -> None:
    a = Scripted(then=lambda: unavailable("a"))
    b = Scripted(then=lambda: unavailable("b"))
    r = rig(
        [channel("a", a), channel("b", b)],
        failure_threshold=1,
        cooldown_seconds=300,
        max_wait_seconds=120,
    )
    # The first request fails on both (each then cools for 300 s), and is told when to come back.
    with pytest.raises(ChannelsUnavailable) as first:
        await r.router.generate(generation())
    assert first.value.status == 503 and first.value.retry_after == pytest.approx(300)
    assert "HTTP 503: overloaded" in first.value.message, "the last upstream error is quoted"
    assert len(a.calls) == 1 and len(b.calls) == 1 and r.sleeper.waits == []

    r.clock.advance(100)
    with pytest.raises(ChannelsUnavailable) as caught:
        await r.router.generate(generation())
    error = caught.value
    assert error.code == "channels_unavailable" and error.status == 503
    assert error.retry_after == pytest.approx(200)
    assert "a is cooling down after failing for 200 s more" in error.message, error.message
    assert "b is cooling down after failing for 200 s more" in error.message, error.message
    assert FLASH in error.message and "try again in 200 s" in error.message
    assert "HTTP 503: overloaded" in error.message, "the channel's last error is quoted"
    assert len(a.calls) == 1 and len(b.calls) == 1 and r.sleeper.waits == [], "never waited for"


async def test_a_cooling_channel_is_not_waited_for_even_within_max_wait() -> None:
    only = Scripted([unavailable("only")])
    r = rig([channel("only", only)], failure_threshold=1, cooldown_seconds=5, max_wait_seconds=120)
    with pytest.raises(ChannelsUnavailable) as caught:
        await r.router.generate(generation())
    assert caught.value.retry_after == pytest.approx(5)
    assert r.sleeper.waits == [] and len(only.calls) == 1


async def test_the_waits_of_one_request_add_up_to_max_wait_at_most() -> None:
    """Each 429's wait fits in max_wait alone; the second one would not fit in what the first left."""
    only = Scripted(then=lambda: rate_limited(retry_after=20))
    r = rig([channel("only", only)], max_wait_seconds=30, max_attempts=10)
    with pytest.raises(RateLimited) as caught:
        await r.router.generate(generation())
    assert r.sleeper.waits == [pytest.approx(20)]
    assert len(only.calls) == 2
    assert caught.value.status == 429 and caught.value.retry_after == pytest.approx(20)


async def test_max_wait_may_differ_by_model() -> None:
    only = Scripted(then=lambda: rate_limited(retry_after=20))
    r = rig([channel("only", only)], max_wait_seconds=10, max_wait_by_model={PRO: 50}, max_attempts=10)
    with pytest.raises(RateLimited):
        await r.router.generate(generation(FLASH))
    assert r.sleeper.waits == [], "20 s is more than the 10 s a flash image may wait"
    r.clock.advance(20)
    with pytest.raises(RateLimited):
        await r.router.generate(generation(PRO))
    assert r.sleeper.waits == [pytest.approx(20), pytest.approx(20)], "a pro image may wait 50 s"


async def test_after_the_cooldown_one_probe_goes_and_the_others_wait_for_its_answer() -> None:
    """Five requests arrive together when the cooldown ends: one is sent (the probe); the other four are
    sent only once it answered, and the channel is back in rotation for all of them."""
    spans: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()

    class Timed(Scripted):
        async def generate(self, generation: Generation) -> ProviderResult:
            started = loop.time()
            try:
                return await super().generate(generation)
            finally:
                spans.append((started, loop.time()))

    only = Timed([unavailable("only")], delay=0.05)
    r = rig([channel("only", only, concurrency=10)], failure_threshold=1, cooldown_seconds=30)
    with pytest.raises(ChannelsUnavailable):
        await r.router.generate(generation())
    spans.clear()
    r.clock.advance(30)
    assert r.breaker("only").state() is State.HALF_OPEN
    requests = [asyncio.ensure_future(r.router.generate(generation())) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert r.breaker("only").state() is State.PROBING
    assert r.router.describe()[0]["state"] == "probing"
    assert [made.channel for made in await asyncio.gather(*requests)] == ["only"] * 5
    probe, *others = sorted(spans)
    assert all(start >= probe[1] for start, _ in others), spans
    assert r.breaker("only").state() is State.READY


async def test_a_failed_probe_cools_the_channel_again_and_its_waiters_fail_at_once() -> None:
    only = Scripted(then=lambda: unavailable("only"), delay=0.05)
    r = rig([channel("only", only, concurrency=10)], failure_threshold=1, cooldown_seconds=30)
    with pytest.raises(ChannelsUnavailable):
        await r.router.generate(generation())
    r.clock.advance(30)
    outcomes = await asyncio.gather(
        *(r.router.generate(generation()) for _ in range(4)), return_exceptions=True
    )
    assert len(only.calls) == 2, "one probe; nobody else is sent to a channel that is still down"
    assert all(isinstance(o, ChannelsUnavailable) for o in outcomes), outcomes
    assert {round(o.retry_after or 0) for o in outcomes if isinstance(o, PixelgateError)} == {60}
    assert r.breaker("only").open_until == pytest.approx(r.clock.now + 60)


async def test_a_probe_that_runs_out_the_wait_of_the_others_tells_them_to_come_back_soon() -> None:
    only = Scripted([unavailable("only")])
    r = rig(
        [channel("only", only, concurrency=10)],
        failure_threshold=1,
        cooldown_seconds=30,
        max_wait_seconds=0.05,
    )
    with pytest.raises(ChannelsUnavailable):
        await r.router.generate(generation())
    r.clock.advance(30)
    only.delay = 0.2  # a probe slower than the others may wait
    probe = asyncio.ensure_future(r.router.generate(generation()))
    await asyncio.sleep(0.01)
    with pytest.raises(ChannelsUnavailable) as caught:  # after waiting 0.05 s for the probe
        await r.router.generate(generation())
    assert "only is being probed" in caught.value.message and caught.value.retry_after == 5
    assert (await probe).channel == "only"


async def test_a_cancelled_probe_lets_the_next_request_probe() -> None:
    only = Scripted([unavailable("only")])
    r = rig([channel("only", only, concurrency=10)], failure_threshold=1, cooldown_seconds=30)
    with pytest.raises(ChannelsUnavailable):
        await r.router.generate(generation())
    r.clock.advance(30)
    only.delay = 10  # the probe hangs until it is cancelled
    probe = asyncio.ensure_future(r.router.generate(generation()))
    await asyncio.sleep(0.01)
    assert r.breaker("only").state() is State.PROBING
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    assert r.breaker("only").state() is State.HALF_OPEN
    only.delay = 0
    assert (await r.router.generate(generation())).channel == "only"
    assert r.breaker("only").state() is State.READY


async def test_a_cooldown_of_zero_never_takes_a_channel_out() -> None:
    only = Scripted(then=lambda: unavailable("only"))
    r = rig([channel("only", only)], failure_threshold=1, cooldown_seconds=0, max_attempts=1)
    for _ in range(5):
        with pytest.raises(UpstreamError):
            await r.router.generate(generation())
    assert len(only.calls) == 5 and r.breaker("only").state() is State.READY


# -- the admin's hand: disable, enable, reset ----------------------------------------------------------------


async def test_a_disabled_channel_is_skipped_and_every_one_disabled_is_a_503() -> None:
    r = rig([channel("main", priority=1), channel("spare")])
    r.router.disable("main", Disabled(at=1.0, reason="maintenance until noon"))
    assert (await r.router.generate(generation())).channel == "spare"
    r.router.disable("spare", Disabled(at=2.0))
    with pytest.raises(ChannelsUnavailable) as caught:
        await r.router.generate(generation())
    message = caught.value.message
    assert "main is disabled by the admin (maintenance until noon)" in message, message
    assert "spare is disabled by the admin" in message and "admin can enable one" in message, message
    assert caught.value.retry_after == 60
    assert r.router.describe()[0]["state"] == "disabled"
    assert r.router.describe()[0]["disabled_reason"] == "maintenance until noon"
    r.router.enable("main")
    assert (await r.router.generate(generation())).channel == "main"
    assert r.provider("main").calls and len(r.provider("spare").calls) == 1


async def test_a_reset_puts_a_cooling_channel_back_at_once() -> None:
    flaky = Scripted([unavailable("flaky")])
    r = rig([channel("flaky", flaky)], failure_threshold=1, cooldown_seconds=300)
    with pytest.raises(ChannelsUnavailable):
        await r.router.generate(generation())
    r.router.reset("flaky")
    assert r.breaker("flaky").state() is State.READY
    assert (await r.router.generate(generation())).channel == "flaky"


async def test_an_unknown_channel_name_is_a_404_naming_the_channels() -> None:
    r = rig([channel("a"), channel("b")])
    with pytest.raises(NotFound) as caught:
        r.router.reset("c")
    assert caught.value.message == "no channel is named 'c': the channels are a or b"


async def test_describe_gives_each_channel_s_figures_since_start() -> None:
    a = Scripted([unavailable("a"), rate_limited(retry_after=3)])
    r = rig([channel("a", a, priority=1, secret="sk-abc"), channel("b")], failure_threshold=5)
    for _ in range(3):
        await r.router.generate(generation())
    a_now, b_now = r.router.describe()
    assert {k: a_now[k] for k in ("requests", "succeeded", "errors", "failures_in_a_row", "state")} == {
        "requests": 2,
        "succeeded": 0,
        "errors": {"upstream_rate_limited": 1, "upstream_unavailable": 1},
        "failures_in_a_row": 1,
        "state": "rate_limited",
    }
    assert a_now["seconds_left"] == pytest.approx(3) and a_now["last_error"].endswith("slow down")
    assert (b_now["requests"], b_now["succeeded"], b_now["errors"], b_now["state"]) == (3, 3, {}, "ready")
    assert (b_now["in_flight"], b_now["concurrency"], b_now["last_error"]) == (0, 16, None)


# -- the channel key never leaves -------------------------------------------------------------------------

SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(lambda: UpstreamError(f"channel 'a': HTTP 500: key {SECRET} is bad"), id="5xx"),
        pytest.param(lambda: UpstreamRejected(f"the upstream refused: key={SECRET}"), id="rejected"),
        pytest.param(lambda: rate_limited(retry_after=999), id="429"),
    ],
)
async def test_the_channel_key_is_redacted_from_what_a_provider_says(
    error: Callable[[], PixelgateError],
) -> None:
    raised = error()
    if isinstance(raised, RateLimited):
        raised.message = raised.message + f" for key {SECRET}"
        raised.args = (raised.message,)
    a = Scripted(then=lambda: raised)
    r = rig([channel("a", a, secret=SECRET)], max_attempts=2, failure_threshold=1, cooldown_seconds=1000)
    with pytest.raises(PixelgateError) as caught:
        await r.router.generate(generation())
    assert SECRET not in caught.value.message and SECRET not in str(caught.value)
    assert "[redacted]" in caught.value.message
    described = r.router.describe()[0]
    assert SECRET not in str(described)
    # A later request that finds the channel waiting quotes its last error: redacted too.
    if not isinstance(raised, UpstreamRejected):
        with pytest.raises(ChannelsUnavailable) as later:
            await r.router.generate(generation())
        assert later.value.code == "channels_unavailable"
        assert SECRET not in later.value.message and "[redacted]" in later.value.message


# -- timeouts and concurrency (real asyncio) --------------------------------------------------------------


async def test_a_channel_timeout_is_an_upstream_timeout_naming_the_channel() -> None:
    slow = Scripted(delay=5.0)
    chan = Channel(ChannelConfig(name="slowpoke", provider="openai", timeout=0.05), slow)
    router = Router([chan], RoutingConfig(max_attempts=1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout) as caught:
        await router.generate(generation())
    assert loop.time() - started < 1.0
    error = caught.value
    assert error.status == 504 and error.code == "upstream_timeout"
    assert "'slowpoke'" in error.message and "0.05 s" in error.message
    assert chan.in_flight == 0 and slow.in_flight == 0
    assert router.breakers["slowpoke"].figures.errors == {"upstream_timeout": 1}


async def test_a_timed_out_channel_fails_over_to_the_next() -> None:
    slow = Scripted(delay=5.0)
    r = rig([channel("slow", slow, priority=1, timeout=0.05), channel("quick")])
    assert (await r.router.generate(generation())).channel == "quick"
    assert r.sleeper.waits == []


async def test_concurrency_limit_holds_under_50_concurrent_generations() -> None:
    busy = Scripted(delay=0.01)
    chan = Channel(ChannelConfig(name="narrow", provider="openai", concurrency=5), busy)
    router = Router([chan], RoutingConfig())
    results = await asyncio.gather(*(router.generate(generation()) for _ in range(50)))
    assert [r.channel for r in results] == ["narrow"] * 50
    assert len(busy.calls) == 50
    assert busy.max_in_flight == 5, "never more than the limit, and the limit is used"
    assert chan.in_flight == 0


async def test_a_channel_with_a_free_slot_is_preferred_among_equals() -> None:
    a = Scripted(delay=0.05)
    b = Scripted(delay=0.05)
    router = Router(
        [
            Channel(ChannelConfig(name="a", provider="openai", concurrency=1, weight=1000), a),
            Channel(ChannelConfig(name="b", provider="openai", concurrency=1, weight=0.001), b),
        ],
        RoutingConfig(),
        rng=random.Random(1),
    )
    results = await asyncio.gather(router.generate(generation()), router.generate(generation()))
    assert sorted(r.channel or "" for r in results) == ["a", "b"]
    assert a.max_in_flight == 1 and b.max_in_flight == 1


async def test_close_closes_every_provider_even_if_one_fails() -> None:
    class Broken(Scripted):
        async def close(self) -> None:
            raise RuntimeError("boom")

    good = Scripted()
    router = Router([channel("x", Broken()), channel("y", good)])
    await router.close()
    assert good.closed


# -- resuming an upstream task after a restart ---------------------------------------------------------------


async def test_a_resumed_upstream_task_is_polled_on_its_channel_first() -> None:
    """The channel that holds the upstream task gets the resume state, even below a higher priority; if
    that fails, the other channels start afresh (no resume state), and whatever a provider remembers is
    saved with the channel that made it."""
    saved: list[dict[str, Any]] = []

    async def remember(state: dict[str, Any]) -> None:
        saved.append(state)

    r = rig([channel("high", priority=10), channel("low", Scripted([unavailable("low")]), priority=0)])
    resumed = replace(generation(), resume={"channel": "low", "task": "up-1"}, remember=remember)
    assert (await r.router.generate(resumed)).channel == "high"
    (on_low,) = r.provider("low").calls
    (on_high,) = r.provider("high").calls
    assert on_low.resume == {"channel": "low", "task": "up-1"}
    assert on_high.resume is None
    assert r.sleeper.waits == []
    assert on_high.remember is not None
    await on_high.remember({"task": "up-2"})
    assert saved == [{"task": "up-2", "channel": "high"}]


async def test_a_resume_state_for_a_channel_that_is_gone_is_ignored() -> None:
    r = rig([channel("a")])
    resumed = replace(generation(), resume={"channel": "removed", "task": "up-1"})
    assert (await r.router.generate(resumed)).channel == "a"
    assert r.provider("a").calls[0].resume is None


# -- bursts: requests in flight together when an upstream fails are one event, not a streak -----------------


async def test_a_burst_of_failures_trips_the_cooldown_once() -> None:
    """16 requests in flight when the upstream goes down all fail: one cooldown of 30 s, not a doubling
    per failure that would keep the channel out for the maximum."""
    down = Scripted(then=lambda: unavailable("down"), delay=0.01)
    r = rig([channel("down", down, concurrency=16)], max_attempts=1, failure_threshold=3, cooldown_seconds=30)
    outcomes = await asyncio.gather(
        *(r.router.generate(generation()) for _ in range(16)), return_exceptions=True
    )
    assert all(isinstance(o, UpstreamError) for o in outcomes)
    breaker = r.breaker("down")
    assert (breaker.failures_in_a_row, breaker.trips) == (16, 1)
    assert breaker.open_until == pytest.approx(r.clock.now + 30)


async def test_a_burst_of_429s_is_one_wait_not_a_streak() -> None:
    limited = Scripted(then=rate_limited, delay=0.01)
    r = rig([channel("limited", limited, concurrency=16)], max_attempts=1)
    await asyncio.gather(*(r.router.generate(generation()) for _ in range(16)), return_exceptions=True)
    breaker = r.breaker("limited")
    assert breaker.rate_limits_in_a_row == 1
    assert 0.75 <= breaker.limited_until - r.clock.now <= 1.25  # the first backoff step, not the 30 s cap


async def test_a_success_ends_a_cooldown_but_not_a_rate_limit_wait() -> None:
    r = rig([channel("a")], failure_threshold=2)
    breaker = r.breaker("a")
    breaker.failed(unavailable(), probe=False)
    breaker.failed(unavailable(), probe=False)
    assert breaker.state() is State.COOLING_DOWN and breaker.open_until > r.clock.now
    breaker.succeeded(0.5, probe=False)  # a request that was in flight comes back fine: it answers again
    assert (breaker.state(), breaker.open_until, breaker.retry_at) == (State.READY, 0.0, 0.0)

    breaker.rate_limited(rate_limited(retry_after=20), probe=False)
    breaker.succeeded(0.5, probe=False)
    assert breaker.state() is State.RATE_LIMITED
    assert breaker.limited_until == pytest.approx(r.clock.now + 20)


async def test_an_endless_retry_after_is_capped() -> None:
    r = rig([channel("a")], max_cooldown_seconds=300)
    r.breaker("a").rate_limited(rate_limited(retry_after=86_400), probe=False)
    assert r.breaker("a").limited_until == pytest.approx(r.clock.now + 300)


@pytest.mark.parametrize(
    "error", [KeyError("candidates"), AttributeError("'str' has no 'get'"), TypeError("x")]
)
async def test_an_unreadable_answer_is_the_channel_s_fault_and_fails_over(error: Exception) -> None:
    def broken() -> PixelgateError:
        raise error

    r = rig([channel("odd", Scripted([broken]), priority=1), channel("fine")])
    assert (await r.router.generate(generation())).channel == "fine"
    figures = r.breaker("odd").figures
    assert figures.errors == {"upstream_malformed": 1}
    assert (
        figures.last_error
        == f"channel 'odd': the upstream's answer could not be read ({type(error).__name__})"
    )


def test_abandon_reaches_the_channel_that_holds_each_upstream_task() -> None:
    r = rig([channel("a"), channel("b")])
    r.router.abandon({"0": {"channel": "b", "task": "up-1"}, "1": {"channel": "gone", "task": "up-2"}})
    assert r.provider("a").abandoned == []
    assert r.provider("b").abandoned == [{"channel": "b", "task": "up-1"}]
