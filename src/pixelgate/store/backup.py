"""A consistent copy of a SQLite data dir, made while servers keep using it (``pixelgate backup``).

The database is copied with SQLite's online backup API, which reads one snapshot however the servers write
meanwhile (a plain file copy of a database in WAL mode can catch it half-written). The images are copied
after it: an image is written before the task that names it is saved, so every image the snapshot knows
of is already there. Images are hard-linked where the backup is on the same file system (they are never
changed once written), else copied.

The copy is a data dir like any other: ``pixelgate serve --data-dir BACKUP`` serves it, and the URLs it
hands out are signed with the same secret (it lives in the database).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

DATABASE = "pixelgate.db"


@dataclass(frozen=True)
class BackupReport:
    tasks: int
    images: int
    bytes: int


def backup_data_dir(source: Path, target: Path, *, with_images: bool = True) -> BackupReport:
    """``with_images`` False: the images live in a bucket (``--blob-store s3://…``), and only the database is
    copied; the bucket is backed up by its own means (versioning, replication, ``aws s3 sync``)."""
    database = source / DATABASE
    if not database.is_file():
        raise FileNotFoundError(f"{source} holds no {DATABASE}: give the --data-dir a server runs with")
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty: back up into a new folder")
    target.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(database) as live, sqlite3.connect(target / DATABASE) as copy:
        live.backup(copy)
        tasks = copy.execute("SELECT count(*) FROM tasks").fetchone()[0]
    images, size = _copy_images(source / "blobs", target / "blobs") if with_images else (0, 0)
    return BackupReport(tasks=tasks, images=images, bytes=size + (target / DATABASE).stat().st_size)


def _copy_images(source: Path, target: Path) -> tuple[int, int]:
    count = size = 0
    if not source.is_dir():
        return count, size
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        for image in folder.iterdir():
            if image.name.startswith("."):  # an image still being written (see BlobStore._put)
                continue
            (target / folder.name).mkdir(parents=True, exist_ok=True)
            try:
                os.link(image, target / folder.name / image.name)
            except FileNotFoundError:
                continue  # deleted meanwhile (its task expired or was deleted after the snapshot)
            except OSError:
                shutil.copy2(image, target / folder.name / image.name)
            count += 1
            size += image.stat().st_size
    return count, size
