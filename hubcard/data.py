"""The labelled data a run trains and evaluates on: a Hub data set or local files, checked and sliced.

Every split comes out in one shape: a `datasets.Dataset` with the columns `row` (the row's index in
the split as loaded, to find it again), `text` and `label` (an index into the label names), so that
training and evaluation never look at the user's column names again.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubcard.config import DataSection, local_path, portable_path
from hubcard.errors import DataError
from hubcard.metadata import is_hub_id
from hubcard.rundir import DataFacts, SplitFacts

if TYPE_CHECKING:
    import datasets

# CSV and TSV are read the way Python's csv module and pandas write them: a field may be quoted ("..."),
# a quote inside it doubled. Tab-separated files written without quoting read the same unless a text
# starts with a quote; then the file's shape check (_check_table) says which line is ambiguous.
LOCAL_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".csv": ("csv", {"delimiter": ","}),
    ".tsv": ("csv", {"delimiter": "\t"}),
    ".tab": ("csv", {"delimiter": "\t"}),
    ".json": ("json", {}),
    ".jsonl": ("json", {}),
    ".parquet": ("parquet", {}),
}
DELIMITER_NAMES = {",": "comma", "\t": "tab"}
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
    section: DataSection,
    *,
    seed: int,
    with_train: bool = True,
    label_names: list[str] | None = None,
    project: Path | None = None,
) -> LabeledData:
    """Load, check and slice the splits that `section` names.

    `seed` shuffles the rows before `max_train_samples`/`max_eval_samples` slices are taken, so a
    slice is reproducible and representative. `label_names` overrides data.label_names (evaluation
    passes the names the adapter was trained with). The facts name local files inside `project`
    by paths relative to it. Raises DataError saying what is wrong and where (for a local text file,
    its 1-based line).
    """
    wanted = {"train": section.train_split, "eval": section.eval_split} if with_train else {"eval": section.eval_split}
    raw = {role: _load_split(section, split) for role, split in wanted.items()}
    for role, dataset in raw.items():
        _check_columns(dataset, section, _where(section, wanted[role]))
        _check_labels_present(dataset, section, wanted[role])
    names = label_names or _label_names(raw, section)
    limits = {"train": section.max_train_samples, "eval": section.max_eval_samples}
    shaped = {role: _shape(_slice(dataset, limits[role], seed), section, names, wanted[role]) for role, dataset in raw.items()}
    facts = DataFacts(
        source="hub" if section.path else "local",
        path=section.path,
        name=section.name,
        revision=section.revision,
        files={split: portable_path(file, project) for split, file in section.files.items()}
        if section.files is not None and project is not None
        else section.files,
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
        if builder == "csv":
            _check_table(file, options["delimiter"], split)
            # Texts and labels as written: no "None", "NA" or "null" read as missing, no "007" read as 7.
            options |= {
                "keep_default_na": False,
                "na_values": {section.label_column: [""]},
                "converters": {section.text_column: str},
            }
        try:
            return datasets.load_dataset(builder, data_files={split: str(file)}, split=split, **options)
        except Exception as error:  # a parse error, an unreadable file: name the file
            if NO_ROWS in str(error):
                raise DataError(f"data.files.{split}: {_where(section, split)} is empty: it needs at least one row") from error
            reason = (builder == "json" and _json_lines_problem(file)) or _first_line(error.__cause__ or error)
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


# --- the shape of local files -----------------------------------------------------------------


def _records(file: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(the 1-based line where it starts, its fields) of each record of a CSV/TSV file, header first,
    blank lines left out (pandas skips them too). Raises DataError, naming the line, where the quoting
    is broken or the file is not UTF-8."""
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # a long text is data, not an error
    end = 0
    with file.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise DataError(f"{file}, line {end + 1}: {_quoting_problem(error)}") from None
            except UnicodeDecodeError as error:
                raise DataError(f"cannot read {file} as csv: {_decoding_problem(file) or error}") from None
            start, end = end + 1, reader.line_num
            if fields:
                yield start, fields


def _quoting_problem(error: csv.Error) -> str:
    """What the csv module's complaint means for the person who wrote the file."""
    rule = 'as csv writers do, a text that starts with a quote (") must end with one, with the quotes inside it doubled ("")'
    if "unexpected end of data" in str(error):
        return f"a quoted text starts here and its closing quote never comes; {rule}"
    if "expected after" in str(error):
        return f"a text starts with a quote that closes before the text ends; {rule}"
    return f"{error}; {rule}"


def _check_table(file: Path, delimiter: str, split: str) -> None:
    """Refuse a CSV/TSV file whose rows do not all have the header's number of fields: pandas would
    take an extra field in the first row for an index and shift the columns, or fill a short row
    with missing values, and the error would then blame the labels."""
    key = f"data.files.{split}"
    try:
        records = _records(file, delimiter)
        header_line, header = next(records, (0, []))
        for line, fields in records:
            if len(fields) != len(header):
                separator = DELIMITER_NAMES.get(delimiter, repr(delimiter))
                cause = (
                    f"a text that holds a {separator} must be in quotes, as csv writers do"
                    if len(fields) > len(header)
                    else "a row cut short, or a line break inside a text that is not in quotes"
                )
                raise DataError(
                    f"{key}: {file}, line {line}: {len(fields)} fields, but the header (line {header_line}) has "
                    f"{len(header)} ({', '.join(header)}); {cause}"
                )
    except DataError as error:
        message = str(error)
        raise DataError(message if message.startswith(key) else f"{key}: {message}") from None


def _json_lines_problem(file: Path) -> str | None:
    """The first line of a JSON-lines file that is not a JSON object, with its 1-based number; None for
    a file that is one JSON document (an array) or whose every line is an object."""
    with file.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if number == 1 and line.lstrip().startswith("["):
                return None
            try:
                value = json.loads(line)
            except ValueError as error:
                return f"line {number} is not valid JSON: {getattr(error, 'msg', error)} (column {getattr(error, 'colno', '?')})"
            if not isinstance(value, dict):
                return f"line {number} is not a JSON object ({{\"text\": ..., \"label\": ...}}) but {type(value).__name__}"
    return None


def _file_lines(section: DataSection, split: str, rows: list[int]) -> list[int] | None:
    """The 1-based lines of a local CSV/TSV/JSON-lines file where the given 1-based rows start; None
    where lines are not rows (parquet, a JSON array, a Hub data set)."""
    if section.files is None:
        return None
    file = local_path(section.files[split])
    builder, options = LOCAL_FORMATS.get(file.suffix.lower(), ("", {}))
    if builder == "csv":
        starts = (line for line, _ in _records(file, options["delimiter"]))
        next(starts, None)  # the header
    elif builder == "json":
        with file.open(encoding="utf-8", errors="replace") as handle:
            numbered = [number for number, line in enumerate(handle, 1) if line.strip()]
            handle.seek(0)
            if not handle.read(4096).lstrip().startswith("{"):  # one JSON document: lines are not rows
                return None
        starts = iter(numbered)
    else:
        return None
    wanted = set(rows)
    found = {row: line for row, line in enumerate(starts, 1) if row in wanted}
    return [found[row] for row in rows if row in found] if len(found) == len(wanted) else None


def _decoding_problem(file: Path) -> str | None:
    """Where a file stops being UTF-8: the decoder's message with the byte's 1-based line."""
    data = file.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return f"{error} (line {line})"
    return None


# --- checks and labels ------------------------------------------------------------------------


def _check_columns(dataset: datasets.Dataset, section: DataSection, where: str) -> None:
    for key, column in (("data.text_column", section.text_column), ("data.label_column", section.label_column)):
        if column not in dataset.column_names:
            hint = ""
            if len(dataset.column_names) == 1 and "\t" in dataset.column_names[0]:
                hint = " (the file is tab-separated: name it .tsv)"
            raise DataError(
                f"{key}: {where} has no column {column!r}; its columns are: {', '.join(dataset.column_names)}{hint}"
            )
    if len(dataset) == 0:
        raise DataError(f"{where} is empty: it needs at least one row")


def _check_labels_present(dataset: datasets.Dataset, section: DataSection, split: str) -> None:
    missing = [row for row, label in enumerate(dataset[section.label_column], 1) if _is_missing(label) or label == ""]
    if missing:
        raise DataError(
            f"data.label_column: {_where(section, split)}: the label in column {section.label_column!r} is missing in "
            f"{_rows(section, split, missing)}; remove those rows or give their labels"
        )


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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


def _shape(dataset: datasets.Dataset, section: DataSection, label_names: list[str], split: str) -> datasets.Dataset:
    import datasets

    where = _where(section, split)
    rows = dataset["__hubcard_row"]
    texts = [_as_text(text) for text in dataset[section.text_column]]
    labels = dataset[section.label_column]
    bad_texts = [row + 1 for row, text in zip(rows, texts) if text is None or not text.strip()]
    if bad_texts:
        raise DataError(
            f"data.text_column: {where}: the text in column {section.text_column!r} is empty or missing in "
            f"{_rows(section, split, sorted(bad_texts))}; remove those rows or fill them in"
        )
    odd = sorted({type(text).__name__ for text in texts if not isinstance(text, str)})
    if odd:
        raise DataError(f"data.text_column: {where}: the column {section.text_column!r} holds {', '.join(odd)} values, not texts")
    indices = _label_indices(labels, label_names, section.label_column, where)
    return datasets.Dataset.from_dict({"row": rows, "text": texts, "label": indices})


def _as_text(value: Any) -> Any:
    """A text as the model reads it: a number in the text column is data (its digits), None and NaN are
    missing; anything else (a list, a mapping) is returned as it is, to be refused."""
    if _is_missing(value):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return value


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


def _rows(section: DataSection, split: str, rows: list[int]) -> str:
    """'row 2 (line 3 of the file)': rows counted from 1, with their lines in a local text file."""
    lines = _file_lines(section, split, rows[:MAX_LISTED])
    plural = "s" if len(rows) > 1 else ""
    where = f"line{plural} {_listing(lines)} of the file" if lines else "rows counted from 1"
    return f"row{plural} {_listing(rows)} ({where})"


def _listing(values: list[Any]) -> str:
    shown = ", ".join(map(str, values[:MAX_LISTED]))
    return shown + (f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else "")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
