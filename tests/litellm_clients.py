"""LiteLLM as a client library, from a virtual environment of its own: the benchmark's
(``~/.cache/pixelgate/litellm-<version>``, outside the checkout, made by ``bench.litellm_proxy.ensure_litellm_venv`` with the version
the benchmark pins), so that LiteLLM's pinned dependencies never meet pixelgate's and one install per
machine serves both.

Making it takes about a minute, so a test module that needs it calls ``start_install()`` when it is
imported (at collection): the install then runs in a thread while other tests run, and ``run_litellm``
waits for it. Each pytest-xdist worker does the same; a lock file beside the venv makes one of them install
and the others wait. ``run_litellm`` runs ``tests/litellm_scenarios.py`` with that venv's Python, offline
(``bench.litellm_proxy.litellm_env``: the local price map, no ``LITELLM_*``/``OPENAI_*`` of the caller's),
all the scenarios asked in one process, since importing LiteLLM takes seconds; ``litellm_results`` runs
every scenario once per server in a pytest process, for all the tests that ask.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from js_clients import ClientError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the repository's bench package (the README runs pytest from ROOT anyway)

from bench.litellm_proxy import (  # noqa: E402
    DEFAULT_VENV,
    LITELLM_VERSION,
    ensure_litellm_venv,
    has_litellm,
    litellm_env,
)

SCRIPT = Path(__file__).resolve().parent / "litellm_scenarios.py"
SCENARIOS = ("image_openai", "image_gemini", "chat")  # litellm_scenarios.SCENARIOS

_install_lock = threading.Lock()
_install: threading.Thread | None = None
_install_error: BaseException | None = None


def _make_venv() -> None:
    global _install_error
    try:
        ensure_litellm_venv(DEFAULT_VENV, LITELLM_VERSION, quiet=True)
    except BaseException as error:  # reported by litellm_python(), in a test
        _install_error = error


def start_install() -> None:
    """Starts making LiteLLM's venv in a background thread, unless it is made or being made. A daemon
    thread: a session that ends first does not wait for it, and pip, which holds the lock, finishes."""
    global _install
    with _install_lock:
        if _install is None and not has_litellm(DEFAULT_VENV, LITELLM_VERSION):
            _install = threading.Thread(target=_make_venv, name="litellm-venv", daemon=True)
            _install.start()


@functools.cache
def litellm_python() -> Path:
    """The Python of LiteLLM's venv, once it holds the pinned version."""
    start_install()
    if _install is not None:
        _install.join()
    if _install_error is not None:
        output = getattr(_install_error, "stderr", None) or ""
        pytest.fail(
            f"could not make LiteLLM's venv at {DEFAULT_VENV} (litellm[proxy]=={LITELLM_VERSION} from PyPI): "
            f"{_install_error!r}\n{output[-3000:]}",
            pytrace=False,
        )
    return ensure_litellm_venv(DEFAULT_VENV, LITELLM_VERSION)  # at once now: it is made


def run_litellm(server_url: str, *scenarios: str, timeout: float = 180) -> dict[str, Any]:
    """Each scenario's result from one run of ``litellm_scenarios.py``; a scenario whose LiteLLM call
    raised holds ``{"error": ...}`` (``litellm_result`` turns it into a failure)."""
    done = subprocess.run(
        [str(litellm_python()), str(SCRIPT), server_url, *scenarios],
        env=litellm_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = done.stdout.strip().splitlines()
    try:
        results = json.loads(lines[-1]) if lines else None
    except ValueError:
        results = None
    if done.returncode != 0 or not isinstance(results, dict):
        raise AssertionError(
            f"{SCRIPT.name} exited {done.returncode}:\nstdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
        )
    return results


@functools.cache
def litellm_results(server_url: str) -> dict[str, Any]:
    """Every scenario's result against one server, from one run of the script (cached for the process)."""
    return run_litellm(server_url, *SCENARIOS)


def litellm_result(results: dict[str, Any], scenario: str) -> dict[str, Any]:
    """One scenario's result; raises ``ClientError`` if LiteLLM raised."""
    result: dict[str, Any] = results[scenario]
    if "error" in result:
        raise ClientError(f"litellm {scenario}", result["error"])
    return result
