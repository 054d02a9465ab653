"""The one exception tree of pixelgate. Every dialect renders these in its own wire shape.

    PixelgateError                      status  kind
    ├── InvalidRequest                   400    invalid_request_error
    │   ├── UnsupportedParameter         400    invalid_request_error (a value the model does not offer)
    │   └── UpstreamRejected             400    invalid_request_error (the upstream refused the request)
    ├── AuthenticationError              401    authentication_error
    ├── QuotaExceeded                    402    insufficient_quota (a key's credit budget is spent)
    ├── Forbidden                        403    permission_error (e.g. a forged or expired image URL)
    ├── NotFound                         404    not_found_error
    ├── MethodNotAllowed                 405    invalid_request_error
    ├── Conflict                         409    conflict_error (e.g. cancelling a finished task)
    ├── PayloadTooLarge                  413    request_too_large
    ├── RangeNotSatisfiable              416    invalid_request_error (a Range past a stored image's end)
    ├── RateLimited                      429    rate_limit_exceeded (carries retry_after seconds)
    ├── UpstreamError                    502    upstream_error (another channel may succeed)
    │   └── UpstreamTimeout              504    upstream_timeout
    ├── StillRunning                     504    still_running (a synchronous wait ran out; the task goes on)
    ├── NoUpstreamConfigured             503    model_not_configured
    ├── ServiceUnavailable               503    service_unavailable (a store pixelgate needs is down)
    │   ├── ChannelsUnavailable          503    service_unavailable (no channel can take it now)
    │   └── StorageUnavailable           503    service_unavailable (the blob store did not answer)
    └── TaskCancelled                    499    cancelled (a waiter whose task was cancelled)

A message always says what was wrong, the value received and what is allowed. ``param`` names the
field at fault (in the caller's spelling where the dialect knows it), ``code`` is a stable machine code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PixelgateError(Exception):
    status: ClassVar[int] = 500
    kind: ClassVar[str] = "server_error"
    default_code: ClassVar[str] = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.retry_after = retry_after

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe form, persisted with a failed task and turned back by :func:`error_from_record`."""
        record: dict[str, Any] = {
            "kind": self.kind,
            "status": self.status,
            "code": self.code,
            "message": self.message,
        }
        if self.param is not None:
            record["param"] = self.param
        if self.retry_after is not None:
            record["retry_after"] = self.retry_after
        return record


class InvalidRequest(PixelgateError):
    status = 400
    kind = "invalid_request_error"
    default_code = "invalid_request"


class UnsupportedParameter(InvalidRequest):
    default_code = "unsupported_value"


class UpstreamRejected(InvalidRequest):
    """The upstream refused the request itself (its 4xx, a safety block): sending it again, to this
    channel or another, would be refused again, so it is never retried."""

    default_code = "upstream_rejected"


class AuthenticationError(PixelgateError):
    status = 401
    kind = "authentication_error"
    default_code = "invalid_api_key"


class QuotaExceeded(PixelgateError):
    status = 402
    kind = "insufficient_quota"
    default_code = "insufficient_quota"


class Forbidden(PixelgateError):
    status = 403
    kind = "permission_error"
    default_code = "forbidden"


class NotFound(PixelgateError):
    status = 404
    kind = "not_found_error"
    default_code = "not_found"


class MethodNotAllowed(PixelgateError):
    status = 405
    kind = "invalid_request_error"
    default_code = "method_not_allowed"


class Conflict(PixelgateError):
    status = 409
    kind = "conflict_error"
    default_code = "conflict"


class PayloadTooLarge(PixelgateError):
    status = 413
    kind = "request_too_large"
    default_code = "request_too_large"


class RangeNotSatisfiable(PixelgateError):
    status = 416
    kind = "invalid_request_error"
    default_code = "range_not_satisfiable"


class RateLimited(PixelgateError):
    status = 429
    kind = "rate_limit_exceeded"
    default_code = "rate_limit_exceeded"


class TaskCancelled(PixelgateError):
    # 499 is nginx's "client closed request"; the closest thing HTTP has to "cancelled on request".
    status = 499
    kind = "cancelled"
    default_code = "task_cancelled"


class UpstreamError(PixelgateError):
    status = 502
    kind = "upstream_error"
    default_code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    kind = "upstream_timeout"
    default_code = "upstream_timeout"


class StillRunning(PixelgateError):
    # A 504 as any gateway that stops waiting answers; unlike a timeout the work is not lost: the message
    # names the task, which can still be read (or cancelled) by its id.
    status = 504
    kind = "still_running"
    default_code = "still_running"


class NoUpstreamConfigured(PixelgateError):
    status = 503
    kind = "model_not_configured"
    default_code = "model_not_configured"


class ServiceUnavailable(PixelgateError):
    """Something pixelgate itself depends on (Redis, the database) did not answer: retry later."""

    status = 503
    kind = "service_unavailable"
    default_code = "service_unavailable"


class ChannelsUnavailable(ServiceUnavailable):
    """Every channel serving the model is cooling down, disabled, or busy past the wait a request may
    spend on them: the caller is told at once when to come back (``retry_after``), and an asynchronous
    task goes back to the queue until then instead of failing."""

    default_code = "channels_unavailable"


class StorageUnavailable(ServiceUnavailable):
    """The blob store (an S3-compatible bucket) did not answer, or refused: a task that needed it fails
    unbilled, a read of an image is a 503; the server goes on, and so does the store once it is back."""

    default_code = "storage_unavailable"


_BY_KIND: dict[str, type[PixelgateError]] = {
    cls.kind: cls
    for cls in (
        InvalidRequest,
        AuthenticationError,
        QuotaExceeded,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        TaskCancelled,
        UpstreamError,
        UpstreamTimeout,
        StillRunning,
        NoUpstreamConfigured,
        ServiceUnavailable,
    )
}


def error_from_record(record: dict[str, Any]) -> PixelgateError:
    cls = _BY_KIND.get(str(record.get("kind")), PixelgateError)
    return cls(
        str(record.get("message", "the task failed")),
        param=record.get("param"),
        code=record.get("code"),
        retry_after=record.get("retry_after"),
    )


def one_of(values: list[str] | tuple[str, ...]) -> str:
    """``a, b or c``: how allowed values read in an error message."""
    quoted = [str(v) for v in values]
    if not quoted:
        return "nothing"
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]
