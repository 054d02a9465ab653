"""A data dir made by an older pixelgate opens with this one: the schema is migrated up to date (and ends
exactly as ``schema.py`` declares it), and its tasks, images, keys and usage are all still there; a task
it left queued runs now.

``tests/data/datadir-*`` were made by the released code of each schema, 0001 to 0005 (``made.json`` says which
commit and what was made): pixelgate serve with the emulator, a completed task, a refused request and a
task left queued by a server without workers; from 0003 on with keys on and a key, from 0004 on with the
key's limits and the usage ledger. Their results were given a TTL of 100 years, so that the images
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
    if facts["key"]:  # keys came with schema 0003
        server = make_server(
            "sqlite",
            "--emulate",
            "--auth",
            data_dir=data_dir,
            env={"PIXELGATE_ADMIN_KEY": facts["admin_key"]},
        )
        key = {"Authorization": f"Bearer {facts['key']}"}
    else:
        server, key = make_server("sqlite", "--emulate", data_dir=data_dir), {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # The completed task, and its image at a URL signed with the old data dir's own secret.
        done = client.get(f"/v1/tasks/{facts['completed_task']}", headers=key)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "completed"
        image = client.get(done.json()["data"][0]["url"])
        assert image.status_code == 200
        assert Image.open(io.BytesIO(image.content)).size == (512, 512)

        if facts["key"]:
            # The key works as before (it just did), with the limits it was given; the admin key too.
            admin = {"Authorization": f"Bearer {facts['admin_key']}"}
            described = client.get(f"/admin/keys/{facts['key_id']}", headers=admin)
            assert described.status_code == 200, described.text
            for limit, value in (facts["key_limits"] or {}).items():
                assert described.json()["limits"][limit] == value

        # The task the old server accepted and never ran is run now.
        deadline = time.monotonic() + 60
        while (queued := client.get(f"/v1/tasks/{facts['queued_task']}", headers=key).json())["status"] != (
            "completed"
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert queued["status"] == "completed", queued

        if facts["ledger"]:
            # Both images are billed once: the old one as it was, the queued one now.
            usage = client.get("/v1/usage", headers=key, params={"group_by": "model"}).json()
            assert sum(row["images"] for row in usage["data"]) == 2, usage

    # The migrated schema is exactly the one a new data dir gets.
    engine = sa.create_engine(f"sqlite:///{data_dir / 'pixelgate.db'}")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()
