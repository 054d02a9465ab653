"""The tests' server launcher (``launcher.py``): a ``python -m pixelgate`` command forked from the preloaded
process answers exactly as the same command in a fresh interpreter does, in its own environment and
working directory, and its process is waited for and signalled like ``subprocess``'s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port
from launcher import PIXELGATE, ForkedServer, launch

# A channel whose key comes from SIM_KEY: the command's answer depends on its environment, and on its
# working directory, where the relative --config is looked for.
CHANNEL_FILE = """
[[channels]]
name = "sim"
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "SIM_KEY"
models = { "gemini-3.1-flash-image" = "upstream-model" }
"""
# The environment a command gets, without what would make its answer differ between two runs.
BASE_ENV = {name: value for name, value in os.environ.items() if name not in ("SIM_KEY", "COLUMNS")}


def channels_command(folder: Path) -> list[str]:
    """``pixelgate channels --offline`` of CHANNEL_FILE, written into ``folder`` and named relative to it."""
    (folder / "pixelgate.toml").write_text(CHANNEL_FILE)
    return [*PIXELGATE, "channels", "--offline", "--config", "pixelgate.toml"]


def fresh_interpreter(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> int:
    with log.open("wb") as out:
        return subprocess.run(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode


@pytest.mark.parametrize(
    ("given", "status"),
    [
        ({"SIM_KEY": "sk-test"}, 0),  # the channel table
        ({}, 2),  # refused: SIM_KEY is not set
        ({"SIM_KEY": "sk-test", "COLUMNS": "70", "NO_COLOR": "1"}, 0),  # what the consoles read as made
    ],
)
def test_a_forked_command_answers_as_a_fresh_interpreter_does(
    tmp_path: Path, given: dict[str, str], status: int
) -> None:
    command = channels_command(tmp_path)
    env = {**BASE_ENV, **given}

    forked = launch(command, env=env, cwd=tmp_path, log=tmp_path / "forked.log")
    assert isinstance(forked, ForkedServer), "a python -m pixelgate command is forked"
    assert forked.wait(60) == status
    assert forked.returncode == status and forked.poll() == status
    assert fresh_interpreter(command, env, tmp_path, tmp_path / "fresh.log") == status

    answer = (tmp_path / "forked.log").read_text()
    assert answer == (tmp_path / "fresh.log").read_text()
    assert ("upstream-model" in answer) == (status == 0), answer


def test_a_signalled_fork_reports_the_signal_as_subprocess_does(tmp_path: Path) -> None:
    server = launch(
        [*PIXELGATE, "serve", "--emulate", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        env=BASE_ENV,
        cwd=tmp_path,
        log=tmp_path / "server.log",
    )
    assert server.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        server.wait(0.2)
    server.send_signal(signal.SIGKILL)
    assert server.wait(30) == -signal.SIGKILL
    server.send_signal(signal.SIGKILL)  # an ended process is not signalled again (its pid may be reused)


def test_a_command_with_its_own_python_settings_runs_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """A fork keeps the interpreter's start-up settings: ``PYTHONPATH`` here would be ignored."""
    command = channels_command(tmp_path)
    env = {**BASE_ENV, "SIM_KEY": "sk-test", "PYTHONPATH": str(tmp_path)}
    process = launch(command, env=env, cwd=tmp_path, log=tmp_path / "fresh.log")
    assert isinstance(process, subprocess.Popen)
    assert process.wait(60) == 0

    other = launch(
        [sys.executable, "-c", "print('not pixelgate')"], env=BASE_ENV, cwd=tmp_path, log=tmp_path / "c.log"
    )
    assert isinstance(other, subprocess.Popen)
    assert other.wait(60) == 0
    assert (tmp_path / "c.log").read_text() == "not pixelgate\n"
