"""API keys (issue 5, first part), against real servers with auth on: the admin API and ``pixelgate keys``;
secrets shown once and never stored; a key sent as ``Authorization: Bearer``, ``x-goog-api-key`` or
``?key=`` from the official openai and google-genai SDKs and plain HTTP; one answer for every invalid key
(unknown, wrong, expired, disabled, deleted) in each dialect's shape; allowed models; isolation between
owners on every endpoint that takes an id; failed guesses limited per client address; the admin key made
once, into a file; auth off only on loopback. (When keys are required by default: test_auth_defaults.py.)

Failed key checks are counted per client address (past 20 a minute the address gets 429s), so the tests
that send bad keys to the shared server each send them from a loopback address of their own
(``127.0.0.N``, which Linux routes to the server on 127.0.0.1): none of them can poison another.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import openai
import pytest
from google import genai
from google.genai import _interactions, errors, types
from PIL import Image

from conftest import MakeServer, ServerProcess, db_rows, free_port
from pixelgate.catalog import default_catalog

CATALOG = default_catalog()
ADMIN = "pga_" + secrets.token_urlsafe(32)
ADMIN_ENV = {"PIXELGATE_ADMIN_KEY": ADMIN}
FLASH = "gemini-3.1-flash-image"
NANO = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"
SMALL = {"type": "image", "image_size": "512"}
TERMINAL = {"completed", "failed", "cancelled"}
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
}
WAYS = ("bearer", "x-goog-api-key", "query")
BOX = str.maketrans("", "", "│╭╮╰╯─┃┏┓┗┛━")

_addresses = itertools.count(10)


def fresh_address() -> str:
    """A loopback source address no other test uses: its failed key checks are its own."""
    n = next(_addresses)
    assert n < 250, "out of loopback addresses"
    return f"127.0.0.{n}"


# --- helpers ------------------------------------------------------------------------------------------------


def client(server: ServerProcess, source: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=server.url, timeout=60, transport=transport)


def call(
    server: ServerProcess,
    method: str,
    path: str,
    key: str | None = None,
    *,
    how: str = "bearer",
    body: dict[str, Any] | None = None,
    source: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One request, with ``key`` sent one of the three ways (or none)."""
    sent = dict(headers or {})
    if key is not None:
        if how == "bearer":
            sent["Authorization"] = f"Bearer {key}"
        elif how == "x-goog-api-key":
            sent["x-goog-api-key"] = key
        else:
            assert how == "query"
            # Added to the path's own query (httpx's params= would replace it, e.g. ?alt=sse).
            path += ("&" if "?" in path else "?") + urlencode({"key": key})
    with client(server, source) as http:
        return http.request(method, path, headers=sent, json=body)


def admin(
    server: ServerProcess, method: str, path: str, body: dict[str, Any] | None = None
) -> httpx.Response:
    return call(server, method, path, ADMIN, body=body)


def new_key(server: ServerProcess, name: str, **fields: Any) -> dict[str, Any]:
    response = admin(server, "POST", "/admin/keys", {"name": name, **fields})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def key_state(server: ServerProcess, key_id: str) -> str:
    response = admin(server, "GET", f"/admin/keys/{key_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["state"])


def openai_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """OpenAI's error shape, with its status and code."""
    assert response.status_code == status, response.text[:1000]
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert error["code"] == code, body
    assert error["message"], body
    return error


def gemini_error(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    """Google's error shape, with its status, google.rpc status name and ErrorInfo reason."""
    assert response.status_code == status, response.text[:1000]
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == status and error["status"] == GOOGLE_STATUS[status], body
    reasons = [d["reason"] for d in error["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert reasons == [reason], body
    assert error["message"], body
    return error


def dialect_error(dialect: str, response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    if dialect == "openai":
        return openai_error(response, status, code)
    return gemini_error(response, status, code.upper())


def generation_body(path: str, model: str = FLASH, prompt: str = "a kite over the sea") -> dict[str, Any]:
    """A request for ``model``'s smallest image, in the API of ``path``."""
    smallest = CATALOG.get(model).image_sizes[0]
    if path.startswith("/v1/images"):
        return {"model": model, "prompt": prompt, "response_format": "b64_json", "resolution": smallest}
    if "interactions" in path:
        return {"model": model, "input": prompt, "response_format": {"type": "image", "image_size": smallest}}
    return {
        "contents": [{"role": "user", "parts": [{"text": prompt}]}],
        "generationConfig": {"imageConfig": {"imageSize": smallest}},
    }


# Routes every dialect's clients use: (id, dialect of its errors, method, path, body).
ROUTES = [
    ("openai-models", "openai", "GET", "/v1/models", None),
    ("openai-model", "openai", "GET", f"/v1/models/{FLASH}", None),
    ("openai-generate", "openai", "POST", "/v1/images/generations", generation_body("/v1/images")),
    ("gemini-models", "gemini", "GET", "/v1beta/models", None),
    (
        "gemini-generate",
        "gemini",
        "POST",
        f"/v1beta/models/{FLASH}:generateContent",
        generation_body(":generateContent"),
    ),
    (
        "gemini-stream",
        "gemini",
        "POST",
        f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse",
        generation_body(":generateContent"),
    ),
    ("interactions", "gemini", "POST", "/v1beta/interactions", generation_body("/interactions")),
]
ROUTE_PARAMS = [pytest.param(*route[1:], id=route[0]) for route in ROUTES]


def error_dialect(dialect: str, path: str, how: str | None) -> str:
    """``/v1/models`` is both APIs' path: a Google key header (or ``?key=``) makes it Gemini's."""
    if path.startswith("/v1/models") and how in ("x-goog-api-key", "query"):
        return "gemini"
    return dialect


def poll(server: ServerProcess, path: str, key: str, *, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = call(server, "GET", path, key)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in TERMINAL:
            return body
        assert time.monotonic() < deadline, f"{path} is still {body['status']} after {timeout} s"
        time.sleep(0.05)


def unknown_task_id() -> str:
    return "task_img_" + secrets.token_hex(10)


def assert_same_as_unknown(
    server: ServerProcess,
    method: str,
    path_template: str,
    real_id: str,
    key: str,
    body_template: dict[str, Any] | None = None,
) -> None:
    """Another owner's id answers exactly as an id nobody has (the id itself aside)."""
    other = unknown_task_id()

    def ask(task_id: str) -> httpx.Response:
        body = json.loads(json.dumps(body_template).replace("{id}", task_id)) if body_template else None
        return call(server, method, path_template.format(id=task_id), key, body=body)

    foreign, unknown = ask(real_id), ask(other)
    assert foreign.status_code == 404, f"{method} {path_template} {real_id}: {foreign.text}"
    assert unknown.status_code == 404, unknown.text
    assert foreign.text.replace(real_id, other) == unknown.text


def pixelgate(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    full_env.pop("PIXELGATE_SERVER", None)
    full_env.pop("PIXELGATE_ADMIN_KEY", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pixelgate", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    """stdout and stderr as one line of words: rich wraps long lines and draws boxes."""
    return " ".join((result.stdout + result.stderr).translate(BOX).split())


# --- servers and keys ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def main(make_server: MakeServer) -> ServerProcess:
    """Auth on, the admin key from PIXELGATE_ADMIN_KEY, every model from the emulator."""
    return make_server("sqlite", "--emulate", "--auth", env=ADMIN_ENV)


@pytest.fixture(scope="module")
def queued(make_server: MakeServer) -> ServerProcess:
    """Auth on and no workers: tasks stay queued, so cancelling them is possible and visible."""
    return make_server("sqlite", "--emulate", "--auth", "--no-workers", env=ADMIN_ENV)


@pytest.fixture(scope="module")
def owners(main: ServerProcess) -> dict[str, str]:
    """alice and alice-ci share the owner alice; bob is another owner."""
    return {
        "alice": new_key(main, "alice")["key"],
        "alice-ci": new_key(main, "alice-ci", owner="alice")["key"],
        "bob": new_key(main, "bob")["key"],
    }


# --- the admin API ------------------------------------------------------------------------------------------


def test_admin_creates_lists_gets_disables_and_deletes_keys(main: ServerProcess) -> None:
    before = time.time()
    made = new_key(main, "marketing-batch", owner="marketing", models=[FLASH, NANO], expires_in_days=30)
    assert set(made) >= {  # (later parts of issue 5 add fields, e.g. limits)
        "id",
        "object",
        "name",
        "owner",
        "models",
        "created_at",
        "expires_at",
        "disabled_at",
        "state",
        "key",
    }
    assert made["object"] == "api_key" and made["name"] == "marketing-batch" and made["owner"] == "marketing"
    assert made["models"] == [FLASH, NANO] and made["state"] == "active" and made["disabled_at"] is None
    assert int(before) - 1 <= made["created_at"] <= time.time() + 1
    assert abs(made["expires_at"] - (before + 30 * 86400)) < 5
    assert re.fullmatch(rf"pgk_{re.escape(made['id'])}_\S{{20,}}", made["key"]), made["key"]
    secret = made["key"].removeprefix(f"pgk_{made['id']}_")

    plain = new_key(main, "plain-key")
    assert plain["owner"] == "plain-key", "the owner defaults to the key's name"
    assert plain["models"] is None and plain["expires_at"] is None and plain["state"] == "active"
    assert plain["id"] != made["id"] and plain["key"] != made["key"]

    listed = admin(main, "GET", "/admin/keys")
    assert listed.status_code == 200, listed.text
    assert listed.json()["object"] == "list"
    by_id = {k["id"]: k for k in listed.json()["data"]}
    assert {made["id"], plain["id"]} <= set(by_id)
    assert all("key" not in k for k in by_id.values()), "a listing never carries a secret"
    assert secret not in listed.text and made["key"] not in listed.text
    assert by_id[made["id"]] == {k: v for k, v in made.items() if k != "key"}

    only = admin(main, "GET", "/admin/keys?owner=marketing")
    assert [k["id"] for k in only.json()["data"]] == [made["id"]]

    got = admin(main, "GET", f"/admin/keys/{made['id']}")
    assert got.status_code == 200 and got.json() == by_id[made["id"]]
    assert secret not in got.text

    assert call(main, "GET", "/v1/models", made["key"]).status_code == 200
    disabled = admin(main, "POST", f"/admin/keys/{made['id']}/disable")
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["state"] == "disabled" and disabled.json()["disabled_at"] is not None
    assert secret not in disabled.text
    assert key_state(main, made["id"]) == "disabled"
    assert made["id"] in {k["id"] for k in admin(main, "GET", "/admin/keys").json()["data"]}, "still listed"

    deleted = admin(main, "DELETE", f"/admin/keys/{made['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"id": made["id"], "object": "api_key", "deleted": True}
    assert made["id"] not in {k["id"] for k in admin(main, "GET", "/admin/keys").json()["data"]}
    for method, path in [
        ("GET", f"/admin/keys/{made['id']}"),
        ("POST", f"/admin/keys/{made['id']}/disable"),
        ("DELETE", f"/admin/keys/{made['id']}"),
        ("GET", "/admin/keys/000000000000"),
        ("POST", "/admin/keys/000000000000/disable"),
        ("DELETE", "/admin/keys/000000000000"),
    ]:
        openai_error(admin(main, method, path), 404, "key_not_found")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        pytest.param({"name": "k", "models": ["dall-e-9"]}, "models", "model_not_found", id="unknown-model"),
        pytest.param({"name": "k", "models": [FLASH, "nope"]}, "models", "model_not_found", id="one-unknown"),
        pytest.param({"name": "k", "models": []}, "models", None, id="empty-models"),
        pytest.param({"name": "k", "expires_at": 1_000_000_000}, "expires_at", None, id="past-expires-at"),
        pytest.param(
            {"name": "k", "expires_at": int(time.time()) + 3600, "expires_in_days": 1},
            "expires_at",
            "conflicting_expiry",
            id="both-expiry-fields",
        ),
        pytest.param({"name": "k", "expires_in_days": 0}, "expires_in_days", None, id="zero-days"),
        pytest.param({"name": "k", "expires_in_days": -1}, "expires_in_days", None, id="negative-days"),
        pytest.param({"owner": "x"}, "name", None, id="no-name"),
        pytest.param({"name": ""}, "name", None, id="empty-name"),
        pytest.param({"name": "k", "owner": "has space"}, "owner", None, id="bad-owner"),
        pytest.param({"name": "k", "scopes": ["all"]}, "scopes", None, id="unknown-field"),
    ],
)
def test_admin_refuses_a_bad_new_key_with_a_400(
    main: ServerProcess, body: dict[str, Any], param: str, code: str | None
) -> None:
    count = len(admin(main, "GET", "/admin/keys").json()["data"])
    response = admin(main, "POST", "/admin/keys", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error", error
    assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    if param == "models" and code == "model_not_found":
        assert FLASH in error["message"], "the message names the models there are"
    assert len(admin(main, "GET", "/admin/keys").json()["data"]) == count, "no key was made"


def test_an_endless_expiry_is_a_400_and_stores_nothing(make_server: MakeServer) -> None:
    server = make_server("sqlite", "--emulate", "--auth", env=ADMIN_ENV)  # its own: the bug poisons a list
    for days in (1e305, "inf"):
        response = admin(server, "POST", "/admin/keys", {"name": "forever", "expires_in_days": days})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "expires_in_days"
        listed = admin(server, "GET", "/admin/keys")
        assert listed.status_code == 200 and listed.json()["data"] == [], listed.text


def test_admin_api_needs_the_admin_key(main: ServerProcess, owners: dict[str, str]) -> None:
    target = new_key(main, "target")
    normal = owners["bob"]
    for method, path, body in [
        ("POST", "/admin/keys", {"name": "sneaky"}),
        ("GET", "/admin/keys", None),
        ("GET", f"/admin/keys/{target['id']}", None),
        ("POST", f"/admin/keys/{target['id']}/disable", None),
        ("DELETE", f"/admin/keys/{target['id']}", None),
    ]:
        for how in WAYS:
            response = call(main, method, path, normal, how=how, body=body)
            error = openai_error(response, 403, "admin_key_required")
            assert error["type"] == "permission_error"
        openai_error(call(main, method, path, body=body), 401, "missing_api_key")
    assert key_state(main, target["id"]) == "active", "the normal key changed nothing"
    assert "sneaky" not in {k["name"] for k in admin(main, "GET", "/admin/keys").json()["data"]}
    for how in WAYS:
        assert call(main, "GET", "/admin/keys", ADMIN, how=how).status_code == 200


def test_secrets_are_not_stored(main: ServerProcess) -> None:
    made = [new_key(main, f"stored-{i}") for i in range(2)]
    rows = db_rows(main, "SELECT * FROM api_keys")
    columns = [c[1] for c in db_rows(main, "PRAGMA table_info(api_keys)")]
    assert {"salt", "hash"} <= set(columns)
    salts = set()
    for key in made:
        secret = key["key"].removeprefix(f"pgk_{key['id']}_")
        (row,) = [r for r in rows if r[columns.index("id")] == key["id"]]
        for cell in row:
            assert secret not in str(cell) and key["key"] not in str(cell)
        stored_hash = row[columns.index("hash")]
        for plain in (secret, key["key"]):
            for algorithm in ("sha256", "sha512", "sha1", "md5", "blake2b"):
                assert stored_hash != hashlib.new(algorithm, plain.encode()).hexdigest(), "unsalted"
        salts.add(row[columns.index("salt")])
    assert len(salts) == 2 and all(salts), "each key has a salt of its own"
    # Nor anywhere in the database files (the WAL included), nor the admin key.
    for path in main.data_dir.glob("pixelgate.db*"):
        data = path.read_bytes()
        for key in made:
            assert key["key"].split("_", 2)[2].encode() not in data, path
        assert ADMIN.encode() not in data, path


# --- the three ways to send a key ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", WAYS)
@pytest.mark.parametrize(("dialect", "method", "path", "body"), ROUTE_PARAMS)
def test_a_good_key_works_sent_each_way(
    main: ServerProcess,
    owners: dict[str, str],
    how: str,
    dialect: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    response = call(main, method, path, owners["alice"], how=how, body=body)
    assert response.status_code == 200, response.text
    if "stream" in path:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "data: " in response.text and "error" not in response.text
    elif "interactions" in path:
        assert response.json()["status"] == "completed"


@pytest.mark.parametrize("how", WAYS)
@pytest.mark.parametrize(("dialect", "method", "path", "body"), ROUTE_PARAMS)
def test_a_bad_key_is_a_401_in_the_dialect_of_the_route(
    main: ServerProcess,
    owners: dict[str, str],
    how: str,
    dialect: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    alice = owners["alice"]
    wrong = alice[:-4] + ("AAAA" if not alice.endswith("AAAA") else "BBBB")
    response = call(main, method, path, wrong, how=how, body=body, source=fresh_address())
    error = dialect_error(error_dialect(dialect, path, how), response, 401, "invalid_api_key")
    if error_dialect(dialect, path, how) == "openai":
        assert error["type"] == "authentication_error"
    assert wrong not in response.text and alice.split("_", 2)[2] not in response.text


@pytest.mark.parametrize(("dialect", "method", "path", "body"), ROUTE_PARAMS)
def test_a_missing_key_is_a_401_missing_api_key(
    main: ServerProcess, dialect: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = call(main, method, path, body=body)
    error = dialect_error(dialect, response, 401, "missing_api_key")
    for hint in ("Authorization: Bearer", "x-goog-api-key", "?key="):
        assert hint in error["message"], error
    # An empty bearer token or an empty key header is no key either.
    for headers in ({"Authorization": "Bearer"}, {"x-goog-api-key": ""}):
        response = call(main, method, path, body=body, headers=headers)
        dialect_error(
            error_dialect(dialect, path, "x-goog-api-key" if "x-goog-api-key" in headers else "bearer"),
            response,
            401,
            "missing_api_key",
        )


def test_healthz_and_signed_image_urls_need_no_key(main: ServerProcess, owners: dict[str, str]) -> None:
    assert httpx.get(f"{main.url}/healthz").status_code == 200
    response = call(
        main,
        "POST",
        "/v1/images/generations",
        owners["alice"],
        body={"model": FLASH, "prompt": "a signed url", "response_format": "url", "resolution": "512"},
    )
    assert response.status_code == 200, response.text
    url = response.json()["data"][0]["url"]
    assert "/blobs/" in url
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(fetched.content)).format == "PNG"


# --- the official SDKs --------------------------------------------------------------------------------------


def openai_sdk(server: ServerProcess, key: str, source: str | None = None) -> openai.OpenAI:
    http_client = httpx.Client(transport=httpx.HTTPTransport(local_address=source)) if source else None
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, http_client=http_client)


def genai_sdk(
    server: ServerProcess, key: str, source: str | None = None, api_version: str | None = "v1beta"
) -> genai.Client:
    options = types.HttpOptions(base_url=server.url, retry_options=types.HttpRetryOptions(attempts=1))
    if api_version is not None:
        options.api_version = api_version
    if source:
        options.httpx_client = httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=60)
    return genai.Client(api_key=key, http_options=options)


def test_openai_sdk_with_a_good_key(main: ServerProcess, owners: dict[str, str]) -> None:
    sdk = openai_sdk(main, owners["alice"])
    response = sdk.images.generate(model=FLASH, prompt="a lighthouse", response_format="b64_json")
    assert response.data and response.data[0].b64_json
    image = Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json)))
    assert image.format == "PNG"
    assert FLASH in {m.id for m in sdk.models.list()}


def test_openai_sdk_with_a_bad_key(main: ServerProcess, owners: dict[str, str]) -> None:
    wrong = owners["alice"] + "x"
    sdk = openai_sdk(main, wrong, source=fresh_address())
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.images.generate(model=FLASH, prompt="a lighthouse", response_format="b64_json")
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key" and caught.value.type == "authentication_error"
    with pytest.raises(openai.AuthenticationError) as listed:
        sdk.models.list()
    assert listed.value.code == "invalid_api_key"
    assert listed.value.message == caught.value.message


def test_genai_sdk_with_a_good_key(main: ServerProcess, owners: dict[str, str]) -> None:
    sdk = genai_sdk(main, owners["alice"])
    response = sdk.models.generate_content(
        model=FLASH,
        contents="a lighthouse",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512")),
    )
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    assert any(p.inline_data is not None for p in response.candidates[0].content.parts)
    assert f"models/{FLASH}" in {m.name for m in sdk.models.list()}
    # The SDK's default API version reads the model list at /v1/models, with its key header.
    v1 = genai_sdk(main, owners["alice"], api_version=None)  # kept: a client closes when collected
    assert f"models/{FLASH}" in {m.name for m in v1.models.list()}
    interaction = sdk.interactions.create(model=FLASH, input="a lighthouse", response_format=SMALL)
    assert interaction.status == "completed"


def test_genai_sdk_with_a_bad_key(main: ServerProcess, owners: dict[str, str]) -> None:
    wrong = owners["alice"] + "x"
    source = fresh_address()
    sdk = genai_sdk(main, wrong, source=source)
    with pytest.raises(errors.ClientError) as caught:
        sdk.models.generate_content(model=FLASH, contents="a lighthouse")
    assert caught.value.code == 401 and caught.value.status == "UNAUTHENTICATED"
    assert "INVALID_API_KEY" in json.dumps(caught.value.details)
    with pytest.raises(errors.ClientError) as listed:
        list(sdk.models.list())
    assert listed.value.code == 401 and listed.value.message == caught.value.message
    v1 = genai_sdk(main, wrong, source=source, api_version=None)
    with pytest.raises(errors.ClientError) as on_v1:
        list(v1.models.list())
    assert on_v1.value.code == 401 and on_v1.value.status == "UNAUTHENTICATED"
    with pytest.raises(_interactions.AuthenticationError) as interaction:
        sdk.interactions.create(model=FLASH, input="a lighthouse", response_format=SMALL)
    assert interaction.value.status_code == 401


# --- one answer for every invalid key -----------------------------------------------------------------------


def test_every_invalid_key_gets_the_same_answer(main: ServerProcess) -> None:
    """Unknown, wrong, malformed, expired, disabled and deleted keys: one message, whichever it is."""
    expiring = new_key(main, "short-lived", expires_in_days=1.5 / 86400)  # never used before it expires
    to_disable = new_key(main, "to-disable")
    to_delete = new_key(main, "to-delete")
    good = new_key(main, "still-good")
    # Used first, so that a verified key is remembered: disabling or deleting must still end it at once.
    for key in (to_disable, to_delete, good):
        assert call(main, "GET", "/v1/models", key["key"]).status_code == 200
    assert admin(main, "POST", f"/admin/keys/{to_disable['id']}/disable").status_code == 200
    assert admin(main, "DELETE", f"/admin/keys/{to_delete['id']}").status_code == 200
    good_secret = good["key"].removeprefix(f"pgk_{good['id']}_")
    invalid = {
        "unknown id": f"pgk_{secrets.token_hex(6)}_{good_secret}",
        "wrong secret": f"pgk_{good['id']}_{secrets.token_urlsafe(32)}",
        "no secret": f"pgk_{good['id']}_",
        "malformed": "hello",
        "wrong admin key": "pga_" + secrets.token_urlsafe(32),
        "disabled": to_disable["key"],
        "deleted": to_delete["key"],
        "expired": expiring["key"],
    }
    time.sleep(max(0.0, expiring["expires_at"] + 1.05 - time.time()))
    assert key_state(main, expiring["id"]) == "expired"

    answers: dict[tuple[str, str], Any] = {}
    for what, key in invalid.items():
        source = fresh_address()
        for dialect, method, path, how, body in [
            ("openai", "GET", "/v1/models", "bearer", None),
            ("openai", "POST", "/v1/images/generations", "bearer", generation_body("/v1/images")),
            ("gemini", "GET", "/v1beta/models", "x-goog-api-key", None),
            ("gemini", "POST", "/v1beta/interactions", "query", generation_body("/interactions")),
        ]:
            response = call(main, method, path, key, how=how, body=body, source=source)
            dialect_error(dialect, response, 401, "invalid_api_key")
            assert key not in response.text
            answers[(what, f"{method} {path}")] = response.json()
    for route in {r for _, r in answers}:
        bodies = {what: body for (what, r), body in answers.items() if r == route}
        assert len({json.dumps(b, sort_keys=True) for b in bodies.values()}) == 1, (route, bodies)
    message = answers[("expired", "GET /v1/models")]["error"]["message"]
    assert message == answers[("expired", "GET /v1beta/models")]["error"]["message"], "same words in both"
    assert call(main, "GET", "/v1/models", good["key"]).status_code == 200


def test_a_key_in_use_stops_working_when_it_expires(main: ServerProcess) -> None:
    key = new_key(main, "expiring-in-use", expires_at=int(time.time()) + 2)
    source = fresh_address()
    assert call(main, "GET", "/v1/models", key["key"], source=source).status_code == 200
    time.sleep(max(0.0, key["expires_at"] + 0.2 - time.time()))
    assert key_state(main, key["id"]) == "expired"
    openai_error(call(main, "GET", "/v1/models", key["key"], source=source), 401, "invalid_api_key")


# --- allowed models -----------------------------------------------------------------------------------------


def test_a_key_may_use_only_its_models(main: ServerProcess) -> None:
    key = new_key(main, "flash-only", models=[FLASH])["key"]
    for path in ("/v1/images/generations", f"/v1beta/models/{FLASH}:generateContent", "/v1beta/interactions"):
        response = call(main, "POST", path, key, body=generation_body(path, FLASH))
        assert response.status_code == 200, response.text
    error = openai_error(
        call(main, "POST", "/v1/images/generations", key, body=generation_body("/v1/images", NANO)),
        403,
        "model_not_allowed",
    )
    assert error["type"] == "permission_error" and NANO in error["message"] and FLASH in error["message"]
    gemini_error(
        call(main, "POST", f"/v1beta/models/{NANO}:generateContent", key, body=generation_body(":gen", NANO)),
        403,
        "MODEL_NOT_ALLOWED",
    )
    gemini_error(
        call(
            main,
            "POST",
            "/v1beta/interactions",
            key,
            how="query",
            body=generation_body("/interactions", NANO),
        ),
        403,
        "MODEL_NOT_ALLOWED",
    )
    with pytest.raises(openai.PermissionDeniedError) as caught:
        openai_sdk(main, key).images.generate(model=PRO, prompt="x", response_format="b64_json")
    assert caught.value.code == "model_not_allowed"
    gemini_sdk = genai_sdk(main, key)
    with pytest.raises(errors.ClientError) as refused:
        gemini_sdk.models.generate_content(model=NANO, contents="x")
    assert refused.value.code == 403 and refused.value.status == "PERMISSION_DENIED"
    two = new_key(main, "two-models", models=[FLASH, NANO])["key"]
    for model, status in ((FLASH, 200), (NANO, 200), (PRO, 403)):
        response = call(
            main, "POST", "/v1/images/generations", two, body=generation_body("/v1/images", model)
        )
        assert response.status_code == status, response.text[:1000]


# --- isolation between owners -------------------------------------------------------------------------------

READ_PATHS = [
    "/v1/tasks/{id}",
    "/v1/images/generations/{id}",
    "/v1beta/interactions/{id}",
    "/v1/interactions/{id}",
]
CANCEL_PATHS = [
    "/v1/tasks/{id}/cancel",
    "/v1/images/generations/{id}/cancel",
    "/v1beta/interactions/{id}/cancel",
    "/v1/interactions/{id}/cancel",
]
DELETE_PATHS = ["/v1beta/interactions/{id}", "/v1/interactions/{id}"]
CONTINUE = {"model": FLASH, "input": "go on", "previous_interaction_id": "{id}", "response_format": SMALL}


def alices_tasks(server: ServerProcess, alice: str, *, wait: bool) -> dict[str, str]:
    """One task of alice's made through each API that makes one: {how it was made: its id}."""
    made = {}
    response = call(
        server, "POST", "/v1/images/generations", alice, body={**generation_body("/v1/images"), "async": True}
    )
    assert response.status_code == 200, response.text
    made["openai-async"] = response.json()["id"]
    response = call(
        server,
        "POST",
        "/v1/images/generations",
        alice,
        body={"model": FLASH, "prompt": "task style", "resolution": "512"},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 200, response.text
    made["task-style"] = response.json()["id"]
    response = call(
        server,
        "POST",
        "/v1beta/interactions",
        alice,
        body={**generation_body("/interactions"), "background": True},
    )
    assert response.status_code == 200, response.text
    made["interaction"] = response.json()["id"]
    if wait:
        response = call(
            server, "POST", f"/v1beta/models/{FLASH}:generateContent", alice, body=generation_body(":gen")
        )
        assert response.status_code == 200, response.text
        made["gemini"] = response.json()["responseId"]
        for task_id in made.values():
            assert poll(server, f"/v1/tasks/{task_id}", alice)["status"] == "completed"
    return made


def test_another_owner_cannot_see_or_touch_finished_tasks(
    main: ServerProcess, owners: dict[str, str]
) -> None:
    alice, alice_ci, bob = owners["alice"], owners["alice-ci"], owners["bob"]
    made = alices_tasks(main, alice, wait=True)
    for task_id in made.values():
        for path in READ_PATHS:
            assert_same_as_unknown(main, "GET", path, task_id, bob)
            for key in (alice, alice_ci, ADMIN):
                response = call(main, "GET", path.format(id=task_id), key)
                assert response.status_code == 200, (path, response.text)
        # Cancelling a finished task of one's own is a 409; another owner's must not tell it exists.
        for path in CANCEL_PATHS:
            assert_same_as_unknown(main, "POST", path, task_id, bob)
            assert call(main, "POST", path.format(id=task_id), alice_ci).status_code == 409
        for path in DELETE_PATHS:
            assert_same_as_unknown(main, "DELETE", path, task_id, bob)
        assert_same_as_unknown(main, "POST", "/v1beta/interactions", task_id, bob, CONTINUE)
        assert call(main, "GET", f"/v1/tasks/{task_id}", alice).json()["status"] == "completed", "untouched"
    # The same owner, through another key, continues alice's conversation; bob cannot.
    response = call(
        main,
        "POST",
        "/v1beta/interactions",
        alice_ci,
        body={**CONTINUE, "previous_interaction_id": made["interaction"]},
    )
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text
    continued = response.json()["id"]
    assert_same_as_unknown(main, "GET", "/v1beta/interactions/{id}", continued, bob)
    assert call(main, "GET", f"/v1beta/interactions/{continued}", alice).status_code == 200
    # ... and deletes it; then it is gone for alice too.
    assert call(main, "DELETE", f"/v1beta/interactions/{continued}", alice_ci).status_code == 200
    assert call(main, "GET", f"/v1beta/interactions/{continued}", alice).status_code == 404
    # Bob's own tasks are his: alice cannot read them, the admin can.
    response = call(main, "POST", "/v1beta/interactions", bob, body=generation_body("/interactions"))
    assert response.status_code == 200, response.text
    bobs = response.json()["id"]
    assert_same_as_unknown(main, "GET", "/v1/tasks/{id}", bobs, alice)
    assert_same_as_unknown(main, "GET", "/v1beta/interactions/{id}", bobs, alice_ci)
    assert call(main, "GET", f"/v1beta/interactions/{bobs}", ADMIN).status_code == 200
    # The admin may continue anyone's conversation.
    response = call(
        main, "POST", "/v1beta/interactions", ADMIN, body={**CONTINUE, "previous_interaction_id": bobs}
    )
    assert response.status_code == 200, response.text


def test_another_owner_cannot_cancel_or_delete_running_tasks(queued: ServerProcess) -> None:
    alice = new_key(queued, "alice")["key"]
    alice_ci = new_key(queued, "alice-ci", owner="alice")["key"]
    bob = new_key(queued, "bob")["key"]
    made = alices_tasks(queued, alice, wait=False)
    for task_id in made.values():
        for path in CANCEL_PATHS + DELETE_PATHS:
            method = "DELETE" if path in DELETE_PATHS else "POST"
            assert_same_as_unknown(queued, method, path, task_id, bob)
        for path in READ_PATHS:
            assert_same_as_unknown(queued, "GET", path, task_id, bob)
        # Continuing from a task still queued is a 400 for its owner; for bob the same 404 as an unknown id.
        assert_same_as_unknown(queued, "POST", "/v1beta/interactions", task_id, bob, CONTINUE)
        response = call(
            queued,
            "POST",
            "/v1beta/interactions",
            alice,
            body={**CONTINUE, "previous_interaction_id": task_id},
        )
        gemini_error(response, 400, "PREVIOUS_INTERACTION_NOT_COMPLETED")
        assert call(queued, "GET", f"/v1/tasks/{task_id}", alice).json()["status"] == "queued", (
            "bob changed nothing"
        )
    # The same owner's other key cancels; the admin cancels and deletes anyone's.
    response = call(queued, "POST", f"/v1/tasks/{made['openai-async']}/cancel", alice_ci)
    assert response.status_code == 200 and response.json()["status"] == "cancelled", response.text
    response = call(queued, "POST", f"/v1/images/generations/{made['task-style']}/cancel", ADMIN)
    assert response.status_code == 200 and response.json()["status"] == "cancelled", response.text
    assert call(queued, "DELETE", f"/v1beta/interactions/{made['interaction']}", ADMIN).status_code == 200
    assert call(queued, "GET", f"/v1beta/interactions/{made['interaction']}", alice).status_code == 404


# --- guessing keys ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(make_server: MakeServer) -> ServerProcess:
    """A server of its own: the guessing test leaves its address refused for a minute."""
    return make_server("sqlite", "--emulate", "--auth", env=ADMIN_ENV)


def test_guessing_keys_is_refused_after_20_failures(guarded: ServerProcess) -> None:
    good = new_key(guarded, "good")["key"]
    guesser, bystander = fresh_address(), fresh_address()
    routes = [
        ("openai", "GET", "/v1/models", "bearer"),
        ("gemini", "GET", "/v1beta/models", "x-goog-api-key"),
        ("gemini", "GET", "/v1beta/models", "query"),
    ]
    for i in range(20):
        dialect, method, path, how = routes[i % len(routes)]
        guess = f"pgk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        response = call(guarded, method, path, guess, how=how, source=guesser)
        dialect_error(dialect, response, 401, "invalid_api_key")
    refused = call(guarded, "GET", "/v1/models", "pgk_0_guess", source=guesser)
    error = openai_error(refused, 429, "too_many_invalid_keys")
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert guesser in error["message"]
    # Another guess from that address waits, in each dialect's shape...
    gemini = call(guarded, "GET", "/v1beta/models", "pgk_0_guess", how="x-goog-api-key", source=guesser)
    body = gemini_error(gemini, 429, "TOO_MANY_INVALID_KEYS")
    assert any(d["@type"].endswith("RetryInfo") for d in body["details"])
    assert "Retry-After" in gemini.headers
    # ...but a valid key (and the admin key) from it passes: many callers may share it behind a proxy.
    assert call(guarded, "GET", "/v1/models", good, source=guesser).status_code == 200
    assert (
        call(guarded, "GET", "/v1beta/models", good, how="x-goog-api-key", source=guesser).status_code == 200
    )
    assert call(guarded, "GET", "/admin/keys", ADMIN, source=guesser).status_code == 200
    assert call(guarded, "GET", "/healthz", source=guesser).status_code == 200
    openai_error(
        call(guarded, "GET", "/v1/models", "pgk_0_guess", source=guesser), 429, "too_many_invalid_keys"
    )
    # Other addresses are not affected.
    assert call(guarded, "GET", "/v1/models", good, source=bystander).status_code == 200
    openai_error(call(guarded, "GET", "/v1/models", "pgk_0_x", source=bystander), 401, "invalid_api_key")
    assert call(guarded, "GET", "/v1/models", good).status_code == 200


# --- the admin key, made once into a file -------------------------------------------------------------------


def test_the_admin_key_is_made_once_into_a_file(
    make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIXELGATE_ADMIN_KEY", raising=False)
    first = make_server("sqlite", "--emulate", "--auth", data_dir=tmp_path)
    # The server's stderr is no terminal: the key is in the file only (test_auth_defaults.py shows a TTY's).
    path = tmp_path / "admin-key"
    assert path.stat().st_mode & 0o777 == 0o600
    made = path.read_text().strip()
    assert made.startswith("pga_") and len(made) > 40
    assert "pga_" not in first.log(), first.log()
    assert admin_with(first, made).status_code == 200
    openai_error(
        call(first, "GET", "/admin/keys", "pga_" + secrets.token_urlsafe(32)), 401, "invalid_api_key"
    )
    first.stop()

    second = make_server("sqlite", "--emulate", "--auth", data_dir=tmp_path)
    assert "pga_" not in second.log() and "admin key" not in second.log(), second.log()
    assert admin_with(second, made).status_code == 200, "the key made on the first start still works"
    assert path.read_text().strip() == made
    for (value,) in db_rows(second, "SELECT value FROM meta"):
        assert made not in str(value) and made.removeprefix("pga_") not in str(value)
    assert made.encode() not in (tmp_path / "pixelgate.db").read_bytes()


def admin_with(server: ServerProcess, key: str) -> httpx.Response:
    return call(server, "GET", "/admin/keys", key)


# --- auth off only on loopback ------------------------------------------------------------------------------


def test_auth_off_is_refused_beyond_loopback(tmp_path: Path) -> None:
    port = free_port()
    result = pixelgate(
        "serve",
        "--host",
        "0.0.0.0",
        "--no-auth",
        "--emulate",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path),
        timeout=30,
    )
    assert result.returncode == 2, said(result)
    text = said(result)
    assert "auth is off" in text and "loopback" in text and "0.0.0.0" in text, text
    assert "Traceback" not in result.stdout + result.stderr


def test_auth_is_on_by_default_beyond_loopback(make_server: MakeServer) -> None:
    for attempt in range(5):
        # A port free on 127.0.0.1 may still be taken on another loopback address (by this file's clients,
        # which bind 127.0.0.N): binding 0.0.0.0 then fails, and another port is tried.
        try:
            server = make_server("sqlite", "--emulate", "--host", "0.0.0.0", env=ADMIN_ENV)
            break
        except RuntimeError as exc:
            if "address already in use" not in str(exc) or attempt == 4:
                raise
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    openai_error(call(server, "GET", "/v1/models"), 401, "missing_api_key")
    gemini_error(
        call(server, "POST", "/v1beta/interactions", body=generation_body("/interactions")),
        401,
        "MISSING_API_KEY",
    )
    assert call(server, "GET", "/v1/models", ADMIN).status_code == 200
    key = new_key(server, "net")["key"]
    assert call(server, "GET", "/v1/models", key, how="query").status_code == 200


def test_no_key_is_needed_on_loopback_by_default_with_the_emulator_alone(make_server: MakeServer) -> None:
    server = make_server("sqlite", "--emulate")
    assert call(server, "GET", "/v1/models").status_code == 200
    response = call(server, "POST", "/v1/images/generations", body=generation_body("/v1/images"))
    assert response.status_code == 200, response.text
    assert "pga_" not in server.log(), "no admin key is made while auth is off"
    assert not (server.data_dir / "admin-key").exists()


# --- pixelgate keys ----------------------------------------------------------------------------------------


def test_keys_commands_end_to_end(main: ServerProcess) -> None:
    made = pixelgate(
        "keys",
        "create",
        "cli-made",
        "--owner",
        "carol",
        "--model",
        FLASH,
        "--expires-in-days",
        "7",
        "--server",
        main.url,
        "--admin-key",
        ADMIN,
    )
    assert made.returncode == 0, said(made)
    secret = made.stdout.strip().splitlines()[-1]
    match = re.search(r"made key (\w+)", said(made))
    assert match, said(made)
    key_id = match.group(1)
    assert secret.startswith(f"pgk_{key_id}_"), made.stdout
    record = admin(main, "GET", f"/admin/keys/{key_id}").json()
    assert record["owner"] == "carol" and record["models"] == [FLASH] and record["name"] == "cli-made"
    assert abs(record["expires_at"] - (time.time() + 7 * 86400)) < 60
    assert call(main, "GET", "/v1/models", secret).status_code == 200
    openai_error(
        call(main, "POST", "/v1/images/generations", secret, body=generation_body("/v1/images", NANO)),
        403,
        "model_not_allowed",
    )

    env = {"PIXELGATE_SERVER": main.url, "PIXELGATE_ADMIN_KEY": ADMIN}
    listed = pixelgate("keys", "list", env=env)
    assert listed.returncode == 0, said(listed)
    assert key_id in said(listed) and "cli-made" in said(listed) and "carol" in said(listed)
    assert secret.removeprefix(f"pgk_{key_id}_") not in listed.stdout + listed.stderr
    carol = pixelgate("keys", "list", "--owner", "carol", env=env)
    assert carol.returncode == 0 and key_id in said(carol)
    assert "alice" not in said(carol)

    disabled = pixelgate("keys", "disable", key_id, env=env)
    assert disabled.returncode == 0 and "disabled" in said(disabled), said(disabled)
    openai_error(call(main, "GET", "/v1/models", secret, source=fresh_address()), 401, "invalid_api_key")
    assert "disabled" in said(pixelgate("keys", "list", "--owner", "carol", env=env))

    deleted = pixelgate("keys", "delete", key_id, env=env)
    assert deleted.returncode == 0 and "deleted" in said(deleted), said(deleted)
    openai_error(admin(main, "GET", f"/admin/keys/{key_id}"), 404, "key_not_found")
    again = pixelgate("keys", "delete", key_id, env=env)
    assert again.returncode != 0 and "404" in said(again) and key_id in said(again), said(again)


def test_keys_commands_with_a_wrong_or_missing_admin_key(main: ServerProcess) -> None:
    wrong = pixelgate("keys", "list", "--server", main.url, "--admin-key", "pga_" + secrets.token_urlsafe(32))
    assert wrong.returncode != 0, said(wrong)
    assert "401" in said(wrong) and "not valid" in said(wrong), said(wrong)
    missing = pixelgate("keys", "create", "nobody", "--server", main.url)
    assert missing.returncode != 0 and "401" in said(missing) and "no API key" in said(missing), said(missing)
    normal = new_key(main, "not-admin")["key"]
    refused = pixelgate("keys", "create", "x", "--server", main.url, "--admin-key", normal)
    assert refused.returncode != 0 and "403" in said(refused), said(refused)
    assert "nobody" not in {k["name"] for k in admin(main, "GET", "/admin/keys").json()["data"]}
    unreachable = pixelgate(
        "keys", "list", "--server", f"http://127.0.0.1:{free_port()}", "--admin-key", ADMIN
    )
    assert unreachable.returncode == 5 and "cannot reach" in said(unreachable), said(unreachable)
    assert "Traceback" not in wrong.stderr + missing.stderr + unreachable.stderr


def test_an_idempotency_key_makes_one_api_key(main: ServerProcess) -> None:
    """The first answer holds the secret, which is not kept: a repeat is a 409 that names the key made
    (delete it and make it again if that answer was lost); another body with the key is a 409 too."""
    body = {"name": f"nightly-{uuid.uuid4().hex[:6]}"}
    once = {"Idempotency-Key": str(uuid.uuid4())}

    def create(sent: dict[str, Any]) -> httpx.Response:
        return call(main, "POST", "/admin/keys", ADMIN, body=sent, headers=once)

    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: create(body), range(5)))
    made = [a for a in answers if a.status_code == 201]
    assert len(made) == 1, [a.text for a in answers]
    key_id = made[0].json()["id"]
    for again in [a for a in answers if a.status_code != 201] + [create(body)]:
        error = openai_error(again, 409, "key_already_created")
        assert key_id in error["message"] and f"DELETE /admin/keys/{key_id}" in error["message"]
    assert openai_error(create({"name": "another"}), 409, "idempotency_key_reused")
    named = [k for k in admin(main, "GET", "/admin/keys").json()["data"] if k["name"] == body["name"]]
    assert [k["id"] for k in named] == [key_id]


def test_an_owner_named_dash_keeps_its_idempotency_keys_apart_from_the_admin_s(main: ServerProcess) -> None:
    """The admin's Idempotency-Keys live under "-": an owner of that name must not share them (a 409 would
    name the admin's task, or hand the owner the admin's)."""
    dash = new_key(main, "dash", owner="-")["key"]
    header = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}
    body = {"model": "gemini-3.1-flash-image", "prompt": "a lighthouse", "async": True}
    by_admin = call(main, "POST", "/v1/images/generations", ADMIN, body=body, headers=header)
    assert by_admin.status_code == 200, by_admin.text
    by_dash = call(
        main, "POST", "/v1/images/generations", dash, body={**body, "prompt": "a harbour"}, headers=header
    )
    assert by_dash.status_code == 200, by_dash.text
    assert by_dash.json()["id"] != by_admin.json()["id"]
