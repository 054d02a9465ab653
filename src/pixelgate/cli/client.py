"""How the CLI talks to a running server: the options every such command shares, and one call that turns
any failure into a message on stderr with the exit status of ``exits.py`` (never a traceback)."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import httpx2
import typer

from pixelgate.cli import exits
from pixelgate.cli.output import fail

DEFAULT_SERVER = "http://127.0.0.1:8000"
ServerOption = Annotated[str, typer.Option(envvar="PIXELGATE_SERVER", help="The pixelgate server")]
AdminKeyOption = Annotated[
    str | None, typer.Option(envvar="PIXELGATE_ADMIN_KEY", help="The admin key (printed on the first start)")
]
ApiKeyOption = Annotated[str | None, typer.Option(envvar="PIXELGATE_API_KEY", help="API key")]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON (the server's own document) on stdout")
]


def client(server: str, api_key: str | None, *, timeout: float = 30) -> httpx2.Client:
    """A client of a running server, with the key every route but /healthz needs when auth is on."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx2.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)


def call(http: httpx2.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """A request whose answer must be a JSON object and a success; else its error is printed on stderr
    and the command exits with the status ``exits.for_status`` gives."""
    try:
        response = http.request(method, path, **kwargs)
    except httpx2.TransportError as exc:
        unreachable(str(http.base_url), exc)
    return check(response)


def unreachable(server: str, exc: Exception) -> NoReturn:
    fail(
        f"cannot reach {server.rstrip('/')}: {exc}. Start one with `pixelgate serve --emulate`, or give "
        "--server (PIXELGATE_SERVER)",
        exits.NO_SERVER,
    )


def check(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        fail(
            f"{response.status_code}: {response.url} did not answer with JSON (is it a pixelgate server?)",
            exits.NO_SERVER,
        )
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message", error) if isinstance(error, dict) else body
        fail(f"{response.status_code}: {message}", exits.for_status(response.status_code))
    if not isinstance(body, dict):
        fail(
            f"{response.url} answered {str(body)[:200]!r}, not a JSON object (is it a pixelgate server?)",
            exits.NO_SERVER,
        )
    return body
