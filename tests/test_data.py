"""Local data files are read the way the tools that write them write them: quoting on, texts as written.

Each case writes its files the way a user's tool would (Python's csv module, pandas, json) and loads
them through hubcard's data stage; what comes out must be exactly what went in.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from hubcard.config import DataSection
from hubcard.data import load_data

TRICKY_TEXTS = [
    'He called it "a mess".',  # quotes inside: a csv writer doubles them
    "Two lines:\nthe second one",  # a line break inside: a csv writer quotes the field
    "tabs\tand, commas",
    "None",  # texts that pandas would take for missing values
    "NA",
    "null",
    "N/A",
    "nan",
    "007",  # a number is data: its digits as written
]
LABELS = ["None", "negative", "positive"]  # a class may be named None


def rows() -> list[tuple[str, str]]:
    return [(text, LABELS[index % 3]) for index, text in enumerate(TRICKY_TEXTS)]


def loaded(tmp_path: Path, name: str, **section) -> tuple[list[str], list[str]]:
    data = load_data(
        DataSection(files={"train": str(tmp_path / name), "validation": str(tmp_path / name)}, label_names=LABELS, **section),
        seed=0,
        with_train=False,
    )
    return list(data.eval["text"]), [LABELS[index] for index in data.eval["label"]]


@pytest.mark.parametrize("writer", ["csv-module", "pandas"])
@pytest.mark.parametrize("suffix, delimiter", [(".tsv", "\t"), (".csv", ",")])
def test_csv_and_tsv_written_by_pythons_tools_read_back_exactly(tmp_path, writer, suffix, delimiter):
    name = f"data{suffix}"
    if writer == "csv-module":
        with (tmp_path / name).open("w", encoding="utf-8", newline="") as file:
            table = csv.writer(file, delimiter=delimiter)
            table.writerow(["text", "label"])
            table.writerows(rows())
    else:
        pd.DataFrame(rows(), columns=["text", "label"]).to_csv(tmp_path / name, sep=delimiter, index=False)

    texts, labels = loaded(tmp_path, name)

    assert texts == TRICKY_TEXTS  # no outer or doubled quotes left, no extra rows, no text taken for missing
    assert labels == [label for _, label in rows()]


def test_a_numeric_text_column_is_data(tmp_path):
    (tmp_path / "numbers.csv").write_text("text,label\n12,positive\n007,negative\n3.50,None\n", encoding="utf-8")
    (tmp_path / "numbers.jsonl").write_text(
        "".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in [(12, "positive"), (7, "None")]),
        encoding="utf-8",
    )

    assert loaded(tmp_path, "numbers.csv") == (["12", "007", "3.50"], ["positive", "negative", "None"])
    assert loaded(tmp_path, "numbers.jsonl") == (["12", "7"], ["positive", "None"])


def test_a_tsv_without_quoting_reads_as_before(tmp_path):
    """A TSV written with no quoting at all (GLUE's SST-2) reads the same: quotes inside a text are text."""
    (tmp_path / "sst2.tsv").write_text(
        "sentence\tlabel\nit 's a \"charming\" film\tpositive\na dull , dull film \"\tnegative\n", encoding="utf-8"
    )

    texts, labels = loaded(tmp_path, "sst2.tsv", text_column="sentence")

    assert texts == ['it \'s a "charming" film', 'a dull , dull film "']
    assert labels == ["positive", "negative"]
