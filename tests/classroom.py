"""A class of student adapter repos on the loopback Hub, for the tests of the commands course staff run
(`hubcard audit`, `hubcard render-card --repo`): six typical repos of homework 3, two students who pushed
the same adapter, and a staff account that cannot read the private one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import ModelCard, ModelCardData

from hubcard.card import config_yaml, render_card
from hubcard.cli import cli
from hubcard.rundir import RunDir

FIXTURES = Path(__file__).parent / "fixtures"
LORA = {
    "base_model_name_or_path": "sentence-transformers/all-MiniLM-L6-v2", "peft_type": "LORA", "task_type": "SEQ_CLS",
    "r": 8, "lora_alpha": 16, "target_modules": ["query", "value"], "use_dora": False,
}  # fmt: skip
DORA = {
    "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct", "peft_type": "LORA", "task_type": "CAUSAL_LM",
    "r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "v_proj"], "use_dora": True,
}  # fmt: skip
USES = (
    "The adapter labels English movie-review sentences as positive or negative for the course's third homework. "
    "It is meant for short single sentences like those of SST-2, not for long reviews or other languages."
)
LIMITATIONS = (
    "It was trained on 3,000 sentences only, all from movie reviews written around 2000, so it inherits their "
    "vocabulary and biases; sarcasm and negation across clauses are often wrong."
)
GOOD_CARD = f"""---
base_model: sentence-transformers/all-MiniLM-L6-v2
library_name: peft
license: mit
datasets:
- stanfordnlp/sst2
---

# Eve's SST-2 adapter

A LoRA adapter for sentiment classification.

## Uses

{USES}

## Bias, Risks, and Limitations

{LIMITATIONS}

## Training Details

### Training Data

3,000 sentences of [SST-2](https://huggingface.co/datasets/stanfordnlp/sst2), split `train`.

## Evaluation

### Results

| Model | Accuracy |
|---|---|
| Base model (zero-shot head) | 0.49 |
| This adapter | 0.85 |
"""
TRAINER_CARD = """---
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
library_name: peft
license: apache-2.0
tags:
- base_model:adapter:HuggingFaceTB/SmolLM2-135M-Instruct
- lora
- transformers
---

<!-- This model card has been generated automatically according to the information the Trainer had access to. You
should probably proofread and complete it, then remove this comment. -->

# hw3-dora

This model is a fine-tuned version of [HuggingFaceTB/SmolLM2-135M-Instruct](https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct) on the None dataset.

## Model description

I trained SmolLM2 with DoRA so that it answers a tweet's sentiment with one word: negative, neutral or positive.

## Intended uses & limitations

More information needed

## Training and evaluation data

More information needed

## Training procedure

### Training hyperparameters

The following hyperparameters were used during training:
- learning_rate: 0.001
- train_batch_size: 8
- num_epochs: 1

### Framework versions

- PEFT 0.17.0
- Transformers 4.57.1
- Pytorch 2.8.0
"""


def placeholder_card(base_model: str) -> str:
    """What peft's save_pretrained leaves: the Hub's default template, its metadata and a version line."""
    text = str(ModelCard.from_template(ModelCardData(base_model=base_model, library_name="peft")))
    return text + "\n### Framework versions\n\n- PEFT 0.17.0\n"


def weights(seed: int) -> bytes:
    return random.Random(seed).randbytes(3000)


def adapter(config: dict, seed: int) -> dict[str, bytes]:
    return {"adapter_config.json": json.dumps(config).encode(), "adapter_model.safetensors": weights(seed)}


class Course:
    """Six typical student repos of homework 3, two students who pushed the same adapter, and the staff."""

    PLACEHOLDER, DORA, NO_README, BROKEN, GOOD, PRIVATE, COPY_A, COPY_B = (
        "amy/hw3-lora", "ben/hw3-dora", "cat/hw3-adapter", "dan/hw3-adapter", "eve/hw3-sst2", "fay/hw3-adapter",
        "gus/hw3-adapter", "hal/hw3-adapter",
    )  # fmt: skip

    def __init__(self, hub):
        self.hub = hub
        self.tokens = {repo_id.split("/")[0]: hub.add_user(repo_id.split("/")[0]) for repo_id in self.repos}
        self.staff = hub.add_user("ta")
        record = RunDir(FIXTURES / "seqcls-minilm-lora").read()
        published = {"README.md": render_card(record).encode(), "config.yaml": config_yaml(record.config).encode()}  # as publish does
        contents = {
            self.PLACEHOLDER: {"README.md": placeholder_card(LORA["base_model_name_or_path"]).encode(), **adapter(LORA, 1)},
            self.DORA: {"README.md": TRAINER_CARD.encode(), **adapter(DORA, 2)},
            self.NO_README: adapter(LORA, 3),
            self.BROKEN: {"README.md": b"---\nlicense: [mit\nbase_model: x\n---\n\n# My adapter\n\nIt works.\n", **adapter(LORA, 4)},
            self.GOOD: {"README.md": GOOD_CARD.encode(), **adapter(LORA, 5)},
            self.PRIVATE: {"README.md": GOOD_CARD.encode(), **adapter(LORA, 6)},
            self.COPY_A: {**published, **adapter(LORA, 7)},
            self.COPY_B: {**published, **adapter(LORA, 7)},
        }
        for repo_id, files in contents.items():
            hub.create_repo(repo_id, private=repo_id == self.PRIVATE)
            hub.commit_files(repo_id, files, title="Upload adapter")

    @property
    def repos(self) -> list[str]:
        return [self.PLACEHOLDER, self.DORA, self.NO_README, self.BROKEN, self.GOOD, self.PRIVATE, self.COPY_A, self.COPY_B]

    def roster(self, folder: Path) -> Path:
        path = folder / "students.csv"
        lines = ["name,repo_id,section"] + [f"Student {repo_id[0].upper()},{repo_id},B" for repo_id in self.repos]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


@pytest.fixture
def course(hub, monkeypatch) -> Course:
    course = Course(hub)
    monkeypatch.setenv("HF_TOKEN", course.staff)
    return course


def hubcard(*arguments: str) -> tuple[int, str, str]:
    """The `hubcard` command run with `arguments`: its exit code, stdout and stderr."""
    result = CliRunner().invoke(cli, list(arguments))
    return result.exit_code, result.stdout, result.stderr


def audit(*arguments: str) -> tuple[int, str, str]:
    return hubcard("audit", *arguments)


def rows_by_repo(stdout: str) -> dict[str, dict]:
    return {row["repo_id"]: row for row in json.loads(stdout)}


