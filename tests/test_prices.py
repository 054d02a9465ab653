"""Prices as catalog data (issue 23 part 1): a task costs what the vendor would bill for it, at the prices
Google publishes (models.toml), with the usage ledger and ``GET /v1/usage`` showing the tokens by modality.

The cited figures, USD per 1M tokens (Google's Gemini Developer API and Vertex AI pricing pages, read
2026-12-06 where other pages quote or transcribe them; models.toml names every page):

- gemini-3-pro-image: input $2.00, output text and thinking $12.00, output images $120.00 ("equivalent to
  $0.134 per 1K/2K image and $0.24 per 4K image": 1120 and 2000 tokens); Batch $1.00 / $6.00 / $60.00.
- gemini-3.1-flash-image: input $0.50, output text and thinking $3.00, output images $60.00 ("$0.067 per 1K
  image": 1120 tokens); Batch half of each.
- gemini-3.1-flash-lite-image: input $0.25, output text $1.50, output images $30.00 ("$0.0336 per output
  image at 1K (1120 tokens @ $30.00 / 1M)").

Servers run the offline emulator, which reports the catalog's tokens: the prompt at about four bytes a token,
the catalog's image tokens per size, and (for the thinking models) its thoughts.
"""

from __future__ import annotations

import io
import json
import secrets
import time
from typing import Any

import httpx
import openai
import pytest

from conftest import MakeServer, ServerProcess, db_rows
from pixelgate.catalog import Prices, default_catalog
from pixelgate.catalog.validation import validate
from pixelgate.core.request import ImageRequest, Limits
from pixelgate.providers.base import Generation
from pixelgate.providers.emulator import EmulatorProvider

ADMIN = "pga_" + secrets.token_urlsafe(32)
PRO = "gemini-3-pro-image"
PRO_PREVIEW = "gemini-3-pro-image-preview"  # Google's published id of PRO: the same price
FLASH = "gemini-3.1-flash-image"
LITE = "gemini-3.1-flash-lite-image"
NANO = "gemini-2.5-flash-image"  # served only by a channel that always fails, on the main server
PROMPT = "a lighthouse at dusk"  # 20 bytes: 5 input text tokens by the emulator's count

# USD per 1M tokens: (input, output text and thinking, output images), as cited above.
RATES = {
    PRO: (2.00, 12.00, 120.00),
    FLASH: (0.50, 3.00, 60.00),
    LITE: (0.25, 1.50, 30.00),
}
BATCH_RATES = {PRO: (1.00, 6.00, 60.00)}
# The price of one output image (its tokens x the image rate), as Google states it.
PRO_4K_IMAGE = 0.24  # 2000 tokens x $120 / 1M
PRO_4K_BATCH_IMAGE = 0.12  # 2000 tokens x $60 / 1M
FLASH_1K_IMAGE = 0.0672  # 1120 tokens x $60 / 1M ("$0.067")
LITE_1K_IMAGE = 0.0336  # 1120 tokens x $30 / 1M

CHANNELS = f"""
[routing]
max_attempts = 1
failure_threshold = 1000

[[channels]]
name = "broken"
provider = "emulator"
models = ["{NANO}"]
priority = 10
options = {{ faults = "503:1" }}
"""


@pytest.fixture(scope="module")
def server(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """Keys on, no [prices]: every model at the catalog's prices; NANO always fails (503)."""
    path = tmp_path_factory.mktemp("prices") / "pixelgate.toml"
    path.write_text(CHANNELS)
    return make_server(
        "sqlite", "--emulate", "--auth", "--config", str(path), env={"PIXELGATE_ADMIN_KEY": ADMIN}
    )


@pytest.fixture(scope="module")
def overridden(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """[prices] sets PRO at a flat $0.50 an image (its aliases too), and [batch_prices] its batch lines at
    $0.20; the other models keep the catalog's prices."""
    path = tmp_path_factory.mktemp("overridden") / "pixelgate.toml"
    path.write_text(f'[prices]\n"{PRO}" = 0.5\n\n[batch_prices]\n"{PRO}" = 0.2\n')
    return make_server("sqlite", "--emulate", "--config", str(path))


# --- helpers ------------------------------------------------------------------------------------------------


def new_key(server: ServerProcess, **fields: Any) -> dict[str, Any]:
    name = f"prices-{secrets.token_hex(4)}"
    response = httpx.post(
        f"{server.url}/admin/keys",
        json={"name": name, **fields},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def generate(server: ServerProcess, key: str | None, model: str, size: str, **body: Any) -> httpx.Response:
    """A synchronous OpenAI Images request for a 1:1 image of ``size``."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    payload = {"model": model, "prompt": PROMPT, "size": "1:1", "resolution": size, "async": False}
    return httpx.post(
        f"{server.url}/v1/images/generations",
        json={**payload, "response_format": "b64_json", **body},
        headers=headers,
        timeout=60,
    )


def usage(server: ServerProcess, key: str | None, group_by: str = "model") -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(f"{server.url}/v1/usage", params={"group_by": group_by}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def vendor_bill(row: dict[str, Any], rates: tuple[float, float, float]) -> float:
    """What the vendor bills for a usage row's tokens: input at the input rate, output text and thoughts at
    the text rate, output images at the image rate."""
    input_rate, text_rate, image_rate = rates
    made = row["output_tokens_details"]
    return (
        row["input_tokens"] * input_rate
        + (made["text_tokens"] + made["thought_tokens"]) * text_rate
        + made["image_tokens"] * image_rate
    ) / 1_000_000


def one_row(report: dict[str, Any], model: str) -> dict[str, Any]:
    rows = [row for row in report["data"] if row["model"] == model]
    assert len(rows) == 1, report
    return rows[0]


# --- the catalog ---------------------------------------------------------------------------------------------


def test_an_image_s_price_is_its_size_s_tokens_at_the_image_rate() -> None:
    catalog, prices = default_catalog(), Prices()
    pro, flash = catalog.get(PRO), catalog.get(FLASH)
    assert prices.price_of(pro, image_size="4K") == PRO_4K_IMAGE
    assert prices.price_of(pro, image_size="1K") == prices.price_of(pro, image_size="2K") == 0.1344
    assert prices.price_of(pro, image_size="4K", batch=True) == PRO_4K_BATCH_IMAGE
    assert prices.price_of(flash, image_size="1K") == FLASH_1K_IMAGE
    # Aliases and -preview ids share their model's price.
    for alias in (PRO_PREVIEW, "gemini-3-pro-image-preview-4k"):
        assert prices.price_of(catalog.get(alias), image_size="4K") == PRO_4K_IMAGE, alias


async def test_the_admission_estimate_is_what_a_plain_generation_is_billed() -> None:
    """The estimate reserved when a task is accepted equals its final cost where everything is known
    beforehand: a prompt, input images, n images, no text answer, no thinking (Lite); a thinking model's
    thoughts are billed on top, at the text rate."""
    prices, emulator = Prices(), EmulatorProvider()
    request, spec = validate(
        ImageRequest(model=LITE, prompt=PROMPT, n=3, aspect_ratio="16:9"), default_catalog(), Limits()
    )
    made = [await emulator.generate(Generation(request=request, spec=spec, index=i)) for i in range(3)]
    total = made[0].usage + made[1].usage + made[2].usage
    estimate = prices.cost_of(spec, request)
    assert estimate == prices.cost(spec, total, 3)
    assert estimate == pytest.approx(3 * (LITE_1K_IMAGE + 5 * 0.25 / 1e6), abs=1e-12)
    assert prices.cost_of(spec, request, batch=True) == prices.cost(spec, total, 3, batch=True)

    request, spec = validate(
        ImageRequest(model=PRO, prompt=PROMPT, image_size="4K"), default_catalog(), Limits()
    )
    result = await emulator.generate(Generation(request=request, spec=spec))
    thoughts = result.usage.thought_tokens
    assert thoughts > 0
    assert prices.cost_of(spec, request) == pytest.approx(PRO_4K_IMAGE + 5 * 2.00 / 1e6, abs=1e-12)
    assert prices.cost(spec, result.usage, 1) == pytest.approx(
        PRO_4K_IMAGE + (5 * 2.00 + thoughts * 12.00) / 1e6, abs=1e-12
    )


# --- billed at the cited prices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "size", "image_tokens", "image_price"),
    [(PRO, "4K", 2000, PRO_4K_IMAGE), (FLASH, "1K", 1120, FLASH_1K_IMAGE)],
)
def test_an_image_is_billed_at_the_published_prices(
    server: ServerProcess, model: str, size: str, image_tokens: int, image_price: float
) -> None:
    key = new_key(server)["key"]
    answer = generate(server, key, model, size)
    assert answer.status_code == 200, answer.text[:1000]

    row = one_row(usage(server, key), model)
    assert (row["tasks"], row["images"]) == (1, 1), row
    made, given = row["output_tokens_details"], row["input_tokens_details"]
    assert made["image_tokens"] == image_tokens and made["text_tokens"] == 0, row
    assert given == {"text_tokens": 5, "image_tokens": 0}, row
    assert made["thought_tokens"] > 0, "both models think (Flash at its default, minimal)"
    assert row["output_tokens"] == image_tokens + made["thought_tokens"]
    assert row["total_tokens"] == row["input_tokens"] + row["output_tokens"]
    # The image at Google's price, the prompt at the input rate, the thoughts at the text-output rate.
    input_rate, text_rate, _ = RATES[model]
    expected = image_price + (5 * input_rate + made["thought_tokens"] * text_rate) / 1e6
    assert row["cost_usd"] == pytest.approx(expected, abs=1e-12)
    assert row["cost_usd"] == pytest.approx(vendor_bill(row, RATES[model]), abs=1e-12)
    # The answer itself reports the same tokens.
    reported = answer.json()["usage"]
    assert reported["output_tokens_details"]["image_tokens"] == image_tokens
    assert reported["total_tokens"] == row["total_tokens"]


def test_a_4k_pro_image_costs_more_than_a_1k_one(server: ServerProcess) -> None:
    """Through Google's -preview id, which shares its model's price: $0.1344 for 1K (1120 tokens), $0.24
    for 4K (2000 tokens), each with its prompt and thoughts; the ledger keeps each task's tokens."""
    made = new_key(server)
    for size in ("1K", "4K"):
        assert generate(server, made["key"], PRO_PREVIEW, size).status_code == 200
    tasks = db_rows(
        server,
        "SELECT output_image_tokens, input_text_tokens, thought_tokens, cost_usd FROM usage "
        f"WHERE key_id = '{made['id']}' ORDER BY created_at",
    )
    assert [image_tokens for image_tokens, *_ in tasks] == [1120, 2000]
    for (_, prompt, thoughts, cost), image_price in zip(tasks, (0.1344, 0.24), strict=True):
        assert cost == pytest.approx(image_price + (prompt * 2.00 + thoughts * 12.00) / 1e6, abs=1e-12)
    assert tasks[1][3] > tasks[0][3]
    row = one_row(usage(server, made["key"]), PRO_PREVIEW)  # billed under the id it was asked by
    assert row["cost_usd"] == pytest.approx(tasks[0][3] + tasks[1][3], abs=1e-12)


def upload(client: openai.OpenAI, lines: list[dict[str, Any]]) -> str:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return client.files.create(file=("batch.jsonl", io.BytesIO(data)), purpose="batch").id


def run_batch(server: ServerProcess, key: str | None, lines: list[dict[str, Any]]) -> Any:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key or "unused", max_retries=0)
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/images/generations", completion_window="24h"
    )
    deadline = time.monotonic() + 60
    while (batch := client.batches.retrieve(batch.id)).status not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)
    assert batch.status == "completed", batch
    return batch


def batch_line(custom_id: str, model: str, size: str) -> dict[str, Any]:
    body = {
        "model": model,
        "prompt": PROMPT,
        "size": "1:1",
        "resolution": size,
        "response_format": "b64_json",
    }
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/images/generations", "body": body}


def test_a_batch_line_is_billed_at_the_batch_price(server: ServerProcess) -> None:
    key = new_key(server)["key"]
    done = run_batch(server, key, [batch_line("one", PRO, "4K")])
    assert done.request_counts.completed == 1

    row = one_row(usage(server, key, "model,dialect"), PRO)
    assert row["dialect"] == "openai-batch" and row["images"] == 1, row
    made = row["output_tokens_details"]
    assert made["image_tokens"] == 2000
    # Google's Batch API: half of each rate, $0.12 for the 4K image.
    expected = PRO_4K_BATCH_IMAGE + (row["input_tokens"] * 1.00 + made["thought_tokens"] * 6.00) / 1e6
    assert row["cost_usd"] == pytest.approx(expected, abs=1e-12)
    assert row["cost_usd"] == pytest.approx(vendor_bill(row, BATCH_RATES[PRO]), abs=1e-12)
    assert done.model_extra["usage_usd"] == pytest.approx(row["cost_usd"], abs=1e-12)


# --- budgets -------------------------------------------------------------------------------------------------


def test_a_budget_of_one_image_s_price_buys_one_image(server: ServerProcess) -> None:
    # One 1K Lite image for this prompt: 1120 tokens x $30 / 1M and 5 prompt tokens x $0.25 / 1M.
    one_image = LITE_1K_IMAGE + 5 * 0.25 / 1e6
    made = new_key(server, limits={"credit_budget_usd": one_image})
    first = generate(server, made["key"], LITE, "1K")
    assert first.status_code == 200, first.text[:1000]
    assert usage(server, made["key"])["total"]["cost_usd"] == pytest.approx(one_image, abs=1e-12)

    second = generate(server, made["key"], LITE, "1K")
    assert second.status_code == 402, second.text[:1000]
    error = second.json()["error"]
    assert (error["code"], error["param"]) == ("insufficient_quota", "credit_budget_usd"), error
    assert usage(server, made["key"])["total"]["images"] == 1


def test_a_budget_just_under_one_image_s_price_buys_nothing(server: ServerProcess) -> None:
    made = new_key(server, limits={"credit_budget_usd": PRO_4K_IMAGE})  # the image, but not its prompt
    refused = generate(server, made["key"], PRO, "4K")
    assert refused.status_code == 402, refused.text[:1000]
    assert "would cost $0.2400" in refused.json()["error"]["message"]


# --- [prices] -------------------------------------------------------------------------------------------------


def test_the_channel_file_s_prices_override_the_catalog_s(overridden: ServerProcess) -> None:
    for model in (PRO, PRO_PREVIEW):
        assert generate(overridden, None, model, "4K").status_code == 200
    assert generate(overridden, None, FLASH, "1K").status_code == 200
    run_batch(overridden, None, [batch_line("a", PRO, "1K"), batch_line("b", PRO, "4K")])

    rows = {(row["model"], row["dialect"]): row for row in usage(overridden, None, "model,dialect")["data"]}
    # A flat $0.50 an image, whatever its size and tokens, for the model and its alias; $0.20 in a batch.
    assert rows[(PRO, "openai")]["cost_usd"] == 0.5
    assert rows[(PRO_PREVIEW, "openai")]["cost_usd"] == 0.5
    assert rows[(PRO, "openai-batch")]["cost_usd"] == pytest.approx(2 * 0.2, abs=1e-12)
    # A model without an override keeps the catalog's price.
    flash = rows[(FLASH, "openai")]
    assert flash["cost_usd"] == pytest.approx(vendor_bill(flash, RATES[FLASH]), abs=1e-12)
    assert flash["cost_usd"] > FLASH_1K_IMAGE


# --- failures --------------------------------------------------------------------------------------------------


def test_a_failed_task_costs_nothing(server: ServerProcess) -> None:
    made = new_key(server, limits={"credit_budget_usd": 0.05})
    for _ in range(3):  # more than the budget would allow if a failure were billed ($0.0387 an image)
        failed = generate(server, made["key"], NANO, "1K")
        assert failed.status_code == 502, failed.text[:1000]
    report = usage(server, made["key"])
    assert report["data"] == [] and report["total"]["cost_usd"] == 0.0, report
    rows = db_rows(server, f"SELECT state, images, cost_usd FROM usage WHERE key_id = '{made['id']}'")
    assert rows == [("released", 0, 0.0)] * 3, rows
    # ...and the budget is all still there.
    assert generate(server, made["key"], LITE, "1K").status_code == 200


def test_the_models_list_shows_the_catalog_prices(server: ServerProcess) -> None:
    """What the playground shows for the size picked (tests/test_playground.py drives the page)."""
    models = httpx.get(f"{server.url}/v1/models", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    entries = {m["id"]: m["capabilities"] for m in models.json()["data"]}
    for model in (PRO, PRO_PREVIEW):
        pricing = entries[model]["pricing"]
        assert pricing["per_image_usd"] == {"1K": 0.1344, "2K": 0.1344, "4K": PRO_4K_IMAGE}, model
        assert pricing["batch_per_image_usd"]["4K"] == PRO_4K_BATCH_IMAGE, model
        assert pricing["usd_per_million_tokens"] == dict(
            zip(("input", "output_text", "output_image"), RATES[PRO], strict=True)
        )
        assert pricing["source"] == "https://ai.google.dev/gemini-api/docs/pricing"
    assert entries[FLASH]["pricing"]["per_image_usd"]["1K"] == FLASH_1K_IMAGE
    assert entries[LITE]["pricing"]["per_image_usd"] == {"1K": LITE_1K_IMAGE}
