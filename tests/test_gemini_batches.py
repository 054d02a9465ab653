"""The Gemini API's batch mode through the official ``google-genai`` SDK: inline requests answered inline,
a JSONL file uploaded with the SDK's resumable upload and answered with a results file, list, cancel."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import types
from PIL import Image

from conftest import MakeServer, ServerProcess
from pixelgate.catalog import default_catalog

FLASH = "gemini-3.1-flash-image"
SPEC = default_catalog().get(FLASH)
DONE = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


@pytest.fixture(scope="module")
def server(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    channels = tmp_path_factory.mktemp("channels") / "pixelgate.toml"
    channels.write_text(
        """
[[channels]]
name = "emulator"
provider = "emulator"
concurrency = 8
options = { latency = 0.05 }
"""
    )
    return make_server("sqlite", "--config", str(channels))


def sdk_client(server: ServerProcess, api_version: str | None = "v1beta") -> genai.Client:
    options = types.HttpOptions(base_url=server.url, retry_options=types.HttpRetryOptions(attempts=1))
    if api_version is not None:
        options.api_version = api_version
    return genai.Client(api_key="k", http_options=options)


def wait_until_done(client: genai.Client, name: str, timeout: float = 120) -> types.BatchJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.batches.get(name=name)
        if job.state is not None and job.state.value in DONE:
            return job
        time.sleep(0.3)
    raise AssertionError(f"{name} is still {job.state} after {timeout} s")


def image_size(response: types.GenerateContentResponse) -> tuple[int, int]:
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    data = next(p.inline_data.data for p in response.candidates[0].content.parts if p.inline_data)
    assert data is not None
    return Image.open(io.BytesIO(data)).size


def inline_request(prompt: str, aspect_ratio: str = "1:1", **extra: object) -> types.InlinedRequest:
    return types.InlinedRequest(
        contents=prompt,
        config=types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect_ratio, image_size="512"),
            **extra,  # type: ignore[arg-type]
        ),
        metadata={"key": prompt},
    )


@pytest.mark.parametrize("api_version", ["v1beta", None])
def test_a_batch_of_100_inline_requests(server: ServerProcess, api_version: str | None) -> None:
    client = sdk_client(server, api_version)
    requests = [inline_request(f"poster {i}", "16:9" if i % 10 == 0 else "1:1") for i in range(99)]
    requests.append(inline_request("refused", aspect_ratio="7:3"))
    job = client.batches.create(model=FLASH, src=requests, config={"display_name": "posters"})
    assert job.name and job.name.startswith("batches/") and job.display_name == "posters"
    assert job.state is not None and job.state.value in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING")
    done = wait_until_done(client, job.name)
    assert done.state is not None and done.state.value == "JOB_STATE_SUCCEEDED"
    assert done.dest and done.dest.inlined_responses and len(done.dest.inlined_responses) == 100
    for i, answer in enumerate(done.dest.inlined_responses[:99]):
        assert answer.metadata == {"key": f"poster {i}"} and answer.response is not None
        assert image_size(answer.response) == SPEC.output_pixels("16:9" if i % 10 == 0 else "1:1", "512")
    refused = done.dest.inlined_responses[99]
    assert refused.response is None and refused.error is not None
    assert refused.error.code == 400 and "7:3" in (refused.error.message or "")
    assert job.name in [b.name for b in client.batches.list(config={"page_size": 50})]


def test_a_batch_from_an_uploaded_file(server: ServerProcess, tmp_path: Path) -> None:
    client = sdk_client(server)
    path = tmp_path / "requests.jsonl"
    with path.open("w") as out:
        for i in range(20):
            request = {
                "contents": [{"role": "user", "parts": [{"text": f"a chair, view {i}"}]}],
                "generationConfig": {"imageConfig": {"aspectRatio": "3:4", "imageSize": "512"}},
            }
            out.write(json.dumps({"key": f"chair-{i}", "request": request}) + "\n")
    uploaded = client.files.upload(file=path, config={"mime_type": "application/jsonl"})
    assert uploaded.name and uploaded.size_bytes == path.stat().st_size
    assert client.files.get(name=uploaded.name).state == types.FileState.ACTIVE

    job = client.batches.create(model=FLASH, src=uploaded.name)
    done = wait_until_done(client, job.name or "")
    assert done.state is not None and done.state.value == "JOB_STATE_SUCCEEDED"
    assert done.dest and done.dest.file_name
    results = client.files.download(file=done.dest.file_name).decode().splitlines()
    keys = []
    for line in results:
        answer = json.loads(line)
        keys.append(answer["key"])
        data = answer["response"]["candidates"][0]["content"]["parts"][-1]["inlineData"]["data"]
        assert Image.open(io.BytesIO(base64.b64decode(data))).size == SPEC.output_pixels("3:4", "512")
    assert keys == [f"chair-{i}" for i in range(20)]


def test_cancel_ends_a_running_batch_as_cancelled(server: ServerProcess) -> None:
    client = sdk_client(server)
    # A thousand lines are about 8 s of work: the cancel arrives long before they could all be made.
    job = client.batches.create(model=FLASH, src=[inline_request(f"tile {i}") for i in range(1000)])
    client.batches.cancel(name=job.name or "")
    done = wait_until_done(client, job.name or "")
    assert done.state is not None and done.state.value == "JOB_STATE_CANCELLED"
    answers = (done.dest.inlined_responses if done.dest else None) or []
    cancelled = [a for a in answers if a.error is not None]
    assert len(answers) == 1000 and cancelled
    assert all(a.error and a.error.code == 499 for a in cancelled)


def test_bad_batches_are_refused_in_googles_shape(server: ServerProcess) -> None:
    client = sdk_client(server)
    with pytest.raises(genai.errors.ClientError) as unknown:
        client.batches.create(model="no-such-model", src=[inline_request("x")])
    assert unknown.value.code == 404
    with pytest.raises(genai.errors.ClientError) as missing:
        client.batches.create(model=FLASH, src="files/file-000000000000000000000000")
    assert missing.value.code == 404 and "file-000000000000000000000000" in (missing.value.message or "")
    with pytest.raises(genai.errors.ClientError) as gone:
        client.batches.get(name="batches/nope")
    assert gone.value.code == 404


def test_delete_forgets_a_finished_batch_and_refuses_a_running_one(server: ServerProcess) -> None:
    client = sdk_client(server)
    running = client.batches.create(model=FLASH, src=[inline_request(f"slow {i}") for i in range(1000)])
    with pytest.raises(genai.errors.ClientError) as refused:
        client.batches.delete(name=running.name or "")
    assert refused.value.code == 409 and "cancel it first" in (refused.value.message or "")
    client.batches.cancel(name=running.name or "")
    wait_until_done(client, running.name or "")
    client.batches.delete(name=running.name or "")
    with pytest.raises(genai.errors.ClientError) as gone:
        client.batches.get(name=running.name or "")
    assert gone.value.code == 404


def test_an_unknown_file_is_a_404_in_googles_shape(server: ServerProcess) -> None:
    answer = httpx.get(f"{server.url}/v1beta/files/abc", timeout=10)
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["status"] == "NOT_FOUND" and "'abc'" in error["message"]
    assert error["details"][0]["reason"] == "FILE_NOT_FOUND"


def test_inline_results_past_their_time_say_so(server: ServerProcess) -> None:
    client = sdk_client(server)
    job = client.batches.create(model=FLASH, src=[inline_request(f"old {i}") for i in range(3)])
    done = wait_until_done(client, job.name or "")
    assert done.dest and all(a.response for a in done.dest.inlined_responses or [])
    batch_id = (job.name or "").removeprefix("batches/")
    with sqlite3.connect(server.data_dir / "pixelgate.db") as db:  # a day passes
        db.execute("UPDATE tasks SET expires_at = expires_at - 86401 WHERE batch_id = ?", (batch_id,))
    later = client.batches.get(name=job.name or "")
    answers = (later.dest.inlined_responses if later.dest else None) or []
    assert len(answers) == 3 and all(a.response is None and a.error for a in answers)
    assert all(a.error and a.error.code == 404 and "expired" in (a.error.message or "") for a in answers)
