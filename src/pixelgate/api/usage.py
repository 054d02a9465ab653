"""``GET /v1/usage``: what a key's owner has been billed, from the ledger (succeeded tasks only).

Query: ``group_by`` (comma-separated: key, owner, model, dialect, day; default ``model,day``), ``start`` and ``end``
(UTC days, ``YYYY-MM-DD``, both included). A key sees its owner's usage; the admin key (or a server
without auth) sees everyone's, or one owner's with ``owner=``.

Each row (and ``total``): ``tasks``, ``images``, the tokens by modality as Gemini's ``usageMetadata`` splits
them (``input_tokens`` with ``input_tokens_details`` ``text_tokens``/``image_tokens``; ``output_tokens``
with ``output_tokens_details`` ``text_tokens``/``image_tokens``/``thought_tokens``, thoughts being billed as
output), ``total_tokens``, and ``cost_usd``: what was billed, at the catalog's published prices (or the
operator's ``[prices]``), to the nano-dollar.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import LedgerDep
from pixelgate.api.errors import openai_dialect
from pixelgate.api.parsing import stored_text
from pixelgate.store.schema import api_keys

router = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate)])


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
