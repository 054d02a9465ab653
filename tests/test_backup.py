"""``pixelgate backup``: a copy of a SQLite data dir taken while its server keeps working, which another
server then serves whole (tasks, images at the URLs the first server signed, keys)."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from PIL import Image

from conftest import MakeServer

FLASH = "gemini-3.1-flash-image"


def backup(data_dir: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pixelgate", "backup", str(target), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_backup_taken_under_load_is_served_whole(make_server: MakeServer, tmp_path: Path) -> None:
    live_dir = tmp_path / "live"
    live = make_server("sqlite", "--emulate", data_dir=live_dir)
    body = {
        "model": FLASH,
        "prompt": "a lighthouse",
        "size": "1:1",
        "resolution": "512",
        "response_format": "url",
    }
    with httpx.Client(base_url=live.url, timeout=60) as client:
        first = [client.post("/v1/images/generations", json=body).json() for _ in range(3)]
        # Keep the server writing while the backup runs.
        stop = threading.Event()

        def keep_writing() -> None:
            with httpx.Client(base_url=live.url, timeout=60) as writer:
                while not stop.is_set():
                    writer.post("/v1/images/generations", json=body)

        writers = [threading.Thread(target=keep_writing) for _ in range(2)]
        for thread in writers:
            thread.start()
        try:
            result = backup(live_dir, tmp_path / "copy")
        finally:
            stop.set()
            for thread in writers:
                thread.join()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backed up" in result.stdout

    restored = make_server("sqlite", "--emulate", data_dir=tmp_path / "copy")
    with httpx.Client(timeout=30) as client:
        for answer in first:
            url = answer["data"][0]["url"].replace(live.url, restored.url)
            image = client.get(url)  # signed by the live server: the secret travels with the database
            assert image.status_code == 200, image.text
            assert Image.open(io.BytesIO(image.content)).size == (512, 512)
    # Every image a task in the snapshot names is in the copy, including tasks finished during the backup.
    with sqlite3.connect(tmp_path / "copy" / "pixelgate.db") as db:
        rows = db.execute("SELECT result FROM tasks WHERE status = 'succeeded'").fetchall()
    keys = [image["blob_key"] for (result,) in rows for image in json.loads(result)["images"]]
    assert len(keys) >= 3
    for key in keys:
        assert (tmp_path / "copy" / "blobs" / key).is_file(), key


def test_backup_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    missing = backup(tmp_path / "nothing-here", tmp_path / "copy")
    assert missing.returncode == 2
    assert "holds no pixelgate.db: give the --data-dir a server runs with" in " ".join(missing.stderr.split())
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "pixelgate.db").write_bytes(b"")
    occupied = backup(tmp_path / "data", tmp_path / "full")
    assert occupied.returncode == 2
    assert "is not empty: back up into a new folder" in " ".join(occupied.stderr.split())
