"""Retention, on SQLite and PostgreSQL: once a result's time is up its images, references and conversation
copies are deleted from the blob store and the task says its result expired; uploaded files keep their own
expiry; and of several processes sharing a database only the one holding the janitor's lease deletes."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai

from conftest import MakeServer, S3Service, ServerProcess, db_rows, png_bytes
from pixelgate.store.leases import Leases
from pixelgate.tasks.queue import TaskQueue

FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"
RETENTION = ("--emulate", "--result-ttl", "1")
QUICK_JANITOR = {"PIXELGATE_JANITOR_INTERVAL_SECONDS": "0.2"}


async def test_a_lease_has_one_holder_until_it_runs_out_or_is_released(queue: TaskQueue) -> None:
    leases = Leases(queue.db)
    assert await leases.hold("janitor", "a", 0.3)
    assert not await leases.hold("janitor", "b", 0.3), "held by a"
    assert await leases.hold("janitor", "a", 0.3), "a renews its own"
    assert await leases.holder("janitor") == "a"
    await asyncio.sleep(0.35)
    assert await leases.hold("janitor", "b", 30), "a's ran out: b takes it"
    assert not await leases.hold("janitor", "a", 30)
    await leases.release("janitor", "a")  # not a's to release
    assert await leases.holder("janitor") == "b"
    await leases.release("janitor", "b")
    assert await leases.holder("janitor") is None
    assert await leases.hold("other", "a", 30), "leases are by name"


def stored_folders(server: ServerProcess) -> set[str]:
    blobs = server.data_dir / "blobs"
    return {p.name for p in blobs.iterdir() if p.is_dir()} if blobs.exists() else set()


def wait_until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.1)


def make_every_kind_of_task(server: ServerProcess) -> list[str]:
    """A generation, an edit with a reference, a two-turn conversation (the second turn holds copies of
    the first's images) and an async task with a reference URL; their ids."""
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    client.images.generate(model=FLASH, prompt="a kite", extra_body={"resolution": "512"})
    client.images.edit(model=FLASH, image=("in.png", png_bytes(64, 64), "image/png"), prompt="blue")
    with httpx.Client(base_url=server.url, timeout=60) as http:
        first = http.post("/v1beta/interactions", json={"model": PRO, "input": "a house"}).json()
        second = http.post(
            "/v1beta/interactions",
            json={"model": PRO, "input": "at night", "previous_interaction_id": first["id"]},
        ).json()
        assert second["status"] == "completed", second
        referenced = {"model": FLASH, "prompt": "this", "async": True, "reference_images": [_data_uri()]}
        assert http.post("/v1/images/generations", json=referenced).status_code == 200
    return [row[0] for row in db_rows(server, "SELECT id FROM tasks")]


def _data_uri() -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(32, 32)).decode()


def test_expired_results_leave_the_store_and_say_so(
    backend: str, make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server(backend, *RETENTION, data_dir=tmp_path / "one", env=QUICK_JANITOR)
    task_ids = make_every_kind_of_task(server)
    upload = httpx.post(
        f"{server.url}/v1/files",
        files={"file": ("lines.jsonl", b'{"custom_id": "a"}\n', "application/jsonl")},
        data={"purpose": "batch"},
        timeout=30,
    )
    assert upload.status_code == 200, upload.text
    assert set(task_ids) & stored_folders(server), "the tasks stored their images (some may be gone already)"

    def purged() -> int:
        return int(db_rows(server, "SELECT count(*) FROM tasks WHERE blobs_purged_at IS NOT NULL")[0][0])

    # Both awaited: the janitor deletes a task's images and then marks the task, and the async task may
    # store its images only after the others' are gone (a loaded run once saw 4 of 5 marked).
    wait_until(
        lambda: not set(task_ids) & stored_folders(server) and purged() == len(task_ids),
        20,
        "every task's images are deleted and the task marked",
    )
    assert upload.json()["id"] in stored_folders(server), "an uploaded file keeps its own expiry"
    assert purged() == len(task_ids)
    done = [
        t
        for t in task_ids
        if db_rows(server, f"SELECT status FROM tasks WHERE id = '{t}'")[0][0] == "succeeded"
    ]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for task_id in done:
            body = http.get(f"/v1/tasks/{task_id}").json()
            assert body["error"]["code"] == "result_expired", body
    server.stop()


def test_one_process_of_several_deletes(make_server: MakeServer, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    info = ("--log-level", "info")
    servers = [make_server("sqlite", *RETENTION, *info, data_dir=shared, env=QUICK_JANITOR) for _ in range(2)]
    task_ids = make_every_kind_of_task(servers[0])
    wait_until(lambda: not set(task_ids) & stored_folders(servers[0]), 20, "every task's images are deleted")
    sweepers = [s for s in servers if "retention.purged" in s.log()]
    assert len(sweepers) == 1, "only the lease's holder deletes"
    (holder,) = db_rows(servers[0], "SELECT holder FROM leases WHERE name = 'janitor'")[0]
    for server in servers:
        server.stop()
    assert not db_rows(servers[0], "SELECT holder FROM leases WHERE name = 'janitor'"), (
        f"{holder} gave the lease up when it stopped"
    )


def test_a_bucket_returns_to_empty_after_the_ttl(
    make_server: MakeServer, s3: S3Service, tmp_path: Path
) -> None:
    prefix = f"retention-{uuid.uuid4().hex[:8]}"
    server = make_server(
        "sqlite", *RETENTION, *s3.store_args(prefix), data_dir=tmp_path / "s3", env=QUICK_JANITOR
    )
    task_ids = make_every_kind_of_task(server)
    stored = {key.split("/")[1] for key in s3.keys(f"{prefix}/")}
    # (Some may be gone already: their second is up while the others are made.)
    assert set(task_ids) & stored, "the tasks stored their images in the bucket"
    wait_until(lambda: not s3.keys(f"{prefix}/task_"), 20, "the bucket holds no task's objects")
    assert not stored_folders(server), "and nothing went to the data dir"
    server.stop()
