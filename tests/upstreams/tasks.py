"""The task-style gateway of seeds 000-002: create a task, poll it, download the result by a URL that
expires."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from email.utils import formatdate
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import Call, Rejected, Simulator
from .faults import image_bytes
from .images import size_for
from .openai import bearer_key, model_list
from .tasking import Blob, Job, next_failure

DEFAULT_MODELS = ("gemini-3-pro-image", "gemini-3.1-flash-image")
RESOLUTIONS = frozenset({"1K", "2K", "4K"})
REFERENCE_SCHEMES = ("http://", "https://", "data:")

ERROR_TYPES = {
    401: "authentication_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}
DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Invalid API key",
    404: "Task not found",
    429: "Request rate, concurrency, or current quota hits upstream rate limiting.",
    500: "Internal server error.",
    503: "Service temporarily unavailable, please try again later.",
}


def _s3_error(status: int, code: str, message: str) -> Response:
    """An object store's refusal: XML, whatever the client hoped for."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


class TaskGatewaySimulator(Simulator):
    """``POST /v1/images/generations`` -> a task; ``GET /v1/images/generations/{id}`` polls it;
    ``POST /v1/images/generations/{id}/cancel``; ``GET /results/{name}`` serves results until they expire;
    ``GET /v1/models``."""

    name = "tasks"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        models: Iterable[str] | None = None,
        task_duration: float = 0.3,
        url_ttl: float = 3600.0,
    ) -> None:
        super().__init__(api_key=api_key, delay=delay)
        #: When set, other models are refused with a 400; when None every model is served.
        self.models: set[str] | None = set(models) if models is not None else None
        #: How long a task stays in_progress, and how long its result URL works after it completes.
        self.task_duration = task_duration
        self.url_ttl = url_ttl
        #: Tasks by id, result files by name, and the ids of cancelled tasks in cancel order.
        self.tasks: dict[str, Job] = {}
        self.results: dict[str, Blob] = {}
        self.cancelled_ids: list[str] = []
        self._task_failures: list[tuple[tuple[str, str], int]] = []

    def fail_task_next(
        self,
        code: str = "generation_failed",
        message: str = "simulated generation failure",
        *,
        times: int = 1,
    ) -> None:
        """The next ``times`` tasks created end as failed with ``{"code": code, "message": message}``."""
        with self._lock:
            self._task_failures.append(((code, message), times))

    # -- vendor hooks ---------------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            self.route("/v1/images/generations", self._create, methods=["POST"], generation=True),
            self.route("/v1/images/generations/{task_id}", self._poll),
            self.route("/v1/images/generations/{task_id}/cancel", self._cancel, methods=["POST"]),
            self.route("/v1/models", self._list_models),
            self.route("/results/{name}", self._download, auth=False),
        ]

    def error(self, status: int, message: str | None = None, **fields: Any) -> Response:
        error_type = fields.get("type", ERROR_TYPES.get(status, "invalid_request_error"))
        body = {
            "message": message or DEFAULT_MESSAGES.get(status, "Error"),
            "type": error_type,
            "code": fields.get("code", "not_found" if status == 404 else error_type),
        }
        return JSONResponse({"error": body}, status_code=status)

    def authorized(self, request: Request) -> bool:
        return bearer_key(request) == self.api_key

    def auth_error(self, request: Request) -> Response:
        return self.error(401)

    def _reset_vendor_state(self) -> None:
        with self._lock:
            self._task_failures.clear()

    # -- endpoints ------------------------------------------------------------------------------------

    async def _create(self, call: Call) -> Response:
        body = call.json_object()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Rejected(400, "model is required")
        if self.models is not None and model not in self.models:
            raise Rejected(400, f"model {model} is not supported")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise Rejected(400, "prompt is required")
        resolution = body.get("resolution") or "1K"
        if resolution not in RESOLUTIONS:
            raise Rejected(400, f"resolution must be one of 1K, 2K, 4K; got {resolution!r}")
        try:
            width, height = size_for(body.get("size") or "1:1", resolution)
        except ValueError as exc:
            raise Rejected(400, f"size must be an aspect ratio such as 16:9: {exc}") from exc
        references = body.get("reference_images") or []
        if not isinstance(references, list) or not all(
            isinstance(ref, str) and ref.startswith(REFERENCE_SCHEMES) for ref in references
        ):
            raise Rejected(400, "reference_images must be a list of http(s) URLs or data: URIs")
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise Rejected(400, "metadata must be an object")

        with self._lock:
            failure = next_failure(self._task_failures)
        task_id = f"task_img_{uuid.uuid4().hex[:24]}"
        job = Job(task_id, model, self.task_duration, {}, failure, metadata)
        job.result = self._result(job, width, height, image_bytes(call.fault, width, height))
        self.tasks[task_id] = job
        return JSONResponse({**self._head(job), "status": "queued", "progress": 0})

    def _result(self, job: Job, width: int, height: int, content: bytes | None) -> dict[str, Any]:
        """The completed task's extra fields. The file is stored now (the fault is the create call's) but
        only exists from the moment the task completes, and expires url_ttl seconds later."""
        expires_at = job.finished_at + self.url_ttl
        if content is None:
            return {"expires_at": int(expires_at), "result": {"data": []}}
        name = f"{job.id}-0.png"
        self.results[name] = Blob(content, "image/png", available_from=job.finished_at, expires_at=expires_at)
        url = f"{self.url}/results/{name}"
        item = {"url": url, "width": width, "height": height, "mime_type": "image/png"}
        return {"expires_at": int(expires_at), "url": url, "result": {"data": [item]}}

    @staticmethod
    def _head(job: Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "object": "generation.task",
            "model": job.model,
            "created_at": int(job.created_at),
            "metadata": job.metadata,
        }

    def _task_body(self, job: Job) -> dict[str, Any]:
        head = self._head(job)
        if job.cancelled:
            return {**head, "status": "cancelled", "progress": job.progress()}
        if not job.finished:
            return {**head, "status": "in_progress", "progress": 50}
        if job.failure is not None:
            code, message = job.failure
            failed_at = int(job.finished_at)
            return {
                **head,
                "status": "failed",
                "progress": 100,
                "completed_at": failed_at,
                "error": {"code": code, "message": message},
            }
        return {
            **head,
            "status": "completed",
            "progress": 100,
            "completed_at": int(job.finished_at),
            **job.result,
        }

    def _job(self, call: Call) -> Job:
        job = self.tasks.get(call.request.path_params["task_id"])
        if job is None:
            raise Rejected(404)
        return job

    async def _poll(self, call: Call) -> Response:
        return JSONResponse(self._task_body(self._job(call)))

    async def _cancel(self, call: Call) -> Response:
        job = self._job(call)
        if job.finished and not job.cancelled:
            raise Rejected(400, f"task {job.id} has already finished and cannot be cancelled")
        if not job.cancelled:
            job.cancelled = True
            self.cancelled_ids.append(job.id)
        return JSONResponse(self._task_body(job))

    async def _list_models(self, call: Call) -> Response:
        return JSONResponse(model_list(sorted(self.models) if self.models is not None else DEFAULT_MODELS))

    async def _download(self, call: Call) -> Response:
        blob = self.results.get(call.request.path_params["name"])
        now = time.time()
        if blob is None or now < blob.available_from:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        if blob.expires_at is not None and now >= blob.expires_at:
            return _s3_error(403, "AccessDenied", "Request has expired")
        headers = {"Last-Modified": formatdate(blob.available_from, usegmt=True)}
        return Response(blob.content, media_type="image/png", headers=headers)
