"""JSON answers rendered by orjson: an answer carrying a 4K image as base64 is tens of megabytes of one
string, which the standard library's encoder scans character by character (about 40x slower)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
