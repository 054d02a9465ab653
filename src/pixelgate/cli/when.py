"""Times on the command line: a span back from now (``90s``, ``30m``, ``12h``, ``7d``, ``2w``), a UTC date
or time (``2026-11-21``, ``2026-11-21T10:00``, with ``Z`` or an offset if you like) or Unix seconds; and
how a time is shown (UTC, to the second)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from pixelgate.cli.output import bad_usage

SPAN = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(value: str, flag: str, *, now: float | None = None) -> float:
    """Unix seconds for ``value``; a bad one is a usage error that names ``flag``."""
    text = value.strip()
    now = time.time() if now is None else now
    if span := SPAN.match(text.lower()):
        return now - float(span.group(1)) * SECONDS[span.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        bad_usage(
            f"{flag} {value!r} is not a time: use a span back from now (30m, 12h, 7d, 2w), a UTC date or "
            "time (2026-11-21, 2026-11-21T10:00) or Unix seconds"
        )
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def shown_time(seconds: float | None) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") if seconds is not None else "-"
