"""`python -m bench` (`make bench`): run the benchmarks, print the table, write the JSON file.

    python -m bench                          every benchmark
    python -m bench training cli-latency     the ones named; a first word names a group (training: both)
    python -m bench --quick                  a smoke run: tiny slices and few steps, figures meaningless
    python -m bench --strict                 exit status 1 when a figure misses its target (never in CI)
    python -m bench --output FILE            the JSON file (default bench/results/latest.json)

A benchmark that fails (an exception, not a missed target) is reported, the others still run, and
the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import cli_latency, evaluation, gpu, precision, publish, threads, training
from bench.common import RESULTS, prepare_environment, spawn

BENCHMARKS = {name: module.__name__ for module in (training, evaluation, threads, precision, cli_latency, publish, gpu) for name in module.BENCHMARKS}
console = Console()
if not console.is_terminal:  # a log file or a pipe: no reason to wrap the table at 80 columns
    console.width = 180


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description="hubcard's benchmarks (see bench/README.md).")
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks or groups to run (default: all): {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny slices and few steps")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a figure misses its target")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json", help="the JSON file to write")
    arguments = parser.parse_args()
    names = select(arguments.names, parser)
    prepare_environment()

    outcomes = [run(name, arguments.quick) for name in names]
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "quick": arguments.quick,
        "machine": machine(),
        "benchmarks": outcomes,
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    console.print(table(outcomes, results["machine"]))
    console.print(f"Written to {arguments.output}")
    failed = [outcome["benchmark"] for outcome in outcomes if outcome.get("error")]
    missed = [figure["name"] for outcome in outcomes for figure in outcome["figures"] if figure["passed"] is False]
    if failed:
        console.print(f"[red]Failed: {', '.join(failed)}")
    if missed:
        console.print(f"[{'red' if arguments.strict else 'yellow'}]Missed targets: {'; '.join(missed)}")
    return 1 if failed or (arguments.strict and missed) else 0


def select(requested: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """The benchmarks named, in the table's order; a group name (`training`) names all `training-*`."""
    chosen = [name for name in BENCHMARKS if not requested or any(name == r or name.startswith(f"{r}-") for r in requested)]
    unknown = [r for r in requested if not any(name == r or name.startswith(f"{r}-") for name in BENCHMARKS)]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    return chosen


def run(name: str, quick: bool) -> dict[str, Any]:
    """One benchmark in a process of its own; its outcome, with its wall-clock time and the machine's
    load average before and after (the machine may be shared)."""
    console.rule(name)
    load_before, started = os.getloadavg(), time.perf_counter()
    try:
        outcome = spawn(BENCHMARKS[name], name, quick=quick)
    except RuntimeError as error:
        outcome = {"figures": [], "details": {}, "skipped": None, "error": str(error)}
    timing = {"seconds": time.perf_counter() - started, "load_average": {"before": load_before, "after": os.getloadavg()}}
    return {"benchmark": name, **outcome, **timing}


SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "asimd", "sve", "bf16")
"""The CPU flags that decide the arithmetic's speed (matrix products, bf16), recorded with every figure."""


def machine() -> dict[str, Any]:
    import psutil

    from hubcard.environment import cpu_flags, cpu_model, versions

    return {
        "cpu": cpu_model(),
        "cpu_flags": sorted(flag for flag in cpu_flags() if flag in SIMD_FLAGS),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
    }


def table(outcomes: list[dict[str, Any]], facts: dict[str, Any]) -> Table:
    flags = ", ".join(facts["cpu_flags"]) or "none known"
    result = Table(
        title=f"hubcard benchmarks — {facts['cpu']}, {facts['cores']} cores (flags: {flags})",
        caption="load: the machine's 1-minute load average before → after the benchmark; on a shared machine, "
        "a load above ~0.5 means other work disturbed the figures (ratios of sides measured side by side less so)",
        title_justify="left",
        caption_justify="left",
    )
    for column in ("benchmark", "load", "figure", "hubcard", "baseline", "ratio", "target", "result"):
        result.add_column(column, justify="right" if column in ("hubcard", "baseline", "ratio") else "left")
    for outcome in outcomes:
        load = outcome["load_average"]
        shown_load = f"{load['before'][0]:.1f} → {load['after'][0]:.1f}"
        if outcome.get("error") or outcome["skipped"]:
            note = f"[red]failed: {outcome['error']}" if outcome.get("error") else f"skipped: {outcome['skipped']}"
            result.add_row(outcome["benchmark"], shown_load, note, "", "", "", "", "")
        for number, figure in enumerate(outcome["figures"]):
            result.add_row(
                outcome["benchmark"],
                "" if number else shown_load,
                figure["name"],
                shown(figure["hubcard"], figure["unit"]),
                shown(figure["baseline"], figure["unit"]),
                "" if figure["ratio"] is None else f"{figure['ratio']:.2f}×",
                figure["target"] or "",
                {True: "[green]pass", False: "[red]MISS", None: ""}[figure["passed"]],
            )
    return result


def shown(value: float | str | None, unit: str) -> str:
    """A value for the table: three significant digits (whole numbers from 100 up), with its unit."""
    if value is None or isinstance(value, str):
        return value or ""
    number = f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:.3g}"
    return f"{number} {unit}".strip()


if __name__ == "__main__":
    sys.exit(main())
