"""The PNG plots of a run: the training loss curve and the confusion matrices before and after.

The stages that produce the facts (training, evaluation) name their plots in run.json
(`name_plots`); the card stage draws them (`draw_missing`, called by `render-card` and `publish`),
so that training and evaluation never wait for matplotlib, and a plot is drawn once.

matplotlib is imported only here, through its object-oriented API with the Agg canvas: no pyplot
state, no display needed, and nothing changes for a notebook that uses pyplot itself.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from hubcard.rundir import RunDir, RunRecord, write_bytes_atomic

DPI = 120
TRAINING_PLOTS = ("loss",)
EVALUATION_PLOTS = ("confusion_base", "confusion_adapter")


def name_plots(run: RunDir, record: RunRecord, names: Iterable[str]) -> None:
    """Name in `record.plots` the plots `names` that its facts can show (plots/NAME.png), to be drawn
    by the card stage; an earlier drawing of them is removed (it showed earlier facts)."""
    for name in names:
        path = run.plots / f"{name}.png"
        path.unlink(missing_ok=True)
        if _drawing(name, record) is None:
            record.plots.pop(name, None)
        else:
            record.plots[name] = str(path.relative_to(run.path))


def draw_missing(run: RunDir, record: RunRecord) -> None:
    """Draw each plot that `record.plots` names and that has no file yet, from run.json's facts.
    A name hubcard does not know is left alone (publishing then says that its file is missing)."""
    for name, relative in record.plots.items():
        path = run.path / relative
        if not path.is_file() and (draw := _drawing(name, record)) is not None:
            draw(path)


def _drawing(name: str, record: RunRecord) -> Callable[[Path], Any] | None:
    """How to draw the plot `name` from the facts in `record`; None when they cannot show it."""
    if name == "loss" and record.training is not None and any("loss" in entry for entry in record.training.log_history):
        history = record.training.log_history
        return lambda path: loss_curve(history, path)
    if name in EVALUATION_PLOTS and record.evaluation is not None and record.data is not None:
        title, scores = ("Base model", record.evaluation.base) if name == "confusion_base" else ("Adapter", record.evaluation.adapter)
        labels = record.data.label_names
        return lambda path: confusion_matrix(scores.confusion_matrix, labels, title, path)
    return None


def loss_curve(log_history: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Plot training (and evaluation) loss against the step; None when nothing was logged."""
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    evaluation = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    if not train and not evaluation:
        return None
    figure, axes = _figure(6.4, 4.0)
    if train:
        axes.plot(*zip(*train), marker="o" if len(train) < 30 else None, markersize=3, label="training loss")
    if evaluation:
        axes.plot(*zip(*evaluation), marker="s", markersize=4, label="evaluation loss")
    final = train[-1][1] if train else evaluation[-1][1]
    axes.set_title(f"Training loss (final {final:.3g})")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    if evaluation:
        axes.legend()
    return _save(figure, path)


def confusion_matrix(matrix: Sequence[Sequence[int]], label_names: Sequence[str], title: str, path: Path) -> Path:
    """Plot a confusion matrix (rows: true label, columns: prediction) with the count in each cell.

    A matrix with one column more than there are labels counts, in that column, the answers that
    matched no label.
    """
    import numpy as np

    counts = np.asarray(matrix)
    columns = list(label_names) + ["(no label)"] * (counts.shape[1] - len(label_names))
    size = 2.5 + 0.6 * len(columns)
    figure, axes = _figure(size + 1.0, size)
    axes.imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
    axes.set_xticks(range(len(columns)), labels=[_short(name) for name in columns], rotation=45 if len(columns) > 3 else 0, ha="right" if len(columns) > 3 else "center")
    axes.set_yticks(range(len(label_names)), labels=[_short(name) for name in label_names])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = counts.max() / 2
    for row in range(counts.shape[0]):
        for column in range(counts.shape[1]):
            value = int(counts[row, column])
            axes.text(column, row, str(value), ha="center", va="center", color="white" if value > threshold else "black")
    axes.set_title(title)
    return _save(figure, path)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", metadata={"Software": None})
    write_bytes_atomic(path, image.getvalue())
    return path


def _short(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
