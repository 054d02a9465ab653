"""A channel: one upstream (a provider, its base URL and key) with the models it serves, its concurrency
slots, and whether the admin took it out of rotation."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pixelgate.catalog import ModelSpec
from pixelgate.config import ChannelConfig
from pixelgate.core.errors import PixelgateError, UpstreamError, UpstreamTimeout
from pixelgate.core.slots import PrioritySlots
from pixelgate.providers.base import Generation, Provider, ProviderResult
from pixelgate.providers.registry import ProviderKind, provider_kinds

log = logging.getLogger("pixelgate.routing")


@dataclass(frozen=True)
class Disabled:
    """The admin took the channel out of rotation (``POST /admin/channels/{name}/disable``)."""

    at: float  # wall-clock time
    reason: str | None = None


class Channel:
    def __init__(
        self,
        config: ChannelConfig,
        provider: Provider,
        secret: str | None = None,
        kind: ProviderKind[Any] | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.secret = secret
        # The registry's kind of its provider, unless the caller found it already.
        self.kind = kind or provider_kinds().get(config.provider, where=f"channel {config.name!r}")
        self.base_url = config.base_url or self.kind.default_base_url
        self.slots = PrioritySlots(config.concurrency)
        self.in_flight = 0
        self.disabled: Disabled | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def upstream_model(self, spec: ModelSpec) -> str | None:
        """The model's name at this channel's upstream, or None if the channel does not serve it."""
        return self.config.upstream_model(spec, vendor_ids=self.kind.knows_vendor_ids)

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
