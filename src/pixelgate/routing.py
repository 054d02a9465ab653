"""Which provider makes the images for a model. (Channels, retries and failover arrive with real upstreams;
the interface stays: ``provider_for(spec)``.)"""

from __future__ import annotations

from pixelgate.catalog import ModelSpec
from pixelgate.core.errors import NoUpstreamConfigured
from pixelgate.providers.base import Provider


class Router:
    def __init__(self, providers: list[Provider]) -> None:
        self.providers = providers

    def provider_for(self, spec: ModelSpec) -> Provider:
        for provider in self.providers:
            if provider.serves(spec):
                return provider
        raise NoUpstreamConfigured(
            f"no upstream is configured for {spec.id}: start the server with --emulate to serve every "
            "catalog model from the offline emulator, or configure an upstream for it",
            param="model",
        )

    async def close(self) -> None:
        for provider in self.providers:
            await provider.close()
