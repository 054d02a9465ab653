"""Where the CLI writes. Results go to stdout: tables, ``--json`` documents, saved paths, a key's secret.
Everything else goes to stderr: progress, notes, warnings and errors, so that ``pixelgate … > file`` or
``| jq`` gets the result alone, and an error leaves stdout empty.

Tables: at a terminal, rich fits them to its width. When stdout is not a terminal (a pipe, a file) there is
no width to fit, so a table is printed as wide as its content: no column is squeezed or folded, however
long its cells (``pixelgate models | cat`` shows every column whole). Colour is only for terminals;
``NO_COLOR`` turns it off there too. Scripts should prefer ``--json``, whose shape is the server's.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pixelgate.cli import exits

console = Console()  # stdout
err_console = Console(stderr=True)
UNBOUNDED = 1_000_000  # the width of "as wide as the content"


def show(renderable: Any) -> None:
    """A table (or any rich renderable) on stdout: fitted to a terminal, else at its natural width. A
    table too wide for the terminal to keep each column's header whole is shown as one block per row
    (``column: value`` lines) instead of columns squeezed to nothing."""
    if not console.is_terminal:
        Console(width=UNBOUNDED, no_color=True, highlight=False).print(renderable)
    elif isinstance(renderable, Table) and _narrowest(renderable) > console.width:
        console.print(_as_blocks(renderable))
    else:
        console.print(renderable)


def _narrowest(shown: Table) -> int:
    """The width below which some column's header (or its minimum width) would be broken."""
    columns = shown.columns
    inner = sum(max(len(str(c.header)), c.min_width or 0) for c in columns)
    return inner + 3 * len(columns) + 1  # a space each side of a cell, and the borders


def _as_blocks(shown: Table) -> Table:
    blocks = Table(title=shown.title, show_header=False, box=None, padding=(0, 1))
    blocks.add_column("column", style="bold", no_wrap=True)
    blocks.add_column("value", overflow="fold")
    rows = list(zip(*(list(column.cells) for column in shown.columns), strict=True))
    for i, cells in enumerate(rows):
        if i:
            blocks.add_row("", "")
        for column, cell in zip(shown.columns, cells, strict=True):
            if cell != "":
                blocks.add_row(str(column.header), cell)
    return blocks


def show_json(data: Any) -> None:
    """A document on stdout, as the server sent it (or as the command built it)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """Something the user should know that is not the result (rich markup allowed), on stderr."""
    err_console.print(message, soft_wrap=True)


def fail(message: str, code: int = exits.FAILED) -> NoReturn:
    """An error: its message (plain text, on one line however long) on stderr, and exit status ``code``."""
    err_console.print(f"[red]{escape(message)}[/]", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def bad_usage(message: str) -> NoReturn:
    fail(message, exits.USAGE)


def refuse(exc: Exception) -> NoReturn:
    """A configuration the server cannot start with: its message, and exit status 2 (as for a bad flag)."""
    bad_usage(str(exc))


def table(title: str, *columns: str, right: tuple[str, ...] = ()) -> Table:
    """A table with these columns; those in ``right`` (numbers) are right-aligned."""
    made = Table(title=title)
    for column in columns:
        made.add_column(column, justify="right" if column in right else "left", overflow="fold")
    return made
