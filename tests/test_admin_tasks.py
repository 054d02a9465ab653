"""The admin's views (issue 23): ``GET /admin/tasks`` with its filters and keyset paging, one task whole with
its secrets redacted, cancelling anyone's task, and ``GET /admin/usage/series`` summing to the ledger, on
SQLite and PostgreSQL, against real servers with keys on.

One server per backend holds a fixed set of tasks made by two keys through two dialects and four channels
(one of which always fails, one of which is slow enough to cancel), and the tests read it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import secrets
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import MakeServer, ServerProcess, db_rows, png_bytes

ADMIN = "pga_" + secrets.token_urlsafe(32)
FLASH, NANO, PRO, LITE = (
    "gemini-3.1-flash-image",
    "gemini-2.5-flash-image",
    "gemini-3-pro-image",
    "gemini-3.1-flash-lite-image",
)
PRICES = {FLASH: 0.04, NANO: 0.03, PRO: 0.13, LITE: 0.02}
HOOK_TOKEN = "hook-token-" + secrets.token_hex(8)
HOOK_PASSWORD = "hook-pass-" + secrets.token_hex(8)
METADATA_SECRET = "sk-" + secrets.token_hex(16)
CHANNELS = f"""
[routing]
max_attempts = 1
cooldown_seconds = 0
requeue_async = false

[prices]
{chr(10).join(f'"{model}" = {price}' for model, price in PRICES.items())}

[[channels]]
name = "flash-lane"
provider = "emulator"
models = ["{FLASH}"]

[[channels]]
name = "nano-lane"
provider = "emulator"
models = ["{NANO}"]

[[channels]]
name = "broken-lane"
provider = "emulator"
models = ["{PRO}"]
options = {{ faults = "503:1" }}

[[channels]]
name = "slow-lane"
provider = "emulator"
models = ["{LITE}"]
options = {{ latency = 60 }}
"""


@dataclass
class World:
    server: ServerProcess
    alice: dict[str, Any]  # owner acme
    bob: dict[str, Any]  # owner bolt
    made: list[str] = field(default_factory=list)  # every task id, oldest first
    hooked: str = ""  # the task with a webhook and metadata that hold secrets
    referenced: str = ""  # the task with a reference image
    reference_b64: str = ""

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
        )


def _as(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


def _wait_ended(http: httpx.Client, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task = http.get(f"/admin/tasks/{task_id}").json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            return task
        time.sleep(0.05)
    raise AssertionError(f"{task_id} did not end: {task}")


@pytest.fixture(scope="module")
def world(backend: str, make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    config = tmp_path_factory.mktemp("channels") / "pixelgate.toml"
    config.write_text(CHANNELS)
    server = make_server(
        backend, "--config", str(config), "--fetch-allow", "127.0.0.1", env={"PIXELGATE_ADMIN_KEY": ADMIN}
    )
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60) as admin:
        alice = admin.post("/admin/keys", json={"name": "alice-app", "owner": "acme"}).json()
        bob = admin.post("/admin/keys", json={"name": "bob-app", "owner": "bolt"}).json()
    world = World(server, alice, bob)
    with httpx.Client(base_url=server.url, timeout=60) as http, world.admin() as admin:

        def openai(key: dict[str, Any], body: dict[str, Any]) -> str:
            answer = http.post("/v1/images/generations", json={"async": True, **body}, headers=_as(key))
            assert answer.status_code == 200, answer.text
            world.made.append(answer.json()["id"])
            _wait_ended(admin, world.made[-1])
            return str(world.made[-1])

        for i in range(3):
            openai(world.alice, {"model": FLASH, "prompt": f"fox {i}", "resolution": "512", "n": 1 + i % 2})
        for i in range(3):
            answer = http.post(
                f"/v1beta/models/{NANO}:generateContent",
                json={"contents": [{"parts": [{"text": f"owl {i}"}]}]},
                headers={"x-goog-api-key": world.bob["key"]},
            )
            assert answer.status_code == 200, answer.text
            listed = admin.get("/admin/tasks", params={"limit": 1}).json()["data"]
            world.made.append(listed[0]["id"])
        for i in range(2):
            openai(world.alice, {"model": PRO, "prompt": f"broken {i}", "resolution": "1K"})
        world.hooked = openai(
            world.alice,
            {
                "model": FLASH,
                "prompt": "a kite",
                "resolution": "512",
                "callback_url": f"http://hooker:{HOOK_PASSWORD}@127.0.0.1:9/hook?token={HOOK_TOKEN}&v=1",
                "metadata": {"api_key": METADATA_SECRET, "team": "kites"},
            },
        )
        world.reference_b64 = base64.b64encode(png_bytes(40, 30, (10, 200, 10))).decode()
        world.referenced = openai(
            world.bob,
            {
                "model": FLASH,
                "prompt": "this, bigger",
                "resolution": "512",
                "reference_images": [f"data:image/png;base64,{world.reference_b64}"],
            },
        )
    return world


def listed(world: World, **params: Any) -> list[dict[str, Any]]:
    """Every row the filters keep, through every page."""
    rows: list[dict[str, Any]] = []
    after = None
    with world.admin() as admin:
        while True:
            page = admin.get("/admin/tasks", params={**params, "limit": 200, "after": after}).json()
            assert page["object"] == "list", page
            rows += page["data"]
            if not page["has_more"]:
                return rows
            after = page["last_id"]


# --- the list -----------------------------------------------------------------------------------------------


def test_every_task_is_listed_newest_first_with_its_row(world: World) -> None:
    rows = listed(world)
    assert [row["id"] for row in rows] == world.made[::-1]
    created = [row["created_at"] for row in rows]
    assert created == sorted(created, reverse=True)
    by_id = {row["id"]: row for row in rows}
    first = by_id[world.made[0]]
    assert first["object"] == "admin.task"
    assert first["status"] == "succeeded" and first["model"] == FLASH and first["dialect"] == "openai"
    assert first["key_id"] == world.alice["id"] and first["key_name"] == "alice-app"
    assert first["owner"] == "acme" and first["channel"] == "flash-lane" and first["n"] == 1
    assert first["billing"] == "settled" and first["cost_usd"] == pytest.approx(PRICES[FLASH])
    assert first["image_count"] == 1 and first["error"] is None
    assert first["started_at"] >= first["created_at"] and first["completed_at"] >= first["started_at"]
    assert first["duration_seconds"] == pytest.approx(first["completed_at"] - first["created_at"], abs=0.002)
    second = by_id[world.made[1]]
    assert second["image_count"] == 2 and second["cost_usd"] == pytest.approx(2 * PRICES[FLASH])
    owl = by_id[world.made[3]]
    assert (owl["dialect"], owl["owner"], owl["key_name"], owl["channel"]) == (
        "gemini",
        "bolt",
        "bob-app",
        "nano-lane",
    )
    broken = by_id[world.made[6]]
    assert broken["status"] == "failed" and broken["billing"] == "released" and broken["cost_usd"] == 0
    assert broken["image_count"] == 0 and broken["channel"] is None
    assert broken["error"]["code"] and "503" in broken["error"]["message"], broken["error"]
    assert set(broken["error"]) == {"code", "message"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, lambda w: w.made[6:8]),
        ({"failed": "true"}, lambda w: w.made[6:8]),
        ({"status": "failed,cancelled"}, lambda w: w.made[6:8]),
        ({"status": "succeeded"}, lambda w: w.made[:6] + w.made[8:]),
        ({"model": NANO}, lambda w: w.made[3:6]),
        ({"key_id": "bob"}, lambda w: w.made[3:6] + w.made[9:]),
        ({"owner": "acme"}, lambda w: w.made[:3] + w.made[6:9]),
        ({"dialect": "gemini"}, lambda w: w.made[3:6]),
        ({"channel": "nano-lane"}, lambda w: w.made[3:6]),
        ({"channel": "flash-lane", "owner": "bolt"}, lambda w: w.made[9:]),
        ({"model": PRO, "status": "succeeded"}, lambda w: []),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else "",
)
def test_filters(world: World, params: dict[str, str], expected: Any) -> None:
    if params.get("key_id") == "bob":
        params = {**params, "key_id": world.bob["id"]}
    assert {row["id"] for row in listed(world, **params)} == set(expected(world)), params


def test_since_and_until(world: World) -> None:
    rows = {row["id"]: row for row in listed(world)}
    middle = rows[world.made[5]]["created_at"]
    later = {row["id"] for row in listed(world, since=middle)}
    assert later == set(world.made[5:])
    earlier = {row["id"] for row in listed(world, until=middle)}
    assert earlier == set(world.made[:5])
    iso = datetime.fromtimestamp(math.floor(middle), UTC).isoformat().replace("+00:00", "Z")
    assert set(world.made[5:]) <= {row["id"] for row in listed(world, since=iso)}
    assert listed(world, since=time.time() + 3600) == []


def test_three_pages_with_no_duplicates_or_gaps(world: World) -> None:
    seen: list[str] = []
    pages = []
    after = None
    with world.admin() as admin, httpx.Client(base_url=world.server.url, timeout=60) as http:
        while True:
            page = admin.get("/admin/tasks", params={"limit": 4, "after": after}).json()
            pages.append(page)
            seen += [row["id"] for row in page["data"]]
            assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
            if len(pages) == 1:  # a task made meanwhile is newer than every page: it moves nothing
                made = http.post(
                    "/v1/images/generations",
                    json={"model": FLASH, "prompt": "late", "resolution": "512", "async": True},
                    headers=_as(world.alice),
                ).json()
                _wait_ended(admin, made["id"])
            if not page["has_more"]:
                break
            after = page["last_id"]
        world.made.append(made["id"])
    assert [len(page["data"]) for page in pages] == [4, 4, 2]
    assert [page["has_more"] for page in pages] == [True, True, False]
    assert seen == world.made[-2::-1], "every task once, newest first, the late one not among them"


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"status": "done"}, "status", "status 'done' is not a task status: use queued, running, succeeded"),
        ({"failed": "yes"}, "failed", "failed 'yes' is not valid: use true"),
        ({"failed": "true", "status": "queued"}, "failed", "contradict each other"),
        ({"after": "task_img_nope"}, "after", "after 'task_img_nope' names no task"),
        ({"since": "yesterday"}, "since", "since 'yesterday' is not a time: use Unix seconds"),
        ({"until": "nan"}, "until", "until 'nan' is not a time"),
        ({"limit": "0"}, "limit", "limit '0' is not valid: use a page size from 1 to 200"),
        ({"owner": "x" * 200}, "owner", "at most 128 are accepted"),
    ],
)
def test_bad_queries_are_400s_that_say_what_is_allowed(
    world: World, params: dict[str, str], param: str, words: str
) -> None:
    with world.admin() as admin:
        answer = admin.get("/admin/tasks", params=params)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"], error


def test_only_the_admin_key_sees_the_tasks(world: World) -> None:
    with httpx.Client(base_url=world.server.url, timeout=60) as http:
        for path in ("/admin/tasks", f"/admin/tasks/{world.made[0]}", "/admin/usage/series"):
            assert http.get(path).status_code == 401
            refused = http.get(path, headers=_as(world.alice))
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "admin_key_required"
        assert http.post(f"/admin/tasks/{world.made[0]}/cancel", headers=_as(world.alice)).status_code == 403


# --- one task -----------------------------------------------------------------------------------------------


def test_one_task_whole_with_its_secrets_redacted(world: World) -> None:
    with world.admin() as admin, httpx.Client(base_url=world.server.url, timeout=60) as http:
        answer = admin.get(f"/admin/tasks/{world.hooked}")
        assert answer.status_code == 200, answer.text
        task = answer.json()
        owner_secret = http.get("/v1/webhooks/secret", headers=_as(world.alice)).json()["secret"]
        image = http.get(task["images"][0]["url"])
    text = answer.text
    for secret in (
        HOOK_TOKEN,
        HOOK_PASSWORD,
        METADATA_SECRET,
        world.alice["key"],
        world.alice["key"].split("_", 2)[2],
        owner_secret,
        ADMIN,
    ):
        assert secret not in text, secret
    assert task["request"]["prompt"] == "a kite" and task["request"]["model"] == FLASH
    assert task["request"]["metadata"] == {"api_key": "[redacted]", "team": "kites"}
    assert task["webhook"]["urls"] == ["http://REDACTED@127.0.0.1:9/hook?token=REDACTED&v=REDACTED"]
    assert task["status"] == "succeeded" and task["key_name"] == "alice-app" and task["image_count"] == 1
    assert task["tokens"]["total_tokens"] > 0 and task["result_expired"] is False
    assert task["request_id"].startswith("req_") and task["attempts"] == 1 and task["progress"] == 100
    assert [(i["width"], i["height"], i["mime_type"]) for i in task["images"]] == [(512, 512, "image/png")]
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG"), "the URL is signed"


def test_references_are_their_stored_keys_not_their_bytes(world: World) -> None:
    with world.admin() as admin:
        answer = admin.get(f"/admin/tasks/{world.referenced}")
    assert answer.status_code == 200, answer.text
    (reference,) = answer.json()["request"]["references"]
    assert reference["blob_key"].startswith(world.referenced) and (
        reference["width"],
        reference["height"],
    ) == (
        40,
        30,
    )
    assert world.reference_b64[:40] not in answer.text


def test_an_unknown_task_is_a_404(world: World) -> None:
    with world.admin() as admin:
        for answer in (
            admin.get("/admin/tasks/task_img_nope"),
            admin.post("/admin/tasks/task_img_nope/cancel"),
        ):
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "task_not_found"
            assert "task_img_nope" in answer.json()["error"]["message"]


def test_the_admin_cancels_anyones_task(world: World) -> None:
    with world.admin() as admin, httpx.Client(base_url=world.server.url, timeout=60) as http:
        slow = http.post(
            "/v1/images/generations",
            json={"model": LITE, "prompt": "slow", "resolution": "1K", "async": True},
            headers=_as(world.bob),
        ).json()["id"]
        world.made.append(slow)
        cancelled = admin.post(f"/admin/tasks/{slow}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled" and cancelled.json()["billing"] == "released"
        again = admin.post(f"/admin/tasks/{slow}/cancel")
        assert again.status_code == 200 and again.json()["status"] == "cancelled"
        ended = admin.post(f"/admin/tasks/{world.made[0]}/cancel")
        assert ended.status_code == 409 and ended.json()["error"]["code"] == "task_already_finished"
        assert [row["id"] for row in listed(world, status="cancelled")] == [slow]


# --- usage over time ----------------------------------------------------------------------------------------


def _ledger(world: World) -> list[tuple[Any, ...]]:
    return db_rows(
        world.server,
        "SELECT created_at, model, key_id, owner, dialect, images, total_tokens, cost_usd FROM usage "
        "WHERE state = 'settled'",
    )


def test_series_buckets_sum_to_the_ledger(world: World) -> None:
    ledger = _ledger(world)
    assert len(ledger) >= 8
    with world.admin() as admin:
        usage = admin.get("/v1/usage", params={"group_by": "model,day"}).json()
        for bucket, width in (("hour", 3600), ("day", 86400)):
            for group_by, column in (("model", 1), ("key", 2), ("owner", 3), ("dialect", 4), (None, None)):
                since = time.time() - 4 * 86400 if bucket == "hour" else "2020-01-01"
                params = {"bucket": bucket, "since": since, **({"group_by": group_by} if group_by else {})}
                answer = admin.get("/admin/usage/series", params=params)
                assert answer.status_code == 200, answer.text
                series = answer.json()
                assert (series["bucket"], series["bucket_seconds"], series["group_by"]) == (
                    bucket,
                    width,
                    group_by,
                )
                expected: Counter[tuple[int, Any]] = Counter()
                images: Counter[tuple[int, Any]] = Counter()
                for row in ledger:
                    key = (math.floor(row[0]) // width * width, row[column] if column else None)
                    expected[key] += row[7]
                    images[key] += row[5]
                got = {(p["start"], p["group"]): p for p in series["data"]}
                assert set(got) == set(expected), (bucket, group_by)
                for key, point in got.items():
                    assert point["cost_usd"] == pytest.approx(expected[key], abs=1e-6)
                    assert point["images"] == images[key]
                assert series["total"]["cost_usd"] == pytest.approx(usage["total"]["cost_usd"], abs=1e-6)
                assert series["total"]["images"] == usage["total"]["images"] == sum(r[5] for r in ledger)
                assert series["total"]["total_tokens"] == sum(r[6] for r in ledger)
                assert series["total"]["tasks"] == usage["total"]["tasks"] == len(ledger)
        # A day's bucket is /v1/usage's day: the same sums, model by model.
        days = admin.get("/admin/usage/series", params={"since": "2020-01-01", "group_by": "model"}).json()
    by_day = {
        (datetime.fromtimestamp(p["start"], UTC).strftime("%Y-%m-%d"), p["group"]): p["cost_usd"]
        for p in days["data"]
    }
    assert by_day == pytest.approx({(r["day"], r["model"]): r["cost_usd"] for r in usage["data"]})


def _execute(server: ServerProcess, sql: str) -> None:
    if server.database_url:
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(
                server.database_url.replace("postgresql+asyncpg://", "postgresql://")
            )
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())
        return
    with contextlib.closing(sqlite3.connect(Path(server.data_dir) / "pixelgate.db")) as conn, conn:
        conn.execute(sql)


def test_a_bucket_edge_is_the_same_on_both_databases(world: World) -> None:
    """A time just before a bucket's end stays in that bucket: PostgreSQL's CAST of a double rounds
    (1700003599.7 would become 1700003600, the next hour); the series floors it, as SQLite does."""
    edge = 1700006400  # a whole hour and day boundary
    rows = [("edge-a", edge - 0.3, 1), ("edge-b", edge - 3600.4, 2), ("edge-c", edge + 0.2, 4)]
    values = ", ".join(
        f"('{task}', NULL, 'edge-owner', '{FLASH}', 'tasks', '2023-11-14', 'settled', {images}, 0, 0, 0, "
        f"{images / 100}, {at}, {at})"
        for task, at, images in rows
    )
    _execute(
        world.server,
        "INSERT INTO usage (task_id, key_id, owner, model, dialect, day, state, images, input_tokens, "
        f"output_tokens, total_tokens, cost_usd, created_at, settled_at) VALUES {values}",
    )
    with world.admin() as admin:
        hours = admin.get(
            "/admin/usage/series", params={"bucket": "hour", "since": edge - 7200, "until": edge + 3600}
        ).json()
        days = admin.get(
            "/admin/usage/series",
            params={"bucket": "day", "since": edge - 86400, "until": edge + 60, "group_by": "owner"},
        ).json()
    assert [(p["start"], p["images"]) for p in hours["data"]] == [
        (edge - 7200, 2),
        (edge - 3600, 1),
        (edge, 4),
    ]
    assert hours["since"] == edge - 7200 and hours["until"] == edge + 3600
    assert [(p["start"], p["group"], p["images"]) for p in days["data"]] == [
        (edge - 86400, "edge-owner", 3),
        (edge, "edge-owner", 4),
    ]
    assert days["total"]["cost_usd"] == pytest.approx(0.07)


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"bucket": "week"}, "bucket", "bucket 'week' is not known: use hour or day"),
        ({"group_by": "day"}, "group_by", "group_by 'day' is not known: use model, key, owner or dialect"),
        ({"since": "soon"}, "since", "since 'soon' is not a time"),
        ({"since": "2026-01-02", "until": "2026-01-01"}, "until", "is not after since"),
        (
            {"bucket": "hour", "since": "2000-01-01"},
            "since",
            "hours: at most 5,000 buckets are served; use a later since or bucket=day",
        ),
    ],
)
def test_bad_series_queries(world: World, params: dict[str, str], param: str, words: str) -> None:
    with world.admin() as admin:
        answer = admin.get("/admin/usage/series", params=params)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"], error


def test_the_views_are_in_the_openapi_document(world: World) -> None:
    document = httpx.get(f"{world.server.url}/openapi.json", timeout=10).json()
    paths = document["paths"]
    assert {"get"} <= set(paths["/admin/tasks"]) and "get" in paths["/admin/tasks/{task_id}"]
    assert "post" in paths["/admin/tasks/{task_id}/cancel"] and "get" in paths["/admin/usage/series"]
    listed_params = {p["name"] for p in paths["/admin/tasks"]["get"]["parameters"]}
    assert {
        "status",
        "failed",
        "model",
        "key_id",
        "owner",
        "dialect",
        "channel",
        "since",
        "until",
    } <= listed_params
    assert {"limit", "after"} <= listed_params
    schemas = document["components"]["schemas"]
    assert {"AdminTask", "AdminTaskPage", "AdminTaskDetail", "UsageSeries"} <= set(schemas)
    assert "image_count" in schemas["AdminTask"]["properties"]
