"""Values no database can keep, or no answer can carry, are refused where the request is read: a 400 (or the
404 of an id nothing can have) in the caller's own error shape, naming the field and showing the value
safely, on SQLite and PostgreSQL alike. Before, each of these was a 500 - some after the task was saved and
billed (a lone surrogate in ``metadata``), most only on PostgreSQL (a NUL byte, NaN in a JSON column, a
value longer than its column).

Every request here carries an ``X-Request-Id`` of its own, and no task may carry it afterwards: a refused
request saves nothing.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ServerProcess, db_rows, png_bytes

MODEL = "gemini-3.1-flash-image"
SURROGATE = b'"\\ud800"'  # the JSON escape of a lone surrogate: valid JSON syntax, not Unicode text
INLINE_REQUEST = {"request": {"contents": [{"parts": [{"text": "a kite"}]}]}}


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def error_of(response: httpx.Response, status: int) -> tuple[str | None, str, str]:
    """(param, code, message) of an error in either dialect's shape, which must have ``status``."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if "status" in error:  # Google's shape: the param and pixelgate's code travel in an ErrorInfo
        info = error["details"][0]
        return info.get("metadata", {}).get("param"), info["reason"].lower(), error["message"]
    return error["param"], error["code"], error["message"]


def send(
    http: httpx.Client, method: str, path: str, content: bytes | None = None, **kwargs: Any
) -> tuple[httpx.Response, str]:
    """The request with a fresh X-Request-Id (returned, to look for its task afterwards)."""
    request_id = f"probe-{uuid.uuid4().hex}"
    headers = {"x-request-id": request_id, **kwargs.pop("headers", {})}
    if content is not None:
        headers.setdefault("content-type", "application/json")
    return http.request(method, path, content=content, headers=headers, **kwargs), request_id


def tasks_made_by(server: ServerProcess, request_id: str) -> int:
    return int(db_rows(server, f"SELECT count(*) FROM tasks WHERE request_id = '{request_id}'")[0][0])


def generation(extra: bytes) -> bytes:
    return b'{"model": "' + MODEL.encode() + b'", "prompt": "a kite", "async": true, ' + extra + b"}"


def interaction(extra: bytes) -> bytes:
    return b'{"model": "' + MODEL.encode() + b'", "input": "a kite", "background": true, ' + extra + b"}"


# --- values refused in every JSON body: lone surrogates, NaN and Infinity, integers past 64 bits -------------

REFUSED_IN_BODIES = [
    ("/v1/images/generations", generation(b'"metadata": {"a": ' + SURROGATE + b"}"), "metadata.a", "\\ud800"),
    ("/v1/images/generations", generation(b'"metadata": {' + SURROGATE + b": 1}"), "metadata", "\\ud800"),
    ("/v1/images/generations", generation(b'"metadata": {"a": NaN}'), "metadata.a", "NaN"),
    ("/v1/images/generations", generation(b'"metadata": {"a": [Infinity]}'), "metadata.a[0]", "Infinity"),
    ("/v1/images/generations", generation(b'"metadata": {"a": -1e999}'), "metadata.a", "-Infinity"),
    ("/v1/images/generations", generation(b'"metadata": {"a": 1' + b"0" * 30 + b"}"), "metadata.a", "64"),
    ("/v1/images/generations", generation(b'"user": ' + SURROGATE), "user", "\\ud800"),
    (
        "/v1beta/interactions",
        interaction(b'"webhook_config": {"user_metadata": {"a": ' + SURROGATE + b"}}"),
        "webhook_config.user_metadata.a",
        "\\ud800",
    ),
    (
        "/v1beta/interactions",
        interaction(b'"webhook_config": {"user_metadata": {"n": NaN}}'),
        "webhook_config.user_metadata.n",
        "NaN",
    ),
    (
        f"/v1beta/models/{MODEL}:generateContent",
        b'{"contents": [{"parts": [{"text": "a kite"}]}], "labels": {"a": ' + SURROGATE + b"}}",
        "labels.a",
        "\\ud800",
    ),
    (
        "/v1beta/webhooks",
        b'{"uri": "https://example.com/hook", "subscribed_events": ["batch.succeeded"], "name": '
        + SURROGATE
        + b"}",
        "name",
        "\\ud800",
    ),
    (
        "/v1beta/webhooks",
        b'{"uri": "https://example.com/\\udfff", "subscribed_events": ["batch.succeeded"]}',
        "uri",
        "\\udfff",
    ),
    (
        f"/v1beta/models/{MODEL}:batchGenerateContent",
        b'{"batch": {"displayName": ' + SURROGATE + b', "inputConfig": {"requests": {"requests": '
        b'[{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]}}}}',
        "batch.displayName",
        "\\ud800",
    ),
    (
        f"/v1beta/models/{MODEL}:batchGenerateContent",
        b'{"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": [{"parts": '
        b'[{"text": "x"}]}]}, "metadata": {"key": ' + SURROGATE + b"}}]}}}}",
        "batch.inputConfig.requests.requests[0].metadata.key",
        "\\ud800",
    ),
]


@pytest.mark.parametrize(
    ("path", "content", "param", "shown"),
    REFUSED_IN_BODIES,
    ids=[
        "metadata-surrogate",
        "metadata-key-surrogate",
        "metadata-NaN",
        "metadata-Infinity",
        "metadata-1e999",
        "metadata-huge-integer",
        "user-surrogate",
        "user_metadata-surrogate",
        "user_metadata-NaN",
        "labels-surrogate",
        "webhook-name-surrogate",
        "webhook-uri-surrogate",
        "displayName-surrogate",
        "inline-key-surrogate",
    ],
)
def test_a_value_no_answer_can_carry_is_a_400_and_saves_nothing(
    http: httpx.Client, server: ServerProcess, path: str, content: bytes, param: str, shown: str
) -> None:
    response, request_id = send(http, "POST", path, content)
    where, code, message = error_of(response, 400)
    assert where == param, response.text
    assert code in ("invalid_unicode", "invalid_json", "number_out_of_range"), response.text
    assert message.startswith(param) and shown in message, message
    assert tasks_made_by(server, request_id) == 0


def test_a_task_style_body_with_a_surrogate_in_metadata_saves_no_task(
    http: httpx.Client, server: ServerProcess
) -> None:
    """The task-style answer (seed 000's shape) echoes metadata: its render was the 500, after the save."""
    content = b'{"model": "' + MODEL.encode() + b'", "prompt": "x", "metadata": {"tag": "a\\udc00b"}}'
    response, request_id = send(http, "POST", "/v1/images/generations", content)
    assert error_of(response, 400)[0] == "metadata.tag"
    assert tasks_made_by(server, request_id) == 0


# --- ids, cursors and filters from the path and the query ---------------------------------------------------

UNKNOWN_IDS = [
    ("GET", "/v1/batches/ab%00c"),
    ("POST", "/v1/batches/ab%00c/cancel"),
    ("GET", "/v1beta/batches/ab%00c"),
    ("POST", "/v1beta/batches/ab%00c:cancel"),
    ("DELETE", "/v1beta/batches/ab%00c"),
    ("GET", "/v1/batches/" + "b" * 100),
    ("GET", "/v1beta/batches/" + "b" * 100),
]


@pytest.mark.parametrize(("method", "path"), UNKNOWN_IDS)
def test_a_batch_id_no_batch_can_have_is_a_404(http: httpx.Client, method: str, path: str) -> None:
    headers = {"x-goog-api-client": "genai-py"} if path.startswith("/v1/batches/b") else {}
    _, code, message = error_of(http.request(method, path, headers=headers), 404)
    assert code == "batch_not_found" and "no batch has the id" in message, message


REFUSED_QUERIES = [
    ("/v1/batches?after=a%00b", "after", {}),
    ("/v1beta/batches?pageToken=a%00b", "pageToken", {}),
    ("/v1/batches?pageToken=a%00b", "pageToken", {"x-goog-api-client": "genai-py"}),
    ("/v1/files?after=a%00b", "after", {}),
    ("/v1/files?purpose=a%00b", "purpose", {}),
    ("/v1beta/files?pageToken=a%00b", "pageToken", {}),
    ("/v1/usage?owner=a%00b", "owner", {}),
    ("/v1/usage?owner=" + "o" * 200, "owner", {}),
    ("/admin/keys?owner=a%00b", "owner", {}),
    ("/admin/keys?owner=" + "o" * 200, "owner", {}),
    ("/v1/webhooks/secret?owner=a%00b", "owner", {}),
    ("/v1/webhooks/secret?owner=" + "o" * 200, "owner", {}),
    ("/v1/webhooks/deliveries?subject_id=a%00b", "subject_id", {}),
    ("/v1/webhooks/deliveries?after=a%00b", "after", {}),
    ("/v1beta/webhooks?page_token=a%00b", "page_token", {}),
    ("/v1/models?a%00=1", "a\x00", {}),
]


@pytest.mark.parametrize(("path", "param", "headers"), REFUSED_QUERIES)
def test_a_query_value_no_row_can_hold_is_a_400_that_names_it(
    http: httpx.Client, path: str, param: str, headers: dict[str, str]
) -> None:
    where, _, message = error_of(http.get(path, headers=headers), 400)
    assert where == param, message
    assert message.startswith(param.replace("\x00", "\\x00")) or repr(param)[1:-1] in message, message


def test_listings_still_answer_afterwards(http: httpx.Client) -> None:
    for path in (
        "/v1/batches",
        "/v1beta/batches",
        "/v1/files",
        "/v1/usage",
        "/v1beta/webhooks",
        "/admin/keys",
    ):
        assert http.get(path).status_code == 200, path


# --- batches: a line's custom_id or key, a displayName, a line nested too deep ------------------------------


def upload(http: httpx.Client, lines: list[str]) -> str:
    content = ("\n".join(lines) + "\n").encode()
    files = {"file": ("in.jsonl", content, "application/jsonl")}
    response = http.post("/v1/files", files=files, data={"purpose": "batch"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def openai_line(custom_id: Any, body: Any = None) -> str:
    body = body if body is not None else {"model": MODEL, "prompt": "a kite"}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/images/generations", "body": body}
    )


DEEP = "[" * 50_000 + "]" * 50_000

OPENAI_BAD_LINES = [
    (openai_line("\ud800"), "custom_id", "\\ud800"),
    (openai_line("a\x00b"), "custom_id", "\\x00"),
    (openai_line("c" * 3000), "custom_id", "3,000 characters"),
    (
        openai_line("x", {"model": MODEL, "prompt": "x", "metadata": {"a": float("nan")}}),
        "body.metadata.a",
        "NaN",
    ),
    ('{"custom_id": "d", "method": "POST", "body": ' + DEEP + "}", None, "nests too deeply"),
    (
        '{"custom_id": "d", "method": "POST", "body": ' + "[" * 100 + "]" * 100 + "}",
        None,
        "at most 64 levels",
    ),
]


@pytest.mark.parametrize(
    ("line", "param", "shown"),
    OPENAI_BAD_LINES,
    ids=["custom_id-surrogate", "custom_id-NUL", "custom_id-3000", "body-NaN", "nested-50000", "nested-100"],
)
def test_an_openai_batch_line_no_row_can_hold_fails_the_batch_by_name(
    http: httpx.Client, line: str, param: str | None, shown: str
) -> None:
    """OpenAI's way: the batch is made ``failed``, its ``errors`` naming the line and the field."""
    file_id = upload(http, [openai_line("fine"), line])
    response = http.post(
        "/v1/batches",
        json={"input_file_id": file_id, "endpoint": "/v1/images/generations", "completion_window": "24h"},
    )
    assert response.status_code == 200, response.text
    batch = response.json()
    assert batch["status"] == "failed", batch
    errors = batch["errors"]["data"]
    assert [(e["line"], e["param"]) for e in errors] == [(2, param)], errors
    assert shown in errors[0]["message"], errors
    assert http.get(f"/v1/batches/{batch['id']}").status_code == 200


GEMINI_BAD_KEYS = [("a\x00b", "\\x00"), ("\udc80", "\\udc80"), ("k" * 3000, "3,000 characters")]


@pytest.mark.parametrize(("key", "shown"), GEMINI_BAD_KEYS, ids=["NUL", "surrogate", "3000"])
def test_a_gemini_batch_key_no_row_can_hold_is_a_400(http: httpx.Client, key: str, shown: str) -> None:
    inline = {
        "batch": {"inputConfig": {"requests": {"requests": [{**INLINE_REQUEST, "metadata": {"key": key}}]}}}
    }
    response, _ = send(
        http, "POST", f"/v1beta/models/{MODEL}:batchGenerateContent", json.dumps(inline).encode()
    )
    param, _, message = error_of(response, 400)
    assert param == "batch.inputConfig.requests.requests[0].metadata.key" and shown in message, message

    file_id = upload(
        http, [json.dumps({"key": "fine", **INLINE_REQUEST}), json.dumps({"key": key, **INLINE_REQUEST})]
    )
    from_file = {"batch": {"inputConfig": {"fileName": f"files/{file_id}"}}}
    param, _, message = error_of(
        http.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json=from_file), 400
    )
    assert param == "batch.inputConfig.fileName", message
    assert "line 2" in message and "key" in message and shown in message, message


@pytest.mark.parametrize(("name", "shown"), [("a\x00b", "\\x00"), ("n" * 5000, "5,000 characters")])
def test_a_display_name_no_row_can_hold_is_a_400(http: httpx.Client, name: str, shown: str) -> None:
    body = {"batch": {"displayName": name, "inputConfig": {"requests": {"requests": [INLINE_REQUEST]}}}}
    param, _, message = error_of(http.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json=body), 400)
    assert param == "batch.displayName" and shown in message, message


def test_a_gemini_batch_line_nested_too_deep_is_a_400(http: httpx.Client) -> None:
    file_id = upload(http, ['{"key": "d", "request": ' + DEEP + "}"])
    body = {"batch": {"inputConfig": {"fileName": f"files/{file_id}"}}}
    param, _, message = error_of(http.post(f"/v1beta/models/{MODEL}:batchGenerateContent", json=body), 400)
    assert param == "batch.inputConfig.fileName" and "line 1" in message and "nests too deeply" in message


@pytest.mark.parametrize(
    ("filename", "content_type"), [(b"a\x00b.jsonl", b"application/jsonl"), (b"in.jsonl", b"text/x\x00y")]
)
def test_an_uploaded_file_name_or_type_with_a_nul_is_a_400(
    http: httpx.Client, filename: bytes, content_type: bytes
) -> None:
    """Written by hand: httpx would percent-encode the NUL of a file name."""
    content = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: " + content_type + b"\r\n\r\n{}\n\r\n--b--\r\n"
    )
    response = http.post(
        "/v1/files", content=content, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    param, _, message = error_of(response, 400)
    assert param == "file" and "\\x00" in message, message


@pytest.mark.parametrize(
    ("described", "param"),
    [({"displayName": "a\x00b"}, "file.displayName"), ({"mimeType": "a\x00"}, "file.mimeType")],
)
def test_a_gemini_upload_described_with_a_nul_is_a_400(
    http: httpx.Client, described: dict[str, str], param: str
) -> None:
    headers = {
        "x-goog-upload-protocol": "resumable",
        "x-goog-upload-command": "start",
        "x-goog-upload-header-content-length": "3",
    }
    response = http.post("/upload/v1beta/files", json={"file": described}, headers=headers)
    assert error_of(response, 400)[0] == param, response.text


# --- images: a PNG whose header and CRCs are fine but whose pixels stop short -------------------------------


def truncated_png(width: int = 64, height: int = 48) -> bytes:
    """A PNG with a valid signature, IHDR, CRCs and zlib stream, holding half of its rows' pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([200, 40, 40]) * width for _ in range(height // 2))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_a_png_with_truncated_pixel_data_is_refused_at_acceptance(
    http: httpx.Client, server: ServerProcess
) -> None:
    whole = png_bytes(64, 48)
    assert (
        http.post(
            "/v1/images/edits",
            data={"model": MODEL, "prompt": "x"},
            files={"image": ("ok.png", whole, "image/png")},
        ).status_code
        == 200
    )
    response, request_id = send(
        http,
        "POST",
        "/v1/images/edits",
        data={"model": MODEL, "prompt": "x"},
        files={"image": ("cut.png", truncated_png(), "image/png")},
    )
    param, code, message = error_of(response, 400)
    assert (param, code) == ("image[0]", "invalid_image"), message
    assert tasks_made_by(server, request_id) == 0
    inline = base64.b64encode(truncated_png()).decode()
    content = generation(b'"reference_images": ["' + inline.encode() + b'"]')
    response, request_id = send(http, "POST", "/v1/images/generations", content)
    assert error_of(response, 400)[:2] == ("reference_images[0]", "invalid_image")
    assert tasks_made_by(server, request_id) == 0


def interlaced_png(width: int, height: int, *, passes: int = 7) -> bytes:
    """An 8-bit grey Adam7 PNG holding the rows of its first ``passes`` passes."""
    starts = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ]
    raw = b""
    for x0, y0, dx, dy in starts[:passes]:
        columns, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and rows > 0:
            raw += (b"\x00" + b"\x80" * columns) * rows

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_the_pixel_data_check_counts_every_pass_of_an_interlaced_png() -> None:
    from PIL import Image

    from pixelgate.core.errors import InvalidRequest
    from pixelgate.core.images import inspect_image

    whole = interlaced_png(33, 17)
    with Image.open(io.BytesIO(whole)) as image:
        image.load()  # Pillow reads it whole
    assert inspect_image(whole, field="image", max_pixels=10_000).width == 33
    inspect_image(interlaced_png(1, 1, passes=1), field="image", max_pixels=10_000)
    with pytest.raises(InvalidRequest) as caught:
        inspect_image(interlaced_png(33, 17, passes=6), field="image", max_pixels=10_000)
    assert caught.value.code == "invalid_image"


# --- the check itself, on values built around one bad leaf ----------------------------------------------------

good_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8)
)
bad_leaves = st.sampled_from(["\ud800", "a\udfffb", float("nan"), float("-inf"), 2**63, -(2**63) - 1, 10**40])
segments = st.lists(st.text(alphabet="abcé_", min_size=1, max_size=4) | st.integers(0, 3), max_size=6)


@settings(max_examples=300, deadline=None)
@given(path=segments, bad=bad_leaves, sibling=good_leaves)
def test_the_check_names_the_place_of_what_it_refuses(path: list[str | int], bad: Any, sibling: Any) -> None:
    from pixelgate.api.parsing import check_storable
    from pixelgate.core.errors import InvalidRequest

    value: Any = bad
    spelled = ""
    for segment in path:
        spelled += f"[{segment}]" if isinstance(segment, int) else (f".{segment}" if spelled else segment)
    for segment in reversed(path):
        # A good sibling on each level, written before the way down (a list's earlier items).
        value = (
            [sibling] * segment + [value, sibling]
            if isinstance(segment, int)
            else {"~": sibling, segment: value}
        )
    check_storable({"fine": [sibling, {"x": sibling}]})  # good values pass
    with pytest.raises(InvalidRequest) as caught:
        check_storable(value, root="the line")
    assert caught.value.param == (spelled or None), (caught.value.param, spelled)
    assert caught.value.message.startswith(spelled or "the line"), caught.value.message


def test_a_form_in_utf7_cannot_smuggle_a_lone_surrogate(http: httpx.Client, server: ServerProcess) -> None:
    """Starlette decodes a multipart form in the charset its Content-Type names; UTF-7 spells surrogates."""
    content = (
        b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na kite\r\n'
        b'--b\r\nContent-Disposition: form-data; name="user"\r\n\r\nx+2AA-y\r\n'
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png_bytes(16, 16) + b"\r\n--b--\r\n"
    )
    response, request_id = send(
        http,
        "POST",
        "/v1/images/edits",
        content=content,
        headers={"content-type": "multipart/form-data; boundary=b; charset=utf-7"},
    )
    param, code, message = error_of(response, 400)
    assert (param, code) == ("user", "invalid_unicode"), message
    assert tasks_made_by(server, request_id) == 0
