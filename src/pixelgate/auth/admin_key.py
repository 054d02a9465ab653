"""The admin key at start: the operator's (``PIXELGATE_ADMIN_KEY``), or one made on the first start with
auth on and kept since (its hash in the database, the key itself in ``<data_dir>/admin-key``).

A made key is shown where only the operator sees it: written to a file only its owner may read, and printed
on stderr when that is a terminal. Never through ``logging``: a log line goes to a journal or a log
pipeline that others read, so the log says where the file is, never what is in it.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import TextIO

from pixelgate.auth.keys import KeyStore
from pixelgate.config import Settings

log = logging.getLogger("pixelgate")


async def load_admin_key(settings: Settings, keys: KeyStore, terminal: TextIO) -> None:
    """Give ``keys`` its admin key, and tell the operator where it is (the key itself only to a
    ``terminal`` that is a TTY)."""
    chosen = settings.admin_key.get_secret_value() if settings.admin_key is not None else None
    made = await keys.load_admin_key(chosen)
    path = settings.admin_key_file
    if chosen is not None:
        if path.exists():
            log.info(
                "pixelgate: the admin key is PIXELGATE_ADMIN_KEY; the key made earlier in %s does not work "
                "while it is set",
                path,
            )
        return
    if made is None:
        if path.exists():
            log.info("pixelgate: the admin key is the one made on the first start, in %s", path)
        else:
            log.warning(
                "pixelgate: the admin key was made on an earlier start and %s, which held it, is not here "
                "(only its hash is in the database): set PIXELGATE_ADMIN_KEY to choose one",
                path,
            )
        return
    try:
        write_key_file(path, made)
    except OSError as exc:
        log.error(
            "pixelgate: made the admin key but could not write it to %s (%s): set PIXELGATE_ADMIN_KEY to "
            "choose one instead",
            path,
            exc.strerror or exc,
        )
    else:
        log.info("pixelgate: made the admin key and wrote it to %s (readable by its owner only)", path)
    if terminal.isatty():
        print(
            f"pixelgate: made the admin key (kept in {path}; set PIXELGATE_ADMIN_KEY to choose your own):\n"
            f"  {made}",
            file=terminal,
            flush=True,
        )


def write_key_file(path: Path, key: str) -> None:
    """``key`` in ``path``, mode 0600 from the instant the file exists (made under a new name, then moved
    over ``path``: a file left by an earlier database is replaced, never opened for writing as it is)."""
    fresh = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(fresh, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(key + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(fresh, path)
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
