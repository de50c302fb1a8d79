"""The notebook API: an adapter trained in a notebook is evaluated, documented and published with the
functions the CLI uses."""

from __future__ import annotations

import dataclasses
import json

import pandas
import pytest
import torch

from hubcard import card
from hubcard.config import local_path
from hubcard.errors import ConfigError, HubcardError
from hubcard.notebook import document_adapter, publish_adapter
from hubcard.rundir import read_jsonl
from tests.factcheck import Given, fact_check
from tests.tiny import MINILM, REVIEWS

REPO = "ada/minilm-reviews-notebook"
LABELS = ["negative", "positive"]
FAKE_TOKEN = "hf_" + "Notebook" * 4


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """What a homework notebook holds after training: the PeftModel, its tokenizer, the Trainer."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments

    minilm = local_path(MINILM)
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    base = AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=2)
    model = get_peft_model(base, LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.1))
    train = pandas.read_csv(REVIEWS / "reviews-train.csv")
    train["labels"] = train["label"].map(LABELS.index)
    dataset = Dataset.from_pandas(train[["text", "labels"]]).map(lambda row: tokenizer(row["text"], truncation=True), remove_columns=["text"])
    arguments = TrainingArguments(
        output_dir=str(tmp_path_factory.mktemp("notebook") / "out"),
        num_train_epochs=8,
        per_device_train_batch_size=16,
        learning_rate=1e-3,
        logging_steps=5,
        save_strategy="no",
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer))
    trainer.train()
    return model, tokenizer, trainer


def test_the_card_of_a_notebook_run_says_who_set_what_and_states_only_true_facts(notebook, tmp_path):
    """The issue's notebook: lora_alpha=16 (PEFT's default is 8) is the student's, so are the
    TrainingArguments; use_cpu and dataloader_pin_memory at their defaults are no change; no command
    repeats the run; the training data (the trainer's) has its section. Then every fact, checked."""
    model, tokenizer, trainer = notebook
    config = {"model": {"hub_id": "sentence-transformers/all-MiniLM-L6-v2"}, "data": {"label_names": LABELS, "hub_id": "ada/reviews"}}
    outcome = publish_adapter(model, tokenizer, eval_frame(), tmp_path / "run", config=config, trainer=trainer)
    text = outcome.run_dir.card.read_text(encoding="utf-8")
    for row in ("| `lora_alpha` | `16` | your code |", "| `lora_dropout` | `0.1` | your code |", "| `r` | `8` | PEFT default |"):
        assert row in text
    assert "| `num_train_epochs` | `8` | your code |" in text and "| hubcard |" not in text
    assert "use_cpu" not in text and "dataloader_pin_memory" not in text
    assert "repeats the run" not in text and "train_split: validation" not in text and "train_split: null" in text
    assert "### Training Data\n\n220 examples of [ada/reviews](https://huggingface.co/datasets/ada/reviews), split `train`" in text
    assert "cut at 256 tokens" not in text and "hubcard's evaluation cuts each text at 256 tokens" in text

    given = Given(
        config=config,
        base_model_folder=local_path(MINILM),
        trainer_state=dataclasses.asdict(trainer.state),
        training_arguments=trainer.args,
        notebook=True,
        train_labels=[LABELS[label] for label in trainer.train_dataset["labels"]],
    )
    assert fact_check(outcome.run_dir.path, given) == []


def eval_frame() -> pandas.DataFrame:
    return pandas.read_csv(REVIEWS / "reviews-validation.csv")


def test_a_notebook_adapter_is_evaluated_documented_and_published_in_one_call(notebook, hub, monkeypatch, tmp_path):
    model, tokenizer, trainer = notebook
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ada", FAKE_TOKEN))
    config = {
        "model": {"hub_id": "sentence-transformers/all-MiniLM-L6-v2"},
        "data": {"label_names": LABELS},
        "card": {"developed_by": "Ada Lovelace", "license": "mit", "language": ["en"]},
        "hub": {"repo_id": REPO},
    }
    outcome = publish_adapter(model, tokenizer, eval_frame(), tmp_path / "run", config=config, trainer=trainer)

    record = outcome.run_dir.read()
    assert record.evaluation.rows == 80 and record.data.train.rows == len(trainer.train_dataset) == 220  # the trainer's, by default
    accuracy = next(c for c in record.evaluation.comparison if c.name == "accuracy")
    assert accuracy.adapter > 0.75 and accuracy.difference_interval[0] > 0
    assert record.training.global_steps == trainer.state.global_step
    assert record.training.arguments_changed["num_train_epochs"] == trainer.args.num_train_epochs == 8
    assert record.adapter.method == "lora" and record.model.hub_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert record.publish.repo_id == REPO and len(hub.commits(REPO)) == 2  # the Hub's initial commit, then hubcard's

    published = hub.files(REPO)
    text = published["README.md"].decode()
    assert card.check_card(text) == []
    assert "Ada Lovelace" in text and "#### Training Hyperparameters" in text and "`num_train_epochs`" in text
    assert {"adapter_model.safetensors", "adapter_config.json", "eval_results.json"} <= set(published)
    assert not any(path.startswith(("data/", "predictions/", "checkpoints/")) for path in published)


def test_the_recorded_predictions_are_the_notebook_models_own(notebook, tmp_path):
    """hubcard reloads the adapter it saved from the notebook: its predictions are the notebook's."""
    model, tokenizer, _ = notebook
    config = {"model": {"hub_id": "sentence-transformers/all-MiniLM-L6-v2"}, "data": {"label_names": LABELS}}
    outcome = publish_adapter(model, tokenizer, eval_frame(), tmp_path / "run", config=config)
    assert "Dry run" in outcome.publish_summary
    model.eval()
    with torch.inference_mode():
        for row in read_jsonl(outcome.run_dir.predictions / "adapter.jsonl"):
            logits = model(**tokenizer(row["text"], truncation=True, max_length=256, return_tensors="pt")).logits
            assert LABELS[logits.argmax(-1).item()] == row["prediction"]


def test_an_adapter_folder_and_a_list_of_rows_work_too(notebook, tmp_path):
    model, tokenizer, _ = notebook
    model.save_pretrained(tmp_path / "saved")
    rows = [{"review": text, "sentiment": label} for text, label in eval_frame().itertuples(index=False)][:24]
    config = {"data": {"label_names": LABELS, "text_column": "review", "label_column": "sentiment"}}
    run = document_adapter(tmp_path / "saved", tokenizer, rows, tmp_path / "run", config=config)
    record = run.read()
    assert record.data.eval.rows == 24 and record.training is None and record.adapter.method == "lora"
    assert record.model.hub_id is None  # a local base model with no Hub id given: never a path in the card


def test_a_notebook_config_is_checked_like_a_config_file(notebook, tmp_path):
    model, tokenizer, _ = notebook
    with pytest.raises(HubcardError, match=r"label_names.*give the label names"):
        document_adapter(model, tokenizer, eval_frame(), tmp_path / "a")
    with pytest.raises(HubcardError, match="peft: not a section.*read from the adapter"):
        document_adapter(model, tokenizer, eval_frame(), tmp_path / "b", config={"peft": {"r": 4}, "data": {"label_names": LABELS}})
    with pytest.raises(ConfigError, match="evaluation.batch_size: must be a positive integer"):
        document_adapter(model, tokenizer, eval_frame(), tmp_path / "c", config={"data": {"label_names": LABELS}, "evaluation": {"batch_size": 0}})
    with pytest.raises(HubcardError, match="row 1 has no column 'sentence'"):
        document_adapter(model, tokenizer, eval_frame(), tmp_path / "d", config={"data": {"label_names": LABELS, "text_column": "sentence"}})


def test_a_local_base_model_needs_base_model_before_anything_is_evaluated_or_sent(notebook, hub, monkeypatch, tmp_path):
    """The notebook's base model was loaded from a local folder: adapter_config.json must not name a folder."""
    model, tokenizer, _ = notebook
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ada", FAKE_TOKEN))
    config = {"data": {"label_names": LABELS}, "card": {"license": "mit"}, "hub": {"repo_id": REPO}}

    with pytest.raises(HubcardError, match=r"has no Hub id.*pass base_model='OWNER/NAME' to publish_adapter"):
        publish_adapter(model, tokenizer, eval_frame(), tmp_path / "run", config=config)
    assert (tmp_path / "run" / "run.json").exists() and not (tmp_path / "run" / "predictions").exists()  # not evaluated
    assert hub.repo(REPO) is None and not [record for record in hub.requests() if record.kind in ("create_repo", "commit")]

    base_model = "sentence-transformers/all-MiniLM-L6-v2"
    publish_adapter(model, tokenizer, eval_frame(), tmp_path / "run", config=config, base_model=base_model, overwrite=True)

    adapter_config = json.loads(hub.files(REPO)["adapter_config.json"])
    assert adapter_config["base_model_name_or_path"] == base_model


def test_the_training_data_can_be_its_size_alone_and_its_labels_are_checked(notebook, tmp_path):
    model, tokenizer, _ = notebook
    config = {"data": {"label_names": LABELS}, "card": {"license": "mit"}}
    run = document_adapter(model, tokenizer, eval_frame(), tmp_path / "run", config=config, train_data=6920)
    record = run.read()
    assert (record.data.train.rows, record.data.train.label_counts, record.data.train.name) == (6920, None, "train")
    assert "6,920 examples of local data, as given to hubcard: your own code trained the adapter on them." in card.render_card(record)
    with pytest.raises(HubcardError, match=r"train_data: labels neutral are not in config\['data'\]\['label_names'\]"):
        document_adapter(model, tokenizer, eval_frame(), tmp_path / "other", config=config, train_data=[{"label": "neutral"}])
    assert not (tmp_path / "other" / "adapter").exists()  # refused before anything of the adapter was written
