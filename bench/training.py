"""Benchmark 1, training throughput: hubcard's training stage against the way the seed notebooks train.

Both sides train the same setup (bench/setups.py): same model, data slice, PEFT config, batch size,
learning rate, number of steps and seed, in fp32 on the CPU, each side in a process of its own.

- hubcard: `hubcard.training.train` on the setup's config (dynamic padding, length-grouped batches,
  and the checkpoints and logging hubcard chooses).
- baseline: the seed notebooks' way: every example tokenized with padding="max_length" (hubcard's
  max_length), Trainer's default collator, `get_peft_model` with the same LoRA/DoRA settings and
  `Trainer` with its defaults.

Measured: samples/s from the Trainer's own train metrics (its training loop only: no loading or
tokenizing); the peak resident memory of the process when training has ended (its own ru_maxrss:
loading plus training); the accuracy of both adapters on the setup's evaluation slice, predicted by
the same code (`bench.setups.adapter_predictions`), so that speed is never bought with accuracy.
"""

from __future__ import annotations

import dataclasses
import resource
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import Outcome, accuracy, accuracy_figure, ratio_figure, serve, spawn
from bench.setups import SEED, SETUPS, Setup, adapter_predictions, evaluation_slice, minilm_sst2, smollm2_tweets

if TYPE_CHECKING:
    from hubcard.config import Config

MODULE = "bench.training"
SIDES = ("baseline", "hubcard")
SPEEDUP_TARGETS = {"minilm-sst2": 3.0, "smollm2-tweets": 2.0}


@dataclasses.dataclass(frozen=True)
class Side:
    samples_per_second: float
    steps: int
    train_seconds: float
    peak_rss_mib: float
    predictions: list[int]
    """The adapter's predictions for the setup's evaluation slice."""


def benchmark(setup: Setup) -> Outcome:
    sides = {side: Side(**spawn(MODULE, f"{setup.name}:{side}", quick=setup.quick)) for side in SIDES}
    hubcard, baseline = sides["hubcard"], sides["baseline"]
    _, references, label_names = evaluation_slice(setup.hubcard_config())
    return Outcome(
        figures=[
            ratio_figure(
                f"{setup.title}: samples/s",
                hubcard.samples_per_second,
                baseline.samples_per_second,
                "samples/s",
                higher_is_better=True,
                at_least=SPEEDUP_TARGETS[setup.name],
            ),
            accuracy_figure(
                f"{setup.title}: adapter accuracy", references, hubcard.predictions, baseline.predictions, len(label_names)
            ),
            ratio_figure(
                f"{setup.title}: peak RSS",
                hubcard.peak_rss_mib,
                baseline.peak_rss_mib,
                "MiB",
                higher_is_better=False,
                at_least=None,
            ),
        ],
        details={
            "setup": setup.config,
            "samples": setup.steps * setup.batch_size,
            "sides": {
                side: {**dataclasses.asdict(measured), "accuracy": accuracy(measured.predictions, references)}
                for side, measured in sides.items()
            },
        },
    )


def measure(setup_name: str, side: str, quick: bool) -> Side:
    """Train one side of the benchmark in this process and measure it."""
    setup = SETUPS[setup_name](quick)
    config = setup.hubcard_config()
    if side == "hubcard":
        from hubcard import training

        run = training.train(config, overwrite=True)
        rss = _peak_rss_mib()
        facts = run.read().training
        assert facts is not None and facts.samples_per_second is not None
        return Side(
            facts.samples_per_second, facts.global_steps, facts.runtime_seconds, rss, adapter_predictions(config, run.adapter)
        )
    adapter = setup.run_dir.with_name(f"{setup.name}-notebook") / "adapter"
    metrics = train_like_the_notebooks(config, adapter)
    rss = _peak_rss_mib()
    steps = int(metrics["train_steps"])
    return Side(metrics["train_samples_per_second"], steps, metrics["train_runtime"], rss, adapter_predictions(config, adapter))


def train_like_the_notebooks(config: Config, adapter: Path) -> dict[str, float]:
    """Train the config's adapter the seed notebooks' way and save it in `adapter`; the Trainer's metrics."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from hubcard.config import TASK_TO_PEFT_TASK_TYPE, local_path
    from hubcard.data import load_data
    from hubcard.models import dequantized_gguf

    data = load_data(config.data, seed=SEED)  # hubcard's loader, so that both sides get the same slices
    path = local_path(config.model.name_or_path)
    folder = dequantized_gguf(path) if path.suffix == ".gguf" else path  # the conversion DESIGN.md describes
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    set_seed(SEED)
    if config.task.type == "sequence-classification":
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(data.label_names), dtype=torch.float32)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    assert data.train is not None
    train_dataset = data.train.map(_padded_encoder(config, tokenizer, data.label_names), remove_columns=data.train.column_names)
    peft_config = LoraConfig(
        task_type=TASK_TO_PEFT_TASK_TYPE[config.task.type], use_dora=config.peft.method == "dora", **config.peft.options
    )
    peft_model = get_peft_model(model, peft_config)
    arguments = TrainingArguments(output_dir=str(adapter.parent / "checkpoints"), **config.training)
    result = Trainer(model=peft_model, args=arguments, train_dataset=train_dataset).train()
    peft_model.save_pretrained(adapter)
    return {**result.metrics, "train_steps": result.global_step}


def _padded_encoder(config: Config, tokenizer, label_names: list[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Tokenize one row as the notebooks do: padded to max_length. For causal-lm, the prompt is
    hubcard's (the same task) followed by the label word and the end-of-sequence token, with the
    loss on the answer only, as hubcard trains it."""
    from hubcard.tasks import IGNORED_LABEL
    from hubcard.training import prompter_for

    padding = {"padding": "max_length", "truncation": True, "max_length": config.data.max_length}
    if config.task.type == "sequence-classification":
        return lambda row: {**tokenizer(row["text"], **padding), "labels": row["label"]}
    prompter = prompter_for(config.task, tokenizer, label_names)

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        answer = prompter.label_words[row["label"]] + tokenizer.eos_token
        encoded = tokenizer(prompter.prompt(row["text"]) + answer, add_special_tokens=False, **padding)
        answer_length = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        real = [position for position, mask in enumerate(encoded["attention_mask"]) if mask]
        answer_positions = set(real[-answer_length:])
        encoded["labels"] = [token if i in answer_positions else IGNORED_LABEL for i, token in enumerate(encoded["input_ids"])]
        return encoded

    return encode


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def minilm(quick: bool) -> Outcome:
    return benchmark(minilm_sst2(quick))


def smollm2(quick: bool) -> Outcome:
    return benchmark(smollm2_tweets(quick))


BENCHMARKS = {"training-minilm": minilm, "training-smollm2": smollm2}
SIDE_TASKS = {f"{setup}:{side}": partial(measure, setup, side) for setup in SETUPS for side in SIDES}

if __name__ == "__main__":
    serve({**BENCHMARKS, **SIDE_TASKS})
