"""``python -m pixelgate serve …`` for the tests, forked from a process that has imported pixelgate already.

A full run starts about two hundred servers, and a fresh interpreter spent 2-2.6 s of each start importing
FastAPI, SQLAlchemy, Alembic and pixelgate's routes before it read its first option: on two cores, a
quarter of the suite's time. Here one process per test worker (multiprocessing's fork server) imports
them once, and each server is a fork of it that runs the same command line as ``python -m pixelgate``
would, with the same environment, working directory and log, as a process of its own that a test can
signal, kill and wait for.

What a fork cannot give is what is read only once, from the environment of the process that forks: the
``PYTHON*`` variables that an interpreter reads as it starts (a ``PYTHONPATH`` that puts another pixelgate
first, for one), and whatever a preloaded module reads as it is imported (nothing in pixelgate's server
modules; the CLI's consoles do, so the CLI is not preloaded). A command given ``PYTHON*`` variables that
differ from this process's, or a command other than ``python -m pixelgate`` (a container's entry point),
runs as a fresh interpreter with ``subprocess``, as every server did before. ``test_launcher.py`` checks
that a forked command answers as a fresh interpreter does.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

# What ``pixelgate serve`` imports before it answers, and the parts that channels and stores load when
# they are first named (a test's server names them more often than not). Not the CLI: its consoles read
# the environment (COLUMNS, NO_COLOR) as they are made, at import, so each command imports it anew.
PRELOAD = [
    "pixelgate.app",
    "pixelgate.runtime",
    "pixelgate.api.header_timeout",
    "pixelgate.providers.emulator",
    "pixelgate.providers.openai",
    "pixelgate.providers.google",
    "uvicorn.main",
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlalchemy.dialects.postgresql.asyncpg",
    "alembic.command",
    "alembic.runtime.migration",
]
PIXELGATE = [sys.executable, "-m", "pixelgate"]

_context: Any = None  # the fork server's multiprocessing context, made on first use


class ServerHandle(Protocol):
    """What the tests do with a server's process: ``subprocess.Popen``'s part of it."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...


class ForkedServer:
    """A server forked from the fork server, seen as ``subprocess.Popen`` sees its child: ``returncode``
    is the exit status, or minus the signal that ended it."""

    def __init__(self, process: multiprocessing.process.BaseProcess, command: list[str]) -> None:
        self.process = process
        self.command = command

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(self.command, timeout or 0)
        return self.process.exitcode

    def send_signal(self, sig: int) -> None:
        if self.process.exitcode is None:
            os.kill(self.pid, sig)


def launch(command: list[str], *, env: dict[str, str], cwd: Path | None, log: Path) -> ServerHandle:
    """Start ``command`` with ``env`` as its whole environment, in ``cwd`` (None: this process's working
    directory), its output appended to ``log``."""
    if not _can_fork(command, env):
        with log.open("ab") as out:
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    arguments = command[len(PIXELGATE) :]
    process = _context.Process(
        target=_run_pixelgate,
        args=(arguments, env, str(cwd or os.getcwd()), str(log)),
        name=f"pixelgate {' '.join(arguments[:1])}",
        # Stopped with this test worker if a test left it running, as a child of the worker's would be
        # when its session ends.
        daemon=True,
    )
    process.start()
    return ForkedServer(process, command)


def _can_fork(command: list[str], env: dict[str, str]) -> bool:
    """Whether a fork runs ``command`` as a fresh interpreter would (see the module's doc)."""
    return command[: len(PIXELGATE)] == PIXELGATE and _interpreter_settings(env) == _interpreter_settings(
        os.environ
    )


def _interpreter_settings(env: Any) -> dict[str, str]:
    return {name: value for name, value in env.items() if name.startswith("PYTHON")}


def _run_pixelgate(arguments: list[str], env: dict[str, str], cwd: str, log: str) -> None:
    """The fork's body: what ``python -m pixelgate ARGUMENTS`` does, in the server's surroundings."""
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = ["pixelgate", *arguments]
    from pixelgate.cli import app

    app(args=arguments, prog_name="pixelgate")
