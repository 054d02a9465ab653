"""The LiteLLM proxy as a relay in front of one OpenAI Images upstream, for the relay benchmark.

LiteLLM lives in a virtual environment of its own (``ensure_litellm``), pinned, so that its dependencies
never meet pixelgate's; the tests' LiteLLM client runs from the same one (``ensure_litellm_venv``). The
proxy runs as one process with one uvicorn worker on 127.0.0.1, from a config written into a work
directory, and exposes one model, ``bench-image``, relayed to the upstream's ``POST /v1/images/generations``
under the upstream model name given (``bench-image`` by default).

What the config and the environment do, and why:

- ``model: openai/<upstream model>`` with ``api_base`` = the upstream: LiteLLM's OpenAI provider, which
  calls the upstream with the OpenAI SDK and sends the name after ``openai/`` as ``model``. Any name works.
- ``base_model: dall-e-3``: LiteLLM picks the parameters it lets through by model name, and for any name
  that is not ``dall-e-2``/``dall-e-3`` it uses its gpt-image rules, which refuse ``response_format``
  (a 400 ``UnsupportedParamsError``) unless ``drop_params`` is on, which would silently drop it. The
  ``base_model`` only selects those rules (dall-e-3's: n, response_format, quality, size, user, style)
  and the cost-map entry; the upstream still receives the configured model name. ``size`` is not checked
  against a list (``1024x1024``, ``1000x777`` both pass), and ``b64_json`` and ``url`` answers come back
  as the upstream sent them (LiteLLM adds null fields such as ``revised_prompt``, ``usage``).
- ``model_info.mode: image_generation``: what the model is for (health checks, the UI); not required.
- No master key, so no authentication, like pixelgate in the benchmark (clients send no key). LiteLLM
  1.106 refuses to start without one unless ``dangerously_permit_weak_or_unset_master_key`` is on, so it
  is. With ``master_key=...`` the proxy checks ``Authorization: Bearer <key>`` instead.
- ``disable_model_info_refresh``: otherwise LiteLLM asks the upstream for ``GET /v1/models`` at startup and
  every 5 minutes (token limits, meaningless for images).
- No database, no Redis, no callbacks: nothing is persisted or logged per request beyond LiteLLM's own
  in-process bookkeeping (cost calculation, which runs for every call as it would in production).
- Retries: LiteLLM's default unless ``num_retries`` is given (see ``litellm_config``); they only matter
  when the upstream fails, and pixelgate retries too.
- Environment: ``LITELLM_LOCAL_MODEL_COST_MAP`` (and the other ``LITELLM_LOCAL_*``) so that nothing is
  fetched from GitHub (otherwise the proxy looks up raw.githubusercontent.com three times in its first
  8 s, in the background, for the cost map); ``LITELLM_MODE=PRODUCTION`` so that no ``.env`` file is read; ``LITELLM_LOG=ERROR``,
  which also sets uvicorn's log level, so there is no access log line per request; ``NO_PROXY`` for
  loopback; database, worker-count, ``LITELLM_*`` and ``OPENAI_*`` variables of the caller removed.
  LiteLLM has no telemetry to turn off.

What a benchmark should know: LiteLLM gzips every answer over 500 bytes when the client accepts gzip
(aiohttp, httpx and the OpenAI SDK all send ``Accept-Encoding: gzip, deflate`` by default), at level 6, in
a thread for answers over 1 MiB; for a 2 MB ``b64_json`` answer that is most of its CPU time. There is no
setting for it: a client that sends ``Accept-Encoding: identity`` gets the plain answer. A ``url`` answer
is the upstream's URL, passed on as it is (the image itself never goes through LiteLLM). The first request
after startup takes about a second (lazy imports).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.common import Service

LITELLM_VERSION = "1.106.2"
# One per machine and version, outside any checkout, so that a fresh clone (CI's) does not install it again;
# the tests use it too. PIXELGATE_LITELLM_VENV puts it elsewhere.
DEFAULT_VENV = Path(
    os.environ.get("PIXELGATE_LITELLM_VENV")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    / "pixelgate"
    / f"litellm-{LITELLM_VERSION}"
)
MODEL = "bench-image"  # the name the proxy exposes
UPSTREAM_API_KEY = "bench"  # sent to the upstream as Authorization: Bearer (it takes any)
READY_PATH = "/health/readiness"  # answers {"status": "healthy", "db": "Not connected"} once started

# The caller's variables that would change what the proxy does: a database (spend logs, keys), workers.
_REMOVED_VARIABLES = frozenset(
    {"DATABASE_URL", "DIRECT_URL", "DATABASE_URL_READ_REPLICA", "NUM_WORKERS", "REDIS_URL", "REDIS_HOST"}
)
_REMOVED_PREFIXES = ("LITELLM_", "OPENAI_")
_OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_LOG": "ERROR",
}


def ensure_litellm_venv(
    venv: Path = DEFAULT_VENV, version: str = LITELLM_VERSION, *, quiet: bool = False
) -> Path:
    """The Python of ``venv``, a virtual environment holding ``litellm[proxy]==version``: the proxy for the
    relay benchmark, the library for the tests' LiteLLM client (``tests/litellm_scenarios.py``).

    It is made, or brought to ``version``, when it lacks that version (about a minute), under a lock file
    beside it (``<name>.lock``), so that callers at the same time (pytest-xdist workers, a benchmark)
    install once and the others wait for it. pip inherits the lock, so it is held until pip ends even if
    its caller dies first. ``quiet`` keeps pip's output for the ``CalledProcessError`` of a failed install
    instead of printing it."""
    python = venv / "bin" / "python"
    if has_litellm(venv, version):
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if has_litellm(venv, version):
            return python  # made while this caller waited for the lock
        if not quiet:
            print(
                f"installing litellm[proxy]=={version} into {venv} (about a minute)",
                file=sys.stderr,
                flush=True,
            )
        run = functools.partial(
            subprocess.run, check=True, capture_output=quiet, text=True, pass_fds=(lock.fileno(),)
        )
        if not python.exists():
            run([sys.executable, "-m", "venv", str(venv)])
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        run([*pip, f"litellm[proxy]=={version}"])
        if not has_litellm(venv, version):
            raise RuntimeError(f"pip installed litellm[proxy]=={version} into {venv} but it is not there")
    return python


def has_litellm(venv: Path, version: str = LITELLM_VERSION) -> bool:
    """Whether ``venv`` holds LiteLLM ``version`` and its ``litellm`` executable. pip installs a package's
    dependencies before the package, so LiteLLM's metadata means a whole install."""
    executable = venv / "bin" / "litellm"
    return executable.exists() and any(venv.glob(f"lib/python3*/site-packages/litellm-{version}.dist-info"))


def ensure_litellm(venv: Path = DEFAULT_VENV, version: str = LITELLM_VERSION) -> Path:
    """The ``litellm`` executable in ``venv`` (``ensure_litellm_venv`` makes it first if needed)."""
    ensure_litellm_venv(venv, version)
    return venv / "bin" / "litellm"


def openai_base(url: str) -> str:
    """The upstream's OpenAI base URL, ending in ``/v1`` (added when ``url`` is the bare server)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def litellm_config(
    upstream_base_url: str,
    *,
    upstream_model: str = MODEL,
    master_key: str | None = None,
    num_retries: int | None = None,
) -> dict[str, object]:
    """The proxy's config (see the module's docstring).

    ``num_retries`` is the router's retries; ``None`` keeps LiteLLM's default, 2. Under each router attempt
    the OpenAI SDK retries a 5xx, 429 or connection error twice more, whatever the config says (1.106.2's
    image path ignores ``max_retries``): with the default, one request that the upstream answers 500
    reaches it 9 times and fails after about 10 s; with ``num_retries=0``, 3 times in about 2 s."""
    params: dict[str, object] = {
        "model": f"openai/{upstream_model}",
        "api_base": openai_base(upstream_base_url),
        "api_key": UPSTREAM_API_KEY,
        "base_model": "dall-e-3",
    }
    general: dict[str, object] = {"disable_model_info_refresh": True}
    if master_key is None:
        general["dangerously_permit_weak_or_unset_master_key"] = True
    else:
        general["master_key"] = master_key
    config: dict[str, object] = {
        "model_list": [
            {"model_name": MODEL, "litellm_params": params, "model_info": {"mode": "image_generation"}}
        ],
        "litellm_settings": {"drop_params": False},
        "general_settings": general,
    }
    if num_retries is not None:
        config["router_settings"] = {"num_retries": num_retries}
    return config


def write_config(workdir: Path, config: Mapping[str, object], name: str = "litellm-config.yaml") -> Path:
    """``config`` as YAML (JSON is YAML, so no YAML writer is needed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def litellm_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The proxy's whole environment: the caller's, less what would change the proxy, plus offline mode."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _REMOVED_VARIABLES and not name.startswith(_REMOVED_PREFIXES)
    }
    loopback = "127.0.0.1,localhost"
    for name in ("NO_PROXY", "no_proxy"):
        env[name] = f"{env[name]},{loopback}" if env.get(name) else loopback
    return {**env, **_OFFLINE, **(extra or {})}


def litellm_command(litellm: Path, config: Path, port: int) -> list[str]:
    return [
        str(litellm),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]


def litellm_service(
    litellm: Path,
    upstream_base_url: str,
    port: int,
    workdir: Path,
    *,
    upstream_model: str = MODEL,
    master_key: str | None = None,
    num_retries: int | None = None,
) -> Service:
    """The proxy as a ``bench.common.Service``: started (ready once ``READY_PATH`` answers, which needs no
    key), memory-watched and stopped by ``with``."""
    from bench.common import Service

    config = write_config(
        workdir,
        litellm_config(
            upstream_base_url, upstream_model=upstream_model, master_key=master_key, num_retries=num_retries
        ),
        f"litellm-{port}.yaml",
    )
    removed = {name for name in os.environ if name not in litellm_env()}
    if removed:
        # Service adds its env to os.environ; what litellm_env() removes cannot be removed that way.
        print(f"note: litellm inherits {', '.join(sorted(removed))}", file=sys.stderr)
    return Service(
        name="litellm",
        command=litellm_command(litellm, config, port),
        health_url=f"http://127.0.0.1:{port}{READY_PATH}",
        env=litellm_env(),
        log_path=workdir / f"litellm-{port}.log",
    )
