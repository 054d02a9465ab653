"""UTC days, as keys' images per day are counted and ``pixelgate usage`` asks for them. Apart from the
ledger so that the command line reads them without loading the database layer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utc_day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def seconds_to_midnight(at: float) -> float:
    now = datetime.fromtimestamp(at, UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()
