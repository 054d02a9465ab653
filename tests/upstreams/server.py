"""A uvicorn server on a loopback port, in a background thread with an event loop of its own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT = 10.0
#: How long a request still running at stop() gets before uvicorn cancels it (a hung request, typically).
GRACEFUL_SHUTDOWN = 1


class _PromptServer(uvicorn.Server):
    """uvicorn checks ``should_exit`` every 100 ms; waking on an event instead takes that off every stop(),
    which tests pay once per simulator."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        # on_tick refreshes the Date header and answers True once should_exit is set; a tick a second is
        # all the Date header needs.
        while not await self.on_tick(0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    def request_exit(self) -> None:
        self.should_exit = True
        # If the loop is not known yet, main_loop has not reached its first on_tick, which will see the flag.
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed: nothing left to wake
                self._loop.call_soon_threadsafe(self._wake.set)


class ServerThread:
    def __init__(self, app: ASGIApp, name: str) -> None:
        self._app = app
        self._name = name
        self._server: _PromptServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.port = 0

    def start(self) -> None:
        # Binding the socket here, not in uvicorn, gives a free port with no window for another process to
        # take it between "find a free port" and "listen on it".
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            # h11 rather than httptools: its strict framing is what the "cut" fault is verified against.
            http="h11",
            ws="none",
            lifespan="off",
            log_level="warning",
            # Leave the test process's logging configuration alone; uvicorn's records go to the root logger.
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
        )
        self._server = server = _PromptServer(config)
        self._thread = threading.Thread(target=self._run, args=(server, sock), name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._name} did not start") from self._error
            time.sleep(0.005)

    def _run(self, server: _PromptServer, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # surfaced by start(); a thread has nowhere else to report it
            self._error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.request_exit()
        if self._thread is not None:
            self._thread.join(timeout=GRACEFUL_SHUTDOWN + 5)
        self._server = None
        self._thread = None
