"""``/metrics`` scraped after a known workload, and read with prometheus_client's own parser: requests by
dialect and status, tasks by model and outcome, task latency by model and channel, queue depth, upstream
errors by kind, retries, cooldowns, and the credits reserved and settled."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import MakeServer, ServerProcess

FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"
FLAKY = f"""
[routing]
max_attempts = 3
backoff_seconds = 0.01
failure_threshold = 2
cooldown_seconds = 60
max_wait_seconds = 1

[prices]
"{FLASH}" = 0.04

[[channels]]
name = "steady"
provider = "emulator"
models = ["{FLASH}"]

[[channels]]
name = "flaky"
provider = "emulator"
models = ["{PRO}"]
options = {{ faults = "503:1" }}
"""


def scrape(server: ServerProcess, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{server.url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def workload(make_server: MakeServer, tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    config = tmp_path_factory.mktemp("metrics") / "pixelgate.toml"
    config.write_text(FLAKY)
    server = make_server("sqlite", "--config", str(config))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(3):
            assert (
                client.post("/v1/images/generations", json={"model": FLASH, "prompt": "a"}).status_code == 200
            )
        assert (
            client.post(
                "/v1/images/generations", json={"model": FLASH, "prompt": "a", "size": "8K"}
            ).status_code
            == 400
        )
        gemini = client.post(
            f"/v1beta/models/{FLASH}:generateContent", json={"contents": [{"parts": [{"text": "b"}]}]}
        )
        assert gemini.status_code == 200, gemini.text
        # Two attempts fail (503) and trip the cooldown: the image is not waited for, it fails at once.
        refused = client.post("/v1/images/generations", json={"model": PRO, "prompt": "c"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "channels_unavailable"
        assert 55 <= int(refused.headers["retry-after"]) <= 60
    return server


def test_requests_tasks_and_latency(workload: ServerProcess) -> None:
    samples = scrape(workload)
    assert value(samples, "pixelgate_requests_total", dialect="openai", status="200") == 3
    assert value(samples, "pixelgate_requests_total", dialect="openai", status="400") == 1
    assert value(samples, "pixelgate_requests_total", dialect="openai", status="503") == 1
    assert value(samples, "pixelgate_requests_total", dialect="gemini", status="200") == 1
    assert value(samples, "pixelgate_tasks_finished_total", model=FLASH, outcome="completed") == 4
    assert value(samples, "pixelgate_tasks_finished_total", model=PRO, outcome="failed") == 1
    assert value(samples, "pixelgate_task_duration_seconds_count", model=FLASH, channel="steady") == 4
    assert value(samples, "pixelgate_queue_depth", status="queued") == 0
    assert value(samples, "pixelgate_queue_depth", status="running") == 0


def test_upstream_errors_retries_and_cooldowns(workload: ServerProcess) -> None:
    samples = scrape(workload)
    # Two attempts failed (503), the second tripped the cooldown, and the third would have waited 60 s.
    assert value(samples, "pixelgate_upstream_errors_total", channel="flaky", kind="upstream_http_503") == 2
    assert value(samples, "pixelgate_retries_total", channel="flaky") == 1
    assert value(samples, "pixelgate_cooldowns_total", channel="flaky") == 1


def test_a_gauge_per_channel_state(workload: ServerProcess) -> None:
    samples = scrape(workload)
    states = ("ready", "rate_limited", "cooling_down", "half_open", "probing", "disabled")
    for channel, now in (("flaky", "cooling_down"), ("steady", "ready")):
        for state in states:
            assert value(samples, "pixelgate_channel_state", channel=channel, state=state) == (state == now)
        assert value(samples, "pixelgate_channel_in_flight", channel=channel) == 0


def test_credits_reserved_and_settled(workload: ServerProcess) -> None:
    samples = scrape(workload)
    # Four FLASH images at $0.04 and one PRO image reserved; only the FLASH ones settled. The PRO image is
    # reserved at the catalog's price (Google's Gemini API pricing, read 2026-12-06; models.toml): a 1K
    # image is 1120 tokens x $120 per 1M = $0.1344, and its 1-token prompt ("c") $2 per 1M.
    assert value(samples, "pixelgate_credits_reserved_usd_total") == pytest.approx(0.16 + 0.1344 + 0.000002)
    assert value(samples, "pixelgate_credits_settled_usd_total") == pytest.approx(0.16)


def test_queue_depth_counts_waiting_tasks(make_server: MakeServer) -> None:
    server = make_server("sqlite", "--emulate", "--no-workers")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(2):
            created = client.post(
                "/v1/images/generations", json={"model": FLASH, "prompt": "x", "async": True}
            )
            assert created.status_code == 200, created.text
    assert value(scrape(server), "pixelgate_queue_depth", status="queued") == 2


def test_with_keys_on_the_page_needs_the_admin_key(make_server: MakeServer, tmp_path: Path) -> None:
    admin = "pga_metrics_admin_key_0123456789abcdef"
    server = make_server("sqlite", "--emulate", "--auth", env={"PIXELGATE_ADMIN_KEY": admin})
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 401
    assert "pixelgate_requests_total" in str(scrape(server, authorization=f"Bearer {admin}"))
