"""The operator's console at ``/console``, end to end in headless Chromium (Debian's ``chromium``, driven by
Playwright) against one server with an admin key and a known workload: two keys, two models, one task that
always fails (its channel's emulated upstream answers 503 every time) and one batch. The page's figures
(read from the data attributes of the tables beside its charts and of its tables) must equal the admin API's
exactly; a key made in the page works from the openai SDK and is refused once disabled in the page; a channel
disabled through the API is enabled in the page; a failed task shows its error. Screenshots go to
``test-artifacts/console``.

``.ci/run`` installs Chromium; where it is missing these tests are skipped, saying so.
"""

from __future__ import annotations

import io
import json
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from conftest import MakeServer, ServerProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "console"
ADMIN = "pga_" + secrets.token_urlsafe(32)
FLASH, NANO, PRO = "gemini-3.1-flash-image", "gemini-2.5-flash-image", "gemini-3-pro-image"
CHANNELS = f"""
[routing]
max_attempts = 1
cooldown_seconds = 0
requeue_async = false

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
"""

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium"
)


def sdk(server: ServerProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def admin(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)


@pytest.fixture(scope="module")
def console(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """The server, with its workload made: alice (budget $1) makes two flash images and one pro image that
    fails; bob makes one nano image; the admin runs a batch of two flash lines."""
    config = tmp_path_factory.mktemp("console") / "pixelgate.toml"
    config.write_text(CHANNELS)
    server = make_server("sqlite", "--config", str(config), env={"PIXELGATE_ADMIN_KEY": ADMIN})
    with admin(server) as http:
        alice = http.post(
            "/admin/keys", json={"name": "alice-app", "owner": "acme", "limits": {"credit_budget_usd": 1}}
        ).json()["key"]
        bob = http.post("/admin/keys", json={"name": "bob-app", "owner": "bolt"}).json()["key"]
        for prompt in ("a fox", "an owl"):
            sdk(server, alice).images.generate(model=FLASH, prompt=prompt, extra_body={"resolution": "512"})
        sdk(server, bob).images.generate(model=NANO, prompt="a kite")
        with pytest.raises(openai.APIStatusError):
            sdk(server, alice).images.generate(
                model=PRO, prompt="a broken lamp", extra_body={"resolution": "1K"}
            )
        lines = [
            {
                "custom_id": f"line-{i}",
                "method": "POST",
                "url": "/v1/images/generations",
                "body": {"model": FLASH, "prompt": f"batch {i}", "resolution": "512"},
            }
            for i in range(2)
        ]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        client = sdk(server, ADMIN)
        file_id = client.files.create(file=("batch.jsonl", io.BytesIO(data)), purpose="batch").id
        batch = client.batches.create(
            input_file_id=file_id, endpoint="/v1/images/generations", completion_window="24h"
        )
        deadline = time.monotonic() + 60
        while client.batches.retrieve(batch.id).status != "completed":
            assert time.monotonic() < deadline, "the batch did not complete"
            time.sleep(0.1)
    return server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def sign_in(page: Page, server: ServerProcess, view: str = "usage") -> None:
    page.goto(f"{server.url}/console#/{view}")
    page.fill("#admin-key", ADMIN)
    page.click("#login button[type='submit']")
    page.wait_for_selector("#nav:not([hidden])")


@pytest.fixture()
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    yield context
    context.close()


@pytest.fixture()
def page(context: BrowserContext, console: ServerProcess, request: pytest.FixtureRequest) -> Iterator[Page]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, console)
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    assert not errors, errors


def rows(page: Page, selector: str, attributes: list[str]) -> list[tuple[str, ...]]:
    found: list[list[str]] = page.eval_on_selector_all(
        selector,
        "(rows, names) => rows.map((row) => names.map((name) => row.getAttribute(name)))",
        attributes,
    )
    return [tuple(row) for row in found]


def number(text: str) -> float | None:
    return None if text == "" else float(text)


def test_the_charts_show_the_series_figures_exactly(page: Page, console: ServerProcess) -> None:
    with admin(console) as http:
        for group_by in ("model", "key", "owner", "dialect", ""):
            page.select_option("#group-by", group_by)
            page.wait_for_selector(f"#view-usage[data-loaded='{group_by}:cost_usd']", state="attached")
            for bucket in ("day", "hour"):
                series = http.get(
                    "/admin/usage/series",
                    params={"bucket": bucket, **({"group_by": group_by} if group_by else {})},
                ).json()
                shown = rows(
                    page,
                    f"#chart-{bucket} tbody tr[data-start]",
                    ["data-start", "data-group", "data-tasks", "data-images", "data-cost"],
                )
                expected = [
                    (str(p["start"]), p["group"] or "", str(p["tasks"]), str(p["images"]), p["cost_usd"])
                    for p in series["data"]
                ]
                assert [(*row[:4], float(row[4])) for row in shown] == expected
                bars = rows(page, f"#chart-{bucket} rect[data-start]", ["data-start", "data-group"])
                assert bars == [(str(p["start"]), p["group"] or "") for p in series["data"]]
                totals = rows(page, f"#chart-{bucket} .totals", ["data-tasks", "data-images", "data-cost"])
                total = series["total"]
                assert totals == [(str(total["tasks"]), str(total["images"]), str(total["cost_usd"]))]
        # The workload: 2 + 1 images by the keys, 2 by the batch; the failure costs nothing.
        assert total["images"] == 5 and total["tasks"] == 5
    page.select_option("#group-by", "model")
    page.select_option("#metric", "images")
    page.wait_for_selector("#view-usage[data-loaded='model:images']", state="attached")


def test_keys_show_spend_against_budget(page: Page, console: ServerProcess) -> None:
    page.click("#nav a[href='#/keys']")
    page.wait_for_selector("#keys tbody tr[data-id]")
    with admin(console) as http:
        keys = http.get("/admin/keys").json()["data"]
        spend = {row["key"]: row["cost_usd"] for row in http.get("/v1/usage?group_by=key").json()["data"]}
    shown = {
        row[0]: (number(row[1]), number(row[2]))
        for row in rows(page, "#keys tbody tr", ["data-id", "data-spend", "data-budget"])
    }
    assert shown == {
        key["id"]: (spend.get(key["id"], 0), key["limits"].get("credit_budget_usd")) for key in keys
    }
    alice = next(key for key in keys if key["name"] == "alice-app")
    assert spend[alice["id"]] > 0 and page.is_visible(f"#keys tr[data-id='{alice['id']}'] meter")


def test_a_key_made_in_the_console_works_until_disabled_there(page: Page, console: ServerProcess) -> None:
    page.click("#nav a[href='#/keys']")
    page.fill("#new-name", "from-the-console")
    page.fill("#new-owner", "ops")
    page.click("#new-key button[type='submit']")
    page.wait_for_selector("#secret-box:not([hidden])")
    secret = page.text_content("#new-secret") or ""
    key_id = page.get_attribute("#new-secret", "data-id")
    assert secret.startswith("pgk_") and key_id
    page.wait_for_selector(f"#keys tr[data-id='{key_id}'][data-state='active']")
    made = sdk(console, secret).images.generate(
        model=FLASH, prompt="a bell", extra_body={"resolution": "512"}
    )
    assert made.data and (made.data[0].b64_json or made.data[0].url)
    page.click(f"#keys tr[data-id='{key_id}'] button.disable")
    page.wait_for_selector(f"#keys tr[data-id='{key_id}'][data-state='disabled']")
    with pytest.raises(openai.AuthenticationError):
        sdk(console, secret).images.generate(model=FLASH, prompt="a bell", extra_body={"resolution": "512"})
    with admin(console) as http:
        assert http.get(f"/admin/keys/{key_id}").json()["state"] == "disabled"
    # Limits edited in the page reach the key.
    page.click(f"#keys tr[data-id='{key_id}'] button.edit")
    page.fill("#limit-credit_budget_usd", "2.5")
    page.fill("#limit-images_per_day", "40")
    page.click("#limits button[type='submit']")
    page.wait_for_selector(f"#keys tr[data-id='{key_id}'][data-budget='2.5']")
    with admin(console) as http:
        assert http.get(f"/admin/keys/{key_id}").json()["limits"] == {
            "credit_budget_usd": 2.5,
            "images_per_day": 40,
        }


def test_a_disabled_channel_is_enabled_from_the_console(page: Page, console: ServerProcess) -> None:
    with admin(console) as http:
        assert (
            http.post("/admin/channels/broken-lane/disable", json={"reason": "maintenance"}).status_code
            == 200
        )
        page.click("#nav a[href='#/channels']")
        row = "#channels tr[data-name='broken-lane']"
        page.wait_for_selector(f"{row}[data-state='disabled']")
        assert "maintenance" in (page.text_content(f"{row} .state") or "")
        listed = {c["name"]: c for c in http.get("/admin/channels").json()["data"]}
        shown = rows(page, "#channels tbody tr", ["data-name", "data-errors", "data-in-flight"])
        assert shown == [
            (name, str(sum(c["errors"].values())), str(c["in_flight"])) for name, c in listed.items()
        ]
        assert "injected fault" in (page.text_content(f"{row} .last-error") or "")
        page.click(f"{row} button.enable")
        page.wait_for_selector(f"{row}:not([data-state='disabled'])")
        assert http.get("/admin/channels/broken-lane").json()["state"] != "disabled"
        page.click(f"{row} button.reset")
        page.wait_for_timeout(200)
        assert http.get("/admin/channels/broken-lane").json()["failures_in_a_row"] == 0


def test_tasks_match_the_api_and_a_failed_one_shows_its_error(page: Page, console: ServerProcess) -> None:
    page.click("#nav a[href='#/tasks']")
    page.wait_for_selector("#tasks tbody tr[data-id]")
    columns = [
        "data-id",
        "data-status",
        "data-model",
        "data-key",
        "data-channel",
        "data-duration",
        "data-cost",
    ]
    with admin(console) as http:
        listed = http.get("/admin/tasks", params={"limit": 25}).json()["data"]
        shown = rows(page, "#tasks tbody tr", columns)
        assert [(*row[:5], number(row[5]), number(row[6])) for row in shown] == [
            (
                t["id"],
                t["status"],
                t["model"],
                t["key_id"] or "",
                t["channel"] or "",
                t["duration_seconds"],
                t["cost_usd"],
            )
            for t in listed
        ]
        failed = http.get("/admin/tasks", params={"status": "failed"}).json()["data"]
        batches = http.get("/v1/batches").json()["data"]
    assert len(failed) == 1 and failed[0]["model"] == PRO
    page.select_option("#filter-status", "failed")
    page.click("#task-filters button[type='submit']")
    page.wait_for_function("() => document.querySelectorAll('#tasks tbody tr').length === 1")
    assert rows(page, "#tasks tbody tr", ["data-id", "data-error"]) == [
        (failed[0]["id"], failed[0]["error"]["message"])
    ]
    shown_batches = rows(
        page, "#batches tbody tr", ["data-id", "data-status", "data-total", "data-completed"]
    )
    assert shown_batches == [
        (b["id"], b["status"], str(b["request_counts"]["total"]), str(b["request_counts"]["completed"]))
        for b in batches
    ]
    page.click(f"#tasks tr[data-id='{failed[0]['id']}'] td[data-label='Model']")  # the row, not its link
    page.wait_for_selector("#view-task[data-status='failed']", state="attached")
    error = failed[0]["error"]
    assert page.text_content("#task-fields dd[data-field='error']") == f"{error['code']}: {error['message']}"
    assert json.loads(page.text_content("#task-request") or "")["prompt"] == "a broken lamp"
    assert page.is_hidden("#cancel-task")


def test_a_succeeded_task_shows_its_images(page: Page, console: ServerProcess) -> None:
    with admin(console) as http:
        done = http.get("/admin/tasks", params={"status": "succeeded", "model": NANO}).json()["data"][0]
    page.goto(f"{console.url}/console#/tasks/{done['id']}")
    image = page.wait_for_selector("#task-images img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)


def test_a_phone_sized_screen_has_no_sideways_scroll(browser: Browser, console: ServerProcess) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, console)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for view, ready in (
        ("usage", "#view-usage[data-loaded]"),
        ("keys", "#view-keys[data-loaded]"),
        ("channels", "#view-channels[data-loaded]"),
        ("tasks", "#view-tasks[data-loaded]"),
    ):
        page.goto(f"{console.url}/console#/{view}")
        page.wait_for_selector(ready, state="attached")
        width = page.evaluate("() => document.scrollingElement.scrollWidth")
        assert width <= 390, f"the {view} view is {width} px wide on a 390 px screen"
        page.screenshot(path=str(ARTIFACTS / f"phone-{view}.png"), full_page=True)
    context.close()


def test_the_console_works_from_the_keyboard(browser: Browser, console: ServerProcess) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{console.url}/console")
    page.wait_for_selector("#login:not([hidden])")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "admin-key"
    page.keyboard.type(ADMIN)
    page.keyboard.press("Enter")
    page.wait_for_selector("#nav:not([hidden])")
    # Signed in, the focus is on the first view's link; Tab moves along the links.
    for _ in range(5):
        if page.evaluate("() => document.activeElement.getAttribute('href')") == "#/channels":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.getAttribute('href')") == "#/channels"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("Enter")
    page.wait_for_selector("#view-channels[data-loaded]", state="attached")
    assert page.is_visible("#channels tr[data-name='flash-lane']")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "keyboard.png"), full_page=True)
    context.close()
