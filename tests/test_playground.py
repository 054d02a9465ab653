"""The playground at ``/``, end to end in headless Chromium (Debian's ``chromium``, driven by Playwright),
against ``pixelgate serve --emulate``: generate and see the image with the model's exact pixels, an error
shown for a size the server refuses, the pickers offering only what the chosen model supports, cancel a
slow task, and the page on a phone-sized screen. Screenshots go to ``test-artifacts/playground``.

``.ci/run`` installs Chromium; where it is missing these tests are skipped, saying so.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from conftest import MakeServer, ServerProcess, png_bytes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "playground"
FLASH = "gemini-3.1-flash-image"
PRO_4K = "gemini-3-pro-image-preview-4k"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium"
)


@pytest.fixture(scope="module")
def playground(make_server: MakeServer) -> ServerProcess:
    # Latency, so that a task is still running when the test cancels it.
    return make_server("sqlite", "--emulate", "--emulate-latency", "1.5")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser: Browser, playground: ServerProcess, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(playground.url + "/")
    page.wait_for_selector(f"#model option[value='{FLASH}']", state="attached")
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def catalog_pixels(server: ServerProcess, model: str, aspect: str, size: str) -> str:
    models = httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"]
    entry = next(m for m in models if m["id"] == model)
    pixels: str = entry["capabilities"]["output_pixels"][aspect][size]
    return pixels


def test_generate_and_see_the_image_with_its_pixels(page: Page, playground: ServerProcess) -> None:
    page.fill("#prompt", "a lighthouse at dusk")
    page.select_option("#model", FLASH)
    page.select_option("#aspect", "16:9")
    page.select_option("#size", "512")
    expected = catalog_pixels(playground, FLASH, "16:9", "512")
    # The catalog's price of a 512 image: 747 tokens x $60 per 1M image output tokens (Google's Gemini API
    # pricing for gemini-3.1-flash-image, read 2026-12-06; models.toml), then for two.
    plus = " (catalog price, plus input and thinking tokens)"
    assert page.text_content("#output") == f"Output: {expected} px, $0.04482 an image{plus}"
    page.fill("#n", "2")
    page.dispatch_event("#n", "input")
    assert page.text_content("#output") == f"Output: {expected} px, $0.04482 an image, $0.08964 for 2{plus}"
    page.fill("#n", "1")
    page.dispatch_event("#n", "input")
    page.click("#submit")
    image = page.wait_for_selector(".task[data-status='completed'] img", timeout=30_000)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image)
    size = image.evaluate("img => `${img.naturalWidth}x${img.naturalHeight}`")
    assert size == expected
    assert page.get_attribute(".task[data-status='completed'] a", "download")


def test_an_unsupported_size_shows_the_server_s_error(page: Page) -> None:
    page.fill("#prompt", "x")
    page.fill("#pixels", "0x0")
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error") == "size '0x0' has a zero side: use WxH with both sides above 0"
    assert page.query_selector(".task") is None


def test_the_pickers_offer_only_what_the_model_supports(page: Page, playground: ServerProcess) -> None:
    page.select_option("#model", PRO_4K)
    offered = page.eval_on_selector_all("#size option", "options => options.map(o => o.value)")
    aspects = page.eval_on_selector_all("#aspect option", "options => options.map(o => o.value)")
    models = httpx.get(f"{playground.url}/v1/models", timeout=10).json()["data"]
    capabilities = next(m for m in models if m["id"] == PRO_4K)["capabilities"]
    assert offered == capabilities["image_sizes"] and aspects == capabilities["aspect_ratios"]


def test_cancel_a_slow_task(page: Page) -> None:
    page.fill("#prompt", "slow")
    page.select_option("#size", "512")
    page.click("#submit")
    card = page.wait_for_selector(".task[data-state='working']")
    card.query_selector(".cancel").click()
    page.wait_for_selector(".task[data-status='cancelled']", timeout=10_000)
    assert page.query_selector(".task[data-status='cancelled'] img") is None


def test_the_api_key_is_kept_in_the_browser(page: Page) -> None:
    page.fill("#api-key", "pgk_example_secret")
    page.dispatch_event("#api-key", "change")
    page.reload()
    assert page.input_value("#api-key") == "pgk_example_secret"
    stored = page.evaluate("() => JSON.stringify(localStorage)")
    assert json.loads(stored)["pixelgate.apiKey"] == "pgk_example_secret"


def test_a_phone_sized_screen_shows_the_whole_form(browser: Browser, playground: ServerProcess) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(playground.url + "/")
    page.wait_for_selector(f"#model option[value='{FLASH}']", state="attached")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=True)
    context.close()


def drop_pngs(page: Page, count: int) -> None:
    """Drop ``count`` PNGs on the reference area, as a file manager would."""
    encoded = [base64.b64encode(png_bytes(40 + i, 30, (20 * i, 90, 160))).decode() for i in range(count)]
    transfer = page.evaluate_handle(
        """(encoded) => {
            const transfer = new DataTransfer();
            encoded.forEach((text, i) => {
                const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
                transfer.items.add(new File([bytes], `ref-${i}.png`, { type: "image/png" }));
            });
            return transfer;
        }""",
        encoded,
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def finished_task(page: Page) -> str:
    card = page.wait_for_selector(".task[data-state='done']", timeout=30_000)
    assert card is not None and card.get_attribute("data-status") == "completed", card and card.inner_text()
    task_id = card.get_attribute("data-id")
    assert task_id
    return task_id


def test_an_edit_with_a_dropped_reference_image(page: Page, playground: ServerProcess) -> None:
    page.fill("#prompt", "put this on a mug")
    page.select_option("#size", "512")
    drop_pngs(page, 1)
    page.wait_for_selector("#refs img")
    assert page.text_content("#ref-limit") == "(1 of at most 14 for this model)"
    page.click("#submit")
    task_id = finished_task(page)
    # The server received the reference: it billed one input image.
    task = httpx.get(f"{playground.url}/v1/tasks/{task_id}", timeout=10).json()
    assert task["usage"]["input_tokens_details"]["image_tokens"] > 0, task


def test_the_model_s_reference_limit_is_enforced_before_sending(page: Page) -> None:
    page.select_option("#model", "gemini-2.5-flash-image")
    drop_pngs(page, 4)
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error") == (
        "gemini-2.5-flash-image takes at most 3 reference images: ref-3.png was not added"
    )
    assert len(page.query_selector_all("#refs img")) == 3


def test_a_two_turn_edit_continues_the_conversation(page: Page, playground: ServerProcess) -> None:
    page.fill("#prompt", "a red kite")
    page.select_option("#size", "512")
    page.click("#submit")
    first = finished_task(page)
    page.click(f".task[data-id='{first}'] .continue")
    assert page.is_visible("#continuing")
    page.fill("#prompt", "make the kite blue")
    page.click("#submit")
    second = page.wait_for_selector(f".task:not([data-id='{first}'])[data-state='done']", timeout=30_000)
    assert second is not None and second.get_attribute("data-status") == "completed", (
        second and second.inner_text()
    )
    assert f"continues {first}" in (second.text_content() or "")
    second_id = second.get_attribute("data-id")
    turn = httpx.get(f"{playground.url}/v1beta/interactions/{second_id}", timeout=10).json()
    assert turn["previous_interaction_id"] == first and turn["status"] == "completed"


def test_templates_snippets_and_usage(page: Page, playground: ServerProcess) -> None:
    page.click("button[data-template='sticker']")
    assert "sticker" in page.input_value("#prompt").lower()
    page.select_option("#size", "512")
    page.click("#submit")
    task_id = finished_task(page)
    card = f".task[data-id='{task_id}']"
    curl = page.text_content(f"{card} .snippet-curl") or ""
    assert f"{playground.url}/v1/images/generations" in curl and '"resolution": "512"' in curl
    assert 'model="gemini-3.1-flash-image"' in (page.text_content(f"{card} .snippet-openai") or "")
    assert "client.models.generate_content(" in (page.text_content(f"{card} .snippet-google") or "")
    page.wait_for_function("() => document.getElementById('usage').textContent.startsWith('Usage so far: ')")
    said = page.text_content("#usage") or ""
    images = int(said.split()[3])
    assert images >= 1
    # Billed at the catalog's prices (no model is free now), shown to at least four decimals.
    assert (
        re.fullmatch(r"Usage so far: \d+ images, \$\d+\.\d{4,9}", said) and float(said.split("$")[1]) > 0
    ), said


def test_the_form_works_from_the_keyboard(page: Page) -> None:
    page.focus("#prompt")
    page.keyboard.type("a paper boat")
    page.keyboard.press("Tab")  # to the model picker
    assert page.evaluate("() => document.activeElement.id") == "model"
    page.focus("#submit")
    page.keyboard.press("Enter")
    assert finished_task(page)
