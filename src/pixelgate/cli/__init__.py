"""The command line: thin, it parses arguments and calls the same code the server uses, or a running
server's API. One module per command (or group of commands); what they share: ``output.py`` (stdout for
results, stderr for the rest; tables and ``--json``), ``client.py`` (talking to a server), ``exits.py``
(the exit status of every command), ``when.py`` (times given on the command line).

The commands that need the server's own modules (the catalog, the configuration, the database layer)
import them inside their functions: most commands only talk to a server, and loading those first made
every one of them take a second to start (a third of that now)."""

from __future__ import annotations

from typing import Annotated

import typer

import pixelgate
from pixelgate.cli import blobs, channels, keys, tasks
from pixelgate.cli.batch import backup, batch
from pixelgate.cli.exits import EXIT_CODES_HELP
from pixelgate.cli.generate import generate
from pixelgate.cli.models import models
from pixelgate.cli.serve import serve
from pixelgate.cli.usage import usage

app = typer.Typer(
    help="pixelgate: a self-hosted image-generation gateway.", no_args_is_help=True, epilog=EXIT_CODES_HELP
)


def _version(asked: bool) -> None:
    if asked:
        print(f"pixelgate {pixelgate.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit"),
    ] = False,
) -> None:
    """pixelgate: a self-hosted image-generation gateway."""


for command in (serve, models, generate, batch, usage, backup):
    app.command(epilog=EXIT_CODES_HELP)(command)
app.add_typer(channels.app, name="channels")
app.add_typer(keys.app, name="keys")
app.add_typer(tasks.app, name="tasks")
app.add_typer(blobs.app, name="blobs")
