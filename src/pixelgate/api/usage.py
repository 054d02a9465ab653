"""What has been billed, from the ledger (succeeded tasks only).

``GET /v1/usage``: sums. Query: ``group_by`` (comma-separated: key, owner, model, dialect, day; default
``model,day``), ``start`` and ``end`` (UTC days, ``YYYY-MM-DD``, both included). A key sees its owner's usage; the admin key (or a server
without auth) sees everyone's, or one owner's with ``owner=``.

Each row (and ``total``): ``tasks``, ``images``, the tokens by modality as Gemini's ``usageMetadata`` splits
them (``input_tokens`` with ``input_tokens_details`` ``text_tokens``/``image_tokens``; ``output_tokens``
with ``output_tokens_details`` ``text_tokens``/``image_tokens``/``thought_tokens``, thoughts being billed as
output), ``total_tokens``, and ``cost_usd``: what was billed, at the catalog's published prices (or the
operator's ``[prices]``), to the nano-dollar.

``GET /admin/usage/series`` (admin key): the same sums over time, for charts. Query: ``bucket`` (hour or
day, default day), ``since`` and ``until`` (Unix seconds or ISO 8601; default the last 30 days, or 24
hours), ``group_by`` (one of model, key, owner, dialect; default none: one series). See
``auth/usage_series.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from pixelgate.api.auth import CallerDep, admin_only, authenticate
from pixelgate.api.deps import LedgerDep
from pixelgate.api.errors import openai_dialect
from pixelgate.api.parsing import stored_text
from pixelgate.api.times import read_time
from pixelgate.auth.usage_series import usage_series
from pixelgate.store.schema import api_keys

router = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate)])
admin = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate), Depends(admin_only)])


class Sums(BaseModel):
    tasks: int
    images: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float


class SeriesPoint(BaseModel):
    start: int  # the bucket's first second (Unix time; a day's is 00:00 UTC)
    group: str | None  # the model, key id, owner or dialect; None without group_by
    tasks: int
    images: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float


class UsageSeries(BaseModel):
    """Buckets with usage only, by start then group; ``since`` (a bucket's start) to ``until`` is the span
    asked, so a chart knows which buckets to draw empty. ``total`` sums ``data``."""

    object: Literal["usage.series"]
    bucket: Literal["hour", "day"]
    bucket_seconds: int
    since: int
    until: int | float  # as given (now, by default)
    group_by: Literal["model", "key", "owner", "dialect"] | None
    data: list[SeriesPoint]
    total: Sums


@router.get("/v1/usage")
async def get_usage(
    ledger: LedgerDep,
    caller: CallerDep,
    group_by: str = "model,day",
    start: str | None = None,
    end: str | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    if owner is not None:
        stored_text(owner, "owner", api_keys.c.owner)
    groups = tuple(g.strip() for g in group_by.split(",") if g.strip())
    everyone = caller.is_admin and owner is None
    return await ledger.report(
        owner=owner if caller.is_admin else caller.owner,
        everyone=everyone,
        group_by=groups,
        start=start,
        end=end,
    )


@admin.get("/admin/usage/series", response_model=UsageSeries)
async def get_usage_series(
    ledger: LedgerDep,
    bucket: str = "day",
    since: str | None = None,
    until: str | None = None,
    group_by: str | None = None,
) -> dict[str, Any]:
    """Spend, images and tokens of succeeded tasks per hour or UTC day, optionally per model, key, owner
    or dialect."""
    return await usage_series(
        ledger.db,
        bucket=bucket,
        since=read_time(since, "since"),
        until=read_time(until, "until"),
        group_by=group_by or None,
    )


router.include_router(admin)
