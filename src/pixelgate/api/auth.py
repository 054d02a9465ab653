"""Who is calling: the key every dialect's clients send, checked before a route runs.

OpenAI's SDKs send ``Authorization: Bearer <key>``; Google's send ``x-goog-api-key`` (or ``?key=``); all
three are accepted on every route. A refused key is a 401 in the caller's dialect whose message never says
whether the key exists. Failed attempts are counted per client address (``auth/guard.py``, shared through
Redis when there is one): past 20 a minute, that address gets a 429 instead of another 401. A valid key
always passes: behind a proxy many callers share one address, and one guesser must not lock out the rest.
The address is the connection's, or the one a proxy named in ``--forwarded-allow-ips`` forwards.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pixelgate.api.deps import AuthEnabledDep, FailuresDep, KeysDep
from pixelgate.auth.keys import ANONYMOUS, Caller
from pixelgate.core.errors import AuthenticationError, Forbidden


def presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-goog-api-key") or request.query_params.get("key") or None


async def authenticate(
    request: Request, auth_enabled: AuthEnabledDep, keys: KeysDep, failures: FailuresDep
) -> Caller:
    """A route dependency (after the dialect's, so that a refusal is in the caller's shape)."""
    if not auth_enabled:
        caller = ANONYMOUS
    else:
        key = presented_key(request)
        if key is None:
            raise AuthenticationError(
                "no API key was sent: send it as Authorization: Bearer <key> (OpenAI clients), "
                "x-goog-api-key: <key> or ?key=<key> (Google clients)",
                code="missing_api_key",
            )
        found = await keys.verify(key)
        if found is None:
            address = request.client.host if request.client else "unknown"
            await failures.check(address)  # refused past the limit, and then not counted again
            await failures.failed(address)
            raise AuthenticationError(
                "the API key is not valid (unknown, wrong, expired, disabled or deleted): ask the "
                "gateway's admin for a valid key",
                code="invalid_api_key",
            )
        caller = found
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(authenticate)]


async def admin_only(caller: CallerDep) -> Caller:
    if not caller.is_admin:
        raise Forbidden(
            f"key {caller.key_id} ({caller.name!r}) is not the admin key: managing keys needs "
            "PIXELGATE_ADMIN_KEY",
            code="admin_key_required",
        )
    return caller


AdminDep = Annotated[Caller, Depends(admin_only)]
