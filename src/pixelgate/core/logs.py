"""Structured logs: one JSON object per line, so that a log pipeline can search by request, task or
model without parsing sentences.

``event(logger, "task.completed", task_id=…, …)`` writes ``{"time": …, "level": "info", "logger": …,
"event": "task.completed", "task_id": …}``. Ordinary log calls (``log.warning("…")``) come out the same
way, with their text as ``message``. ``--log-format text`` keeps the lines readable for a person at a
terminal instead.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import orjson

# The id of the request being served, where there is one: the task it makes carries it.
request_id: ContextVar[str | None] = ContextVar("pixelgate_request_id", default=None)

_RESERVED = frozenset(vars(logging.makeLogRecord({})))
# Names a field may not have (logging refuses them in ``extra``): such a field gets a "_" appended.
_CLASHES = _RESERVED | {"message", "asctime"}


def event(logger: logging.Logger, name: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log one thing that happened, with its facts as fields rather than words."""
    if logger.isEnabledFor(level):
        safe = {f"{key}_" if key in _CLASHES else key: value for key, value in fields.items()}
        logger.log(level, name, extra={"event": name, **safe})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = {k: v for k, v in vars(record).items() if k not in _RESERVED}
        if "event" not in fields:
            line["message"] = record.getMessage()
        line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _RESERVED and k != "event"}
        text = f"{self.formatTime(record)} {record.levelname.lower():7} {record.getMessage()}"
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(level: str = "info", fmt: str = "json") -> None:
    """pixelgate's loggers (and uvicorn's) write to stderr in ``fmt``, from ``level`` up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ("pixelgate", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
