"""Two hosts as one service: two ``pixelgate serve`` processes with data dirs of their own, sharing one
PostgreSQL database, one Redis and one bucket of a real S3-compatible server (moto's), driven by the official
SDKs. A task made on one is read, downloaded, cancelled, continued and batch-collected on the other; URLs
one signs work on the other; keys and their limits are shared; and when one host is killed mid-task the
other finishes its work, each task settled once."""

from __future__ import annotations

import io
import json
import secrets
import time
import uuid

import httpx
import openai
import pytest
from google import genai
from google.genai import types

from conftest import MakeServer, PostgresDatabases, S3Service, ServerProcess, db_rows

ADMIN = "pga_" + secrets.token_urlsafe(32)
REDIS_URL = "redis://127.0.0.1:6379/0"
FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"


@pytest.fixture(scope="module")
def hosts(
    make_server: MakeServer,
    postgres: PostgresDatabases | None,
    s3: S3Service,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[ServerProcess]:
    if postgres is None:
        pytest.skip("several hosts share PostgreSQL: set PIXELGATE_TEST_DATABASE_URL (.ci/run does)")
    url = postgres.create()
    prefix = f"hosts-{uuid.uuid4().hex[:8]}"
    args = (
        "--emulate",
        "--emulate-latency",
        "0.5",
        "--auth",
        "--redis-url",
        REDIS_URL,
        "--lease-seconds",
        "2",
    )
    return [
        make_server(
            "postgres",
            *args,
            *s3.store_args(prefix),
            database_url=url,
            data_dir=tmp_path_factory.mktemp(name),  # nothing shared on disk
            env={"PIXELGATE_ADMIN_KEY": ADMIN},
        )
        for name in ("host-a", "host-b")
    ]


@pytest.fixture(scope="module")
def key(hosts: list[ServerProcess]) -> str:
    made = httpx.post(
        f"{hosts[0].url}/admin/keys",
        json={"name": f"two-hosts-{uuid.uuid4().hex[:6]}"},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    secret: str = made.json()["key"]
    return secret


def oai(server: ServerProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)


def on(server: ServerProcess, url: str) -> str:
    """``url`` (signed by another host) pointed at ``server``."""
    path = url.split("/", 3)[3]
    return f"{server.url}/{path}"


def test_a_task_made_on_one_host_is_read_and_downloaded_on_the_other(
    hosts: list[ServerProcess], key: str
) -> None:
    a, b = hosts
    made = oai(a, key).images.generate(model=FLASH, prompt="a kite", response_format="url")
    url = made.data[0].url
    assert url is not None and url.startswith(a.url)
    from_a = httpx.get(url, timeout=30)
    from_b = httpx.get(on(b, url), timeout=30)  # signed by A, served by B from the bucket
    assert from_a.status_code == from_b.status_code == 200
    assert from_a.content == from_b.content and from_a.content[:4] == b"\x89PNG"
    task_id = url.split("/blobs/")[1].split("/")[0]
    read = httpx.get(f"{b.url}/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert read.status_code == 200 and read.json()["status"] == "completed", read.text


def test_a_conversation_continues_on_the_other_host(hosts: list[ServerProcess], key: str) -> None:
    clients = [genai.Client(api_key=key, http_options=types.HttpOptions(base_url=s.url)) for s in hosts]
    first = clients[0].interactions.create(model=PRO, input="a red house")
    second = clients[1].interactions.create(model=PRO, input="make it blue", previous_interaction_id=first.id)
    assert second.status == "completed"  # B sent A's image back with A's thought signature


def test_a_task_queued_on_one_host_is_cancelled_on_the_other(hosts: list[ServerProcess], key: str) -> None:
    a, b = hosts
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": FLASH, "prompt": "never mind", "async": True, "n": 4}
    made = httpx.post(f"{a.url}/v1/images/generations", json=body, headers=headers, timeout=30).json()
    cancelled = httpx.post(f"{b.url}/v1/tasks/{made['id']}/cancel", headers=headers, timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    assert (
        httpx.get(f"{a.url}/v1/tasks/{made['id']}", headers=headers, timeout=30).json()["status"]
        == "cancelled"
    )


def test_a_batch_made_on_one_host_is_collected_on_the_other(hosts: list[ServerProcess], key: str) -> None:
    a, b = hosts
    lines = [
        {
            "custom_id": f"line-{i}",
            "method": "POST",
            "url": "/v1/images/generations",
            "body": {"model": FLASH, "prompt": f"tile {i}"},
        }
        for i in range(2)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file_id = oai(a, key).files.create(file=("lines.jsonl", io.BytesIO(data)), purpose="batch").id
    batch = oai(a, key).batches.create(
        input_file_id=file_id, endpoint="/v1/images/generations", completion_window="24h"
    )
    deadline = time.monotonic() + 60
    while (seen := oai(b, key).batches.retrieve(batch.id)).status != "completed":
        assert seen.status not in ("failed", "expired", "cancelled"), seen
        assert time.monotonic() < deadline, f"batch still {seen.status}"
        time.sleep(0.2)
    assert seen.output_file_id is not None
    output = oai(b, key).files.content(seen.output_file_id).text
    results = sorted((json.loads(line) for line in output.splitlines()), key=lambda r: r["custom_id"])
    assert [r["custom_id"] for r in results] == ["line-0", "line-1"]
    for result in results:
        url = result["response"]["body"]["data"][0]["url"]
        assert httpx.get(on(a, url), timeout=30).content[:4] == b"\x89PNG"


def test_a_key_and_its_limits_are_shared(hosts: list[ServerProcess]) -> None:
    a, b = hosts
    made = httpx.post(
        f"{b.url}/admin/keys",
        json={"name": f"limited-{uuid.uuid4().hex[:6]}", "limits": {"requests_per_minute": 2}},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    ).json()
    body = {"model": FLASH, "prompt": "x", "async": True}
    headers = {"Authorization": f"Bearer {made['key']}"}
    statuses = [
        httpx.post(f"{host.url}/v1/images/generations", json=body, headers=headers, timeout=30).status_code
        for host in (a, b, a)
    ]
    assert statuses == [200, 200, 429], "the per-minute count is one, through Redis"
    httpx.post(
        f"{a.url}/admin/keys/{made['id']}/disable", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    )
    refused = httpx.post(f"{a.url}/v1/images/generations", json=body, headers=headers, timeout=30)
    assert refused.status_code == 401, refused.text  # at once where it was disabled
    deadline = time.monotonic() + 12  # elsewhere within the key cache's 10 s (auth/keys.py)
    while (
        httpx.post(f"{b.url}/v1/images/generations", json=body, headers=headers, timeout=30).status_code
        != 401
    ):
        assert time.monotonic() < deadline, "the other host still takes a disabled key"
        time.sleep(0.5)


def test_when_a_host_dies_mid_task_the_other_finishes_its_work_billed_once(
    hosts: list[ServerProcess], key: str
) -> None:
    a, b = hosts
    headers = {"Authorization": f"Bearer {key}"}
    body = {"model": FLASH, "prompt": "survive", "async": True}
    ids = [
        httpx.post(f"{a.url}/v1/images/generations", json=body, headers=headers, timeout=30).json()["id"]
        for _ in range(6)
    ]
    time.sleep(0.3)  # A has claimed some of them and is drawing
    a.kill()
    deadline = time.monotonic() + 60
    while True:
        states = [
            httpx.get(f"{b.url}/v1/tasks/{i}", headers=headers, timeout=30).json()["status"] for i in ids
        ]
        if set(states) == {"completed"}:
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
    quoted = ", ".join(f"'{i}'" for i in ids)
    rows = db_rows(b, f"SELECT task_id, state FROM usage WHERE task_id IN ({quoted})")
    assert sorted(rows) == sorted((i, "settled") for i in ids), "each settled once"
    a.start()  # for the module's other users of the pair
