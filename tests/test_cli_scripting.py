"""The CLI as a script uses it (issue 23, part 3): ``--version``; ``--json`` on every listing, parsed here;
tables that keep every column when stdout is a pipe; errors on stderr with stdout empty; the documented
exit codes (0 ok, 1 failed, 2 bad usage, 3 not found, 4 refused, 5 no server); ``generate`` in the API's
words (``--size`` WxH or a ratio, ``--resolution``) with ``-o`` checked before anything is sent; and
``pixelgate tasks`` and ``pixelgate usage --chart`` on the admin views. Each runs ``python -m pixelgate`` in
a child process, as a user would, against a real server with keys on.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

import pixelgate
from conftest import MakeServer, ServerProcess, free_port
from pixelgate.catalog import default_catalog
from pixelgate.catalog.prices import usd_text

ADMIN = "pga_" + secrets.token_urlsafe(32)
FLASH = "gemini-3.1-flash-image"
SOURCE = str(Path(pixelgate.__file__).resolve().parents[1])
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_NO_SERVER = 0, 1, 2, 3, 4, 5


def pixelgate_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """stdout and stderr are pipes (as in ``pixelgate … | cat``), and nothing says how wide a terminal is."""
    full_env = {**os.environ, "NO_COLOR": "1"}
    for name in ("COLUMNS", "LINES", "PIXELGATE_SERVER", "PIXELGATE_ADMIN_KEY", "PIXELGATE_API_KEY"):
        full_env.pop(name, None)
    # This checkout's code, also from another working directory (PYTHONPATH=src is relative).
    full_env["PYTHONPATH"] = os.pathsep.join([SOURCE, *filter(None, [os.environ.get("PYTHONPATH")])])
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pixelgate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def at_terminal(*args: str, columns: int) -> str:
    """What a user sees running the command at a terminal ``columns`` wide (a pseudo-terminal)."""
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    process = subprocess.Popen(
        [sys.executable, "-m", "pixelgate", *args],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
        env={**env, "PYTHONPATH": SOURCE, "TERM": "xterm-256color"},
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    assert process.wait(60) == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r", "")


def words(text: str) -> str:
    return " ".join(text.split())


def failed_cleanly(result: subprocess.CompletedProcess[str], code: int, *phrases: str) -> None:
    """An error: the exit status ``code``, nothing on stdout, its words on stderr, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "", result.stdout
    said = words(result.stderr.replace("│", " "))
    for phrase in phrases:
        assert phrase in said, (phrase, said)
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def gateway(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", env={"PIXELGATE_ADMIN_KEY": ADMIN})


@pytest.fixture(scope="module")
def user_key(gateway: ServerProcess) -> dict[str, Any]:
    made = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": "scripts", "owner": "ops"},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def as_admin(gateway: ServerProcess) -> dict[str, str]:
    return {"PIXELGATE_SERVER": gateway.url, "PIXELGATE_ADMIN_KEY": ADMIN}


def as_user(gateway: ServerProcess, key: dict[str, Any]) -> dict[str, str]:
    return {"PIXELGATE_SERVER": gateway.url, "PIXELGATE_API_KEY": key["key"]}


def task_count(gateway: ServerProcess) -> int:
    rows, after = 0, None
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as http:
        while True:
            page = http.get("/admin/tasks", params={"limit": 200, "after": after}).json()
            rows += len(page["data"])
            if not page["has_more"]:
                return rows
            after = page["last_id"]


# --- --version and --help -----------------------------------------------------------------------------------


def test_version() -> None:
    result = pixelgate_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"pixelgate {pixelgate.__version__}\n"
    assert result.stderr == ""


def test_help_documents_the_exit_codes() -> None:
    for args in (("--help",), ("generate", "--help"), ("tasks", "list", "--help")):
        result = pixelgate_cli(*args, env={"COLUMNS": "120"})
        assert result.returncode == 0, result.stderr
        said = words(result.stdout.replace("│", " "))
        for phrase in (
            "0 success",
            "1 the operation failed",
            "2 bad usage",
            "3 not found",
            "4 refused",
            "5 no",
        ):
            assert phrase in said, (args, phrase, said)


# --- tables through a pipe ----------------------------------------------------------------------------------


def test_models_through_a_pipe_keeps_every_column() -> None:
    """``pixelgate models | cat``: with no terminal, the table is as wide as its content."""
    result = subprocess.run(
        f"{sys.executable} -m pixelgate models | cat",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        env={**{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}, "PYTHONPATH": SOURCE},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "model" in line and "price per image" in line)
    for column in ("model", "upstream", "sizes", "default", "aspect ratios", "refs", "price per image"):
        assert column in header, (column, header)
    for spec in default_catalog():
        (row,) = [line for line in lines if line.startswith(f"│ {spec.id} ")]
        assert " ".join(spec.image_sizes) in row and " ".join(spec.aspect_ratios) in row, row
        for size in spec.image_sizes:
            price = spec.image_price(size)
            assert price is None or f"{size} ${usd_text(price)}" in row, row


def test_tasks_through_a_pipe_keep_every_column(
    gateway: ServerProcess, user_key: dict[str, Any], tmp_path: Path
) -> None:
    made = pixelgate_cli(
        "generate", "a heron", "--resolution", "512", "-o", str(tmp_path), env=as_user(gateway, user_key)
    )
    assert made.returncode == 0, made.stderr
    result = pixelgate_cli("tasks", "list", env=as_admin(gateway))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if " id " in line)
    for column in (
        "id",
        "status",
        "model",
        "key",
        "owner",
        "channel",
        "created",
        "duration",
        "cost",
        "images",
    ):
        assert f" {column} " in header, (column, header)
    row = next(line for line in lines if "task_img_" in line)
    assert "succeeded" in row and FLASH in row and "scripts" in row and "emulator" in row, row


def test_models_at_a_narrow_terminal_is_one_block_per_model() -> None:
    """80 columns cannot hold seven columns and whole ids: each model becomes a block of lines."""
    seen = at_terminal("models", columns=80)
    lines = seen.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    for spec in default_catalog():
        at = lines.index(next(line for line in lines if line.split()[-1:] == [spec.id]))
        block = " ".join(" ".join(line.split()) for line in lines[at : at + 8])
        assert f"sizes {' '.join(spec.image_sizes)}" in block, block
        assert f"aspect ratios {' '.join(spec.aspect_ratios)}" in block, block
        assert f"refs {spec.max_reference_images}" in block, block


def test_models_at_a_wide_terminal_is_a_table() -> None:
    lines = at_terminal("models", columns=200).splitlines()
    header = next(line for line in lines if "price per image" in line)
    assert all(column in header for column in ("model", "upstream", "sizes", "default", "aspect ratios"))
    assert all(len(line) <= 200 for line in lines)


# --- --json -------------------------------------------------------------------------------------------------


def test_models_json() -> None:
    result = pixelgate_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [m["id"] for m in listed["data"]] == [spec.id for spec in default_catalog()]
    flash = next(m for m in listed["data"] if m["id"] == FLASH)
    assert flash["sizes"] == ["512", "1K", "2K", "4K"] and "16:9" in flash["aspect_ratios"]
    assert {"upstream", "default_size", "max_reference_images", "price_per_image"} <= set(flash)
    # Google's $60 per 1M image tokens x the 1120 tokens of a 1K image (catalog/models.toml)
    assert flash["price_by_size"]["1K"] == 0.0672


def test_every_listing_has_json(gateway: ServerProcess, user_key: dict[str, Any], tmp_path: Path) -> None:
    made = pixelgate_cli(
        "generate",
        "a crane",
        "--resolution",
        "512",
        "-o",
        str(tmp_path),
        "--json",
        env=as_user(gateway, user_key),
    )
    assert made.returncode == 0, made.stderr
    generated = json.loads(made.stdout)
    assert generated["task"]["status"] == "completed" and len(generated["files"]) == 1
    assert Path(generated["files"][0]).exists()
    task_id = generated["task"]["id"]

    def listing(*args: str) -> Any:
        result = pixelgate_cli(*args, "--json", env=as_admin(gateway))
        assert result.returncode == 0, (args, result.stderr)
        assert result.stderr == "", (args, result.stderr)
        return json.loads(result.stdout)

    assert any(key["id"] == user_key["id"] for key in listing("keys", "list")["data"])
    assert [c["name"] for c in listing("channels")["data"]] == ["emulator"]
    tasks = listing("tasks", "list", "--limit", "5")
    assert tasks["data"][0]["id"] == task_id and tasks["data"][0]["key_name"] == "scripts"
    shown = listing("tasks", "show", task_id)
    assert shown["id"] == task_id and shown["images"][0]["url"].startswith(gateway.url)
    usage = listing("usage", "--group-by", "model")
    assert any(row["model"] == FLASH for row in usage["data"]) and usage["total"]["images"] >= 1
    series = listing("usage", "--since", "7d", "--chart")
    assert series["object"] == "usage.series" and series["total"]["images"] == usage["total"]["images"]
    made_key = listing("keys", "create", "json-made", "--owner", "ops")
    assert made_key["key"].startswith(f"pgk_{made_key['id']}_")
    offline = pixelgate_cli("channels", "--offline", "--emulate", "--json")
    assert offline.returncode == 0, offline.stderr
    assert [c["name"] for c in json.loads(offline.stdout)["data"]] == ["emulator"]


# --- errors on stderr, with exit codes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "list"),
        ("channels",),
        ("usage",),
        ("usage", "--chart"),
        ("tasks", "list"),
        ("tasks", "show", "task_img_x"),
        ("tasks", "cancel", "task_img_x"),
        ("generate", "a fox", "-o", "."),
    ],
)
def test_a_server_that_is_down(args: tuple[str, ...], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = pixelgate_cli(*args, "--server", url, cwd=tmp_path)
    failed_cleanly(result, EXIT_NO_SERVER, f"cannot reach {url}", "pixelgate serve")


def test_an_unknown_task(gateway: ServerProcess) -> None:
    for args in (("tasks", "show", "task_img_nope"), ("tasks", "cancel", "task_img_nope")):
        failed_cleanly(pixelgate_cli(*args, env=as_admin(gateway)), EXIT_NOT_FOUND, "404", "task_img_nope")


def test_a_refused_key(gateway: ServerProcess, user_key: dict[str, Any]) -> None:
    wrong = {"PIXELGATE_SERVER": gateway.url, "PIXELGATE_ADMIN_KEY": "pga_" + secrets.token_urlsafe(32)}
    failed_cleanly(pixelgate_cli("tasks", "list", env=wrong), EXIT_REFUSED, "401", "not valid")
    missing = pixelgate_cli("keys", "list", "--server", gateway.url)
    failed_cleanly(missing, EXIT_REFUSED, "401", "no API key")
    not_admin = {"PIXELGATE_SERVER": gateway.url, "PIXELGATE_ADMIN_KEY": user_key["key"]}
    failed_cleanly(pixelgate_cli("tasks", "list", env=not_admin), EXIT_REFUSED, "403", "not the admin key")


def test_bad_input(gateway: ServerProcess, user_key: dict[str, Any], tmp_path: Path) -> None:
    env = as_user(gateway, user_key)
    refused = pixelgate_cli("generate", "x", "--resolution", "8K", "-o", str(tmp_path), env=env)
    failed_cleanly(refused, EXIT_USAGE, "400: resolution '8K' is not valid for gemini-3.1-flash-image")
    failed_cleanly(
        pixelgate_cli("tasks", "list", "--status", "done", env=as_admin(gateway)),
        EXIT_USAGE,
        "'done' is not a task status",
    )
    failed_cleanly(
        pixelgate_cli("tasks", "list", "--since", "last week", env=as_admin(gateway)),
        EXIT_USAGE,
        "--since 'last week' is not a time: use",
    )
    failed_cleanly(pixelgate_cli("usage", "--chart", "--group-by", "model,day"), EXIT_USAGE, "--group-by")


def test_a_failed_task(make_server: MakeServer, tmp_path: Path) -> None:
    failing = make_server("sqlite", "--emulate", "--emulate-faults", "503:1")
    result = pixelgate_cli("generate", "x", "-o", str(tmp_path), "--server", failing.url)
    failed_cleanly(result, EXIT_FAILED, "failed: the emulated upstream answered HTTP 503")


def interrupted(args: tuple[str, ...], after: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command, sent SIGINT (Ctrl-C) ``after`` seconds."""
    full_env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": SOURCE, **env}
    process = subprocess.Popen(
        [sys.executable, "-m", "pixelgate", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_ctrl_c_is_130(make_server: MakeServer, tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        listing = interrupted(("tasks", "list", "--server", url), 2.0, {})
    assert listing.returncode == 130 and "Traceback" not in listing.stderr, listing.stderr
    slow = make_server("sqlite", "--emulate", "--emulate-latency", "8")
    waiting = interrupted(("generate", "a slow fox", "-o", str(tmp_path), "--server", slow.url), 3.0, {})
    assert waiting.returncode == 130, waiting.stderr
    assert "goes on on the server" in words(waiting.stderr) and waiting.stdout == ""


# --- generate in the API's words ----------------------------------------------------------------------------


def test_generate_size_is_the_apis_size(
    gateway: ServerProcess, user_key: dict[str, Any], tmp_path: Path
) -> None:
    env = as_user(gateway, user_key)
    square = pixelgate_cli(
        "generate", "a fox", "--size", "1024x1024", "-o", str(tmp_path / "sq.png"), env=env
    )
    assert square.returncode == 0, square.stderr
    wide = pixelgate_cli(
        "generate",
        "a fox",
        "--size",
        "16:9",
        "--resolution",
        "512",
        "-o",
        str(tmp_path / "wide.png"),
        env=env,
    )
    assert wide.returncode == 0, wide.stderr
    with Image.open(tmp_path / "sq.png") as image:
        assert image.size == (1024, 1024)
    with Image.open(tmp_path / "wide.png") as image:
        assert image.size == (688, 384)


def test_generate_size_with_a_resolution_points_to_resolution(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # refused before anything is sent
    result = pixelgate_cli("generate", "a fox", "--size", "1K", "-o", str(tmp_path), "--server", nowhere)
    failed_cleanly(result, EXIT_USAGE, "--size '1K' is a resolution: use --resolution 1K")


def test_generate_to_a_file(gateway: ServerProcess, user_key: dict[str, Any], tmp_path: Path) -> None:
    env = as_user(gateway, user_key)
    result = pixelgate_cli(
        "generate", "a fox", "--resolution", "512", "-o", str(tmp_path / "fox.jpg"), env=env
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["fox.jpg"]
    with Image.open(tmp_path / "fox.jpg") as image:
        assert image.format == "JPEG" and image.size == (512, 512)
    assert str(tmp_path / "fox.jpg") in result.stdout
    again = pixelgate_cli("generate", "a fox", "-o", str(tmp_path / "fox.jpg"), env=env)
    failed_cleanly(again, EXIT_USAGE, "fox.jpg exists", "--overwrite")
    replaced = pixelgate_cli(
        "generate", "a fox", "--resolution", "512", "-o", str(tmp_path / "fox.jpg"), "--overwrite", env=env
    )
    assert replaced.returncode == 0, replaced.stderr


def test_generate_names_files_from_name(
    gateway: ServerProcess, user_key: dict[str, Any], tmp_path: Path
) -> None:
    env = as_user(gateway, user_key)
    result = pixelgate_cli(
        "generate", "a fox", "--resolution", "512", "-n", "2", "--name", "fox", "-o", str(tmp_path), env=env
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fox-0.png", "fox-1.png"]
    one = pixelgate_cli(
        "generate", "a fox", "--resolution", "512", "--name", "solo", "-o", str(tmp_path), env=env
    )
    assert one.returncode == 0, one.stderr
    assert (tmp_path / "solo.png").exists()


@pytest.mark.parametrize(
    ("output", "extra", "phrases"),
    [
        ("missing/deeper", (), ("-o", "missing/deeper", "does not exist")),
        ("missing/fox.png", (), ("missing", "does not exist")),
        ("one.png", ("-n", "3"), ("one.png names one file, but -n 3 makes 3 images",)),
        ("one.png", ("--name", "fox"), ("--name", "not both")),
        (".", ("--name", "a/b"), ("--name 'a/b' is not a file name",)),
        ("one.gif", (), ("one.gif", ".png", ".jpg", ".webp")),
        ("one.png", ("--format", "webp"), ("--format webp", "one.png")),
    ],
)
def test_generate_output_is_checked_before_anything_is_sent(
    gateway: ServerProcess,
    user_key: dict[str, Any],
    tmp_path: Path,
    output: str,
    extra: tuple[str, ...],
    phrases: tuple[str, ...],
) -> None:
    before = task_count(gateway)
    result = pixelgate_cli(
        "generate", "a fox", "-o", output, *extra, env=as_user(gateway, user_key), cwd=tmp_path
    )
    failed_cleanly(result, EXIT_USAGE, *phrases)
    assert task_count(gateway) == before, "no task was created"
    assert list(tmp_path.iterdir()) == []


def test_generate_into_a_folder_it_cannot_write(
    gateway: ServerProcess, user_key: dict[str, Any], tmp_path: Path
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    before = task_count(gateway)
    result = pixelgate_cli("generate", "a fox", "-o", str(locked), env=as_user(gateway, user_key))
    failed_cleanly(result, EXIT_USAGE, "is not writable")
    assert task_count(gateway) == before


def test_a_folder_it_cannot_write_is_refused_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process, so that it holds for root too (root may write in any folder)."""
    import typer

    from pixelgate.cli import saving

    monkeypatch.setattr(saving.os, "access", lambda path, mode: False)
    for output in (tmp_path, tmp_path / "fox.png"):
        with pytest.raises(typer.Exit) as stopped:
            saving.destination(output, n=1, name=None, fmt=None, overwrite=False)
        assert stopped.value.exit_code == EXIT_USAGE
        assert "is not writable: give a folder you may write in" in words(capsys.readouterr().err)


# --- tasks and usage on the admin views ---------------------------------------------------------------------


def test_tasks_show_and_cancel(gateway: ServerProcess, user_key: dict[str, Any], tmp_path: Path) -> None:
    made = pixelgate_cli(
        "generate",
        "an ibis",
        "--resolution",
        "512",
        "-o",
        str(tmp_path),
        "--json",
        env=as_user(gateway, user_key),
    )
    assert made.returncode == 0, made.stderr
    task_id = json.loads(made.stdout)["task"]["id"]
    shown = pixelgate_cli("tasks", "show", task_id, env={**as_admin(gateway), "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    said = words(shown.stdout)
    for phrase in (task_id, "succeeded", "an ibis", "scripts", "emulator", "/blobs/"):
        assert phrase in said, (phrase, said)
    ended = pixelgate_cli("tasks", "cancel", task_id, env=as_admin(gateway))
    failed_cleanly(ended, EXIT_FAILED, "409", "already succeeded")
    failed = pixelgate_cli("tasks", "list", "--failed", "--json", env=as_admin(gateway))
    assert failed.returncode == 0 and json.loads(failed.stdout)["data"] == []


def test_usage_chart(gateway: ServerProcess, user_key: dict[str, Any], tmp_path: Path) -> None:
    made = pixelgate_cli(
        "generate", "a stork", "--resolution", "512", "-o", str(tmp_path), env=as_user(gateway, user_key)
    )
    assert made.returncode == 0, made.stderr
    chart = pixelgate_cli("usage", "--since", "7d", "--chart", "--metric", "images", env=as_admin(gateway))
    assert chart.returncode == 0, chart.stderr
    assert "█" in chart.stdout, chart.stdout
    series = json.loads(
        pixelgate_cli("usage", "--since", "7d", "--chart", "--json", env=as_admin(gateway)).stdout
    )
    assert str(series["total"]["images"]) in words(chart.stdout)
    hourly = pixelgate_cli("usage", "--since", "6h", "--chart", "--group-by", "model", env=as_admin(gateway))
    assert hourly.returncode == 0, hourly.stderr
    assert FLASH in hourly.stdout and "hour" in hourly.stdout
