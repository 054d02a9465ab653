"""``python -m bench storage --quick`` (local store, S3 on moto, presigned URLs), apart from the other
suites' quick run (``test_bench_smoke.py``), which it would double: it checks that it runs and reports, never
how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_quick_storage_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "storage", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "The blob store" in run.stdout and "moto" in run.stdout
    storage = json.loads((tmp_path / "quick.json").read_text())["storage"]
    assert {row["target"] for row in storage["rows"]} == {"direct", "local", "s3", "presigned"}
    assert all(row["requests"] > 0 and not row["errors"] for row in storage["rows"]), storage["rows"]
    assert {r["vs_local"] for r in storage["ratios"]} == {"s3", "presigned"}
    assert [row["store"] for row in storage["memory"]] == ["s3"], storage["memory"]
    assert storage["s3_within_two_copies"] is not None
    assert "The blob store" in (tmp_path / "quick.md").read_text()
