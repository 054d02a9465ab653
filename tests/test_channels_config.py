"""The channel file and the environment's keys: what a wrong ``pixelgate.toml`` says, which channels a bare
``pixelgate serve`` makes from ``GEMINI_API_KEY`` / ``OPENAI_API_KEY``, which source wins, ``pixelgate
channels``, and the synchronous wait limit (``--sync-wait``)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import types

from conftest import MakeServer, ServerProcess, free_port
from pixelgate.catalog import ModelSpec, default_catalog
from pixelgate.config import (
    ChannelConfig,
    ConfigError,
    GatewayConfig,
    RoutingConfig,
    Settings,
    environment_channels,
    load_config,
    resolve_config,
)
from pixelgate.providers import emulator, google, tasks
from pixelgate.providers import openai as openai_provider
from pixelgate.providers.registry import provider_kinds
from pixelgate.routing import build_provider, build_router
from upstreams import GeminiSimulator

CATALOG = default_catalog()
KEY = "k-chan-secret-7f3a9c"  # the simulators' key; it must never show in any output
NANO = "gemini-2.5-flash-image"  # one size only: the cheapest image to make
FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"
KEY_VARIABLES = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def squash(text: str) -> str:
    """Text without whitespace or table borders: what a message says however the console wrapped it."""
    return re.sub(r"[\s│┃]+", "", text)


def says(output: str, phrase: str) -> bool:
    return squash(phrase) in squash(output)


def config_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        build_router(load_config(path).check(CATALOG, environ or {}), environ or {})
    return str(caught.value)


def at_upstream(channel: ChannelConfig, spec: ModelSpec) -> str | None:
    """The model's name at the channel's upstream, as its provider kind (the registry's) has it."""
    return channel.upstream_model(spec, vendor_ids=provider_kinds().get(channel.provider).knows_vendor_ids)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any upstream key or channel file, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES and not k.startswith("PIXELGATE_")}
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def pixelgate(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixelgate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- the channel file's errors ----------------------------------------------------------------------------


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.toml", '[[channels]]\nname = "g"\nprovider = "google\n')
    message = config_error(path)
    assert str(path) in message and "is not valid TOML" in message
    assert "line 3" in message, "the parser's own position is kept"


def test_a_missing_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    message = config_error(path)
    assert message.startswith(f"cannot read the channel file {path}")
    assert "No such file" in message


def test_unknown_provider_names_the_channel_and_the_allowed_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "p.toml",
        '[[channels]]\nname = "first"\nprovider = "google"\n\n'
        '[[channels]]\nname = "vertex"\nprovider = "vertexai"\n',
    )
    message = config_error(path)
    assert message.startswith(f"{path}: channels[1] ('vertex').provider:"), message
    for allowed in ("google", "openai", "tasks", "emulator"):
        assert f"'{allowed}'" in message
    assert "(got 'vertexai')" in message


@pytest.mark.parametrize(
    ("text", "where", "got"),
    [
        (
            '[[channels]]\nname = "g"\nprovider = "google"\napi_key = "abc"\n',
            "channels[0] ('g').api_key",
            "'abc'",
        ),
        ("[routing]\nretries = 3\n", "routing.retries", "3"),
        ("chanels = []\n", "chanels", "[]"),
    ],
    ids=["channel", "routing", "top-level"],
)
def test_unknown_fields_are_refused_by_name(tmp_path: Path, text: str, where: str, got: str) -> None:
    path = write(tmp_path / "f.toml", text)
    message = config_error(path)
    assert message == f"{path}: {where}: Extra inputs are not permitted (got {got})"


def test_a_field_of_the_wrong_type_names_the_channel(tmp_path: Path) -> None:
    path = write(tmp_path / "f.toml", '[[channels]]\nname = "g"\nprovider = "google"\npriority = "high"\n')
    message = config_error(path)
    assert message.startswith(f"{path}: channels[0] ('g').priority: Input should be a valid integer")
    assert "(got 'high')" in message


@pytest.mark.parametrize(
    "models", ['["gemini-9-image"]', '{ "gemini-9-image" = "up-9" }'], ids=["list", "renames"]
)
def test_a_model_not_in_the_catalog_lists_the_catalog(tmp_path: Path, models: str) -> None:
    path = write(tmp_path / "f.toml", f'[[channels]]\nname = "g"\nprovider = "google"\nmodels = {models}\n')
    message = config_error(path)
    assert f"{path}: channel 'g' lists model 'gemini-9-image', which is not in the catalog" in message
    for model_id in CATALOG.ids:
        assert model_id in message


def test_two_channels_with_one_name(tmp_path: Path) -> None:
    path = write(
        tmp_path / "f.toml",
        '[[channels]]\nname = "twin"\nprovider = "google"\n\n[[channels]]\nname = "twin"\nprovider = "openai"\n',
    )
    assert config_error(path) == f"{path}: two channels are named 'twin': names must differ"


@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_an_unset_key_variable_names_it_and_no_value(tmp_path: Path, value: str | None) -> None:
    path = write(
        tmp_path / "f.toml",
        '[[channels]]\nname = "set"\nprovider = "google"\napi_key_env = "SET_KEY"\n\n'
        '[[channels]]\nname = "unset"\nprovider = "openai"\napi_key_env = "PIXELGATE_TEST_MISSING_KEY"\n',
    )
    environ = {"SET_KEY": KEY}
    if value is not None:
        environ["PIXELGATE_TEST_MISSING_KEY"] = value
    message = config_error(path, environ)
    assert "channel 'unset'" in message and "PIXELGATE_TEST_MISSING_KEY" in message
    assert "not set" in message
    assert KEY not in message


def test_a_set_key_is_read_stripped_and_the_config_passes(tmp_path: Path) -> None:
    path = write(tmp_path / "f.toml", '[[channels]]\nname = "g"\nprovider = "google"\napi_key_env = "K"\n')
    config = load_config(path).check(CATALOG, {"K": f"  {KEY}\n"})
    assert config.channels[0].api_key({"K": f"  {KEY}\n"}) == KEY
    router = build_router(config, {"K": f"  {KEY}\n"})
    assert router.channels[0].secret == KEY


def test_a_channel_without_api_key_env_needs_no_key() -> None:
    config = GatewayConfig(channels=[ChannelConfig(name="open", provider="openai", base_url="http://x/v1")])
    assert config.check(CATALOG, {}) is config
    assert config.channels[0].api_key({}) is None


@pytest.mark.parametrize(
    ("provider", "module"),
    [("google", google), ("openai", openai_provider), ("tasks", tasks), ("emulator", emulator)],
)
def test_an_unknown_option_lists_the_options_the_provider_takes(provider: str, module: Any) -> None:
    channel = ChannelConfig(
        name="chan", provider=provider, base_url="http://127.0.0.1:1/v1", options={"colour": "blue"}
    )
    with pytest.raises(ConfigError) as caught:
        build_provider(channel, None)
    message = str(caught.value)
    assert message.startswith("channel 'chan': options.colour: Extra inputs are not permitted (got 'blue';")
    assert f"the {provider} provider takes " in message
    for name, field in module.Options.model_fields.items():
        assert (field.alias or name) in message, (
            name,
            message,
        )  # as the file spells it: async, not async_mode


def test_a_bad_option_value_names_the_option_through_build_router() -> None:
    config = GatewayConfig(
        channels=[
            ChannelConfig(name="fine", provider="google"),
            ChannelConfig(
                name="tasky",
                provider="tasks",
                base_url="http://127.0.0.1:1/v1",
                options={"poll_interval": -1},
            ),
        ]
    )
    with pytest.raises(ConfigError) as caught:
        build_router(config, {})
    message = str(caught.value)
    assert message.startswith(
        "channel 'tasky': options.poll_interval: Input should be greater than 0 (got -1;"
    )
    assert "the tasks provider takes poll_interval, max_poll_interval" in message


def test_a_tasks_channel_needs_a_base_url() -> None:
    config = GatewayConfig(channels=[ChannelConfig(name="gateway", provider="tasks")])
    with pytest.raises(ConfigError) as caught:
        build_router(config, {})
    assert str(caught.value) == "channel 'gateway': a tasks channel needs a base_url (e.g. https://host/v1)"


def test_google_and_openai_default_to_the_vendors_base_url() -> None:
    config = GatewayConfig(
        channels=[ChannelConfig(name="g", provider="google"), ChannelConfig(name="o", provider="openai")]
    )
    router = build_router(config, {})
    assert [c.base_url for c in router.channels] == [
        "https://generativelanguage.googleapis.com",
        "https://api.openai.com/v1",
    ]


def test_a_full_channel_file_loads_with_every_field(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pixelgate.toml",
        """
[routing]
max_attempts = 6
backoff_seconds = 0.5
failure_threshold = 2
cooldown_seconds = 10

[[channels]]
name = "gemini"
provider = "google"
api_key_env = "GK"
models = ["gemini-3.1-flash-image", "gemini-3-pro-image"]
priority = 10
concurrency = 8
timeout = 300

[[channels]]
name = "backup"
provider = "openai"
base_url = "https://gateway.example.com/v1"
api_key_env = "BK"
models = { "gemini-3.1-flash-image" = "nano-banana-2" }
weight = 2.5
options = { async = true, sizes = ["1024x1024"] }
""",
    )
    config = load_config(path).check(CATALOG, {"GK": "a", "BK": "b"})
    assert config.source == str(path)
    assert config.routing == RoutingConfig(
        max_attempts=6, backoff_seconds=0.5, failure_threshold=2, cooldown_seconds=10
    )
    gemini, backup = config.channels
    assert (gemini.priority, gemini.concurrency, gemini.timeout) == (10, 8, 300)
    assert at_upstream(gemini, CATALOG.get(FLASH)) == FLASH
    assert at_upstream(gemini, CATALOG.get(NANO)) is None
    assert at_upstream(backup, CATALOG.get(FLASH)) == "nano-banana-2"
    assert at_upstream(backup, CATALOG.get(PRO)) is None
    assert backup.weight == 2.5
    router = build_router(config, {"GK": "a", "BK": "b"})
    assert [c.name for c in router.channels] == ["gemini", "backup"]


# -- channels from the environment ------------------------------------------------------------------------


def test_gemini_api_key_makes_a_google_channel() -> None:
    (channel,) = environment_channels({"GEMINI_API_KEY": "g"})
    assert (channel.name, channel.provider, channel.api_key_env) == ("google", "google", "GEMINI_API_KEY")
    assert channel.base_url is None and channel.models is None
    assert channel.api_key({"GEMINI_API_KEY": "g"}) == "g"


def test_google_api_key_alone_makes_a_google_channel() -> None:
    (channel,) = environment_channels({"GOOGLE_API_KEY": "g"})
    assert (channel.provider, channel.api_key_env) == ("google", "GOOGLE_API_KEY")


def test_gemini_api_key_wins_over_google_api_key_unless_blank() -> None:
    (both,) = environment_channels({"GEMINI_API_KEY": "a", "GOOGLE_API_KEY": "b"})
    assert both.api_key_env == "GEMINI_API_KEY"
    (blank,) = environment_channels({"GEMINI_API_KEY": "  ", "GOOGLE_API_KEY": "b"})
    assert blank.api_key_env == "GOOGLE_API_KEY"


def test_google_gemini_base_url_points_the_google_channel_elsewhere() -> None:
    (channel,) = environment_channels({"GEMINI_API_KEY": "g", "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:9"})
    assert channel.base_url == "http://127.0.0.1:9"


def test_openai_api_key_makes_an_openai_channel_at_openai_base_url() -> None:
    (channel,) = environment_channels({"OPENAI_API_KEY": "o", "OPENAI_BASE_URL": "http://gw.local/v1"})
    assert (channel.name, channel.provider, channel.api_key_env) == ("openai", "openai", "OPENAI_API_KEY")
    assert channel.base_url == "http://gw.local/v1"
    assert all(at_upstream(channel, spec) == spec.id for spec in CATALOG), "a gateway serves them all"
    # At OpenAI itself (no OPENAI_BASE_URL): only OpenAI's own models, and the catalog has none, so a
    # Gemini request never fails over to an upstream that cannot make it.
    (default,) = environment_channels({"OPENAI_API_KEY": "o"})
    assert default.base_url is None
    assert [spec.id for spec in CATALOG if at_upstream(default, spec) is not None] == []


def test_both_keys_make_two_channels_google_first() -> None:
    channels = environment_channels({"GEMINI_API_KEY": "g", "OPENAI_API_KEY": "o"})
    assert [(c.name, c.provider) for c in channels] == [("google", "google"), ("openai", "openai")]
    assert channels[0].priority > channels[1].priority


@pytest.mark.parametrize(
    "environ", [{}, {"GEMINI_API_KEY": "", "OPENAI_API_KEY": "  "}, {"OPENAI_BASE_URL": "http://x/v1"}]
)
def test_no_keys_make_no_channels(environ: dict[str, str]) -> None:
    assert environment_channels(environ) == []


# -- which source wins ------------------------------------------------------------------------------------


@pytest.fixture()
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without pixelgate.toml, and no PIXELGATE_* variables."""
    for name in list(os.environ):
        if name.startswith("PIXELGATE_"):
            monkeypatch.delenv(name)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


ONE_CHANNEL = '[routing]\nmax_attempts = 5\n\n[[channels]]\nname = "from-file"\nprovider = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n'


def test_the_config_file_wins_over_the_environment(elsewhere: Path) -> None:
    path = write(elsewhere / "mine.toml", ONE_CHANNEL)
    config = resolve_config(Settings(config=path), CATALOG, {"GEMINI_API_KEY": "g", "OPENAI_API_KEY": "o"})
    assert [c.name for c in config.channels] == ["from-file"]
    assert config.routing.max_attempts == 5
    assert config.source == str(path)


def test_pixelgate_toml_in_the_working_directory_is_read_by_default(elsewhere: Path) -> None:
    write(elsewhere / "pixelgate.toml", ONE_CHANNEL)
    config = resolve_config(Settings(), CATALOG, {"GEMINI_API_KEY": "g"})
    assert [c.name for c in config.channels] == ["from-file"]
    other = write(elsewhere / "other.toml", ONE_CHANNEL.replace("from-file", "named"))
    assert [c.name for c in resolve_config(Settings(config=other), CATALOG, {}).channels] == ["named"]


def test_without_a_file_the_environment_decides(elsewhere: Path) -> None:
    config = resolve_config(Settings(), CATALOG, {"GEMINI_API_KEY": "g", "OPENAI_API_KEY": "o"})
    assert [c.name for c in config.channels] == ["google", "openai"]
    assert config.source == "the environment"
    assert resolve_config(Settings(), CATALOG, {}).channels == []


def test_emulate_alone_is_only_the_emulator_without_retries(elsewhere: Path) -> None:
    """Alone, --emulate never retries (its injected faults must reach the client) and ignores upstream
    keys in the environment (an emulating server never calls a real upstream)."""
    settings = Settings(emulate=True, emulate_latency=0.25, emulate_faults="503:0.5", emulate_fault_seed=3)
    for environ in ({}, {"GEMINI_API_KEY": "g", "OPENAI_API_KEY": "o"}):
        config = resolve_config(settings, CATALOG, environ)
        assert [(c.name, c.provider) for c in config.channels] == [("emulator", "emulator")]
        assert config.routing.max_attempts == 1
        assert (config.routing.cooldown_seconds, config.routing.requeue_async) == (0, False)
        options = config.channels[0].options
        assert (options["latency"], options["faults"], options["fault_seed"]) == (0.25, "503:0.5", 3)
        assert config.channels[0].models is None, "the emulator serves every catalog model"


def test_config_and_emulate_put_the_emulator_below_every_channel(elsewhere: Path) -> None:
    path = write(
        elsewhere / "f.toml",
        "[routing]\nmax_attempts = 3\n\n"
        '[[channels]]\nname = "main"\nprovider = "openai"\nbase_url = "http://127.0.0.1:1/v1"\npriority = 5\n\n'
        '[[channels]]\nname = "spare"\nprovider = "openai"\nbase_url = "http://127.0.0.1:2/v1"\npriority = -2\n',
    )
    config = resolve_config(Settings(config=path, emulate=True), CATALOG, {})
    assert [c.name for c in config.channels] == ["main", "spare", "emulator"]
    assert config.channels[-1].priority == -3
    assert config.routing.max_attempts == 3, "the file's routing is kept: the emulator is a fallback"
    router = build_router(config, {})
    assert router.channels[-1].config.provider == "emulator"


# -- pixelgate serve with a broken config -----------------------------------------------------------------

BROKEN = {
    "bad-toml": ('[[channels]\nname = "g"\n', ["is not valid TOML"]),
    "unknown-provider": (
        '[[channels]]\nname = "g"\nprovider = "vertex"\n',
        ["channels[0] ('g').provider", "'google', 'openai', 'tasks' or 'emulator'", "(got 'vertex')"],
    ),
    "unknown-model": (
        '[[channels]]\nname = "g"\nprovider = "google"\nmodels = ["dall-e-9"]\n',
        ["channel 'g' lists model 'dall-e-9', which is not in the catalog", FLASH],
    ),
    "key-not-set": (
        '[[channels]]\nname = "ok"\nprovider = "google"\napi_key_env = "SIM_KEY"\n\n'
        '[[channels]]\nname = "nokey"\nprovider = "openai"\napi_key_env = "PIXELGATE_TEST_ABSENT_KEY"\n',
        ["channel 'nokey'", "PIXELGATE_TEST_ABSENT_KEY", "is not set"],
    ),
}
BROKEN_AT_BUILD = {
    "bad-option": (
        '[[channels]]\nname = "g"\nprovider = "google"\noptions = { colour = "blue" }\n',
        ["channel 'g': options.colour", "the google provider takes api_version, api"],
    ),
    "tasks-without-base-url": (
        '[[channels]]\nname = "t"\nprovider = "tasks"\n',
        ["channel 't': a tasks channel needs a base_url"],
    ),
}


def serve_broken(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = write(tmp_path / "bad.toml", text)
    return pixelgate(
        "serve",
        "--config",
        str(path),
        "--port",
        str(free_port()),
        "--data-dir",
        str(tmp_path / "data"),
        cwd=tmp_path,
        env=clean_env(SIM_KEY=KEY),
        timeout=30,
    )


def check_refusal(done: subprocess.CompletedProcess[str], phrases: list[str]) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    for phrase in phrases:
        assert says(output, phrase), (phrase, output)
    assert KEY not in output


@pytest.mark.parametrize("case", list(BROKEN))
def test_serve_with_a_broken_config_exits_2_with_the_message(tmp_path: Path, case: str) -> None:
    text, phrases = BROKEN[case]
    check_refusal(serve_broken(tmp_path, text), [*phrases, "bad.toml" if case != "key-not-set" else "nokey"])


@pytest.mark.parametrize("case", list(BROKEN_AT_BUILD))
def test_serve_with_a_bad_provider_option_exits_2_with_the_message(tmp_path: Path, case: str) -> None:
    text, phrases = BROKEN_AT_BUILD[case]
    check_refusal(serve_broken(tmp_path, text), phrases)


@pytest.mark.parametrize("case", list(BROKEN_AT_BUILD))
def test_channels_with_a_bad_provider_option_exits_2_with_the_message(tmp_path: Path, case: str) -> None:
    text, phrases = BROKEN_AT_BUILD[case]
    path = write(tmp_path / "bad.toml", text)
    check_refusal(pixelgate("channels", "--config", str(path), cwd=tmp_path, env=clean_env()), phrases)


# -- simulators and servers shared by the rest of the module ----------------------------------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[GeminiSimulator]:
    with GeminiSimulator(api_key=KEY) as simulator:
        yield simulator


@pytest.fixture()
def gemini(sim: GeminiSimulator) -> Iterator[GeminiSimulator]:
    sim.reset()
    sim.delay = 0.0
    yield sim
    sim.delay = 0.0


@pytest.fixture(scope="module")
def auto_server(sim: GeminiSimulator, make_server: MakeServer) -> ServerProcess:
    """A server with no channel file: GEMINI_API_KEY and GOOGLE_GEMINI_BASE_URL alone make its channel."""
    assert not Path("pixelgate.toml").exists(), "the tests' working directory must have no pixelgate.toml"
    with pytest.MonkeyPatch.context() as patch:
        for name in [*KEY_VARIABLES, "PIXELGATE_CONFIG"]:
            patch.delenv(name, raising=False)
        return make_server(
            "sqlite", "--no-auth", env={"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": sim.url}
        )


@pytest.fixture(scope="module")
def sync_wait_server(
    sim: GeminiSimulator, make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    path = tmp_path_factory.mktemp("sync-wait") / "pixelgate.toml"
    write(
        path,
        f'[routing]\nbackoff_seconds = 0.05\n\n[[channels]]\nname = "gemini-sim"\nprovider = "google"\n'
        f'base_url = "{sim.url}"\napi_key_env = "SIM_KEY"\n',
    )
    return make_server("sqlite", "--no-auth", "--config", str(path), "--sync-wait", "1", env={"SIM_KEY": KEY})


def test_a_key_in_the_environment_is_enough(auto_server: ServerProcess, gemini: GeminiSimulator) -> None:
    client = genai.Client(
        api_key="caller-key",
        http_options=types.HttpOptions(
            base_url=auto_server.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )
    response = client.models.generate_content(
        model=NANO,
        contents="a lighthouse at dusk",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="16:9")),
    )
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    images = [p for p in response.candidates[0].content.parts if p.inline_data is not None and not p.thought]
    assert len(images) == 1 and images[0].inline_data and images[0].inline_data.data
    signatures = [p.thought_signature for p in response.candidates[0].content.parts if p.thought_signature]
    assert signatures and set(signatures) <= {base64.b64decode(s) for s in gemini.issued_signatures}
    (call,) = gemini.calls(":generateContent")
    assert call.path == f"/v1beta/models/{NANO}:generateContent"
    assert call.headers.get("x-goog-api-key") == KEY, "the environment's key, not the caller's"
    assert call.json["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"
    assert KEY not in auto_server.log()


def test_sync_wait_limit_answers_504_still_running_and_the_task_completes(
    sync_wait_server: ServerProcess, gemini: GeminiSimulator
) -> None:
    gemini.delay = 3.0
    client = openai.OpenAI(base_url=f"{sync_wait_server.url}/v1", api_key="x", max_retries=0, timeout=30)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model=NANO, prompt="a slow sunrise", response_format="b64_json")
    assert time.monotonic() - started < 2.9, "answered at the sync wait limit, not when the image came"
    error = caught.value
    assert error.status_code == 504
    assert error.code == "still_running"
    found = re.search(r"\btask (task_img_[0-9a-f]+)\b", error.message)
    assert found, error.message
    task_id = found.group(1)
    assert f"/v1/tasks/{task_id}" in error.message

    deadline = time.monotonic() + 20
    with httpx.Client(base_url=sync_wait_server.url, timeout=10) as http:
        while True:
            body = http.get(f"/v1/tasks/{task_id}").json()
            if body["status"] not in ("queued", "processing") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert body["status"] == "completed", body
    assert body["data"] and (body["data"][0].get("b64_json") or body["data"][0].get("url"))
    assert len(gemini.calls(":generateContent")) == 1, "the 504 did not make the task run twice"


# -- pixelgate channels -----------------------------------------------------------------------------------


def parse_table(output: str) -> dict[str, dict[str, str]]:
    """Rich's table as {channel name: {column: cell text}}; a folded cell's lines are joined with spaces."""
    lines = [line for line in output.splitlines() if line.startswith(("│", "┃"))]
    header_lines = [line for line in lines if line.startswith("┃")]
    columns = [
        " ".join(parts).strip()
        for parts in zip(*(line.split("┃")[1:-1] for line in header_lines), strict=True)
    ]
    columns = [re.sub(r"\s+", " ", c) for c in columns]
    rows: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in lines:
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        assert len(cells) == len(columns), (line, columns)
        if cells[0]:
            current = rows.setdefault(cells[0], {c: [] for c in columns})
        assert current is not None, line
        for column, cell in zip(columns, cells, strict=True):
            if cell:
                current[column].append(cell)
    return {name: {c: " ".join(parts) for c, parts in row.items()} for name, row in rows.items()}


def channel_file(path: Path, live: str, wrong_key: str | None, closed_port: int | None) -> Path:
    text = (
        f'[[channels]]\nname = "live"\nprovider = "google"\nbase_url = "{live}"\napi_key_env = "SIM_KEY"\n'
        f'models = {{ "{FLASH}" = "nano-banana-2", "{PRO}" = "{PRO}" }}\npriority = 5\n\n'
        '[[channels]]\nname = "everything"\nprovider = "google"\napi_key_env = "SIM_KEY"\n'
        f'base_url = "{live}"\nweight = 2\nconcurrency = 4\ntimeout = 90\n\n'
    )
    if wrong_key is not None:
        text += (
            f'[[channels]]\nname = "wrong-key"\nprovider = "google"\nbase_url = "{wrong_key}"\n'
            f'api_key_env = "SIM_KEY"\nmodels = ["{NANO}"]\n\n'
        )
    if closed_port is not None:
        text += (
            f'[[channels]]\nname = "gone"\nprovider = "openai"\nbase_url = "http://127.0.0.1:{closed_port}/v1"\n'
            'api_key_env = "SIM_KEY"\n'
        )
    return write(path, text)


@pytest.fixture(scope="module")
def wrong_key_sim() -> Iterator[GeminiSimulator]:
    with GeminiSimulator(api_key="some-other-key") as simulator:
        yield simulator


def test_channels_shows_each_channel_and_whether_it_answers(
    tmp_path: Path, gemini: GeminiSimulator, wrong_key_sim: GeminiSimulator
) -> None:
    wrong_key_sim.reset()
    closed = free_port()
    path = channel_file(tmp_path / "f.toml", gemini.url, wrong_key_sim.url, closed)
    done = pixelgate("channels", "--config", str(path), "--check", cwd=tmp_path, env=clean_env(SIM_KEY=KEY))
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert KEY not in output
    table = parse_table(done.stdout)
    assert list(table) == ["live", "everything", "wrong-key", "gone"], output

    live = table["live"]
    assert (live["provider"], live["base URL"], live["priority"]) == ("google", gemini.url, "5")
    assert f"{FLASH} → nano-banana-2" in live["models"]
    assert PRO in live["models"].split() and f"{PRO} →" not in live["models"], (
        "an identity rename shows plain"
    )
    assert live["answers"].startswith("yes")

    everything = table["everything"]
    assert everything["models"] == f"all {len(CATALOG)}"
    assert (everything["weight"], everything["concurrency"], everything["timeout"]) == ("2", "4", "90 s")
    assert everything["answers"].startswith("yes")

    wrong = table["wrong-key"]
    assert wrong["models"] == NANO
    assert not wrong["answers"].startswith("yes")
    assert says(wrong["answers"], "channel 'wrong-key': the upstream refused the channel's key"), wrong
    assert says(wrong["answers"], "API key not valid"), "the upstream's own words are quoted"

    gone = table["gone"]
    assert (gone["provider"], gone["base URL"]) == ("openai", f"http://127.0.0.1:{closed}/v1")
    assert says(gone["answers"], "channel 'gone': cannot connect to the upstream"), gone

    # The check is a cheap listing, with the channel's key, never a generation.
    assert gemini.calls() and all(r.method == "GET" and "/models" in r.path for r in gemini.calls())
    assert all(r.headers.get("x-goog-api-key") == KEY for r in gemini.calls())
    assert gemini.calls(":generateContent") == []
    assert [r.headers.get("x-goog-api-key") for r in wrong_key_sim.calls()] == [KEY]


def test_channels_exits_0_when_every_channel_answers(tmp_path: Path, gemini: GeminiSimulator) -> None:
    path = channel_file(tmp_path / "f.toml", gemini.url, None, None)
    done = pixelgate(
        "channels", "--check", cwd=tmp_path, env=clean_env(SIM_KEY=KEY, PIXELGATE_CONFIG=str(path))
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = parse_table(done.stdout)
    assert [row["answers"][:3] for row in table.values()] == ["yes", "yes"]


def test_channels_of_a_file_without_check_contacts_nobody(
    tmp_path: Path, gemini: GeminiSimulator, wrong_key_sim: GeminiSimulator
) -> None:
    wrong_key_sim.reset()
    path = channel_file(tmp_path / "f.toml", gemini.url, wrong_key_sim.url, free_port())
    done = pixelgate("channels", "--config", str(path), cwd=tmp_path, env=clean_env(SIM_KEY=KEY))
    assert done.returncode == 0, done.stdout + done.stderr
    table = parse_table(done.stdout)
    assert list(table) == ["live", "everything", "wrong-key", "gone"]
    assert "answers" not in table["live"]
    assert gemini.calls() == [] and wrong_key_sim.calls() == []


def test_channels_from_the_environment_show_the_default_base_url(tmp_path: Path) -> None:
    env = clean_env(GEMINI_API_KEY=KEY, OPENAI_API_KEY=KEY)
    done = pixelgate("channels", "--offline", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert says(done.stdout, "pixelgate channels (the environment)")
    table = parse_table(done.stdout)
    assert table["google"]["base URL"] == "https://generativelanguage.googleapis.com"
    assert table["openai"]["base URL"] == "https://api.openai.com/v1"
    assert KEY not in done.stdout


def test_channels_with_none_configured_says_how(tmp_path: Path) -> None:
    done = pixelgate("channels", "--offline", cwd=tmp_path, env=clean_env())
    assert done.returncode == 1
    for phrase in ("No channels (the environment)", "GEMINI_API_KEY", "pixelgate.toml", "--emulate"):
        assert says(done.stderr, phrase), done.stderr
    assert done.stdout == ""


def test_channels_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    """Without --offline (or --check, --config, --emulate) it asks the running server."""
    server = f"http://127.0.0.1:{free_port()}"
    done = pixelgate("channels", "--server", server, cwd=tmp_path, env=clean_env())
    assert done.returncode == 5, done.stdout + done.stderr
    assert says(done.stderr, f"cannot reach {server}"), done.stderr
    assert says(done.stderr, "pixelgate serve"), done.stderr
    assert done.stdout == ""
