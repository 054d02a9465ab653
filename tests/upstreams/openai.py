"""The OpenAI Images API (generations, edits), with seed 003's gateway extensions: URL answers by default
and an ``async`` mode that answers with a task to poll at ``GET /v1/tasks/{id}``."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import Call, Rejected, Simulator
from .faults import Fault, image_b64, image_bytes
from .images import DEFAULT_SIZE, FORMATS, fit, parse_wxh
from .tasking import Blob, Job, next_failure

DEFAULT_MODELS = ("gemini-3.1-flash-image",)
DEFAULT_SIZES = ("1024x1024", "1024x1536", "1536x1024")
RESPONSE_FORMATS = frozenset({"url", "b64_json"})
MAX_IMAGES = 10
OUTPUT_TOKENS_PER_IMAGE = 1056

ERROR_TYPES = {429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}
ERROR_CODES: dict[int, str | None] = {429: "rate_limit_exceeded"}
DEFAULT_MESSAGES = {
    400: "Invalid request.",
    404: "Not found.",
    429: "Rate limit reached for images per minute.",
    500: "The server had an error while processing your request. Sorry about that!",
    503: "The engine is currently overloaded, please try again later.",
}


def model_list(models: Iterable[str]) -> dict[str, Any]:
    """``GET /v1/models`` as OpenAI (and every gateway copying it) answers."""
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": 0, "owned_by": "sim"} for model in models],
    }


def bearer_key(request: Request) -> str | None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None


def mask_key(key: str) -> str:
    """The key as OpenAI echoes a wrong one: enough to recognise it, never the whole of it."""
    return f"{key[:3]}...{key[-3:]}" if len(key) > 10 else "***"


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


class OpenAISimulator(Simulator):
    """``POST /v1/images/generations`` (JSON), ``POST /v1/images/edits`` (multipart), ``GET /v1/tasks/{id}``
    (async mode), ``GET /v1/models``, and ``GET /files/{name}`` (URL-mode images, no auth)."""

    name = "openai"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        models: Iterable[str] | None = None,
        sizes: Iterable[str] | None = None,
        default_response_format: str = "url",
        async_duration: float = 0.3,
    ) -> None:
        super().__init__(api_key=api_key, delay=delay)
        #: When set, other models get OpenAI's model_not_found 404; when None every model is served.
        self.models: set[str] | None = set(models) if models is not None else None
        #: When set, other "WxH" sizes get OpenAI's invalid_size 400 ("auto" is always accepted).
        self.sizes: set[str] | None = set(sizes) if sizes is not None else None
        #: What response_format a request that names none gets; "url", as seed 003's gateway does.
        self.default_response_format = default_response_format
        #: How long an async task "runs" before its poll answers completed.
        self.async_duration = async_duration
        #: Async tasks by id, and the files served under /files/ by name.
        self.tasks: dict[str, Job] = {}
        self.files: dict[str, Blob] = {}
        self._task_failures: list[tuple[tuple[str, str], int]] = []
        self._ids = itertools.count(1)

    def fail_task_next(self, message: str = "simulated generation failure", *, times: int = 1) -> None:
        """The next ``times`` async tasks end as failed with ``message`` (code "generation_failed")."""
        with self._lock:
            self._task_failures.append((("generation_failed", message), times))

    # -- vendor hooks ---------------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            self.route("/v1/images/generations", self._generations, methods=["POST"], generation=True),
            self.route("/v1/images/edits", self._edits, methods=["POST"], generation=True),
            self.route("/v1/tasks/{task_id}", self._poll),
            self.route("/v1/models", self._list_models),
            self.route("/files/{name}", self._file, auth=False),
        ]

    def error(self, status: int, message: str | None = None, **fields: Any) -> Response:
        body = {
            "message": message or DEFAULT_MESSAGES.get(status, "Error"),
            "type": fields.get("type", ERROR_TYPES.get(status, "invalid_request_error")),
            "param": fields.get("param"),
            "code": fields.get("code", ERROR_CODES.get(status)),
        }
        return JSONResponse({"error": body}, status_code=status)

    def authorized(self, request: Request) -> bool:
        return bearer_key(request) == self.api_key

    def auth_error(self, request: Request) -> Response:
        key = bearer_key(request)
        if key is None:
            message = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            return self.error(401, message, code=None)
        return self.error(401, f"Incorrect API key provided: {mask_key(key)}.", code="invalid_api_key")

    def _reset_vendor_state(self) -> None:
        with self._lock:
            self._task_failures.clear()

    # -- endpoints ------------------------------------------------------------------------------------

    async def _generations(self, call: Call) -> Response:
        if call.record.json is None:
            raise Rejected(400, "We could not parse the JSON body of your request.", code=None)
        return self._create(call.json_object(), call.fault)

    async def _edits(self, call: Call) -> Response:
        form, files = call.record.form, call.record.files
        if form is None or files is None:
            raise Rejected(
                400, "Invalid content type. Image edits only accept multipart/form-data.", code=None
            )
        images = files.get("image", []) + files.get("image[]", [])
        if not images:
            raise Rejected(
                400, "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
            )
        params = {name: values[-1] for name, values in form.items()}
        return self._create(params, call.fault)

    def _create(self, params: Mapping[str, Any], fault: Fault | None) -> Response:
        model = params.get("model")
        if self.models is not None and model not in self.models:
            raise Rejected(
                404,
                f"The model '{model}' does not exist or you do not have access to it.",
                code="model_not_found",
            )
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise Rejected(
                400,
                "Missing required parameter: 'prompt'.",
                param="prompt",
                code="missing_required_parameter",
            )
        count = self._count(params.get("n", 1))
        width, height = self._size(params.get("size"))
        response_format = params.get("response_format") or self.default_response_format
        if response_format not in RESPONSE_FORMATS:
            raise Rejected(
                400,
                f"Invalid value: '{response_format}'. Supported values are: 'url' and 'b64_json'.",
                param="response_format",
                code="invalid_value",
            )
        output_format = params.get("output_format") or "png"
        if output_format not in FORMATS:
            raise Rejected(
                400,
                f"Invalid value: '{output_format}'. Supported values are: 'png', 'jpeg', and 'webp'.",
                param="output_format",
                code="invalid_value",
            )
        body = self._images_body(prompt, count, width, height, response_format, output_format, fault)
        for echoed in ("quality", "background"):
            if params.get(echoed):
                body[echoed] = params[echoed]
        if _truthy(params.get("async")):
            return JSONResponse(self._start_task(model if isinstance(model, str) else None, body))
        return JSONResponse(body)

    @staticmethod
    def _count(value: Any) -> int:
        try:
            count = int(value)
        except (TypeError, ValueError):
            count = 0
        if not 1 <= count <= MAX_IMAGES:
            raise Rejected(
                400, f"Invalid 'n': must be between 1 and {MAX_IMAGES}.", param="n", code="invalid_value"
            )
        return count

    def _size(self, size: Any) -> tuple[int, int]:
        if size is None:
            return DEFAULT_SIZE
        allowed = sorted(self.sizes) if self.sizes is not None else DEFAULT_SIZES
        try:
            if not isinstance(size, str) or (
                self.sizes is not None and size != "auto" and size not in self.sizes
            ):
                raise ValueError(size)
            return fit(1024, 1024) if size == "auto" else fit(*parse_wxh(size))
        except ValueError:
            supported = ", ".join(allowed)
            raise Rejected(
                400,
                f"Invalid size '{size}'. Supported sizes are {supported}, and auto.",
                param="size",
                code="invalid_size",
            ) from None

    def _images_body(
        self,
        prompt: str,
        count: int,
        width: int,
        height: int,
        response_format: str,
        output_format: str,
        fault: Fault | None,
    ) -> dict[str, Any]:
        data: list[dict[str, Any]] = []
        for _ in range(count):
            item = self._image_item(width, height, response_format, output_format, fault)
            if item is not None:
                data.append({**item, "revised_prompt": prompt})
        input_tokens = max(1, len(prompt.split()))
        output_tokens = OUTPUT_TOKENS_PER_IMAGE * len(data)
        return {
            "created": int(time.time()),
            "data": data,
            "size": f"{width}x{height}",
            "output_format": output_format,
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"text_tokens": input_tokens, "image_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"text_tokens": 0, "image_tokens": output_tokens},
                "total_tokens": input_tokens + output_tokens,
            },
        }

    def _image_item(
        self, width: int, height: int, response_format: str, output_format: str, fault: Fault | None
    ) -> dict[str, str] | None:
        if response_format == "b64_json":
            encoded = image_b64(fault, width, height, output_format)
            return None if encoded is None else {"b64_json": encoded}
        content = image_bytes(fault, width, height, output_format)
        if content is None:
            return None
        name = f"{uuid.uuid4().hex}.{output_format}"
        self.files[name] = Blob(content, FORMATS[output_format][1])
        return {"url": f"{self.url}/files/{name}"}

    def _start_task(self, model: str | None, result: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            failure = next_failure(self._task_failures)
        job = Job(f"task_{next(self._ids)}", model, self.async_duration, result, failure)
        self.tasks[job.id] = job
        return {**self._task_head(job), "status": "queued", "progress": 0}

    @staticmethod
    def _task_head(job: Job) -> dict[str, Any]:
        return {"id": job.id, "object": "generation.task", "created_at": int(job.created_at)}

    async def _poll(self, call: Call) -> Response:
        task_id = call.request.path_params["task_id"]
        job = self.tasks.get(task_id)
        if job is None:
            raise Rejected(404, f"No task found with id '{task_id}'.", code="not_found")
        head = self._task_head(job)
        if not job.finished:
            # Queued for the first fifth of its time, then processing: both states occur in a short test.
            progress = job.progress()
            return JSONResponse(
                {**head, "status": "queued" if progress < 20 else "processing", "progress": progress}
            )
        if job.failure is not None:
            code, message = job.failure
            return JSONResponse(
                {**head, "status": "failed", "progress": 100, "error": {"code": code, "message": message}}
            )
        return JSONResponse({**head, "status": "completed", "progress": 100, **job.result})

    async def _list_models(self, call: Call) -> Response:
        return JSONResponse(model_list(sorted(self.models) if self.models is not None else DEFAULT_MODELS))

    async def _file(self, call: Call) -> Response:
        blob = self.files.get(call.request.path_params["name"])
        if blob is None:
            raise Rejected(404, "File not found.")
        return Response(blob.content, media_type=blob.media_type)
