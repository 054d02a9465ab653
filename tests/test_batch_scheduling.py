"""Batch lines run in the capacity interactive work leaves: a channel serves interactive waiters first and
keeps a quarter of its slots from batch lines; a batch of 1,000 lets interactive requests through while
it runs; a batch survives its server being killed, and each line is made and billed once."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time
from typing import Any

import httpx
import openai
import pytest

from conftest import MakeServer, ServerProcess, db_rows
from pixelgate.core.slots import PrioritySlots, SlotsClosed
from pixelgate.tasks.batches import batch_window

FLASH = "gemini-3.1-flash-image"


# --- the channel's slots -------------------------------------------------------------------------------------


def test_interactive_waiters_go_first_and_batch_lines_leave_a_quarter_free() -> None:
    async def scenario() -> None:
        slots = PrioritySlots(8)
        held: list[str] = []

        async def take(name: str, batch: bool) -> None:
            await slots.acquire(batch=batch)
            held.append(name)

        batch_lines = [asyncio.create_task(take(f"b{i}", True)) for i in range(10)]
        await asyncio.sleep(0)
        assert slots.busy == 6 and held == [f"b{i}" for i in range(6)], "batch lines stop at 8 - 8 // 4"
        interactive = [asyncio.create_task(take(f"i{i}", False)) for i in range(3)]
        await asyncio.sleep(0)
        assert held[6:] == ["i0", "i1"] and slots.busy == 8, "the two reserved slots go to interactive work"
        slots.release()  # a batch line ends: the interactive request waiting gets its slot, not a batch line
        await asyncio.sleep(0)
        assert held[8:] == ["i2"]
        for _ in range(3):  # interactive work ends: batch lines may take slots again, up to their share
            slots.release()
        await asyncio.sleep(0)
        assert held[9:] == ["b6"] and slots.busy == 6
        for task in [*batch_lines, *interactive]:
            task.cancel()
        await asyncio.gather(*batch_lines, *interactive, return_exceptions=True)

    asyncio.run(scenario())


def test_a_waiter_cancelled_gives_its_place_back() -> None:
    async def scenario() -> None:
        slots = PrioritySlots(4)  # reserve 1: batch lines hold at most 3
        for _ in range(4):
            await slots.acquire(batch=False)
        waiting_interactive = asyncio.create_task(slots.acquire(batch=False))
        waiting_batch = asyncio.create_task(slots.acquire(batch=True))
        await asyncio.sleep(0)
        waiting_interactive.cancel()
        await asyncio.gather(waiting_interactive, return_exceptions=True)
        slots.release()
        slots.release()
        await asyncio.sleep(0)
        assert waiting_batch.done() and slots.busy == 3

    asyncio.run(scenario())


def test_a_small_channel_keeps_no_reserve_so_batches_still_run() -> None:
    async def scenario() -> None:
        slots = PrioritySlots(2)
        await slots.acquire(batch=True)
        await slots.acquire(batch=True)
        assert slots.busy == 2

    asyncio.run(scenario())


def test_closed_slots_start_nothing_more_and_send_their_waiters_back() -> None:
    """As the process stops, a slot freed by work that ends goes to nobody: each waiter, and whoever asks
    later, is cancelled with the reason instead of starting upstream work the stop would cut short."""

    async def scenario() -> None:
        slots = PrioritySlots(2)
        await slots.acquire(batch=False)
        await slots.acquire(batch=False)
        waiters = [asyncio.create_task(slots.acquire(batch=batch)) for batch in (False, True, False)]
        await asyncio.sleep(0)
        slots.close("stopping")
        for waiter in waiters:
            with pytest.raises(SlotsClosed, match="stopping"):
                await waiter
        slots.release()
        assert slots.busy == 1, "the freed slot was handed to nobody"
        with pytest.raises(SlotsClosed):
            await slots.acquire(batch=False)
        slots.release()
        assert slots.busy == 0

    asyncio.run(scenario())


# --- a live server -------------------------------------------------------------------------------------------


def channel_file(path: Any, latency: float, concurrency: int) -> str:
    path.write_text(
        f"""
[[channels]]
name = "emulator"
provider = "emulator"
concurrency = {concurrency}
options = {{ latency = {latency} }}
"""
    )
    return str(path)


def create_batch(server: ServerProcess, count: int, prefix: str) -> str:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    lines = [
        {
            "custom_id": f"{prefix}-{i}",
            "method": "POST",
            "url": "/v1/images/generations",
            "body": {"model": FLASH, "prompt": f"tile {i}", "size": "1:1", "resolution": "512"},
        }
        for i in range(count)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file_id = client.files.create(file=("lines.jsonl", io.BytesIO(data)), purpose="batch").id
    return client.batches.create(
        input_file_id=file_id, endpoint="/v1/images/generations", completion_window="24h"
    ).id


def batch_status(server: ServerProcess, batch_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/v1/batches/{batch_id}", timeout=30).json()
    return body


def wait_for_batch(server: ServerProcess, batch_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = batch_status(server, batch_id)
        if batch["status"] in ("completed", "failed", "cancelled", "expired"):
            return batch
        time.sleep(0.5)
    raise AssertionError(f"batch {batch_id} is still {batch['status']} after {timeout} s: {batch}")


def test_interactive_requests_are_served_while_a_batch_of_1000_runs(
    make_server: MakeServer, tmp_path: Any
) -> None:
    server = make_server("sqlite", "--config", channel_file(tmp_path / "c.toml", 0.05, 8))
    batch_id = create_batch(server, 1000, "big")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    pending_after_each = []
    for i in range(10):
        client.images.generate(
            model=FLASH, prompt=f"interactive {i}", size="1024x1024", response_format="url"
        )
        counts = batch_status(server, batch_id)["request_counts"]
        pending_after_each.append(counts["total"] - counts["completed"] - counts["failed"])
    # Each interactive request was answered while the batch still had hundreds of lines to run: it waited
    # for neither the batch nor a batch line's slot (2 of the channel's 8 are kept from batch lines).
    assert min(pending_after_each) > 300, pending_after_each
    # The batch holds a window of its lines as tasks, never all of them at once. (How many are open at this
    # instant is a race: the runner makes lines about as fast as the channel ends them, so there may be
    # none between two of its passes.)
    (open_lines,), (made,) = db_rows(
        server,
        f"SELECT count(*) FROM tasks WHERE batch_id = '{batch_id}' AND status IN ('queued', 'running') "
        f"UNION ALL SELECT count(*) FROM tasks WHERE batch_id = '{batch_id}'",
    )
    assert open_lines <= batch_window(256 - 256 // 4) and 0 < made < 1000, (open_lines, made)
    assert batch_status(server, batch_id)["status"] == "in_progress"
    # (Running it to the end is the restart test's business; here it is stopped, and ends cancelled.)
    httpx.post(f"{server.url}/v1/batches/{batch_id}/cancel", timeout=30).raise_for_status()
    done = wait_for_batch(server, batch_id, 60)
    counts = done["request_counts"]
    assert done["status"] == "cancelled" and counts["completed"] + counts["failed"] == 1000, done


def test_a_batch_survives_its_server_being_killed(
    backend: str, make_server: MakeServer, tmp_path: Any
) -> None:
    args = ("--config", channel_file(tmp_path / "c.toml", 0.2, 4), "--lease-seconds", "3")
    first = make_server(backend, *args)
    batch_id = create_batch(first, 60, "r")
    deadline = time.monotonic() + 60
    while batch_status(first, batch_id)["request_counts"]["completed"] < 10:
        assert time.monotonic() < deadline, "the batch never started"
        time.sleep(0.2)
    first.kill()

    second = make_server(backend, *args, database_url=first.database_url, data_dir=first.data_dir)
    done = wait_for_batch(second, batch_id, 120)
    assert done["status"] == "completed", done
    assert done["request_counts"] == {"total": 60, "completed": 60, "failed": 0}
    rows = db_rows(second, f"SELECT id, status FROM tasks WHERE batch_id = '{batch_id}'")
    assert sorted(task_id for task_id, _ in rows) == sorted(f"{batch_id}-{i}" for i in range(60))
    assert {status for _, status in rows} == {"succeeded"}
    billed = db_rows(
        second,
        "SELECT count(*), sum(images) FROM usage WHERE state = 'settled' AND task_id IN "
        f"(SELECT id FROM tasks WHERE batch_id = '{batch_id}')",
    )
    assert billed == [(60, 60)], "each line billed once"
    output = httpx.get(
        f"{second.url}/v1/files/{done['output_file_id']}/content", timeout=30
    ).text.splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in output) == sorted(f"r-{i}" for i in range(60))


def test_lines_made_before_a_crash_are_not_made_again(make_server: MakeServer, tmp_path: Any) -> None:
    """A process that made lines into tasks and died before it moved the batch's cursor past them: the
    next one finds those tasks and goes on after them (here the cursor is put back by hand)."""
    args = ("--config", channel_file(tmp_path / "c.toml", 0.0, 8), "--lease-seconds", "2")
    first = make_server("sqlite", *args)
    batch_id = create_batch(first, 20, "again")
    assert wait_for_batch(first, batch_id, 60)["status"] == "completed"
    first.stop()
    with sqlite3.connect(first.data_dir / "pixelgate.db") as db:
        db.execute(
            "UPDATE batches SET state = 'in_progress', submitted = 0, ended_at = NULL, output_file_id = NULL "
            "WHERE id = ?",
            (batch_id,),
        )
    second = make_server("sqlite", *args, data_dir=first.data_dir)
    done = wait_for_batch(second, batch_id, 60)
    assert done["status"] == "completed" and done["request_counts"] == {
        "total": 20,
        "completed": 20,
        "failed": 0,
    }
    assert db_rows(second, f"SELECT count(*) FROM tasks WHERE batch_id = '{batch_id}'") == [(20,)]
    billed = db_rows(
        second,
        f"SELECT count(*) FROM usage WHERE task_id IN (SELECT id FROM tasks WHERE batch_id = '{batch_id}')",
    )
    assert billed == [(20,)], "one ledger row per line"
    output = httpx.get(
        f"{second.url}/v1/files/{done['output_file_id']}/content", timeout=30
    ).text.splitlines()
    assert len(output) == 20
