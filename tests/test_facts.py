"""Every fact of the three example cards, checked against the run (tests/factcheck.py): the examples
run as a user runs them, through `hubcard train-and-publish`, on tiny random models so that they take
seconds. The notebook run is checked in test_notebook.py, the real models in test_end_to_end.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hubcard.cli import cli
from tests.factcheck import cli_run, fact_check
from tests.test_training import bert, llama  # noqa: F401  (the tiny models, built once a session)
from tests.tiny import ROOT, SHARED_DATA

EXAMPLES = ROOT / "examples"


def train_and_publish(example: str, overrides: list[str], run_dir: Path) -> list[str]:
    """Run the example with the overrides (a dry-run publish); the fact-check's problems."""
    result = CliRunner().invoke(cli, ["train-and-publish", str(EXAMPLES / example), *overrides, "--run-dir", str(run_dir), "--dry-run"])
    assert result.exit_code == 0, result.output
    return fact_check(run_dir, cli_run(run_dir, EXAMPLES / example, overrides))


@pytest.fixture(scope="module")
def quickstart(bert, tmp_path_factory) -> tuple[Path, list[str]]:
    overrides = [f"model.name_or_path={bert}", "model.hub_id=null", "training.num_train_epochs=1"]
    run_dir = tmp_path_factory.mktemp("quickstart") / "run"
    return run_dir, overrides, train_and_publish("quickstart.yaml", overrides, run_dir)


def test_the_quickstart_card_states_only_true_facts(quickstart):
    assert quickstart[2] == []


def test_the_fact_check_finds_a_wrong_fact_a_missing_one_and_an_unchecked_one(quickstart, tmp_path):
    """The checker itself: the quickstart's card, edited as a buggy template would write it."""
    run_dir, overrides, _ = quickstart
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    text = (copy / "README.md").read_text(encoding="utf-8")
    edits = {
        "| `lora_alpha` | `16` | config |": "| `lora_alpha` | `16` | PEFT default |",  # who set it
        "| `learning_rate` | `0.001` | config |\n": "",  # a changed TrainingArgument left out
        "- **Seed:** 42": "- **Seed:** 42\n- **Warm-up steps:** 100",  # a new fact nobody checks
        "Texts are cut at 64 tokens": "Texts are cut at 256 tokens",
    }
    for old, new in edits.items():
        assert old in text, old
        text = text.replace(old, new)
    (copy / "README.md").write_text(text, encoding="utf-8")
    problems = fact_check(copy, cli_run(copy, EXAMPLES / "quickstart.yaml", overrides))
    assert "who set lora_alpha: the card says 'PEFT default', the run says 'config'" in problems
    assert any(problem.startswith("changed TrainingArguments:") for problem in problems)
    assert "unchecked: - **Warm-up steps:** 100" in problems
    assert any("Texts are cut at 64 tokens" in problem for problem in problems)


def test_the_sequence_classification_example_card_states_only_true_facts(bert, tmp_path):
    overrides = [
        f"model.name_or_path={bert}",
        "model.hub_id=google-bert/bert-base-uncased",
        "data.path=null",
        "data.hub_id=nyu-mll/glue",  # the files are a copy of GLUE's sst2 configuration
        f"data.files.train={SHARED_DATA / 'sst2' / 'train.tsv'}",
        f"data.files.validation={SHARED_DATA / 'sst2' / 'validation.tsv'}",
        "data.max_train_samples=96",
        "data.max_eval_samples=64",
        "training.fp16=false",
        "training.seed=7",
        "hub.repo_id=student/tiny-sst2-lora",
    ]
    assert train_and_publish("sst2-gpt2-lora.yaml", overrides, tmp_path / "run") == []


def test_the_causal_lm_dora_example_card_states_only_true_facts(llama, tmp_path):
    overrides = [
        f"model.name_or_path={llama}",
        "model.hub_id=OuteAI/Lite-Oute-1-300M-Instruct",
        "data.path=null",
        "data.name=null",
        "data.train_split=test",
        f"data.files.test={SHARED_DATA / 'tweet_eval_sentiment' / 'test.jsonl'}",
        f"data.files.validation={SHARED_DATA / 'tweet_eval_sentiment' / 'validation.jsonl'}",
        "data.max_train_samples=48",
        "data.max_eval_samples=24",
        "task.max_new_tokens=4",
        "training.max_steps=3",
    ]
    assert train_and_publish("tweet-sentiment-dora.yaml", overrides, tmp_path / "run") == []
