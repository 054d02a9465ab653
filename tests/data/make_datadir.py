"""Make a data dir with an older pixelgate, for tests/test_upgrade.py.

    git worktree add /tmp/old COMMIT
    python tests/data/make_datadir.py /tmp/old/src tests/data/datadir-SCHEMA COMMIT

Runs that checkout's ``pixelgate serve --emulate --auth`` (with this venv's packages) on a fresh data dir and
makes: a key with a daily image limit, a completed task, a refused request, and a task left queued by a
server without workers. Results get a TTL of 100 years, so that the images are still served when the test
runs. ``made.json`` records what the test looks for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ADMIN = "pga_upgrade_test_admin_key_0123456789"
PORT = 18766


def main(source: Path, out: Path, commit: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="pixelgate-datadir-"))
    data = work / "data"
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "PIXELGATE_ADMIN_KEY": ADMIN,
        "PIXELGATE_RESULT_TTL_SECONDS": str(100 * 365 * 86400),
    }
    log = (work / "serve.log").open("ab")

    help_text = subprocess.run(
        [sys.executable, "-m", "pixelgate", "serve", "--help"], env=env, capture_output=True, text=True
    ).stdout
    has_keys = "--auth" in help_text  # keys came with schema 0003

    def serve(*args: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "pixelgate", "serve", "--port", str(PORT), "--data-dir", str(data)]
        auth = ["--auth"] if has_keys else []
        process = subprocess.Popen([*command, *auth, "--emulate", *args], env=env, stdout=log, stderr=log)
        for _ in range(150):
            try:
                if httpx.get(f"http://127.0.0.1:{PORT}/healthz").status_code == 200:
                    return process
            except httpx.TransportError:
                time.sleep(0.2)
        raise SystemExit((work / "serve.log").read_text())

    client = httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=60)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    body = {"model": "gemini-3.1-flash-image", "size": "1:1", "resolution": "512"}

    server = serve()
    key: dict[str, str] = {}
    headers: dict[str, str] = {}
    if has_keys:
        new_key = {"name": "old-team", "owner": "acme", "limits": {"images_per_day": 100}}
        made = client.post("/admin/keys", headers=admin, json=new_key)
        if made.status_code == 400:  # limits came with schema 0004
            new_key.pop("limits")
            made = client.post("/admin/keys", headers=admin, json=new_key)
        made.raise_for_status()
        key = {**made.json(), "limits": new_key.get("limits")}
        headers = {"Authorization": f"Bearer {key['key']}"}
    done = client.post(
        "/v1/images/generations",
        headers=headers,
        json={**body, "prompt": "an old lighthouse", "response_format": "url"},
    )
    done.raise_for_status()
    refused = client.post(
        "/v1/images/generations", headers=headers, json={**body, "prompt": "x", "size": "8K"}
    )
    assert refused.status_code == 400, refused.text
    usage = client.get("/v1/usage", headers=headers).status_code == 200  # the ledger came with 0004
    server.terminate()
    server.wait(30)

    server = serve("--no-workers")
    queued = client.post(
        "/v1/images/generations", headers=headers, json={**body, "prompt": "a kite", "async": True}
    )
    queued.raise_for_status()
    server.terminate()
    server.wait(30)

    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "pixelgate.db", out / "pixelgate.db")
    shutil.copytree(data / "blobs", out / "blobs", dirs_exist_ok=True)
    facts = {
        "made_by": f"pixelgate {commit}: serve --emulate{' --auth' if has_keys else ''}, result TTL 100 years "
        "(tests/data/make_datadir.py)",
        "admin_key": ADMIN if has_keys else None,
        "key_id": key.get("id"),
        "key": key.get("key"),
        "key_limits": key.get("limits"),
        "ledger": usage,
        "completed_task": done.json()["data"][0]["url"].split("/blobs/")[1].split("/")[0],
        "queued_task": queued.json()["id"],
    }
    (out / "made.json").write_text(json.dumps(facts, indent=1) + "\n")
    shutil.rmtree(work)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
