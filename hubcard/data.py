"""The labelled data a run trains and evaluates on: a Hub data set or local files, checked and sliced.

Every split comes out in one shape: a `datasets.Dataset` with the columns `row` (the row's index in
the split as loaded, to find it again), `text` and `label` (an index into the label names), so that
training and evaluation never look at the user's column names again.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubcard.config import DataSection, local_path
from hubcard.errors import DataError
from hubcard.metadata import is_hub_id
from hubcard.rundir import DataFacts, SplitFacts

if TYPE_CHECKING:
    import datasets

LOCAL_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {}),
    ".tsv": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}),  # TSV has no quoting: a quote is text
    ".tab": ("csv", {"delimiter": "\t", "quoting": csv.QUOTE_NONE}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
STRING_TYPES = ("string", "large_string")
NO_ROWS = "corresponds to no data"
"""What datasets' error says when a file holds a header but no rows."""
MAX_LISTED = 10


@dataclass(frozen=True)
class LabeledData:
    """The train and evaluation splits in hubcard's shape (columns row, text, label), and their facts."""

    train: datasets.Dataset | None
    eval: datasets.Dataset
    label_names: list[str]
    facts: DataFacts


def load_data(
    section: DataSection, *, seed: int, with_train: bool = True, label_names: list[str] | None = None
) -> LabeledData:
    """Load, check and slice the splits that `section` names.

    `seed` shuffles the rows before `max_train_samples`/`max_eval_samples` slices are taken, so a
    slice is reproducible and representative. `label_names` overrides data.label_names (evaluation
    passes the names the adapter was trained with). Raises DataError saying what is wrong and where.
    """
    wanted = {"train": section.train_split, "eval": section.eval_split} if with_train else {"eval": section.eval_split}
    raw = {role: _load_split(section, split) for role, split in wanted.items()}
    for role, dataset in raw.items():
        _check_columns(dataset, section, _where(section, wanted[role]))
    names = label_names or _label_names(raw, section)
    limits = {"train": section.max_train_samples, "eval": section.max_eval_samples}
    shaped = {
        role: _shape(_slice(dataset, limits[role], seed), section, names, _where(section, wanted[role]))
        for role, dataset in raw.items()
    }
    facts = DataFacts(
        source="hub" if section.path else "local",
        path=section.path,
        name=section.name,
        revision=section.revision,
        files=section.files,
        hub_id=section.hub_id or (section.path if section.path and is_hub_id(section.path) else None),
        text_column=section.text_column,
        label_column=section.label_column,
        label_names=names,
        max_length=section.max_length,
        train=split_facts(section.train_split, shaped["train"], names) if "train" in shaped else None,
        eval=split_facts(section.eval_split, shaped["eval"], names),
    )
    return LabeledData(train=shaped.get("train"), eval=shaped["eval"], label_names=names, facts=facts)


def split_facts(name: str, dataset: datasets.Dataset, label_names: list[str]) -> SplitFacts:
    counts = Counter(dataset["label"])
    return SplitFacts(name=name, rows=len(dataset), label_counts={label: counts[i] for i, label in enumerate(label_names)})


# --- loading ----------------------------------------------------------------------------------


def _load_split(section: DataSection, split: str) -> datasets.Dataset:
    import datasets

    if section.files is not None:
        file = local_path(section.files[split])
        builder, options = _local_format(file, split)
        try:
            return datasets.load_dataset(builder, data_files={split: str(file)}, split=split, **options)
        except Exception as error:  # a parse error, an unreadable file: name the file
            if NO_ROWS in str(error):
                raise DataError(f"data.files.{split}: {_where(section, split)} is empty: it needs at least one row") from error
            reason = _first_line(error.__cause__ or error)  # datasets wraps the parser's error in its own
            raise DataError(f"data.files.{split}: cannot read {file} as {builder}: {reason}") from error
    try:
        splits = datasets.load_dataset(section.path, section.name, revision=section.revision)
    except Exception as error:  # not found, no network, a configuration name missing
        what = section.path + (f" ({section.name})" if section.name else "")
        raise DataError(
            f"data.path: cannot load the data set {what}: {_first_line(error)}; check data.path, data.name and "
            "data.revision, and that the Hub is reachable (or use local files with data.files)"
        ) from error
    if split not in splits:
        key = "data.train_split" if split == section.train_split else "data.eval_split"
        raise DataError(f"{key}: {section.path} has no split {split!r}; its splits are: {', '.join(splits)}")
    return splits[split]


def _local_format(file: Path, split: str) -> tuple[str, dict[str, Any]]:
    suffix = file.suffix.lower()
    if suffix not in LOCAL_FORMATS:
        raise DataError(
            f"data.files.{split}: {file.name}: unknown file type {suffix or '(none)'}; "
            f"use one of {', '.join(LOCAL_FORMATS)}"
        )
    return LOCAL_FORMATS[suffix]


def _where(section: DataSection, split: str) -> str:
    if section.files is not None:
        return f"split {split!r} ({section.files[split]})"
    return f"split {split!r} of {section.path}"


# --- checks and labels ------------------------------------------------------------------------


def _check_columns(dataset: datasets.Dataset, section: DataSection, where: str) -> None:
    for key, column in (("data.text_column", section.text_column), ("data.label_column", section.label_column)):
        if column not in dataset.column_names:
            raise DataError(
                f"{key}: {where} has no column {column!r}; its columns are: {', '.join(dataset.column_names)}"
            )
    if len(dataset) == 0:
        raise DataError(f"{where} is empty: it needs at least one row")


def _label_names(raw: dict[str, datasets.Dataset], section: DataSection) -> list[str]:
    """data.label_names, else the ClassLabel names, else the sorted string labels found in the data."""
    import datasets

    feature = next(iter(raw.values())).features[section.label_column]
    if isinstance(feature, datasets.ClassLabel):
        if section.label_names is not None and len(section.label_names) != feature.num_classes:
            raise DataError(
                f"data.label_names: gives {len(section.label_names)} names, but the data set's "
                f"{section.label_column!r} feature has {feature.num_classes}: {', '.join(feature.names)}"
            )
        return section.label_names or list(feature.names)
    if section.label_names is not None:
        return list(section.label_names)
    values = {value for dataset in raw.values() for value in dataset.unique(section.label_column)}
    if values and all(isinstance(value, str) for value in values):
        return sorted(values)
    found = ", ".join(map(repr, sorted(values, key=str)[:MAX_LISTED]))
    raise DataError(
        f"data.label_names: the labels in column {section.label_column!r} are not names ({found}); "
        "list the label names in data.label_names, in the order of the label indices"
    )


def _slice(dataset: datasets.Dataset, limit: int | None, seed: int) -> datasets.Dataset:
    dataset = dataset.add_column("__hubcard_row", list(range(len(dataset))))
    if limit is not None and limit < len(dataset):
        dataset = dataset.shuffle(seed=seed).select(range(limit))
    return dataset


def _shape(dataset: datasets.Dataset, section: DataSection, label_names: list[str], where: str) -> datasets.Dataset:
    import datasets

    rows = dataset["__hubcard_row"]
    texts = dataset[section.text_column]
    labels = dataset[section.label_column]
    bad_texts = [row + 1 for row, text in zip(rows, texts) if not isinstance(text, str) or not text.strip()]
    if bad_texts:
        raise DataError(
            f"data.text_column: {where}: the text in column {section.text_column!r} is empty or missing in "
            f"row{'s' if len(bad_texts) > 1 else ''} {_listing(sorted(bad_texts))} (rows counted from 1); "
            "remove those rows or fill them in"
        )
    indices = _label_indices(labels, label_names, section.label_column, where)
    return datasets.Dataset.from_dict({"row": rows, "text": texts, "label": indices})


def _label_indices(labels: list[Any], label_names: list[str], column: str, where: str) -> list[int]:
    if all(isinstance(label, str) for label in labels):
        positions = {name: index for index, name in enumerate(label_names)}
        unknown = sorted({label for label in labels if label not in positions})
        if unknown:
            raise DataError(
                f"data.label_names: {where} has labels that are not in the label names: {_listing(unknown)}; "
                f"the label names are: {', '.join(label_names)}"
            )
        return [positions[label] for label in labels]
    if all(isinstance(label, int) and not isinstance(label, bool) for label in labels):
        out_of_range = sorted({label for label in labels if not 0 <= label < len(label_names)})
        if out_of_range:
            raise DataError(
                f"data.label_names: {where} has label indices {_listing(out_of_range)}, but there are "
                f"{len(label_names)} label names ({', '.join(label_names)}): indices 0 to {len(label_names) - 1}"
            )
        return labels
    odd = sorted({repr(label) for label in labels if not isinstance(label, (str, int)) or isinstance(label, bool)})
    raise DataError(
        f"data.label_column: {where}: the labels in column {column!r} must all be names (strings) or all "
        f"indices (integers); found {_listing(odd or ['a mix of both'])}"
    )


def _listing(values: list[Any]) -> str:
    shown = ", ".join(map(str, values[:MAX_LISTED]))
    return shown + (f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else "")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
