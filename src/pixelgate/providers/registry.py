"""The provider kinds a channel can name (``provider = "google"``): each says which options a channel of it
takes, how it builds the channel's provider, and what the router must know of its upstream.

Each provider module declares its own kind next to its code (``KIND = ProviderKind(...)``). The registry
holds the built-in four and, as simonw/llm's plugins do, the kinds that installed packages add through the
``pixelgate.providers`` entry-point group, each entry point naming a ``ProviderKind`` by its name::

    [project.entry-points."pixelgate.providers"]
    acme = "pixelgate_acme:KIND"

They are read once, on first use (``provider_kinds()``); a plugin that cannot be loaded stops the server at
start with a message that names it, as a wrong channel file does. The built-in kinds are registered by
where they are declared, as entry points are, and imported when a channel first names them: a server that
only emulates never imports the HTTP client the others need (0.15-0.25 s of its start, on 2 cores).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from pixelgate.config import ChannelConfig, ConfigError
from pixelgate.core.errors import one_of
from pixelgate.providers.base import Provider

ENTRY_POINT_GROUP = "pixelgate.providers"
BUILT_IN = ("google", "openai", "tasks", "emulator")  # each module's ``KIND``, in this order

OptionsT = TypeVar("OptionsT", bound=BaseModel)
ProviderKindT = TypeVar("ProviderKindT", bound="ProviderKind[Any] | EntryPoint")


@dataclass(frozen=True)
class ProviderKind(Generic[OptionsT]):
    """One kind of upstream, as a channel's ``provider`` names it."""

    name: str
    options: type[OptionsT]  # what the channel's ``options`` may hold
    build: Callable[[ChannelConfig, str | None, OptionsT], Provider]  # (channel, its key, its options)
    description: str  # one line, for whoever chooses a provider
    # What else a channel of this kind needs (a base_url, say): raises ConfigError saying what is missing.
    check_channel: Callable[[ChannelConfig], None] | None = None
    default_base_url: str | None = None  # where a channel without its own base_url goes
    # Whether the upstream knows the vendor's own model ids (Google's API does): a gateway alias then goes
    # there by its upstream id. Other upstreams are gateways that know the aliases as their names.
    knows_vendor_ids: bool = False

    def checked_options(self, channel: ChannelConfig) -> OptionsT:
        """The channel's ``options``, checked against this kind's (and whatever else the kind needs of a
        channel): every mistake is a ``ConfigError`` before anything starts."""
        if self.check_channel is not None:
            self.check_channel(channel)
        try:
            return self.options.model_validate(channel.options)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            allowed = ", ".join(f.alias or name for name, f in self.options.model_fields.items()) or "none"
            raise ConfigError(
                f"channel {channel.name!r}: options.{where}: {first['msg']} (got {first.get('input')!r}; "
                f"the {self.name} provider takes {allowed})"
            ) from None

    def provider_for(self, channel: ChannelConfig, api_key: str | None) -> Provider:
        """The provider of one channel (its options checked first)."""
        return self.build(channel, api_key, self.checked_options(channel))


class ProviderRegistry:
    """Provider kinds by name, in the order they were registered. A kind registered as an entry point (where
    it is declared, ``module:attribute``) is imported the first time it is asked for."""

    def __init__(self, kinds: Iterable[ProviderKind[Any] | EntryPoint] = ()) -> None:
        self._kinds: dict[str, ProviderKind[Any] | EntryPoint] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: ProviderKindT) -> ProviderKindT:
        if kind.name in self._kinds:
            raise ConfigError(f"two providers are named {kind.name!r}: names must differ")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str, *, where: str = "provider") -> ProviderKind[Any]:
        """The kind registered as ``name``; ``where`` says in the error who named it."""
        try:
            kind = self._kinds[name]
        except KeyError:
            raise ConfigError(
                f"{where}: no provider is registered by that name (got {name!r}): "
                f"use {one_of([repr(known) for known in self._kinds])}"
            ) from None
        if isinstance(kind, EntryPoint):
            kind = self._kinds[name] = _load(kind)
        return kind

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[ProviderKind[Any]]:
        return (self.get(name) for name in self.names)

    def __len__(self) -> int:
        return len(self._kinds)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register the kinds that installed packages declare in ``group``."""
        for point in entry_points(group=group):
            kind = _load(point)  # now: a plugin that cannot be loaded stops the server at start
            try:
                self.register(kind)
            except ConfigError as exc:
                raise ConfigError(f"{_named(point)}: {exc}") from exc


def _named(point: EntryPoint) -> str:
    if point.dist is None:  # a built-in kind, registered by provider_kinds()
        return f"the built-in provider {point.name} = {point.value}"
    made_by = f", from {point.dist.name} {point.dist.version}"
    return f"the provider plugin {point.name} = {point.value} (entry point group {point.group}{made_by})"


def _load(point: EntryPoint) -> ProviderKind[Any]:
    try:
        return _kind_of(point)
    except ConfigError as exc:
        raise ConfigError(f"{_named(point)}: {exc}") from exc


def _kind_of(point: EntryPoint) -> ProviderKind[Any]:
    try:
        kind = point.load()
    except Exception as exc:  # whatever a plugin raises on import, the server says which plugin and why
        raise ConfigError(f"cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if not isinstance(kind, ProviderKind):
        raise ConfigError(f"names a {type(kind).__name__}, not a pixelgate ProviderKind")
    if kind.name != point.name:
        raise ConfigError(f"declares the provider {kind.name!r}: name the entry point as the provider")
    return kind


@cache
def provider_kinds() -> ProviderRegistry:
    """The built-in provider kinds, then those of installed plugins (read once, on first use)."""
    registry = ProviderRegistry(
        EntryPoint(name, f"pixelgate.providers.{name}:KIND", ENTRY_POINT_GROUP) for name in BUILT_IN
    )
    registry.load_entry_points()
    return registry
