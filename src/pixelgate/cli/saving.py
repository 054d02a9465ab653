"""Where ``pixelgate generate`` saves its images, decided and checked before anything is sent: a request
that is paid for must not end in an image with nowhere to go.

``-o`` is a folder that exists (images named ``NAME.png``, or ``NAME-0.png``, ``NAME-1.png`` … for several;
NAME is ``--name``, else the task's id), or one file (``fox.png``, ``fox.jpg``, ``fox.webp``: its extension
picks the format) for one image, in a folder that exists. The folder must be writable, and a file already
there is kept unless ``--overwrite``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pixelgate.cli.output import bad_usage

FORMATS = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "webp": ".webp"}
SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
MIME_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


@dataclass(frozen=True)
class Destination:
    folder: Path
    file: Path | None  # -o named one file
    name: str | None  # --name
    output_format: str | None  # what to ask the server for (None: its default, png)
    overwrite: bool

    def paths(self, task_id: str, mime_types: list[str]) -> list[Path]:
        """Where each image goes, given the task's id and the images' types."""
        if self.file is not None:
            return [self.file]
        base = self.name or task_id
        suffixes = [MIME_SUFFIXES.get(mime, self._suffix()) for mime in mime_types]
        if len(suffixes) == 1:
            return [self.folder / f"{base}{suffixes[0]}"]
        return [self.folder / f"{base}-{i}{suffix}" for i, suffix in enumerate(suffixes)]

    def _suffix(self) -> str:
        return FORMATS[self.output_format or "png"]


def destination(output: Path, *, n: int, name: str | None, fmt: str | None, overwrite: bool) -> Destination:
    """The checked destination, or a usage error that says what is wrong with ``-o`` and what would do."""
    if fmt is not None and fmt.lower() not in FORMATS:
        bad_usage(f"--format {fmt!r} is not an image format: use png, jpeg or webp")
    fmt = "jpeg" if fmt and fmt.lower() in ("jpg", "jpeg") else (fmt.lower() if fmt else None)
    if name is not None and (not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0")):
        bad_usage(f"--name {name!r} is not a file name: give a name without '/' (the folder goes in -o)")
    if output.is_dir():
        _check_writable(output, f"-o {output}")
        chosen = Destination(output, None, name, fmt, overwrite)
        if name is not None:
            _check_free(chosen.paths("", [""] * n), overwrite)
        return chosen
    suffix = output.suffix.lower()
    if not output.exists() and not suffix:
        bad_usage(
            f"-o {output} does not exist: make the folder first (mkdir -p {output}), or give a file name "
            "ending in .png, .jpg or .webp for one image"
        )
    if suffix not in SUFFIXES:
        bad_usage(
            f"-o {output}: pixelgate saves .png, .jpg (or .jpeg) and .webp files; give a file name with one "
            "of these, or a folder that exists"
        )
    if not output.parent.is_dir():
        bad_usage(f"-o {output}: its folder {output.parent} does not exist: make it first, or give another")
    if n > 1:
        bad_usage(
            f"-o {output} names one file, but -n {n} makes {n} images: give a folder, and --name for their "
            f"names ({output.stem}-0{output.suffix}, {output.stem}-1{output.suffix}, …)"
        )
    if name is not None:
        bad_usage(f"give --name or a file name in -o ({output.name}), not both")
    if fmt is not None and fmt != SUFFIXES[suffix]:
        bad_usage(
            f"--format {fmt} and -o {output} disagree: give one of them (a file's extension picks its format)"
        )
    _check_writable(output.parent, f"-o {output}: its folder {output.parent}")
    _check_free([output], overwrite)
    return Destination(output.parent, output, None, SUFFIXES[suffix], overwrite)


def _check_writable(folder: Path, what: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        bad_usage(f"{what} is not writable: give a folder you may write in")


def _check_free(paths: list[Path], overwrite: bool) -> None:
    taken = [path for path in paths if path.exists()]
    if taken and not overwrite:
        shown = ", ".join(str(path) for path in taken)
        bad_usage(f"{shown} exists: give another name, or --overwrite to replace it")
    for path in taken:
        if path.is_dir():
            bad_usage(f"{path} is a folder, not a file: give another name")
