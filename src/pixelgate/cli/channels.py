"""``pixelgate channels``: each channel's live state on a running server, the admin's hand on it (reset,
disable, enable), and offline, the channel file's channels and whether each upstream answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from pixelgate.cli import exits
from pixelgate.cli.client import DEFAULT_SERVER, AdminKeyOption, JsonOption, ServerOption, call, client
from pixelgate.cli.output import console, fail, refuse, show, show_json, table

app = typer.Typer(invoke_without_command=True, epilog=exits.EXIT_CODES_HELP)


@app.callback()
def channels(
    ctx: typer.Context,
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Offline: read the channel file and ask each channel's upstream whether it answers",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Offline: the channel file to show (default with --check: ./pixelgate.toml if present)"
        ),
    ] = None,
    emulate: Annotated[
        bool, typer.Option(help="Offline: include the emulator, as `serve --emulate` would")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Offline: show the channel file's channels, asking nobody")
    ] = False,
    timeout: Annotated[float, typer.Option(help="With --check: seconds to wait for each channel")] = 10.0,
    json_out: JsonOption = False,
) -> None:
    """Each channel's live state on the running server, or offline, the channel file's channels.

    Live: its state (ready, rate_limited, cooling_down, half_open, probing, disabled), failures, load and
    errors. With --offline, --config or --emulate: the channel file's channels instead, without a server;
    --check also asks each upstream whether it answers (exit status 1 if one does not)."""
    if ctx.invoked_subcommand is not None:
        return
    if check or offline or config is not None or emulate:
        _offline_channels(config, emulate, check, timeout, json_out)
        return
    with client(server, admin_key) as http:
        listed = call(http, "GET", "/admin/channels")
    if json_out:
        show_json(listed)
        return
    shown = table(
        f"pixelgate channels on {server} (process {listed['process']})",
        *("name", "provider", "state", "in flight", "failures in a row", "requests", "ok", "errors"),
        "last error",
    )
    for channel in listed["data"]:
        shown.add_row(
            channel["name"],
            channel["provider"],
            _state_text(channel),
            f"{channel['in_flight']}/{channel['concurrency']}",
            str(channel["failures_in_a_row"]),
            str(channel["requests"]),
            str(channel["succeeded"]),
            "\n".join(f"{code} {count}" for code, count in channel["errors"].items()) or "-",
            escape(channel["last_error"] or "-"),
        )
    show(shown)


_STATE_COLOURS = {"ready": "green", "rate_limited": "yellow", "half_open": "yellow", "probing": "yellow"}


def _state_text(channel: dict[str, Any]) -> str:
    state = channel["state"]
    text = f"[{_STATE_COLOURS.get(state, 'red')}]{state}[/]"
    if channel["seconds_left"]:
        text += f" ({channel['seconds_left']:.0f} s more)"
    if channel["disabled_reason"]:
        text += f": {escape(channel['disabled_reason'])}"
    return text


def _steer(
    action: str, name: str, server: str, admin_key: str | None, body: dict[str, Any] | None = None
) -> None:
    with client(server, admin_key) as http:
        channel = call(http, "POST", f"/admin/channels/{name}/{action}", json=body)
    console.print(f"channel {escape(channel['name'])} is {_state_text(channel)}", soft_wrap=True)


@app.command("reset", epilog=exits.EXIT_CODES_HELP)
def channels_reset(
    name: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None
) -> None:
    """Close a channel's breaker: back in rotation now, on every process sharing the database."""
    _steer("reset", name, server, admin_key)


@app.command("disable", epilog=exits.EXIT_CODES_HELP)
def channels_disable(
    name: str,
    reason: Annotated[str | None, typer.Option(help="Why, shown in its state")] = None,
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
) -> None:
    """Take a channel out of rotation (also across restarts) until it is enabled."""
    _steer("disable", name, server, admin_key, {"reason": reason} if reason else None)


@app.command("enable", epilog=exits.EXIT_CODES_HELP)
def channels_enable(
    name: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None
) -> None:
    """Put a disabled channel back in rotation."""
    _steer("enable", name, server, admin_key)


def _offline_channels(
    config: Path | None, emulate: bool, check: bool, timeout: float, json_out: bool
) -> None:
    """The channel file's channels, as `serve` would make them, and with ``check`` whether each answers."""
    from pixelgate.catalog import default_catalog
    from pixelgate.config import ConfigError, Settings, resolve_config
    from pixelgate.routing import build_router

    try:
        given: dict[str, Any] = {"config": config} if config is not None else {}
        gateway = resolve_config(Settings(emulate=emulate, **given), default_catalog())
        router = build_router(gateway)
    except ConfigError as exc:
        refuse(exc)
    if not router.channels:
        fail(
            f"No channels ({gateway.source}): set GEMINI_API_KEY or OPENAI_API_KEY, declare channels in "
            "pixelgate.toml, or use --emulate."
        )
    answers = asyncio.run(_check_channels(router, timeout)) if check else {}
    catalog = default_catalog()
    rows = []
    for channel in router.channels:
        cfg = channel.config
        served = {
            spec.id: upstream for spec in catalog if (upstream := channel.upstream_model(spec)) is not None
        }
        rows.append(
            {
                "name": cfg.name,
                "provider": cfg.provider,
                "base_url": channel.base_url,
                "models": served,
                "priority": cfg.priority,
                "weight": cfg.weight,
                "concurrency": cfg.concurrency,
                "timeout": cfg.timeout,
                **({"answers": answers[cfg.name]} if check else {}),
            }
        )
    if json_out:
        show_json({"object": "list", "source": gateway.source, "data": rows})
    else:
        _offline_table(gateway.source, rows, check, len(catalog))
    if any(not answer["ok"] for answer in answers.values()):
        raise typer.Exit(exits.FAILED)


def _offline_table(source: str, rows: list[dict[str, Any]], check: bool, models: int) -> None:
    columns = ["name", "provider", "base URL", "models", "priority", "weight", "concurrency", "timeout"]
    shown = table(f"pixelgate channels ({source})", *columns, *(["answers"] if check else []))
    for row in rows:
        served = [
            model if upstream == model else f"{model} → {upstream}"
            for model, upstream in row["models"].items()
        ]
        cells = [
            row["name"],
            row["provider"],
            row["base_url"] or "-",
            "\n".join(served) if len(served) < models else f"all {models}",
            str(row["priority"]),
            f"{row['weight']:g}",
            str(row["concurrency"]),
            f"{row['timeout']:g} s",
        ]
        if check:
            answer = row["answers"]
            cells.append(
                f"[green]yes[/] ({answer['seconds']:.2f} s, {escape(answer['note'])})"
                if answer["ok"]
                else f"[red]{escape(answer['note'])}[/]"
            )
        shown.add_row(*cells)
    show(shown)


async def _check_channels(router: Any, seconds: float) -> dict[str, dict[str, Any]]:
    """Per channel: whether its upstream answered (``ok``), how fast, and what it said or why not."""
    from pixelgate.core.errors import PixelgateError

    async def one(channel: Any) -> dict[str, Any]:
        started = time.monotonic()
        try:
            note = await asyncio.wait_for(channel.provider.check(), seconds)
        except TimeoutError:
            return {"ok": False, "seconds": None, "note": f"no answer within {seconds:g} s"}
        except PixelgateError as exc:
            return {"ok": False, "seconds": None, "note": channel.redact(exc).message}
        return {"ok": True, "seconds": round(time.monotonic() - started, 3), "note": note}

    try:
        return dict(
            zip(
                [c.name for c in router.channels],
                await asyncio.gather(*map(one, router.channels)),
                strict=True,
            )
        )
    finally:
        await router.close()
