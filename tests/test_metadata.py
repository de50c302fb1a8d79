"""The one validator of card metadata (hubcard.metadata) and every place that uses it: config
validation before anything starts, the cards hubcard renders, `render-card --check`, `lint-card`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hubcard import card
from hubcard.cli import cli
from hubcard.config import validate_config
from hubcard.errors import CardError, ConfigError
from hubcard.frontmatter import split_front_matter
from hubcard.lint import check_card, lint_card
from hubcard.metadata import hub_lists, metadata_problems
from hubcard.rundir import RunDir, RunRecord
from tests.test_config import run_hubcard, valid_config, write_yaml

FIXTURES = Path(__file__).parent / "fixtures"
DATA_FILE = Path(__file__).parent.parent / "hubcard" / "hub_metadata.json"


def problems(metadata: dict) -> dict[str, str]:
    return {problem.key: problem.message for problem in metadata_problems(metadata)}


# --- the lists hubcard keeps -----------------------------------------------------------------


def test_the_hub_lists_parse_and_say_where_and_when_they_were_taken():
    raw = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    lists = hub_lists()
    assert set(lists) == {"licenses", "pipeline_tags", "library_names"} == {key for key, value in raw.items() if isinstance(value, dict)}
    for name, kept in lists.items():
        assert kept.values and len(set(kept.values)) == len(kept.values), name
        assert all(isinstance(value, str) and value == value.strip() and " " not in value for value in kept.values), name
        assert re.fullmatch(r"https://github\.com/huggingface/[\w.-]+/blob/[0-9a-f]{40}/\S+", kept.source), kept.source
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", kept.taken)
    assert {"apache-2.0", "mit", "cc-by-4.0", "llama3.1", "other", "unknown"} <= set(lists["licenses"].values)
    assert {"text-classification", "text-generation", "token-classification"} <= set(lists["pipeline_tags"].values)
    assert {"peft", "transformers", "sentence-transformers"} <= set(lists["library_names"].values)


# --- the validator ---------------------------------------------------------------------------

VALID = {
    "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "datasets": ["stanfordnlp/sst2", "glue"],
    "language": ["en", "ja", "gsw", "fre", "code"],
    "library_name": "peft",
    "license": "other",
    "license_name": "course-license-1.0",
    "license_link": "LICENSE",
    "metrics": ["accuracy"],
    "pipeline_tag": "text-classification",
    "tags": ["peft", "lora"],
    "widget": [{"text": "anything the validator does not type is left alone"}],
    "model-index": [
        {
            "name": "adapter",
            "results": [
                {
                    "task": {"type": "text-classification", "name": "Text Classification"},
                    "dataset": {"type": "stanfordnlp/sst2", "name": "SST-2", "config": "default", "split": "validation"},
                    "metrics": [{"type": "accuracy", "value": 0.85, "name": "Accuracy"}, {"type": "f1", "value": "0.84 ± 0.01"}],
                    "source": {"name": "hubcard", "url": "https://example.org"},
                }
            ],
        }
    ],
}


def test_valid_metadata_has_no_problem():
    assert metadata_problems(VALID) == []
    assert metadata_problems({}) == []
    assert metadata_problems({"base_model": ["org/model-a", "org/model-b"], "license": ["mit", "apache-2.0"], "language": "en"}) == []


@pytest.mark.parametrize(
    "metadata, key, expected",
    [
        ({"license": "Apache 2.0"}, "license", "'Apache 2.0' is not a license id of the Hub (did you mean 'apache-2.0'?)"),
        ({"license": "MIT"}, "license", "(did you mean 'mit'?)"),
        ({"license": "Apache License 2.0"}, "license", "(did you mean 'apache-2.0'?)"),
        ({"license": ["mit", "GPL-3.0-only"]}, "license[1]", "(did you mean 'gpl-3.0'?)"),
        ({"license": "other"}, "license_name", "required when license is `other`"),
        ({"license": "other", "license_name": "mine"}, "license_link", "required when license is `other`"),
        ({"language": ["en", "jp"]}, "language[1]", "'jp' is not an ISO 639-1, 639-2 or 639-3 language code (did you mean 'ja'?)"),
        ({"language": ["English"]}, "language[0]", "(did you mean 'en'?)"),
        ({"language": "Deutsch"}, "language", "(did you mean 'de'?)"),
        ({"language": ["EN"]}, "language[0]", "(did you mean 'en'?)"),
        ({"language": ["en-US"]}, "language[0]", "(did you mean 'en'?)"),
        ({"language": ["iw"]}, "language[0]", "(did you mean 'he'?)"),
        ({"language": ["xx"]}, "language[0]", "use codes such as en, fr, ja"),
        ({"datasets": ["the movie reviews I collected"]}, "datasets[0]", "is not a Hub data-set id but a sentence"),
        ({"datasets": ["./data/reviews.csv"]}, "datasets[0]", "is not a Hub data-set id but a file name or path"),
        ({"datasets": "reviews-validation.csv"}, "datasets", "is not a Hub data-set id"),
        ({"base_model": "/home/alice/models/minilm"}, "base_model", "is not a Hub model id"),
        ({"base_model": ["gpt2", "gpt2"]}, "base_model", "lists the same model more than once"),
        ({"pipeline_tag": "Text Classification"}, "pipeline_tag", "(did you mean 'text-classification'?)"),
        ({"library_name": "PEFT"}, "library_name", "(did you mean 'peft'?)"),
        ({"library_name": "sentence_transformers"}, "library_name", "(did you mean 'sentence-transformers'?)"),
        ({"tags": ["lora", 2024]}, "tags[1]", "must be a string, got 2024"),
        ({"tags": "lora"}, "tags", "must be a list of strings"),
        ({"metrics": [1]}, "metrics[0]", "must be a metric id"),
        ({"model-index": {"name": "x"}}, "model-index", "must be a list of models"),
        ({"model-index": [{"results": []}]}, "model-index[0].name", "required: a string"),
    ],
)
def test_each_problem_names_its_key_and_the_accepted_form(metadata, key, expected):
    found = problems(metadata)
    assert key in found, found
    assert expected in found[key]


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("dataset.config", 3, "must be a string, got 3"),
        ("dataset.type", "eval.jsonl", "is not a Hub data-set id"),
        ("dataset.name", None, "required: a string"),
        ("dataset.split", ["validation"], "must be a string, got a list"),
        ("dataset.revision", 5503434, "must be a string"),
        ("task.type", None, "required: a string"),
        ("task.type", "sentiment", "is not one of the Hub's pipeline tags"),
        ("task.name", 1, "must be a string"),
        ("metrics[0].value", None, "required: a number or a string"),
        ("metrics[0].value", [0.8], "must be a number or a string"),
        ("metrics[0].type", 7, "must be a string"),
        ("metrics[0].name", True, "must be a string"),
        ("source.url", None, "required: a string"),
    ],
)
def test_every_field_of_the_model_index_is_typed(path, value, expected):
    metadata = json.loads(json.dumps(VALID))
    node = metadata["model-index"][0]["results"][0]
    parts = re.sub(r"\[(\d+)\]", r".\1", path).split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    node[parts[-1]] = value
    key = "model-index[0].results[0]." + path
    found = problems(metadata)
    assert expected in found.get(key, ""), found


# --- the config: refused before anything starts --------------------------------------------------


def config_problems(tmp_path: Path, **sections) -> dict[str, str]:
    raw = valid_config(tmp_path)
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    with pytest.raises(ConfigError) as caught:
        validate_config(raw)
    return {problem.path: problem.message for problem in caught.value.problems}


def test_the_config_refuses_card_metadata_the_hub_would_refuse(tmp_path):
    found = config_problems(tmp_path, card={"license": "Apache 2.0", "language": ["English", "jp"]})
    assert set(found) == {"card.license", "card.language[0]", "card.language[1]"}
    assert "did you mean 'apache-2.0'?" in found["card.license"]
    assert "did you mean 'en'?" in found["card.language[0]"] and "did you mean 'ja'?" in found["card.language[1]"]

    found = config_problems(tmp_path, card={"license": "other"})
    assert set(found) == {"card.license_name", "card.license_link"}
    # Every problem at once, also when the card section has another one (a key hubcard takes from elsewhere).
    found = config_problems(tmp_path, card={"license": "other", "datasets": ["my reviews"], "language": ["English"]})
    assert set(found) == {"card.datasets", "card.license_name", "card.license_link", "card.language[0]"}
    assert "the card's datasets come from data.hub_id" in found["card.datasets"]
    raw = valid_config(tmp_path)
    raw["card"] = {"license": "other", "license_name": "course-license", "license_link": "LICENSE", "language": ["en", "ja"]}
    assert validate_config(raw).card.license_link == "LICENSE"

    found = config_problems(tmp_path, data={"hub_id": "my local reviews"}, model={"name_or_path": "openai-community/gpt2", "hub_id": "./gpt2"})
    assert "is not a Hub data-set id but a sentence" in found["data.hub_id"]
    assert "is not a Hub model id" in found["model.hub_id"]


def test_train_and_publish_stops_before_training_on_the_issues_metadata(tmp_path):
    raw = valid_config(tmp_path)
    raw["card"] = {"license": "Apache 2.0", "language": ["English", "jp"]}
    result = run_hubcard("train-and-publish", str(write_yaml(tmp_path, raw)))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "card.license: 'Apache 2.0' is not a license id of the Hub (did you mean 'apache-2.0'?)" in result.stderr
    assert "card.language[1]: 'jp' is not an ISO 639-1, 639-2 or 639-3 language code (did you mean 'ja'?)" in result.stderr
    assert not (tmp_path / "run").exists()


# --- cards: rendered, checked, linted ---------------------------------------------------------


def fixture_data(name: str) -> dict:
    return json.loads((FIXTURES / name / "run.json").read_text(encoding="utf-8"))


def test_a_local_copy_named_by_data_hub_id_is_what_datasets_and_the_model_index_name():
    data = fixture_data("causal-smollm2-dora")
    data["data"]["hub_id"] = "cardiffnlp/tweet_eval"
    data["data"]["name"] = "sentiment"
    text = card.render_card(RunRecord.model_validate(data))
    metadata = yaml.safe_load(split_front_matter(text)[0])
    assert metadata["datasets"] == ["cardiffnlp/tweet_eval"]
    dataset = metadata["model-index"][0]["results"][0]["dataset"]
    assert dataset == {"name": "cardiffnlp/tweet_eval (sentiment)", "type": "cardiffnlp/tweet_eval", "config": "sentiment", "split": "validation"}
    assert "[cardiffnlp/tweet\\_eval](https://huggingface.co/datasets/cardiffnlp/tweet_eval) (`sentiment` configuration) (the local copy `test.jsonl`)" in text
    assert check_card(text) == []


def test_local_files_without_a_hub_id_put_no_file_name_in_the_metadata():
    text = card.render_card(RunDir(FIXTURES / "causal-smollm2-dora").read())
    front = split_front_matter(text)[0]
    assert "jsonl" not in front and "datasets" not in yaml.safe_load(front) and "model-index" not in front
    assert "the local file `test.jsonl`" in text  # the body names the files as local data


def test_a_run_json_with_metadata_the_hub_refuses_is_not_rendered():
    data = fixture_data("seqcls-minilm-lora")
    data["config"]["card"]["license"] = "Apache 2.0"
    with pytest.raises(CardError, match=r"would be refused by the Hub.*\n  - license: 'Apache 2.0' is not a license id"):
        card.render_card(RunRecord.model_validate(data))


def test_a_base_models_own_license_or_language_the_hub_refuses_is_left_out(caplog):
    data = fixture_data("eval-only")
    data["model"]["license"] = "Apache License, Version 2.0"
    data["model"]["language"] = ["English"]
    metadata = yaml.safe_load(split_front_matter(card.render_card(RunRecord.model_validate(data)))[0])
    assert "license" not in metadata and "language" not in metadata
    assert "the base model's license 'Apache License, Version 2.0' is left out of the card" in caplog.text
    data["model"]["license"], data["model"]["language"] = "apache-2.0", ["en"]
    metadata = yaml.safe_load(split_front_matter(card.render_card(RunRecord.model_validate(data)))[0])
    assert metadata["license"] == "apache-2.0" and metadata["language"] == ["en"]


ISSUE_CARD = """---
base_model: sentence-transformers/all-MiniLM-L6-v2
license: Apache 2.0
language:
- English
- jp
datasets:
- the movie reviews I collected
- /home/ada/data/reviews.csv
model-index:
- name: reviews-adapter
  results:
  - task:
      type: text-classification
    dataset:
      type: reviews-validation.csv
      name: reviews
      config: 3
    metrics:
    - type: accuracy
      value: 0.9
---

# Reviews adapter

Trained for homework 3.
"""


def test_lint_card_and_render_card_check_report_every_key_the_hub_would_refuse(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(ISSUE_CARD, encoding="utf-8")
    expected = [
        "metadata: license: 'Apache 2.0'",
        "metadata: language[0]: 'English'",
        "metadata: language[1]: 'jp'",
        "metadata: datasets[0]: 'the movie reviews I collected'",
        "metadata: datasets[1]: '/home/ada/data/reviews.csv'",
        "metadata: model-index[0].results[0].dataset.type: 'reviews-validation.csv'",
        "metadata: model-index[0].results[0].dataset.config: must be a string, got 3",
    ]
    for found in ([problem.message for problem in lint_card(path).problems], check_card(ISSUE_CARD)):
        assert len(found) == len(expected), found
        assert all(any(message.startswith(start) for message in found) for start in expected), found

    result = CliRunner().invoke(cli, ["lint-card", str(path)])
    assert result.exit_code == 1 and "did you mean 'apache-2.0'?" in result.output and "did you mean 'ja'?" in result.output
