"""``pixelgate batch FILE -o DIR``, run as a user runs it (a child process) against real emulator servers:
images of the catalog's sizes, the cost at batch prices, failed rows with the server's reason, reruns that
send nothing already done, resuming after Ctrl-C, and input errors found before anything is sent."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from conftest import MakeServer, ServerProcess, free_port
from pixelgate.catalog import default_catalog

FLASH = "gemini-3.1-flash-image"
PRICE, BATCH_PRICE = 0.04, 0.02
BOX = str.maketrans("", "", "│╭╮╰╯─┃┏┓┗┛━┌┐└┘┡┩╇┳┻╋┬┴┼├┤")


def channel_file(folder: Path, *, latency: float, concurrency: int) -> Path:
    path = folder / "pixelgate.toml"
    path.write_text(
        f"""
[prices]
"{FLASH}" = {PRICE}

[batch_prices]
"{FLASH}" = {BATCH_PRICE}

[[channels]]
name = "emulator"
provider = "emulator"
concurrency = {concurrency}
options = {{ latency = {latency} }}
"""
    )
    return path


@pytest.fixture(scope="module")
def server(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    channels = channel_file(tmp_path_factory.mktemp("channels"), latency=0.02, concurrency=8)
    return make_server("sqlite", "--config", str(channels))


@pytest.fixture(scope="module")
def slow_server(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """Three quarters of a second an image, one at a time: a batch of eight runs 6 s, long enough to be
    interrupted on a loaded machine (at two at a time, a busy CI run once saw it end first)."""
    channels = channel_file(tmp_path_factory.mktemp("slow-channels"), latency=0.75, concurrency=1)
    return make_server("sqlite", "--config", str(channels))


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixelgate", "batch", *args]


def environment() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("PIXELGATE_SERVER", None)
    return env


def pixelgate_batch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(),
        stdin=subprocess.DEVNULL,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr as one line of words: rich wraps long lines and draws tables."""
    return " ".join((result.stdout + result.stderr).translate(BOX).split())


def batch_ids(server: ServerProcess) -> list[str]:
    listed = httpx.get(f"{server.url}/v1/batches", params={"limit": 100}, timeout=10).json()
    return [batch["id"] for batch in listed["data"]]


def results(folder: Path) -> dict[str, dict[str, object]]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    return {record["id"]: record for record in map(json.loads, lines)}


def expected_pixels(size: str, resolution: str) -> tuple[int, int]:
    spec = default_catalog().get(FLASH)
    if "x" in size:
        width, height = map(int, size.split("x"))
        ratio = spec.nearest_aspect_ratio(width, height)
        return spec.output_pixels(ratio, spec.nearest_image_size(ratio, width, height))
    return spec.output_pixels(size, resolution)


# Ratios at the --resolution default, and WxH sizes, which name their own resolution.
SIZES = ["1:1", "16:9", "9:16", "4:3", "3:2", "21:9", "1024x1024", "1536x1024", "2:3", "4:1"]


@dataclass
class CompletedRun:
    csv_path: Path
    folder: Path
    result: subprocess.CompletedProcess[str]
    batches_before: list[str]


@pytest.fixture(scope="module")
def completed_run(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> CompletedRun:
    """Twenty rows of mixed sizes, the ids left to the command (row numbers), run once to the end."""
    work = tmp_path_factory.mktemp("batch-csv")
    csv_path = work / "prompts.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "size", "seed"])
        for i in range(20):
            writer.writerow([f"a lighthouse at dusk, take {i}", SIZES[i % len(SIZES)], i])
    before = batch_ids(server)
    result = pixelgate_batch(
        str(csv_path), "-o", str(work / "out"), "--model", FLASH, "--resolution", "512",
        "--server", server.url, "--poll", "0.2",
    )  # fmt: skip
    return CompletedRun(csv_path, work / "out", result, before)


def test_a_csv_of_20_rows_gives_20_images_of_the_catalogs_sizes_at_batch_prices(
    completed_run: CompletedRun, server: ServerProcess
) -> None:
    result, folder = completed_run.result, completed_run.folder
    assert result.returncode == 0, said(result)
    images = sorted(folder.glob("*.png"))
    assert [path.name for path in images] == [f"{i:04d}.png" for i in range(1, 21)]
    for i, path in enumerate(images):
        with Image.open(path) as image:
            assert image.size == expected_pixels(SIZES[i % len(SIZES)], "512"), path.name
    recorded = results(folder)
    assert list(recorded) == [f"{i:04d}" for i in range(1, 21)]
    assert {record["status"] for record in recorded.values()} == {"done"}
    assert recorded["0001"]["files"] == ["0001.png"] and recorded["0001"]["error"] is None
    message = said(result)
    assert "rows 20" in message and "done 20" in message and "failed 0" in message
    assert f"cost (USD) {20 * BATCH_PRICE:.4f}" in message
    new = [b for b in batch_ids(server) if b not in completed_run.batches_before]
    assert len(new) == 1 and new[0] in message
    batch = httpx.get(f"{server.url}/v1/batches/{new[0]}", timeout=10).json()
    assert batch["request_counts"] == {"total": 20, "completed": 20, "failed": 0}
    assert batch["usage_usd"] == pytest.approx(20 * BATCH_PRICE)


def test_a_rerun_after_completion_sends_nothing(completed_run: CompletedRun, server: ServerProcess) -> None:
    assert completed_run.result.returncode == 0, said(completed_run.result)
    written = {path.name: path.stat().st_mtime_ns for path in completed_run.folder.glob("*.png")}
    before = batch_ids(server)
    result = pixelgate_batch(
        str(completed_run.csv_path), "-o", str(completed_run.folder), "--model", FLASH,
        "--resolution", "512", "--server", server.url,
    )  # fmt: skip
    assert result.returncode == 0, said(result)
    assert batch_ids(server) == before
    message = said(result)
    assert "nothing to send: all 20 rows are in" in message
    assert "done 20 (20 from earlier runs)" in message and "cost (USD) 0.0000" in message
    assert {path.name: path.stat().st_mtime_ns for path in completed_run.folder.glob("*.png")} == written


def test_an_edited_row_is_sent_again_alone(
    completed_run: CompletedRun, server: ServerProcess, tmp_path: Path
) -> None:
    assert completed_run.result.returncode == 0, said(completed_run.result)
    folder = tmp_path / "out"
    shutil.copytree(completed_run.folder, folder)
    edited = tmp_path / "prompts.csv"
    text = completed_run.csv_path.read_text()
    edited.write_text(text.replace('take 3"', 'take 3 in fog"'))
    assert edited.read_text() != text
    before = batch_ids(server)
    result = pixelgate_batch(
        str(edited), "-o", str(folder), "--model", FLASH, "--resolution", "512", "--server", server.url
    )
    assert result.returncode == 0, said(result)
    (new,) = [b for b in batch_ids(server) if b not in before]
    batch = httpx.get(f"{server.url}/v1/batches/{new}", timeout=10).json()
    assert batch["request_counts"]["total"] == 1
    assert results(folder)["0004"]["batch"] == new  # row 4 holds "take 3"
    assert "changed since the last run" in said(result)
    assert f"cost (USD) {BATCH_PRICE:.4f}" in said(result)


def test_a_jsonl_with_a_bad_row_reports_the_servers_reason(server: ServerProcess, tmp_path: Path) -> None:
    rows = [
        {"id": "fox", "prompt": "a red fox", "size": "1:1", "resolution": 512},
        {"id": "zero", "prompt": "nothing at all", "size": "0x0"},
        {"id": "pair", "prompt": "two cats", "size": "16:9", "n": 2, "output_format": "webp"},
    ]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    folder = tmp_path / "out"
    result = pixelgate_batch(str(path), "-o", str(folder), "--model", FLASH, "--server", server.url)
    assert result.returncode == 1, said(result)
    message = said(result)
    assert "done 2" in message and "failed 1" in message
    assert "zero" in message and "size '0x0' has a zero side" in message
    assert f"cost (USD) {3 * BATCH_PRICE:.4f}" in message  # the refused row is free; the pair is two images
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "fox.png", "pair-0.webp", "pair-1.webp", "results.jsonl",
    ]  # fmt: skip
    recorded = results(folder)
    assert recorded["zero"]["status"] == "failed" and recorded["zero"]["files"] == []
    assert "0x0" in str(recorded["zero"]["error"]) and str(recorded["zero"]["error"]).startswith("400: ")
    assert recorded["pair"]["files"] == ["pair-0.webp", "pair-1.webp"]
    with Image.open(folder / "pair-0.webp") as image:
        assert image.format == "WEBP" and image.size == expected_pixels("16:9", "1K")


def test_ctrl_c_leaves_the_batch_running_and_the_same_command_resumes_it(
    slow_server: ServerProcess, tmp_path: Path
) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"a kite, take {i}"}) + "\n" for i in range(8)))
    folder = tmp_path / "out"
    args = (str(path), "-o", str(folder), "--model", FLASH, "--size", "1:1", "--resolution", "512")
    args += ("--server", slow_server.url, "--poll", "0.2")
    before = batch_ids(slow_server)
    running = subprocess.Popen(
        command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(),
        stdin=subprocess.DEVNULL,
    )
    state = folder / ".pixelgate-batch.json"
    deadline = time.monotonic() + 20
    while not state.exists() and time.monotonic() < deadline and running.poll() is None:
        time.sleep(0.05)
    assert state.exists(), running.communicate()[0]
    time.sleep(0.4)  # a couple of polls
    running.send_signal(signal.SIGINT)
    output, _ = running.communicate(timeout=20)
    interrupted = " ".join(output.translate(BOX).split())
    assert running.returncode == 130, interrupted
    (batch_id,) = [b for b in batch_ids(slow_server) if b not in before]
    assert f"interrupted: batch {batch_id} keeps running" in interrupted
    assert "Run the same command again" in interrupted and "Traceback" not in interrupted
    batch = httpx.get(f"{slow_server.url}/v1/batches/{batch_id}", timeout=10).json()
    assert batch["status"] not in ("completed", "failed", "cancelled"), "the batch ended before Ctrl-C"

    resumed = pixelgate_batch(*args)
    assert resumed.returncode == 0, said(resumed)
    assert f"attaching to batch {batch_id}" in said(resumed)
    assert [b for b in batch_ids(slow_server) if b not in before] == [batch_id]
    assert sorted(p.name for p in folder.glob("*.png")) == [f"{i:04d}.png" for i in range(1, 9)]
    assert "done 8" in said(resumed) and f"cost (USD) {8 * BATCH_PRICE:.4f}" in said(resumed)


def test_bad_input_is_refused_before_the_server_is_asked(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: a request would fail differently
    folder = tmp_path / "out"
    table = tmp_path / "prompts.csv"
    table.write_text("prompt,colour,size\na fox,red,1:1\n")
    result = pixelgate_batch(str(table), "-o", str(folder), "--server", nowhere)
    assert result.returncode == 2, said(result)
    message = said(result)
    assert "line 1 (the header): unknown column 'colour': use id, prompt, model, size" in message
    assert "nothing was sent" in message and "cannot reach" not in message

    lines = tmp_path / "prompts.jsonl"
    lines.write_text(
        '{"prompt": "a fox"}\n{"prompt": "a cat", "colour": "red"}\n\n{"size": "1:1"}\n{"prompt": "x", "n": 0}\n'
    )
    result = pixelgate_batch(str(lines), "-o", str(folder), "--server", nowhere)
    assert result.returncode == 2, said(result)
    message = said(result)
    assert "has 3 problems" in message
    assert "line 2: unknown field 'colour': use id, prompt" in message
    assert "line 4: no prompt: every row needs one" in message
    assert "line 5: n 0 is not valid: use 1 or more" in message
    assert not folder.exists()


def test_an_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    lines = tmp_path / "prompts.jsonl"
    lines.write_text('{"prompt": "a fox"}\n')
    result = pixelgate_batch(str(lines), "-o", str(tmp_path / "out"), "--server", url)
    assert result.returncode == 5
    assert result.stdout == "", "errors go to stderr"
    message = said(result)
    assert f"cannot reach {url}" in message and "pixelgate serve --emulate" in message
    assert "Traceback" not in message


def test_a_batch_left_on_another_server_is_not_sent_again_here(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    elsewhere = "http://127.0.0.1:1"
    state = {"server": elsewhere, "batches": [{"id": "batch_abc", "rows": {"0001": "f"}, "collected": False}]}
    (folder / ".pixelgate-batch.json").write_text(json.dumps(state))
    lines = tmp_path / "prompts.jsonl"
    lines.write_text('{"prompt": "a fox"}\n')
    here = f"http://127.0.0.1:{free_port()}"
    result = pixelgate_batch(str(lines), "-o", str(folder), "--server", here)
    assert result.returncode == 2, said(result)
    assert f"batch batch_abc of {folder} was sent to {elsewhere}, not {here}" in said(result)
    assert f"--server {elsewhere}" in said(result)


def test_rows_read_from_csv_with_defaults_and_ids(tmp_path: Path) -> None:
    """In process: how cells become request bodies (no server needed)."""
    from pixelgate.batch_input import Defaults, read_rows

    table = tmp_path / "prompts.csv"
    table.write_text(
        "prompt,size,aspect_ratio,resolution,reference_images,id,n\n"
        "plain,,,,,,\n"
        "own ratio,,3:4,,,,\n"
        "pixels,1536x1024,,,,,\n"
        '"with refs, two",,,2K,https://a.example/1.png   https://b.example/2.png,refs,3\n'
    )
    rows = read_rows(table, Defaults(model="m", size="16:9", resolution="512"))
    assert [row.id for row in rows] == ["0001", "0002", "0003", "refs"]
    bodies = [
        {k: v for k, v in row.body.items() if k not in ("prompt", "model", "response_format")} for row in rows
    ]
    assert bodies == [
        {"size": "16:9", "resolution": "512"},
        {"aspect_ratio": "3:4", "resolution": "512"},  # --size would override the row's own ratio
        {"size": "1536x1024"},  # WxH names its resolution: --resolution is not added
        {
            "size": "16:9",
            "resolution": "2K",
            "reference_images": ["https://a.example/1.png", "https://b.example/2.png"],
            "n": 3,
        },
    ]
    assert all(row.body["model"] == "m" and row.body["response_format"] == "b64_json" for row in rows)
