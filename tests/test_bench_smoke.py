"""The benchmarks' ``--quick`` run, so that ``bench/`` keeps working as pixelgate changes. It checks what
the run reports, not how fast anything was: speed is the benchmarks' business, measured as ratios."""

from __future__ import annotations

from pathlib import Path

from quick_bench import quick_bench


def test_the_quick_benchmarks_run_and_report(tmp_path: Path) -> None:
    # Every suite but storage, which has a file of its own (test_bench_storage_smoke.py), so that the two
    # run side by side.
    suites = ["relay", "inflight", "large", "emulator", "batch", "memory"]
    _, results = quick_bench(tmp_path, *suites, "--no-litellm")
    assert results["quick"] is True and results["machine"]

    relay = results["relay"]
    targets = {row["target"] for row in relay["rows"]}
    assert targets == {"direct", "bare", "pixelgate"}, targets
    for row in relay["rows"]:
        assert row["requests"] > 0 and not row["errors"], row
    assert relay["pixelgate_tasks_persisted"] >= sum(
        r["requests"] for r in relay["rows"] if r["target"] == "pixelgate"
    )
    measured = [row for row in relay["rows"] if row["target"] in ("bare", "pixelgate")]
    assert all(row["server_cpu_ms_per_image"] > 0 for row in measured), "each gateway's CPU per image"
    verdict = relay["verdict"]
    assert set(verdict["cpu_per_image"]) == {"1k url", "1k b64_json"}, verdict
    cells = {f"1k {fmt} {clients}" for fmt in ("b64_json", "url") for clients in (1, 16)}
    assert set(verdict["cpu_over_bare"]) == cells, verdict
    assert all(ratio > 0 for ratio in verdict["cpu_over_bare"].values()), verdict
    assert verdict["throughput_vs_litellm"] == {}, "the LiteLLM targets need the full run with LiteLLM"

    inflight = results["inflight"]
    assert inflight["exactly_once"] is True, inflight
    assert inflight["completed"] == inflight["tasks"] == inflight["upstream_generations"]

    large = results["large"]["rows"]
    assert {row["case"] for row in large} == {"14-references"}
    assert all(row["requests"] > 0 and not row["errors"] for row in large), large

    emulator = results["emulator"]["rows"]
    assert [row["size"] for row in emulator] == ["512", "1K", "2K", "4K"]
    assert all(row["images_per_s"] > 0 and not row["errors"] for row in emulator), emulator

    batch = results["batch"]
    assert batch["batch_status"] == "completed" and batch["batch_completed"] == batch["lines"], batch
    assert batch["alone"]["requests"] > 0 and batch["during_batch"]["requests"] > 0, batch
    assert not batch["alone"]["errors"] and not batch["during_batch"]["errors"], batch

    memory = results["memory"]
    assert memory["together"]["ok"] == memory["together"]["requests"] == 2, memory
    assert memory["alone"]["ok"] == 1 and memory["together"]["peak_rss_mib"] > 0, memory

    table = (tmp_path / "quick.md").read_text()
    for heading in (
        "Relay overhead",
        "In flight",
        "Large payloads",
        "The emulator",
        "while a batch runs",
        "references that decode large",
    ):
        assert heading in table
