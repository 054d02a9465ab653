"""The provider registry (``providers/registry.py``): the built-in kinds, registering one, what an unknown
provider or a wrong option says, and plugins that installed packages add through the ``pixelgate.providers``
entry-point group (a distribution made here, as a ``.dist-info`` folder on ``sys.path``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from pixelgate.catalog import default_catalog
from pixelgate.config import ChannelConfig, ConfigError, GatewayConfig
from pixelgate.providers import emulator, google, openai, registry, tasks
from pixelgate.providers.emulator import EmulatorProvider
from pixelgate.providers.registry import ProviderKind, ProviderRegistry, provider_kinds
from pixelgate.routing import Channel, build_router, check_channels

CATALOG = default_catalog()
PLUGIN = "pixelgate_acme_plugin"  # the plugin's module, made in a temporary folder


class AcmeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    colour: str = "blue"
    shade: int = 0


def build_acme(channel: ChannelConfig, api_key: str | None, options: AcmeOptions) -> EmulatorProvider:
    return EmulatorProvider()


ACME = ProviderKind(name="acme", options=AcmeOptions, build=build_acme, description="A test upstream")


# -- the built-in kinds ------------------------------------------------------------------------------------


def test_the_built_in_four_are_registered_in_order_each_declared_by_its_module() -> None:
    kinds = provider_kinds()
    assert kinds.names == ("google", "openai", "tasks", "emulator")
    assert [kinds.get(name) for name in kinds.names] == [google.KIND, openai.KIND, tasks.KIND, emulator.KIND]
    for kind in kinds:
        assert kind.description and "\n" not in kind.description, kind.name
    assert provider_kinds() is kinds, "read once"


def test_the_built_in_kinds_say_what_the_router_needs_of_their_upstream() -> None:
    facts = {
        k.name: (k.default_base_url, k.knows_vendor_ids, k.check_channel is not None)
        for k in provider_kinds()
    }
    assert facts == {
        "google": ("https://generativelanguage.googleapis.com", True, False),
        "openai": ("https://api.openai.com/v1", False, False),
        "tasks": (None, False, True),
        "emulator": (None, False, False),
    }


def test_a_channel_takes_its_base_url_and_model_names_from_its_kind() -> None:
    alias = next(spec for spec in CATALOG if spec.is_alias)
    at_google = Channel(ChannelConfig(name="g", provider="google"), EmulatorProvider())
    assert at_google.kind is google.KIND
    assert at_google.base_url == google.KIND.default_base_url
    assert at_google.upstream_model(alias) == alias.upstream_id
    elsewhere = Channel(
        ChannelConfig(name="o", provider="openai", base_url="http://gw/v1"), EmulatorProvider()
    )
    assert elsewhere.base_url == "http://gw/v1"
    assert elsewhere.upstream_model(alias) == alias.id


# -- registering, and what a wrong name or option says -----------------------------------------------------


def test_a_registered_kind_is_found_by_name() -> None:
    kinds = ProviderRegistry([google.KIND])
    assert kinds.register(ACME) is ACME
    assert kinds.get("acme") is ACME
    assert kinds.names == ("google", "acme")
    assert "acme" in kinds and "vertex" not in kinds
    assert len(kinds) == 2 and list(kinds) == [google.KIND, ACME]


def test_a_name_registered_twice_is_refused() -> None:
    kinds = ProviderRegistry([ACME])
    with pytest.raises(ConfigError) as caught:
        kinds.register(ProviderKind(name="acme", options=AcmeOptions, build=build_acme, description="again"))
    assert str(caught.value) == "two providers are named 'acme': names must differ"
    assert kinds.get("acme") is ACME


def test_an_unknown_provider_says_what_was_received_and_lists_the_registered_names() -> None:
    with pytest.raises(ConfigError) as caught:
        provider_kinds().get("vertex")
    assert str(caught.value) == (
        "provider: no provider is registered by that name (got 'vertex'): "
        "use 'google', 'openai', 'tasks' or 'emulator'"
    )
    with pytest.raises(ConfigError) as caught:
        ProviderRegistry([ACME]).get("acne", where="channel 'x'")
    assert str(caught.value) == "channel 'x': no provider is registered by that name (got 'acne'): use 'acme'"


def test_an_unknown_provider_in_a_channel_file_names_where_it_is() -> None:
    config = GatewayConfig(
        channels=[ChannelConfig(name="fine", provider="google"), ChannelConfig(name="v", provider="vertex")],
        source="pixelgate.toml",
    )
    with pytest.raises(ConfigError) as caught:
        check_channels(config)
    assert str(caught.value) == (
        "pixelgate.toml: channels[1] ('v').provider: no provider is registered by that name (got 'vertex'): "
        "use 'google', 'openai', 'tasks' or 'emulator'"
    )


def test_options_are_checked_against_the_kinds_own() -> None:
    assert ACME.checked_options(
        ChannelConfig(name="a", provider="acme", options={"shade": 3})
    ) == AcmeOptions(shade=3)
    with pytest.raises(ConfigError) as caught:
        ACME.checked_options(ChannelConfig(name="a", provider="acme", options={"shade": "dark"}))
    assert str(caught.value) == (
        "channel 'a': options.shade: Input should be a valid integer, unable to parse string as an integer "
        "(got 'dark'; the acme provider takes colour, shade)"
    )


def test_a_kinds_channel_check_runs_before_its_options() -> None:
    channel = ChannelConfig(name="t", provider="tasks", options={"colour": "blue"})
    with pytest.raises(ConfigError) as caught:
        tasks.KIND.provider_for(channel, None)
    assert str(caught.value) == "channel 't': a tasks channel needs a base_url (e.g. https://host/v1)"


# -- plugins: the pixelgate.providers entry-point group ---------------------------------------------------

PLUGIN_SOURCE = """
from pydantic import BaseModel, ConfigDict

from pixelgate.providers.emulator import EmulatorProvider
from pixelgate.providers.registry import ProviderKind


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    colour: str = "blue"


def build(channel, api_key, options):
    return EmulatorProvider()


KIND = ProviderKind(
    name="acme",
    options=Options,
    build=build,
    description="Acme's image upstream",
    default_base_url="https://acme.example/v1",
)
NOT_A_KIND = "acme"
"""


@pytest.fixture()
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``install(entry_points, source)``: a distribution, pixelgate-acme 1.0, with the plugin module and
    these entry points, found on ``sys.path``; the registry is read afresh, and again after the test."""

    def installed(entry_points: str, source: str = PLUGIN_SOURCE) -> None:
        (tmp_path / f"{PLUGIN}.py").write_text(source)
        dist_info = tmp_path / "pixelgate_acme-1.0.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: pixelgate-acme\nVersion: 1.0\n")
        (dist_info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
        monkeypatch.syspath_prepend(str(tmp_path))
        provider_kinds.cache_clear()

    yield installed
    provider_kinds.cache_clear()
    sys.modules.pop(PLUGIN, None)


def test_a_plugin_adds_a_provider_kind_after_the_built_in_ones(install: Any) -> None:
    install(f"[pixelgate.providers]\nacme = {PLUGIN}:KIND\n")
    kinds = provider_kinds()
    assert kinds.names == ("google", "openai", "tasks", "emulator", "acme")
    assert kinds.get("acme") is sys.modules[PLUGIN].KIND


def test_a_plugins_channel_is_built_like_any_other(install: Any) -> None:
    install(f"[pixelgate.providers]\nacme = {PLUGIN}:KIND\n")
    config = GatewayConfig(channels=[ChannelConfig(name="a", provider="acme", options={"colour": "red"})])
    (channel,) = build_router(config, {}).channels
    assert channel.kind.name == "acme" and channel.base_url == "https://acme.example/v1"
    assert isinstance(channel.provider, EmulatorProvider)
    wrong = GatewayConfig(channels=[ChannelConfig(name="a", provider="acme", options={"size": 1})])
    with pytest.raises(ConfigError) as caught:
        check_channels(wrong)
    assert "(got 1; the acme provider takes colour)" in str(caught.value)


def test_plugins_are_read_once_and_only_when_first_needed(
    install: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(f"[pixelgate.providers]\nacme = {PLUGIN}:KIND\n")
    reads: list[str] = []
    real = registry.entry_points

    def counted(*, group: str) -> Any:
        reads.append(group)
        return real(group=group)

    monkeypatch.setattr(registry, "entry_points", counted)
    assert PLUGIN not in sys.modules, "installing is not loading"
    first = provider_kinds()
    assert provider_kinds() is first and "acme" in first
    assert reads == ["pixelgate.providers"]


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        ("acme = pixelgate_no_such_module:KIND", "cannot be loaded: ModuleNotFoundError: No module named"),
        (f"acme = {PLUGIN}:NOT_A_KIND", "names a str, not a pixelgate ProviderKind"),
        (f"other = {PLUGIN}:KIND", "declares the provider 'acme': name the entry point as the provider"),
        (f"google = {PLUGIN}:KIND", "declares the provider 'acme'"),
    ],
    ids=["unloadable", "not-a-kind", "misnamed", "misnamed-as-built-in"],
)
def test_a_broken_plugin_is_named_in_the_error(install: Any, entry: str, said: str) -> None:
    install(f"[pixelgate.providers]\n{entry}\n")
    with pytest.raises(ConfigError) as caught:
        provider_kinds()
    message = str(caught.value)
    name, _, value = entry.partition(" = ")
    assert message.startswith(
        f"the provider plugin {name} = {value} (entry point group pixelgate.providers, from pixelgate-acme 1.0): "
    ), message
    assert said in message


def test_a_plugin_may_not_take_a_built_in_name(install: Any) -> None:
    install(f"[pixelgate.providers]\ngoogle = {PLUGIN}:KIND\n", PLUGIN_SOURCE.replace('"acme"', '"google"'))
    with pytest.raises(ConfigError) as caught:
        provider_kinds()
    assert str(caught.value).endswith(": two providers are named 'google': names must differ")


def test_a_built_in_kind_is_imported_when_a_channel_first_names_it() -> None:
    """An emulating server never imports the HTTP providers (and aiohttp under them): a fifth of its start."""
    script = textwrap.dedent(
        """
        import sys
        from pixelgate.providers.registry import provider_kinds

        def loaded():
            return sorted(m for m in ("pixelgate.providers.google", "aiohttp") if m in sys.modules)

        kinds = provider_kinds()
        print(loaded(), kinds.get("emulator").name, loaded(), kinds.get("google").name, loaded())
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stdout.split("\n")[0] == "[] emulator [] google ['aiohttp', 'pixelgate.providers.google']"
