"""What the benchmarks share: the figures they report, the worker processes they run in, and where
they keep their files.

Every benchmark runs in a process of its own (`python -m bench.MODULE NAME --output FILE`), started
by `python -m bench`: a benchmark's imports, memory and environment (the loopback Hub's, for one)
never reach another's. The processes write their outcome as JSON; the command prints and keeps it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = RESULTS / "work"
"""Run directories kept between benchmark runs (a benchmark that needs a trained run reuses one)."""
SHARED_DATA = ROOT.parent / "shared" / "data"
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Figure:
    """One row of the results table: hubcard's measurement, the baseline's, and the target."""

    name: str
    hubcard: float | str
    baseline: float | str | None = None
    unit: str = ""
    ratio: float | None = None
    """How many times better hubcard is than the baseline (above 1: better)."""
    target: str | None = None
    passed: bool | None = None
    """None: the figure has no target."""


@dataclass
class Outcome:
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    """Everything measured and every setting, for the JSON file."""
    skipped: str | None = None
    """Why the benchmark did not run here (no GPU, ...)."""


def ratio_figure(
    name: str, hubcard: float, baseline: float, unit: str, *, higher_is_better: bool, at_least: float | None
) -> Figure:
    """A figure compared by ratio, with the target `ratio >= at_least` (no target if None)."""
    ratio = hubcard / baseline if higher_is_better else baseline / hubcard
    target = None if at_least is None else f"≥ {at_least:g}×"
    passed = None if at_least is None else ratio >= at_least
    return Figure(name, hubcard, baseline, unit, ratio, target, passed)


def accuracy(predictions: list[int], references: list[int]) -> float:
    return sum(p == r for p, r in zip(predictions, references)) / len(references)


def accuracy_figure(name: str, references: list[int], hubcard: list[int], baseline: list[int], num_labels: int) -> Figure:
    """The accuracy of hubcard's predictions and the baseline's for the same rows. The target is that
    hubcard's is not lower beyond the noise of the rows drawn: the paired bootstrap's 95% interval of
    the difference (hubcard's metrics code) reaches 0 or above."""
    from hubcard.metrics import paired_bootstrap

    ours, theirs = accuracy(hubcard, references), accuracy(baseline, references)
    (comparison,) = paired_bootstrap(
        ["accuracy"],
        references,
        baseline,
        hubcard,
        num_labels,
        point_estimates=({"accuracy": theirs}, {"accuracy": ours}),
        samples=BOOTSTRAP_SAMPLES,
        confidence_level=0.95,
        seed=0,
    )
    low, high = comparison.difference_interval
    return Figure(name, ours, theirs, ratio=None, target=f"not lower (Δ 95% CI [{low:+.3f}, {high:+.3f}])", passed=high >= 0)


def prepare_environment() -> None:
    """Offline, quiet (no progress bars, no load reports or deprecation warnings from the libraries: the
    table is what a benchmark run prints), and one stable cache for converted models (the GGUF model is
    converted once)."""
    os.environ.setdefault("HUBCARD_CACHE", str(RESULTS / "cache"))
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TQDM_DISABLE="1", TOKENIZERS_PARALLELISM="false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::UserWarning")


def spawn(module: str, task: str, *, quick: bool) -> Any:
    """Run `task` of `module` in a fresh Python process (see `serve`); the JSON it wrote."""
    with tempfile.TemporaryDirectory(prefix="hubcard-bench-") as folder:
        output = Path(folder) / "outcome.json"
        command = [sys.executable, "-m", module, task, "--output", str(output), *(["--quick"] if quick else [])]
        completed = subprocess.run(command, check=False, cwd=ROOT)
        if completed.returncode != 0:
            raise RuntimeError(f"`{' '.join(command[1:])}` failed with exit status {completed.returncode}")
        return json.loads(output.read_text(encoding="utf-8"))


def serve(tasks: dict[str, Callable[[bool], Any]]) -> None:
    """The command line of a benchmark module: `python -m bench.MODULE TASK --output FILE [--quick]`
    runs `tasks[TASK](quick)` and writes what it returns (a dataclass, or plain JSON data) to FILE."""
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=sorted(tasks))
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small slices, few steps")
    arguments = parser.parse_args()
    prepare_environment()
    result = tasks[arguments.task](arguments.quick)
    data = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
    arguments.output.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
