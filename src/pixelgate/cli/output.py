"""Where the CLI writes: the console, and a refusal's message with exit status 2."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def refuse(exc: Exception) -> NoReturn:
    """A configuration the server cannot start with: its message, and exit status 2 (as for a bad flag)."""
    console.print(f"[red]{escape(str(exc))}[/]")
    raise typer.Exit(2) from None
