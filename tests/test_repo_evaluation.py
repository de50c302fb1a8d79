"""`hubcard evaluate --repo`: a class's adapters on the loopback Hub, evaluated on a held-out set at a deadline.

The adapters are trained here on tiny models (seconds): one better than its base model, pushed by
alice (and later replaced, after the deadline, by one that does not fit); bob's byte-identical to
alice's; carol's trained on another model than the one its adapter_config.json names, so that it
does not fit. The base model is on the loopback Hub, where `from_pretrained` downloads it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hubcard import card, evaluation, training
from hubcard.cli import cli
from hubcard.repo_evaluation import parse_moment
from hubcard.rundir import RunDir
from tests.tiny import REVIEWS, config_dict, make_config, tiny_model

BASE = "course/tiny-bert"
DEADLINE = "2025-03-02"
BEFORE = datetime(2025, 3, 1, 18, 30, tzinfo=timezone.utc)
AFTER = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)
ALICE, BOB, CAROL = "alice/hw3-reviews", "bob/hw3-reviews", "carol/hw3-reviews"
STUDENT_TEXT = "## Uses\n\nI trained this adapter myself for homework 3; it labels short product reviews.\n"
EVAL_DATA = {
    "files": {"test": str(REVIEWS / "reviews-validation.csv")},
    "eval_split": "test",
    "label_names": ["negative", "positive"],
    "max_eval_samples": 24,
    "max_length": 48,
}
EVAL_FILE = {"data": EVAL_DATA, "evaluation": {"batch_size": 8, "bootstrap_samples": 200}}
"""The held-out set as the training runs' config_dict evaluates them: the same rows, length, metrics and bootstrap."""


@pytest.fixture(scope="module")
def learner(tmp_path_factory) -> Path:
    return tiny_model("bert", tmp_path_factory.mktemp("learning-bert"), initializer_range=0.2)


@pytest.fixture(scope="module")
def adapters(learner, tmp_path_factory) -> dict[str, RunDir]:
    """Training runs: `better` (16 steps on the learner, evaluated by `hubcard evaluate RUN_DIR` as the
    reference) and `misfit` (a llama's adapter whose adapter_config.json names the bert)."""
    folder = tmp_path_factory.mktemp("students")
    hub_id = {"hub_id": BASE}
    better = config_dict(learner, "sequence-classification", folder / "better", model=hub_id, training={"max_steps": 16, "learning_rate": 1e-2})
    llama = tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))
    misfit = config_dict(llama, "sequence-classification", folder / "misfit", model=hub_id, training={"max_steps": 2})
    runs = {"better": training.train(make_config(better, folder)), "misfit": training.train(make_config(misfit, folder))}
    evaluation.evaluate_run(runs["better"].path)
    return runs


def files_of(run: RunDir, readme: str) -> dict[str, bytes]:
    """What a student pushes: the adapter (config and weights) and a card."""
    names = ("adapter_config.json", "adapter_model.safetensors")
    return {"README.md": readme.encode(), **{name: (run.adapter / name).read_bytes() for name in names}}


STUDENT_INDEX = """model-index:
- name: hw3-reviews
  results:
  - task: {type: text-classification}
    dataset: {name: SST-2, type: stanfordnlp/sst2}
    metrics:
    - {type: accuracy, value: 0.91}
"""
"""The student's own result in the card's model-index, which the staff's must not replace."""


def student_card(name: str) -> str:
    return f"---\nlicense: mit\n{STUDENT_INDEX}---\n\n# {name}'s homework 3\n\n{STUDENT_TEXT}"


@pytest.fixture
def course(hub, monkeypatch, learner, adapters):
    """The base model on the Hub, the three students' repos (dated commits), the staff's token."""
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ta"))
    hub.create_repo(BASE)
    hub.commit_files(BASE, {path.name: path.read_bytes() for path in learner.iterdir() if path.is_file()}, title="Base model")
    better, misfit = adapters["better"], adapters["misfit"]
    commits = {}
    for repo_id, run in ((ALICE, better), (BOB, better), (CAROL, misfit)):
        hub.create_repo(repo_id)
        commits[repo_id] = hub.commit_files(repo_id, files_of(run, student_card(repo_id.split("/")[0])), title="Homework 3", date=BEFORE).oid
    hub.commit_files(ALICE, files_of(misfit, student_card("alice") + "\nA late change.\n"), title="After the deadline", date=AFTER)
    return commits


def evaluate(*arguments: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["evaluate", *arguments])
    return result.exit_code, result.stdout, result.stderr


def eval_file(folder: Path, content: dict | str = EVAL_FILE) -> Path:
    path = folder / "hw3-test.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    return path


def test_a_class_is_evaluated_at_the_deadline_the_base_model_once(course, adapters, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="hubcard")
    roster = tmp_path / "students.csv"
    roster.write_text(f"repo_id,name\n{ALICE},Alice\n{BOB},Bob\n{CAROL},Carol\n", encoding="utf-8")
    output = tmp_path / "evaluations"
    code, stdout, stderr = evaluate(
        "--roster", str(roster), str(eval_file(tmp_path)), "--before", DEADLINE, "--output-dir", str(output), "--format", "json"
    )
    rows = {row["repo_id"]: row for row in json.loads(stdout)}
    assert code == 3, stderr  # carol's could not be evaluated
    # The commit that stood at the deadline: alice's later push is not evaluated.
    assert [rows[repo_id]["commit"]["id"] for repo_id in (ALICE, BOB, CAROL)] == [course[ALICE], course[BOB], course[CAROL]]
    assert rows[ALICE]["commit"]["date"] == BEFORE.isoformat()
    assert f"{ALICE}: commit {course[ALICE]} of 2025-03-01 18:30:00 UTC (the last on the default branch at or before 2025-03-02 23:59:59 UTC)" in caplog.text
    # The same scores as the training run's own evaluation of that adapter.
    reference = adapters["better"].read().evaluation
    evaluated = RunDir(output / ALICE).read()
    assert evaluated.evaluation.comparison == reference.comparison
    assert evaluated.evaluation.base.metrics == reference.base.metrics and evaluated.evaluation.adapter.metrics == reference.adapter.metrics
    assert evaluated.evaluation.examples == reference.examples
    accuracy = next(item for item in reference.comparison if item.name == "accuracy")
    assert accuracy.adapter > accuracy.base  # the better adapter is better
    assert (rows[ALICE]["base"], rows[ALICE]["adapter"], rows[ALICE]["interval"]) == (accuracy.base, accuracy.adapter, list(accuracy.difference_interval))
    assert rows[BOB]["scores"] == rows[ALICE]["scores"]
    # Byte-identical adapters are flagged, both ways.
    assert (rows[ALICE]["status"], rows[ALICE]["duplicate_of"]) == ("problems", [BOB])
    assert (rows[BOB]["status"], rows[BOB]["duplicate_of"]) == ("problems", [ALICE])
    # The adapter that does not fit: its row says why; the base model was not touched by it.
    assert rows[CAROL]["status"] == "error" and "does not fit" in rows[CAROL]["error"] and "q_proj" in rows[CAROL]["error"]
    assert rows[CAROL]["commit"]["id"] == course[CAROL] and rows[CAROL]["base_model"] == BASE
    # The base model was loaded once and evaluated once for the three.
    for row in rows.values():
        assert (row["base_model_loads"], row["base_model_evaluations"], row["adapters_evaluated"]) == (1, 1, 2)
        assert row["roster"]["name"] in ("Alice", "Bob", "Carol")
    # A run directory like a training run's: its card renders and passes the check.
    assert evaluated.trained_by == "your code" and evaluated.training is None
    assert (evaluated.hub_adapter.repo_id, evaluated.hub_adapter.commit, evaluated.hub_adapter.base_model_from) == (ALICE, course[ALICE], "adapter_config.json")
    assert evaluated.hub_adapter.before == parse_moment(DEADLINE)
    assert set(evaluated.plots) == {"confusion_base", "confusion_adapter"}
    rendered = card.render_run_card(output / ALICE).read_text(encoding="utf-8")
    assert card.check_card(rendered) == [] and f"adapter_id = '{ALICE}'" in rendered
    assert not (output / CAROL).exists()


def test_the_table_shows_the_commit_and_the_scores_and_a_rerun_replaces_the_run_directory(course, tmp_path):
    output = tmp_path / "out"
    arguments = ("--repo", ALICE, str(eval_file(tmp_path)), "--before", "2025-03-01T20:00:00+01:00", "--output-dir", str(output))
    code, stdout, stderr = evaluate(*arguments)
    assert code == 0, stdout + stderr
    line = next(line for line in stdout.splitlines() if line.startswith(ALICE))
    assert course[ALICE][:8] in line and "→" in line and len(line) <= 100
    assert "loaded once, evaluated once, 1 adapter(s) of 1 repo(s)" in stdout
    first = RunDir(output / ALICE).read()
    assert evaluate(*arguments)[0] == 0
    again = RunDir(output / ALICE).read()
    assert again.created_at > first.created_at and again.evaluation.comparison == first.evaluation.comparison
    # At the repo's head (no --before) alice's late adapter is the one evaluated, and it does not fit.
    code, stdout, _ = evaluate("--repo", ALICE, str(eval_file(tmp_path)), "--output-dir", str(output), "--format", "csv")
    assert code == 3 and "does not fit" in stdout
    assert RunDir(output / ALICE).read() == again  # the evaluation that worked is kept


@pytest.fixture(scope="module")
def causal(tmp_path_factory) -> tuple[Path, RunDir]:
    """A tiny llama and its causal-lm adapter (2 steps), evaluated by `hubcard evaluate RUN_DIR`."""
    llama = tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"))
    folder = tmp_path_factory.mktemp("causal")
    raw = config_dict(llama, "causal-lm", folder / "run", model={"hub_id": "course/tiny-llama"}, training={"max_steps": 2})
    run = training.train(make_config(raw, folder))
    evaluation.evaluate_run(run.path)
    return llama, run


def test_each_base_model_is_loaded_once_and_the_task_follows_each_adapter(course, adapters, causal, hub, tmp_path):
    llama, run = causal
    hub.create_repo("course/tiny-llama")
    hub.commit_files("course/tiny-llama", {path.name: path.read_bytes() for path in llama.iterdir() if path.is_file()})
    hub.create_repo("dan/hw3-chat")
    hub.commit_files("dan/hw3-chat", files_of(run, student_card("dan")))
    prompt = {"prompt_template": run.read().task.prompt_template, "prediction": "score"}  # the training's prompt
    path = eval_file(tmp_path, {**EVAL_FILE, "task": prompt})
    code, stdout, _ = evaluate("--repo", "dan/hw3-chat", "--repo", BOB, str(path), "--format", "json", "--output-dir", str(tmp_path / "out"))
    rows = {row["repo_id"]: row for row in json.loads(stdout)}
    assert code == 0, stdout
    assert rows["dan/hw3-chat"]["task_type"] == "causal-lm" and rows[BOB]["task_type"] == "sequence-classification"
    for row in rows.values():  # two base models: each loaded and evaluated once, for its one adapter
        assert (row["base_model_loads"], row["base_model_evaluations"], row["adapters_evaluated"]) == (1, 1, 1)
    evaluated = RunDir(tmp_path / "out" / "dan/hw3-chat").read()
    assert evaluated.task.prompt_template == prompt["prompt_template"] and evaluated.model.hub_id == "course/tiny-llama"
    assert evaluated.evaluation.comparison == run.read().evaluation.comparison
    assert evaluated.evaluation.examples == run.read().evaluation.examples  # the models' own answers too
    assert RunDir(tmp_path / "out" / BOB).read().task.prompt_template is None  # a classifier takes no prompt


def test_a_base_model_that_cannot_be_known_is_reported_not_guessed(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ta"))
    adapter_config = {"base_model_name_or_path": "/content/drive/MyDrive/tiny-bert", "peft_type": "LORA", "task_type": "SEQ_CLS", "r": 4}
    for repo_id, task_type in (("dan/hw3", "SEQ_CLS"), ("eve/hw3", "SEQ_2_SEQ_LM")):
        hub.create_repo(repo_id)
        config = {**adapter_config, "task_type": task_type, "base_model_name_or_path": None if task_type == "SEQ_2_SEQ_LM" else adapter_config["base_model_name_or_path"]}
        hub.commit_files(repo_id, {"adapter_config.json": json.dumps(config).encode(), "adapter_model.safetensors": b"weights"}, date=BEFORE if repo_id == "dan/hw3" else AFTER)
    hub.create_repo("fay/hw3")
    hub.commit_files("fay/hw3", {"README.md": b"# Homework 3\n\nComing soon.\n"}, date=BEFORE)
    code, stdout, _ = evaluate(
        "--repo", "dan/hw3", "--repo", "eve/hw3", "--repo", "fay/hw3", str(eval_file(tmp_path)), "--format", "json", "--before", DEADLINE,
        "--output-dir", str(tmp_path / "out"),
    )  # fmt: skip
    rows = {row["repo_id"]: row for row in json.loads(stdout)}
    assert code == 3 and {row["status"] for row in rows.values()} == {"error"}
    assert "the base model cannot be known: adapter_config.json names '/content/drive/MyDrive/tiny-bert'" in rows["dan/hw3"]["error"]
    assert "--base-model" in rows["dan/hw3"]["error"]
    assert "no commit on the default branch at or before 2025-03-02 23:59:59 UTC" in rows["eve/hw3"]["error"]
    assert "no adapter_config.json at commit" in rows["fay/hw3"]["error"]
    code, stdout, _ = evaluate("--repo", "dan/hw3", "--repo", "eve/hw3", str(eval_file(tmp_path)), "--format", "json", "--base-model", BASE)
    rows = {row["repo_id"]: row for row in json.loads(stdout)}
    assert "task_type 'SEQ_2_SEQ_LM' of the adapter: hubcard evaluates SEQ_CLS, CAUSAL_LM adapters" in rows["eve/hw3"]["error"]
    assert "cannot be loaded" in rows["dan/hw3"]["error"] or "does not fit" in rows["dan/hw3"]["error"]  # --base-model named it


def test_bad_input_is_refused_before_any_repo_is_read(hub, tmp_path):
    bad = "data:\n  files: {test: missing.csv}\n  eval_split: test\n  train_split: train\nevaluation:\n  metrics: [accuracy, recal]\nmodel:\n  name_or_path: x\n"
    code, _, stderr = evaluate("--repo", ALICE, str(eval_file(tmp_path, bad)))
    assert code == 2 and "Invalid evaluation file in" in stderr
    assert "data.files.test (line 2): file not found" in stderr
    assert "data.train_split (line 4): not used" in stderr
    assert "evaluation.metrics[1] (line 6): must be one of" in stderr
    assert "model (line 7): not a section of an evaluation file: the base model comes from each adapter's adapter_config.json" in stderr
    code, _, stderr = evaluate("--repo", ALICE, str(eval_file(tmp_path)), "--before", "2025-03-01T23:59")
    assert code == 2 and "has no offset" in stderr
    code, _, stderr = evaluate("--repo", ALICE, str(eval_file(tmp_path)), "--base-model", "/content/tiny-bert")
    assert code == 2 and "--base-model" in stderr
    code, _, stderr = evaluate(str(tmp_path), "--before", DEADLINE)
    assert code == 2 and "--before go with --repo, --author or --roster" in stderr
    wrong_names = {**EVAL_FILE, "data": {**EVAL_DATA, "label_names": ["bad", "good"]}}  # the file's labels are negative/positive
    code, _, stderr = evaluate("--repo", ALICE, str(eval_file(tmp_path, wrong_names)))
    assert code == 2 and "Invalid evaluation file in" in stderr and "data: " in stderr and "label" in stderr, stderr
    assert hub.requests() == []


def test_labels_in_another_order_than_the_adapter_was_trained_with_are_an_error_not_a_grade(course, adapters, hub, tmp_path):
    """A TA who lists the labels in the wrong order would grade every student against swapped labels."""
    dave = "dave/hw3-reviews"
    hub.create_repo(dave)
    trained_with = yaml.safe_dump({"data": {"label_names": ["negative", "positive"]}}).encode()
    hub.commit_files(dave, {**files_of(adapters["better"], student_card("dave")), "config.yaml": trained_with})
    swapped = {**EVAL_FILE, "data": {**EVAL_DATA, "label_names": ["positive", "negative"]}}
    code, stdout, _ = evaluate("--repo", dave, str(eval_file(tmp_path, swapped)), "--output-dir", str(tmp_path / "out"), "--format", "json")
    row = json.loads(stdout)[0]
    assert code == 3 and row["status"] == "error" and row["adapter"] is None
    assert row["error"].startswith("labels do not match: the adapter was trained with data.label_names ['negative', 'positive'] (config.yaml at commit ")
    assert "the evaluation data's are ['positive', 'negative']" in row["error"]
    code, stdout, _ = evaluate("--repo", dave, str(eval_file(tmp_path)), "--output-dir", str(tmp_path / "out"), "--format", "json")
    assert code == 0 and json.loads(stdout)[0]["status"] == "ok"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-01", datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=timezone.utc)),
        ("2025-03-01T23:59:00+01:00", datetime(2025, 3, 1, 22, 59, tzinfo=timezone.utc)),
        ("2025-03-01T12:00Z", datetime(2025, 3, 1, 12, tzinfo=timezone.utc)),
    ],
)
def test_deadlines_are_iso_8601_dates_or_times_with_an_offset(text, expected):
    assert parse_moment(text) == expected


def test_the_results_go_into_each_card_through_one_pull_request(course, hub, tmp_path):
    from huggingface_hub import HfApi

    from hubcard.frontmatter import front_matter_data, split_front_matter

    staff_set = {**EVAL_FILE, "data": {**EVAL_DATA, "hub_id": "course/reviews-test"}}
    arguments = ("--repo", ALICE, "--repo", BOB, "--before", DEADLINE, "--output-dir", str(tmp_path / "out"), "--format", "json", "--pr")
    code, stdout, stderr = evaluate(*arguments, str(eval_file(tmp_path, staff_set)))
    rows = {row["repo_id"]: row for row in json.loads(stdout)}
    assert code == 1, stderr  # alice's and bob's adapters are the same
    assert [rows[repo_id]["card"]["done"] for repo_id in (ALICE, BOB)] == ["PR #1 opened", "PR #1 opened"]
    main_before = hub.files(ALICE)["README.md"]
    proposed = hub.files(ALICE, "refs/pr/1")["README.md"].decode()
    assert hub.files(ALICE)["README.md"] == main_before  # nothing on main
    # The student's text, her later edit on main and her own model-index entry are kept; the results added.
    assert STUDENT_TEXT in proposed and "A late change." in proposed and proposed.count("## Evaluation on held-out data") == 1
    assert f"[`{course[ALICE][:8]}`](https://huggingface.co/{ALICE}/tree/{course[ALICE]})" in proposed
    metadata = front_matter_data(split_front_matter(proposed)[0])
    assert metadata["license"] == "mit"
    results = metadata["model-index"][0]["results"]
    assert results[0]["dataset"]["type"] == "stanfordnlp/sst2" and results[0]["metrics"] == [{"type": "accuracy", "value": 0.91}]
    assert [result["dataset"]["type"] for result in results] == ["stanfordnlp/sst2", "course/reviews-test"]
    ours = {metric["type"]: metric["value"] for metric in results[1]["metrics"]}
    assert ours == {name: round(score["adapter"], 4) for name, score in rows[ALICE]["scores"].items()}
    # The same command again: hubcard's pull request holds these results already.
    code, stdout, _ = evaluate(*arguments, str(eval_file(tmp_path, staff_set)))
    assert [row["card"]["done"] for row in json.loads(stdout)] == ["PR #1 up to date", "PR #1 up to date"]
    assert len(hub.repo(ALICE).discussions) == 1 and len(hub.repo(BOB).discussions) == 1
    # Merged, then evaluated again with other settings: a new pull request replaces hubcard's results (section
    # and model-index entries) and keeps the student's.
    HfApi(token=hub.add_user("alice")).merge_pull_request(ALICE, 1)
    code, stdout, _ = evaluate(*arguments, str(eval_file(tmp_path, {**staff_set, "evaluation": {"batch_size": 8, "bootstrap_samples": 100}})))
    rows = {row["repo_id"]: row for row in json.loads(stdout)}
    assert rows[ALICE]["card"]["done"] == "PR #2 opened" and rows[BOB]["card"]["done"] == "PR #1 updated"
    again = hub.files(ALICE, "refs/pr/2")["README.md"].decode()
    assert again.count("## Evaluation on held-out data") == 1 and "100 resamples" in again and STUDENT_TEXT in again
    results = front_matter_data(split_front_matter(again)[0])["model-index"][0]["results"]
    assert [result["dataset"]["type"] for result in results] == ["stanfordnlp/sst2", "course/reviews-test"]
    assert [metric["type"] for metric in results[1]["metrics"]] == ["accuracy", "f1"]
    # A results section the student has edited since is kept as it is, and the row says so.
    HfApi(token=hub.add_user("bob")).merge_pull_request(BOB, 1)
    edited = hub.files(BOB)["README.md"].decode().replace("## Evaluation on held-out data\n", "## Evaluation on held-out data\n\nI think the test set is unfair.\n")
    hub.commit_files(BOB, {"README.md": edited.encode()}, title="My comment")
    code, stdout, _ = evaluate(*arguments, str(eval_file(tmp_path, staff_set)))
    row = {row["repo_id"]: row for row in json.loads(stdout)}[BOB]
    assert row["card"]["done"] == "nothing to change" and hub.files(BOB)["README.md"].decode() == edited
    assert row["card"]["kept"] == ["'evaluation on held-out data': written on the Hub, kept (in place of hubcard's)"]
    table = evaluate(*["table" if argument == "json" else argument for argument in arguments], str(eval_file(tmp_path, staff_set)))[1]
    assert next(line for line in table.splitlines() if line.startswith(BOB)).endswith("nothing to change; kept theirs")


def test_push_commits_the_results_where_the_token_may_write(course, hub, monkeypatch, tmp_path):
    arguments = ("--repo", BOB, str(eval_file(tmp_path)), "--before", DEADLINE, "--output-dir", str(tmp_path / "out"), "--format", "json", "--push")
    code, stdout, _ = evaluate(*arguments)  # the staff's token may not write to bob's repo
    row = json.loads(stdout)[0]
    assert code == 3 and row["status"] == "error" and row["error"].startswith("evaluated, but the results were not sent: ")
    assert "403" in row["error"] and row["adapter"] > row["base"]  # the scores are there all the same
    assert "this token may not write to the repo: --pr proposes the change instead" in row["error"]
    monkeypatch.setenv("HF_TOKEN", hub.add_user("bob"))
    code, stdout, _ = evaluate(*arguments)
    assert code == 0 and json.loads(stdout)[0]["card"]["done"].startswith("pushed ")
    card_text = hub.files(BOB)["README.md"].decode()
    assert STUDENT_TEXT in card_text and "## Evaluation on held-out data" in card_text and "model-index" in card_text  # hers, no entry of ours: local files
    assert json.loads(evaluate(*arguments)[1])[0]["card"]["done"] == "nothing to change"
    assert not hub.repo(BOB).discussions


def test_a_refreshed_card_and_the_results_share_hubcards_one_pull_request(course, hub, tmp_path):
    """The grading workflow of the README: render-card --pr, then evaluate --pr, then render-card --pr again.
    Two pull requests changing README.md would conflict once either is merged: there is one."""

    def refresh() -> str:
        result = CliRunner().invoke(cli, ["render-card", "--repo", ALICE, "--pr", "--format", "json"])
        assert result.exit_code in (0, 1), result.output
        return json.loads(result.stdout)[0]["done"]

    assert refresh() == "PR #1 opened"
    code, stdout, stderr = evaluate("--repo", ALICE, str(eval_file(tmp_path)), "--before", DEADLINE, "--output-dir", str(tmp_path / "out"), "--format", "json", "--pr")
    assert code == 0, stderr
    assert json.loads(stdout)[0]["card"]["done"] == "PR #1 updated"
    proposed = hub.files(ALICE, "refs/pr/1")["README.md"].decode()
    assert "library_name: peft" in proposed and "base_model: course/tiny-bert" in proposed  # the refresh's
    assert "## Evaluation on held-out data" in proposed and STUDENT_TEXT in proposed and "A late change." in proposed
    assert refresh() == "PR #1 up to date"  # the refreshed card keeps the results
    assert "## Evaluation on held-out data" in hub.files(ALICE, "refs/pr/1")["README.md"].decode()
    assert list(hub.repo(ALICE).pull_requests) == [1] and len(hub.repo(ALICE).discussions) == 1
