"""A connection must send a request's headers within ``PIXELGATE_HEADER_TIMEOUT_SECONDS``
(``api/header_timeout.py``): one that opens and says nothing, or sends part of the headers and stalls, is
answered 408 and closed instead of being held forever; a slow but complete request, and the requests of a
kept-alive connection, are served as before."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conftest import MakeServer, ServerProcess

TIMEOUT = 1.0
PATIENCE = 20.0  # how long the test waits for the close: generous on a loaded machine


@pytest.fixture(scope="module")
def server(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", env={"PIXELGATE_HEADER_TIMEOUT_SECONDS": str(TIMEOUT)})


@contextmanager
def connection(server: ServerProcess) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE) as sock:
        yield sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails the test)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def healthz(sock: socket.socket, *, close: bool) -> bytes:
    sock.sendall(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"
    )
    received = b""
    while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    return received


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "],
    ids=["nothing", "request-line", "half-a-header"],
)
def test_a_connection_that_stalls_before_its_headers_end_is_closed(
    server: ServerProcess, sent: bytes
) -> None:
    with connection(server) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        answer = read_until_closed(sock)
        waited = time.monotonic() - started
    assert waited >= TIMEOUT * 0.9, waited
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer


def test_a_kept_alive_connection_whose_next_request_stalls_is_closed(server: ServerProcess) -> None:
    with connection(server) as sock:
        assert healthz(sock, close=False).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer


def test_headers_sent_in_pieces_within_the_time_are_served(server: ServerProcess) -> None:
    with connection(server) as sock:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
            sock.sendall(piece)
            time.sleep(TIMEOUT / 10)  # 0.2 s in all: well within the time
        assert read_until_closed(sock).startswith(b"HTTP/1.1 200 ")


def test_each_request_of_a_kept_alive_connection_has_its_own_time(server: ServerProcess) -> None:
    """The deadline is per request, not per connection: three requests, each well within the time."""
    with connection(server) as sock:
        for _ in range(3):
            assert healthz(sock, close=False).startswith(b"HTTP/1.1 200 ")
            time.sleep(TIMEOUT * 0.6)
        assert healthz(sock, close=True).startswith(b"HTTP/1.1 200 ")
