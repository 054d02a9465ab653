"""``pixelgate generate``: images through a running server, saved where ``-o`` says (checked first).

The options are the API's words: ``--size`` is the API's ``size`` (WxH, e.g. 1024x1024, or an aspect ratio,
e.g. 16:9), ``--resolution`` its ``resolution`` (512, 1K, 2K, 4K), ``--aspect`` its ``aspect_ratio``.
``--size 1K``, which meant the resolution before, is refused with a pointer to ``--resolution``.
"""

from __future__ import annotations

import base64
import mimetypes
import re
import time
from pathlib import Path
from typing import Annotated, Any

import httpx2
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from pixelgate.cli import exits
from pixelgate.cli.client import DEFAULT_SERVER, ApiKeyOption, JsonOption, ServerOption, call, check, client
from pixelgate.cli.output import bad_usage, console, err_console, fail, note, show_json
from pixelgate.cli.saving import Destination, destination

RESOLUTION_LIKE = re.compile(r"^\d+(\.\d+)?[kK]?$")  # 512, 1K, 2k: a resolution, not a size


def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw")],
    model: Annotated[str, typer.Option(help="A model of `pixelgate models`")] = "gemini-3.1-flash-image",
    size: Annotated[
        str | None,
        typer.Option(
            help="The API's size: WxH (e.g. 1024x1024; the nearest the model makes) or a ratio (16:9)"
        ),
    ] = None,
    resolution: Annotated[str | None, typer.Option(help="Resolution: 512, 1K, 2K or 4K")] = None,
    aspect: Annotated[
        str | None, typer.Option("--aspect", "--aspect-ratio", help="Aspect ratio, e.g. 16:9")
    ] = None,
    reference: Annotated[
        list[Path] | None,
        typer.Option("-r", "--reference", exists=True, dir_okay=False, help="A reference image (repeatable)"),
    ] = None,
    n: Annotated[int, typer.Option("-n", min=1, help="How many images")] = 1,
    seed: Annotated[int | None, typer.Option(help="Seed, for repeatable results")] = None,
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="A folder that exists, or a file (.png, .jpg, .webp) for one image; checked before sending",
        ),
    ] = Path("."),
    name: Annotated[
        str | None,
        typer.Option(
            help="File name in the -o folder: NAME.png, or NAME-0.png, NAME-1.png … (default: the task id)"
        ),
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="png, jpeg or webp (default: -o's extension, else png)")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files that are there")] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
    json_out: JsonOption = False,
) -> None:
    """Generate images through a running pixelgate server and save them.

    Each file saved is a line on stdout (with --json: the task and the files). -o is checked before
    anything is sent."""
    if size is not None and RESOLUTION_LIKE.match(size.strip()):
        bad_usage(
            f"--size {size!r} is a resolution: use --resolution {size.strip().upper()} (--size takes WxH, "
            "e.g. 1024x1024, or an aspect ratio, e.g. 16:9)"
        )
    if size is not None and aspect is not None:
        bad_usage(f"give --size or --aspect, not both: --size {size} sets the aspect ratio too")
    where = destination(output, n=n, name=name, fmt=fmt, overwrite=overwrite)
    body: dict[str, Any] = {"model": model, "prompt": prompt, "n": n, "async": True, "response_format": "url"}
    given = {
        "size": size,
        "resolution": resolution,
        "aspect_ratio": aspect,
        "seed": seed,
        "output_format": where.output_format,
    }
    body.update({field: value for field, value in given.items() if value is not None})
    if reference:
        body["reference_images"] = [_data_uri(path) for path in reference]
    with client(server, api_key, timeout=60) as http:
        task = call(http, "POST", "/v1/images/generations", json=body)
        try:
            task = _follow(http, task)
        except KeyboardInterrupt:
            note(f"\ntask {task['id']} goes on on the server: `pixelgate tasks show {task['id']}` follows it")
            raise typer.Exit(exits.INTERRUPTED) from None
        if task["status"] != "completed":
            error = task.get("error") or {}
            fail(f"task {task['id']} {task['status']}: {error.get('message', '')}".rstrip(": "))
        files = _save(http, task, where)
    if json_out:
        show_json({"task": task, "files": [str(path) for path in files]})
        return
    for path in files:
        console.print(f"saved {escape(str(path))} ({task.get('size')})", soft_wrap=True, highlight=False)


def _save(http: httpx2.Client, task: dict[str, Any], where: Destination) -> list[Path]:
    images = []
    for item in task.get("data", []):
        try:
            response = http.get(item["url"])
        except httpx2.TransportError as exc:
            fail(f"task {task['id']} made its images, but fetching {item['url']} failed: {exc}")
        if response.status_code != 200:
            check(response)
        images.append((response.headers.get("content-type", "image/png").split(";")[0], response.content))
    paths = where.paths(task["id"], [mime for mime, _ in images])
    for path, (_, content) in zip(paths, images, strict=True):
        try:
            path.write_bytes(content)
        except OSError as exc:
            fail(
                f"task {task['id']} made its images, but saving {path} failed: {exc.strerror or exc}; "
                f"`pixelgate tasks show {task['id']}` has their URLs"
            )
    return paths


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _follow(http: httpx2.Client, task: dict[str, Any]) -> dict[str, Any]:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        bar = progress.add_task(f"{task['id']} {task['status']}", total=100)
        delay = 0.2
        while task["status"] in ("queued", "processing"):
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            task = call(http, "GET", f"/v1/tasks/{task['id']}")
            progress.update(
                bar, completed=task.get("progress", 0), description=f"{task['id']} {task['status']}"
            )
    return task
