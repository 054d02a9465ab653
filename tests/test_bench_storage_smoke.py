"""``python -m bench storage --quick`` (local store, S3 on moto, presigned URLs), apart from the other
suites' quick run (``test_bench_smoke.py``), which it would double: it checks that it runs and reports, never
how fast."""

from __future__ import annotations

from pathlib import Path

from quick_bench import quick_bench


def test_the_quick_storage_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    printed, results = quick_bench(tmp_path, "storage")
    assert "The blob store" in printed and "moto" in printed
    storage = results["storage"]
    assert {row["target"] for row in storage["rows"]} == {"direct", "local", "s3", "presigned"}
    assert all(row["requests"] > 0 and not row["errors"] for row in storage["rows"]), storage["rows"]
    assert {r["vs_local"] for r in storage["ratios"]} == {"s3", "presigned"}
    assert [row["store"] for row in storage["memory"]] == ["s3"], storage["memory"]
    assert storage["s3_within_two_copies"] is not None
    assert "The blob store" in (tmp_path / "quick.md").read_text()
