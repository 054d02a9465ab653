"""When keys are required (``auth/exposure.py``), decided from the settings, the channels and the keys in the
database: every condition alone turns keys on; only an emulator on loopback stays open; ``--auth`` and
``--no-auth`` win; and what ``--no-auth`` exposes is named."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import pytest
from pydantic import SecretStr

from pixelgate.auth.exposure import decide
from pixelgate.config import ChannelConfig, ConfigError, GatewayConfig, Settings

EMULATOR = ChannelConfig(name="emulator", provider="emulator")
GOOGLE = ChannelConfig(name="gemini", provider="google", api_key_env="GEMINI_API_KEY")
TASKS = ChannelConfig(name="taskgw", provider="tasks", base_url="http://127.0.0.1:9/v1")
ADMIN = SecretStr("chosen-by-the-operator")


def settings(**fields: Any) -> Settings:
    return Settings.model_construct(
        **{"host": "127.0.0.1", "port": 8000, "auth": None, "admin_key": None, **fields}
    )


def channels(*configured: ChannelConfig) -> GatewayConfig:
    return GatewayConfig(channels=list(configured))


def test_an_emulator_on_loopback_with_nothing_else_stays_open() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        exposure = decide(settings(host=host), channels(EMULATOR), 0)
        assert not exposure.enabled and exposure.reasons == ()
        assert exposure.level == logging.INFO
        assert exposure.message.startswith("API keys are not required"), exposure.message
    assert not decide(settings(), channels(), 0).enabled


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ({"host": "0.0.0.0"}, "it listens on 0.0.0.0, beyond loopback"),
        ({"host": "192.168.1.20"}, "it listens on 192.168.1.20, beyond loopback"),
        ({"admin_key": ADMIN}, "PIXELGATE_ADMIN_KEY is set"),
        ({"api_keys": 1}, "1 API key in the database"),
        ({"api_keys": 3}, "3 API keys in the database"),
        ({"channels": [GOOGLE]}, "channel 'gemini' (google) spends the key in GEMINI_API_KEY"),
        ({"channels": [TASKS, EMULATOR]}, "channel 'taskgw' (tasks) calls its upstream"),
    ],
)
def test_each_thing_at_stake_alone_requires_keys(given: dict[str, Any], reason: str) -> None:
    configured = channels(*given.pop("channels", [EMULATOR]))
    api_keys = given.pop("api_keys", 0)
    exposure = decide(settings(**given), configured, api_keys)
    assert exposure.enabled
    assert exposure.reasons == (reason,)
    assert exposure.message == f"API keys are required: {reason}. --no-auth turns them off (on loopback only)"
    assert exposure.level == logging.INFO


def test_every_reason_is_named() -> None:
    exposure = decide(settings(admin_key=ADMIN), channels(GOOGLE, TASKS, EMULATOR), 2)
    assert exposure.enabled
    assert exposure.reasons == (
        "PIXELGATE_ADMIN_KEY is set",
        "2 API keys in the database",
        "channel 'gemini' (google) spends the key in GEMINI_API_KEY",
        "channel 'taskgw' (tasks) calls its upstream",
    )


def test_auth_forced_on_requires_keys_even_with_nothing_at_stake() -> None:
    exposure = decide(settings(auth=True), channels(EMULATOR), 0)
    assert exposure.enabled and exposure.message == "API keys are required (--auth)"
    exposure = decide(settings(auth=True), channels(GOOGLE), 0)
    assert exposure.message == (
        "API keys are required (--auth): channel 'gemini' (google) spends the key in GEMINI_API_KEY"
    )


def test_auth_forced_off_warns_and_names_what_is_exposed() -> None:
    exposure = decide(settings(auth=False, port=8123, admin_key=ADMIN), channels(GOOGLE, TASKS, EMULATOR), 4)
    assert not exposure.enabled
    assert exposure.level == logging.WARNING
    assert exposure.message == (
        "auth is off (--no-auth): anyone who reaches 127.0.0.1:8123 (and, through a reverse proxy on this "
        "host, anyone on the internet) may use channel 'gemini' (google), which spends the key in "
        "GEMINI_API_KEY, channel 'taskgw' (tasks), which calls its upstream and the admin API (every key, "
        "task and usage record); PIXELGATE_ADMIN_KEY is set but ignored; 4 API keys in the database are "
        "ignored. Drop --no-auth to require keys"
    )
    assert ADMIN.get_secret_value() not in exposure.message


def test_an_ipv6_loopback_is_named_as_a_url_would() -> None:
    exposure = decide(settings(auth=False, host="::1", port=8123), channels(EMULATOR), 0)
    assert "anyone who reaches [::1]:8123 " in exposure.message, exposure.message


def test_auth_forced_off_with_only_the_emulator_still_warns_of_the_admin_api() -> None:
    exposure = decide(settings(auth=False), channels(EMULATOR), 1)
    assert not exposure.enabled and exposure.level == logging.WARNING
    assert exposure.message == (
        "auth is off (--no-auth): anyone who reaches 127.0.0.1:8000 (and, through a reverse proxy on this "
        "host, anyone on the internet) may use the admin API (every key, task and usage record); 1 API key in "
        "the database is ignored. Drop --no-auth to require keys"
    )


# --- the settings it is decided from --------------------------------------------------------------------------


def test_an_admin_key_shorter_than_16_characters_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    short = "0123456789"
    monkeypatch.setenv("PIXELGATE_ADMIN_KEY", f"  {short}\n")
    with pytest.raises(ConfigError) as refused:
        Settings().check_auth()
    message = str(refused.value)
    assert message.startswith("PIXELGATE_ADMIN_KEY is 10 characters long: an admin key needs at least 16")
    assert "secrets.token_urlsafe(32)" in message and "admin-key" in message
    assert short not in message, "the key itself is never in a message"


def test_any_admin_key_of_16_characters_or_more_is_taken_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    for chosen in ("x" * 16, "no-prefix-" + secrets.token_hex(8), "pga_" + secrets.token_urlsafe(32)):
        monkeypatch.setenv("PIXELGATE_ADMIN_KEY", f" {chosen}\n")
        configured = Settings()
        configured.check_auth()
        assert configured.admin_key is not None and configured.admin_key.get_secret_value() == chosen


def test_forwarded_allow_ips_takes_ips_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIXELGATE_FORWARDED_ALLOW_IPS", " 127.0.0.1, ::1,10.0.0.0/8 ,")
    assert Settings().forwarded_allow_ips == ["127.0.0.1", "::1", "10.0.0.0/8"]
    assert Settings(forwarded_allow_ips=["127.0.0.1,10.1.0.0/16", "fd00::/8"]).forwarded_allow_ips == [
        "127.0.0.1",
        "10.1.0.0/16",
        "fd00::/8",
    ]
    monkeypatch.delenv("PIXELGATE_FORWARDED_ALLOW_IPS")
    assert Settings().forwarded_allow_ips == [], "no proxy is trusted unless named"


@pytest.mark.parametrize(
    ("entry", "phrase"),
    [
        ("localhost", "'localhost' is not an IP address or network"),
        ("*", "'*' is not an IP address or network"),
        ("10.0.0.300", "'10.0.0.300' is not an IP address or network"),
        ("10.0.0.1/8", "'10.0.0.1/8' has bits set past its prefix length: write the network, 10.0.0.0/8"),
    ],
)
def test_forwarded_allow_ips_refuses_anything_else_by_name(entry: str, phrase: str) -> None:
    with pytest.raises(ValueError, match="forwarded-allow-ips entry") as refused:
        Settings(forwarded_allow_ips=["127.0.0.1", entry])
    assert phrase in str(refused.value), refused.value
