"""``pixelgate tasks list|show|cancel``: every task on a running server, through the admin views
(``GET /admin/tasks``, ``GET /admin/tasks/{id}``, ``POST /admin/tasks/{id}/cancel``; admin key)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pixelgate.cli import exits
from pixelgate.cli.client import DEFAULT_SERVER, AdminKeyOption, JsonOption, ServerOption, call, client
from pixelgate.cli.output import console, note, show, show_json, table
from pixelgate.cli.when import parse_when, shown_time

app = typer.Typer(
    help="Every task on the server (admin key): list them with filters, show one whole, cancel one.",
    no_args_is_help=True,
    epilog=exits.EXIT_CODES_HELP,
)
STATUS_COLOURS = {"succeeded": "green", "failed": "red", "cancelled": "yellow"}


@app.command("list", epilog=exits.EXIT_CODES_HELP)
def tasks_list(
    status: Annotated[
        list[str] | None,
        typer.Option(help="queued, running, succeeded, failed or cancelled (repeatable)"),
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Failed tasks only (--status failed)")] = False,
    model: Annotated[str | None, typer.Option(help="One model's")] = None,
    key: Annotated[str | None, typer.Option("--key", help="One key's (its id)")] = None,
    owner: Annotated[str | None, typer.Option(help="One owner's")] = None,
    dialect: Annotated[str | None, typer.Option(help="openai, gemini, interactions, chat, …")] = None,
    channel: Annotated[str | None, typer.Option(help="Made by this channel")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Accepted since: 30m, 12h, 7d, 2w back, a UTC date or time, Unix seconds"),
    ] = None,
    until: Annotated[str | None, typer.Option(help="Accepted before (as --since)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="Tasks on this page (newest first)")] = 20,
    after: Annotated[
        str | None, typer.Option(help="The page after this task id (the last one shown)")
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """Tasks newest first, a page at a time.

    With --json, the server's page (has_more, and last_id for --after)."""
    params = {
        "status": ",".join(status) if status else None,
        "failed": "true" if failed else None,
        "model": model,
        "key_id": key,
        "owner": owner,
        "dialect": dialect,
        "channel": channel,
        "since": parse_when(since, "--since") if since else None,
        "until": parse_when(until, "--until") if until else None,
        "limit": limit,
        "after": after,
    }
    with client(server, admin_key) as http:
        page = call(http, "GET", "/admin/tasks", params={k: v for k, v in params.items() if v is not None})
    if json_out:
        show_json(page)
        return
    columns = ("id", "status", "model", "dialect", "key", "owner", "channel", "created", "duration", "cost")
    shown = table("pixelgate tasks", *columns, "images", "error", right=("duration", "cost", "images"))
    for row in page["data"]:
        shown.add_row(*_cells(row))
    show(shown)
    if page["has_more"]:
        note(f"more: --after {page['last_id']}")


def _cells(row: dict[str, Any]) -> list[str]:
    error = row["error"]
    return [
        row["id"],
        f"[{STATUS_COLOURS.get(row['status'], 'default')}]{row['status']}[/]",
        row["model"],
        row["dialect"],
        escape(row["key_name"] or row["key_id"] or "-"),
        escape(row["owner"] or "-"),
        escape(row["channel"] or "-"),
        shown_time(row["created_at"]),
        f"{row['duration_seconds']:.2f} s" if row["duration_seconds"] is not None else "-",
        f"${row['cost_usd']:.4f}" if row["cost_usd"] is not None else "-",
        str(row["image_count"]),
        escape(f"{error['code']}: {error['message']}") if error else "",
    ]


@app.command("show", epilog=exits.EXIT_CODES_HELP)
def tasks_show(
    task_id: Annotated[str, typer.Argument(help="The task's id")],
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """One task whole: its row, the request (secrets redacted), tokens and signed image URLs."""
    with client(server, admin_key) as http:
        task = call(http, "GET", f"/admin/tasks/{task_id}")
    if json_out:
        show_json(task)
        return
    show(describe(task))


def describe(task: dict[str, Any]) -> Table:
    """A task as two columns: what, and its value."""
    shown = Table(title=f"task {task['id']}", show_header=False)
    shown.add_column("field", style="bold", no_wrap=True)
    shown.add_column("value", overflow="fold")
    request = task["request"]
    error = task["error"]
    tokens = task["tokens"]
    rows = [
        ("status", f"[{STATUS_COLOURS.get(task['status'], 'default')}]{task['status']}[/]"),
        ("model", task["model"]),
        ("dialect", task["dialect"]),
        ("key", f"{task['key_name'] or '-'} ({task['key_id'] or 'none'})"),
        ("owner", task["owner"] or "-"),
        ("channel", task["channel"] or "-"),
        ("created", shown_time(task["created_at"])),
        ("started", shown_time(task["started_at"])),
        ("completed", shown_time(task["completed_at"])),
        ("duration", f"{task['duration_seconds']:.3f} s" if task["duration_seconds"] is not None else "-"),
        ("cost", f"${task['cost_usd']:.4f} ({task['billing']})" if task["cost_usd"] is not None else "-"),
        ("attempts", str(task["attempts"])),
        ("prompt", request.get("prompt", "")),
        (
            "size",
            f"{request.get('width')}x{request.get('height')} ({request.get('aspect_ratio')}, "
            f"{request.get('image_size')})",
        ),
        ("n", str(request.get("n"))),
        ("references", "\n".join(ref["blob_key"] for ref in request.get("references", [])) or "-"),
        ("tokens", f"{tokens['input_tokens']} in, {tokens['output_tokens']} out" if tokens else "-"),
        ("error", f"{error['code']}: {error['message']}" if error else "-"),
        ("webhook", "\n".join(task["webhook"]["urls"]) if task["webhook"] else "-"),
        ("request id", task["request_id"] or "-"),
    ]
    for field, value in rows:
        shown.add_row(field, value if field in ("status",) else escape(value))
    for i, image in enumerate(task["images"]):
        where = image["url"] or ("expired" if task["result_expired"] else "-")
        shown.add_row(
            f"image {i}", escape(f"{image['width']}x{image['height']} {image['mime_type']}\n{where}")
        )
    extra = {k: v for k, v in request.items() if k not in _SHOWN_REQUEST and v not in (None, [], {}, False)}
    if extra:
        shown.add_row("request", escape(json.dumps(extra, ensure_ascii=False)))
    return shown


_SHOWN_REQUEST = {"prompt", "width", "height", "aspect_ratio", "image_size", "n", "references", "model"}


@app.command("cancel", epilog=exits.EXIT_CODES_HELP)
def tasks_cancel(
    task_id: Annotated[str, typer.Argument(help="The task's id")],
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """Cancel a queued or running task, whoever's it is (exit status 1 if it has ended already)."""
    with client(server, admin_key) as http:
        task = call(http, "POST", f"/admin/tasks/{task_id}/cancel")
    if json_out:
        show_json(task)
        return
    console.print(f"task {task['id']} is {task['status']}", soft_wrap=True)
