"""The results as Markdown tables (printed, and kept beside the JSON for the README) and as plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def tables(results: dict[str, Any]) -> str:
    suites = ("relay", "inflight", "large", "emulator", "batch", "memory", "storage")
    dates = sorted({results[s]["date"] for s in suites if s in results})
    out = [
        f"Run {' to '.join(dict.fromkeys([dates[0], dates[-1]])) if dates else '?'} on {results['machine']}"
        f"{' (--quick)' if results['quick'] else ''}.",
        "",
    ]
    if "relay" in results:
        relay = results["relay"]
        out += ["**Relay overhead** (added latency = the gateway's percentile minus the direct call's)", ""]
        out.append(
            _table(
                [
                    "image",
                    "format",
                    "clients",
                    "target",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "added p50",
                    "added p99",
                    "CPU ms/image",
                    "peak MiB",
                    "errors",
                ],
                [
                    [
                        r["image"],
                        r["response_format"],
                        r["clients"],
                        r["target"],
                        r["throughput_rps"],
                        r["p50_ms"],
                        r["p99_ms"],
                        r["added_p50_ms"],
                        r["added_p99_ms"],
                        r.get("server_cpu_ms_per_image", ""),
                        r["peak_rss_mib"],
                        sum(r["errors"].values()) or "",
                    ]
                    for r in relay["rows"]
                ],
            )
        )
        out += ["", *relay_verdict(relay)]
        out.append("")
    if "inflight" in results:
        r = results["inflight"]
        out += ["**In flight**", ""]
        out.append(
            _table(
                [
                    "tasks",
                    "upstream s/image",
                    "channel concurrency",
                    "submitted/s",
                    "polls/s",
                    "done in s",
                    "ideal s",
                    "completed",
                    "upstream calls",
                    "peak MiB",
                ],
                [
                    [
                        f"{r['tasks']:,}",
                        r["latency"],
                        r["concurrency"],
                        r["submissions_per_s"],
                        r["polls_per_s"],
                        r["makespan_s"],
                        r["ideal_makespan_s"],
                        f"{r['completed']:,}",
                        f"{r['upstream_generations']:,}",
                        r["peak_rss_mib"],
                    ]
                ],
            )
        )
        out.append("")
    if "large" in results:
        out += ["**Large payloads** (memory per request in flight, in copies of the payload)", ""]
        out.append(
            _table(
                [
                    "case",
                    "clients",
                    "target",
                    "p50 ms",
                    "added p50 ms",
                    "payload MiB",
                    "MiB per request",
                    "copies",
                    "errors",
                ],
                [
                    [
                        r["case"],
                        r["clients"],
                        r["target"],
                        r["p50_ms"],
                        r["added_p50_ms"],
                        r["payload_mib"],
                        r.get("memory_per_request_mib"),
                        r.get("payload_copies"),
                        sum(r["errors"].values()) or "",
                    ]
                    for r in results["large"]["rows"]
                ],
            )
        )
        out.append("")
    if "emulator" in results:
        out += ["**The emulator** (baseline: Pillow encoding the same PNG in one process)", ""]
        out.append(
            _table(
                ["size", "pixels", "images/s", "p50 ms", "bare PNG encodes/s", "ratio"],
                [
                    [
                        r["size"],
                        r["pixels"],
                        r["images_per_s"],
                        r["p50_ms"],
                        r["baseline_png_encodes_per_s"],
                        r["ratio_to_baseline"],
                    ]
                    for r in results["emulator"]["rows"]
                ],
            )
        )
        out.append("")
    if "batch" in results:
        b = results["batch"]
        out += [
            f"**Interactive latency while a batch runs** ({b['interactive_clients']} interactive clients, "
            f"a batch of {b['lines']} lines, one channel of {b['channel']})",
            "",
        ]
        out.append(
            _table(
                ["", "p50 ms", "p99 ms", "req/s"],
                [
                    [
                        "alone (baseline)",
                        b["alone"]["p50_ms"],
                        b["alone"]["p99_ms"],
                        b["alone"]["throughput_rps"],
                    ],
                    [
                        "during the batch",
                        b["during_batch"]["p50_ms"],
                        b["during_batch"]["p99_ms"],
                        b["during_batch"]["throughput_rps"],
                    ],
                    ["ratio", b["p50_ratio"], b["p99_ratio"], ""],
                ],
            )
        )
        out += [
            "",
            f"The batch ran {b['batch_lines_per_s']} lines/s, {b['batch_share_of_spare_capacity']} of the "
            f"capacity left to it, and ended {b['batch_status']}.",
            "",
        ]
    if "memory" in results:
        m = results["memory"]
        out += [
            f"**Memory under references that decode large** ({m['references_per_request']} PNGs of "
            f"{m['side']}x{m['side']}, {m['reference_kib']} KiB each; "
            f"{m['decoded_if_all_at_once_mib']} MiB if all were decoded at once)",
            "",
        ]
        out.append(
            _table(
                [
                    "",
                    "requests",
                    "answered 200",
                    "seconds",
                    "server CPU s",
                    "idle MiB",
                    "peak MiB",
                    "growth MiB",
                ],
                [
                    [
                        name,
                        r["requests"],
                        r["ok"],
                        r["seconds"],
                        r["idle_rss_mib"],
                        r["peak_rss_mib"],
                        r["growth_mib"],
                    ]
                    for name, r in (("alone (baseline)", m["alone"]), ("together", m["together"]))
                ]
                + [["growth ratio", "", "", "", "", "", "", m["growth_ratio_to_alone"]]],
            )
        )
        out.append("")
    if "storage" in results:
        out += storage_tables(results["storage"])
    return "\n".join(out)


def relay_verdict(relay: dict[str, Any]) -> list[str]:
    """Issue 24's targets, each as measured and whether it was met."""
    verdict = relay["verdict"]

    def met(ok: bool) -> str:
        return "met" if ok else "not met"

    lines = [
        f"- pixelgate CPU per image, {kind}: at most {v['worst_ms']} ms (target {v['target_ms']:g}: {met(v['met'])})"
        for kind, v in verdict.get("cpu_per_image", {}).items()
    ]
    if ratios := verdict.get("cpu_over_bare"):
        lines.append(
            "- pixelgate CPU per image as a multiple of the bare gateway's (the least code that relays and "
            "stores each image, `bench/bare.py`): "
            + ", ".join(f"{cell} clients {ratio}x" for cell, ratio in ratios.items())
        )
    lines += [
        f"- throughput against LiteLLM, 1K {cell} clients: {v['ratio']}x (target 2x: {met(v['met'])})"
        for cell, v in verdict.get("throughput_vs_litellm", {}).items()
    ]
    lines += [
        f"- added p50 at one client, 1K {fmt}: {v['added_p50_ms']} ms (target 5 ms: {met(v['met'])})"
        for fmt, v in verdict.get("added_p50_one_client", {}).items()
    ]
    lines.append(
        f"- pixelgate persisted {relay['pixelgate_tasks_persisted']:,} tasks; LiteLLM persists nothing."
    )
    return lines


def storage_tables(s: dict[str, Any]) -> list[str]:
    out = [
        "**The blob store** (pixelgate with its images in a folder, in an S3 bucket, and in the bucket with "
        "presigned URLs; a `url` answer includes the client's download of the URL; added p50 = the "
        f"gateway's p50 minus the direct call's; CPU per image from /proc). Note: {s['note']}.",
        "",
        _table(
            [
                "image",
                "format",
                "clients",
                "vs local",
                "req/s ratio",
                "added p50 ratio",
                "CPU ratio",
                "CPU ratio with moto",
            ],
            [
                [
                    r["image"],
                    r["response_format"],
                    r["clients"],
                    f"{r['vs_local']}/local",
                    r["throughput_ratio"],
                    r["added_p50_ratio"],
                    r["server_cpu_ratio"],
                    r["server_and_moto_cpu_ratio"],
                ]
                for r in s["ratios"]
            ],
        ),
        "",
        _table(
            [
                "image",
                "format",
                "clients",
                "target",
                "req/s",
                "p50 ms",
                "added p50",
                "CPU ms/image",
                "moto CPU ms/image",
                "errors",
            ],
            [
                [
                    r["image"],
                    r["response_format"],
                    r["clients"],
                    r["target"],
                    r["throughput_rps"],
                    r["p50_ms"],
                    r["added_p50_ms"],
                    r["server_cpu_ms_per_image"],
                    r["moto_cpu_ms_per_image"],
                    sum(r["errors"].values()) or "",
                ]
                for r in s["rows"]
            ],
        ),
        "",
    ]
    if s["memory"]:
        within = s["s3_within_two_copies"]
        out += [
            "Peak memory per 4K result in flight (a fresh server per line; growth over its idle level "
            f"divided by the clients). With the S3 store: {'within' if within else 'NOT within'} two copies.",
            "",
            _table(
                [
                    "store",
                    "format",
                    "clients",
                    "payload MiB",
                    "idle MiB",
                    "peak MiB",
                    "MiB per result",
                    "copies",
                    "errors",
                ],
                [
                    [
                        r["store"],
                        r["response_format"],
                        r["clients"],
                        r["payload_mib"],
                        r["idle_rss_mib"],
                        r["peak_rss_mib"],
                        r["memory_per_request_mib"],
                        r["payload_copies"],
                        sum(r["errors"].values()) or "",
                    ]
                    for r in s["memory"]
                ],
            ),
            "",
        ]
    return out


def plots(results: dict[str, Any], out: Path, name: str) -> None:
    """Latency by concurrency for each relay target; memory is in the tables. Skipped without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    if "relay" not in results:
        return
    rows = results["relay"]["rows"]
    combos = sorted({(r["image"], r["response_format"]) for r in rows})
    figure, axes = plt.subplots(1, len(combos), figsize=(5 * len(combos), 4), squeeze=False)
    for axis, (image, response_format) in zip(axes[0], combos, strict=True):
        for target in dict.fromkeys(r["target"] for r in rows):
            cells = [
                r
                for r in rows
                if (r["image"], r["response_format"], r["target"]) == (image, response_format, target)
            ]
            clients = [r["clients"] for r in cells]
            axis.plot(clients, [r["p50_ms"] for r in cells], marker="o", label=f"{target} p50")
            axis.plot(
                clients, [r["p99_ms"] for r in cells], marker="x", linestyle="--", label=f"{target} p99"
            )
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel("latency (ms)")
        axis.set_title(f"relay, {image} PNG, {response_format}")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / f"{name}-relay-latency.png", dpi=110)
    plt.close(figure)
