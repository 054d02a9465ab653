"""Keys on by default wherever anything is at stake (issue 18, parts 1-3), against real servers on loopback:
an admin key, a real upstream's channel or a key in the database each turn keys on, with no flag; only
``serve --emulate`` alone stays open; ``--no-auth`` warns of what it exposes; the operator's admin key works
whatever its prefix, and a short one stops the start; a made one lands in ``<data_dir>/admin-key`` (0600) and
never in a log; guessing keys cannot lock out valid keys; ``X-Forwarded-For`` counts only from a named proxy.
"""

from __future__ import annotations

import json
import os
import pty
import re
import secrets
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from google.genai import errors

from conftest import MakeServer, ServerProcess, free_port
from test_keys import (
    FLASH,
    SMALL,
    call,
    fresh_address,
    gemini_error,
    genai_sdk,
    generation_body,
    openai_error,
    openai_sdk,
    pixelgate,
    said,
)

# No pga_ prefix: the operator chose it.
CHOSEN = "operator-chose-" + secrets.token_hex(12)
CHOSEN_ENV = {"PIXELGATE_ADMIN_KEY": CHOSEN}
PIXELGATE = [sys.executable, "-m", "pixelgate"]
MODELS = "/v1/models"


def bad_key() -> str:
    return f"pgk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


@pytest.fixture()
def no_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers inherit the environment: none of these may find an admin key there by accident."""
    monkeypatch.delenv("PIXELGATE_ADMIN_KEY", raising=False)


@pytest.fixture(scope="module")
def chosen(make_server: MakeServer) -> ServerProcess:
    """The emulator on loopback, no flag, and PIXELGATE_ADMIN_KEY set to a key without the pga_ prefix."""
    return make_server("sqlite", "--emulate", "--log-level", "info", env=CHOSEN_ENV)


@pytest.fixture(scope="module")
def proxied(make_server: MakeServer) -> ServerProcess:
    """The same behind a reverse proxy on this host: X-Forwarded-For is trusted from 127.0.0.1 only."""
    return make_server("sqlite", "--emulate", "--forwarded-allow-ips", "127.0.0.1", env=CHOSEN_ENV)


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def stop(server: ServerProcess) -> None:
    """Stopped before another server starts on its data dir."""
    server.stop()
    assert server.process is not None and server.process.returncode is not None


# --- an admin key turns keys on ------------------------------------------------------------------------------


def test_an_admin_key_on_loopback_requires_keys_in_each_dialect(chosen: ServerProcess) -> None:
    # Both SDKs insist on a key: the OpenAI one is told to leave its header out; the genai one strips a blank
    # key, and then sends none.
    keyless = {"Authorization": openai.omit}
    sdk = openai_sdk(chosen, "none")
    with pytest.raises(openai.AuthenticationError) as refused:
        sdk.images.generate(model=FLASH, prompt="a kite", response_format="b64_json", extra_headers=keyless)
    assert refused.value.status_code == 401 and refused.value.code == "missing_api_key"
    with pytest.raises(openai.AuthenticationError) as listed:
        sdk.models.list(extra_headers=keyless)
    assert listed.value.code == "missing_api_key"
    google_sdk = genai_sdk(chosen, " ")  # kept: a client closes when collected
    with pytest.raises(errors.ClientError) as google:
        google_sdk.models.generate_content(model=FLASH, contents="a kite")
    assert google.value.code == 401 and google.value.status == "UNAUTHENTICATED"
    assert "MISSING_API_KEY" in json.dumps(google.value.details)
    gemini_error(
        call(chosen, "POST", "/v1beta/interactions", body=generation_body("/interactions")),
        401,
        "MISSING_API_KEY",
    )
    openai_error(call(chosen, "GET", "/admin/keys"), 401, "missing_api_key")
    assert call(chosen, "GET", "/healthz").status_code == 200
    log = chosen.log()
    assert "API keys are required: PIXELGATE_ADMIN_KEY is set" in log, log
    assert CHOSEN not in log


def test_an_admin_key_without_the_pga_prefix_works(chosen: ServerProcess) -> None:
    listed = call(chosen, "GET", "/admin/keys", CHOSEN)
    assert listed.status_code == 200, listed.text
    made = call(chosen, "POST", "/admin/keys", CHOSEN, body={"name": "app"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    image = openai_sdk(chosen, key).images.generate(model=FLASH, prompt="a kite", response_format="b64_json")
    assert image.data and image.data[0].b64_json
    google_sdk = genai_sdk(chosen, CHOSEN)
    interaction = google_sdk.interactions.create(model=FLASH, input="a kite", response_format=SMALL)
    assert interaction.status == "completed"
    # The chosen key with anything added or taken away is not it.
    for wrong in (CHOSEN + "x", CHOSEN[:-1], "pga_" + CHOSEN):
        openai_error(
            call(chosen, "GET", "/admin/keys", wrong, source=fresh_address()), 401, "invalid_api_key"
        )


def test_an_admin_key_shorter_than_16_characters_stops_the_start(tmp_path: Path) -> None:
    short = "pga_123456"
    result = pixelgate(
        "serve",
        "--emulate",
        "--port",
        str(free_port()),
        "--data-dir",
        str(tmp_path),
        env={"PIXELGATE_ADMIN_KEY": short},
        timeout=30,
    )
    assert result.returncode == 2, said(result)
    text = said(result)
    assert "PIXELGATE_ADMIN_KEY is 10 characters long: an admin key needs at least 16" in text, text
    assert "secrets.token_urlsafe" in text and "admin-key" in text, text
    assert short not in text, "the key itself is never shown"
    assert "Traceback" not in result.stdout + result.stderr


# --- a real upstream turns keys on, and the admin key is made into a file ------------------------------------


def test_a_gemini_channel_requires_keys_and_makes_the_admin_key_file(
    make_server: MakeServer, tmp_path: Path, no_admin_key: None
) -> None:
    # The upstream never needs to answer: nothing here reaches it.
    env = {
        "GEMINI_API_KEY": "gemini-" + secrets.token_hex(8),
        "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{free_port()}",
    }
    first = make_server("sqlite", "--log-level", "info", data_dir=tmp_path, env=env)
    openai_error(call(first, "GET", MODELS), 401, "missing_api_key")
    google_sdk = genai_sdk(first, " ")
    with pytest.raises(errors.ClientError) as refused:
        google_sdk.models.generate_content(model=FLASH, contents="a kite")
    assert refused.value.code == 401
    path = tmp_path / "admin-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    made = path.read_text().strip()
    assert re.fullmatch(r"pga_[\w-]{43}", made), "a fresh admin key, alone in the file"
    assert call(first, "GET", "/admin/keys", made).status_code == 200
    log = first.log()
    assert "channel 'google' (google) spends the key in GEMINI_API_KEY" in log, log
    assert f"made the admin key and wrote it to {path}" in log, log
    assert made not in log and made.removeprefix("pga_") not in log, "the key is in the file only"
    assert env["GEMINI_API_KEY"] not in log
    stop(first)

    second = make_server("sqlite", "--log-level", "info", data_dir=tmp_path, env=env)
    assert call(second, "GET", "/admin/keys", made).status_code == 200
    assert f"the admin key is the one made on the first start, in {path}" in second.log(), second.log()
    assert made not in second.log()
    assert path.read_text().strip() == made, "made once"


def test_a_made_admin_key_is_printed_to_a_terminal_once(tmp_path: Path, no_admin_key: None) -> None:
    port = free_port()
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*PIXELGATE, "serve", "--emulate", "--auth", "--port", str(port), "--data-dir", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    shown = b""
    try:
        deadline = time.monotonic() + 30
        while b"\n  pga_" not in shown or not shown.endswith(b"\n"):
            assert time.monotonic() < deadline and process.poll() is None, shown
            if select.select([leader], [], [], 0.2)[0]:
                shown += os.read(leader, 4096)
        # Printed before the port opens: the server is up when its health check answers.
        while not healthy(f"http://127.0.0.1:{port}/healthz"):
            assert time.monotonic() < deadline and process.poll() is None, shown
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(30)
        os.close(leader)
    text = shown.decode().replace("\r\n", "\n")
    assert f"made the admin key (kept in {tmp_path / 'admin-key'}" in text, text
    made = (tmp_path / "admin-key").read_text().strip()
    assert re.findall(r"^  (pga_\S+)$", text, re.MULTILINE) == [made], text
    assert text.count(made) == 1, "printed once, and in no log line"


# --- a key in the database turns keys on; the emulator alone stays open --------------------------------------


def test_the_emulator_alone_stays_open_until_a_key_is_made(
    make_server: MakeServer, tmp_path: Path, no_admin_key: None
) -> None:
    open_ = make_server("sqlite", "--emulate", "--log-level", "info", data_dir=tmp_path)
    assert call(open_, "GET", MODELS).status_code == 200
    image = openai_sdk(open_, "unused").images.generate(
        model=FLASH, prompt="a kite", response_format="b64_json"
    )
    assert image.data and image.data[0].b64_json
    assert "API keys are not required: the server listens on 127.0.0.1 only" in open_.log(), open_.log()
    made = call(open_, "POST", "/admin/keys", body={"name": "first"})  # open: anyone is the admin
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    stop(open_)
    assert not (tmp_path / "admin-key").exists(), "no admin key is made while auth is off"

    closed = make_server("sqlite", "--emulate", "--log-level", "info", data_dir=tmp_path)
    openai_error(call(closed, "GET", MODELS), 401, "missing_api_key")
    assert call(closed, "GET", MODELS, key).status_code == 200
    assert "API keys are required: 1 API key in the database" in closed.log(), closed.log()
    admin_key = (tmp_path / "admin-key").read_text().strip()
    assert call(closed, "GET", "/admin/keys", admin_key).status_code == 200
    stop(closed)

    reopened = make_server("sqlite", "--emulate", "--no-auth", data_dir=tmp_path)
    assert call(reopened, "GET", MODELS).status_code == 200
    assert "1 API key in the database is ignored" in reopened.log(), reopened.log()


# --- --no-auth: open on loopback, and loud about it ----------------------------------------------------------


def test_no_auth_with_a_real_channel_starts_open_and_names_what_is_exposed(
    make_server: MakeServer, tmp_path: Path
) -> None:
    config = tmp_path / "channels.toml"
    config.write_text(
        '[[channels]]\nname = "nano"\nprovider = "google"\napi_key_env = "NANO_KEY"\n'
        f'base_url = "http://127.0.0.1:{free_port()}"\n'
    )
    env = {"NANO_KEY": "nano-" + secrets.token_hex(8), **CHOSEN_ENV}
    server = make_server("sqlite", "--no-auth", "--config", str(config), env=env)
    assert call(server, "GET", MODELS).status_code == 200
    assert call(server, "GET", "/admin/keys").status_code == 200
    (warning,) = [line for line in server.log().splitlines() if "auth is off (--no-auth)" in line]
    entry = json.loads(warning)
    assert entry["level"] == "warning", entry
    for phrase in (
        f"anyone who reaches 127.0.0.1:{server.port}",
        "reverse proxy",
        "channel 'nano' (google), which spends the key in NANO_KEY",
        "the admin API",
        "PIXELGATE_ADMIN_KEY is set but ignored",
    ):
        assert phrase in entry["message"], entry
    assert env["NANO_KEY"] not in server.log() and CHOSEN not in server.log()


# --- the failed-key guard ------------------------------------------------------------------------------------


def test_valid_keys_pass_after_20_bad_ones_from_the_same_address(chosen: ServerProcess) -> None:
    good = call(chosen, "POST", "/admin/keys", CHOSEN, body={"name": "tenant"}).json()["key"]
    guesser = fresh_address()
    for _ in range(20):
        openai_error(call(chosen, "GET", MODELS, bad_key(), source=guesser), 401, "invalid_api_key")
    refused = call(chosen, "GET", MODELS, bad_key(), source=guesser)
    assert guesser in openai_error(refused, 429, "too_many_invalid_keys")["message"]
    gemini_error(
        call(chosen, "GET", "/v1beta/models", bad_key(), how="x-goog-api-key", source=guesser),
        429,
        "TOO_MANY_INVALID_KEYS",
    )
    # Behind a proxy, every tenant shares the guesser's address: their keys still pass.
    assert call(chosen, "GET", MODELS, good, source=guesser).status_code == 200
    assert (
        call(chosen, "GET", "/v1beta/models", good, how="x-goog-api-key", source=guesser).status_code == 200
    )
    assert call(chosen, "GET", "/admin/keys", CHOSEN, source=guesser).status_code == 200
    sdk = openai_sdk(chosen, good, source=guesser)
    assert sdk.images.generate(model=FLASH, prompt="a kite", response_format="b64_json").data
    openai_error(call(chosen, "GET", MODELS, bad_key(), source=guesser), 429, "too_many_invalid_keys")


def test_forged_forwarded_addresses_are_ignored_unless_the_proxy_is_named(make_server: MakeServer) -> None:
    # Sent from 127.0.0.1, the address uvicorn trusts by default: a caller on this host, or anyone through a
    # proxy here that passes the header on. (A server of its own: this leaves 127.0.0.1 refused.)
    server = make_server("sqlite", "--emulate", env=CHOSEN_ENV)
    good = call(server, "POST", "/admin/keys", CHOSEN, body={"name": "victim"}).json()["key"]
    victim = fresh_address()
    forged = [victim] * 20 + [f"203.0.113.{i}" for i in range(40)]
    answers = [
        call(server, "GET", MODELS, bad_key(), source="127.0.0.1", headers={"X-Forwarded-For": address})
        for address in forged
    ]
    # Counted by the real address: 41 made-up ones do not dodge the guard...
    assert [r.status_code for r in answers] == [401] * 20 + [429] * 40
    assert "from 127.0.0.1:" in answers[-1].json()["error"]["message"], answers[-1].text
    # ...and 20 "from" the victim's address were not the victim's.
    openai_error(call(server, "GET", MODELS, bad_key(), source=victim), 401, "invalid_api_key")
    assert call(server, "GET", MODELS, good, source=victim).status_code == 200


def test_a_named_proxy_forwards_the_client_address_the_guard_counts(proxied: ServerProcess) -> None:
    def through_proxy(key: str, client: str) -> httpx.Response:
        return call(proxied, "GET", MODELS, key, source="127.0.0.1", headers={"X-Forwarded-For": client})

    good = call(proxied, "POST", "/admin/keys", CHOSEN, body={"name": "tenant"}).json()["key"]
    for _ in range(20):
        openai_error(through_proxy(bad_key(), "203.0.113.7"), 401, "invalid_api_key")
    refused = openai_error(through_proxy(bad_key(), "203.0.113.7"), 429, "too_many_invalid_keys")
    assert "203.0.113.7" in refused["message"] and "127.0.0.1" not in refused["message"], refused
    # A forged entry in front of the proxy's does not change who is counted: the proxy appends the peer.
    openai_error(through_proxy(bad_key(), "198.51.100.1, 203.0.113.7"), 429, "too_many_invalid_keys")
    # Other clients behind the same proxy are not affected, nor is the valid key of the guesser's address.
    openai_error(through_proxy(bad_key(), "203.0.113.8"), 401, "invalid_api_key")
    assert through_proxy(good, "203.0.113.7").status_code == 200
    openai_error(call(proxied, "GET", MODELS, bad_key(), source="127.0.0.1"), 401, "invalid_api_key")
    # From an address that is not the named proxy the header is still ignored.
    other = fresh_address()
    stranger = call(
        proxied, "GET", MODELS, bad_key(), source=other, headers={"X-Forwarded-For": "203.0.113.7"}
    )
    openai_error(stranger, 401, "invalid_api_key")


def test_a_proxy_address_that_is_not_an_ip_is_refused_at_start(tmp_path: Path) -> None:
    result = pixelgate(
        "serve", "--emulate", "--data-dir", str(tmp_path), "--forwarded-allow-ips", "127.0.0.1,proxy.local"
    )
    assert result.returncode == 2, said(result)
    assert "'proxy.local' is not an IP address or network" in said(result), said(result)
    assert "Traceback" not in result.stdout + result.stderr
