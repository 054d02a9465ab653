"""The task APIs over plain HTTP: the task-style gateway of seeds 000-002, seed 003's async mode, failed
and cancelled tasks, the signed image URLs and reproducible images."""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from PIL import Image

from conftest import MakeServer, ServerProcess, db_rows, png_bytes
from pixelgate.catalog import default_catalog
from pixelgate.catalog.validation import validate
from pixelgate.core.request import ImageRequest, Limits
from pixelgate.providers.base import Generation
from pixelgate.providers.emulator import render
from pixelgate.store.blobs import UrlSigner

DAY = 24 * 3600
TASK_KEYS = {"id", "object", "model", "status", "progress", "created_at", "metadata"}
SYNC_KEYS = {"created", "data", "size", "output_format", "usage"}
FLASH_ALIAS = "gemini-3.1-flash-image-preview-official"
PRO_4K = "gemini-3-pro-image-preview-4k"
TERMINAL = {"completed", "failed", "cancelled"}
TASK_STYLE_STATUSES = {"queued", "in_progress", *TERMINAL}
ASYNC_STATUSES = {"queued", "processing", *TERMINAL}


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def poll(
    client: httpx.Client,
    path: str,
    *,
    until: Callable[[dict[str, Any]], bool] = lambda body: body["status"] in TERMINAL,
    timeout: float = 30.0,
    seen: set[str] | None = None,
) -> dict[str, Any]:
    """GET ``path`` every 50 ms until ``until`` holds; every status read is added to ``seen``."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if seen is not None:
            seen.add(body["status"])
        if until(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} is still {body['status']!r} after {timeout} s: {body}")
        time.sleep(0.05)


def create(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/images/generations", json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def expected_png(
    model: str, prompt: str, aspect: str, size: str, *, seed: int | None = None, refs: tuple[bytes, ...] = ()
) -> bytes:
    """The emulator's picture for this request, rendered here: what the server must hand out."""
    request, spec = validate(
        ImageRequest(model=model, prompt=prompt, aspect_ratio=aspect, image_size=size, seed=seed),
        default_catalog(),
        Limits(),
    )
    return render(Generation(request=request, spec=spec, references=refs)).data


def download(client: httpx.Client, url: str) -> httpx.Response:
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response


def signing_secret(server: ServerProcess) -> str:
    """The server's URL-signing secret (to make URLs the server never handed out)."""
    ((secret,),) = db_rows(server, "SELECT value FROM meta WHERE key = 'url_signing_secret'")
    return str(secret)


@contextlib.contextmanager
def client_for(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


# --- (a) the task-style client of seeds 000-002 ----------------------------------------------------------

MINIMAL = {
    "model": FLASH_ALIAS,
    "prompt": "High-end e-commerce product poster, soft light, realistic texture, minimal background",
    "size": "1:1",
    "resolution": "1K",
}


def test_minimal_request_answers_at_once_with_the_queued_task(http: httpx.Client) -> None:
    before = int(time.time())
    created = create(http, MINIMAL)
    assert set(created) == TASK_KEYS
    assert created["id"].startswith("task_img_") and len(created["id"]) > len("task_img_")
    assert created["object"] == "generation.task"
    assert created["model"] == FLASH_ALIAS
    assert created["status"] == "queued"
    assert created["progress"] == 0
    assert isinstance(created["created_at"], int) and before <= created["created_at"] <= time.time()
    assert created["metadata"] == {}


def test_polling_reaches_completed_with_a_downloadable_url(http: httpx.Client) -> None:
    created = create(http, MINIMAL)
    seen: set[str] = set()
    done = poll(http, f"/v1/images/generations/{created['id']}", seen=seen)
    assert seen <= TASK_STYLE_STATUSES
    assert done["status"] == "completed", done
    assert done["progress"] == 100
    assert done["id"] == created["id"] and done["model"] == FLASH_ALIAS
    assert done["object"] == "generation.task"
    assert done["created_at"] == created["created_at"]
    assert done["created_at"] <= done["completed_at"] <= time.time()
    assert done["expires_at"] - done["completed_at"] == DAY
    assert "error" not in done
    data = done["result"]["data"]
    assert len(data) == 1
    assert data[0]["width"] == 1024 and data[0]["height"] == 1024 and data[0]["mime_type"] == "image/png"
    assert done["url"] == data[0]["url"]

    image = download(http, done["url"])
    assert image.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(image.content))
    assert picture.format == "PNG" and picture.size == (1024, 1024)
    assert image.content == expected_png(FLASH_ALIAS, MINIMAL["prompt"], "1:1", "1K")

    again = http.get(f"/v1/images/generations/{created['id']}").json()
    assert again["url"] == done["url"], "every poll hands out the same URL"


def test_metadata_resolution_picks_the_size(http: httpx.Client) -> None:
    body = {
        "model": FLASH_ALIAS,
        "prompt": "a kite over dunes",
        "size": "16:9",
        "metadata": {"resolution": "2K", "campaign": "spring"},
    }
    created = create(http, body)
    assert created["status"] == "queued" and created["metadata"]["campaign"] == "spring"
    done = poll(http, f"/v1/images/generations/{created['id']}")
    assert done["status"] == "completed", done
    assert done["metadata"]["campaign"] == "spring"
    item = done["result"]["data"][0]
    assert (item["width"], item["height"]) == (2752, 1536)
    assert Image.open(io.BytesIO(download(http, done["url"]).content)).size == (2752, 1536)


def test_metadata_resolution_error_names_that_field(http: httpx.Client) -> None:
    response = http.post(
        "/v1/images/generations",
        json={"model": FLASH_ALIAS, "prompt": "x", "size": "1:1", "metadata": {"resolution": "2k"}},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "metadata.resolution"
    assert error["message"] == (
        f"metadata.resolution '2k' is not valid for {FLASH_ALIAS}: use 512, 1K, 2K or 4K (uppercase K)"
    )


@pytest.mark.parametrize("field", ["reference_images", "image_urls"])
def test_data_uri_references(http: httpx.Client, field: str) -> None:
    red, blue = png_bytes(), png_bytes(color=(0, 0, 255))
    prompt = f"combine these ({field})"
    body = {"model": FLASH_ALIAS, "prompt": prompt, "size": "1:1", "resolution": "1K", "seed": 4}
    created = create(http, {**body, field: [data_uri(red), data_uri(blue)]})
    assert created["status"] == "queued" and set(created) == TASK_KEYS
    done = poll(http, f"/v1/images/generations/{created['id']}")
    assert done["status"] == "completed", done
    with_refs = download(http, done["url"]).content
    assert with_refs == expected_png(FLASH_ALIAS, prompt, "1:1", "1K", seed=4, refs=(red, blue))
    assert with_refs != expected_png(FLASH_ALIAS, prompt, "1:1", "1K", seed=4)
    # The same task read at seed 003's address bills both input images (258 tokens each, both <= 384 px).
    usage = http.get(f"/v1/tasks/{created['id']}").json()["usage"]
    assert usage["input_tokens_details"]["image_tokens"] == 2 * 258


def test_reference_kind_over_the_model_limit_is_a_400(http: httpx.Client) -> None:
    response = http.post(
        "/v1/images/generations",
        json={
            "model": FLASH_ALIAS,
            "prompt": "x",
            "size": "1:1",
            "reference_images": [{"url": data_uri(png_bytes()), "kind": "style"}],
        },
    )
    assert response.status_code == 400
    assert (
        response.json()["error"]["message"]
        == f"{FLASH_ALIAS} accepts at most 0 style reference images, got 1"
    )


def test_pro_4k_alias_defaults_to_4k(http: httpx.Client) -> None:
    created = create(http, {"model": PRO_4K, "prompt": "a city skyline at night", "size": "16:9"})
    assert created["status"] == "queued" and created["model"] == PRO_4K
    done = poll(http, f"/v1/images/generations/{created['id']}", timeout=60)
    assert done["status"] == "completed", done
    item = done["result"]["data"][0]
    assert (item["width"], item["height"]) == (5504, 3072)
    assert Image.open(io.BytesIO(download(http, done["url"]).content)).size == (5504, 3072)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"size": "16:9", "resolution": "2K"},
            f"resolution '2K' is not valid for {PRO_4K}: use 4K (uppercase K)",
        ),
        (
            {"size": "5:4"},
            f"aspect ratio 5:4 is not offered by {PRO_4K}: use 1:1, 16:9, 9:16, 4:3, 3:4 or 21:9",
        ),
    ],
)
def test_pro_4k_alias_refuses_what_its_page_does_not_offer(
    http: httpx.Client, extra: dict[str, str], message: str
) -> None:
    response = http.post("/v1/images/generations", json={"model": PRO_4K, "prompt": "x", **extra})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"] == message


@pytest.mark.parametrize(
    "path", ["/v1/images/generations/task_img_0000000000", "/v1/tasks/task_img_0000000000"]
)
def test_unknown_task_is_a_404(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "task_not_found" and "task_img_0000000000" in error["message"]


# --- (b) seed 003's async mode -----------------------------------------------------------------------------


def test_async_task_ends_with_the_synchronous_body(http: httpx.Client) -> None:
    body = {
        "model": "gemini-3.1-flash-image",
        "prompt": "a cozy coffee shop",
        "size": "1024x1024",
        "seed": 11,
    }
    sync_response = http.post("/v1/images/generations", json=body)
    assert sync_response.status_code == 200, sync_response.text
    sync = sync_response.json()
    assert set(sync) == SYNC_KEYS

    created = create(http, {**body, "async": True})
    assert created["id"].startswith("task_")
    assert created["status"] == "queued" and created["progress"] == 0
    seen: set[str] = set()
    done = poll(http, f"/v1/tasks/{created['id']}", seen=seen)
    assert seen <= ASYNC_STATUSES
    assert done["status"] == "completed", done
    assert done["id"] == created["id"] and done["progress"] == 100
    assert set(sync) <= set(done), f"missing {set(sync) - set(done)}"
    assert (
        [set(item) for item in done["data"]]
        == [set(item) for item in sync["data"]]
        == [{"url", "b64_json", "revised_prompt"}]  # no response_format asked: both (README)
    )
    assert done["usage"] == sync["usage"]
    assert done["size"] == sync["size"] == "1024x1024"
    assert done["output_format"] == sync["output_format"] == "png"
    assert done["data"][0]["revised_prompt"] == sync["data"][0]["revised_prompt"]
    assert download(http, done["data"][0]["url"]).content == download(http, sync["data"][0]["url"]).content


def test_async_task_with_b64_json(http: httpx.Client) -> None:
    body = {
        "model": "gemini-2.5-flash-image",
        "prompt": "a pear",
        "response_format": "b64_json",
        "async": True,
    }
    created = create(http, body)
    done = poll(http, f"/v1/tasks/{created['id']}")
    assert done["status"] == "completed", done
    assert set(done["data"][0]) == {"b64_json", "revised_prompt"}
    image = Image.open(io.BytesIO(base64.b64decode(done["data"][0]["b64_json"])))
    assert image.size == (1024, 1024)
    assert done["usage"]["output_tokens"] == 1290


# --- (c) failed tasks -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failing_server(backend: str, make_server: MakeServer) -> ServerProcess:
    return make_server(backend, "--emulate", "--emulate-faults", "503:1")


@pytest.fixture(scope="module")
def limited_server(backend: str, make_server: MakeServer) -> ServerProcess:
    return make_server(backend, "--emulate", "--emulate-faults", "429:1")


def test_failed_async_task_carries_the_error(failing_server: ServerProcess) -> None:
    with client_for(failing_server) as client:
        created = create(client, {"model": "gemini-3.1-flash-image", "prompt": "x", "async": True})
        done = poll(client, f"/v1/tasks/{created['id']}")
        assert done["status"] == "failed", done
        assert done["error"]["code"] == "upstream_http_503"
        assert done["error"]["message"] == "the emulated upstream answered HTTP 503 (injected fault)"
        assert "data" not in done and "usage" not in done
        assert done["completed_at"] >= done["created_at"]

        task_style = client.get(f"/v1/images/generations/{created['id']}").json()
        assert task_style["status"] == "failed"
        assert task_style["error"]["code"] == "upstream_http_503"
        assert task_style["error"]["message"] == done["error"]["message"]
        assert "url" not in task_style and "result" not in task_style


def test_failed_task_style_task(failing_server: ServerProcess) -> None:
    with client_for(failing_server) as client:
        created = create(client, MINIMAL)
        assert created["status"] == "queued"
        done = poll(client, f"/v1/images/generations/{created['id']}")
        assert done["status"] == "failed", done
        assert done["error"]["code"] == "upstream_http_503" and done["error"]["message"]
        assert done["progress"] < 100


def test_failed_synchronous_call_is_a_502(failing_server: ServerProcess) -> None:
    with client_for(failing_server) as client:
        response = client.post(
            "/v1/images/generations", json={"model": "gemini-3.1-flash-image", "prompt": "x"}
        )
    assert response.status_code == 502
    assert response.json() == {
        "error": {
            "message": "the emulated upstream answered HTTP 503 (injected fault)",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_http_503",
        }
    }


def test_rate_limited_synchronous_call_is_a_429_with_retry_after(limited_server: ServerProcess) -> None:
    with client_for(limited_server) as client:
        response = client.post(
            "/v1/images/generations", json={"model": "gemini-3.1-flash-image", "prompt": "x"}
        )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    error = response.json()["error"]
    assert error["type"] == "rate_limit_exceeded" and error["code"] == "rate_limit_exceeded"
    assert "retry after 2 s" in error["message"]


def test_rate_limited_task_fails_with_rate_limit_exceeded(limited_server: ServerProcess) -> None:
    with client_for(limited_server) as client:
        created = create(client, MINIMAL)
        done = poll(client, f"/v1/images/generations/{created['id']}")
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "rate_limit_exceeded"
    assert done["error"]["type"] == "rate_limit_exceeded"


def test_cancelling_a_failed_task_is_a_409(failing_server: ServerProcess) -> None:
    with client_for(failing_server) as client:
        created = create(client, {"model": "gemini-3.1-flash-image", "prompt": "x", "async": True})
        poll(client, f"/v1/tasks/{created['id']}")
        response = client.post(f"/v1/tasks/{created['id']}/cancel")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "task_already_finished"
        assert client.get(f"/v1/tasks/{created['id']}").json()["status"] == "failed"


# --- (d) cancelling ---------------------------------------------------------------------------------------

LATENCY = 5.0


@pytest.fixture(scope="module")
def slow_server(backend: str, make_server: MakeServer) -> ServerProcess:
    return make_server(backend, "--emulate", "--emulate-latency", str(LATENCY))


@pytest.fixture(scope="module")
def idle_server(backend: str, make_server: MakeServer) -> ServerProcess:
    """Accepts tasks and runs none: they stay queued."""
    return make_server(backend, "--emulate", "--no-workers")


def test_cancel_a_running_task(slow_server: ServerProcess) -> None:
    with client_for(slow_server) as client:
        created = create(client, {"model": "gemini-3.1-flash-image", "prompt": "slow", "async": True})
        started = time.monotonic()
        task_path = f"/v1/tasks/{created['id']}"
        running = poll(client, task_path, until=lambda body: body["status"] != "queued", timeout=10)
        assert running["status"] == "processing", running
        assert client.get(f"/v1/images/generations/{created['id']}").json()["status"] == "in_progress"

        first = client.post(f"{task_path}/cancel")
        assert first.status_code == 200, first.text
        cancelled = first.json()
        assert cancelled["status"] == "cancelled" and cancelled["id"] == created["id"]
        assert "data" not in cancelled and "error" not in cancelled
        assert cancelled["completed_at"] >= cancelled["created_at"]

        second = client.post(f"{task_path}/cancel")
        assert second.status_code == 200, second.text
        assert second.json()["status"] == "cancelled"
        assert second.json()["completed_at"] == cancelled["completed_at"]

        # Once the emulator's latency has passed, the task has still not come back to life.
        time.sleep(max(0.0, LATENCY + 0.5 - (time.monotonic() - started)))
        later = client.get(task_path).json()
        assert later["status"] == "cancelled" and "data" not in later
        task_style = client.get(f"/v1/images/generations/{created['id']}").json()
        assert task_style["status"] == "cancelled" and "url" not in task_style


def test_cancel_a_running_task_style_task(slow_server: ServerProcess) -> None:
    with client_for(slow_server) as client:
        created = create(client, {**MINIMAL, "prompt": "slow task-style"})
        path = f"/v1/images/generations/{created['id']}"
        poll(client, path, until=lambda body: body["status"] != "queued", timeout=10)
        response = client.post(f"{path}/cancel")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "cancelled" and body["object"] == "generation.task"
        assert client.get(path).json()["status"] == "cancelled"


def test_cancel_a_queued_task(idle_server: ServerProcess) -> None:
    with client_for(idle_server) as client:
        created = create(client, {"model": "gemini-3.1-flash-image", "prompt": "never run", "async": True})
        path = f"/v1/tasks/{created['id']}"
        assert client.get(path).json()["status"] == "queued"
        response = client.post(f"{path}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        again = client.post(f"{path}/cancel")
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        assert client.get(path).json()["status"] == "cancelled"


def test_a_synchronous_caller_learns_its_task_was_cancelled(slow_server: ServerProcess) -> None:
    answer: dict[str, Any] = {}

    def call() -> None:
        with client_for(slow_server) as client:
            started = time.monotonic()
            response = client.post(
                "/v1/images/generations", json={"model": "gemini-3.1-flash-image", "prompt": "sync"}
            )
            answer.update(response=response, elapsed=time.monotonic() - started)

    before = {row[0] for row in db_rows(slow_server, "SELECT id FROM tasks")}
    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 10
    while not (new := {row[0] for row in db_rows(slow_server, "SELECT id FROM tasks")} - before):
        assert time.monotonic() < deadline, "the synchronous call made no task"
        time.sleep(0.05)
    (task_id,) = new
    with client_for(slow_server) as client:
        assert client.post(f"/v1/tasks/{task_id}/cancel").json()["status"] == "cancelled"
    caller.join(30)
    response = answer["response"]
    assert response.status_code == 499
    assert response.json()["error"]["code"] == "task_cancelled"
    assert answer["elapsed"] < LATENCY, (
        "the caller is told at once, not when the emulator would have finished"
    )


def test_cancelling_a_completed_task_is_a_409(http: httpx.Client) -> None:
    created = create(http, {"model": "gemini-3.1-flash-image", "prompt": "done soon", "async": True})
    path = f"/v1/tasks/{created['id']}"
    assert poll(http, path)["status"] == "completed"
    for cancel_path in (f"{path}/cancel", f"/v1/images/generations/{created['id']}/cancel"):
        response = http.post(cancel_path)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["type"] == "conflict_error" and error["code"] == "task_already_finished"
        assert created["id"] in error["message"]
    after = http.get(path).json()
    assert after["status"] == "completed" and after["data"]


def test_cancelling_an_unknown_task_is_a_404(http: httpx.Client) -> None:
    response = http.post("/v1/tasks/task_img_ffffffffffffffffffff/cancel")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "task_not_found"


# --- (e) signed URLs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed(server: ServerProcess) -> tuple[str, str, int, str]:
    """A completed task's image URL, split up: (url, key, expires, signature)."""
    with client_for(server) as client:
        done = poll(client, f"/v1/images/generations/{create(client, MINIMAL)['id']}")
    url = done["url"]
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    key = parts.path.removeprefix("/blobs/")
    return url, key, int(query["expires"][0]), query["signature"][0]


def blob_url(server: ServerProcess, key: str, expires: int | str, signature: str) -> str:
    return f"{server.url}/blobs/{key}?expires={expires}&signature={signature}"


def assert_forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["type"] == "permission_error" and error["code"] == "invalid_signature"


def test_the_handed_out_url_works(http: httpx.Client, signed: tuple[str, str, int, str]) -> None:
    url, key, expires, _ = signed
    assert key.endswith("/out-0.png")
    assert expires > time.time() + DAY - 600
    assert download(http, url).headers["content-type"] == "image/png"


def test_tampered_signature_is_403(
    http: httpx.Client, server: ServerProcess, signed: tuple[str, str, int, str]
) -> None:
    _, key, expires, signature = signed
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert_forbidden(http.get(blob_url(server, key, expires, flipped)))
    assert_forbidden(http.get(blob_url(server, key, expires, signature.upper())))
    assert_forbidden(http.get(blob_url(server, key, expires, "")))
    assert_forbidden(http.get(f"{server.url}/blobs/{key}"))


def test_changed_expires_is_403(
    http: httpx.Client, server: ServerProcess, signed: tuple[str, str, int, str]
) -> None:
    _, key, expires, signature = signed
    assert_forbidden(http.get(blob_url(server, key, expires + 1, signature)))
    assert_forbidden(http.get(blob_url(server, key, expires + 10 * DAY, signature)))


def test_signature_of_another_blob_is_403(
    http: httpx.Client, server: ServerProcess, signed: tuple[str, str, int, str]
) -> None:
    _, key, expires, signature = signed
    task_id = key.split("/")[0]
    assert_forbidden(http.get(blob_url(server, f"{task_id}/out-1.png", expires, signature)))


def test_expired_url_is_403(
    http: httpx.Client, server: ServerProcess, signed: tuple[str, str, int, str]
) -> None:
    _, key, _, _ = signed
    signer = UrlSigner(signing_secret(server))
    # Our own signature is right: a fresh expiry opens the image...
    fresh = int(time.time()) + 600
    assert http.get(f"{server.url}/blobs/{key}?{signer.query(key, fresh)}").status_code == 200
    # ...and one in the past does not.
    past = int(time.time()) - 5
    assert_forbidden(http.get(f"{server.url}/blobs/{key}?{signer.query(key, past)}"))


def test_unknown_blob(http: httpx.Client, server: ServerProcess, signed: tuple[str, str, int, str]) -> None:
    _, key, expires, signature = signed
    task_id = key.split("/")[0]
    unknown = "task_img_00000000000000000000/out-0.png"
    assert_forbidden(http.get(blob_url(server, unknown, expires, signature)))
    signer = UrlSigner(signing_secret(server))
    for missing in (unknown, f"{task_id}/out-7.png"):
        response = http.get(f"{server.url}/blobs/{missing}?{signer.query(missing, expires)}")
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "image_not_found"


RESULT_TTL = 2


@pytest.fixture()
def short_lived_server(make_server: MakeServer, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """Results (and their URLs) expire after RESULT_TTL seconds. SQLite only: expiry is decided in the
    API layer, the same for both databases."""
    monkeypatch.setenv("PIXELGATE_RESULT_TTL_SECONDS", str(RESULT_TTL))
    return make_server("sqlite", "--emulate")


def test_a_url_stops_working_when_its_result_expires(short_lived_server: ServerProcess) -> None:
    with client_for(short_lived_server) as client:
        done = poll(client, f"/v1/images/generations/{create(client, MINIMAL)['id']}")
        assert done["status"] == "completed", done
        assert done["expires_at"] - done["completed_at"] == RESULT_TTL
        assert client.get(done["url"]).status_code == 200
        time.sleep(max(0.0, done["expires_at"] + 1.1 - time.time()))
        assert_forbidden(client.get(done["url"]))


def test_an_expired_task_never_hands_out_a_dead_url(short_lived_server: ServerProcess) -> None:
    with client_for(short_lived_server) as client:
        created = create(client, MINIMAL)
        done = poll(client, f"/v1/images/generations/{created['id']}")
        time.sleep(max(0.0, done["expires_at"] + 1.1 - time.time()))
        for path in (f"/v1/images/generations/{created['id']}", f"/v1/tasks/{created['id']}"):
            body = client.get(path).json()
            urls = [body["url"]] if "url" in body else [item["url"] for item in body.get("data", [])]
            for url in urls:
                assert client.get(url).status_code == 200, f"{path} handed out {url}, which is refused"


def raw_get(server: ServerProcess, path: str) -> int:
    """GET with the path sent exactly as written (httpx would normalise dot segments)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


TRAVERSALS = [
    ("..", "pixelgate.db"),
    ("%2e%2e", "pixelgate.db"),
    ("..", ".migrate.lock"),
    ("task_img_x", ".."),
    ("task_img_x", "..%2F..%2Fpixelgate.db"),
    ("..%2F..", "pixelgate.db"),
    ("%2e%2e%2f%2e%2e%2fetc", "passwd"),
    ("task_img_x", "%2e%2e%5c%2e%2e%5cpixelgate.db"),
    ("task_img_x", "out-0.png%00.txt"),
]


@pytest.mark.parametrize(("task_part", "name_part"), TRAVERSALS)
def test_path_traversal_is_refused(server: ServerProcess, task_part: str, name_part: str) -> None:
    signer = UrlSigner(signing_secret(server))
    expires = int(time.time()) + 600
    path = f"/blobs/{task_part}/{name_part}"
    unsigned = raw_get(server, f"{path}?expires={expires}&signature=00")
    assert 400 <= unsigned < 500, f"{path}: {unsigned}"
    # Even with a valid signature over the decoded key the store must not step outside its folder.
    key = unquote(f"{task_part}/{name_part}")
    status = raw_get(server, f"{path}?{signer.query(key, expires)}")
    assert 400 <= status < 500, f"{path} signed: {status}"


@pytest.mark.parametrize("expires", ["abc", "1.5", "-1", "99999999999999999999999999"])
def test_malformed_expires_is_4xx(
    server: ServerProcess, signed: tuple[str, str, int, str], expires: str
) -> None:
    _, key, _, signature = signed
    status = raw_get(server, f"/blobs/{key}?expires={expires}&signature={signature}")
    assert 400 <= status < 500, status


def non_canonical(expires: int) -> list[str]:
    """``expires`` written as Python's int() (and so pydantic) would read it, but not as the signer wrote it."""
    text = str(expires)
    fullwidth = "".join(chr(0xFF10 + int(digit)) for digit in text)  # U+FF10 FULLWIDTH DIGIT ZERO onwards
    underscored = f"{text[:3]}_{text[3:]}"
    return [f"+{text}", f" {text}", f"{text} ", f"0{text}", f"{text}.0", underscored, fullwidth, f"{text}e0"]


def test_only_the_signers_own_spelling_of_expires_is_accepted(
    http: httpx.Client, server: ServerProcess, signed: tuple[str, str, int, str]
) -> None:
    _, key, expires, signature = signed
    assert http.get(blob_url(server, key, expires, signature)).status_code == 200
    for spelling in non_canonical(expires):
        response = http.get(f"{server.url}/blobs/{key}", params={"expires": spelling, "signature": signature})
        assert response.status_code == 403, f"expires={spelling!r}: {response.status_code}"


# --- (f) reproducible images ------------------------------------------------------------------------------


def b64_image(client: httpx.Client, **fields: Any) -> bytes:
    body = {"model": "gemini-3.1-flash-image", "prompt": "a red fox in snow", "response_format": "b64_json"}
    response = client.post("/v1/images/generations", json={**body, **fields})
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["data"][0]["b64_json"])


def test_same_seed_same_bytes_other_seed_other_bytes(http: httpx.Client) -> None:
    first = b64_image(http, seed=7, size="512x512")
    assert b64_image(http, seed=7, size="512x512") == first
    assert b64_image(http, seed=8, size="512x512") != first
    assert Image.open(io.BytesIO(first)).size == (512, 512)


def test_task_style_tasks_with_the_same_seed_download_the_same_bytes(http: httpx.Client) -> None:
    body = {**MINIMAL, "resolution": "512", "seed": 99}
    images = []
    for seed in (99, 99, 100):
        created = create(http, {**body, "seed": seed})
        done = poll(http, f"/v1/images/generations/{created['id']}")
        assert done["status"] == "completed", done
        images.append(download(http, done["url"]).content)
    assert images[0] == images[1]
    assert images[0] != images[2]
    assert images[0] == expected_png(FLASH_ALIAS, MINIMAL["prompt"], "1:1", "512", seed=99)
