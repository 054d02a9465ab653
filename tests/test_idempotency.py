"""``Idempotency-Key`` on the create endpoints: the same key with the same request gets the first answer
(the same task, billed once), with a different request a 409; simultaneous requests with one key make one
task; a request refused before its task was saved, or cut short by a crash, leaves the key free. Through
the official SDKs."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import threading
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest
from google import genai
from google.genai import types

from conftest import BACKENDS, MakeServer, PostgresDatabases, ServerProcess, db_rows, png_bytes

FLASH = "gemini-3.1-flash-image"
BODY = {"model": FLASH, "prompt": "a lighthouse", "size": "1:1", "resolution": "512"}


@pytest.fixture(scope="module")
def server(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate")


def images_billed(server: ServerProcess) -> int:
    report = httpx.get(f"{server.url}/v1/usage", params={"group_by": "model"}, timeout=10).json()
    return sum(row["images"] for row in report["data"])


def test_the_same_request_twice_is_one_task_billed_once(server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    before = images_billed(server)
    first = client.images.generate(
        model=FLASH,
        prompt="a lighthouse",
        response_format="b64_json",
        extra_headers=key,
        extra_body={"seed": 3},
    )
    again = client.images.generate(
        model=FLASH,
        prompt="a lighthouse",
        response_format="b64_json",
        extra_headers=key,
        extra_body={"seed": 3},
    )
    assert first.data and again.data
    assert first.data[0].b64_json == again.data[0].b64_json and first.created == again.created
    assert images_billed(server) == before + 1


def test_the_same_key_with_another_request_is_a_409(server: ServerProcess) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    made = httpx.post(
        f"{server.url}/v1/images/generations", json={**BODY, "async": True}, headers=key, timeout=30
    )
    assert made.status_code == 200, made.text
    other = httpx.post(
        f"{server.url}/v1/images/generations",
        json={**BODY, "prompt": "a harbour", "async": True},
        headers=key,
        timeout=30,
    )
    assert other.status_code == 409, other.text
    error = other.json()["error"]
    assert error["code"] == "idempotency_key_reused"
    assert error["message"] == (
        f"Idempotency-Key {key['Idempotency-Key']!r} was sent with a different request (it made task "
        f"{made.json()['id']}): send a new key with a new request"
    )


def test_ten_simultaneous_requests_with_one_key_make_one_task(server: ServerProcess) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    before = images_billed(server)

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/images/generations", json={**BODY, "async": True}, headers=key)
                    for _ in range(10)
                )
            )

    answers = asyncio.run(send_all())
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
    assert len({answer.json()["id"] for answer in answers}) == 1
    task_id = answers[0].json()["id"]
    for _ in range(300):
        if httpx.get(f"{server.url}/v1/tasks/{task_id}", timeout=10).json()["status"] == "completed":
            break
        time.sleep(0.05)
    assert images_billed(server) == before + 1


def test_a_refused_request_leaves_its_key_free(server: ServerProcess) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    refused = httpx.post(
        f"{server.url}/v1/images/generations",
        json={**BODY, "resolution": "8K", "async": True},
        headers=key,
        timeout=30,
    )
    assert refused.status_code == 400, refused.text
    fixed = httpx.post(
        f"{server.url}/v1/images/generations", json={**BODY, "async": True}, headers=key, timeout=30
    )
    assert fixed.status_code == 200, fixed.text


def test_an_unusable_key_is_a_400(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.url}/v1/images/generations",
        json={**BODY, "async": True},
        headers={"Idempotency-Key": "x" * 300},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


def test_gemini_and_interactions_take_the_key_too(server: ServerProcess) -> None:
    client = genai.Client(api_key="unused", http_options={"base_url": server.url})
    key = str(uuid.uuid4())
    config = types.GenerateContentConfig(http_options=types.HttpOptions(headers={"Idempotency-Key": key}))
    first = client.models.generate_content(model=FLASH, contents="a kite", config=config)
    again = client.models.generate_content(model=FLASH, contents="a kite", config=config)
    assert first.response_id == again.response_id

    body = {"model": FLASH, "input": "a boat", "background": True}
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    made = [
        httpx.post(f"{server.url}/v1beta/interactions", json=body, headers=headers, timeout=30)
        for _ in range(2)
    ]
    assert made[0].status_code == made[1].status_code == 200, made[1].text
    assert made[0].json()["id"] == made[1].json()["id"]


def test_a_key_whose_interaction_was_deleted_is_spent(server: ServerProcess) -> None:
    """The key still names what it made, which is gone: a repeat is told so, and nothing is made again."""
    body = {"model": FLASH, "input": "a boat", "background": True}
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    made = httpx.post(f"{server.url}/v1beta/interactions", json=body, headers=headers, timeout=30).json()
    assert httpx.delete(f"{server.url}/v1beta/interactions/{made['id']}", timeout=30).status_code == 200
    again = httpx.post(f"{server.url}/v1beta/interactions", json=body, headers=headers, timeout=30)
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["details"][0]["reason"] == "IDEMPOTENCY_KEY_SPENT"
    assert error["message"] == (
        f"Idempotency-Key {headers['Idempotency-Key']!r} made task {made['id']}, which has been deleted "
        "since: send a new key to make a new one"
    )


def test_keys_older_than_a_day_are_forgotten(server: ServerProcess) -> None:
    """A key claimed more than 24 h ago (its row aged here by hand) is deleted by the next claim, of any key,
    and the old key then makes a new task."""
    import sqlite3

    key = {"Idempotency-Key": str(uuid.uuid4())}
    old = httpx.post(
        f"{server.url}/v1/images/generations", json={**BODY, "async": True}, headers=key, timeout=30
    )
    assert old.status_code == 200, old.text
    with sqlite3.connect(server.data_dir / "pixelgate.db") as db:
        db.execute(
            "UPDATE idempotency_keys SET created_at = created_at - 25 * 3600 WHERE key = ?",
            (key["Idempotency-Key"],),
        )
    other = {"Idempotency-Key": str(uuid.uuid4())}
    assert (
        httpx.post(
            f"{server.url}/v1/images/generations", json={**BODY, "async": True}, headers=other, timeout=30
        ).status_code
        == 200
    )
    with sqlite3.connect(server.data_dir / "pixelgate.db") as db:
        left = db.execute(
            "SELECT count(*) FROM idempotency_keys WHERE key = ?", (key["Idempotency-Key"],)
        ).fetchone()[0]
    assert left == 0
    again = httpx.post(
        f"{server.url}/v1/images/generations", json={**BODY, "async": True}, headers=key, timeout=30
    )
    assert again.status_code == 200 and again.json()["id"] != old.json()["id"]


class SlowImages:
    """A loopback host of one PNG that answers only once ``release`` is called: a request fetching a
    reference from it is held between its Idempotency-Key's check and its task's saving."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.asked = threading.Event()
        picture = png_bytes(32, 32)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.asked.set()
                outer.released.wait(30)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(picture)))
                self.end_headers()
                self.wfile.write(picture)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ref.png"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_crash_before_the_task_is_saved_leaves_the_key_usable(
    backend: str, make_server: MakeServer, postgres: PostgresDatabases | None, tmp_path: Path
) -> None:
    """SIGKILL while a keyed request fetches its reference: the retry the key is for is answered (with a
    new task, billed once), not held for a minute and refused for a day."""
    if backend == "postgres" and postgres is None:
        pytest.skip("PostgreSQL runs need PIXELGATE_TEST_DATABASE_URL; .ci/run sets it")
    slow = SlowImages()
    server = make_server(backend, "--emulate", "--fetch-allow", "127.0.0.1", data_dir=tmp_path)
    body = {**BODY, "async": True, "reference_images": [slow.url]}
    key = {"Idempotency-Key": f"crash-{uuid.uuid4()}"}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:

            def send_and_lose_the_answer() -> None:
                with contextlib.suppress(httpx.HTTPError):  # the server dies before it answers
                    client.post("/v1/images/generations", json=body, headers=key)

            threading.Thread(target=send_and_lose_the_answer, daemon=True).start()
            assert slow.asked.wait(10), "the request reached its reference"
            server.kill()
        slow.released.set()
        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            retried = client.post("/v1/images/generations", json=body, headers=key)
            assert retried.status_code == 200, retried.text
            again = client.post("/v1/images/generations", json=body, headers=key)
            assert again.json()["id"] == retried.json()["id"], "and the key holds from then on"
    finally:
        slow.close()
    assert db_rows(server, "SELECT COUNT(*) FROM tasks") == [(1,)]
