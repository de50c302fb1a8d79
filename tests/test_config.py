"""The config: every error at once, located by its YAML path, with a "did you mean"; overrides."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from hubcard.config import load_config, redact, validate_config
from hubcard.errors import ConfigError

FAKE_TOKEN = "hf_" + "Tk" * 17  # looks like a token, is none


def valid_config(tmp_path: Path) -> dict:
    train = tmp_path / "train.csv"
    dev = tmp_path / "dev.csv"
    for file in (train, dev):
        file.write_text("text,label\ngood,1\nbad,0\n")
    return {
        "model": {"name_or_path": "openai-community/gpt2"},
        "task": {"type": "sequence-classification"},
        "data": {"files": {"train": str(train), "validation": str(dev)}, "label_names": ["negative", "positive"]},
        "peft": {"method": "lora", "r": 8, "lora_alpha": 16},
        "training": {"num_train_epochs": 1, "learning_rate": 2e-4},
        "run_dir": str(tmp_path / "run"),
    }


def write_yaml(tmp_path: Path, data, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def problems_of(raw) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(raw)
    return {problem.path: problem.message for problem in caught.value.problems}


def test_valid_config_loads_with_typed_sections(tmp_path):
    config = validate_config(valid_config(tmp_path))
    assert config.peft.method == "lora" and config.peft.options == {"r": 8, "lora_alpha": 16}
    assert config.training["learning_rate"] == 2e-4
    assert config.evaluation.metrics == ["accuracy", "f1"]
    peft_config = config.peft.to_peft_config(config.task.type)
    assert (peft_config.r, peft_config.lora_alpha, peft_config.task_type) == (8, 16, "SEQ_CLS")


def test_every_problem_is_reported_at_once_with_its_path(tmp_path):
    raw = valid_config(tmp_path)
    raw["model"] = {"name_or_pth": "gpt2"}  # misspelt key, and so the required field is missing
    raw["peft"]["r"] = "eight"
    raw["peft"]["lora_alpah"] = 16
    raw["training"]["num_train_epoch"] = 3
    raw["data"]["max_length"] = "long"
    problems = problems_of(raw)
    assert problems["model.name_or_pth"] == "unknown key (did you mean 'name_or_path'?)"
    assert problems["model.name_or_path"] == "required, but missing"
    assert problems["peft.r"] == "must be a positive integer, got 'eight'"
    assert problems["peft.lora_alpah"] == "not an option of LoraConfig (did you mean 'lora_alpha'?)"
    assert problems["training.num_train_epoch"] == "not an option of TrainingArguments (did you mean 'num_train_epochs'?)"
    assert problems["data.max_length"] == "must be an integer, got 'long'"


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("peft", "r", -4, "must be a positive integer, got -4"),
        ("peft", "lora_dropout", 1.5, "must be a fraction in [0, 1), got 1.5"),
        ("peft", "use_rslora", "maybe", "must be true or false, got 'maybe'"),
        ("training", "learning_rate", "fast", "must be a number, got 'fast'"),
        ("training", "per_device_train_batch_size", 0, "must be greater than 0, got 0"),
        ("training", "output_dir", "elsewhere", "set by hubcard"),
        ("training", "push_to_hub", True, "set by hubcard"),
        ("task", "type", "regression", "must be one of 'sequence-classification' or 'causal-lm', got 'regression'"),
        ("evaluation", "metrics", ["accuracy", "bleu"], None),
        ("hub", "repo_id", "not a repo id", "must be of the form owner/name, got 'not a repo id'"),
        ("hub", "private", "yes please", "must be true or false, got 'yes please'"),
    ],
)
def test_wrong_values_name_key_and_expectation(tmp_path, section, key, value, expected):
    raw = valid_config(tmp_path)
    raw.setdefault(section, {})[key] = value
    problems = problems_of(raw)
    if section == "evaluation":
        assert problems["evaluation.metrics[1]"].startswith("must be one of 'accuracy'")
        return
    assert expected in problems[f"{section}.{key}"]


def test_unknown_peft_method_suggests_the_nearest(tmp_path):
    raw = valid_config(tmp_path)
    raw["peft"] = {"method": "lorra"}
    message = problems_of(raw)["peft.method"]
    assert message.startswith("unknown PEFT method 'lorra' (did you mean 'lora'?)")
    assert all(method in message for method in ("dora", "ia3", "loha", "lokr", "adalora", "prompt_tuning"))


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "loha", "lokr", "adalora", "prompt_tuning"])
def test_each_method_validates_with_its_own_config_class(tmp_path, method):
    raw = valid_config(tmp_path)
    raw["peft"] = {"method": method, "not_an_option": 1}
    assert problems_of(raw)["peft.not_an_option"].startswith("not an option of ")
    raw["peft"] = {"method": method, **({"num_virtual_tokens": 8} if method == "prompt_tuning" else {})}
    if method == "adalora":
        raw["peft"]["total_step"] = 10
    config = validate_config(raw)
    peft_config = config.peft.to_peft_config(config.task.type)
    assert peft_config.task_type == "SEQ_CLS"
    assert getattr(peft_config, "use_dora", False) == (method == "dora")


def test_peft_class_own_checks_are_reported_under_peft(tmp_path):
    raw = valid_config(tmp_path)
    raw["peft"] = {"method": "adalora"}  # AdaLoraConfig itself requires total_step
    assert "AdaLoraConfig refused the options" in problems_of(raw)["peft"]


def test_hubcard_owned_peft_options_are_refused(tmp_path):
    raw = valid_config(tmp_path)
    raw["peft"]["task_type"] = "CAUSAL_LM"
    assert "set by hubcard" in problems_of(raw)["peft.task_type"]


def test_missing_required_sections_and_fields(tmp_path):
    problems = problems_of({"model": {"name_or_path": "gpt2"}, "run_dir": str(tmp_path)})
    assert problems["task"] == problems["data"] == problems["peft"] == "required section is missing"
    raw = valid_config(tmp_path)
    raw["task"] = {}
    raw["peft"] = {"r": 8}
    problems = problems_of(raw)
    assert problems["task.type"] == problems["peft.method"] == "required, but missing"


@pytest.mark.parametrize("section", ["model", "task", "data", "peft", "training", "evaluation", "card", "hub"])
def test_a_section_of_the_wrong_type(tmp_path, section):
    raw = valid_config(tmp_path)
    raw[section] = ["a", "list"]
    assert problems_of(raw)[section].startswith("must be a mapping")


def test_unknown_top_level_key(tmp_path):
    raw = valid_config(tmp_path)
    raw["trainig"] = {}
    assert problems_of(raw)["trainig"] == "unknown key (did you mean 'training'?)"


def test_data_needs_exactly_one_source_and_files_for_its_splits(tmp_path):
    raw = valid_config(tmp_path)
    raw["data"]["path"] = "stanfordnlp/sst2"
    assert "exactly one" in problems_of(raw)["data"]
    raw = valid_config(tmp_path)
    raw["data"]["eval_split"] = "test"
    assert problems_of(raw)["data.files"].startswith("no file for split 'test'; the splits it has files for are: train, validation")


def test_missing_local_files_are_reported_before_anything_starts(tmp_path):
    raw = valid_config(tmp_path)
    raw["data"]["files"]["train"] = str(tmp_path / "nope.csv")
    raw["model"]["name_or_path"] = str(tmp_path / "no-model")
    problems = problems_of(raw)
    assert problems["data.files.train"] == f"file not found: {tmp_path / 'nope.csv'}"
    assert problems["model.name_or_path"] == f"no such file or folder: {tmp_path / 'no-model'}"


def test_causal_lm_options_are_checked(tmp_path):
    raw = valid_config(tmp_path)
    raw["task"] = {"type": "causal-lm", "prompt_template": "no placeholder", "label_words": ["bad", "good", "meh"]}
    problems = problems_of(raw)
    assert problems["task.prompt_template"] == "must contain {text}, where the example goes"
    raw["task"]["prompt_template"] = "Text: {text}"
    assert problems_of(raw)["task.label_words"].startswith("needs one word per label in data.label_names (2), got 3")
    raw = valid_config(tmp_path)
    raw["task"]["prediction"] = "generate"
    assert problems_of(raw)["task.prediction"] == "only used when task.type is causal-lm"


def test_a_token_in_the_config_is_refused_without_echoing_it(tmp_path):
    raw = valid_config(tmp_path)
    raw["hub"] = {"repo_id": "me/adapter", "token": FAKE_TOKEN}
    raw["card"] = {"description": f"see {FAKE_TOKEN}"}
    with pytest.raises(ConfigError) as caught:
        validate_config(raw)
    message = str(caught.value)
    assert FAKE_TOKEN not in message
    assert "hub.token: a token does not belong in the config" in message
    assert "card.description: a token does not belong in the config" in message
    assert "HF_TOKEN" in message
    assert "hf auth login" in message


def test_redact_drops_token_keys_and_masks_token_strings():
    redacted = redact({"hub": {"token": FAKE_TOKEN, "repo_id": "me/x"}, "card": {"description": FAKE_TOKEN}})
    assert redacted == {"hub": {"repo_id": "me/x"}, "card": {"description": "hf_***"}}


def test_file_errors(tmp_path):
    cases = {
        "missing.yaml": None,
        "empty.yaml": "",
        "broken.yaml": "model: [unclosed\n",
        "list.yaml": "- model\n- task\n",
    }
    messages = {}
    for name, text in cases.items():
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_config(tmp_path / name)
        messages[name] = str(caught.value)
    assert "file not found" in messages["missing.yaml"]
    assert "the file is empty" in messages["empty.yaml"]
    assert "not valid YAML at line 2" in messages["broken.yaml"]
    assert "must be a mapping of sections, got a list" in messages["list.yaml"]


def test_overrides_are_yaml_values_merged_into_the_sections(tmp_path):
    path = write_yaml(tmp_path, valid_config(tmp_path))
    config = load_config(path, ["training.learning_rate=1e-4", "peft.r=16", "hub.repo_id=me/x", "evaluation.metrics=[accuracy]"])
    assert config.training["learning_rate"] == pytest.approx(1e-4)  # YAML reads 1e-4 as a string: converted
    assert config.peft.options["r"] == 16
    assert config.hub.repo_id == "me/x"
    assert config.evaluation.metrics == ["accuracy"]
    with pytest.raises(ConfigError) as caught:
        load_config(path, ["peft.rr=16", "no-equals-sign"])
    paths = [problem.path for problem in caught.value.problems]
    assert "peft.rr" in paths and "no-equals-sign" in paths


def test_relative_paths_resolve_against_the_config_file_and_overrides_against_cwd(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    for name in ("train.csv", "dev.csv"):
        (folder / "data" / name).write_text("text,label\nok,0\n")
    raw = valid_config(tmp_path)
    raw["data"]["files"] = {"train": "data/train.csv", "validation": "data/dev.csv"}
    del raw["run_dir"]
    path = write_yaml(folder, raw)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "other.csv").write_text("text,label\nok,0\n")
    monkeypatch.chdir(elsewhere)
    config = load_config(path, ["data.files.validation=other.csv"])
    assert config.data.files == {"train": str(folder / "data" / "train.csv"), "validation": str(elsewhere / "other.csv")}
    assert config.run_dir == str(elsewhere / "runs" / "config")


def test_fingerprint_follows_what_is_trained_not_how_it_is_published(tmp_path):
    raw = valid_config(tmp_path)
    first = validate_config(raw).fingerprint()
    raw["hub"] = {"repo_id": "me/other"}
    raw["card"] = {"license": "mit"}
    assert validate_config(raw).fingerprint() == first
    raw["peft"]["r"] = 4
    assert validate_config(raw).fingerprint() != first


# --- the command line -------------------------------------------------------------------------


def run_hubcard(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hubcard", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_reports_config_errors_with_exit_code_2_and_starts_nothing(tmp_path):
    raw = valid_config(tmp_path)
    raw["peft"]["lora_alpah"] = 16
    raw["training"]["num_train_epoch"] = 3
    path = write_yaml(tmp_path, raw)
    result = run_hubcard("train", str(path), "peft.r=eight")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "peft.r: must be a positive integer, got 'eight'" in result.stderr
    assert "peft.lora_alpah: not an option of LoraConfig (did you mean 'lora_alpha'?)" in result.stderr
    assert "training.num_train_epoch" in result.stderr
    assert not (tmp_path / "run").exists()


HELP_PROBE = textwrap.dedent(
    """
    import sys
    from click.testing import CliRunner
    from hubcard.cli import cli
    runner = CliRunner()
    outputs = [runner.invoke(cli, [*command, "--help"]) for command in {commands!r}]
    heavy = sorted(name for name in ("torch", "transformers", "peft", "datasets") if name in sys.modules)
    print(heavy)
    for result in outputs:
        assert result.exit_code == 0, result.output
        print(result.output)
    """
)


def test_help_answers_without_importing_torch_and_shows_examples():
    commands = [[], ["train-and-publish"], ["train"], ["evaluate"], ["render-card"], ["publish"], ["lint-card"], ["init"]]
    result = subprocess.run(
        [sys.executable, "-c", HELP_PROBE.format(commands=commands)], capture_output=True, text=True, check=True
    )
    heavy, _, helps = result.stdout.partition("\n")
    assert heavy == "[]"
    for command in commands[1:]:
        assert f"hubcard {command[0]}" in helps
    assert helps.count("Example:") == len(commands) - 1


def test_init_writes_a_starter_config_that_validates(tmp_path):
    result = run_hubcard("init", "config.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "config.yaml").read_text()
    assert "#" in text  # commented
    config = load_config(tmp_path / "config.yaml")
    assert config.peft.method == "lora"
    again = run_hubcard("init", "config.yaml", cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_qlora_loads_the_base_model_in_4bit(tmp_path):
    raw = valid_config(tmp_path)
    raw["peft"]["method"] = "qlora"
    config = validate_config(raw)
    assert config.model.load_in_4bit and config.peft.peft_type == "LORA"
    assert validate_config(config.to_dict()).model.load_in_4bit  # run.json's config says so too
    raw["model"]["load_in_4bit"] = False
    assert problems_of(raw) == {
        "model.load_in_4bit": "peft.method qlora loads the base model in 4-bit; remove load_in_4bit: false, or use peft.method lora"
    }


def test_a_key_given_twice_is_an_error_naming_both_lines_and_a_merge_may_override(tmp_path):
    raw = valid_config(tmp_path)
    text = yaml.safe_dump(raw) + "task: {type: causal-lm, type: sequence-classification}\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write_yaml(tmp_path, text))
    lines = text.splitlines()
    first = next(number for number, line in enumerate(lines, 1) if line.startswith("task:"))
    assert [str(problem) for problem in caught.value.problems] == [
        f"task: given twice, at lines {first} and {len(lines)}; YAML would silently keep only the last one: remove one of them",
        f"task.type: given twice, on line {len(lines)}; YAML would silently keep only the last one: remove one of them",
    ]

    merged = yaml.safe_dump(raw).replace("peft:\n", "defaults: &defaults\n  r: 4\npeft:\n  <<: *defaults\n")
    with pytest.raises(ConfigError) as caught:  # `defaults` is no section, but the merge itself is no duplicate
        load_config(write_yaml(tmp_path, merged))
    assert [problem.path for problem in caught.value.problems] == ["defaults"]
