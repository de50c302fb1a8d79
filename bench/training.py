"""Benchmark 1, training: hubcard's training stage against the script a competent user writes today.

Both sides train the same setup (bench/setups.py): the same model, data slice, LoRA settings, batch
size, learning rate, number of steps and seed. Each side runs in a fresh process, in ROUNDS rounds
whose order alternates (script first, then hubcard first, ...), so that a change in the machine's
load reaches both sides alike; the speed ratio is the median of the rounds' ratios.

- hubcard: `hubcard.training.train` on the setup's config, with the thread settings the `hubcard`
  command sets (`environment.set_thread_defaults`): its own choices, unchanged (precision for the
  hardware, the loss at the answer positions, length-grouped batches, checkpoints by the clock).
- script: Trainer + PEFT the way a competent user writes them: `from_pretrained` in fp32,
  `get_peft_model` with the same LoraConfig, rows tokenized without padding (truncated to
  max_length), `DataCollatorWithPadding` (or `DataCollatorForSeq2Seq` for the causal LM's
  answer-only labels), `train_sampling_strategy="group_by_length"`, and the Trainer's defaults
  otherwise (fp32 on a CPU, one checkpoint at the end).

Measured in each side's process: samples/s (the Trainer's train metrics: its training loop alone);
the stage's fixed cost (the side's wall time from its first import of the libraries to the adapter
saved, less the training loop: loading, tokenizing, emissions meter, saving, run.json); the peak
resident memory. In the first round also the accuracy of both adapters on the setup's evaluation
slice (the same predictor code for both) and, in hubcard's process, the model-FLOPs utilisation of its
training loop against the GEMM probe at its precision and thread count (bench/flops.py).
"""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import Figure, Outcome, accuracy, accuracy_figure, serve, spawn
from bench.setups import SEED, SETUPS, Setup, adapter_predictions, evaluation_slice, minilm_sst2, smollm2_tweets

if TYPE_CHECKING:
    from hubcard.config import Config

MODULE = "bench.training"
SIDES = ("script", "hubcard")
ROUNDS = 3
SPEEDUP_TARGETS = {"minilm-sst2": 1.5, "smollm2-tweets": 1.8}
MFU_TARGET = 0.6
FIXED_COST_TARGET_S = 0.5


@dataclasses.dataclass(frozen=True)
class Side:
    samples_per_second: float
    steps: int
    train_seconds: float
    stage_seconds: float
    """From the side's first import of the libraries to the adapter saved."""
    peak_rss_mib: float
    precision: str
    threads: int
    predictions: list[int] | None = None
    """The adapter's predictions for the setup's evaluation slice (first round only)."""
    model_flops: float | None = None
    """hubcard, first round: the FLOPs its training needed (bench/flops.py)."""
    probe: dict[str, Any] | None = None
    """hubcard, first round: the GEMM probe at its precision and thread count."""

    @property
    def fixed_seconds(self) -> float:
        return self.stage_seconds - self.train_seconds


def benchmark(setup: Setup) -> Outcome:
    rounds = 1 if setup.quick else ROUNDS
    measured: list[dict[str, Side]] = []
    for number in range(rounds):
        order = SIDES if number % 2 == 0 else SIDES[::-1]
        first = number == 0
        measured.append({side: Side(**spawn(MODULE, f"{setup.name}:{side}:{'first' if first else 'again'}", quick=setup.quick)) for side in order})
    _, references, label_names = evaluation_slice(setup.hubcard_config())
    first = measured[0]
    hubcard, script = first["hubcard"], first["script"]
    assert hubcard.predictions is not None and script.predictions is not None
    assert hubcard.model_flops is not None and hubcard.probe is not None
    ratios = [round_["hubcard"].samples_per_second / round_["script"].samples_per_second for round_ in measured]
    fixed = {side: statistics.median(round_[side].fixed_seconds for round_ in measured) for side in SIDES}
    mfu = hubcard.model_flops / hubcard.train_seconds / hubcard.probe["flops_per_second"]
    speed = statistics.median(round_["hubcard"].samples_per_second for round_ in measured)
    script_speed = statistics.median(round_["script"].samples_per_second for round_ in measured)
    target = SPEEDUP_TARGETS[setup.name]
    return Outcome(
        figures=[
            Figure(
                f"{setup.title}: samples/s (median ratio of {rounds} rounds; range {min(ratios):.2f}–{max(ratios):.2f}×)",
                speed,
                script_speed,
                "samples/s",
                ratio=statistics.median(ratios),
                target=f"≥ {target:g}×",
                passed=statistics.median(ratios) >= target,
            ),
            accuracy_figure(f"{setup.title}: adapter accuracy", references, hubcard.predictions, script.predictions, len(label_names)),
            Figure(
                f"{setup.title}: training MFU ({hubcard.precision}, {hubcard.threads} threads; probe "
                f"{hubcard.probe['flops_per_second'] / 1e9:.0f} GFLOP/s)",
                mfu,
                unit="of probe",
                target=f"≥ {MFU_TARGET:g}",
                passed=mfu >= MFU_TARGET,
            ),
            Figure(
                f"{setup.title}: stage fixed cost (outside the training loop; median)",
                fixed["hubcard"],
                fixed["script"],
                "s",
                target=f"≤ script + {FIXED_COST_TARGET_S:g} s",
                passed=fixed["hubcard"] - fixed["script"] <= FIXED_COST_TARGET_S,
            ),
            Figure(f"{setup.title}: peak RSS", hubcard.peak_rss_mib, script.peak_rss_mib, "MiB", ratio=script.peak_rss_mib / hubcard.peak_rss_mib),
        ],
        details={
            "setup": setup.config,
            "samples": setup.steps * setup.batch_size,
            "rounds": [
                {side: {**dataclasses.asdict(values), "fixed_seconds": values.fixed_seconds, "predictions": None} for side, values in round_.items()}
                for round_ in measured
            ],
            "speed_ratios": ratios,
            "fixed_seconds": fixed,
            "accuracy": {side: accuracy(first[side].predictions or [], references) for side in SIDES},
            "model_flops": hubcard.model_flops,
            "probe": hubcard.probe,
            "mfu": mfu,
        },
    )


def measure(setup_name: str, side: str, which: str, quick: bool) -> Side:
    """Train one side of the benchmark in this process and measure it (`which`: the first round also
    predicts the evaluation slice, and hubcard's counts its FLOPs and probes the GEMM rate)."""
    if side == "hubcard":
        from hubcard import environment

        environment.set_thread_defaults()  # as the `hubcard` command does, before torch is imported
    started = time.perf_counter()
    setup = SETUPS[setup_name](quick)
    config = setup.hubcard_config()
    if side == "hubcard":
        from hubcard import training

        run = training.train(config, overwrite=True)
        stage_seconds = time.perf_counter() - started
        record = run.read()
        facts = record.training
        assert facts is not None and facts.samples_per_second is not None
        adapter, precision = run.adapter, record.hardware.precision
        metrics = {"train_samples_per_second": facts.samples_per_second, "train_runtime": facts.runtime_seconds, "train_steps": facts.global_steps}
    else:
        adapter = setup.run_dir.with_name(f"{setup.name}-script") / "adapter"
        metrics = train_like_a_competent_script(config, adapter)
        stage_seconds = time.perf_counter() - started
        precision = "fp32"
    import torch

    side_facts = {
        "samples_per_second": metrics["train_samples_per_second"],
        "steps": int(metrics["train_steps"]),
        "train_seconds": metrics["train_runtime"],
        "stage_seconds": stage_seconds,
        "peak_rss_mib": _peak_rss_mib(),
        "precision": precision,
        "threads": torch.get_num_threads(),
    }
    if which != "first":
        return Side(**side_facts)
    if side == "hubcard":
        from bench.flops import gemm_probe

        side_facts |= {"model_flops": _training_flops(config), "probe": gemm_probe(precision)}
    return Side(**side_facts, predictions=adapter_predictions(config, adapter))


def train_like_a_competent_script(config: Config, adapter: Path) -> dict[str, float]:
    """Train the config's adapter the way a competent user's script does and save it in `adapter`;
    the Trainer's metrics."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        DataCollatorWithPadding,
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
    causal = config.task.type == "causal-lm"
    if causal:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=len(data.label_names), dtype=torch.float32)
        collator = DataCollatorWithPadding(tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id
    assert data.train is not None
    train_dataset = data.train.map(_encoder(config, tokenizer, data.label_names), remove_columns=data.train.column_names)
    peft_config = LoraConfig(task_type=TASK_TO_PEFT_TASK_TYPE[config.task.type], **config.peft.options)
    peft_model = get_peft_model(model, peft_config)
    arguments = TrainingArguments(output_dir=str(adapter.parent / "checkpoints"), train_sampling_strategy="group_by_length", **config.training)
    result = Trainer(model=peft_model, args=arguments, train_dataset=train_dataset, data_collator=collator).train()
    peft_model.save_pretrained(adapter)
    return {**result.metrics, "train_steps": result.global_step}


def _encoder(config: Config, tokenizer, label_names: list[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Tokenize one row, truncated to max_length, unpadded. For causal-lm, the prompt is hubcard's
    (the same task) followed by the label word and the end-of-sequence token, with the loss on the
    answer only, as hubcard trains it."""
    from hubcard.tasks import IGNORED_LABEL
    from hubcard.training import prompter_for

    truncation = {"truncation": True, "max_length": config.data.max_length}
    if config.task.type == "sequence-classification":
        return lambda row: {**tokenizer(row["text"], **truncation), "labels": row["label"]}
    prompter = prompter_for(config.task, tokenizer, label_names)

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        answer = prompter.label_words[row["label"]] + tokenizer.eos_token
        encoded = tokenizer(prompter.prompt(row["text"]) + answer, add_special_tokens=False, **truncation)
        answer_length = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
        prompt_length = len(encoded["input_ids"]) - answer_length
        encoded["labels"] = [IGNORED_LABEL] * prompt_length + encoded["input_ids"][prompt_length:]
        return encoded

    return encode


def _training_flops(config: Config) -> float:
    """The model FLOPs of hubcard's training on the setup's slice: its own encoded rows and model."""
    from bench.flops import training_flops
    from hubcard.data import load_data
    from hubcard.models import attach_adapter, load_base_model
    from hubcard.training import encode_training_data

    data = load_data(config.data, seed=SEED)
    loaded = load_base_model(config.model, config.task.type, data.label_names, seed=SEED)
    rows = encode_training_data(config, loaded, data)
    model = attach_adapter(loaded.model, config.peft, config.task.type)
    return training_flops(model, rows, causal=config.task.type == "causal-lm")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def minilm(quick: bool) -> Outcome:
    return benchmark(minilm_sst2(quick))


def smollm2(quick: bool) -> Outcome:
    return benchmark(smollm2_tweets(quick))


BENCHMARKS = {"training-minilm": minilm, "training-smollm2": smollm2}
SIDE_TASKS = {
    f"{setup}:{side}:{which}": partial(measure, setup, side, which) for setup in SETUPS for side in SIDES for which in ("first", "again")
}

if __name__ == "__main__":
    serve({**BENCHMARKS, **SIDE_TASKS})
