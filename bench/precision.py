"""Benchmark 7, precision: the end-to-end examples trained in bf16 mixed precision (hubcard's choice on
a CPU that computes bf16 natively) and in fp32, and their adapters' scores compared.

The examples are the ones the end-to-end tests run (tests/test_end_to_end.py: the same example
files, overrides, data and seed), each trained twice through the `hubcard` command, once as hubcard
chooses and once with `training.bf16=false`, then evaluated by `hubcard evaluate` (in fp32, the
default on a CPU, so that only the training's precision differs). The figure of each example is its
main metric (the one its end-to-end test asserts) for both adapters, with the paired bootstrap's 95%
interval of the difference bf16 − fp32 over the evaluation rows (hubcard's metrics code, 2,000
resamples): within noise or better when the interval reaches 0 or lies above it. The training
samples/s of both (the Trainer's own figure) are reported beside it.

On a CPU without native bf16 hubcard trains in fp32 anyway: the benchmark says so and is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from bench.common import BOOTSTRAP_SAMPLES, ROOT, WORK, Figure, Outcome, ratio_figure, serve

PRECISIONS = {"bf16": [], "fp32": ["training.bf16=false"]}
"""The command-line overrides of each side: hubcard's own choice (bf16 here), and fp32."""
QUICK_OVERRIDES = ["data.max_train_samples=32", "data.max_eval_samples=16", "training.num_train_epochs=1"]


def examples() -> dict[str, tuple[str, str, Callable[[str], tuple[str, list[str]]]]]:
    """name: (title, main metric, the end-to-end test's example: repo id -> (example file, overrides))."""
    from tests import test_end_to_end as e2e

    return {
        "minilm-sst2": ("MiniLM + LoRA, SST-2 (sst2-gpt2-lora.yaml)", "accuracy", e2e.minilm_sst2),
        "smollm2-sst2": ("SmolLM2-135M classifier + LoRA, SST-2 (sst2-gpt2-lora.yaml)", "accuracy", e2e.smollm2_sst2),
        "smollm2-tweets": ("SmolLM2-135M + DoRA, TweetEval, generate (tweet-sentiment-dora.yaml)", "f1", e2e.smollm2_tweets),
    }


def benchmark(quick: bool) -> Outcome:
    from hubcard.environment import native_precision

    native = native_precision()
    if native.precision != "bf16":
        return Outcome(skipped=f"hubcard trains in {native.precision} here ({native.reason}): nothing to compare")
    figures, details = [], {}
    for name, (title, metric, example) in examples().items():
        runs = {precision: _train_and_evaluate(name, precision, example, quick) for precision in PRECISIONS}
        comparison = _compare(runs["bf16"], runs["fp32"], metric)
        low, high = comparison["interval"]
        figures.append(
            Figure(
                f"{title}: adapter {metric}, bf16 vs fp32 training",
                comparison["bf16"],
                comparison["fp32"],
                target=f"within noise or above (Δ 95% CI [{low:+.3f}, {high:+.3f}])",
                passed=high >= 0,
            )
        )
        speeds = {precision: run["samples_per_second"] for precision, run in runs.items()}
        figures.append(
            ratio_figure(f"{title}: training samples/s, bf16 vs fp32", speeds["bf16"], speeds["fp32"], "samples/s", higher_is_better=True, at_least=None)
        )
        details[name] = {**comparison, "runs": {precision: {k: v for k, v in run.items() if k != "predictions"} for precision, run in runs.items()}}
    return Outcome(figures=figures, details=details)


def _train_and_evaluate(name: str, precision: str, example: Callable[[str], tuple[str, list[str]]], quick: bool) -> dict[str, Any]:
    """Train and evaluate the example in `precision` through the `hubcard` command, in a run directory
    of its own (trained anew each time); what run.json and the predictions say."""
    from hubcard.rundir import RunDir, read_jsonl

    example_file, overrides = example(f"bench/{name}")
    run = RunDir(WORK / ("quick" if quick else "full") / "precision" / f"{name}-{precision}")
    overrides = [*overrides, *PRECISIONS[precision], *(QUICK_OVERRIDES if quick else [])]
    load_before = os.getloadavg()
    _hubcard("train", str(ROOT / "examples" / example_file), *overrides, "--run-dir", str(run.path), "--overwrite")
    _hubcard("evaluate", str(run.path))
    record = run.read()
    assert record.training is not None and record.evaluation is not None and record.data is not None
    assert record.hardware.precision == precision and record.evaluation.precision == "fp32"
    label_ids = {label: index for index, label in enumerate(record.data.label_names)}
    rows = read_jsonl(run.predictions / "adapter.jsonl")
    return {
        "precision": precision,
        "precision_set_by": record.hardware.precision_set_by,
        "samples_per_second": record.training.samples_per_second,
        "train_seconds": record.training.runtime_seconds,
        "final_loss": record.training.final_loss,
        "metrics": record.evaluation.adapter.metrics,
        "label_names": record.data.label_names,
        "references": [label_ids[row["label"]] for row in rows],
        "predictions": [label_ids.get(row["prediction"], -1) for row in rows],  # -1: NO_LABEL, an answer naming no label
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }


def _compare(bf16: dict[str, Any], fp32: dict[str, Any], metric: str) -> dict[str, Any]:
    """The metric of both adapters on the same rows and the paired bootstrap interval of bf16 − fp32."""
    from hubcard import metrics

    assert bf16["references"] == fp32["references"]
    (comparison,) = metrics.paired_bootstrap(
        [metric],
        bf16["references"],
        fp32["predictions"],
        bf16["predictions"],
        len(bf16["label_names"]),
        point_estimates=(fp32["metrics"], bf16["metrics"]),
        samples=BOOTSTRAP_SAMPLES,
        confidence_level=0.95,
        seed=0,
    )
    same = sum(a == b for a, b in zip(bf16["predictions"], fp32["predictions"]))
    return {
        "metric": metric,
        "bf16": bf16["metrics"][metric],
        "fp32": fp32["metrics"][metric],
        "difference": comparison.difference,
        "interval": list(comparison.difference_interval),
        "rows": len(bf16["references"]),
        "same_predictions": same,
    }


def _hubcard(*arguments: str) -> None:
    """`python -m hubcard ARGUMENTS` in a fresh process, as a user runs it (the benchmarks' environment:
    offline, no progress bars); its messages are shown only when it fails."""
    completed = subprocess.run([sys.executable, "-m", "hubcard", *arguments], cwd=ROOT, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"`hubcard {' '.join(arguments[:2])}` failed: {completed.stderr[-2000:]}")


BENCHMARKS = {"precision": benchmark}

if __name__ == "__main__":
    serve(BENCHMARKS)
