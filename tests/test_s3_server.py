"""``pixelgate serve --blob-store s3://…`` end to end, on moto's S3 server: the official SDKs' calls with
their images in the bucket, pixelgate's signed URLs and the bucket's presigned ones, an edit's reference, a
batch file written and read there, a bad bucket refused at start, and an outage that fails tasks (unbilled)
and reads (503) but never stops the server.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import openai
import pytest
from google import genai
from google.genai import types
from PIL import Image

from conftest import MakeServer, S3Service, ServerProcess, free_port, png_bytes

FLASH = "gemini-3.1-flash-image"


def prefix() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def signed(make_server: MakeServer, s3: S3Service) -> tuple[ServerProcess, str]:
    """A server whose blobs are in the bucket, answering with pixelgate's own signed URLs."""
    where = prefix()
    return make_server("sqlite", "--emulate", *s3.store_args(where)), where


@pytest.fixture(scope="module")
def presigned(make_server: MakeServer, s3: S3Service) -> tuple[ServerProcess, str]:
    where = prefix()
    return make_server("sqlite", "--emulate", *s3.store_args(where), "--blob-urls", "presigned"), where


def openai_client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def images_billed(server: ServerProcess) -> int:
    report = httpx.get(f"{server.url}/v1/usage", params={"group_by": "model"}, timeout=10).json()
    return sum(row["images"] for row in report["data"])


def task_of(url: str) -> str:
    """The task id in an image URL: pixelgate's (/blobs/{task}/…) or the bucket's (…/{prefix}/{task}/…)."""
    return httpx.URL(url).path.rstrip("/").split("/")[-2]


def test_generate_answers_signed_urls_streamed_from_the_bucket(
    signed: tuple[ServerProcess, str], s3: S3Service
) -> None:
    server, where = signed
    answer = openai_client(server).images.generate(model=FLASH, prompt="a harbour", size="16:9", n=2)
    assert answer.data and len(answer.data) == 2
    for item in answer.data:
        assert item.url and item.url.startswith(f"{server.url}/blobs/")
        fetched = httpx.get(item.url, timeout=30)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(fetched.content)).size == (1376, 768)
        assert item.b64_json and base64.b64decode(item.b64_json) == fetched.content
    task = task_of(answer.data[0].url or "")
    assert s3.keys(f"{where}/{task}/") == [f"{where}/{task}/out-0.png", f"{where}/{task}/out-1.png"]


def test_a_4k_b64_answer_streams_from_the_bucket_in_pieces(signed: tuple[ServerProcess, str]) -> None:
    server, _ = signed
    raw = openai_client(server).images.with_raw_response.generate(
        model="gemini-3-pro-image",
        prompt="a harbour at dawn",
        size="16:9",
        response_format="b64_json",
        extra_body={"resolution": "4K"},
    )
    body = raw.http_response.content
    assert int(raw.headers["content-length"]) == len(body) > 3 * 256 * 1024  # more than one piece
    data = raw.parse().data
    assert data and data[0].b64_json
    assert Image.open(io.BytesIO(base64.b64decode(data[0].b64_json, validate=True))).size == (5504, 3072)


def test_an_edit_keeps_its_reference_in_the_bucket(signed: tuple[ServerProcess, str], s3: S3Service) -> None:
    server, where = signed
    answer = openai_client(server).images.edit(
        model="gemini-3-pro-image",
        prompt="make it blue",
        image=("red.png", png_bytes(80, 60), "image/png"),
        response_format="url",
    )
    assert answer.data and answer.data[0].url
    assert httpx.get(answer.data[0].url, timeout=30).status_code == 200
    task = task_of(answer.data[0].url)
    assert {f"{where}/{task}/out-0.png", f"{where}/{task}/ref-0.png"} <= set(s3.keys(f"{where}/{task}/"))
    stored = s3.client().get_object(Bucket=s3.bucket, Key=f"{where}/{task}/ref-0.png")
    assert stored["Body"].read() == png_bytes(80, 60) and stored["ContentType"] == "image/png"


def test_an_unstored_interaction_leaves_nothing_in_the_bucket(
    signed: tuple[ServerProcess, str], s3: S3Service
) -> None:
    """``store: false``: the images are read from the bucket as the answer is sent, then deleted."""
    server, where = signed
    answer = httpx.post(
        f"{server.url}/v1beta/interactions",
        json={"model": FLASH, "input": "a ghost", "store": False},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    output = next(step for step in answer.json()["steps"] if step["type"] == "model_output")
    image = next(block for block in output["content"] if block["type"] == "image")
    assert Image.open(io.BytesIO(base64.b64decode(image["data"]))).size == (1024, 1024)
    task = answer.json()["id"]
    deadline = time.monotonic() + 10
    while s3.keys(f"{where}/{task}/") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert s3.keys(f"{where}/{task}/") == []


def test_a_gemini_batch_file_is_uploaded_and_written_in_the_bucket(
    signed: tuple[ServerProcess, str], s3: S3Service, tmp_path: Path
) -> None:
    server, where = signed
    options = types.HttpOptions(base_url=server.url, retry_options=types.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key="k", http_options=options)
    path = tmp_path / "requests.jsonl"
    request = {"generationConfig": {"imageConfig": {"aspectRatio": "1:1", "imageSize": "512"}}}
    path.write_text(
        "".join(
            json.dumps(
                {"key": f"k{i}", "request": {**request, "contents": [{"parts": [{"text": f"a cup {i}"}]}]}}
            )
            + "\n"
            for i in range(3)
        )
    )
    uploaded = client.files.upload(file=path, config={"mime_type": "application/jsonl"})  # resumable
    assert uploaded.name and uploaded.size_bytes == path.stat().st_size
    job = client.batches.create(model=FLASH, src=uploaded.name)
    deadline = time.monotonic() + 60
    while (job.state is None or job.state.value != "JOB_STATE_SUCCEEDED") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = client.batches.get(name=job.name or "")
    assert job.state is not None and job.state.value == "JOB_STATE_SUCCEEDED" and job.dest
    lines = [json.loads(line) for line in client.files.download(file=job.dest.file_name or "").splitlines()]
    assert [line["key"] for line in lines] == ["k0", "k1", "k2"]
    written = job.dest.file_name.removeprefix("files/")  # type: ignore[union-attr]
    assert s3.keys(f"{where}/{written}/") == [f"{where}/{written}/content"]


def test_presigned_urls_point_at_the_bucket(presigned: tuple[ServerProcess, str], s3: S3Service) -> None:
    server, where = presigned
    before = time.time()
    answer = openai_client(server).images.generate(model=FLASH, prompt="a kite", response_format="url")
    assert answer.data and answer.data[0].url
    url = answer.data[0].url
    assert url.startswith(f"{s3.endpoint_url}/{s3.bucket}/{where}/task_") and "X-Amz-Signature=" in url
    query = dict(httpx.URL(url).params)
    lifetime = int(query["X-Amz-Expires"])
    assert 24 * 3600 - 5 <= lifetime + (time.time() - before) <= 24 * 3600 + 5, "valid as long as the result"
    fetched = httpx.get(url, timeout=30)
    assert fetched.status_code == 200 and Image.open(io.BytesIO(fetched.content)).size == (1024, 1024)
    polled = httpx.get(f"{server.url}/v1/images/generations/{task_of(url)}", timeout=30).json()
    assert polled["url"].startswith(f"{s3.endpoint_url}/{s3.bucket}/")


# --- refused at start ---------------------------------------------------------------------------------------


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``pixelgate serve`` that is expected to refuse to start."""
    command = [sys.executable, "-m", "pixelgate", "serve", "--emulate", "--data-dir", str(tmp_path)]
    return subprocess.run(
        [*command, "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **(env or {}), "COLUMNS": "300", "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).split())


def test_an_unknown_bucket_is_refused_at_start(s3: S3Service, tmp_path: Path) -> None:
    result = serve(tmp_path, *s3.store_args("x", bucket="no-such-bucket"))
    assert result.returncode == 2, said(result)
    assert "--blob-store s3://no-such-bucket/x" in said(result)
    assert "the bucket 'no-such-bucket' does not exist" in said(result)
    assert "Traceback" not in said(result)


def test_an_endpoint_that_does_not_answer_is_refused_at_start(s3: S3Service, tmp_path: Path) -> None:
    wrong = f"http://127.0.0.1:{free_port()}"
    result = serve(tmp_path, "--blob-store", f"s3://{s3.bucket}/x", "--s3-endpoint-url", wrong)
    assert result.returncode == 2, said(result)
    assert f"--s3-endpoint-url {wrong}" in said(result) and "did not answer" in said(result)
    assert "Could not connect to the endpoint URL" in said(result)


def test_wrong_credentials_are_refused_at_start(s3: S3Service, tmp_path: Path) -> None:
    result = serve(tmp_path, *s3.store_args("x"), env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert result.returncode == 2, said(result)
    assert "no AWS credentials were found: set AWS_ACCESS_KEY_ID" in said(result)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--blob-urls", "presigned"], "--blob-urls presigned: only an S3 blob store takes this"),
        (
            ["--s3-endpoint-url", "http://127.0.0.1:9000"],
            "--s3-endpoint-url http://127.0.0.1:9000: only an S3",
        ),
        (["--blob-store", "gs://bucket/x"], "is neither s3://bucket/prefix"),
        (["--blob-store", "s3://Bad_Bucket"], "'Bad_Bucket' is not an S3 bucket name"),
        (["--blob-urls", "public"], "blob URLs 'public' are not known: use pixelgate"),
    ],
)
def test_blob_settings_that_cannot_work_are_refused(tmp_path: Path, args: list[str], words: str) -> None:
    result = serve(tmp_path, *args)
    assert result.returncode == 2, said(result)
    assert words in said(result)


def test_presigned_urls_cannot_outlive_sigv4s_seven_days(s3: S3Service, tmp_path: Path) -> None:
    eight_days = str(8 * 24 * 3600)
    result = serve(
        tmp_path,
        *s3.store_args("x"),
        "--blob-urls",
        "presigned",
        env={"PIXELGATE_RESULT_TTL_SECONDS": eight_days},
    )
    assert result.returncode == 2, said(result)
    assert "a presigned URL lives at most 604800 s (7 days)" in said(result) and eight_days in said(result)


# --- an outage ----------------------------------------------------------------------------------------------


class MotoProcess:
    """moto's S3 server in a process of its own, so that killing it cuts every connection at once."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, bucket: str) -> None:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        boto3.client("s3", endpoint_url=self.url, region_name="us-east-1").create_bucket(Bucket=bucket)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture()
def moto_process(s3: S3Service) -> Iterator[MotoProcess]:
    moto = MotoProcess(free_port())
    moto.start("outage")
    yield moto
    moto.kill()


def test_an_outage_fails_tasks_unbilled_and_reads_with_503_and_the_server_goes_on(
    moto_process: MotoProcess, make_server: MakeServer
) -> None:
    server = make_server(
        "sqlite", "--emulate", "--blob-store", "s3://outage/x", "--s3-endpoint-url", moto_process.url
    )
    client = openai_client(server)
    before = client.images.generate(model=FLASH, prompt="before", response_format="url")
    assert before.data and before.data[0].url
    stored = httpx.post(f"{server.url}/v1beta/interactions", json={"model": FLASH, "input": "x"}, timeout=60)
    assert stored.status_code == 200, stored.text
    billed = images_billed(server)

    moto_process.kill()
    with pytest.raises(openai.APIStatusError) as failed:
        client.images.generate(model=FLASH, prompt="during")
    assert failed.value.status_code == 503
    error: Any = failed.value.body
    assert error["code"] == "storage_unavailable" and "s3://outage/x" in error["message"], error
    created = httpx.post(
        f"{server.url}/v1/images/generations", json={"model": FLASH, "prompt": "x", "async": True}, timeout=30
    ).json()
    deadline = time.monotonic() + 30
    while (task := httpx.get(f"{server.url}/v1/tasks/{created['id']}", timeout=30).json())["status"] not in (
        "failed",
        "completed",
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert task["status"] == "failed" and task["error"]["code"] == "storage_unavailable", task
    assert images_billed(server) == billed, "a task the store failed is not billed"

    image = httpx.get(before.data[0].url, timeout=30)
    assert image.status_code == 503, image.text
    assert image.json()["error"]["code"] == "storage_unavailable" and image.headers["retry-after"]
    interaction = httpx.get(f"{server.url}/v1beta/interactions/{stored.json()['id']}", timeout=30)
    assert interaction.status_code == 503
    assert interaction.json()["error"]["status"] == "UNAVAILABLE"  # in Gemini's words
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/v1/models", timeout=10).status_code == 200

    moto_process.start("outage")  # back (empty: moto keeps nothing across a restart)
    after = client.images.generate(model=FLASH, prompt="after", response_format="url")
    assert after.data and after.data[0].url
    assert httpx.get(after.data[0].url, timeout=30).status_code == 200
