"""The command line: thin, it parses arguments and calls the same code the server uses."""

from __future__ import annotations

import base64
import mimetypes
import time
from pathlib import Path
from typing import Annotated, Any

import httpx2
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pixelgate.catalog import default_catalog
from pixelgate.cli.output import console
from pixelgate.cli.output import refuse as _refuse
from pixelgate.cli.serve import serve

app = typer.Typer(help="pixelgate: a self-hosted image-generation gateway.", no_args_is_help=True)
DEFAULT_SERVER = "http://127.0.0.1:8000"
app.command()(serve)


@app.command()
def models() -> None:
    """List the catalog: every model with its sizes, aspect ratios and limits."""
    table = Table(title="pixelgate models")
    # Ids must stay whole even on an 80-column terminal: they are what people copy from this table.
    widest = max(len(spec.id) for spec in default_catalog())
    table.add_column("model", no_wrap=True, min_width=widest)
    table.add_column("upstream", no_wrap=True)
    for column in ("sizes", "default", "aspect ratios", "refs", "price/image"):
        table.add_column(column, overflow="fold")
    for spec in default_catalog():
        table.add_row(
            spec.id,
            spec.upstream_id if spec.is_alias else "",
            " ".join(spec.image_sizes),
            spec.default_image_size,
            " ".join(spec.aspect_ratios),
            str(spec.max_reference_images),
            f"${spec.price_per_image:.3f}" if spec.price_per_image is not None else "-",
        )
    console.print(table)


channels_app = typer.Typer(invoke_without_command=True)
app.add_typer(channels_app, name="channels")
ServerOption = Annotated[str, typer.Option(envvar="PIXELGATE_SERVER", help="The pixelgate server")]
AdminKeyOption = Annotated[
    str | None, typer.Option(envvar="PIXELGATE_ADMIN_KEY", help="The admin key (printed on the first start)")
]


@channels_app.callback()
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
) -> None:
    """Each channel's live state on the running server (ready, rate_limited, cooling_down, half_open,
    probing, disabled), its failures, load and errors. With --offline, --config or --emulate: the channel
    file's channels instead, without a server; --check also asks each upstream whether it answers."""
    if ctx.invoked_subcommand is not None:
        return
    if check or offline or config is not None or emulate:
        _offline_channels(config, emulate, check, timeout)
        return
    with _client(server, admin_key) as client:
        listed = _call(client, "GET", "/admin/channels")
    table = Table(title=f"pixelgate channels on {server} (process {listed['process']})")
    for column in ("name", "provider", "state", "in flight", "failures in a row", "requests", "ok"):
        table.add_column(column, overflow="fold")
    table.add_column("errors", overflow="fold")
    table.add_column("last error", overflow="fold")
    for channel in listed["data"]:
        table.add_row(
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
    console.print(table)


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
    with _client(server, admin_key) as client:
        channel = _call(client, "POST", f"/admin/channels/{name}/{action}", json=body)
    console.print(f"channel {channel['name']} is {_state_text(channel)}")


@channels_app.command("reset")
def channels_reset(
    name: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None
) -> None:
    """Close a channel's breaker: back in rotation now, on every process sharing the database."""
    _steer("reset", name, server, admin_key)


@channels_app.command("disable")
def channels_disable(
    name: str,
    reason: Annotated[str | None, typer.Option(help="Why, shown in its state")] = None,
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
) -> None:
    """Take a channel out of rotation (also across restarts) until it is enabled."""
    _steer("disable", name, server, admin_key, {"reason": reason} if reason else None)


@channels_app.command("enable")
def channels_enable(
    name: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None
) -> None:
    """Put a disabled channel back in rotation."""
    _steer("enable", name, server, admin_key)


def _offline_channels(config: Path | None, emulate: bool, check: bool, timeout: float) -> None:
    """The channel file's channels, as `serve` would make them, and with ``check`` whether each answers."""
    import asyncio

    from pixelgate.config import ConfigError, Settings, resolve_config
    from pixelgate.routing import build_router

    try:
        given: dict[str, Any] = {"config": config} if config is not None else {}
        gateway = resolve_config(Settings(emulate=emulate, **given), default_catalog())
        router = build_router(gateway)
    except ConfigError as exc:
        _refuse(exc)
    if not router.channels:
        console.print(
            f"No channels ({gateway.source}): set GEMINI_API_KEY or OPENAI_API_KEY, declare channels in "
            "pixelgate.toml, or use --emulate."
        )
        raise typer.Exit(1)
    answers = asyncio.run(_check_channels(router, timeout)) if check else {}
    table = Table(title=f"pixelgate channels ({gateway.source})")
    for column in ("name", "provider", "base URL", "models", "priority", "weight", "concurrency", "timeout"):
        table.add_column(column, overflow="fold")
    if check:
        table.add_column("answers", overflow="fold")
    catalog = default_catalog()
    for channel in router.channels:
        cfg = channel.config
        served = [
            spec.id if upstream == spec.id else f"{spec.id} → {upstream}"
            for spec in catalog
            if (upstream := channel.upstream_model(spec)) is not None
        ]
        row = [
            cfg.name,
            cfg.provider,
            channel.base_url or "-",
            "\n".join(served) if len(served) < len(catalog) else f"all {len(catalog)}",
            str(cfg.priority),
            f"{cfg.weight:g}",
            str(cfg.concurrency),
            f"{cfg.timeout:g} s",
        ]
        if check:
            row.append(answers[cfg.name])
        table.add_row(*row)
    console.print(table)
    if any(answer.startswith("[red]") for answer in answers.values()):
        raise typer.Exit(1)


async def _check_channels(router: Any, seconds: float) -> dict[str, str]:
    import asyncio

    from pixelgate.core.errors import PixelgateError

    async def one(channel: Any) -> str:
        started = time.monotonic()
        try:
            note = await asyncio.wait_for(channel.provider.check(), seconds)
        except TimeoutError:
            return f"[red]no answer within {seconds:g} s[/]"
        except PixelgateError as exc:
            return f"[red]{escape(channel.redact(exc).message)}[/]"
        return f"[green]yes[/] ({time.monotonic() - started:.2f} s, {escape(note)})"

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


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw")],
    model: Annotated[str, typer.Option(help="A model of `pixelgate models`")] = "gemini-3.1-flash-image",
    aspect: Annotated[str | None, typer.Option(help="Aspect ratio, e.g. 16:9")] = None,
    size: Annotated[str | None, typer.Option(help="Image size: 512, 1K, 2K or 4K")] = None,
    reference: Annotated[
        list[Path] | None,
        typer.Option("-r", "--reference", exists=True, dir_okay=False, help="A reference image (repeatable)"),
    ] = None,
    n: Annotated[int, typer.Option("-n", help="How many images")] = 1,
    seed: Annotated[int | None, typer.Option(help="Seed, for repeatable results")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder to save the images in")] = Path("."),
    server: Annotated[
        str, typer.Option(envvar="PIXELGATE_SERVER", help="The pixelgate server")
    ] = DEFAULT_SERVER,
    api_key: Annotated[str | None, typer.Option(envvar="PIXELGATE_API_KEY", help="API key")] = None,
) -> None:
    """Generate images through a running pixelgate server and save them."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, "n": n, "async": True}
    if aspect:
        body["aspect_ratio"] = aspect
    if size:
        body["resolution"] = size
    if seed is not None:
        body["seed"] = seed
    if reference:
        body["reference_images"] = [_data_uri(path) for path in reference]
    with _client(server, api_key, timeout=60) as client:
        task = _follow(client, _call(client, "POST", "/v1/images/generations", json=body))
        if task["status"] != "completed":
            error = task.get("error") or {}
            console.print(f"[red]task {task['id']} {task['status']}: {error.get('message', '')}[/]")
            raise typer.Exit(1)
        output.mkdir(parents=True, exist_ok=True)
        for i, item in enumerate(task.get("data", [])):
            response = client.get(item["url"])
            response.raise_for_status()
            extension = mimetypes.guess_extension(response.headers.get("content-type", "image/png")) or ".png"
            path = output / f"{task['id']}-{i}{extension}"
            path.write_bytes(response.content)
            console.print(f"saved {path} ({task.get('size')})")


def _check(response: httpx2.Response) -> dict[str, Any]:
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        console.print(
            f"[red]{response.status_code}: {response.url} did not answer with JSON "
            "(is it a pixelgate server?)[/]"
        )
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        console.print(f"[red]{response.status_code}: {body.get('error', {}).get('message', body)}[/]")
        raise typer.Exit(1)
    return body


def _follow(client: httpx2.Client, task: dict[str, Any]) -> dict[str, Any]:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(f"{task['id']} {task['status']}", total=100)
        delay = 0.2
        while task["status"] in ("queued", "processing"):
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            task = _check(client.get(f"/v1/tasks/{task['id']}"))
            progress.update(
                bar, completed=task.get("progress", 0), description=f"{task['id']} {task['status']}"
            )
    return task


keys_app = typer.Typer(
    help="API keys: made, listed, disabled and deleted with the admin key.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


def _client(server: str, api_key: str | None, *, timeout: float = 30) -> httpx2.Client:
    """A client of a running server, with the key every route but /healthz needs when auth is on."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx2.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout)


def _call(client: httpx2.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """A request whose answer must be JSON and a success: else its error is printed and the CLI exits."""
    try:
        return _check(client.request(method, path, **kwargs))
    except httpx2.TransportError as exc:
        server = str(client.base_url).rstrip("/")
        console.print(f"[red]cannot reach {server}: {exc}. Start one with `pixelgate serve --emulate`.[/]")
        raise typer.Exit(2) from None


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


@keys_app.command("create")
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
) -> None:
    """Make a key; its secret is printed this once. A limit left out is unlimited."""
    body: dict[str, Any] = {
        "name": name,
        "owner": owner,
        "models": model or None,
        "expires_in_days": expires_in_days,
        "limits": _limits(rpm, concurrent, images_per_day, budget) or None,
    }
    with _client(server, admin_key) as client:
        made = _call(client, "POST", "/admin/keys", json={k: v for k, v in body.items() if v is not None})
    console.print(
        f"made key [bold]{made['id']}[/] ({made['name']}, owner {made['owner']}); its secret, shown only now:"
    )
    print(made["key"])


@keys_app.command("update")
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
    with _client(server, admin_key) as client:
        key = _call(client, "PATCH", f"/admin/keys/{key_id}", json=body)
    console.print(
        f"key {key['id']} ({key['name']}, {key['state']}): models {_models_text(key)}, "
        f"expires {_expiry_text(key)}, limits {_limits_text(key)}"
    )


def _models_text(key: dict[str, Any]) -> str:
    return " ".join(key["models"]) if key["models"] else "all"


def _expiry_text(key: dict[str, Any]) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(key["expires_at"])) if key["expires_at"] else "never"


def _limits_text(key: dict[str, Any]) -> str:
    names = {field: flag for flag, field in LIMIT_FIELDS.items()}
    shown = [f"{names.get(field, field)} {value:g}" for field, value in key["limits"].items()]
    return ", ".join(shown) or "none"


@keys_app.command("list")
def keys_list(
    owner: Annotated[str | None, typer.Option(help="Only this owner's keys")] = None,
    server: ServerOption = DEFAULT_SERVER,
    admin_key: AdminKeyOption = None,
) -> None:
    """Every key (never a secret)."""
    with _client(server, admin_key) as client:
        listed = _call(client, "GET", "/admin/keys", params={"owner": owner} if owner else None)
    table = Table(title="pixelgate keys")
    for column in ("id", "name", "owner", "models", "limits", "state", "created", "expires"):
        table.add_column(column, overflow="fold")
    for key in listed["data"]:
        table.add_row(
            key["id"],
            key["name"],
            key["owner"],
            _models_text(key),
            _limits_text(key),
            key["state"],
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(key["created_at"])),
            _expiry_text(key),
        )
    console.print(table)


@keys_app.command("disable")
def keys_disable(
    key_id: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None
) -> None:
    """Refuse a key from now on (it stays listed)."""
    with _client(server, admin_key) as client:
        key = _call(client, "POST", f"/admin/keys/{key_id}/disable")
    console.print(f"key {key['id']} ({key['name']}) is {key['state']}")


@keys_app.command("enable")
def keys_enable(key_id: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None) -> None:
    """Accept a disabled key again."""
    with _client(server, admin_key) as client:
        key = _call(client, "POST", f"/admin/keys/{key_id}/enable")
    console.print(f"key {key['id']} ({key['name']}) is {key['state']}")


@keys_app.command("delete")
def keys_delete(key_id: str, server: ServerOption = DEFAULT_SERVER, admin_key: AdminKeyOption = None) -> None:
    """Delete a key for good."""
    with _client(server, admin_key) as client:
        _call(client, "DELETE", f"/admin/keys/{key_id}")
    console.print(f"key {key_id} is deleted")


@app.command()
def batch(
    file: Annotated[
        Path,
        typer.Argument(
            help="The prompts: JSONL (one object per line) or CSV (a header row), with prompt and options"
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the images and results.jsonl")],
    model: Annotated[str | None, typer.Option(help="Model of the rows that name none")] = None,
    size: Annotated[
        str | None, typer.Option(help="Size (WxH or an aspect ratio) of the rows that give neither")
    ] = None,
    resolution: Annotated[
        str | None, typer.Option(help="Resolution (512, 1K, 2K, 4K) of the rows that give none")
    ] = None,
    poll: Annotated[float, typer.Option(min=0.05, help="Seconds between looks at the batch")] = 1.0,
    server: ServerOption = DEFAULT_SERVER,
    api_key: Annotated[str | None, typer.Option(envvar="PIXELGATE_API_KEY", help="API key")] = None,
) -> None:
    """Run a file of prompts as one batch (batch prices) and save the images in a folder; the same command
    again resumes: it follows a batch still running and sends only the rows not yet done."""
    from pixelgate.batch_client import run_batch
    from pixelgate.batch_input import BatchError, Defaults

    try:
        status = run_batch(
            file,
            output,
            defaults=Defaults(model=model, size=size, resolution=resolution),
            server_url=server,
            api_key=api_key,
            poll_seconds=poll,
            console=console,
        )
    except BatchError as exc:
        console.print(f"[red]{escape(exc.message)}[/]")
        raise typer.Exit(exc.exit_code) from None
    raise typer.Exit(status)


@app.command()
def usage(
    group_by: Annotated[
        str, typer.Option(help="Any of key, owner, model, dialect, day, comma-separated")
    ] = "model,day",
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (UTC)")] = None,
    end: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD (UTC)")] = None,
    owner: Annotated[str | None, typer.Option(help="One owner's usage (with the admin key)")] = None,
    server: ServerOption = DEFAULT_SERVER,
    api_key: Annotated[
        str | None, typer.Option(envvar=["PIXELGATE_API_KEY", "PIXELGATE_ADMIN_KEY"], help="API key")
    ] = None,
) -> None:
    """What has been billed: succeeded tasks only, summed by key, owner, model, dialect or day."""
    params = {"group_by": group_by, "start": start, "end": end, "owner": owner}
    with _client(server, api_key) as client:
        report = _call(client, "GET", "/v1/usage", params={k: v for k, v in params.items() if v})
    groups = report["group_by"]
    table = Table(title="pixelgate usage (succeeded tasks)")
    for column in (*groups, "tasks", "images", "input tokens", "output tokens", "cost (USD)"):
        table.add_column(column, justify="left" if column in groups else "right")

    def row(bucket: dict[str, Any], label: list[str]) -> list[str]:
        return [
            *label,
            f"{bucket['tasks']:,}",
            f"{bucket['images']:,}",
            f"{bucket['input_tokens']:,}",
            f"{bucket['output_tokens']:,}",
            f"{bucket['cost_usd']:.4f}",
        ]

    for bucket in report["data"]:
        table.add_row(*row(bucket, [str(bucket[g]) if bucket[g] is not None else "-" for g in groups]))
    table.add_row(*row(report["total"], ["total", *[""] * (len(groups) - 1)] if groups else []), style="bold")
    console.print(table)


@app.command()
def backup(
    target: Annotated[Path, typer.Argument(help="A new folder for the copy")],
    data_dir: Annotated[
        Path, typer.Option(envvar="PIXELGATE_DATA_DIR", help="The data dir the server runs with")
    ] = Path("pixelgate-data"),
) -> None:
    """Copy a SQLite data dir while the server runs: the database as one snapshot, then the images.
    (With PostgreSQL, back up the database with pg_dump and copy the data dir's blobs/ folder.)"""
    from pixelgate.store.backup import backup_data_dir

    try:
        report = backup_data_dir(data_dir, target)
    except (FileNotFoundError, FileExistsError) as exc:
        _refuse(exc)
    console.print(
        f"backed up {report.tasks} tasks and {report.images} images ({report.bytes:,} bytes) to {target}"
    )
