"""Page parameters, read one way for every list: how many to return, and where the page starts.

Each dialect names them its own way (OpenAI: ``limit`` and ``after``; Gemini REST: ``pageSize`` and
``pageToken``; Interactions' webhooks: ``page_size`` and ``page_token``), so a :class:`PageSize` carries the
name, the default and the most a page may hold. Values arrive as query text: anything but a whole number in
range is a 400 that quotes what was sent and says what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelgate.api.parsing import shown
from pixelgate.core.errors import InvalidRequest


@dataclass(frozen=True)
class PageSize:
    param: str
    default: int
    most: int

    def read(self, value: str | None) -> int:
        """How many items a page holds: the default when left out (or empty), else 1 to ``most``."""
        if value is None or value == "":
            return self.default
        number = _whole(value)
        if number is None or not 1 <= number <= self.most:
            raise InvalidRequest(
                f"{self.param} {shown(value)} is not valid: use a page size from 1 to {self.most}",
                param=self.param,
                code="invalid_page",
            )
        return number


def offset_token(value: str | None, param: str, end: int) -> int:
    """Where a page of a fixed list starts, for lists whose page token is a position (0 to ``end``)."""
    if value is None or value == "":
        return 0
    number = _whole(value)
    if number is None or not 0 <= number <= end:
        raise InvalidRequest(
            f"{param} {shown(value)} is not valid: use the nextPageToken of the page before",
            param=param,
            code="invalid_page",
        )
    return number


def _whole(value: str) -> int | None:
    # isdigit alone admits "²" and other digits int() refuses; isascii keeps it to 0-9.
    return int(value) if value.isascii() and value.isdigit() else None
