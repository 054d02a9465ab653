"""What the admin sees of a stored request: everything but what could open something.

A stored task holds no API key and no webhook signing secret of pixelgate's own, but a caller may have put
one of theirs in it: in ``metadata``, in a webhook URL (``https://user:pass@host/hook?token=…``), in a
video URI. So before a request is shown:

- a value under a name that says it is a secret (``api_key``, ``token``, ``password``, ``secret``,
  ``authorization``, ``signature``, …) becomes ``"[redacted]"``; the thought signatures of a conversation's
  turns go the same way (opaque, long, and nothing an admin reads);
- a URL keeps its scheme, host, port, path and query names; its user, password and query values become
  ``REDACTED``, and its fragment goes;
- text shaped like a key (pixelgate's ``pgk_…`` and ``pga_…``, OpenAI's ``sk-…``, Google's ``AIza…``)
  becomes ``[redacted]`` wherever it appears, the prompt included;
- a ``data:`` URI is replaced by its length (stored requests hold blob keys, but a caller's metadata might
  hold anything).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit, urlunsplit

REDACTED = "[redacted]"
_SECRET_NAME = re.compile(
    r"(^key$|apikey$|secret|password$|passwd$|passphrase$|token$|authorization$|credentials?$|signature$|"
    r"^auth$|cookie$|privatekey$)"
)
_KEY_TEXT = re.compile(r"\b(pg[ak]_[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,})")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def redact(value: Any) -> Any:
    """``value`` (JSON: dicts, lists, text, numbers) with its secrets taken out."""
    if isinstance(value, dict):
        return {key: _redact_item(str(key), item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str):
        return _redact_text(value)
    return value


def _redact_item(name: str, value: Any) -> Any:
    if value is not None and _SECRET_NAME.search(name.lower().replace("-", "").replace("_", "")):
        return REDACTED
    return redact(value)


def _redact_text(text: str) -> str:
    if text.startswith("data:"):
        return f"[data URI, {len(text):,} characters]"
    if _URL.match(text):
        return redact_url(text)
    return _KEY_TEXT.sub(REDACTED, text)


def redact_url(url: str) -> str:
    """``url`` without its user, password, query values and fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    user = "REDACTED@" if parts.username or parts.password else ""
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    query = "&".join(f"{quote(name, safe='')}=REDACTED" for name in names)
    cleaned = SplitResult(parts.scheme, f"{user}{host}{port}", _KEY_TEXT.sub(REDACTED, parts.path), query, "")
    return urlunsplit(cleaned)
