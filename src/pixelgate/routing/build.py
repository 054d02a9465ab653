"""Channels built from the channel file: each provider's options checked, its key read, its client made."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from pixelgate.config import ChannelConfig, ConfigError, GatewayConfig
from pixelgate.providers.base import Provider
from pixelgate.routing.channel import Channel
from pixelgate.routing.router import Router


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
