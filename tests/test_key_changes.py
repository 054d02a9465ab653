"""Keys after they are made (issue 5, last part): changing a key's name, models, expiry and limits through
``PATCH /admin/keys/{id}`` and ``pixelgate keys update``; enabling a disabled key; failed key checks counted
across processes through Redis, and a Redis that is down answered with a 503; usage by dialect, also for
rows a database made before the ledger knew dialects.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from conftest import MakeServer, ServerProcess
from test_keys import (
    ADMIN,
    ADMIN_ENV,
    FLASH,
    NANO,
    admin,
    call,
    gemini_error,
    generation_body,
    new_key,
    openai_error,
    pixelgate,
    said,
)
from test_usage_limits import REDIS_URL, redis_answers

GENERATE = "/v1/images/generations"
PRICED = "gemini-2.5-flash-image-preview"  # priced by the catalog: $0.0387 an image, plus its prompt


def address() -> str:
    """A loopback source address unlikely to be used by any other run sharing the Redis within a minute."""
    return f"127.{random.randint(1, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"


def generate(server: ServerProcess, key: str, model: str = FLASH) -> httpx.Response:
    return call(server, "POST", GENERATE, key, body=generation_body(GENERATE, model))


def patch(server: ServerProcess, key_id: str, body: dict[str, Any]) -> httpx.Response:
    return admin(server, "PATCH", f"/admin/keys/{key_id}", body)


def changed(server: ServerProcess, key_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = patch(server, key_id, body)
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


@pytest.fixture(scope="module")
def main(make_server: MakeServer) -> ServerProcess:
    return make_server("sqlite", "--emulate", "--auth", env=ADMIN_ENV)


# --- PATCH /admin/keys/{id} ---------------------------------------------------------------------------------


def test_a_changed_limit_applies_to_the_next_request(main: ServerProcess) -> None:
    made = new_key(main, "growing", limits={"images_per_day": 1, "requests_per_minute": 1000})
    key, key_id = made["key"], made["id"]
    assert generate(main, key).status_code == 200
    openai_error(generate(main, key), 429, "rate_limit_exceeded")

    record = changed(main, key_id, {"limits": {"images_per_day": 3}})
    assert record["limits"] == {"images_per_day": 3, "requests_per_minute": 1000}, "the other limit stays"
    assert [generate(main, key).status_code for _ in range(3)] == [200, 200, 429]

    record = changed(main, key_id, {"limits": {"images_per_day": None}})
    assert record["limits"] == {"requests_per_minute": 1000}
    assert generate(main, key).status_code == 200, "no daily limit any more"
    assert admin(main, "GET", f"/admin/keys/{key_id}").json()["limits"] == {"requests_per_minute": 1000}


def test_a_budget_can_be_raised_and_lowered(main: ServerProcess) -> None:
    made = new_key(main, "budgeted", limits={"credit_budget_usd": 0.0})
    openai_error(generate(main, made["key"], PRICED), 402, "insufficient_quota")
    changed(main, made["id"], {"limits": {"credit_budget_usd": 100.0}})
    assert generate(main, made["key"], PRICED).status_code == 200
    changed(main, made["id"], {"limits": {"credit_budget_usd": 0.0}})
    openai_error(generate(main, made["key"], PRICED), 402, "insufficient_quota")


def test_name_models_and_expiry_change_and_the_rest_stays(main: ServerProcess) -> None:
    made = new_key(main, "narrow", owner="dora", models=[NANO], expires_in_days=1)
    key, key_id = made["key"], made["id"]
    openai_error(generate(main, key, FLASH), 403, "model_not_allowed")

    record = changed(main, key_id, {"name": "  wide  ", "models": [FLASH, FLASH]})
    assert record["name"] == "wide" and record["models"] == [FLASH]
    assert record["owner"] == "dora" and record["expires_at"] == made["expires_at"]
    assert generate(main, key, FLASH).status_code == 200
    openai_error(generate(main, key, NANO), 403, "model_not_allowed")

    record = changed(main, key_id, {"models": None, "expires_at": None})
    assert record["models"] is None and record["expires_at"] is None and record["state"] == "active"
    assert generate(main, key, NANO).status_code == 200

    record = changed(main, key_id, {"expires_in_days": 2})
    assert abs(record["expires_at"] - (time.time() + 2 * 86400)) < 60


def test_a_key_given_a_near_expiry_stops_working_then(main: ServerProcess) -> None:
    made = new_key(main, "short-lived")
    assert call(main, "GET", "/v1/models", made["key"]).status_code == 200  # now cached as valid
    record = changed(main, made["id"], {"expires_at": int(time.time()) + 2})
    assert record["state"] == "active"
    time.sleep(3.2)
    openai_error(call(main, "GET", "/v1/models", made["key"], source=address()), 401, "invalid_api_key")
    assert admin(main, "GET", f"/admin/keys/{made['id']}").json()["state"] == "expired"


def test_a_disabled_key_is_enabled_again(main: ServerProcess) -> None:
    made = new_key(main, "paused")
    assert admin(main, "POST", f"/admin/keys/{made['id']}/disable").json()["state"] == "disabled"
    openai_error(call(main, "GET", "/v1/models", made["key"], source=address()), 401, "invalid_api_key")
    enabled = admin(main, "POST", f"/admin/keys/{made['id']}/enable")
    assert enabled.status_code == 200 and enabled.json()["state"] == "active", enabled.text
    assert enabled.json()["disabled_at"] is None
    assert call(main, "GET", "/v1/models", made["key"]).status_code == 200
    openai_error(admin(main, "POST", "/admin/keys/000000000000/enable"), 404, "key_not_found")


def test_changes_of_different_limits_at_once_all_stay(main: ServerProcess) -> None:
    made = new_key(main, "contended")
    limits = {
        "requests_per_minute": 7,
        "concurrent_tasks": 3,
        "images_per_day": 11,
        "credit_budget_usd": 2.5,
    }
    with httpx.Client(base_url=main.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN}"}) as http:
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(len(limits)) as pool:
            answers = list(
                pool.map(
                    lambda item: http.patch(f"/admin/keys/{made['id']}", json={"limits": dict([item])}),
                    limits.items(),
                )
            )
    assert [a.status_code for a in answers] == [200] * len(limits), [a.text for a in answers]
    assert admin(main, "GET", f"/admin/keys/{made['id']}").json()["limits"] == limits


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({}, None, "nothing_to_change"),
        ({"owner": "mallory"}, "owner", "owner_immutable"),
        ({"name": None}, "name", "invalid_field"),
        ({"name": ""}, "name", "invalid_field"),
        ({"models": []}, "models", "invalid_field"),
        ({"models": ["dall-e-9"]}, "models", "model_not_found"),
        ({"expires_at": 1}, "expires_at", "invalid_request"),
        ({"expires_in_days": 1, "expires_at": int(time.time()) + 999}, "expires_at", "conflicting_expiry"),
        ({"expires_in_days": 0}, "expires_in_days", "invalid_field"),
        ({"limits": {"requests_per_minute": 0}}, "limits.requests_per_minute", "invalid_field"),
        ({"limits": {"tokens_per_day": 5}}, "limits.tokens_per_day", "invalid_field"),
        ({"secret": "x"}, "secret", "invalid_field"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_bad_change_is_a_400_and_changes_nothing(
    main: ServerProcess, body: dict[str, Any], param: str | None, code: str
) -> None:
    made = new_key(main, "steady", limits={"concurrent_tasks": 2}, models=[FLASH])
    error = openai_error(patch(main, made["id"], body), 400, code)
    assert error["param"] == param, error
    after = admin(main, "GET", f"/admin/keys/{made['id']}").json()
    assert {k: after[k] for k in ("name", "owner", "models", "limits", "expires_at")} == {
        k: made[k] for k in ("name", "owner", "models", "limits", "expires_at")
    }


def test_changing_keys_needs_the_admin_key_and_a_real_key(main: ServerProcess) -> None:
    user = new_key(main, "ordinary")
    refused = call(main, "PATCH", f"/admin/keys/{user['id']}", user["key"], body={"name": "admin-now"})
    openai_error(refused, 403, "admin_key_required")
    error = openai_error(patch(main, "000000000000", {"name": "x"}), 404, "key_not_found")
    assert "000000000000" in error["message"]


def test_keys_update_and_enable_commands(main: ServerProcess) -> None:
    made = new_key(main, "cli-changed", limits={"requests_per_minute": 60, "credit_budget_usd": 5})
    env = {"PIXELGATE_SERVER": main.url, "PIXELGATE_ADMIN_KEY": ADMIN}
    updated = pixelgate(
        "keys",
        "update",
        made["id"],
        "--name",
        "cli-renamed",
        "--rpm",
        "120",
        "--images-per-day",
        "500",
        "--unlimited",
        "budget",
        "--model",
        FLASH,
        env=env,
    )
    assert updated.returncode == 0, said(updated)
    assert "cli-renamed" in said(updated) and "rpm 120" in said(updated), said(updated)
    record = admin(main, "GET", f"/admin/keys/{made['id']}").json()
    assert record["name"] == "cli-renamed" and record["models"] == [FLASH]
    assert record["limits"] == {"requests_per_minute": 120, "images_per_day": 500}

    listed = said(pixelgate("keys", "list", env=env))
    assert "rpm 120, images-per-day 500" in listed, listed

    widened = pixelgate("keys", "update", made["id"], "--all-models", "--never-expires", env=env)
    assert widened.returncode == 0, said(widened)
    assert admin(main, "GET", f"/admin/keys/{made['id']}").json()["models"] is None

    for args, words in [
        ((), "nothing to change"),
        (("--unlimited", "tokens"), "'tokens' is not a limit"),
        (("--rpm", "5", "--unlimited", "rpm"), "contradict"),
        (("--model", FLASH, "--all-models"), "not both"),
        (("--rpm", "0"), "requests_per_minute"),
    ]:
        refused = pixelgate("keys", "update", made["id"], *args, env=env)
        assert refused.returncode != 0 and words in said(refused), (args, said(refused))

    assert pixelgate("keys", "disable", made["id"], env=env).returncode == 0
    enabled = pixelgate("keys", "enable", made["id"], env=env)
    assert enabled.returncode == 0 and "active" in said(enabled), said(enabled)
    missing = pixelgate("keys", "update", "000000000000", "--rpm", "5", env=env)
    assert missing.returncode != 0 and "000000000000" in said(missing), said(missing)


# --- failed key checks through Redis ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_pair(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> list[ServerProcess]:
    """Two processes on one SQLite data dir that count failed key checks in Redis."""
    if not redis_answers():
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    data_dir = tmp_path_factory.mktemp("guard-redis")
    return [
        make_server(
            "sqlite", "--emulate", "--auth", "--redis-url", REDIS_URL, data_dir=data_dir, env=ADMIN_ENV
        )
        for _ in range(2)
    ]


def test_failed_key_checks_are_counted_across_processes(redis_pair: list[ServerProcess]) -> None:
    first, second = redis_pair
    good = new_key(first, "good-guard")["key"]
    guesser, bystander = address(), address()
    for i in range(20):
        server = redis_pair[i % 2]
        response = call(server, "GET", "/v1/models", f"pgk_{i:012d}_guess", source=guesser)
        openai_error(response, 401, "invalid_api_key")
    # Ten failures in each process: alone, neither would refuse; together they are 20.
    for server in redis_pair:
        refused = call(server, "GET", "/v1/models", "pgk_000000000099_guess", source=guesser)
        error = openai_error(refused, 429, "too_many_invalid_keys")
        assert guesser in error["message"] and "20" in error["message"], error
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert call(server, "GET", "/v1/models", good, source=guesser).status_code == 200, (
            "a valid key passes"
        )
    gemini_error(
        call(second, "GET", "/v1beta/models", "pgk_0_guess", how="x-goog-api-key", source=guesser),
        429,
        "TOO_MANY_INVALID_KEYS",
    )
    openai_error(call(first, "GET", "/v1/models", "pgk_0_guess", source=bystander), 401, "invalid_api_key")
    assert call(first, "GET", "/v1/models", good, source=bystander).status_code == 200


def test_a_redis_that_is_down_refuses_rate_limited_requests_and_nothing_else(make_server: MakeServer) -> None:
    """Requests per minute, a limit someone pays for, are refused (503) while they cannot be counted; the
    failed-key guard falls back to counting in the process, so everyone else is still served."""
    server = make_server(
        "sqlite",
        "--emulate",
        "--auth",
        "--redis-url",
        "redis://:hunter2@127.0.0.1:1/0?password=hunter3",
        env=ADMIN_ENV,
    )
    assert call(server, "GET", "/v1/models", ADMIN).status_code == 200
    assert call(server, "GET", "/v1beta/models", ADMIN, how="x-goog-api-key").status_code == 200
    limited = new_key(server, "metered", limits={"requests_per_minute": 100})["key"]
    unlimited = new_key(server, "unmetered")["key"]
    error = openai_error(generate(server, limited), 503, "redis_unavailable")
    assert "127.0.0.1" not in error["message"] and "hunter" not in error["message"], error
    gemini = call(
        server,
        "POST",
        f"/v1beta/models/{FLASH}:generateContent",
        limited,
        how="x-goog-api-key",
        body=generation_body("/v1beta/models"),
    )
    assert gemini.status_code == 503 and gemini.json()["error"]["status"] == "UNAVAILABLE", gemini.text
    assert generate(server, unlimited).status_code == 200
    # Failed keys are still counted (here, in the process) and still refused past 20.
    guesser = address()
    for i in range(20):
        openai_error(
            call(server, "GET", "/v1/models", f"pgk_{i:012d}_x", source=guesser), 401, "invalid_api_key"
        )
    openai_error(call(server, "GET", "/v1/models", "pgk_0_x", source=guesser), 429, "too_many_invalid_keys")
    assert call(server, "GET", "/v1/models", ADMIN, source=guesser).status_code == 200
    log = server.log()
    assert "does not answer" in log and "Redis failed while counting" in log, log
    assert "hunter2" not in log and "hunter3" not in log, "no Redis password is logged"


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "bad\\u0000name"}',
        '{"name": "tab\\tname"}',
        '{"name": "x", "limits": {"credit_budget_usd": Infinity}}',
        '{"name": "x", "limits": {"credit_budget_usd": NaN}}',
    ],
    ids=["nul", "tab", "infinite-budget", "nan-budget"],
)
def test_values_no_database_can_keep_are_a_400(main: ServerProcess, text: str) -> None:
    """Python's JSON reader takes these; PostgreSQL would refuse them with a 500."""
    made = new_key(main, "victim")
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    count = len(admin(main, "GET", "/admin/keys").json()["data"])
    with httpx.Client(base_url=main.url, timeout=30, headers=headers) as http:
        for response in (
            http.post("/admin/keys", content=text),
            http.patch(f"/admin/keys/{made['id']}", content=text),
        ):
            assert response.status_code == 400, response.text
    assert len(admin(main, "GET", "/admin/keys").json()["data"]) == count, "no key was made"
    assert admin(main, "GET", f"/admin/keys/{made['id']}").json()["name"] == "victim"


@pytest.mark.parametrize("key_id", ["%00", "x" * 5000, "ADMIN", "123"])
def test_an_id_that_cannot_be_a_key_is_a_404(main: ServerProcess, key_id: str) -> None:
    for method, path, body in [
        ("GET", "/admin/keys/{}", None),
        ("PATCH", "/admin/keys/{}", {"name": "x"}),
        ("POST", "/admin/keys/{}/enable", None),
        ("POST", "/admin/keys/{}/disable", None),
        ("DELETE", "/admin/keys/{}", None),
    ]:
        openai_error(admin(main, method, path.format(key_id), body), 404, "key_not_found")


def test_expires_in_days_null_is_refused_rather_than_removing_an_expiry(main: ServerProcess) -> None:
    made = new_key(main, "expiring", expires_in_days=3)
    error = openai_error(patch(main, made["id"], {"expires_in_days": None}), 400, "invalid_field")
    assert "expires_at: null" in error["message"]
    assert admin(main, "GET", f"/admin/keys/{made['id']}").json()["expires_at"] == made["expires_at"]


# --- usage by dialect ---------------------------------------------------------------------------------------


def test_usage_is_reported_by_dialect(main: ServerProcess) -> None:
    made = new_key(main, "polyglot", owner="polly")
    key = made["key"]
    task_style = {"model": FLASH, "prompt": "a kite", "size": "1:1", "resolution": "512"}
    sent = {  # dialect: (path, body, times)
        "openai": (GENERATE, generation_body(GENERATE), 2),
        "tasks": (GENERATE, task_style, 1),  # a ratio and a resolution, no response_format: seeds 000-002
        "gemini": (f"/v1beta/models/{FLASH}:generateContent", generation_body("/v1beta/models"), 1),
        "interactions": ("/v1beta/interactions", generation_body("/v1beta/interactions"), 3),
    }
    for path, body, times in sent.values():
        for _ in range(times):
            response = call(main, "POST", path, key, body=body)
            assert response.status_code in (200, 202), response.text
    expected = {name: times for name, (_, _, times) in sent.items()}
    deadline = time.monotonic() + 30
    while True:
        report = call(main, "GET", "/v1/usage?group_by=dialect", key).json()
        by_dialect = {row["dialect"]: row["tasks"] for row in report["data"]}
        if by_dialect == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert by_dialect == expected, report
    assert report["total"]["tasks"] == 7


def test_usage_made_before_dialects_were_recorded_gets_its_tasks_dialect(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """A data dir at the previous schema (0004): its ledger rows learn their dialect from their tasks."""
    database = tmp_path / "pixelgate.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", "pixelgate.store:migrations")
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
    engine.dispose()
    with sqlite3.connect(database) as db:
        for task_id, dialect in (("task_img_old1", "gemini"), ("task_img_old2", "openai")):
            db.execute(
                "INSERT INTO tasks (id, owner, dialect, model, status, progress, priority, request, "
                "response_format, attempts, created_at) VALUES (?, NULL, ?, ?, 'completed', 100, 0, '{}', "
                "'b64_json', 1, ?)",
                (task_id, dialect, FLASH, time.time()),
            )
        rows = [("task_img_old1", 0.04), ("task_img_old2", 0.04), ("task_img_gone", 0.04)]
        for task_id, cost in rows:
            db.execute(
                "INSERT INTO usage (task_id, key_id, owner, model, day, state, images, input_tokens, "
                "output_tokens, total_tokens, cost_usd, created_at) VALUES (?, NULL, NULL, ?, '2026-11-01', "
                "'settled', 1, 0, 1120, 1120, ?, ?)",
                (task_id, FLASH, cost, time.time()),
            )
    server = make_server("sqlite", "--emulate", data_dir=tmp_path)
    report = httpx.get(f"{server.url}/v1/usage", params={"group_by": "dialect"}, timeout=30).json()
    assert {row["dialect"]: row["tasks"] for row in report["data"]} == {None: 1, "gemini": 1, "openai": 1}
    assert report["total"]["tasks"] == 3 and report["total"]["cost_usd"] == pytest.approx(0.12)
