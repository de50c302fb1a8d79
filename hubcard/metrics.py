"""Classification metrics, their paired-bootstrap confidence intervals, and confusion matrices.

Point estimates come from the `evaluate` metric modules when they can be loaded (they live on the
Hub, so loading them needs the network or evaluate's cache), else from the scikit-learn functions
those modules call: the same numbers either way, and run.json records which backend computed them.
`evaluate.load("accuracy")` first runs ./accuracy/accuracy.py when the current directory holds one:
such a folder is never loaded (no code runs from the working directory).

F1, precision and recall are macro averages over every label (a label never predicted scores 0).
A prediction of NO_LABEL (a generated answer that matched no label word) is wrong for every label.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hubcard.rundir import ClassScores, MetricComparison
from hubcard.tasks import NO_LABEL

logger = logging.getLogger(__name__)

REQUIRED_METRICS = ("accuracy", "f1")
"""Always computed, whatever evaluation.metrics says."""
MACRO_AVERAGED = ("f1", "precision", "recall")
AVERAGE = "macro"
HUB_PROBE_TIMEOUT_S = 3.0
BOOTSTRAP_CHUNK = 100


def metric_names(configured: Sequence[str]) -> list[str]:
    """The metrics a run reports: accuracy and macro-F1, then those the config adds."""
    return list(dict.fromkeys([*REQUIRED_METRICS, *configured]))


class SklearnBackend:
    """scikit-learn's metric functions, the ones the evaluate modules call."""

    name: Literal["scikit-learn"] = "scikit-learn"
    reason: str | None = None

    def __init__(self, reason: str | None = None):
        self.reason = reason

    def compute(self, metric: str, references: Sequence[int], predictions: Sequence[int], **kwargs: Any) -> Any:
        from sklearn import metrics

        function = {
            "accuracy": metrics.accuracy_score,
            "f1": metrics.f1_score,
            "precision": metrics.precision_score,
            "recall": metrics.recall_score,
            "matthews_correlation": metrics.matthews_corrcoef,
        }[metric]
        with warnings.catch_warnings():  # undefined scores (a label never predicted) are 0, as reported
            warnings.simplefilter("ignore")
            return function(references, predictions, **kwargs)


class EvaluateBackend:
    """Loaded `evaluate` metric modules."""

    name: Literal["evaluate"] = "evaluate"
    reason: str | None = None

    def __init__(self, modules: dict[str, Any]):
        self.modules = modules

    def compute(self, metric: str, references: Sequence[int], predictions: Sequence[int], **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = self.modules[metric].compute(predictions=list(predictions), references=list(references), **kwargs)
        return result[metric]


Backend = SklearnBackend | EvaluateBackend


@functools.cache
def choose_backend(names: tuple[str, ...]) -> Backend:
    """The evaluate modules for `names` if all of them load, else scikit-learn (with the reason).

    Tried once per process; the choice is stated once on the console (`Metrics: ...`; why not
    evaluate at debug level) and the card names it. evaluate waits up to 100 s for an unresponsive
    Hub, so the Hub is first probed with a short connection timeout; when it is unreachable (or
    HF_HUB_OFFLINE=1) the modules are looked up in evaluate's cache only.
    """
    name = None
    try:
        import evaluate
        from datasets import DownloadConfig

        download = DownloadConfig(local_files_only=not _hub_reachable(), max_retries=0)
        modules = {}
        for name in names:
            if shadow := _local_script(name):
                raise FileExistsError(f"{shadow} in the current directory would be run instead of the metric; not loaded")
            modules[name] = evaluate.load(name, module_type="metric", download_config=download)
        logger.info("Metrics: computed by evaluate's metric modules.")
        return EvaluateBackend(modules)
    except Exception as error:  # offline, Hub unreachable, module missing or broken
        what = f"evaluate.load({name!r})" if name else "import evaluate"
        reason = f"{what} failed ({type(error).__name__}: {(str(error).splitlines() or [''])[0]})"
        logger.info("Metrics: computed with scikit-learn, the functions evaluate's metric modules call (same figures; the modules were not at hand).")
        logger.debug("scikit-learn metrics: %s", reason)
        return SklearnBackend(reason)


def _local_script(name: str) -> Path | None:
    """The script in the current directory that `evaluate.load(name)` would run instead of the Hub's
    module (evaluate's rule: NAME itself when it ends in .py, else NAME/NAME.py), if there is one."""
    script = Path(name) if name.endswith(".py") else Path(name, f"{Path(name).name}.py")
    return script.resolve() if script.exists() else None


def _hub_reachable() -> bool:
    """Whether the Hub answers an HTTP request within a few seconds (any answer will do)."""
    from huggingface_hub import constants, is_offline_mode
    from huggingface_hub.utils import get_session

    if is_offline_mode():
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception:  # the HTTP client's own errors: no answer, refused, timed out
        return False
    return True


@dataclass(frozen=True)
class Scores:
    """One model's metrics on one set of predictions."""

    metrics: dict[str, float]
    per_class: list[ClassScores]
    confusion_matrix: list[list[int]]
    """Rows: true label, columns: predicted label, then a column of the answers that matched no label
    when there were any."""
    unmatched: int


def score(
    backend: Backend, names: Sequence[str], references: Sequence[int], predictions: Sequence[int], label_names: Sequence[str]
) -> Scores:
    """Metrics, per-class precision/recall/F1 and the confusion matrix of one model's predictions."""
    labels = list(range(len(label_names)))
    values = {name: float(backend.compute(name, references, predictions, **_arguments(name, labels))) for name in names}
    per_class = {
        name: backend.compute(name, references, predictions, labels=labels, average=None) for name in MACRO_AVERAGED
    }
    support = np.bincount(np.asarray(references), minlength=len(labels))
    confusion = confusion_matrices(np.asarray(references), np.asarray(predictions), len(labels))
    unmatched = int(np.sum(np.asarray(predictions) == NO_LABEL))
    return Scores(
        metrics=values,
        per_class=[
            ClassScores(
                label=label,
                precision=float(per_class["precision"][index]),
                recall=float(per_class["recall"][index]),
                f1=float(per_class["f1"][index]),
                support=int(support[index]),
            )
            for index, label in enumerate(label_names)
        ],
        confusion_matrix=(confusion if unmatched else confusion[:, : len(labels)]).tolist(),
        unmatched=unmatched,
    )


def _arguments(name: str, labels: list[int]) -> dict[str, Any]:
    return {"labels": labels, "average": AVERAGE} if name in MACRO_AVERAGED else {}


def confusion_matrices(references: np.ndarray, predictions: np.ndarray, num_labels: int) -> np.ndarray:
    """Confusion matrices of the rows of `references`/`predictions` (any leading shape).

    Shape (..., num_labels, num_labels + 1): the last column counts NO_LABEL predictions.
    """
    predictions = np.where(predictions == NO_LABEL, num_labels, predictions)
    cells = num_labels * (num_labels + 1)
    codes = references * (num_labels + 1) + predictions
    leading = codes.shape[:-1]
    offsets = np.arange(int(np.prod(leading, dtype=int))).reshape(leading + (1,)) * cells
    counts = np.bincount((codes + offsets).ravel(), minlength=cells * int(np.prod(leading, dtype=int)))
    return counts.reshape(leading + (num_labels, num_labels + 1))


def scores_from_confusion(confusion: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The metrics of stacked confusion matrices (..., n, n + 1), with scikit-learn's definitions."""
    confusion = confusion.astype(float)
    num_labels = confusion.shape[-2]
    true_positives = np.diagonal(confusion[..., :num_labels], axis1=-2, axis2=-1)
    predicted = confusion[..., :num_labels].sum(axis=-2)
    actual = confusion.sum(axis=-1)
    total = actual.sum(axis=-1)
    per_class = {
        "precision": _divide(true_positives, predicted),
        "recall": _divide(true_positives, actual),
        "f1": _divide(2 * true_positives, predicted + actual),
    }
    results = {}
    for name in names:
        if name == "accuracy":
            results[name] = true_positives.sum(axis=-1) / total
        elif name in per_class:
            results[name] = per_class[name].mean(axis=-1)
        elif name == "matthews_correlation":
            column_sums = confusion.sum(axis=-2)  # includes the NO_LABEL column, as scikit-learn does
            row_sums = np.concatenate([actual, np.zeros(actual.shape[:-1] + (1,))], axis=-1)
            covariance = true_positives.sum(axis=-1) * total - np.sum(row_sums * column_sums, axis=-1)
            spread = (total**2 - np.sum(column_sums**2, axis=-1)) * (total**2 - np.sum(row_sums**2, axis=-1))
            results[name] = _divide(covariance, np.sqrt(spread))
        else:
            raise ValueError(f"unknown metric {name!r}")
    return results


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0)


def paired_bootstrap(
    names: Sequence[str],
    references: Sequence[int],
    base_predictions: Sequence[int],
    adapter_predictions: Sequence[int],
    num_labels: int,
    *,
    point_estimates: tuple[dict[str, float], dict[str, float]],
    samples: int,
    confidence_level: float,
    seed: int,
) -> list[MetricComparison]:
    """Confidence intervals of each metric for base, adapter and their difference.

    Paired: every bootstrap sample draws the same rows for both models, so the interval of the
    difference accounts for the models being scored on the same examples. Percentile intervals.
    """
    references = np.asarray(references)
    base_predictions, adapter_predictions = np.asarray(base_predictions), np.asarray(adapter_predictions)
    rng = np.random.default_rng(seed)
    base_samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    adapter_samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, samples, BOOTSTRAP_CHUNK):
        rows = rng.integers(0, len(references), size=(min(BOOTSTRAP_CHUNK, samples - start), len(references)))
        for predictions, collected in ((base_predictions, base_samples), (adapter_predictions, adapter_samples)):
            resampled = scores_from_confusion(confusion_matrices(references[rows], predictions[rows], num_labels), names)
            for name in names:
                collected[name].append(resampled[name])
    tail = (1 - confidence_level) / 2
    base_values, adapter_values = point_estimates

    def interval(values: np.ndarray) -> tuple[float, float]:
        low, high = np.quantile(values, [tail, 1 - tail])
        return float(low), float(high)

    comparisons = []
    for name in names:
        base_draws, adapter_draws = np.concatenate(base_samples[name]), np.concatenate(adapter_samples[name])
        comparisons.append(
            MetricComparison(
                name=name,
                base=base_values[name],
                adapter=adapter_values[name],
                difference=adapter_values[name] - base_values[name],
                base_interval=interval(base_draws),
                adapter_interval=interval(adapter_draws),
                difference_interval=interval(adapter_draws - base_draws),
            )
        )
    return comparisons
