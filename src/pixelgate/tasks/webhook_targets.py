"""Where webhooks may be sent: the URLs a request or a registered webhook names, checked when they are
given (a 400 that names the URL and why) and again at every delivery (an address can change meanwhile).

The checks are those of image URLs (``core/safe_urls.py``): http(s) only, and the host must resolve to
public addresses, unless the operator allows more with ``--fetch-allow``. A webhook is a request that
pixelgate makes on a stranger's behalf, exactly as a fetched image is.
"""

from __future__ import annotations

from typing import Any

import orjson

from pixelgate.core.errors import InvalidRequest
from pixelgate.core.safe_urls import AddressPolicy, UnsafeUrl, checked_destination
from pixelgate.core.task import Callback
from pixelgate.store.schema import column_chars, webhooks

MAX_URL_CHARS = column_chars(webhooks.c.uri)  # as the webhooks.uri and webhook_deliveries.url columns
MAX_CALLBACK_URLS = 10
MAX_USER_METADATA_BYTES = 16 * 1024


async def check_url(url: str, param: str, policy: AddressPolicy) -> None:
    """Raise a 400 ``callback_url_forbidden`` unless pixelgate may send webhooks to ``url``."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidRequest(
            f"{param} is {len(url):,} characters long: a webhook URL has at most {MAX_URL_CHARS:,}",
            param=param,
            code="invalid_callback_url",
        )
    try:
        await checked_destination(url, policy)
    except UnsafeUrl as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param, code="callback_url_forbidden") from None


async def check_callback(callback: Callback, policy: AddressPolicy) -> None:
    if len(callback.urls) > MAX_CALLBACK_URLS:
        raise InvalidRequest(
            f"{callback.field} has {len(callback.urls)} URLs: at most {MAX_CALLBACK_URLS} are accepted",
            param=callback.field,
            code="invalid_callback_url",
        )
    for i, url in enumerate(callback.urls):
        await check_url(url, callback.param(i), policy)
    check_user_metadata(callback.user_metadata, "webhook_config.user_metadata")


def check_user_metadata(value: dict[str, Any] | None, param: str) -> None:
    if value is None:
        return
    size = len(orjson.dumps(value))
    if size > MAX_USER_METADATA_BYTES:
        raise InvalidRequest(
            f"{param} is {size:,} bytes as JSON: at most {MAX_USER_METADATA_BYTES:,} are accepted",
            param=param,
            code="invalid_user_metadata",
        )
