"""OpenAI's Files and Batch APIs for image requests, translation only: ``/v1/files`` and ``/v1/batches``.

A batch's input is a JSONL file uploaded with purpose ``batch``; each line is ``{"custom_id", "method":
"POST", "url", "body"}`` aimed at ``/v1/images/generations`` or ``/v1/images/edits`` (a JSON edit, with
``images``). As OpenAI does, a file whose lines cannot be read makes a batch that is ``failed`` with
``errors`` naming each bad line; a line whose request is refused (a size the model lacks, say) fails alone
and lands in the error file, at no cost. The output file holds each answered line's response body,
exactly as ``POST`` of the same body would have answered it.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import BatchesDep, FilesDep, ImageLinks, LinksDep, SettingsDep
from pixelgate.api.errors import openai_dialect, openai_error
from pixelgate.api.openai import ImageBody, edit_references, reference_inputs, to_image_request
from pixelgate.api.paging import PageSize
from pixelgate.api.parsing import (
    NotAnObject,
    NotJSON,
    check_text,
    jsonl_objects,
    parse_model,
    read_json_object,
    stored_text,
)
from pixelgate.api.render import render_images_response
from pixelgate.api.responses import FastJSONResponse, inline_files, list_page
from pixelgate.auth.keys import Caller
from pixelgate.core.errors import InvalidRequest, PixelgateError, error_from_record, one_of
from pixelgate.core.task import Callback
from pixelgate.store.files import FileStore, StoredFile, new_file_id
from pixelgate.store.schema import batch_lines
from pixelgate.tasks.batches import Batch, BatchLine, BatchState, LineResult
from pixelgate.tasks.service import TaskService
from pixelgate.tasks.webhook_targets import check_url

router = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate)])

ENDPOINTS = ("/v1/images/generations", "/v1/images/edits")
PURPOSES = ("batch", "user_data", "vision")
MAX_LINES = 50_000
LIMIT = PageSize("limit", default=20, most=100)  # OpenAI's list default and most


def file_object(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": stored.bytes,
        "created_at": int(stored.created_at),
        "expires_at": int(stored.expires_at) if stored.expires_at else None,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "status_details": None,
    }


@router.post("/v1/files")
async def upload_file(
    request: Request, files: FilesDep, settings: SettingsDep, caller: CallerDep
) -> Response:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            f"a file is uploaded as multipart/form-data with the fields file and purpose, not "
            f"{content_type or 'no content type'}",
            code="invalid_content_type",
        )
    form = await request.form(max_files=1, max_fields=16, max_part_size=settings.max_body_bytes)
    upload = form.get("file")
    purpose = form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("file is required: upload the file as the form field file", param="file")
    if not isinstance(purpose, str) or purpose not in PURPOSES:
        raise InvalidRequest(
            f"purpose {purpose!r} is not valid: use {one_of(PURPOSES)}",
            param="purpose",
            code="invalid_purpose",
        )
    expires_at = None
    seconds = form.get("expires_after[seconds]")
    if isinstance(seconds, str):
        if not seconds.isdigit() or not 3600 <= int(seconds) <= 30 * 86400:
            raise InvalidRequest(
                f"expires_after[seconds] {seconds[:20]!r} is not valid: use 3600 to 2592000 (1 hour to 30 days)",
                param="expires_after[seconds]",
            )
        expires_at = time.time() + int(seconds)
    filename = check_text(upload.filename or "upload", "file", param="file")
    mime_type = check_text(upload.content_type or "application/octet-stream", "the file's type", param="file")
    stored = await files.create(
        owner=caller.owner,
        purpose=purpose,
        filename=filename,
        mime_type=mime_type,
        data=await upload.read(),
        expires_at=expires_at,
    )
    return FastJSONResponse(file_object(stored))


async def list_files(
    files: FilesDep,
    caller: CallerDep,
    purpose: str | None = None,
    after: str | None = None,
    limit: str | None = None,
) -> Response:
    count = LIMIT.read(limit)
    found = await files.page(owner=caller.owner, purpose=purpose, after=after, limit=count + 1)
    return FastJSONResponse(list_page([file_object(f) for f in found[:count]], len(found) > count))


async def get_file(file_id: str, files: FilesDep, caller: CallerDep) -> Response:
    return FastJSONResponse(file_object(await files.get(file_id, owner=caller.owner)))


@router.get("/v1/files/{file_id}/content")
async def file_content(file_id: str, files: FilesDep, caller: CallerDep) -> Response:
    stored = await files.get(file_id, owner=caller.owner)
    return Response(await files.read(stored), media_type=stored.mime_type)


async def delete_file(file_id: str, files: FilesDep, caller: CallerDep) -> Response:
    await files.delete(file_id, owner=caller.owner)
    return FastJSONResponse({"id": file_id, "object": "file", "deleted": True})


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = Field(None, max_length=16)
    callback_url: str | None = None  # pixelgate's: a webhook for the batch's end (batch.succeeded, …)


def _read_lines(
    data: bytes, endpoint: str
) -> tuple[list[tuple[str | None, dict[str, Any]]], list[dict[str, Any]]]:
    """The file's requests, and what is wrong with it (OpenAI's batch ``errors``, one per bad line)."""
    lines: list[tuple[str | None, dict[str, Any]]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()

    def bad(number: int, code: str, message: str, param: str | None = None) -> None:
        errors.append({"code": code, "line": number, "message": message, "param": param})

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [], [
            {
                "code": "invalid_json_line",
                "line": None,
                "message": "the file is not UTF-8 text",
                "param": None,
            }
        ]
    for number, line in jsonl_objects(text):
        if isinstance(line, NotAnObject):
            bad(number, "invalid_json_line", f"line {number} is {line}, not a JSON object")
            continue
        if isinstance(line, NotJSON):
            bad(number, "invalid_json_line", f"line {number} is not valid JSON ({line})")
            continue
        if isinstance(line, InvalidRequest):  # JSON that no database keeps (a lone surrogate, NaN)
            bad(number, line.code, f"line {number}: {line.message}", line.param)
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            bad(
                number,
                "missing_required_parameter",
                f"line {number} has no custom_id (a non-empty string)",
                "custom_id",
            )
        elif (unfit := _unstorable(custom_id, "custom_id")) is not None:
            bad(number, unfit.code, f"line {number}: {unfit.message}", "custom_id")
        elif custom_id in seen:
            bad(
                number,
                "duplicate_custom_id",
                f"line {number} repeats custom_id {custom_id[:80]!r}: each must be unique",
                "custom_id",
            )
        else:
            seen.add(custom_id)
        if line.get("method") != "POST":
            bad(
                number,
                "invalid_method",
                f"line {number} has method {line.get('method')!r}: use POST",
                "method",
            )
        if line.get("url") != endpoint:
            bad(
                number,
                "mismatched_endpoint",
                f"line {number} is for {str(line.get('url'))[:80]!r} but the batch's endpoint is {endpoint}",
                "url",
            )
        if not isinstance(line.get("body"), dict):
            bad(number, "invalid_request", f"line {number} has no body object", "body")
        if len(lines) + len(errors) > MAX_LINES:
            return [], [
                {
                    "code": "too_many_requests",
                    "line": number,
                    "message": f"a batch holds at most {MAX_LINES:,} requests",
                    "param": None,
                }
            ]
        lines.append((custom_id if isinstance(custom_id, str) else None, line.get("body") or {}))
    if not lines and not errors:
        bad(0, "empty_file", "the input file holds no requests")
    return lines, errors


def _unstorable(value: str, field: str) -> InvalidRequest | None:
    try:
        stored_text(value, field, batch_lines.c.custom_id)
    except InvalidRequest as exc:
        return exc
    return None


@router.post("/v1/batches")
async def create_batch(
    request: Request,
    files: FilesDep,
    batches: BatchesDep,
    links: LinksDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> Response:
    raw = await read_json_object(request)
    body = parse_model(BatchBody, raw)
    if body.endpoint not in ENDPOINTS:
        raise InvalidRequest(
            f"endpoint {body.endpoint[:80]!r} is not served in a batch here: use {one_of(ENDPOINTS)}",
            param="endpoint",
            code="invalid_endpoint",
        )
    if body.completion_window != "24h":
        raise InvalidRequest(
            f"completion_window {body.completion_window[:20]!r} is not valid: use 24h",
            param="completion_window",
        )
    if body.callback_url is not None:
        await check_url(body.callback_url, "callback_url", settings.fetch_policy)
    stored = await files.get(body.input_file_id, owner=caller.owner, param="input_file_id")
    if stored.purpose != "batch":
        raise InvalidRequest(
            f"file {stored.id} was uploaded with purpose {stored.purpose!r}: a batch reads a file of purpose batch",
            param="input_file_id",
            code="invalid_file_purpose",
        )
    lines, errors = _read_lines(await files.read(stored), body.endpoint)
    batch = await batches.create(
        dialect="openai",
        endpoint=body.endpoint,
        caller=caller,
        lines=[] if errors else lines,
        input_file_id=stored.id,
        errors=errors or None,
        options={
            "metadata": body.metadata,
            "base_url": links.base_url(request),
            "webhook": {"urls": [body.callback_url]} if body.callback_url else None,
        },
        idempotency_key=request.headers.get("idempotency-key"),
        request_body=raw,
        completion_window=settings.batch_completion_seconds,
    )
    return FastJSONResponse(batch_object(batch))


async def list_batches(
    batches: BatchesDep, caller: CallerDep, after: str | None = None, limit: str | None = None
) -> Response:
    count = LIMIT.read(limit)
    found = await batches.page(owner=caller.owner, dialect="openai", after=after, limit=count + 1)
    return FastJSONResponse(list_page([batch_object(b) for b in found[:count]], len(found) > count))


async def get_batch(batch_id: str, batches: BatchesDep, caller: CallerDep) -> Response:
    return FastJSONResponse(batch_object(await batches.get(batch_id, owner=caller.owner, dialect="openai")))


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, batches: BatchesDep, caller: CallerDep) -> Response:
    await batches.get(batch_id, owner=caller.owner, dialect="openai")
    batch = await batches.cancel(batch_id, owner=caller.owner)
    return FastJSONResponse(batch_object(batch))


def batch_object(batch: Batch) -> dict[str, Any]:
    def at(value: float | None) -> int | None:
        return int(value) if value is not None else None

    state = batch.state
    ended = {
        BatchState.COMPLETED: "completed_at",
        BatchState.FAILED: "failed_at",
        BatchState.CANCELLED: "cancelled_at",
        BatchState.EXPIRED: "expired_at",
    }
    body: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": "24h",
        "status": state.value,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": int(batch.created_at),
        "in_progress_at": at(batch.in_progress_at),
        "expires_at": int(batch.expires_at),
        "finalizing_at": at(batch.finalizing_at),
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": at(batch.cancelling_at),
        "cancelled_at": None,
        "request_counts": {
            "total": batch.counts.total,
            "completed": batch.counts.succeeded,
            "failed": batch.counts.failed,
        },
        "metadata": batch.options.get("metadata"),
        "usage": {
            "input_tokens": batch.counts.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": batch.counts.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": batch.counts.total_tokens,
        },
        # pixelgate's own: what the batch has cost so far (settled lines, at batch prices), and its images.
        "usage_usd": batch.counts.cost_usd,
        "images": batch.counts.images,
    }
    if state in ended:
        body[ended[state]] = at(batch.ended_at)
    return body


class OpenAIBatches:
    """The runner's side of this dialect: a line becomes a task, and the results become two files."""

    def __init__(self, service: TaskService, files: FileStore, links: ImageLinks, default_model: str) -> None:
        self.service = service
        self.files = files
        self.links = links
        self.default_model = default_model

    async def submit_line(self, batch: Batch, line: BatchLine, task_id: str, caller: Caller) -> None:
        body = parse_model(ImageBody, line.body)
        refs = edit_references(body) if batch.endpoint == "/v1/images/edits" else reference_inputs(body)
        await self.service.submit(
            to_image_request(body, self.service.catalog, self.default_model),
            references=refs,
            dialect="openai",
            caller_waits=False,
            response_format=body.response_format or "url",
            caller=caller,
            callback=Callback(urls=(body.callback_url,)) if body.callback_url is not None else None,
            batch_line=(batch.id, task_id),
        )

    async def finalize(self, batch: Batch, results: AsyncIterator[LineResult]) -> dict[str, Any]:
        output_id, error_id = new_file_id(), new_file_id()
        written = {"output": 0, "error": 0}
        base_url = batch.options.get("base_url", "")
        async with self.files.writing(output_id) as output, self.files.writing(error_id) as errors:
            async for result in results:
                line, kind = await self._line(batch, result, base_url)
                await (output if kind == "output" else errors).write(json.dumps(line).encode() + b"\n")
                written[kind] += 1
        values: dict[str, Any] = {}
        for kind, file_id, writer in (("output", output_id, output), ("error", error_id, errors)):
            if written[kind]:
                await self.files.register(
                    file_id,
                    size=writer.size,
                    owner=batch.owner,
                    purpose="batch_output",
                    filename=f"{batch.id}_{kind}.jsonl",
                    mime_type="application/jsonl",
                )
                values[f"{kind}_file_id"] = file_id
            else:
                await self.files.blobs.delete_prefix(file_id)
        return values

    async def _line(self, batch: Batch, result: LineResult, base_url: str) -> tuple[dict[str, Any], str]:
        line, task = result.line, result.task
        head = {"id": f"batch_req_{batch.task_id(line.line)}", "custom_id": line.custom_id}
        record = result.error_record(batch)
        if record is None:
            assert task is not None
            body = await inline_files(await render_images_response(base_url, self.links, task))
            return {
                **head,
                "response": {"status_code": 200, "request_id": task.id, "body": body},
                "error": None,
            }, "output"
        if record.get("kind") == "cancelled" or record["code"] == "result_missing":  # never answered
            return {
                **head,
                "response": None,
                "error": {"code": record["code"], "message": record["message"]},
            }, "error"
        failure: PixelgateError = error_from_record(record)
        response = {
            "status_code": failure.status,
            "request_id": task.id if task else None,
            "body": openai_error(failure),
        }
        return {**head, "response": response, "error": None}, "error"
