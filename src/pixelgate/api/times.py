"""Times in query strings, read one way for every admin view: Unix seconds (``1732000000``, decimals
allowed) or ISO 8601 (``2026-11-21``, ``2026-11-21T10:00:00Z``, ``…+01:00``; without an offset, UTC).
Anything else is a 400 that quotes what was sent and says what is allowed."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pixelgate.api.parsing import shown
from pixelgate.core.errors import InvalidRequest

# Before this, a "time" is most likely milliseconds or a typo; after it, surely one.
_EARLIEST, _LATEST = 0.0, 253402300799.0  # 9999-12-31T23:59:59Z


def read_time(value: str | None, param: str) -> float | None:
    """Unix seconds, or None when left out (or empty)."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    seconds: float | None = None
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            seconds = None
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    if seconds is None or not math.isfinite(seconds) or not _EARLIEST <= seconds <= _LATEST:
        raise InvalidRequest(
            f"{param} {shown(value)} is not a time: use Unix seconds (e.g. 1732000000) or ISO 8601 "
            "(e.g. 2026-11-21 or 2026-11-21T10:00:00Z; UTC when no offset is given)",
            param=param,
            code="invalid_time",
        )
    return seconds
