"""``/openapi.json`` documents every public endpoint with its body, and schemathesis, fed that document,
sends each endpoint cases made from it: none may get a 5xx or hang, and the server serves normally
afterwards. A bounded run (a few cases per endpoint), with the long run's hooks (``scripts/fuzz_hooks.py``:
about half of the path parameters and cursors are the ids of things that exist), on PostgreSQL where the
suite has one (most 500s were PostgreSQL's) and SQLite otherwise; ``scripts/fuzz.py`` runs the long one."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from conftest import MakeServer, PostgresDatabases, ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import fuzz
import fuzz_hooks

CASES_PER_ENDPOINT = 15


@pytest.fixture(scope="module")
def fuzzed(make_server: MakeServer, postgres: PostgresDatabases | None) -> Iterator[ServerProcess]:
    server = make_server("postgres" if postgres else "sqlite", "--emulate", "--fetch-allow", "127.0.0.1")
    fuzz_hooks.use_ids(fuzz.make_ids(server.url, copies=1))
    yield server
    fuzz_hooks.use_ids({})


def test_every_public_endpoint_is_documented(fuzzed: ServerProcess) -> None:
    document = httpx.get(f"{fuzzed.url}/openapi.json", timeout=10).json()
    paths = document["paths"]
    for path in ("/v1/images/generations", "/v1/images/edits", "/v1beta/interactions", "/admin/keys"):
        assert "requestBody" in paths[path]["post"], path
    assert "requestBody" in paths["/v1beta/models/{model_action}"]["post"]
    for path in ("/v1/tasks/{task_id}", "/v1/models", "/v1/usage", "/healthz", "/readyz", "/metrics"):
        assert "get" in paths[path], path
    assert "ImageBody" in document["components"]["schemas"]


def test_every_path_parameter_is_documented(fuzzed: ServerProcess) -> None:
    """A parameter the template names but the document leaves out is one schemathesis cannot fill: it
    sends the template's braces literally and never fuzzes that part of the path."""
    document = httpx.get(f"{fuzzed.url}/openapi.json", timeout=10).json()
    missing = []
    for path, operations in document["paths"].items():
        named = set(re.findall(r"{([^}]+)}", path))
        for method, operation in operations.items():
            documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            if named != documented:
                missing.append(f"{method.upper()} {path}: {sorted(named - documented)}")
    assert not missing, missing


def test_no_case_is_a_server_error(fuzzed: ServerProcess) -> None:
    """Each operation of the document, ``CASES_PER_ENDPOINT`` cases each (schemathesis' pytest plugin does
    not run under this pytest, so the cases are drawn here from its strategies)."""
    api = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    tried: dict[str, int] = {}
    for found in api.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=CASES_PER_ENDPOINT,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def send(case: schemathesis.Case) -> None:
            tried[case.operation.label] = tried.get(case.operation.label, 0) + 1
            case.call_and_validate(checks=[not_a_server_error], timeout=60)

        send()
    assert len(tried) >= 30, tried  # every operation was reached
    print(f"schemathesis: {sum(tried.values())} cases over {len(tried)} operations")
    assert fuzz_hooks.COUNTS["statuses"].get("200", 0) >= 100, fuzz_hooks.COUNTS[
        "statuses"
    ]  # real ids are read


def test_the_server_still_serves_afterwards(fuzzed: ServerProcess) -> None:
    assert httpx.get(f"{fuzzed.url}/healthz", timeout=10).status_code == 200
    assert "unexpected error" not in fuzzed.log(), fuzzed.log()[-3000:]
    made = httpx.post(
        f"{fuzzed.url}/v1/images/generations",
        json={"model": "gemini-3.1-flash-image", "prompt": "still here"},
        timeout=60,
    )
    assert made.status_code == 200, made.text


def test_a_signature_that_is_not_ascii_is_refused_not_a_crash(fuzzed: ServerProcess) -> None:
    """Found by the run above: hmac.compare_digest raised on non-ASCII text, a 500."""
    response = httpx.get(
        f"{fuzzed.url}/blobs/task_img_x/out-0.png",
        params={"expires": "99999999999", "signature": "é"},
        timeout=10,
    )
    assert response.status_code == 403, response.text


def test_an_upload_version_that_is_not_an_api_version_is_a_404(fuzzed: ServerProcess) -> None:
    """Reachable once the document named ``version``: it was written back into the upload URL's header,
    and a line break in it was a 500 (with a pending file left behind)."""
    for version in ("v9", "a\r\nSet-Cookie: x"):
        response = httpx.post(
            f"{fuzzed.url}/upload/{quote(version, safe='')}/files",
            headers={"X-Goog-Upload-Command": "start", "X-Goog-Upload-Header-Content-Length": "10"},
            json={"file": {}},
            timeout=10,
        )
        assert response.status_code == 404, response.text
        assert "/upload/v1beta/files" in response.json()["error"]["message"]
