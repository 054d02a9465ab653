"""A data dir made by an older pixelgate opens with this one: the schema is migrated up to date (and ends
exactly as ``schema.py`` declares it), and its tasks, images, keys and usage are all still there; a task
it left queued runs now.

``tests/data/datadir-*`` were made by the released code of each schema (``made.json`` says which commit and
what was made): pixelgate serve with the emulator, keys on, a completed task, a refused request and a task
left queued by a server without workers. Their results were given a TTL of 100 years, so that the images
are still served whenever this test runs.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image

from conftest import MakeServer
from pixelgate.store.schema import metadata

DATA = Path(__file__).parent / "data"
DATADIRS = sorted(DATA.glob("datadir-*"))


@pytest.mark.parametrize("made_by", DATADIRS, ids=[d.name for d in DATADIRS])
def test_an_older_data_dir_keeps_everything(made_by: Path, make_server: MakeServer, tmp_path: Path) -> None:
    facts: dict[str, Any] = json.loads((made_by / "made.json").read_text())
    data_dir = tmp_path / "data"
    shutil.copytree(made_by, data_dir, ignore=shutil.ignore_patterns("made.json"))
    server = make_server(
        "sqlite", "--emulate", "--auth", data_dir=data_dir, env={"PIXELGATE_ADMIN_KEY": facts["admin_key"]}
    )
    key = {"Authorization": f"Bearer {facts['key']}"}
    admin = {"Authorization": f"Bearer {facts['admin_key']}"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # The completed task, its image (signed with the old data dir's own secret) and its owner.
        done = client.get(f"/v1/tasks/{facts['completed_task']}", headers=key)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "completed"
        image = client.get(done.json()["data"][0]["url"])
        assert image.status_code == 200
        assert Image.open(io.BytesIO(image.content)).size == (512, 512)

        # The key, with its limits, works as before; the admin key too.
        described = client.get(f"/admin/keys/{facts['key_id']}", headers=admin)
        assert described.status_code == 200, described.text
        assert described.json()["limits"]["images_per_day"] == 100

        # The task the old server accepted and never ran is run now, and billed once.
        deadline = time.monotonic() + 60
        while (queued := client.get(f"/v1/tasks/{facts['queued_task']}", headers=key).json())["status"] != (
            "completed"
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert queued["status"] == "completed", queued
        usage = client.get("/v1/usage", headers=key, params={"group_by": "model"}).json()
        assert sum(row["images"] for row in usage["data"]) == 2, usage

    # The migrated schema is exactly the one a new data dir gets.
    engine = sa.create_engine(f"sqlite:///{data_dir / 'pixelgate.db'}")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()
