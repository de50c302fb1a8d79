"""Benchmark 3, CLI latency: what hubcard adds to the interpreter's start-up where a user waits.

`hubcard --help` and `hubcard render-card RUN_DIR` against `python -c pass`, all with this
interpreter (`python -m hubcard` imports what the `hubcard` script imports). Each command runs once
to warm the file cache, then REPEATS times; the figures are medians of the wall-clock seconds of
the whole process. The run rendered is a copy of the quickstart run's run.json and its plots (the
card stage draws a plot only where its file is missing; render-card reads nothing else). The same benchmark runs each hubcard command once more under `python -X importtime`
to list the heavy libraries it imports: render-card must import none of them.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, Outcome, serve
from bench.setups import quickstart_run

HEAVY_LIBRARIES = ("torch", "transformers", "peft", "datasets", "accelerate")
HELP_OVERHEAD_TARGET = 0.3
RENDER_TARGET = 1.0


def benchmark(quick: bool) -> Outcome:
    repeats = 3 if quick else 11
    run = quickstart_run(quick)
    with tempfile.TemporaryDirectory(prefix="hubcard-bench-") as folder:
        copy = Path(folder, "run")
        copy.mkdir()
        shutil.copyfile(run.run_json, copy / "run.json")
        shutil.copytree(run.plots, copy / "plots")
        commands = {
            "interpreter": ["-c", "pass"],
            "help": ["-m", "hubcard", "--help"],
            "render": ["-m", "hubcard", "render-card", str(copy)],
        }
        seconds = {name: median_seconds(arguments, repeats) for name, arguments in commands.items()}
        heavy = {name: heavy_imports(commands[name]) for name in ("help", "render")}

    help_overhead = seconds["help"] - seconds["interpreter"]
    return Outcome(
        figures=[
            Figure(
                "`hubcard --help` minus `python -c pass`",
                help_overhead,
                seconds["interpreter"],
                "s",
                target=f"< {HELP_OVERHEAD_TARGET:g} s",
                passed=help_overhead < HELP_OVERHEAD_TARGET,
            ),
            Figure(
                "`hubcard render-card RUN_DIR`, whole process",
                seconds["render"],
                seconds["interpreter"],
                "s",
                target=f"< {RENDER_TARGET:g} s",
                passed=seconds["render"] < RENDER_TARGET,
            ),
            *(
                Figure(
                    f"heavy libraries `hubcard {'--help' if name == 'help' else 'render-card'}` imports",
                    ", ".join(found) or "none",
                    target="none",
                    passed=not found,
                )
                for name, found in heavy.items()
            ),
        ],
        details={"repeats": repeats, "median_seconds": seconds, "heavy_imports": heavy, "interpreter": sys.executable},
    )


def median_seconds(arguments: list[str], repeats: int) -> float:
    """Median wall-clock seconds of `python ARGUMENTS` over `repeats` runs, after a warm-up run."""
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        subprocess.run([sys.executable, *arguments], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def heavy_imports(arguments: list[str]) -> list[str]:
    """The HEAVY_LIBRARIES that `python ARGUMENTS` imports (from `-X importtime`'s report on stderr)."""
    completed = subprocess.run([sys.executable, "-X", "importtime", *arguments], check=True, capture_output=True, text=True)
    imported = {
        line.rpartition("|")[2].strip().split(".")[0] for line in completed.stderr.splitlines() if line.startswith("import time:")
    }
    return [library for library in HEAVY_LIBRARIES if library in imported]


BENCHMARKS = {"cli-latency": benchmark}

if __name__ == "__main__":
    serve(BENCHMARKS)
