"""OpenAI's Files + Batch flow for images, through the official ``openai`` SDK: upload a JSONL file, create
a batch, poll it, read the output and error files. Lines run at batch prices; a refused line is free."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from conftest import MakeServer, ServerProcess
from pixelgate.catalog import default_catalog

FLASH = "gemini-3.1-flash-image"
PRICE, BATCH_PRICE = 0.04, 0.02


@pytest.fixture(scope="module")
def server(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    channels = tmp_path_factory.mktemp("channels") / "pixelgate.toml"
    channels.write_text(
        f"""
[prices]
"{FLASH}" = {PRICE}

[batch_prices]
"{FLASH}" = {BATCH_PRICE}

[[channels]]
name = "emulator"
provider = "emulator"
concurrency = 8
options = {{ latency = 0.05 }}
"""
    )
    return make_server("sqlite", "--config", str(channels))


def client_for(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def upload(client: openai.OpenAI, lines: list[dict[str, Any]]) -> str:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return client.files.create(file=("batch.jsonl", io.BytesIO(data)), purpose="batch").id


def wait_until_done(client: openai.OpenAI, batch_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} is still {batch.status} after {timeout} s")


def generation(custom_id: str, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/images/generations",
        "body": {"model": FLASH, "prompt": f"a lighthouse, take {custom_id}", **body},
    }


def test_a_batch_of_100_through_the_sdk(server: ServerProcess) -> None:
    client = client_for(server)
    lines = [
        generation(f"ok-{i}", size="1:1", resolution="512", response_format="b64_json") for i in range(97)
    ]
    lines += [generation("bad-size", size="0x0"), generation("bad-model", model="no-such-model")]
    lines.insert(50, generation("wide", size="16:9", resolution="512"))
    file_id = upload(client, lines)
    batch = client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/images/generations",
        completion_window="24h",
        metadata={"job": "catalog"},
    )
    assert batch.status == "validating" and batch.request_counts and batch.request_counts.total == 100
    done = wait_until_done(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (98, 2)
    assert done.metadata == {"job": "catalog"} and done.completed_at and done.in_progress_at
    assert done.model_extra and done.model_extra["usage_usd"] == pytest.approx(98 * BATCH_PRICE)
    assert done.usage and done.usage.output_tokens > 0
    assert done.usage.total_tokens == done.usage.input_tokens + done.usage.output_tokens

    assert done.output_file_id and done.error_file_id
    output = [json.loads(line) for line in client.files.content(done.output_file_id).text.splitlines()]
    assert [line["custom_id"] for line in output] == [
        line["custom_id"] for line in lines if "bad" not in line["custom_id"]
    ]
    for line in output:
        assert line["response"]["status_code"] == 200 and line["error"] is None
        body = line["response"]["body"]
        if line["custom_id"] == "wide":
            assert body["data"][0]["url"].startswith(server.url)
            assert body["size"] == "{}x{}".format(*default_catalog().get(FLASH).output_pixels("16:9", "512"))
            continue
        image = Image.open(io.BytesIO(base64.b64decode(body["data"][0]["b64_json"])))
        assert image.size == (512, 512)

    errors = {
        json.loads(line)["custom_id"]: json.loads(line)
        for line in client.files.content(done.error_file_id).text.splitlines()
    }
    assert set(errors) == {"bad-size", "bad-model"}
    assert errors["bad-size"]["response"]["status_code"] == 400
    assert "0x0" in errors["bad-size"]["response"]["body"]["error"]["message"]
    assert errors["bad-model"]["response"]["body"]["error"]["code"] == "model_not_found"

    usage = client.get("/usage", cast_to=object, options={"params": {"group_by": "dialect"}})
    by_dialect = {row["dialect"]: row for row in usage["data"]}  # type: ignore[index]
    assert by_dialect["openai-batch"]["images"] == 98
    assert by_dialect["openai-batch"]["cost_usd"] == pytest.approx(98 * BATCH_PRICE)

    metrics = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics", timeout=10).text)
        for sample in family.samples
    }
    assert metrics[("pixelgate_batches_finished_total", (("dialect", "openai"), ("state", "completed")))] == 1
    lines = "pixelgate_batch_lines_finished_total"
    assert metrics[(lines, (("dialect", "openai"), ("outcome", "succeeded")))] == 98
    assert metrics[(lines, (("dialect", "openai"), ("outcome", "failed")))] == 2

    listed = client.batches.list(limit=5)
    assert batch.id in [b.id for b in listed.data]
    with pytest.raises(openai.ConflictError) as finished:
        client.batches.cancel(batch.id)
    assert "completed" in finished.value.message


def test_an_unreadable_file_makes_a_failed_batch_that_names_each_bad_line(server: ServerProcess) -> None:
    client = client_for(server)
    good = generation("a", size="1:1")
    wrong_url = {**generation("b"), "url": "/v1/chat/completions"}
    data = json.dumps(good) + "\nnot json\n" + json.dumps(wrong_url) + "\n" + json.dumps(good) + "\n"
    file_id = client.files.create(file=("batch.jsonl", io.BytesIO(data.encode())), purpose="batch").id
    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/images/generations", completion_window="24h"
    )
    assert batch.status == "failed" and batch.failed_at and batch.errors and batch.errors.data
    assert [(e.line, e.code) for e in batch.errors.data] == [
        (2, "invalid_json_line"),
        (3, "mismatched_endpoint"),
        (4, "duplicate_custom_id"),
    ]


def test_refusals_name_the_value_and_what_is_allowed(server: ServerProcess) -> None:
    client = client_for(server)
    file_id = upload(client, [generation("a")])
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h")
    assert "/v1/embeddings" in refused.value.message and "/v1/images/generations" in refused.value.message
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-000000000000000000000000",
            endpoint="/v1/images/generations",
            completion_window="24h",
        )
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_cancel_stops_the_lines_not_yet_run_and_bills_only_what_was_made(server: ServerProcess) -> None:
    client = client_for(server)
    lines = [generation(f"c{i}", size="1:1", resolution="512") for i in range(1000)]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/images/generations", completion_window="24h"
    )
    deadline = time.monotonic() + 30  # cancelled once it has made something (about 8 s of work in all)
    while (counts := client.batches.retrieve(batch.id).request_counts) and counts.completed < 1:
        assert time.monotonic() < deadline, counts
        time.sleep(0.1)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    done = wait_until_done(client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at
    counts = done.request_counts
    assert counts is not None and counts.completed + counts.failed == 1000 and counts.failed > 0
    assert done.model_extra and done.model_extra["usage_usd"] == pytest.approx(counts.completed * BATCH_PRICE)
    errors = [json.loads(line) for line in client.files.content(done.error_file_id or "").text.splitlines()]
    assert len(errors) == counts.failed
    assert {e["error"]["code"] for e in errors} <= {"batch_cancelled"}
    assert client.batches.cancel(batch.id).status == "cancelled"  # cancelling again changes nothing


def test_files_list_get_and_delete(server: ServerProcess, tmp_path: Path) -> None:
    client = client_for(server)
    path = tmp_path / "lines.jsonl"
    path.write_text(json.dumps(generation("x")) + "\n")
    made = client.files.create(file=path, purpose="batch")
    assert made.filename == "lines.jsonl" and made.bytes == path.stat().st_size
    assert client.files.retrieve(made.id).purpose == "batch"
    assert made.id in [f.id for f in client.files.list(purpose="batch")]
    assert client.files.delete(made.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(made.id)


def test_idempotency_key_makes_one_batch(server: ServerProcess) -> None:
    client = client_for(server)
    file_id = upload(client, [generation(f"k{i}", size="1:1", resolution="512") for i in range(3)])
    key = {"Idempotency-Key": f"nightly-{time.time_ns()}"}

    def create() -> str:
        made = client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/images/generations",
            completion_window="24h",
            extra_headers=key,
        )
        return made.id

    with ThreadPoolExecutor(6) as pool:
        ids = set(pool.map(lambda _: create(), range(6)))
    assert len(ids) == 1, "six simultaneous creates with one key made one batch"
    assert create() in ids
    with pytest.raises(openai.ConflictError) as reused:
        client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/images/generations",
            completion_window="24h",
            metadata={"other": "request"},
            extra_headers=key,
        )
    assert reused.value.code == "idempotency_key_reused" and ids.pop() in reused.value.message


def test_a_batch_past_its_completion_window_expires_with_what_it_made(
    make_server: MakeServer, tmp_path: Path
) -> None:
    channels = tmp_path / "pixelgate.toml"
    channels.write_text(
        f"""
[batch_prices]
"{FLASH}" = {BATCH_PRICE}

[[channels]]
name = "slow"
provider = "emulator"
concurrency = 1
options = {{ latency = 0.5 }}
"""
    )
    slow = make_server("sqlite", "--config", str(channels), env={"PIXELGATE_BATCH_COMPLETION_SECONDS": "2"})
    client = client_for(slow)
    lines = [generation(f"e{i}", size="1:1", resolution="512") for i in range(30)]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/images/generations", completion_window="24h"
    )
    assert batch.expires_at is not None and batch.expires_at - batch.created_at == 2
    done = wait_until_done(client, batch.id, 60)
    assert done.status == "expired" and done.expired_at
    counts = done.request_counts
    # (On a loaded machine the window may close before any line is made: what matters is what was billed.)
    assert counts is not None and counts.completed < 30 and counts.completed + counts.failed == 30
    assert done.model_extra and done.model_extra["usage_usd"] == pytest.approx(counts.completed * BATCH_PRICE)
    errors = [json.loads(line) for line in client.files.content(done.error_file_id or "").text.splitlines()]
    assert len(errors) == counts.failed
    assert {e["error"]["code"] for e in errors} <= {"batch_expired", "batch_cancelled"}
    assert any(e["error"]["code"] == "batch_expired" for e in errors)


def test_an_expired_file_is_gone_and_deleted(server: ServerProcess, tmp_path: Path) -> None:
    client = client_for(server)
    path = tmp_path / "short.jsonl"
    path.write_text(json.dumps(generation("x")) + "\n")
    made = client.files.create(
        file=path, purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert made.expires_at == made.created_at + 3600
    with sqlite3.connect(server.data_dir / "pixelgate.db") as db:  # an hour passes
        db.execute("UPDATE files SET expires_at = expires_at - 3601 WHERE id = ?", (made.id,))
    assert made.id not in [f.id for f in client.files.list()]
    with pytest.raises(openai.NotFoundError) as gone:
        client.files.retrieve(made.id)
    assert gone.value.code == "file_expired" and made.id in gone.value.message
    assert not (server.data_dir / "blobs" / made.id).exists(), "the expired file's bytes were deleted"
    with pytest.raises(openai.NotFoundError):  # and it is forgotten
        client.files.retrieve(made.id)


def test_a_key_over_its_daily_images_holds_its_batch_instead_of_failing_it(make_server: MakeServer) -> None:
    admin_key = "pga_" + uuid.uuid4().hex
    guarded = make_server("sqlite", "--emulate", "--auth", env={"PIXELGATE_ADMIN_KEY": admin_key})
    admin = httpx.Client(base_url=guarded.url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
    made = admin.post("/admin/keys", json={"name": "catalog", "limits": {"images_per_day": 3}}).json()
    client = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=made["key"], max_retries=0)
    lines = [generation(f"d{i}", size="1:1", resolution="512") for i in range(5)]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/images/generations", completion_window="24h"
    )
    deadline = time.monotonic() + 30
    while (counts := client.batches.retrieve(batch.id).request_counts) and counts.completed < 3:
        assert time.monotonic() < deadline, counts
        time.sleep(0.3)
    time.sleep(2)  # the two lines over the limit wait; they do not fail
    held = client.batches.retrieve(batch.id)
    assert held.status == "in_progress" and held.request_counts
    assert (held.request_counts.completed, held.request_counts.failed) == (3, 0)
    # Another owner's key sees neither the batch nor its file, as if they did not exist.
    other = admin.post("/admin/keys", json={"name": "someone-else"}).json()["key"]
    stranger = openai.OpenAI(base_url=f"{guarded.url}/v1", api_key=other, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        stranger.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        stranger.files.retrieve(batch.input_file_id)
    with pytest.raises(openai.NotFoundError):
        stranger.batches.cancel(batch.id)
    assert batch.id not in [b.id for b in stranger.batches.list()]
    admin.patch(f"/admin/keys/{made['id']}", json={"limits": {"images_per_day": 10}}).raise_for_status()
    done = wait_until_done(client, batch.id, 60)  # the batch tries again within 10 s, and goes on
    assert done.status == "completed" and done.request_counts
    assert (done.request_counts.completed, done.request_counts.failed) == (5, 0)
