"""pixelgate's client of one channel (``providers/http.py``), pointed at a test server on a loopback port."""

from __future__ import annotations

from pixelgate.providers.http import UpstreamHttp


def channel_client(
    port: int, *, path: str = "", max_connections: int = 4, timeout: float = 10, secret: str | None = None
) -> UpstreamHttp:
    """The client of a channel named ``chan`` whose base URL is ``http://127.0.0.1:{port}{path}``."""
    return UpstreamHttp(
        channel="chan",
        base_url=f"http://127.0.0.1:{port}{path}",
        headers={},
        timeout=timeout,
        max_connections=max_connections,
        secret=secret,
    )
