"""Channels built from the channel file: each channel's provider kind found in the registry
(``providers/registry.py``), its options checked, its key read, its client made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from pixelgate.config import ChannelConfig, GatewayConfig
from pixelgate.providers.base import Provider
from pixelgate.providers.registry import ProviderKind, provider_kinds
from pixelgate.routing.channel import Channel
from pixelgate.routing.router import Router


def channel_kinds(config: GatewayConfig) -> list[ProviderKind[Any]]:
    """Each channel's provider kind: a name that is not registered is a ``ConfigError`` that says where the
    file names it, before anything of any channel is checked or built."""
    registry = provider_kinds()
    return [
        registry.get(
            channel.provider, where=f"{config.source}: channels[{index}] ({channel.name!r}).provider"
        )
        for index, channel in enumerate(config.channels)
    ]


def provider_options(config: ChannelConfig) -> BaseModel:
    """A channel's ``options``, checked against its provider's own (and whatever else the provider needs
    of a channel): every mistake is a ``ConfigError`` before anything starts."""
    options: BaseModel = _kind(config).checked_options(config)
    return options


def check_channels(config: GatewayConfig) -> None:
    for kind, channel in zip(channel_kinds(config), config.channels, strict=True):
        kind.checked_options(channel)


def build_provider(config: ChannelConfig, api_key: str | None) -> Provider:
    """The provider of one channel (its options checked first)."""
    return _kind(config).provider_for(config, api_key)


def build_router(config: GatewayConfig, environ: Mapping[str, str] | None = None) -> Router:
    channels = []
    for kind, channel_config in zip(channel_kinds(config), config.channels, strict=True):
        key = channel_config.api_key(environ) if environ is not None else channel_config.api_key()
        provider = kind.provider_for(channel_config, key)
        channels.append(Channel(channel_config, provider, secret=key, kind=kind))
    return Router(channels, config.routing)


def _kind(config: ChannelConfig) -> ProviderKind[Any]:
    return provider_kinds().get(config.provider, where=f"channel {config.name!r}")
