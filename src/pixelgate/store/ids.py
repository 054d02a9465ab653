"""What an id pixelgate made can look like (tasks, batches, webhooks, deliveries: letters, digits, ``_``
and ``-``, as long as the ``id`` columns allow), checked before an id taken from a path, a query or a body is
looked up: anything else (a NUL byte, a megabyte) is no id, and never reaches the database, which would
refuse it (PostgreSQL takes no NUL in text) or search for it in vain."""

from __future__ import annotations

import re

from pixelgate.store.schema import column_chars, tasks

_ID_CHARS = column_chars(tasks.c.id)  # every id column is as wide (String(64))
_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{_ID_CHARS}}}")


def has_id_shape(value: str) -> bool:
    return _ID.fullmatch(value) is not None
