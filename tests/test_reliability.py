"""Issue 8: under bad input, faults and hostile data hubcard keeps working, loses nothing and leaks nothing.

Every test drives hubcard the way a user does, through the `hubcard` command: in a subprocess where
the real process matters (what it prints and imports, a signal, the token it is given), else with
click's CliRunner. Each checks that the message names the problem and where, that nothing was
started (no run directory, no model loaded) and that nothing was lost (a previous run, or the folder
the command ran on, byte-identical). README.md's "What hubcard guarantees" quotes what they measure.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from click.testing import CliRunner
from huggingface_hub import metadata_load

from hubcard import rundir
from hubcard.cli import INTERRUPTED_EXIT_CODE, cli
from hubcard.lint import scan_markdown
from hubcard.rundir import RunDir, RunRecord, read_jsonl
from tests.publishable import FIXTURE
from tests.test_card import HOSTILE_TEXTS, MARKDOWN, shown_as, table_after, with_examples
from tests.tiny import REVIEWS, config_dict, tiny_model, write_config

REPO = "alice/hostile-reviews-lora"
FAKE_TOKEN = "hf_" + "AliceReliabilityToken" + "x7" * 7  # recognisable, and shaped like a real token
LOGIN_TOKEN = "hf_" + "SavedByHfAuthLogin" + "q1" * 8
LABELS = ["negative", "positive"]
GOOD_CSV = "text,label\nA warm and funny film.,positive\nA dull and endless film.,negative\n"
REMOTE_CODE_RAN = "remote-code-ran"
"""Written by the remote-code model's own Python file when transformers imports it."""
REMOTE_CODE = '''\
from pathlib import Path

from transformers import BertConfig, BertForSequenceClassification

Path({marker!r}).write_text("the model's own code ran")


class RemoteBertConfig(BertConfig):
    pass


class RemoteBertForSequenceClassification(BertForSequenceClassification):
    config_class = RemoteBertConfig
'''


def hubcard(*arguments: str):
    return CliRunner().invoke(cli, list(arguments))


def contents(folder: Path, leave_out: str | None = None) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `folder` by relative path, but the subfolder `leave_out`."""
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
        if path.relative_to(folder).parts[0] != leave_out
    }


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Path:
    return tiny_model("bert", tmp_path_factory.mktemp("tiny-bert") / "model")


@pytest.fixture(scope="module")
def remote_code_model(bert, tmp_path_factory) -> Path:
    """The tiny BERT with Python code of its own (config.json's auto_map), as a Hub repo can ship it:
    the code writes REMOTE_CODE_RAN next to the model folder when it is imported."""
    model = Path(shutil.copytree(bert, tmp_path_factory.mktemp("remote-code") / "model"))
    (model / "remote_bert.py").write_text(REMOTE_CODE.format(marker=str(model.parent / REMOTE_CODE_RAN)), encoding="utf-8")
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {
        "AutoConfig": "remote_bert.RemoteBertConfig",
        "AutoModelForSequenceClassification": "remote_bert.RemoteBertForSequenceClassification",
    }
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return model


# --- the whole pipeline, once: hostile evaluation data, a recognisable token --------------------------


@dataclass(frozen=True)
class Published:
    folder: Path
    """Where the user worked: the config, the hostile data, the run directory."""
    config: Path
    run: Path
    hf_home: Path
    stdout: bytes
    stderr: bytes
    uploaded: dict[str, bytes]
    """The repo's files after the pipeline's publish."""


@pytest.fixture(scope="module")
def published(hub_server, remote_code_model, tmp_path_factory) -> Published:
    """`hubcard train-and-publish` as a user runs it: a subprocess, HF_TOKEN set (and the same token saved
    by a login), huggingface_hub's debug logging on, evaluation data made of hostile texts, and the
    remote-code model with no trust_remote_code in the config."""
    folder = tmp_path_factory.mktemp("published")
    hostile = folder / "hostile.jsonl"
    rows = [{"text": text, "label": LABELS[index % 2]} for index, text in enumerate(HOSTILE_TEXTS)]
    hostile.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    raw = config_dict(
        remote_code_model,
        "sequence-classification",
        folder / "run",
        data={"files": {"train": str(REVIEWS / "reviews-train.csv"), "validation": str(hostile)}, "max_length": 8},
        evaluation={"num_examples": len(rows)},
        model={"hub_id": "someone/tiny-bert"},  # the Hub id that the published adapter_config.json names
        hub={"repo_id": REPO},
    )
    config = write_config(raw, folder)
    hf_home = folder / "hf-home"
    hf_home.mkdir()
    (hf_home / "token").write_text(FAKE_TOKEN, encoding="utf-8")
    hub_server.reset()
    hub_server.add_user("alice", FAKE_TOKEN)
    environment = {**os.environ, "HF_TOKEN": FAKE_TOKEN, "HF_HOME": str(hf_home), "HF_DEBUG": "1", "HF_HUB_VERBOSITY": "debug"}
    result = subprocess.run(
        [sys.executable, "-m", "hubcard", "train-and-publish", str(config)], capture_output=True, cwd=folder, env=environment
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert f"Published {REPO} (branch main) in one commit".encode() in result.stdout
    return Published(folder, config, folder / "run", hf_home, result.stdout, result.stderr, hub_server.files(REPO))


def copy_run(published: Published, tmp_path: Path) -> Path:
    return Path(shutil.copytree(published.run, tmp_path / "run"))


@pytest.fixture
def alice(hub, monkeypatch) -> str:
    """Alice owns REPO's namespace; her token is the one huggingface_hub uses (HF_TOKEN)."""
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return hub.add_user("alice", FAKE_TOKEN)


# --- bad input: a clear error, nothing started, nothing lost -------------------------------------------


@dataclass(frozen=True)
class BadInput:
    name: str
    says: tuple[str, ...]
    """What the error message must say; `{folder}` is the folder of the case."""
    config: str | Callable[[dict[str, Any], Path], None] | None = None
    """The config file's text, or a change to a valid config (given the case's folder)."""
    files: dict[str, str | bytes] = field(default_factory=dict)
    """Files written next to the config, over good train.csv and validation.csv."""
    exit_code: int = 2
    before_torch: bool = False
    """Refused before torch is even imported."""
    edit: Callable[[str], str] | None = None
    """A change to the config file's text, after the config is written (a key given twice)."""


def refused_after_the_config(name: str, says: str, files: dict[str, str | bytes] | None = None, config=None) -> BadInput:
    """A case whose config is valid: the data or the run directory is refused (exit 1)."""
    return BadInput(name, (says,), config, files or {}, exit_code=1)


def not_installed_integration() -> str:
    """A reporting integration transformers knows whose package is not installed here."""
    return next(name for name in ("wandb", "neptune", "clearml", "dvclive") if importlib.util.find_spec(name) is None)


def setting(key: str, value: Any) -> Callable[[dict[str, Any], Path], None]:
    """A change that sets the dotted `key` of the config to `value`."""

    def change(raw: dict[str, Any], folder: Path) -> None:
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    return change


def hub_style_data_set(raw: dict[str, Any], folder: Path) -> None:
    """data.path: a data set folder (loaded the way a Hub data set is), with no split 'test'."""
    del raw["data"]["files"]
    raw["data"].update(path=str(folder / "dataset"), eval_split="test")


SECTIONS = ("model", "task", "data", "peft", "training", "evaluation", "card", "hub")
BAD_INPUTS = [
    # The config file (exit 2).
    BadInput("empty-file", ("config.yaml (1 problem)", "the file is empty; `hubcard init` writes a starter config"), "", before_torch=True),
    BadInput("not-yaml", ("not valid YAML at line 2",), "model: [unclosed\n", before_torch=True),
    BadInput("a-yaml-list", ("the config must be a mapping of sections, got a list",), "- model\n- task\n", before_torch=True),
    *[BadInput(f"{name}-not-a-mapping", (f"  - {name}: must be a mapping",), setting(name, ["a", "list"])) for name in SECTIONS],
    BadInput("unknown-method", ("peft.method: unknown PEFT method 'lorra' (did you mean 'lora'?)",), setting("peft.method", "lorra")),
    BadInput("negative-r", ("peft.r: must be a positive integer, got -4",), setting("peft.r", -4)),
    BadInput("no-such-model", ("model.name_or_path: no such file or folder: {folder}/nowhere",), setting("model.name_or_path", "./nowhere")),
    BadInput("no-such-data-file", ("data.files.train: file not found: {folder}/missing.csv",), setting("data.files.train", "missing.csv")),
    BadInput(
        "no-such-split",
        ("data.files: no file for split 'test'", "the splits it has files for are: train, validation"),
        setting("data.eval_split", "test"),
    ),
    BadInput(  # YAML itself keeps the last: r 64 would be trained
        "a-key-given-twice",
        ("peft.r: given twice, at lines 19 and 20; YAML would silently keep only the last one",),
        edit=lambda text: text.replace("  r: 4\n", "  r: 4\n  r: 64\n"),
    ),
    BadInput(  # IA3 would be trained instead of LoRA
        "a-section-given-twice",
        ("peft: given twice, at lines 16 and 27; YAML would silently keep only the last one",),
        edit=lambda text: text + "peft:\n  method: ia3\n",
    ),
    BadInput(
        "text-column-is-the-label-column",
        ("data.label_column: is the text column too ('label'): the model would read the label as its input",),
        setting("data.text_column", "label"),
    ),
    BadInput(
        "a-model-folder-without-config-json",
        ("model.name_or_path: {folder}/model is a folder without config.json, so it is not a transformers model folder",),
        setting("model.name_or_path", "./model"),
        {"model/model.safetensors": b"weights without their config"},
    ),
    BadInput(
        "a-reporting-integration-not-installed",
        (f"training.report_to: '{not_installed_integration()}': its package is not installed",),
        setting("training.report_to", [not_installed_integration()]),
    ),
    # The data (exit 1).
    refused_after_the_config(
        "no-label-column",
        "data.label_column: split 'train' ({folder}/train.csv) has no column 'label'; its columns are: text, sentiment",
        {"train.csv": GOOD_CSV.replace("text,label", "text,sentiment")},
    ),
    refused_after_the_config(
        "labels-not-in-label-names",
        "data.label_names: split 'train' ({folder}/train.csv) has labels that are not in the label names: neutral",
        {"train.csv": GOOD_CSV + "Just a film.,neutral\n"},
    ),
    refused_after_the_config(
        "null-text",
        "data.text_column: split 'train' ({folder}/train.csv): the text in column 'text' is empty or missing in row 2",
        {"train.csv": GOOD_CSV.replace("A dull and endless film.", "")},
    ),
    refused_after_the_config(
        "blank-text",
        "data.text_column: split 'validation' ({folder}/validation.jsonl): the text in column 'text' is empty or missing in row 1",
        {"validation.jsonl": '{"text": "  ", "label": "positive"}\n'},
        setting("data.files.validation", "validation.jsonl"),
    ),
    refused_after_the_config(
        "a-label-missing",
        "data.label_column: split 'train' ({folder}/train.csv): the label in column 'label' is missing in row 3 "
        "(line 4 of the file)",
        {"train.csv": GOOD_CSV + "A film.,\n"},
    ),
    refused_after_the_config(  # pandas would take the first field for an index and shift the columns
        "an-extra-field-in-the-first-row",
        "data.files.train: {folder}/train.csv, line 2: 3 fields, but the header (line 1) has 2 (text, label); a text "
        "that holds a comma must be in quotes",
        {"train.csv": GOOD_CSV.replace("A warm and funny film.", "A warm, funny film.")},
    ),
    refused_after_the_config(
        "a-quote-that-never-closes",
        "data.files.train: {folder}/train.tsv, line 3: a quoted text starts here and its closing quote never comes",
        {"train.tsv": 'text\tlabel\nA warm film.\tpositive\n"A dull film.\tnegative\nA fine film.\tpositive\n'},
        setting("data.files.train", "train.tsv"),
    ),
    refused_after_the_config(
        "a-broken-json-line",
        "data.files.validation: cannot read {folder}/validation.jsonl as json: line 3 is not valid JSON: Expecting ',' "
        "delimiter (column 17)",
        {"validation.jsonl": '{"text": "Good.", "label": "positive"}\n\n{"text": "Bad." "label": "negative"}\n'},
        setting("data.files.validation", "validation.jsonl"),
    ),
    refused_after_the_config(
        "empty-split",
        "data.files.validation: split 'validation' ({folder}/validation.csv) is empty: it needs at least one row",
        {"validation.csv": "text,label\n"},
    ),
    refused_after_the_config(
        "no-such-split-in-a-data-set",
        "data.eval_split: {folder}/dataset has no split 'test'; its splits are: train, validation",
        {"dataset/train.csv": GOOD_CSV, "dataset/validation.csv": GOOD_CSV},
        hub_style_data_set,
    ),
    refused_after_the_config(
        "not-utf-8",
        "data.files.train: cannot read {folder}/train.csv as csv: 'utf-8' codec can't decode byte 0xe9",
        {"train.csv": "text,label\nUn film épatant.,positive\n".encode("latin-1")},
    ),
    refused_after_the_config(
        "not-parquet",
        "data.files.train: cannot read {folder}/train.parquet as parquet: Parquet magic bytes not found",
        {"train.parquet": b"PAR1 cut short by a failed download"},
        setting("data.files.train", "train.parquet"),
    ),
    # The run directory (exit 1).
    refused_after_the_config(
        "a-different-run",
        "{folder}/run holds a different run (trained from another config on 2025-11-20 14:02); pass --overwrite to replace it",
        {"run/run.json": FIXTURE.read_bytes()},
    ),
    refused_after_the_config(
        "read-only-run-dir",  # sysfs: nobody may create a file there, root included
        "cannot write to the run directory /sys/hubcard-run:",
        config=setting("run_dir", "/sys/hubcard-run"),
    ),
    refused_after_the_config(
        "a-file-in-the-way",
        "cannot create the run directory {folder}/notes.txt/run: {folder}/notes.txt is a file, not a folder",
        {"notes.txt": "Years of notes."},
        setting("run_dir", "notes.txt/run"),
    ),
]

# Runs each case's `hubcard train` in one process, in order (those refused before torch first), and
# reports after each what it exited with and whether torch or the model's code was imported.
PROBE = """
import json, sys
from hubcard.cli import cli

for name, arguments in json.loads(sys.argv[1]):
    print(f"=== {name}", file=sys.stderr, flush=True)
    try:
        cli(arguments, prog_name="hubcard")
        code = 0
    except SystemExit as exit:
        code = exit.code
    imported = {"torch": "torch" in sys.modules, "model": "transformers.models.bert.modeling_bert" in sys.modules}
    print(json.dumps({"name": name, "code": code, **imported}), flush=True)
"""


@dataclass(frozen=True)
class Outcome:
    folder: Path
    before: dict[str, bytes | None]
    after: dict[str, bytes | None]
    code: int
    stderr: str
    torch: bool
    model: bool


def write_case(case: BadInput, folder: Path, model: Path) -> Path:
    folder.mkdir()
    for name, content in {"train.csv": GOOD_CSV, "validation.csv": GOOD_CSV, **case.files}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    config = folder / "config.yaml"
    if isinstance(case.config, str):
        config.write_text(case.config, encoding="utf-8")
        return config
    raw = config_dict(model, "sequence-classification", Path("run"), data={"files": {"train": "train.csv", "validation": "validation.csv"}})
    if case.config is not None:
        case.config(raw, folder)
    text = yaml.safe_dump(raw)
    config.write_text(case.edit(text) if case.edit else text, encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def bad_input_outcomes(bert, tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("bad-input")
    cases = sorted(BAD_INPUTS, key=lambda case: not case.before_torch)
    arguments = [(case.name, ["train", str(write_case(case, root / case.name, bert))]) for case in cases]
    before = {case.name: contents(root / case.name) for case in cases}
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(arguments)], capture_output=True, text=True, cwd=root)
    reports = {report["name"]: report for report in map(json.loads, re.findall(r'^\{"name".*$', result.stdout, re.MULTILINE))}
    stderr = dict(re.findall(r"^=== (\S+)\n(.*?)(?=^=== |\Z)", result.stderr, re.MULTILINE | re.DOTALL))
    assert len(reports) == len(cases), result.stderr[-3000:]
    return {
        case.name: Outcome(
            root / case.name, before[case.name], contents(root / case.name), reports[case.name]["code"],
            stderr[case.name], reports[case.name]["torch"], reports[case.name]["model"],
        )  # fmt: skip
        for case in cases
    }


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.name for case in BAD_INPUTS])
def test_bad_input_is_refused_with_a_clear_error_before_anything_starts(case, bad_input_outcomes):
    outcome = bad_input_outcomes[case.name]
    assert outcome.code == case.exit_code, outcome.stderr
    for said in case.says:
        assert said.format(folder=outcome.folder) in outcome.stderr
    assert "Traceback" not in outcome.stderr
    assert outcome.after == outcome.before  # no run directory made, nothing changed or removed
    assert not outcome.model  # the base model was never loaded
    if case.before_torch:
        assert not outcome.torch
    if case.name == "read-only-run-dir":
        assert not Path("/sys/hubcard-run").exists()


def test_a_disk_without_room_for_a_run_is_reported_before_training(bert, tmp_path, monkeypatch):
    config = write_config(config_dict(bert, "sequence-classification", tmp_path / "run"), tmp_path)
    free = shutil.disk_usage(tmp_path).free
    monkeypatch.setattr(rundir, "MIN_FREE_BYTES", free + 2**30)  # the real disk, asked for more than it has
    before = contents(tmp_path)

    result = hubcard("train", str(config))

    assert result.exit_code == 1
    assert f"MiB free on the disk of {tmp_path / 'run'}; a run needs at least {(free + 2**30) / 2**20:.0f} MiB" in result.stderr
    assert "--run-dir" in result.stderr
    assert contents(tmp_path) == before


def test_the_same_run_is_left_as_it_is_and_a_changed_config_is_refused(published, tmp_path):
    run = copy_run(published, tmp_path)
    before = contents(run)

    same = hubcard("train", str(published.config), "--run-dir", str(run))
    different = hubcard("train", str(published.config), "peft.r=2", "--run-dir", str(run))

    assert same.exit_code == 0, same.output
    assert different.exit_code == 1
    assert f"{run} holds a different run" in different.stderr and "--overwrite" in different.stderr
    assert contents(run) == before


@pytest.mark.parametrize(
    "template, says",
    [
        ("# {{ model_name | text }}\n\n{% if %}\n", "broken.md.j2, line 3: template syntax error"),
        ("# {{ model_name | text }}\n\n{{ modle_name }}\n", "broken.md.j2, line 3: 'modle_name' is undefined"),
    ],
    ids=["syntax-error", "unknown-fact"],
)
def test_a_broken_card_template_names_its_file_and_line_and_keeps_the_card(published, tmp_path, template, says):
    run = copy_run(published, tmp_path)
    (tmp_path / "broken.md.j2").write_text(template, encoding="utf-8")
    before = contents(run)

    result = hubcard("render-card", str(run), "--template", str(tmp_path / "broken.md.j2"))

    assert result.exit_code == 1
    assert says in result.stderr
    assert "Traceback" not in result.output
    assert contents(run) == before


BROKEN_CARD_BODY = "# My adapter\n\nI wrote this card by hand; it must survive a refresh.\n"


@pytest.mark.parametrize(
    "front_matter, lint_says",
    [("", "metadata: no YAML front matter"), ("---\nlicense: [mit\n---\n", "metadata: not valid YAML")],
    ids=["no-front-matter", "broken-yaml"],
)
def test_a_hub_card_with_broken_metadata_is_reported_and_repaired_keeping_its_body(hub, tmp_path, front_matter, lint_says):
    adapter_config = {"base_model_name_or_path": "sentence-transformers/all-MiniLM-L6-v2", "peft_type": "LORA", "task_type": "SEQ_CLS"}
    hub.create_repo(REPO)
    hub.commit_files(
        REPO, {"README.md": (front_matter + BROKEN_CARD_BODY).encode(), "adapter_config.json": json.dumps(adapter_config).encode()}
    )

    lint = hubcard("lint-card", REPO)
    refresh = hubcard("render-card", "--repo", REPO, "--output", str(tmp_path))
    card = tmp_path / f"{REPO.replace('/', '--')}.README.md"

    assert lint.exit_code == 1 and lint_says in lint.output
    assert refresh.exit_code == (1 if front_matter else 0), refresh.output  # lines kept as comments are for a person to fix
    repaired = card.read_text(encoding="utf-8")
    assert BROKEN_CARD_BODY in repaired
    metadata = metadata_load(card)
    assert metadata["library_name"] == "peft" and metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert lint_says not in hubcard("lint-card", str(card)).output
    assert len(hub.commits(REPO)) == 2  # nothing pushed


# --- faults: a killed training run, a failing Hub -------------------------------------------------------


def wait_for_a_checkpoint(run: RunDir, process: subprocess.Popen, timeout: float = 300) -> None:
    """Poll until the Trainer saved a complete checkpoint; run.json, whenever it exists, must be whole."""
    deadline = time.monotonic() + timeout
    while run.last_checkpoint() is None:
        assert process.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint in time"
        if run.run_json.exists():
            RunRecord.model_validate_json(run.run_json.read_text(encoding="utf-8"))
        time.sleep(0.02)


@pytest.mark.parametrize(
    "signal_number, returncode, says",
    [
        (signal.SIGINT, INTERRUPTED_EXIT_CODE, "Interrupted. Run the same command again with --resume to continue from the last checkpoint."),
        (signal.SIGKILL, -signal.SIGKILL, ""),
    ],
    ids=["SIGINT", "SIGKILL"],
)
def test_training_killed_midway_resumes_to_the_configured_steps(bert, tmp_path, signal_number, returncode, says):
    steps, every = 120, 4  # the kill lands just after the first checkpoint, long before the end
    training = {"max_steps": steps, "save_steps": every, "logging_steps": 1}
    config = write_config(config_dict(bert, "sequence-classification", tmp_path / "run", training=training), tmp_path)
    run = RunDir(tmp_path / "run")
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "hubcard", "train", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            # A parent that ignores SIGINT (a shell's background job, a CI runner) passes SIG_IGN on,
            # and Python then never raises KeyboardInterrupt: give the child what a terminal's Ctrl-C meets.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            wait_for_a_checkpoint(run, process)
            process.send_signal(signal_number)
            process.wait(timeout=120)
        finally:
            process.kill()
    printed = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert process.returncode == returncode, printed[-3000:]
    assert says in printed and "Traceback" not in printed
    assert run.read().training is None  # run.json is whole, and says training has not finished
    last = run.last_checkpoint()
    cut_short = run.checkpoints / f"checkpoint-{int(last.name.removeprefix('checkpoint-')) + every}"  # the next one, cut by the kill
    cut_short.mkdir(exist_ok=True)
    (cut_short / "trainer_state.json").write_text('{"global_step": ', encoding="utf-8")

    result = hubcard("train", str(config), "--resume")

    assert result.exit_code == 0, result.output
    facts = run.read().training
    assert facts.global_steps == steps
    assert Path(facts.resumed_from_checkpoint).name == last.name
    assert [entry["step"] for entry in facts.log_history if "loss" in entry] == list(range(1, steps + 1))


class HubFault(NamedTuple):
    kind: str
    failure: dict[str, Any]
    says: str
    """What the error says when the retries have run out."""
    retrying: str
    """What is logged before each retry."""


PUBLISHING = f"publishing to {REPO} failed"
HUB_FAULTS = {
    "connection-dropped-mid-lfs-upload": HubFault(
        "lfs_upload",
        {"drop": True},
        "Error while uploading 'adapter_model.safetensors' to the Hub. Nothing was committed.",
        "Retrying in 1s [Retry 1/5]",  # huggingface_hub's own retries
    ),
    "500-on-commit": HubFault(
        "commit", {"status": 500}, "The Hub failed (500: injected 500 on commit), also when asked again.", f"{PUBLISHING} (500:"
    ),
    "429-with-retry-after": HubFault(
        "commit", {"status": 429, "headers": {"Retry-After": "1"}}, "(429 Too Many Requests): wait 1 s", f"{PUBLISHING} (429:"
    ),
    "timeout": HubFault(  # HUBCARD_HUB_TIMEOUT=1; the server drops the request after 2 s
        "commit", {"hang": 2}, "did not answer within 1 s", f"{PUBLISHING} (timed out); trying again in 1 s"
    ),
}


@pytest.mark.parametrize("fault", HUB_FAULTS)
def test_a_failing_hub_is_reported_and_one_more_publish_makes_one_commit(published, hub, alice, tmp_path, monkeypatch, caplog, fault):
    kind, failure, says, retrying = HUB_FAULTS[fault]
    monkeypatch.setenv("HUBCARD_HUB_TIMEOUT", "1")
    run = copy_run(published, tmp_path)
    before = contents(run, leave_out="repo")  # RUN_DIR/repo: the view, rebuilt by each publish
    hub.fail(kind, times=None, **failure)

    failed = hubcard("publish", str(run))

    assert failed.exit_code == 1
    assert says in failed.stderr and f"un `hubcard publish {run}` again" in failed.stderr
    assert "Traceback" not in failed.output
    assert len(hub.requests(kind)) > 1 and retrying in caplog.text  # retried, with back-off, before giving up
    assert contents(run, leave_out="repo") == before
    assert hub.repo(REPO) is None and "deleted it again" in failed.stderr  # the repo it created is removed: no empty repo

    hub.clear_faults()
    again = hubcard("publish", str(run))

    assert again.exit_code == 0, again.output
    assert len(hub.commits(REPO)) == 2  # exactly one commit for the whole publish
    assert hub.files(REPO) == published.uploaded


# --- secrets and trust --------------------------------------------------------------------------------


def holding(needle: str, files: list[Path]) -> list[Path]:
    return [path for path in files if path.is_file() and needle.encode() in path.read_bytes()]


def test_the_token_is_never_printed_written_logged_or_uploaded(published, hub_server):
    assert FAKE_TOKEN.encode() not in published.stdout + published.stderr
    assert b"Request" in published.stderr  # huggingface_hub did log its requests
    written = [path for path in published.folder.rglob("*") if path != published.hf_home / "token"]  # the login's own file
    assert {"config.yaml", "run.json", "README.md", "training_args.bin", "adapter.jsonl"} <= {path.name for path in written}
    assert holding(FAKE_TOKEN, written) == []  # the config, the data, the whole run directory, the caches
    assert published.uploaded and holding(FAKE_TOKEN, hub_server.stored_objects()) == []


def test_a_saved_login_token_the_hub_refuses_is_not_in_the_error(published, hub, tmp_path):
    run = copy_run(published, tmp_path)
    hf_home = tmp_path / "hf-home"
    hf_home.mkdir()
    (hf_home / "token").write_text(LOGIN_TOKEN, encoding="utf-8")  # as `hf auth login` saves it
    environment = {key: value for key, value in os.environ.items() if key != "HF_TOKEN"} | {"HF_HOME": str(hf_home)}

    result = subprocess.run([sys.executable, "-m", "hubcard", "publish", str(run)], capture_output=True, text=True, env=environment)

    assert result.returncode == 1
    assert "The Hub refused the token (401 Unauthorized" in result.stderr and "Traceback" not in result.stderr
    assert LOGIN_TOKEN not in result.stdout + result.stderr
    assert holding(LOGIN_TOKEN, list(run.rglob("*"))) == []


@pytest.mark.parametrize("where", ["adapter/tokenizer_config.json", "README.md"])
def test_a_token_looking_string_in_the_repo_view_blocks_the_upload_naming_the_file(published, hub, alice, tmp_path, where):
    run = copy_run(published, tmp_path)
    planted = "hf_" + "PastedByMistake" * 3
    with (run / where).open("a", encoding="utf-8") as file:
        file.write(f"\n{planted}\n")

    result = hubcard("publish", str(run))

    assert result.exit_code == 1
    assert f"Refusing to publish: {Path(where).name} holds a string that looks like a Hugging Face token" in result.stderr
    assert planted not in result.output
    assert hub.requests() == []  # nothing was sent


UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def tables(markdown: str) -> list[list[str]]:
    """The lines of each Markdown table outside code blocks."""
    found: list[list[str]] = []
    previous_in_table = False
    for _, line, in_code in scan_markdown(markdown):
        in_table = not in_code and line.startswith("|")
        if in_table and not previous_in_table:
            found.append([])
        if in_table:
            found[-1].append(line)
        previous_in_table = in_table
    return found


def test_hostile_texts_from_the_data_reach_the_card_as_data(published, tmp_path):
    result = hubcard("render-card", str(published.run), "--output", str(tmp_path / "README.md"), "--check")
    card = (tmp_path / "README.md").read_text(encoding="utf-8")

    assert result.exit_code == 0, result.output
    assert card.encode() == published.uploaded["README.md"]  # what was published, rendered again the same
    assert metadata_load(tmp_path / "README.md")["library_name"] == "peft"  # the front matter is the card's own
    assert "evil" not in yaml.safe_dump(metadata_load(tmp_path / "README.md"))
    for table in tables(card):  # every row has its header's columns: no data broke out of a cell
        assert len({len(UNESCAPED_PIPE.findall(line)) for line in table}) == 1, table
    examples = table_after(card, "Examples")
    assert sorted(html.unescape(row[0]) for row in examples) == sorted(shown_as(text) for text in HOSTILE_TEXTS)
    assert {row[4] for row in examples} <= {"fixed by the adapter", "broken by the adapter", "still wrong", "both right"}
    rendered = MARKDOWN.render(card)
    assert "{{ 7*7 }} and {% if true %}jinja{% endif %}" in html.unescape(rendered) and "49 and" not in rendered
    for leak in ("<script", "<img src=x", 'href="https://evil.example'):
        assert leak not in rendered
    texts = sorted(row["text"] for row in read_jsonl(published.run / "predictions" / "adapter.jsonl"))
    assert texts == sorted(HOSTILE_TEXTS)  # kept exactly, control characters and all


def test_the_base_models_own_code_runs_only_when_the_config_trusts_it(published, remote_code_model, tmp_path):
    record = RunDir(published.run).read()
    assert not (remote_code_model.parent / REMOTE_CODE_RAN).exists()
    assert record.model.trust_remote_code is False and record.model.architecture == "BertForSequenceClassification"
    assert "Remote code" not in published.uploaded["README.md"].decode()

    trusting = {"model": {"trust_remote_code": True}, "training": {"max_steps": 1}}
    raw = config_dict(remote_code_model, "sequence-classification", tmp_path / "run", **trusting)
    trained = hubcard("train", str(write_config(raw, tmp_path)))
    rendered = hubcard("render-card", str(tmp_path / "run"), "--check")

    assert trained.exit_code == 0 and rendered.exit_code == 0, trained.output + rendered.output
    assert (remote_code_model.parent / REMOTE_CODE_RAN).exists()
    assert RunDir(tmp_path / "run").read().model.architecture == "RemoteBertForSequenceClassification"
    card = (tmp_path / "run" / "README.md").read_text(encoding="utf-8")
    assert "- **Remote code:** the base model was loaded with `trust_remote_code=True`" in card
    assert "trust_remote_code=True" in card.split("```python")[1]  # the usage snippet asks for it too


# --- what the base model cannot take: refused before its weights are loaded ----------------------------


@pytest.fixture(scope="module")
def bert_without_weights(bert, tmp_path_factory) -> Path:
    """The tiny BERT with its weights file replaced by junk: loading the weights would fail, so a config
    error from this model proves the weights were never loaded."""
    model = Path(shutil.copytree(bert, tmp_path_factory.mktemp("junk-weights") / "model"))
    (model / "model.safetensors").write_bytes(b"junk, not weights")
    return model


@pytest.mark.parametrize(
    "change, says",
    [
        (
            {"data": {"max_length": 1024}},
            "data.max_length: data.max_length is 1024 tokens, but the base model takes at most 512 positions "
            "(max_position_embeddings in its config.json); set data.max_length to 512 or less",
        ),
        (
            {"peft": {"method": "lora", "r": 4, "target_modules": ["q_proj", "v_proj"]}},
            "peft.target_modules: the model has no module named 'q_proj', 'v_proj'; its layers an adapter can target "
            "include: word_embeddings, position_embeddings, token_type_embeddings, query, key, value, dense, classifier",
        ),
        (
            {"peft": {"method": "ia3", "target_modules": r".*\.attn\..*", "feedforward_modules": []}},
            r"peft.target_modules: the pattern '.*\\.attn\\..*' matches no module of the model; its layers",
        ),
    ],
    ids=["max-length-beyond-the-positions", "target-modules-it-lacks", "a-pattern-that-matches-nothing"],
)
def test_what_the_model_cannot_take_is_refused_before_its_weights_load(bert_without_weights, tmp_path, change, says):
    raw = config_dict(bert_without_weights, "sequence-classification", tmp_path / "run", **change)
    config = write_config(raw, tmp_path)
    before = contents(tmp_path)

    result = hubcard("train", str(config))

    assert result.exit_code == 2, result.output  # a config error, not the junk weights' load error
    assert says in result.stderr
    assert "Traceback" not in result.output
    assert contents(tmp_path) == before  # no run directory, no run.json, no checkpoint


# --- one process per run directory ------------------------------------------------------------------------


def test_a_second_process_on_a_run_directory_in_use_stops_at_once_naming_the_first(bert, tmp_path):
    run = tmp_path / "run"
    # a tiny model takes 5,000 steps in well under a minute: the first process must still be training
    # when the others have been tried, however slow the machine is
    long_training = {"max_steps": 10**8, "save_steps": 10**8, "logging_steps": 10**6}
    first = write_config(config_dict(bert, "sequence-classification", run, training=long_training), tmp_path)
    (tmp_path / "other").mkdir()
    other = write_config(config_dict(bert, "sequence-classification", run, peft={"method": "lora", "r": 2}), tmp_path / "other")
    with (tmp_path / "stderr.txt").open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "hubcard", "train", str(first)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in the kill-and-resume test
        )
        try:
            deadline = time.monotonic() + 300
            while not RunDir(run).exists():  # the first process holds the lock and has started training
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
                time.sleep(0.05)
            others = {
                "train": hubcard("train", str(other)),
                "evaluate": hubcard("evaluate", str(run)),
                "render-card": hubcard("render-card", str(run)),
                "publish": hubcard("publish", str(run), "--dry-run"),
            }
            still_training = process.poll() is None
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=120)
            process.kill()

    assert still_training, (tmp_path / "stderr.txt").read_text()

    for command, result in others.items():
        assert result.exit_code == 1, (command, result.output)
        assert f"{run} is in use by another hubcard process (PID {process.pid} on " in result.stderr, command
        assert f"-m hubcard train {first}`" in result.stderr, command  # the first one's command
        assert "wait until it has finished, or use another run directory" in result.stderr
    assert process.returncode == INTERRUPTED_EXIT_CODE
    assert RunDir(run).read().config["peft"]["r"] == 4  # the first run's record: the second replaced nothing
    assert not (run / "README.md").exists() and not (run / "repo").exists()


# --- a project moved or copied elsewhere, an adapter deleted ------------------------------------------------


def test_a_moved_or_copied_project_resumes_evaluates_and_publishes_with_its_own_data(bert, tmp_path):
    project = tmp_path / "alice" / "homework"
    (project / "data").mkdir(parents=True)
    for split in ("train", "validation"):
        shutil.copy(REVIEWS / f"reviews-{split}.csv", project / "data" / f"{split}.csv")
    files = {"train": "data/train.csv", "validation": "data/validation.csv"}
    write_config(config_dict(bert, "sequence-classification", Path("runs/lora"), data={"files": files}), project)
    assert hubcard("train-and-publish", str(project / "config.yaml")).exit_code == 0

    moved = Path(shutil.move(project, tmp_path / "bob" / "homework"))  # the old folder is gone
    copied = Path(shutil.copytree(moved, tmp_path / "carol" / "homework"))
    trained = {folder: hubcard("train", str(folder / "config.yaml")) for folder in (moved, copied)}
    lines = (copied / "data" / "validation.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (copied / "data" / "validation.csv").write_text("".join(lines[:11]), encoding="utf-8")  # the copy's own data: 10 rows
    evaluated = hubcard("evaluate", str(copied / "runs" / "lora"))
    published = hubcard("publish", str(copied / "runs" / "lora"), "--dry-run")

    for folder, result in trained.items():
        assert result.exit_code == 0 and "holds a different run" not in result.output, (folder, result.output)
    record = RunDir(copied / "runs" / "lora").read()
    assert record.config["data"]["files"] == {"train": "./data/train.csv", "validation": "./data/validation.csv"}
    assert record.config["run_dir"] == "./runs/lora" and record.data.files == record.config["data"]["files"]
    assert evaluated.exit_code == 0 and published.exit_code == 0, evaluated.output + published.output
    assert record.evaluation.rows == 10  # read from the copy, not from the folder it was copied from
    assert "data/validation.csv" not in (copied / "runs" / "lora" / "repo" / "config.yaml").read_text(encoding="utf-8")

    # A run stopped before its end (run.json says training has not finished) resumes in the moved folder.
    unfinished = RunDir(moved / "runs" / "lora")
    unfinished.write(unfinished.read().model_copy(update={"training": None}))
    resumed = hubcard("train", str(moved / "config.yaml"), "--resume")

    assert resumed.exit_code == 0, resumed.output
    assert unfinished.read().training.resumed_from_checkpoint == "checkpoints/checkpoint-4"


def test_a_deleted_adapter_is_said_and_saved_again(bert, tmp_path):
    config = write_config(config_dict(bert, "sequence-classification", tmp_path / "run"), tmp_path)
    run = RunDir(tmp_path / "run")
    assert hubcard("train", str(config)).exit_code == 0
    trained = run.read().training
    saved = Path(shutil.copy(run.adapter / "adapter_model.safetensors", tmp_path / "saved.safetensors"))
    shutil.rmtree(run.adapter)

    evaluated = hubcard("evaluate", str(run.path))
    restored = hubcard("train", str(config))

    assert evaluated.exit_code == 1
    assert f"{run.adapter} is missing or incomplete" in evaluated.stderr and "run `hubcard train CONFIG` again" in evaluated.stderr
    assert restored.exit_code == 0, restored.output
    assert f"Adapter saved in {run.adapter}" in restored.output and run.has_adapter()
    assert run.read().training == trained  # saved from the final checkpoint: nothing trained again
    assert_same_tensors(run.adapter / "adapter_model.safetensors", saved)

    shutil.rmtree(run.adapter)
    shutil.rmtree(run.checkpoints)
    retrained = hubcard("train", str(config))

    assert retrained.exit_code == 0, retrained.output
    assert run.has_adapter() and run.read().training.resumed_from_checkpoint is None  # trained anew


def assert_same_tensors(file: Path, other: Path) -> None:
    from safetensors.torch import load_file

    tensors, expected = load_file(file), load_file(other)
    assert tensors.keys() == expected.keys() and all(tensors[name].equal(expected[name]) for name in tensors)


# --- data in the card and the upload: masked, cut, never taken for a missing fact ----------------------------


def copy_project(published: Published, tmp_path: Path, text_of_the_last_row: str) -> Path:
    """A copy of the published run's project (config, data, run directory) whose last evaluation text is
    replaced, and whose run.json names that file by its absolute path."""
    project = Path(shutil.copytree(published.folder, tmp_path / "project"))
    data = project / "hostile.jsonl"
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    rows[-1]["text"] = text_of_the_last_row
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    run = RunDir(project / "run")
    record = run.read()
    record.config["data"]["files"]["validation"] = str(data)
    run.write(record)
    return project


DATA_TOKEN = "hf_" + "QuotedInATweet" + "z9" * 10  # looks like a token, and is data


def test_a_token_like_string_in_the_evaluation_data_is_masked_in_the_upload_and_kept_in_the_predictions(
    published, hub, alice, tmp_path
):
    run = copy_project(published, tmp_path, f"My key is {DATA_TOKEN}, oops") / "run"

    results = [
        hubcard("evaluate", str(run)),
        hubcard("render-card", str(run), "--check"),
        hubcard("publish", str(run), "--dry-run"),
        hubcard("publish", str(run)),
    ]

    for result in results:
        assert result.exit_code == 0, result.output
    uploaded = hub.files(REPO)
    for name in ("README.md", "eval_results.json", "config.yaml"):
        assert DATA_TOKEN.encode() not in uploaded[name], name
    examples = json.loads(uploaded["eval_results.json"])["examples"]
    assert any(example["text"] == "My key is hf_***, oops" and not example["exact"] for example in examples)
    assert "My key is hf\\_\\*\\*\\*, oops" in uploaded["README.md"].decode()  # the card shows the masked text
    assert DATA_TOKEN not in uploaded["README.md"].decode().split("```python")[1]  # nor does the snippet quote it
    assert any(row["text"] == f"My key is {DATA_TOKEN}, oops" for row in read_jsonl(run / "predictions" / "adapter.jsonl"))


def test_a_huge_text_costs_memory_in_proportion_and_only_its_beginning_is_uploaded(published, tmp_path):
    huge = "word " * 4_000_000  # 20 MB in one text
    peaks, runs = {}, {}
    for name, text in (("short", "A short text."), ("huge", huge)):
        run = runs[name] = copy_project(published, tmp_path / name, text) / "run"
        measured = subprocess.run(
            [sys.executable, "-c", PEAK_MEMORY, sys.executable, "-m", "hubcard", "evaluate", str(run)],
            capture_output=True,
            text=True,
        )
        assert measured.returncode == 0, measured.stderr[-3000:]
        peaks[name] = int(measured.stdout.split()[-1]) * 1024  # ru_maxrss: KiB
    run = runs["huge"]
    published_huge = hubcard("publish", str(run), "--dry-run")

    assert peaks["huge"] - peaks["short"] < 15 * len(huge)  # tokenizing it whole took 160 bytes per character
    assert published_huge.exit_code == 0, published_huge.output
    example = next(example for example in RunDir(run).read().evaluation.examples if example.text.startswith("word word"))
    assert len(example.text) == 1000 and not example.exact
    assert (run / "repo" / "eval_results.json").stat().st_size < 50_000
    assert (run / "repo" / "README.md").stat().st_size < 100_000
    assert any(row["text"] == huge for row in read_jsonl(run / "predictions" / "adapter.jsonl"))  # kept whole locally


PEAK_MEMORY = """
import resource, subprocess, sys
result = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
if result.returncode:
    sys.exit(result.stderr[-3000:])
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


@pytest.mark.parametrize("name", ["seqcls-minilm-lora", "causal-smollm2-dora"])
def test_data_that_reads_like_a_missing_fact_passes_the_card_checks(tmp_path, name):
    texts = ["None", "nan", "NaN", "inf", "-inf", "[More Information Needed]", "Reply: None (more information needed)"]
    fixture = json.loads((FIXTURE.parent.parent / name / "run.json").read_text(encoding="utf-8"))
    first_label = fixture["data"]["label_names"][0]
    record = with_examples(name, texts)  # and a class named None
    record = RunRecord.model_validate_json(record.model_dump_json().replace(json.dumps(first_label), '"None"'))
    run = tmp_path / "run"
    RunDir(run).write(record)

    checked = hubcard("render-card", str(run), "--check")
    linted = hubcard("lint-card", str(run / "README.md"))

    assert checked.exit_code == 0, checked.output
    assert "placeholder" not in linted.output and "None" not in linted.output, linted.output
    card = (run / "README.md").read_text(encoding="utf-8")
    assert [html.unescape(row[0]) for row in table_after(card, "Examples")] == texts  # shown as written
    assert [html.unescape(re.sub(r"<[^>]+>", "", row[1])) for row in table_after(card, "Examples")] == ["None"] * len(texts)


def test_every_card_field_the_user_gives_is_escaped(tmp_path):
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    hostile = '<img src=x onerror="alert(1)">'
    data["config"]["card"] = {
        "contact": f"{hostile} or [alice](https://huggingface.co/alice)",
        "description": f"<script>alert(1)</script> A **bold** claim.\n\n- a list\n- {hostile}",
        "direct_use": "<iframe src=https://evil.example></iframe>",
        "repository": "<a href='javascript:alert(1)'>code</a>",
        "citation": f"Alice (2025). {hostile}",
        "license": "mit",
    }
    run = tmp_path / "run"
    RunDir(run).write(RunRecord.model_validate(data))

    result = hubcard("render-card", str(run), "--check")

    assert result.exit_code == 0, result.output
    rendered = MARKDOWN.render((run / "README.md").read_text(encoding="utf-8"))
    for leak in ("<img src=x", "<script", "<iframe", "javascript:alert(1)'>"):
        assert leak not in rendered
    assert "<strong>bold</strong>" in rendered and re.search(r"<li>\s*(<p>)?a list", rendered)  # Markdown still works
    assert '<a href="https://huggingface.co/alice">alice</a>' in rendered
    assert html.unescape(rendered).count(hostile) == 6  # each shown as the text it is, and in the config block


def test_files_hubcard_writes_have_the_usual_permissions(published):
    umask = os.umask(0o022)
    os.umask(umask)
    # Checkpoints are written by the Trainer (safetensors makes its files 0600); hubcard keeps them to itself.
    run = RunDir(published.run)
    written = [path for path in run.path.rglob("*") if path.name != ".hubcard.lock" and run.checkpoints not in (path, *path.parents)]

    files = {path.relative_to(published.run): oct(path.stat().st_mode & 0o777) for path in written if path.is_file()}
    folders = {path.relative_to(published.run): oct(path.stat().st_mode & 0o777) for path in written if path.is_dir()}

    expected = {"run.json", "README.md", "predictions/adapter.jsonl", "adapter/adapter_model.safetensors", "repo/README.md"}
    assert set(map(Path, expected)) <= files.keys()
    assert set(files.values()) == {oct(0o666 & ~umask)}, files  # what `touch` makes, not 0600
    assert set(folders.values()) == {oct(0o777 & ~umask)}, folders
