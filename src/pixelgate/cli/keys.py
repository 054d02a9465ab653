"""``pixelgate keys``: API keys, made, listed, changed, disabled and deleted with the admin key."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape

from pixelgate.cli import exits
from pixelgate.cli.client import DEFAULT_SERVER, AdminKeyOption, JsonOption, ServerOption, call, client
from pixelgate.cli.output import console, note, show, show_json, table

app = typer.Typer(
    help="API keys: made, listed, disabled and deleted with the admin key.",
    no_args_is_help=True,
    epilog=exits.EXIT_CODES_HELP,
)
RpmOption = Annotated[int | None, typer.Option(help="Requests per minute")]
ConcurrentOption = Annotated[int | None, typer.Option(help="Tasks queued or running at once")]
ImagesPerDayOption = Annotated[int | None, typer.Option(help="Images a day (UTC)")]
BudgetOption = Annotated[float | None, typer.Option(help="Credit budget in USD")]
LIMIT_FIELDS = {
    "rpm": "requests_per_minute",
    "concurrent": "concurrent_tasks",
    "images-per-day": "images_per_day",
    "budget": "credit_budget_usd",
}


def _limits(
    rpm: int | None, concurrent: int | None, images_per_day: int | None, budget: float | None
) -> dict[str, Any]:
    given = zip(LIMIT_FIELDS.values(), (rpm, concurrent, images_per_day, budget), strict=True)
    return {field: value for field, value in given if value is not None}


@app.command("create", epilog=exits.EXIT_CODES_HELP)
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. marketing-batch")],
    owner: Annotated[
        str | None, typer.Option(help="Whose tasks and usage it sees (default: its name)")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="A model it may use (repeatable; default: all)")
    ] = None,
    expires_in_days: Annotated[float | None, typer.Option(help="Days until it stops working")] = None,
    rpm: RpmOption = None,
    concurrent: ConcurrentOption = None,
    images_per_day: ImagesPerDayOption = None,
    budget: BudgetOption = None,
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """Make a key; its secret, shown this once, is the only line on stdout.

    So KEY=$(pixelgate keys create NAME) keeps it. A limit left out is unlimited."""
    body: dict[str, Any] = {
        "name": name,
        "owner": owner,
        "models": model or None,
        "expires_in_days": expires_in_days,
        "limits": _limits(rpm, concurrent, images_per_day, budget) or None,
    }
    with client(server, admin_key) as http:
        made = call(http, "POST", "/admin/keys", json={k: v for k, v in body.items() if v is not None})
    if json_out:
        show_json(made)
        return
    note(
        f"made key [bold]{made['id']}[/] ({escape(made['name'])}, owner {escape(made['owner'])}); its secret, "
        "shown only now, is on stdout:"
    )
    print(made["key"])


@app.command("update", epilog=exits.EXIT_CODES_HELP)
def keys_update(
    key_id: str,
    name: Annotated[str | None, typer.Option(help="A new name")] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="The models it may use from now on (repeatable)")
    ] = None,
    all_models: Annotated[bool, typer.Option("--all-models", help="Allow every model")] = False,
    expires_in_days: Annotated[
        float | None, typer.Option(help="Days from now until it stops working")
    ] = None,
    never_expires: Annotated[bool, typer.Option("--never-expires", help="Remove its expiry")] = False,
    rpm: RpmOption = None,
    concurrent: ConcurrentOption = None,
    images_per_day: ImagesPerDayOption = None,
    budget: BudgetOption = None,
    unlimited: Annotated[
        list[str] | None,
        typer.Option(help=f"Remove a limit (repeatable): {', '.join(LIMIT_FIELDS)}"),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """Change a key's name, models, expiry or limits; what is not given stays as it is."""
    if model and all_models:
        raise typer.BadParameter("give --model or --all-models, not both")
    if expires_in_days is not None and never_expires:
        raise typer.BadParameter("give --expires-in-days or --never-expires, not both")
    limits: dict[str, Any] = _limits(rpm, concurrent, images_per_day, budget)
    for removed in unlimited or []:
        if removed not in LIMIT_FIELDS:
            raise typer.BadParameter(f"--unlimited {removed!r} is not a limit: use {', '.join(LIMIT_FIELDS)}")
        if LIMIT_FIELDS[removed] in limits:
            raise typer.BadParameter(f"--unlimited {removed} and --{removed} contradict each other: give one")
        limits[LIMIT_FIELDS[removed]] = None
    body: dict[str, Any] = {"name": name} if name is not None else {}
    if model or all_models:
        body["models"] = model or None
    if expires_in_days is not None or never_expires:
        body["expires_in_days" if expires_in_days is not None else "expires_at"] = expires_in_days
    if limits:
        body["limits"] = limits
    if not body:
        raise typer.BadParameter(
            "nothing to change: give --name, --model, --all-models, an expiry or a limit"
        )
    with client(server, admin_key) as http:
        key = call(http, "PATCH", f"/admin/keys/{key_id}", json=body)
    if json_out:
        show_json(key)
        return
    console.print(
        f"key {key['id']} ({escape(key['name'])}, {key['state']}): models {_models_text(key)}, "
        f"expires {_expiry_text(key)}, limits {_limits_text(key)}",
        soft_wrap=True,
    )


def _models_text(key: dict[str, Any]) -> str:
    return " ".join(key["models"]) if key["models"] else "all"


def _expiry_text(key: dict[str, Any]) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(key["expires_at"])) if key["expires_at"] else "never"


def _limits_text(key: dict[str, Any]) -> str:
    names = {field: flag for flag, field in LIMIT_FIELDS.items()}
    shown = [f"{names.get(field, field)} {value:g}" for field, value in key["limits"].items()]
    return ", ".join(shown) or "none"


@app.command("list", epilog=exits.EXIT_CODES_HELP)
def keys_list(
    owner: Annotated[str | None, typer.Option(help="Only this owner's keys")] = None,
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """Every key (never a secret)."""
    with client(server, admin_key) as http:
        listed = call(http, "GET", "/admin/keys", params={"owner": owner} if owner else None)
    if json_out:
        show_json(listed)
        return
    shown = table("pixelgate keys", "id", "name", "owner", "models", "limits", "state", "created", "expires")
    for key in listed["data"]:
        shown.add_row(
            key["id"],
            escape(key["name"]),
            escape(key["owner"]),
            _models_text(key),
            _limits_text(key),
            key["state"],
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(key["created_at"])),
            _expiry_text(key),
        )
    show(shown)


def _set_state(action: str, key_id: str, server: str, admin_key: str | None) -> None:
    with client(server, admin_key) as http:
        key = call(http, "POST", f"/admin/keys/{key_id}/{action}")
    console.print(f"key {key['id']} ({escape(key['name'])}) is {key['state']}", soft_wrap=True)


@app.command("disable", epilog=exits.EXIT_CODES_HELP)
def keys_disable(
    key_id: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None
) -> None:
    """Refuse a key from now on (it stays listed)."""
    _set_state("disable", key_id, server, admin_key)


@app.command("enable", epilog=exits.EXIT_CODES_HELP)
def keys_enable(key_id: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None) -> None:
    """Accept a disabled key again."""
    _set_state("enable", key_id, server, admin_key)


@app.command("delete", epilog=exits.EXIT_CODES_HELP)
def keys_delete(key_id: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None) -> None:
    """Delete a key for good."""
    with client(server, admin_key) as http:
        call(http, "DELETE", f"/admin/keys/{key_id}")
    console.print(f"key {key_id} is deleted", soft_wrap=True)
