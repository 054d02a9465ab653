"""pixelgate's benchmarks: ``python -m bench [relay] [inflight] [large] [emulator] [batch] [memory] [storage] [--quick]``.

Prints a table per benchmark and writes the figures to ``bench/results/<name>.json`` (``--out``), with
plots where a picture helps when matplotlib is installed. Every figure is a ratio against a baseline run in
the same invocation. LiteLLM runs from a virtual environment of its own (``--litellm-venv``, made on first
use) so that its pinned dependencies never meet pixelgate's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import batch, emulator, inflight, large, memory, relay, report, storage
from bench.common import ROOT, machine
from bench.litellm_proxy import DEFAULT_VENV, ensure_litellm, has_litellm

SUITES = ("relay", "inflight", "large", "emulator", "batch", "memory", "storage")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "suites", nargs="*", metavar="SUITE", help=f"any of {', '.join(SUITES)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute in all")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where results go")
    parser.add_argument("--no-litellm", action="store_true", help="compare with the direct call only")
    parser.add_argument("--litellm-venv", type=Path, default=DEFAULT_VENV, help="LiteLLM's own venv")
    args = parser.parse_args(argv)
    suites = args.suites or list(SUITES)
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(SUITES)}")
    args.out.mkdir(parents=True, exist_ok=True)

    litellm_exe = None
    if "relay" in suites and not args.no_litellm:
        if args.quick and not has_litellm(args.litellm_venv):
            # Installing it takes about a minute, the whole budget of a quick run.
            print(
                f"note: --quick without LiteLLM (no LiteLLM venv at {args.litellm_venv}; a full run makes it)"
            )
        else:
            litellm_exe = ensure_litellm(args.litellm_venv)

    name = "quick" if args.quick else "latest"
    path = args.out / f"{name}.json"
    # A run of some suites updates their figures and keeps the others' (each suite says when it ran).
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    results.update(machine=machine(), quick=args.quick)
    with tempfile.TemporaryDirectory(prefix="pixelgate-bench-") as tmp:
        workdir = Path(tmp)
        for suite in suites:
            print(f"{suite}:", flush=True)
            started = time.perf_counter()
            if suite == "relay":
                results[suite] = relay.run(workdir, quick=args.quick, litellm_exe=litellm_exe)
            elif suite == "inflight":
                results[suite] = inflight.run(workdir, quick=args.quick)
            elif suite == "large":
                results[suite] = large.run(workdir, quick=args.quick)
            elif suite == "emulator":
                results[suite] = emulator.run(workdir, quick=args.quick)
            elif suite == "memory":
                results[suite] = memory.run(workdir, quick=args.quick)
            elif suite == "storage":
                results[suite] = storage.run(workdir, quick=args.quick)
            else:
                results[suite] = batch.run(workdir, quick=args.quick)
            results[suite]["seconds"] = round(time.perf_counter() - started, 1)
            results[suite]["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            results[suite]["machine"] = machine()  # the file's "machine" is its latest run's
            path.write_text(json.dumps(results, indent=2) + "\n")  # kept as each suite ends
    markdown = report.tables(results)
    (args.out / f"{name}.md").write_text(markdown)
    print(markdown)
    report.plots(results, args.out, name)
    print(f"figures written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
