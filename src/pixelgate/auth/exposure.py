"""Whether callers need a key: decided once per start, from what a stranger reaching the port could spend.

Keys are required (unless ``--no-auth`` says otherwise) as soon as anything is at stake: the server listens
beyond loopback, an admin key is set, the database holds API keys, or a channel spends a real upstream's
money. Loopback alone is no protection: a reverse proxy on the same host forwards the internet to it. Only
an emulator on loopback, with none of those, stays open (``serve --emulate``: nothing to spend, nothing to
steal).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pixelgate.config import ChannelConfig, GatewayConfig, Settings


@dataclass(frozen=True)
class Exposure:
    enabled: bool  # whether every request but /healthz and signed image URLs needs a key
    reasons: tuple[str, ...]  # what is at stake, each a phrase: why keys are on, or what --no-auth exposes
    message: str  # the line a start logs, at ``level``
    level: int = logging.INFO


def decide(settings: Settings, config: GatewayConfig, api_keys: int) -> Exposure:
    """Whether keys are required, given ``--auth/--no-auth`` (``settings.auth``), the channels this server
    runs with and how many API keys the database holds."""
    spenders = [c for c in config.channels if c.provider != "emulator"]
    reasons: list[str] = []
    if not settings.on_loopback:
        reasons.append(f"it listens on {settings.host}, beyond loopback")
    if settings.admin_key is not None:
        reasons.append("PIXELGATE_ADMIN_KEY is set")
    if api_keys:
        reasons.append(f"{_keys(api_keys)} in the database")
    reasons += [f"channel {channel.name!r} ({channel.provider}) {_spends(channel)}" for channel in spenders]
    if settings.auth is False:
        return Exposure(False, tuple(reasons), _open_warning(settings, spenders, api_keys), logging.WARNING)
    if settings.auth:
        because = f": {'; '.join(reasons)}" if reasons else ""
        return Exposure(True, tuple(reasons), f"API keys are required (--auth){because}")
    if reasons:
        message = f"API keys are required: {'; '.join(reasons)}. --no-auth turns them off (on loopback only)"
        return Exposure(True, tuple(reasons), message)
    return Exposure(
        False,
        (),
        f"API keys are not required: the server listens on {settings.host} only, no PIXELGATE_ADMIN_KEY is "
        "set, the database holds no API key and no channel but the emulator is configured (--auth requires "
        "them)",
    )


def _keys(count: int) -> str:
    return "1 API key" if count == 1 else f"{count} API keys"


def _spends(channel: ChannelConfig) -> str:
    return f"spends the key in {channel.api_key_env}" if channel.api_key_env else "calls its upstream"


def _open_warning(settings: Settings, spenders: list[ChannelConfig], api_keys: int) -> str:
    """What anyone who reaches the port may do with auth off, named so that it is not a surprise."""
    uses = [f"channel {c.name!r} ({c.provider}), which {_spends(c)}" for c in spenders]
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    where = f"{host}:{settings.port}"
    exposed = _and([*uses, "the admin API (every key, task and usage record)"])
    parts = [
        f"auth is off (--no-auth): anyone who reaches {where} (and, through a reverse proxy on this host, "
        f"anyone on the internet) may use {exposed}"
    ]
    if settings.admin_key is not None:
        parts.append("PIXELGATE_ADMIN_KEY is set but ignored")
    if api_keys:
        parts.append(f"{_keys(api_keys)} in the database {'is' if api_keys == 1 else 'are'} ignored")
    return "; ".join(parts) + ". Drop --no-auth to require keys"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
