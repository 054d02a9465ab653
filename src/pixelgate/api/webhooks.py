"""Webhooks: Gemini's ``/{v}/webhooks`` resource (what the google-genai SDK's ``client.webhooks`` calls), and
pixelgate's own view of the deliveries and of the per-request signing secret.

Gemini's resource, on ``v1beta`` and ``v1`` (errors in Google's shape)::

    GET    /{v}/webhooks?page_size=&page_token=   -> {"webhooks": [...], "next_page_token"?}
    POST   /{v}/webhooks                          {uri, subscribed_events, name?} -> the Webhook, with its
                                                  new_signing_secret (shown this once)
    GET    /{v}/webhooks/{id}
    PATCH  /{v}/webhooks/{id}?update_mask=        {name?, uri?, subscribed_events?, state?}
    DELETE /{v}/webhooks/{id}                     -> {}
    POST   /{v}/webhooks/{id}:ping                -> {} (a signed webhook.ping is queued to it)
    POST   /{v}/webhooks/{id}:rotateSigningSecret {revocation_behavior?} -> {"secret": …}

pixelgate's own (errors in OpenAI's shape)::

    GET /v1/webhooks/deliveries?subject_id=&limit=&after=   newest first
    GET /v1/webhooks/deliveries/{id}
    GET /v1/webhooks/secret                                  the secret that signs callback_url and
                                                             webhook_config.uris deliveries

A key sees its owner's webhooks and deliveries; the admin key (or a server without keys) sees all.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from pixelgate.api.auth import CallerDep, authenticate
from pixelgate.api.deps import SettingsDep, WebhooksDep
from pixelgate.api.errors import gemini_dialect, openai_dialect
from pixelgate.api.gemini_common import API_VERSIONS, WireBody, parse_wire
from pixelgate.api.interactions import WEBHOOK_EVENTS
from pixelgate.api.paging import PageSize
from pixelgate.api.parsing import read_json_object, stored_text
from pixelgate.api.responses import list_page
from pixelgate.core.errors import Forbidden, InvalidRequest, one_of
from pixelgate.store.schema import api_keys, column_chars, webhooks
from pixelgate.tasks.webhook_registry import REVOCATIONS
from pixelgate.tasks.webhook_targets import check_url
from pixelgate.tasks.webhooks import BATCH_EVENTS, ENABLED, TASK_EVENT_NAMES

# What a registered webhook may subscribe to: the events pixelgate sends, and the two of Gemini's list that an
# image gateway never sends (accepted, so that a client subscribing to Google's whole list still works).
SUBSCRIBABLE = (
    *sorted({*WEBHOOK_EVENTS.types.values(), *TASK_EVENT_NAMES.types.values()}),
    *BATCH_EVENTS,
    "interaction.requires_action",
    "video.generated",
)

WEBHOOKS_PAGE = PageSize("page_size", default=50, most=100)
DELIVERIES_PAGE = PageSize("limit", default=20, most=100)
SETTABLE_STATES = (ENABLED, "disabled")
UPDATABLE = ("name", "uri", "subscribed_events", "state")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")

own = APIRouter(dependencies=[Depends(openai_dialect), Depends(authenticate)])
gemini = APIRouter(dependencies=[Depends(gemini_dialect), Depends(authenticate)])


class WebhookInput(WireBody):
    uri: str | None = None
    subscribed_events: list[str] | None = None
    name: str | None = None
    state: str | None = None


class Rotation(WireBody):
    revocation_behavior: str | None = None


def _check_events(events: list[str] | None) -> list[str]:
    if not events:
        raise InvalidRequest(
            f"subscribed_events is {'empty' if events == [] else 'required'}: subscribe to at least one of "
            f"{one_of(SUBSCRIBABLE)}",
            param="subscribed_events",
            code="invalid_subscribed_events",
        )
    for i, event in enumerate(events):
        if event not in SUBSCRIBABLE:
            raise InvalidRequest(
                f"subscribed_events[{i}] {event[:80]!r} is not an event: use {one_of(SUBSCRIBABLE)}",
                param=f"subscribed_events[{i}]",
                code="invalid_subscribed_events",
            )
    return list(dict.fromkeys(events))


def _check_name(name: str | None) -> str | None:
    limit = column_chars(webhooks.c.name)
    if name is not None and (len(name) > limit or not _PRINTABLE.match(name)):
        raise InvalidRequest(
            f"name {name[:60]!r} is not valid: at most {limit} characters, none of them control characters",
            param="name",
            code="invalid_field",
        )
    return name


def _check_state(state: str | None) -> str:
    if state not in SETTABLE_STATES:
        raise InvalidRequest(
            f"state {state!r} is not valid: set {one_of(SETTABLE_STATES)}",
            param="state",
            code="invalid_state",
        )
    return state


async def _body(request: Request) -> dict[str, Any]:
    """A JSON object, or nothing (the SDK sends no body for a ping)."""
    return await read_json_object(request) if (await request.body()).strip() else {}


# Gemini's resource


async def list_webhooks(
    webhooks: WebhooksDep, caller: CallerDep, page_size: str | None = None, page_token: str | None = None
) -> dict[str, Any]:
    found, next_token = await webhooks.list_page(
        owner=caller.owner, page_size=WEBHOOKS_PAGE.read(page_size), page_token=page_token
    )
    now = time.time()
    answer: dict[str, Any] = {"webhooks": [webhook.describe(now) for webhook in found]}
    if next_token is not None:
        answer["next_page_token"] = next_token
    return answer


async def create_webhook(
    request: Request, webhooks: WebhooksDep, settings: SettingsDep, caller: CallerDep
) -> dict[str, Any]:
    body, _ = parse_wire(WebhookInput, await read_json_object(request), camel=False)
    if not body.uri:
        raise InvalidRequest(
            "uri is required: give the URL to send events to", param="uri", code="missing_field"
        )
    await check_url(body.uri, "uri", settings.fetch_policy)
    webhook, secret = await webhooks.create(
        owner=caller.owner,
        uri=body.uri,
        subscribed_events=_check_events(body.subscribed_events),
        name=_check_name(body.name),
    )
    return webhook.describe(time.time(), new_signing_secret=secret)


async def get_webhook(webhook_id: str, webhooks: WebhooksDep, caller: CallerDep) -> dict[str, Any]:
    return (await webhooks.get(webhook_id, owner=caller.owner)).describe(time.time())


async def update_webhook(
    webhook_id: str,
    request: Request,
    webhooks: WebhooksDep,
    settings: SettingsDep,
    caller: CallerDep,
    update_mask: str | None = None,
) -> dict[str, Any]:
    data = await read_json_object(request)
    body, _ = parse_wire(WebhookInput, data, camel=False)
    if update_mask is not None:
        fields = [re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", f.strip()).lower() for f in update_mask.split(",")]
        unknown = [f for f in fields if f not in UPDATABLE]
        if unknown or not fields:
            raise InvalidRequest(
                f"update_mask {update_mask[:100]!r} names {unknown[0][:60] if unknown else 'nothing'!r}: "
                f"name fields among {one_of(UPDATABLE)}, comma-separated",
                param="update_mask",
                code="invalid_update_mask",
            )
    else:
        fields = [f for f in UPDATABLE if f in body.model_fields_set]
    if not fields:
        raise InvalidRequest(f"the body changes nothing: give {one_of(UPDATABLE)}", code="nothing_to_change")
    changes: dict[str, Any] = {}
    for field in fields:
        if field == "uri":
            if not body.uri:
                raise InvalidRequest("uri cannot be empty: give the URL to send events to", param="uri")
            await check_url(body.uri, "uri", settings.fetch_policy)
            changes["uri"] = body.uri
        elif field == "subscribed_events":
            changes["subscribed_events"] = _check_events(body.subscribed_events)
        elif field == "name":
            changes["name"] = _check_name(body.name)
        else:
            changes["state"] = _check_state(body.state)
    webhook = await webhooks.update(webhook_id, owner=caller.owner, changes=changes)
    return webhook.describe(time.time())


async def delete_webhook(webhook_id: str, webhooks: WebhooksDep, caller: CallerDep) -> dict[str, Any]:
    await webhooks.delete(webhook_id, owner=caller.owner)
    return {}


async def ping_webhook(
    webhook_id: str, request: Request, webhooks: WebhooksDep, caller: CallerDep
) -> dict[str, Any]:
    await _body(request)  # empty, or an empty object: nothing in it is used
    await webhooks.ping(webhook_id, owner=caller.owner)
    return {}


async def rotate_signing_secret(
    webhook_id: str, request: Request, webhooks: WebhooksDep, caller: CallerDep
) -> dict[str, Any]:
    body, _ = parse_wire(Rotation, await _body(request), camel=False)
    behavior = body.revocation_behavior or REVOCATIONS[0]
    if behavior not in REVOCATIONS:
        raise InvalidRequest(
            f"revocation_behavior {behavior[:80]!r} is not valid: use {one_of(REVOCATIONS)}",
            param="revocation_behavior",
            code="invalid_revocation_behavior",
        )
    secret = await webhooks.rotate(
        webhook_id, owner=caller.owner, revoke_now=behavior == "revoke_previous_secrets_immediately"
    )
    return {"secret": secret}


for _version in API_VERSIONS:
    _base = f"/{_version}/webhooks"
    gemini.add_api_route(_base, list_webhooks, methods=["GET"])
    gemini.add_api_route(_base, create_webhook, methods=["POST"])
    gemini.add_api_route(f"{_base}/{{webhook_id}}:ping", ping_webhook, methods=["POST"])
    gemini.add_api_route(
        f"{_base}/{{webhook_id}}:rotateSigningSecret", rotate_signing_secret, methods=["POST"]
    )
    gemini.add_api_route(f"{_base}/{{webhook_id}}", get_webhook, methods=["GET"])
    gemini.add_api_route(f"{_base}/{{webhook_id}}", update_webhook, methods=["PATCH"])
    gemini.add_api_route(f"{_base}/{{webhook_id}}", delete_webhook, methods=["DELETE"])


# pixelgate's own: the deliveries and the per-request secret


@own.get("/v1/webhooks/deliveries")
async def list_deliveries(
    webhooks: WebhooksDep,
    caller: CallerDep,
    subject_id: str | None = None,
    limit: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    data, has_more = await webhooks.deliveries(
        owner=caller.owner, subject_id=subject_id, limit=DELIVERIES_PAGE.read(limit), after=after
    )
    return list_page(data, has_more)


@own.get("/v1/webhooks/deliveries/{delivery_id}")
async def get_delivery(delivery_id: str, webhooks: WebhooksDep, caller: CallerDep) -> dict[str, Any]:
    return await webhooks.delivery(delivery_id, owner=caller.owner)


@own.get("/v1/webhooks/secret")
async def get_secret(webhooks: WebhooksDep, caller: CallerDep, owner: str | None = None) -> dict[str, Any]:
    if owner is not None and not caller.is_admin:
        raise Forbidden(
            f"owner {owner[:64]!r}: only the admin key reads another owner's secret; leave owner out for "
            "your own",
            param="owner",
            code="admin_key_required",
        )
    whose = stored_text(owner, "owner", api_keys.c.owner) if owner is not None else caller.owner
    return {"object": "webhook.secret", "owner": whose, "secret": await webhooks.owner_secret(whose)}


router = APIRouter()
router.include_router(own)  # first: /v1/webhooks/deliveries is not a webhook named "deliveries"
router.include_router(gemini)
