"""The admin API: API keys, made and managed with the admin key (``PIXELGATE_ADMIN_KEY``).

POST   /admin/keys                 {name, owner?, models?, expires_in_days? | expires_at?}
                                   -> the key, with its secret (shown this once)
GET    /admin/keys[?owner=…]       -> every key (never a secret)
GET    /admin/keys/{id}
PATCH  /admin/keys/{id}            {name?, models?, expires_in_days? | expires_at?, limits?}: fields left out
                                   stay; ``models: null`` allows every model, ``expires_at: null`` never
                                   expires, a limit set to null is removed (unlimited)
POST   /admin/keys/{id}/disable    -> refused from then on (kept, for the record)
POST   /admin/keys/{id}/enable     -> accepted again
DELETE /admin/keys/{id}
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.requests import Request

from pixelgate.api.auth import admin_only, authenticate
from pixelgate.api.deps import CatalogDep, IdempotencyDep, KeysDep
from pixelgate.api.errors import openai_dialect
from pixelgate.api.parsing import parse_model, read_json_object, stored_text
from pixelgate.auth.keys import new_key_id
from pixelgate.auth.ledger import KeyLimits
from pixelgate.catalog import Catalog
from pixelgate.core.errors import Conflict, InvalidRequest, one_of
from pixelgate.store.schema import api_keys, column_chars
from pixelgate.tasks.idempotency import Idempotent, check_key, fingerprint

router = APIRouter(
    prefix="/admin", dependencies=[Depends(openai_dialect), Depends(authenticate), Depends(admin_only)]
)


class Limits(BaseModel):
    """A key's limits; each left out is unlimited (when a key is made) or unchanged (when it is changed)."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(None, ge=1)
    concurrent_tasks: int | None = Field(None, ge=1)
    images_per_day: int | None = Field(None, ge=1)
    credit_budget_usd: float | None = Field(None, ge=0, allow_inf_nan=False)


def _distinct_models(models: list[str] | None) -> list[str] | None:
    if models is not None and not models:
        raise ValueError("models is empty: leave it out (or null) for every model, or name at least one")
    return list(dict.fromkeys(models)) if models is not None else None


ModelList = Annotated[list[str] | None, AfterValidator(_distinct_models)]  # None: every model

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"  # no control characters (PostgreSQL refuses NUL in text)
NAME_CHARS, OWNER_CHARS = column_chars(api_keys.c.name), column_chars(api_keys.c.owner)
MAX_DAYS = 100 * 366  # a key that outlives its gateway is "never expires": leave the field out


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=NAME_CHARS, pattern=PRINTABLE)
    owner: str | None = Field(None, min_length=1, max_length=OWNER_CHARS, pattern=r"^[\w.@-]+$")
    models: ModelList = None
    expires_in_days: float | None = Field(None, gt=0, le=MAX_DAYS)
    expires_at: int | None = Field(None, gt=0, le=int(time.time()) + int(MAX_DAYS * 86400))
    limits: Limits = Field(default_factory=lambda: Limits())


class KeyChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=NAME_CHARS, pattern=PRINTABLE)
    models: ModelList = None
    expires_in_days: float | None = Field(None, gt=0, le=MAX_DAYS)
    expires_at: int | None = Field(None, gt=0, le=int(time.time()) + int(MAX_DAYS * 86400))
    limits: Limits = Field(default_factory=lambda: Limits())


def _check_models(models: list[str] | None, catalog: Catalog) -> None:
    for model in models or []:
        if model not in catalog:
            raise InvalidRequest(
                f"models names {model!r}, which is not in the catalog: use {one_of(catalog.ids)}",
                param="models",
                code="model_not_found",
            )


def _expiry(expires_in_days: float | None, expires_at: int | None, now: float) -> float | None:
    if expires_in_days is not None and expires_at is not None:
        raise InvalidRequest(
            "give expires_in_days or expires_at, not both", param="expires_at", code="conflicting_expiry"
        )
    expiry = expires_at or (now + expires_in_days * 86400 if expires_in_days else None)
    if expiry is not None and expiry <= now:
        raise InvalidRequest(
            f"expires_at {int(expiry)} is in the past (now is {int(now)})", param="expires_at"
        )
    return expiry


@router.post("/keys")
async def create_key(
    request: Request, keys: KeysDep, catalog: CatalogDep, idempotency: IdempotencyDep
) -> JSONResponse:
    data = await read_json_object(request)
    body = parse_model(NewKey, data)
    _check_models(body.models, catalog)
    now = time.time()
    key_id = new_key_id()

    async def make(claim: Idempotent | None = None) -> JSONResponse:
        async with keys.db.transaction() as conn:
            if claim is not None:
                await conn.run_sync(idempotency.keep, claim, key_id)
            record, secret = await keys.create(
                name=body.name,
                owner=body.owner or body.name,
                models=body.models,
                expires_at=_expiry(body.expires_in_days, body.expires_at, now),
                limits=KeyLimits(**body.limits.model_dump()),
                key_id=key_id,
                conn=conn,
            )
        return JSONResponse({**record.describe(now), "key": secret}, status_code=201)

    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is None:
        return await make()
    claim = Idempotent(
        _KEYS_SCOPE, check_key(idempotency_key), fingerprint(json.dumps(data, sort_keys=True)), kind="API key"
    )
    return await idempotency.once(claim, partial(make, claim), partial(_made_before, claim))


_KEYS_SCOPE = "admin:keys"  # Idempotency-Keys of key creation, apart from any owner's


async def _made_before(claim: Idempotent, key_id: str) -> JSONResponse:
    """A key is made once per Idempotency-Key. The first answer holds the key's secret, which is not
    kept: a repeat cannot be answered the same, so it is a 409 that names the key made."""
    raise Conflict(
        f"Idempotency-Key {claim.key!r} already made key {key_id}; its secret was shown once, in the first "
        f"answer, and is not kept. If that answer was lost, delete the key (DELETE /admin/keys/{key_id}) "
        "and create it again with a new Idempotency-Key",
        param="Idempotency-Key",
        code="key_already_created",
    )


@router.patch("/keys/{key_id}")
async def change_key(key_id: str, request: Request, keys: KeysDep, catalog: CatalogDep) -> dict[str, Any]:
    data = await read_json_object(request)
    if "owner" in data:
        raise InvalidRequest(
            "a key's owner cannot be changed: the owner's tasks and usage would change hands with it; make "
            "a new key for the other owner and delete this one",
            param="owner",
            code="owner_immutable",
        )
    body = parse_model(KeyChanges, data)
    given = body.model_fields_set
    if not given:
        raise InvalidRequest(
            "the body changes nothing: give name, models, expires_in_days, expires_at or limits",
            code="nothing_to_change",
        )
    if "expires_in_days" in given and body.expires_in_days is None:
        raise InvalidRequest(
            "expires_in_days null is not valid: to remove a key's expiry, send expires_at: null",
            param="expires_in_days",
            code="invalid_field",
        )
    if "name" in given and body.name is None:
        raise InvalidRequest("name null is not valid: a key keeps a name", param="name", code="invalid_field")
    _check_models(body.models, catalog)
    changes: dict[str, Any] = {}
    if "name" in given:
        changes["name"] = body.name
    if "models" in given:
        changes["models"] = body.models
    if given & {"expires_in_days", "expires_at"}:
        changes["expires_at"] = _expiry(body.expires_in_days, body.expires_at, time.time())
    limits = {name: getattr(body.limits, name) for name in body.limits.model_fields_set}
    return (await keys.update(key_id, changes, limits)).describe(time.time())


@router.get("/keys")
async def list_keys(keys: KeysDep, owner: str | None = None) -> dict[str, Any]:
    now = time.time()
    if owner is not None:
        stored_text(owner, "owner", api_keys.c.owner)
    return {"object": "list", "data": [k.describe(now) for k in await keys.list(owner=owner)]}


@router.get("/keys/{key_id}")
async def get_key(key_id: str, keys: KeysDep) -> dict[str, Any]:
    return (await keys.get(key_id)).describe(time.time())


@router.post("/keys/{key_id}/disable")
async def disable_key(key_id: str, keys: KeysDep) -> dict[str, Any]:
    return (await keys.disable(key_id)).describe(time.time())


@router.post("/keys/{key_id}/enable")
async def enable_key(key_id: str, keys: KeysDep) -> dict[str, Any]:
    return (await keys.enable(key_id)).describe(time.time())


@router.delete("/keys/{key_id}")
async def delete_key(key_id: str, keys: KeysDep) -> dict[str, Any]:
    await keys.delete(key_id)
    return {"id": key_id, "object": "api_key", "deleted": True}
