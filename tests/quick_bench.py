"""``python -m bench <suites> --quick``, run from the repository's root as the bench smoke tests run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def quick_bench(out: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """What the run printed and the results it wrote to ``out``, once it has exited 0 (else the test fails
    with the end of its output)."""
    run = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout, json.loads((out / "quick.json").read_text())
