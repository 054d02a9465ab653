"""The exit status of every command, one table for all of them (``--help`` and the README show it).

A server's refusal is mapped from its HTTP status, so a script can tell "fix the command" (2) from "no such
thing" (3), "wrong key" (4) and "try again later" (1, 5) without reading the message.
"""

from __future__ import annotations

OK = 0
FAILED = 1  # the operation failed: a task failed or was cancelled, a server error, a conflict, a limit
USAGE = 2  # bad usage: a flag or argument, or input the server refused (400, 413, 422)
NOT_FOUND = 3  # 404: no such task, key, channel, …
REFUSED = 4  # 401 or 403: the key is missing, not valid, or may not do this
NO_SERVER = 5  # nothing answers at --server, or what answers is not pixelgate
INTERRUPTED = 130  # Ctrl-C (what a shell reports for SIGINT)

EXIT_CODES_HELP = (
    "Exit status:\n\n"
    "0 success;\n"
    "1 the operation failed (a task failed or was cancelled, a server error, a conflict, a limit);\n"
    "2 bad usage (a flag or argument, or input the server refused);\n"
    "3 not found;\n"
    "4 refused (the key is missing, not valid or not allowed);\n"
    "5 no server at --server (or not a pixelgate one);\n"
    "130 interrupted."
)


def for_status(status: int) -> int:
    """The exit status for a server's refusal with HTTP ``status``."""
    if status in (401, 403):
        return REFUSED
    if status == 404:
        return NOT_FOUND
    if status in (400, 413, 422):
        return USAGE
    return FAILED
