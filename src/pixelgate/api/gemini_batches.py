"""The Gemini API's batch mode and Files API, translation only, as the ``google-genai`` SDK calls them.

- ``POST /{v}/models/{model}:batchGenerateContent`` with ``{"batch": {"displayName", "inputConfig":
  {"requests": {"requests": [{"request", "metadata"}]}} or {"fileName": "files/…"}}}``: a batch whose
  lines are ``GenerateContentRequest``s. Inline requests are answered inline (``output.inlinedResponses``,
  rendered from the lines' tasks when asked for); a JSONL file of ``{"key", "request"}`` lines is answered
  with a file of ``{"key", "response"|"error"}`` lines (``output.responsesFile``).
- ``GET /{v}/batches/{id}``, ``GET /{v}/batches``, ``POST /{v}/batches/{id}:cancel``, ``DELETE …``: a
  batch is an operation whose ``metadata`` is the ``GenerateContentBatch`` (state ``BATCH_STATE_…``).
- ``POST /upload/{v}/files``: Google's resumable upload (start, then ``upload, finalize`` pieces at
  offsets, to the URL the start answered in ``X-Goog-Upload-URL``); ``GET /{v}/files/{name}``, the list,
  ``DELETE``, and ``GET /{v}/files/{name}:download?alt=media`` for a batch's results file.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import BatchesDep, CatalogDep, FilesDep, ImageLinks, LinksDep, SettingsDep
from pixelgate.api.errors import GOOGLE_STATUS, gemini_dialect
from pixelgate.api.gemini import PAGE_SIZE, render_response, submit_request
from pixelgate.api.gemini_common import API_VERSIONS, iso_time
from pixelgate.api.parsing import (
    NotAnObject,
    NotJSON,
    check_text,
    jsonl_objects,
    read_json_object,
    shown,
    stored_text,
)
from pixelgate.api.responses import FastJSONResponse, ImageJSONResponse, inline_files
from pixelgate.auth.keys import Caller
from pixelgate.core.errors import InvalidRequest, NotFound, error_from_record
from pixelgate.core.safe_urls import AddressPolicy
from pixelgate.core.task import Callback
from pixelgate.store import schema
from pixelgate.store.files import FileStore, StoredFile, new_file_id
from pixelgate.tasks.batches import Batch, BatchLine, BatchState, BatchStore, LineResult
from pixelgate.tasks.service import TaskService
from pixelgate.tasks.webhook_targets import check_callback

router = APIRouter(dependencies=[Depends(gemini_dialect), Depends(authenticate)])

MAX_LINES = 50_000
UPLOAD_KEEP_SECONDS = 48 * 3600  # as long as Google keeps an uploaded file
STATES = {
    BatchState.VALIDATING: "BATCH_STATE_PENDING",
    BatchState.IN_PROGRESS: "BATCH_STATE_RUNNING",
    BatchState.FINALIZING: "BATCH_STATE_RUNNING",
    BatchState.CANCELLING: "BATCH_STATE_RUNNING",
    BatchState.COMPLETED: "BATCH_STATE_SUCCEEDED",
    BatchState.FAILED: "BATCH_STATE_FAILED",
    BatchState.CANCELLED: "BATCH_STATE_CANCELLED",
    BatchState.EXPIRED: "BATCH_STATE_EXPIRED",
}
_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1main."


def _file_id(name: str) -> str:
    return name.removeprefix("files/")


def file_resource(links: ImageLinks, request: Request, stored: StoredFile, version: str) -> dict[str, Any]:
    base = links.base_url(request)
    resource: dict[str, Any] = {
        "name": f"files/{stored.id}",
        "displayName": stored.filename,
        "mimeType": stored.mime_type,
        "sizeBytes": str(stored.bytes),
        "createTime": iso_time(stored.created_at),
        "updateTime": iso_time(stored.created_at),
        "uri": f"{base}/{version}/files/{stored.id}",
        "state": "ACTIVE" if stored.state == "active" else "PROCESSING",
        "source": "GENERATED" if stored.purpose == "batch_output" else "UPLOADED",
    }
    if stored.expires_at:
        resource["expirationTime"] = iso_time(stored.expires_at)
    if stored.purpose == "batch_output":
        resource["downloadUri"] = f"{base}/{version}/files/{stored.id}:download?alt=media"
    return resource


async def upload_file(
    version: str,
    request: Request,
    files: FilesDep,
    links: LinksDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> Response:
    """Google's resumable upload: ``start`` (the file's description) answers with the URL the pieces go to;
    each piece is ``upload`` at an offset, the last ``upload, finalize``. ``version`` is declared (not read
    from the path) so that the OpenAPI document names the path parameter."""
    if version not in API_VERSIONS:
        # It is written back into the upload URL's header: a line break in it was a 500.
        raise NotFound(
            f"/upload/{version[:20]!r}/files is not an upload path: use "
            + " or ".join(f"/upload/{known}/files" for known in API_VERSIONS)
        )
    command = {part.strip() for part in request.headers.get("x-goog-upload-command", "").lower().split(",")}
    upload_id = request.query_params.get("upload_id")
    if "start" in command:
        described = (await read_json_object(request)).get("file") or {}
        if not isinstance(described, dict):
            raise InvalidRequest(
                f"file {shown(described)} is not valid: describe the file as an object "
                '({"displayName", "mimeType"}), or leave it out',
                param="file",
            )
        length = request.headers.get("x-goog-upload-header-content-length", "")
        if not length.isdigit() or int(length) > settings.max_body_bytes:
            raise InvalidRequest(
                f"X-Goog-Upload-Header-Content-Length {length[:20]!r} is not valid: give the file's size in "
                f"bytes, at most {settings.max_body_bytes:,}",
                param="X-Goog-Upload-Header-Content-Length",
            )
        stored = await files.start_upload(
            owner=caller.owner,
            purpose="batch",
            filename=check_text(
                str(
                    described.get("displayName") or request.headers.get("x-goog-upload-file-name") or "upload"
                ),
                "file.displayName",
            ),
            mime_type=check_text(
                request.headers.get("x-goog-upload-header-content-type")
                or str(described.get("mimeType") or "application/octet-stream"),
                "file.mimeType",
            ),
            expected_bytes=int(length),
            expires_at=time.time() + UPLOAD_KEEP_SECONDS,
        )
        url = f"{links.base_url(request)}/upload/{version}/files?upload_id={stored.id}"
        return FastJSONResponse({}, headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})
    if "upload" not in command or upload_id is None:
        raise InvalidRequest(
            f"X-Goog-Upload-Command {request.headers.get('x-goog-upload-command', '')[:40]!r} is not valid here: "
            "start an upload with 'start' (and X-Goog-Upload-Protocol: resumable), then send its pieces to "
            "the upload URL with 'upload' and the last with 'upload, finalize'",
            param="X-Goog-Upload-Command",
            code="invalid_upload_command",
        )
    await files.get(upload_id, owner=caller.owner, param="upload_id")
    offset = request.headers.get("x-goog-upload-offset", "0")
    if not offset.isdigit():
        raise InvalidRequest(
            f"X-Goog-Upload-Offset {offset[:20]!r} is not valid: give the piece's offset in bytes",
            param="X-Goog-Upload-Offset",
        )
    finalize = "finalize" in command
    stored = await files.append(upload_id, int(offset), await request.body(), finalize=finalize)
    if not finalize:
        return FastJSONResponse({}, headers={"X-Goog-Upload-Status": "active"})
    return FastJSONResponse(
        {"file": file_resource(links, request, stored, version)}, headers={"X-Goog-Upload-Status": "final"}
    )


async def get_file(
    name: str, request: Request, files: FilesDep, links: LinksDep, caller: CallerDep
) -> Response:
    file_id, _, action = name.partition(":")
    stored = await files.get(file_id, owner=caller.owner, param="name")
    if action == "download":
        return Response(await files.read(stored), media_type=stored.mime_type)
    if action:
        raise NotFound(
            f"files/{file_id}:{action[:40]} is not served: use files/{{name}}:download",
            code="unknown_endpoint",
        )
    return FastJSONResponse(file_resource(links, request, stored, _version(request)))


async def list_files(
    request: Request,
    files: FilesDep,
    links: LinksDep,
    caller: CallerDep,
    pageSize: str | None = None,
    pageToken: str | None = None,
) -> Response:
    size = PAGE_SIZE.read(pageSize)
    found = await files.page(owner=caller.owner, after=pageToken or None, limit=size + 1)
    version = _version(request)
    body: dict[str, Any] = {"files": [file_resource(links, request, f, version) for f in found[:size]]}
    if len(found) > size:
        body["nextPageToken"] = found[size - 1].id
    return FastJSONResponse(body)


async def delete_file(name: str, files: FilesDep, caller: CallerDep) -> Response:
    await files.delete(_file_id(name), owner=caller.owner)
    return FastJSONResponse({})


def _inline_lines(requests: Any) -> list[tuple[str | None, dict[str, Any]]]:
    if not isinstance(requests, list) or not requests:
        raise InvalidRequest(
            "batch.inputConfig.requests.requests must be a non-empty list of {request, metadata}",
            param="batch.inputConfig.requests.requests",
        )
    if len(requests) > MAX_LINES:
        raise InvalidRequest(
            f"batch.inputConfig.requests.requests holds {len(requests):,} requests: at most {MAX_LINES:,}",
            param="batch.inputConfig.requests.requests",
        )
    lines: list[tuple[str | None, dict[str, Any]]] = []
    for i, item in enumerate(requests):
        where = f"batch.inputConfig.requests.requests[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            raise InvalidRequest(f"{where} has no request object", param=f"{where}.request")
        metadata = item.get("metadata")
        key = metadata.get("key") if isinstance(metadata, dict) else None
        lines.append(
            (_line_key(key, f"{where}.metadata.key"), {"request": item["request"], "metadata": metadata})
        )
    return lines


def _line_key(key: Any, field: str) -> str | None:
    """A line's key (Gemini's ``metadata.key``, a file line's ``key``), kept as the line's custom_id."""
    return stored_text(str(key), field, schema.batch_lines.c.custom_id) if key is not None else None


def _in_line(number: int, name: str, exc: InvalidRequest) -> InvalidRequest:
    return InvalidRequest(
        f"line {number} of {name}: {exc.message}", param="batch.inputConfig.fileName", code=exc.code
    )


def _file_lines(data: bytes, name: str) -> list[tuple[str | None, dict[str, Any]]]:
    lines: list[tuple[str | None, dict[str, Any]]] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            f"{name} is not UTF-8 text: send JSONL", param="batch.inputConfig.fileName"
        ) from None
    for number, item in jsonl_objects(text):
        if isinstance(item, InvalidRequest):  # JSON that no database keeps (a lone surrogate, NaN)
            raise _in_line(number, name, item)
        if isinstance(item, NotJSON) and not isinstance(item, NotAnObject):
            raise InvalidRequest(
                f'line {number} of {name} is not valid JSON ({item}): each line is {{"key", "request"}}',
                param="batch.inputConfig.fileName",
            )
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            raise InvalidRequest(
                f'line {number} of {name} has no request object: each line is {{"key", "request"}}',
                param="batch.inputConfig.fileName",
            )
        try:
            key = _line_key(item.get("key"), "key")
        except InvalidRequest as exc:
            raise _in_line(number, name, exc) from None
        lines.append((key, {"request": item["request"]}))
    if not lines:
        raise InvalidRequest(f"{name} holds no requests", param="batch.inputConfig.fileName")
    if len(lines) > MAX_LINES:
        raise InvalidRequest(
            f"{name} holds {len(lines):,} requests: at most {MAX_LINES:,}", param="batch.inputConfig.fileName"
        )
    return lines


async def _webhook(batch_body: dict[str, Any], fetch_policy: AddressPolicy) -> dict[str, Any] | None:
    """``batch.webhookConfig`` ({uris, userMetadata}), checked: URIs replace the owner's webhooks."""
    config = batch_body.get("webhookConfig", batch_body.get("webhook_config"))
    if config is None:
        return None
    field = "batch.webhookConfig"
    if not isinstance(config, dict):
        raise InvalidRequest(
            f"{field} is {type(config).__name__}: give an object with uris and userMetadata", param=field
        )
    uris = config.get("uris") or []
    metadata = config.get("userMetadata", config.get("user_metadata"))
    if not isinstance(uris, list) or not all(isinstance(uri, str) for uri in uris):
        raise InvalidRequest(
            f"{field}.uris must be a list of URLs, got {str(uris)[:80]!r}", param=f"{field}.uris"
        )
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidRequest(
            f"{field}.userMetadata must be an object, got {str(metadata)[:80]!r}",
            param=f"{field}.userMetadata",
        )
    await check_callback(
        Callback(urls=tuple(uris), user_metadata=metadata, field=f"{field}.uris"), fetch_policy
    )
    return {"urls": uris, "user_metadata": metadata}


async def batch_generate_content(
    model: str,
    request: Request,
    catalog: CatalogDep,
    files: FilesDep,
    batches: BatchesDep,
    links: LinksDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> Response:
    spec = catalog.named_by_url(model)
    body = await read_json_object(request)
    batch_body = body.get("batch")
    if not isinstance(batch_body, dict):
        raise InvalidRequest(
            'the body has no batch object: send {"batch": {"inputConfig": …}}', param="batch"
        )
    config = batch_body.get("inputConfig") or batch_body.get("input_config")
    if not isinstance(config, dict):
        raise InvalidRequest(
            "batch.inputConfig is required: give requests.requests (inline) or fileName (an uploaded JSONL file)",
            param="batch.inputConfig",
        )
    input_file_id = None
    if isinstance(config.get("fileName"), str):
        stored = await files.get(
            _file_id(config["fileName"]), owner=caller.owner, param="batch.inputConfig.fileName"
        )
        lines = _file_lines(await files.read(stored), config["fileName"])
        input_file_id = stored.id
    elif isinstance(config.get("requests"), dict):
        lines = _inline_lines(config["requests"].get("requests"))
    else:
        raise InvalidRequest(
            "batch.inputConfig gives neither requests.requests nor fileName: give one",
            param="batch.inputConfig",
        )
    display_name = batch_body.get("displayName")
    batch = await batches.create(
        dialect="gemini",
        endpoint=spec.id,
        caller=caller,
        lines=lines,
        input_file_id=input_file_id,
        display_name=stored_text(str(display_name), "batch.displayName", schema.batches.c.display_name)
        if display_name is not None
        else None,
        options={
            "base_url": links.base_url(request),
            "webhook": await _webhook(batch_body, settings.fetch_policy),
        },
        idempotency_key=request.headers.get("idempotency-key"),
        request_body=body,
        completion_window=settings.batch_completion_seconds,
    )
    return FastJSONResponse(await batch_operation(links, batches, batch, inline=False))


async def batch_operation(
    links: ImageLinks, batches: BatchStore, batch: Batch, *, inline: bool
) -> dict[str, Any]:
    """A batch as Google's long-running operation; with ``inline``, a finished inline batch carries its
    responses (``Base64File`` values, streamed as the answer goes out)."""
    counts = batch.counts
    metadata: dict[str, Any] = {
        "@type": _TYPES + "GenerateContentBatch",
        "name": f"batches/{batch.id}",
        "model": f"models/{batch.endpoint}",
        "displayName": batch.display_name or batch.id,
        "state": STATES[batch.state],
        "createTime": iso_time(batch.created_at),
        "updateTime": iso_time(batch.ended_at or batch.in_progress_at or batch.created_at),
        "batchStats": {
            "requestCount": str(counts.total),
            "successfulRequestCount": str(counts.succeeded),
            "failedRequestCount": str(counts.failed),
            "pendingRequestCount": str(counts.total - counts.ended),
        },
    }
    if batch.ended_at is not None:
        metadata["endTime"] = iso_time(batch.ended_at)
    operation: dict[str, Any] = {
        "name": f"batches/{batch.id}",
        "metadata": metadata,
        "done": batch.state.is_terminal,
    }
    if batch.state is BatchState.COMPLETED or (
        batch.state.is_terminal and batch.state is not BatchState.FAILED
    ):
        if batch.input_file_id is not None:
            output: dict[str, Any] = (
                {"responsesFile": f"files/{batch.output_file_id}"} if batch.output_file_id else {}
            )
        elif inline:
            responses = [
                await _inline_response(links, batch, result) async for result in batches.results(batch)
            ]
            output = {"inlinedResponses": {"inlinedResponses": responses}}
        else:
            output = {}
        metadata["output"] = output
        # The inline responses go out once (in metadata.output, where the SDK reads them): each image in
        # them is a file streamed into the answer, and a 100-line batch's images are many megabytes.
        shared = {k: v for k, v in output.items() if k != "inlinedResponses"}
        operation["response"] = {"@type": _TYPES + "GenerateContentBatchOutput", **shared}
    if batch.errors:
        operation["error"] = {"code": 400, "message": "; ".join(e["message"] for e in batch.errors)}
    return operation


def _error_status(record: dict[str, Any]) -> dict[str, Any]:
    error = error_from_record(record)
    status = 499 if record.get("kind") == "cancelled" else error.status
    return {"code": status, "message": error.message, "status": GOOGLE_STATUS.get(status, "UNKNOWN")}


async def _line_outcome(links: ImageLinks, batch: Batch, result: LineResult) -> dict[str, Any]:
    """``{"response": GenerateContentResponse}`` or ``{"error": Status}`` for one line."""
    record = result.error_record(batch)
    if record is None:
        assert result.task is not None
        return {"response": await render_response(links, result.task)}
    return {"error": _error_status(record)}


async def _inline_response(links: ImageLinks, batch: Batch, result: LineResult) -> dict[str, Any]:
    outcome = await _line_outcome(links, batch, result)
    metadata = result.line.body.get("metadata")
    return {**outcome, **({"metadata": metadata} if metadata is not None else {})}


async def get_batch(name: str, batches: BatchesDep, links: LinksDep, caller: CallerDep) -> Response:
    batch = await batches.get(name.removeprefix("batches/"), owner=caller.owner, dialect="gemini")
    return ImageJSONResponse(await batch_operation(links, batches, batch, inline=True))


async def batch_action(name: str, batches: BatchesDep, caller: CallerDep) -> Response:
    batch_id, _, action = name.partition(":")
    if action != "cancel":
        raise NotFound(
            f"batches/{batch_id[:80]}:{action[:40]} is not served: use batches/{{name}}:cancel",
            code="unknown_endpoint",
        )
    await batches.get(batch_id, owner=caller.owner, dialect="gemini")
    await batches.cancel(batch_id, owner=caller.owner)
    return FastJSONResponse({})


async def delete_batch(name: str, batches: BatchesDep, caller: CallerDep) -> Response:
    await batches.get(name, owner=caller.owner, dialect="gemini")
    await batches.delete(name, owner=caller.owner)
    return FastJSONResponse({})


async def list_batches(
    batches: BatchesDep,
    links: LinksDep,
    caller: CallerDep,
    pageSize: str | None = None,
    pageToken: str | None = None,
) -> Response:
    size = PAGE_SIZE.read(pageSize)
    found = await batches.page(
        owner=caller.owner,
        dialect="gemini",
        after=pageToken or None,
        limit=size + 1,
        cursor_param="pageToken",
    )
    body: dict[str, Any] = {
        "operations": [await batch_operation(links, batches, b, inline=False) for b in found[:size]]
    }
    if len(found) > size:
        body["nextPageToken"] = found[size - 1].id
    return FastJSONResponse(body)


def _version(request: Request) -> str:
    return request.url.path.split("/")[1]


def _route(path: str, endpoint: Any, method: str) -> None:
    router.add_api_route(path, endpoint, methods=[method], response_model=None)


_route("/upload/{version}/files", upload_file, "POST")
for _version_ in API_VERSIONS:
    _route(f"/{_version_}/models/{{model}}:batchGenerateContent", batch_generate_content, "POST")
    _route(f"/{_version_}/batches/{{name}}", batch_action, "POST")
    _route(f"/{_version_}/batches/{{name}}", delete_batch, "DELETE")
# /v1/files and /v1/batches are OpenAI's paths too: api/batch_paths.py serves them to either client.
_route("/v1beta/files", list_files, "GET")
_route("/v1beta/files/{name}", get_file, "GET")
_route("/v1beta/files/{name}", delete_file, "DELETE")
_route("/v1beta/batches", list_batches, "GET")
_route("/v1beta/batches/{name}", get_batch, "GET")


class GeminiBatches:
    """The runner's side of this dialect: a line becomes a task; a file batch's results become a file."""

    def __init__(self, service: TaskService, files: FileStore, links: ImageLinks) -> None:
        self.service = service
        self.files = files
        self.links = links

    async def submit_line(self, batch: Batch, line: BatchLine, task_id: str, caller: Caller) -> None:
        request = dict(line.body["request"])
        request.pop("model", None)  # the SDK names the model in each inline request too; the batch's wins
        await submit_request(
            self.service, batch.endpoint, request, caller, caller_waits=False, batch_line=(batch.id, task_id)
        )

    async def finalize(self, batch: Batch, results: AsyncIterator[LineResult]) -> dict[str, Any]:
        if batch.input_file_id is None:
            return {}  # inline: the responses are rendered from the lines' tasks when asked for
        file_id = new_file_id()
        async with self.files.writing(file_id) as out:
            async for result in results:
                line = {"key": result.line.custom_id, **await _line_outcome(self.links, batch, result)}
                await out.write(json.dumps(await inline_files(line)).encode() + b"\n")
        await self.files.register(
            file_id,
            size=out.size,
            owner=batch.owner,
            purpose="batch_output",
            filename=f"{batch.id}_responses.jsonl",
            mime_type="application/jsonl",
        )
        return {"output_file_id": file_id}
