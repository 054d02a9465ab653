"""Shared fixtures: real pixelgate servers in their own processes, on loopback ports, on SQLite and on
PostgreSQL; and an S3-compatible service (moto's server) for the blob stores in a bucket.

PostgreSQL runs take their URL from ``PIXELGATE_TEST_DATABASE_URL`` (``.ci/run`` sets it, so CI never skips
them); each server gets a database of its own, made and dropped here.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from PIL import Image

from launcher import ServerHandle, launch
from pixelgate.store.db import Database
from pixelgate.tasks.queue import TaskQueue

POSTGRES_URL_ENV = "PIXELGATE_TEST_DATABASE_URL"
BACKENDS = ["sqlite", "postgres"]
# Dummy credentials for moto, and no ~/.aws of whoever runs the tests: every process (pixelgate servers
# inherit the environment) talks to the test bucket only.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def png_bytes(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG that *declares* ``width`` x ``height`` RGB pixels but carries only a few bytes of
    image data: a decompression bomb's header, without ever allocating the image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def db_rows(server: ServerProcess, sql: str) -> list[tuple[Any, ...]]:
    """Rows straight from a server's database (SQLite file or PostgreSQL), to see what the API does not
    show: attempts, leases, the signing secret."""
    if server.database_url:
        import asyncpg

        async def fetch() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(
                server.database_url.replace("postgresql+asyncpg://", "postgresql://")
            )
            try:
                return [tuple(record) for record in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(fetch())
    with contextlib.closing(sqlite3.connect(server.data_dir / "pixelgate.db")) as conn:
        return conn.execute(sql).fetchall()


@dataclass
class ServerProcess:
    """``pixelgate serve`` in a child process; ``start`` waits until ``/healthz`` answers."""

    data_dir: Path
    database_url: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: ServerHandle | None = None
    log_path: Path | None = None
    cwd: Path | None = None  # where the process runs (None: the test's own working directory)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The command line ``start`` runs (a subclass may run another, such as an image's)."""
        command = [
            sys.executable,
            "-m",
            "pixelgate",
            "serve",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--log-level",
            "warning",
            *self.args,
        ]
        if self.database_url:
            command += ["--database-url", self.database_url]
        return command

    def environment(self) -> dict[str, str]:
        """The process's environment: the test's own, with ``env`` over it."""
        return {**os.environ, **self.env}

    def start(self, timeout: float = 30.0) -> ServerProcess:
        command = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.port}-{time.time_ns()}.log"
        self.process = launch(command, env=self.environment(), cwd=self.cwd, log=self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pixelgate exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"pixelgate did not become healthy in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM, without waiting: the server finishes or hands back its work within its grace period."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        self.wait_stopped()

    def wait_stopped(self) -> None:
        """Wait for the server to end after :meth:`terminate`, and kill it past 30 s."""
        if self.process and self.process.poll() is None:
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class MakeServer(Protocol):
    def __call__(
        self,
        backend: str,
        *args: str,
        database_url: str | None = None,
        data_dir: Path | None = None,
        start: bool = True,
        env: dict[str, str] | None = None,
    ) -> ServerProcess: ...


class PostgresDatabases:
    """Makes a fresh database per server from the admin URL, and drops them all at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[str] = []

    def admin(self, *statements: str, connections: int = 1) -> None:
        """Run ``statements`` on the admin database, over up to ``connections`` connections at once."""
        import asyncpg

        dsn = self.url.replace("postgresql+asyncpg://", "postgresql://")
        pending = list(statements)

        async def connection() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                while pending:
                    await conn.execute(pending.pop())
            finally:
                await conn.close()

        async def run() -> None:
            await asyncio.gather(*(connection() for _ in range(min(connections, len(statements)))))

        asyncio.run(run())

    def create(self) -> str:
        name = f"pixelgate_test_{uuid.uuid4().hex[:12]}"
        self.admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{name}"

    def drop_all(self) -> None:
        """Drop every database made, several at a time: one after another, a test worker's took 20 s at
        the end of a run."""
        self.admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.made), connections=6)


@dataclass
class S3Service:
    """moto's S3 server in a thread of the test process, with one bucket made; objects of every test live
    under prefixes of their own."""

    endpoint_url: str
    bucket: str
    server: Any  # moto.server.ThreadedMotoServer

    def store_args(self, prefix: str, bucket: str | None = None) -> list[str]:
        """``pixelgate serve`` flags that keep its blobs under ``prefix`` in the bucket."""
        return [
            "--blob-store",
            f"s3://{bucket or self.bucket}/{prefix}",
            "--s3-endpoint-url",
            self.endpoint_url,
        ]

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Service]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        for name, value in S3_ENV.items():
            patch.setenv(name, value)
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        service = S3Service(f"http://127.0.0.1:{port}", "pixelgate-test", server)
        service.client().create_bucket(Bucket=service.bucket)
        try:
            yield service
        finally:
            server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases | None]:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        yield None
        return
    databases = PostgresDatabases(url)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, postgres: PostgresDatabases | None) -> str:
    if request.param == "postgres" and postgres is None:
        pytest.skip(
            f"PostgreSQL runs need {POSTGRES_URL_ENV} (e.g. postgresql+asyncpg://postgres@127.0.0.1/test);"
            " .ci/run sets it"
        )
    return str(request.param)


@pytest.fixture()
async def queue(backend: str, postgres: PostgresDatabases | None, tmp_path: Path) -> AsyncIterator[TaskQueue]:
    """A task queue on a database of its own: a fresh PostgreSQL database, or a SQLite file."""
    if backend == "postgres":
        assert postgres is not None
        url = await asyncio.to_thread(postgres.create)  # it runs an event loop of its own
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'pixelgate.db'}"
    db = await Database.open(url, data_dir=tmp_path)
    try:
        yield TaskQueue(db, result_ttl=3600)
    finally:
        await db.close()


class Servers:
    """Starts servers on demand and stops them all at once."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, postgres: PostgresDatabases | None) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.postgres = postgres
        self.started: list[ServerProcess] = []

    def make(
        self,
        backend: str,
        *args: str,
        database_url: str | None = None,
        data_dir: Path | None = None,
        start: bool = True,
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        if backend == "postgres" and database_url is None:
            assert self.postgres is not None
            database_url = self.postgres.create()
        env = dict(env or {})
        if backend == "postgres":
            # Three xdist workers' servers (pyproject.toml's addopts) share one PostgreSQL of a hundred
            # connections.
            env.setdefault("PIXELGATE_DATABASE_MAX_CONNECTIONS", "8")
        server = ServerProcess(
            data_dir=data_dir or self.tmp_path_factory.mktemp(f"pixelgate-{backend}"),
            database_url=database_url,
            args=list(args),
            env=env,
        )
        self.started.append(server)
        return server.start() if start else server

    def stop_all(self) -> None:
        # All told at once, then waited for: a server with work in flight takes up to its grace period
        # (10 s) to stop, and one after another the session's servers held the end of a run up by 20 s.
        for server in self.started:
            server.terminate()
        for server in self.started:
            server.wait_stopped()


@pytest.fixture(scope="module")
def make_server(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresDatabases | None
) -> Iterator[MakeServer]:
    """A factory: ``make_server(backend, *args)`` starts a server; all are stopped when the module's tests
    are done (an idle server still polls its database every second, and a session collects dozens)."""
    servers = Servers(tmp_path_factory, postgres)
    yield servers.make
    servers.stop_all()


@pytest.fixture(scope="session")
def session_servers(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresDatabases | None
) -> Iterator[Servers]:
    servers = Servers(tmp_path_factory, postgres)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="session")
def shared_servers(session_servers: Servers) -> dict[str, ServerProcess]:
    return {}


@pytest.fixture(scope="module")
def server(backend: str, session_servers: Servers, shared_servers: dict[str, ServerProcess]) -> ServerProcess:
    """One emulator server per backend for the whole session, shared by the tests that only read and write
    their own tasks. (Not a session fixture of its own: pytest would set it up again, and leave the last one
    running, each time the tests switch backends.)"""
    if backend not in shared_servers:
        shared_servers[backend] = session_servers.make(backend, "--emulate")
    return shared_servers[backend]


@pytest.fixture()
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
