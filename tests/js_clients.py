"""Node client libraries that pixelgate's tests drive but none of us wrote: ``openai`` (openai-node), the
Vercel AI SDK (``ai``, ``@ai-sdk/openai``, ``@ai-sdk/google``) and ``@openrouter/ai-sdk-provider``, pinned in
``tests/js/package-lock.json``.

``node_clients()`` installs them the first time a test needs them (``npm ci`` in ``tests/js``, a few seconds)
and again whenever the lock file changes; a lock file beside them makes pytest-xdist workers install once.
Node and npm are required, like the Python SDKs: without them the tests fail, saying so; they are not
skipped. ``NodeClients.run`` runs one scenario script (``tests/js/<client>.mjs <scenario>``) against a
server and returns the JSON it printed.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
LOCK_FILE = JS_DIR / "package-lock.json"
NODE_MODULES = JS_DIR / "node_modules"
# What npm ci installed from: the lock file's SHA-256, written once npm ci has finished.
STAMP = NODE_MODULES / ".pixelgate-lock-sha256"
INSTALL_LOCK = JS_DIR / ".npm-ci.lock"  # git-ignored
NODE_MAJOR = 20  # the oldest Node the pinned packages are chosen for
NPM_CI_TIMEOUT = 600


class ClientError(AssertionError):
    """A scenario script's client library threw: ``error`` is what the script reported."""

    def __init__(self, what: str, error: dict[str, Any]) -> None:
        self.error = error
        status = error.get("statusCode") or error.get("status")
        shown = f"{error.get('name')}{f' (HTTP {status})' if status else ''}: {error.get('message')}"
        super().__init__(f"{what} failed with {shown}")


@dataclass(frozen=True)
class NodeClients:
    node: str

    def run(
        self,
        script: str,
        scenario: str,
        server_url: str,
        *,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> dict[str, Any]:
        """``node tests/js/<script> <scenario>`` with ``PIXELGATE_URL=server_url``: the JSON object it printed.
        Raises ``ClientError`` when the client library threw (the script prints ``{"error": …}``)."""
        what = f"node {script} {scenario}"
        done = subprocess.run(
            [self.node, str(JS_DIR / script), scenario],
            cwd=JS_DIR,
            env={**os.environ, "PIXELGATE_URL": server_url, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        lines = done.stdout.strip().splitlines()
        try:
            result = json.loads(lines[-1]) if lines else None
        except ValueError:
            result = None
        if not isinstance(result, dict):
            raise AssertionError(
                f"{what} exited {done.returncode} without a JSON line:\n"
                f"stdout: {done.stdout[-3000:]}\nstderr: {done.stderr[-3000:]}"
            )
        if "error" in result:
            raise ClientError(what, result["error"])
        assert done.returncode == 0, f"{what} exited {done.returncode}: {done.stderr[-3000:]}"
        return result


def _lock_digest() -> str:
    return hashlib.sha256(LOCK_FILE.read_bytes()).hexdigest()


def _installed() -> bool:
    return STAMP.exists() and STAMP.read_text().strip() == _lock_digest()


def _missing(what: str) -> None:
    pytest.fail(
        f"{what}: the Node client tests need Node.js {NODE_MAJOR} or later and npm on PATH "
        "(on Debian: apt-get install nodejs npm). They are required clients, so these tests fail "
        "rather than skip.",
        pytrace=False,
    )


@functools.cache
def node_clients() -> NodeClients:
    """Node, with ``tests/js/node_modules`` installed from the lock file (``npm ci``) if it is missing or was
    installed from another lock file; each pytest-xdist worker calls this, one installs."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing(f"{'node' if node is None else 'npm'} is not on PATH")
    assert node is not None and npm is not None
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < NODE_MAJOR:
        _missing(f"node is {version}")
    if _installed():
        return NodeClients(node)
    with INSTALL_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():  # another worker may have installed while this one waited
            STAMP.unlink(missing_ok=True)
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
            )
            if done.returncode != 0:
                pytest.fail(
                    f"npm ci in {JS_DIR} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}",
                    pytrace=False,
                )
            STAMP.write_text(_lock_digest() + "\n")
    return NodeClients(node)
