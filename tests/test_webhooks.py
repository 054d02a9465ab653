"""Webhooks: a task that ends is delivered, signed, to the request's own URL or the owner's registered
webhooks; a receiver that fails is retried on the schedule with the same ``webhook-id``, then given up on;
the deliveries API shows each attempt; refused addresses are a 400; a delivery pending when the server
dies is sent by the next one. The receiver is a real HTTP server on a loopback port, and every signature
is checked with the ``standardwebhooks`` package (Standard Webhooks' own verifier), not with our code.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from google import genai
from standardwebhooks import Webhook as Verifier
from standardwebhooks import WebhookVerificationError

from conftest import MakeServer, ServerProcess, db_rows

FLASH = "gemini-3.1-flash-image"
BODY = {"model": FLASH, "prompt": "a lighthouse", "size": "1:1", "resolution": "512", "async": True}
RETRIES = "0,0.5,1"  # three attempts: at once, 0.5 s later, 1 s after that


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """Answers 500 to the first ``fail[path]`` requests of a path, then 204; keeps every request."""

    server: ThreadingHTTPServer
    fail: dict[str, int] = field(default_factory=dict)
    seen: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait(self, path: str, count: int, timeout: float = 15) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.seen[path]) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.seen[path]) >= count, f"{path}: {len(self.seen[path])} of {count} requests arrived"
        return self.seen[path]


@pytest.fixture(scope="module")
def receiver(backend: str) -> Iterator[Receiver]:
    """One per backend (the tests count what each path received)."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            hook = holder[0]
            hook.seen[self.path].append(Received(time.time(), dict(self.headers.items()), body))
            failing = hook.fail.get(self.path, 0) >= len(hook.seen[self.path])
            self.send_response(500 if failing else 204)
            self.end_headers()
            if failing:
                self.wfile.write(b"receiver down for maintenance")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()


@pytest.fixture(scope="module")
def server(make_server: MakeServer, backend: str) -> ServerProcess:
    return make_server(
        backend, "--emulate", "--fetch-allow", "127.0.0.1", env={"PIXELGATE_WEBHOOK_RETRY_SECONDS": RETRIES}
    )


def owner_secret(server: ServerProcess) -> str:
    secret: str = httpx.get(f"{server.url}/v1/webhooks/secret", timeout=10).json()["secret"]
    return secret


def verified(received: Received, secret: str) -> dict[str, Any]:
    event: dict[str, Any] = Verifier(secret).verify(received.body, received.headers)
    return event


def deliveries_of(server: ServerProcess, subject_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/v1/webhooks/deliveries", params={"subject_id": subject_id}, timeout=10)
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def settled(server: ServerProcess, subject_id: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = deliveries_of(server, subject_id)
        if found and found[0]["state"] != "pending":
            return found[0]
        time.sleep(0.1)
    raise AssertionError(
        f"the delivery for {subject_id} is still pending: {deliveries_of(server, subject_id)}"
    )


def test_a_failing_receiver_is_retried_on_the_schedule_then_delivered(
    server: ServerProcess, receiver: Receiver
) -> None:
    receiver.fail["/flaky"] = 2
    made = httpx.post(
        f"{server.url}/v1/images/generations",
        json={**BODY, "callback_url": receiver.url("/flaky")},
        timeout=30,
    )
    assert made.status_code == 200, made.text
    task_id = made.json()["id"]
    attempts = receiver.wait("/flaky", 3)
    secret = owner_secret(server)
    events = [verified(attempt, secret) for attempt in attempts]
    assert {attempt.headers["webhook-id"] for attempt in attempts} == {attempts[0].headers["webhook-id"]}
    assert len({attempt.body for attempt in attempts}) == 1  # the very same body each time
    assert events[0]["type"] == "task.succeeded"
    assert events[0]["data"] == {
        "id": task_id,
        "status": "succeeded",
        "model": FLASH,
        "error": None,
        "user_metadata": None,
    }
    # The schedule: 0.5 s before the second attempt, 1 s before the third.
    assert attempts[1].at - attempts[0].at >= 0.45
    assert attempts[2].at - attempts[1].at >= 0.95

    delivery = settled(server, task_id)
    assert delivery["id"] == attempts[0].headers["webhook-id"]
    assert delivery["state"] == "delivered" and delivery["attempts"] == 3
    assert delivery["last_status"] == 204 and delivery["last_error"] is None
    assert delivery["url"] == receiver.url("/flaky") and delivery["event_type"] == "task.succeeded"
    one = httpx.get(f"{server.url}/v1/webhooks/deliveries/{delivery['id']}", timeout=10)
    assert one.status_code == 200 and one.json() == delivery
    # A tampered body does not verify: the receiver's check can fail.
    forged = Received(attempts[0].at, attempts[0].headers, attempts[0].body.replace(b"succeeded", b"failed"))
    with pytest.raises(WebhookVerificationError):
        verified(forged, secret)


def test_a_receiver_that_never_answers_2xx_is_given_up_on(server: ServerProcess, receiver: Receiver) -> None:
    receiver.fail["/down"] = 1000
    made = httpx.post(
        f"{server.url}/v1/images/generations",
        json={**BODY, "callback_url": receiver.url("/down")},
        timeout=30,
    )
    task_id = made.json()["id"]
    delivery = settled(server, task_id)
    assert delivery["state"] == "failed" and delivery["attempts"] == 3
    assert delivery["last_status"] == 500 and delivery["next_attempt_at"] is None
    assert delivery["last_error"] == "HTTP 500: receiver down for maintenance"
    assert len(receiver.seen["/down"]) == 3


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[::1]:9/hook", "a loopback address"),  # only 127.0.0.1 is allowed on this server
        ("http://10.0.0.7/hook", "a private address"),
        ("ftp://example.com/hook", "is not an http(s) URL"),
    ],
)
def test_a_callback_url_pixelgate_may_not_reach_is_a_400(
    server: ServerProcess, url: str, reason: str
) -> None:
    answer = httpx.post(f"{server.url}/v1/images/generations", json={**BODY, "callback_url": url}, timeout=30)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "callback_url_forbidden" and error["param"] == "callback_url"
    assert url in error["message"] and reason in error["message"]

    gemini = httpx.post(
        f"{server.url}/v1beta/interactions",
        json={"model": FLASH, "input": "a kite", "background": True, "webhook_config": {"uris": [url]}},
        timeout=30,
    )
    assert gemini.status_code == 400, gemini.text
    assert gemini.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert gemini.json()["error"]["details"][0]["metadata"]["param"] == "webhook_config.uris[0]"


def test_an_interaction_with_webhook_config_delivers_its_user_metadata(
    server: ServerProcess, receiver: Receiver
) -> None:
    client = genai.Client(api_key="unused", http_options={"base_url": server.url})
    interaction = client.interactions.create(
        model=FLASH,
        input="a paper boat",
        background=True,
        webhook_config={"uris": [receiver.url("/interactions")], "user_metadata": {"job": "42", "Run-Id": 7}},
    )
    (received,) = receiver.wait("/interactions", 1)
    event = verified(received, owner_secret(server))
    assert event["type"] == "interaction.completed"
    assert event["data"]["id"] == interaction.id and event["data"]["status"] == "completed"
    assert event["data"]["user_metadata"] == {"job": "42", "Run-Id": 7}


def test_the_sdk_manages_registered_webhooks(server: ServerProcess, receiver: Receiver) -> None:
    client = genai.Client(api_key="unused", http_options={"base_url": server.url})
    made = client.webhooks.create(
        uri=receiver.url("/registered"), subscribed_events=["interaction.completed"], name="ci"
    )
    assert made.id and made.new_signing_secret and made.new_signing_secret.startswith("whsec_")
    assert made.state == "enabled" and made.name == "ci"
    assert [w.id for w in client.webhooks.list().webhooks or []] == [made.id]
    assert client.webhooks.get(made.id).uri == receiver.url("/registered")

    client.webhooks.ping(made.id)
    (ping,) = receiver.wait("/registered", 1)
    assert verified(ping, made.new_signing_secret)["type"] == "webhook.ping"

    # A rotated-out secret keeps signing beside the new one for a day: receivers switch at leisure.
    rotated = client.webhooks.rotate_signing_secret(made.id)
    assert rotated.secret and rotated.secret != made.new_signing_secret
    client.interactions.create(model=FLASH, input="a red kite")  # no webhook_config: registered ones get it
    _, completed = receiver.wait("/registered", 2)
    assert verified(completed, rotated.secret)["type"] == "interaction.completed"
    assert verified(completed, made.new_signing_secret)["data"]["status"] == "completed"
    assert len(completed.headers["webhook-signature"].split(" ")) == 2

    client.webhooks.rotate_signing_secret(made.id, revocation_behavior="revoke_previous_secrets_immediately")
    assert len(client.webhooks.get(made.id).signing_secrets or []) == 1
    client.webhooks.delete(made.id)
    assert client.webhooks.list().webhooks in (None, [])


def test_a_webhook_for_an_unknown_event_is_a_400(server: ServerProcess) -> None:
    answer = httpx.post(
        f"{server.url}/v1beta/webhooks",
        json={"uri": "http://127.0.0.1:9/x", "subscribed_events": ["image.done"]},
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "subscribed_events[0] 'image.done' is not an event" in message and "task.succeeded" in message


def test_a_pending_delivery_survives_a_crash(
    make_server: MakeServer, receiver: Receiver, backend: str
) -> None:
    """The first attempt fails; the server is killed (SIGKILL) before the retry; the next server on the
    same data dir sends it."""
    crashing = make_server(
        backend, "--emulate", "--fetch-allow", "127.0.0.1", env={"PIXELGATE_WEBHOOK_RETRY_SECONDS": "0,1.5"}
    )
    path = f"/restart-{backend}"
    receiver.fail[path] = 1
    made = httpx.post(
        f"{crashing.url}/v1/images/generations",
        json={**BODY, "callback_url": receiver.url(path)},
        timeout=30,
    )
    task_id = made.json()["id"]
    receiver.wait(path, 1)
    deadline = time.monotonic() + 10  # the failed attempt is recorded (else its claim would hold 35 s)
    while deliveries_of(crashing, task_id)[0]["attempts"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    crashing.kill()
    assert len(receiver.seen[path]) == 1
    crashing.start()
    first, second = receiver.wait(path, 2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert verified(second, owner_secret(crashing))["data"]["id"] == task_id
    delivery = settled(crashing, task_id)
    assert delivery["state"] == "delivered" and delivery["attempts"] == 2

    # Ended deliveries are kept 30 days: one aged past that is deleted when the next sender starts.
    crashing.stop()
    aged = (
        f"UPDATE webhook_deliveries SET created_at = created_at - 31 * 86400 WHERE subject_id = '{task_id}'"
    )
    if crashing.database_url:
        db_rows(crashing, aged)
    else:
        with sqlite3.connect(crashing.data_dir / "pixelgate.db") as db:
            db.execute(aged)
    crashing.start()
    deadline = time.monotonic() + 10
    while deliveries_of(crashing, task_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert deliveries_of(crashing, task_id) == []


def test_another_callback_url_is_another_request_for_idempotency(
    server: ServerProcess, receiver: Receiver
) -> None:
    key = {"Idempotency-Key": f"hook-{time.time_ns()}"}
    first = {**BODY, "callback_url": receiver.url("/idem-a")}
    made = httpx.post(f"{server.url}/v1/images/generations", json=first, headers=key, timeout=30)
    again = httpx.post(f"{server.url}/v1/images/generations", json=first, headers=key, timeout=30)
    assert made.status_code == again.status_code == 200 and made.json()["id"] == again.json()["id"]
    other = httpx.post(
        f"{server.url}/v1/images/generations",
        json={**BODY, "callback_url": receiver.url("/idem-b")},
        headers=key,
        timeout=30,
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(receiver.wait("/idem-a", 1)) == 1  # one task, one event


def test_owners_see_and_get_only_their_own(make_server: MakeServer, receiver: Receiver, backend: str) -> None:
    """With keys on: an owner's registered webhook gets that owner's events only, and another owner's
    webhooks and deliveries are 404s; the admin key sees every delivery."""
    admin = {"Authorization": f"Bearer pga_{'a' * 40}"}
    guarded = make_server(
        backend,
        "--emulate",
        "--auth",
        "--fetch-allow",
        "127.0.0.1",
        env={"PIXELGATE_ADMIN_KEY": admin["Authorization"][7:], "PIXELGATE_WEBHOOK_RETRY_SECONDS": RETRIES},
    )
    keys = {}
    for owner in ("acme", "globex"):
        made = httpx.post(f"{guarded.url}/admin/keys", json={"name": owner}, headers=admin, timeout=10)
        keys[owner] = made.json()["key"]
    acme = genai.Client(api_key=keys["acme"], http_options={"base_url": guarded.url})
    globex = genai.Client(api_key=keys["globex"], http_options={"base_url": guarded.url})
    hook = acme.webhooks.create(uri=receiver.url("/acme"), subscribed_events=["interaction.completed"])
    assert hook.id is not None
    globex.interactions.create(model=FLASH, input="a globe")
    mine = acme.interactions.create(model=FLASH, input="an anvil")
    (received,) = receiver.wait("/acme", 1)
    assert verified(received, hook.new_signing_secret or "")["data"]["id"] == mine.id
    time.sleep(0.3)
    assert len(receiver.seen["/acme"]) == 1  # globex's interaction went nowhere

    as_globex = {"x-goog-api-key": keys["globex"]}
    assert httpx.get(f"{guarded.url}/v1beta/webhooks/{hook.id}", headers=as_globex).status_code == 404
    assert globex.webhooks.list().webhooks in (None, [])
    delivery = received.headers["webhook-id"]
    assert httpx.get(f"{guarded.url}/v1/webhooks/deliveries/{delivery}", headers=as_globex).status_code == 404
    assert httpx.get(f"{guarded.url}/v1/webhooks/deliveries/{delivery}", headers=admin).status_code == 200
    secrets = {
        owner: httpx.get(f"{guarded.url}/v1/webhooks/secret", headers={"x-goog-api-key": key}).json()[
            "secret"
        ]
        for owner, key in keys.items()
    }
    assert secrets["acme"] != secrets["globex"]


def test_a_batch_that_ends_is_delivered_to_its_callback_and_to_registered_webhooks(
    server: ServerProcess, receiver: Receiver
) -> None:
    lines = "".join(
        json.dumps(
            {
                "custom_id": f"l{i}",
                "method": "POST",
                "url": "/v1/images/generations",
                "body": {
                    "model": FLASH,
                    "prompt": f"tile {i}",
                    "size": "0x0" if i == 2 else "1:1",
                    # A line may ask for its own event; the others report only through their batch.
                    **({"callback_url": receiver.url("/one-line")} if i == 0 else {}),
                },
            }
        )
        + "\n"
        for i in range(3)
    )
    with httpx.Client(base_url=server.url, timeout=30) as http:
        file_id = http.post(
            "/v1/files", files={"file": ("l.jsonl", lines.encode())}, data={"purpose": "batch"}
        ).json()["id"]
        made = http.post(
            "/v1/batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/images/generations",
                "completion_window": "24h",
                "callback_url": receiver.url("/batch-end"),
            },
        )
        assert made.status_code == 200, made.text
        batch_id = made.json()["id"]
        event = verified(receiver.wait("/batch-end", 1, timeout=30)[0], owner_secret(server))
        assert event["type"] == "batch.succeeded"
        data = event["data"]
        assert data["id"] == batch_id and data["status"] == "completed"
        assert data["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
        assert data["output_file_id"] == http.get(f"/v1/batches/{batch_id}").json()["output_file_id"]
        (line_event,) = [verified(r, owner_secret(server)) for r in receiver.wait("/one-line", 1)]
        assert line_event["type"] == "task.succeeded" and line_event["data"]["id"] == f"{batch_id}-0"
        refused = http.post(
            "/v1/batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/images/generations",
                "completion_window": "24h",
                "callback_url": "http://169.254.169.254/latest",
            },
        )
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "callback_url_forbidden"

    # Gemini: a registered webhook subscribed to batch.succeeded hears of a batch made without URLs;
    # webhookConfig's URIs replace it for a batch that names its own.
    client = genai.Client(
        api_key="k",
        http_options={"base_url": server.url, "api_version": "v1beta", "retry_options": {"attempts": 1}},
    )
    hook = client.webhooks.create(subscribed_events=["batch.succeeded"], uri=receiver.url("/batch-hook"))
    request = {
        "contents": "a lighthouse",
        "config": {"image_config": {"aspect_ratio": "1:1", "image_size": "512"}},
    }
    plain = client.batches.create(model=FLASH, src=[request])
    own = client.batches.create(
        model=FLASH,
        src=[request],
        config={"webhook_config": {"uris": [receiver.url("/own")], "user_metadata": {"job": 7}}},
    )
    registered = receiver.wait("/batch-hook", 1, timeout=30)
    assert [json.loads(r.body)["data"]["name"] for r in registered] == [plain.name]
    own_event = json.loads(receiver.wait("/own", 1, timeout=30)[0].body)
    assert own_event["data"]["name"] == own.name and own_event["data"]["user_metadata"] == {"job": 7}
    client.webhooks.delete(id=hook.id or "")
