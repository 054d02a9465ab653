"""The admin API: API keys, made and managed with the admin key (``PIXELGATE_ADMIN_KEY``).

POST   /admin/keys                 {name, owner?, models?, expires_in_days? | expires_at?}
                                   -> the key, with its secret (shown this once)
GET    /admin/keys[?owner=…]       -> every key (never a secret)
GET    /admin/keys/{id}
POST   /admin/keys/{id}/disable    -> refused from then on (kept, for the record)
DELETE /admin/keys/{id}
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request

from pixelgate.api.auth import admin_only, authenticate
from pixelgate.api.errors import openai_dialect
from pixelgate.api.gateway import GatewayDep
from pixelgate.api.parsing import parse_model, read_json_object
from pixelgate.auth.ledger import KeyLimits
from pixelgate.core.errors import InvalidRequest, one_of

router = APIRouter(
    prefix="/admin", dependencies=[Depends(openai_dialect), Depends(authenticate), Depends(admin_only)]
)


class Limits(BaseModel):
    """A key's limits; each left out is unlimited."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(None, ge=1)
    concurrent_tasks: int | None = Field(None, ge=1)
    images_per_day: int | None = Field(None, ge=1)
    credit_budget_usd: float | None = Field(None, ge=0)


MAX_DAYS = 100 * 366  # a key that outlives its gateway is "never expires": leave the field out


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=128)
    owner: str | None = Field(None, min_length=1, max_length=128, pattern=r"^[\w.@-]+$")
    models: list[str] | None = None
    expires_in_days: float | None = Field(None, gt=0, le=MAX_DAYS)
    expires_at: int | None = Field(None, gt=0, le=int(time.time()) + int(MAX_DAYS * 86400))
    limits: Limits = Field(default_factory=lambda: Limits())

    @field_validator("models")
    @classmethod
    def _some_models(cls, models: list[str] | None) -> list[str] | None:
        if models is not None and not models:
            raise ValueError("models is empty: leave it out for every model, or name at least one")
        return list(dict.fromkeys(models)) if models is not None else None


@router.post("/keys")
async def create_key(request: Request, gw: GatewayDep) -> JSONResponse:
    body = parse_model(NewKey, await read_json_object(request))
    for model in body.models or []:
        if model not in gw.catalog:
            raise InvalidRequest(
                f"models names {model!r}, which is not in the catalog: use {one_of(gw.catalog.ids)}",
                param="models",
                code="model_not_found",
            )
    if body.expires_in_days is not None and body.expires_at is not None:
        raise InvalidRequest(
            "give expires_in_days or expires_at, not both", param="expires_at", code="conflicting_expiry"
        )
    now = time.time()
    expires_at = body.expires_at or (now + body.expires_in_days * 86400 if body.expires_in_days else None)
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest(
            f"expires_at {int(expires_at)} is in the past (now is {int(now)})", param="expires_at"
        )
    record, secret = await gw.keys.create(
        name=body.name,
        owner=body.owner or body.name,
        models=body.models,
        expires_at=expires_at,
        limits=KeyLimits(**body.limits.model_dump()),
    )
    return JSONResponse({**record.describe(now), "key": secret}, status_code=201)


@router.get("/keys")
async def list_keys(gw: GatewayDep, owner: str | None = None) -> dict[str, Any]:
    now = time.time()
    return {"object": "list", "data": [k.describe(now) for k in await gw.keys.list(owner=owner)]}


@router.get("/keys/{key_id}")
async def get_key(key_id: str, gw: GatewayDep) -> dict[str, Any]:
    return (await gw.keys.get(key_id)).describe(time.time())


@router.post("/keys/{key_id}/disable")
async def disable_key(key_id: str, gw: GatewayDep) -> dict[str, Any]:
    return (await gw.keys.disable(key_id)).describe(time.time())


@router.delete("/keys/{key_id}")
async def delete_key(key_id: str, gw: GatewayDep) -> dict[str, Any]:
    await gw.keys.delete(key_id)
    return {"id": key_id, "object": "api_key", "deleted": True}
