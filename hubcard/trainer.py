"""hubcard's Trainer: transformers' Trainer with the loss, console and checkpoints hubcard chooses.

- **Causal-LM loss where the labels are.** Only the answer tokens carry a label, yet a causal LM
  projects every position onto its vocabulary (576 × 49,152 for SmolLM2) and takes the
  cross-entropy of each. `HubcardTrainer` asks the model for the logits of the positions that predict
  a labelled token only (the model's own `logits_to_keep`) and takes transformers' own causal-LM
  loss over them: the same loss and the same gradients, without most of the projection's work.
- **Logits in fp32.** Under mixed precision the head that produces the logits runs in fp32
  (`logits_in_fp32`): its rounding would reach the loss unchanged, and it costs little.
- **One progress bar.** `TrainingProgress` shows the steps with the latest loss and learning rate
  in the bar; `TrainingLog` writes every logged entry to the run directory's training log instead
  of printing it.
- **Checkpoints by the clock.** `CheckpointClock` saves every `interval` seconds of training: a run
  of a minute saves once (at its last step, as the Trainer does anyway), a run of hours every
  CHECKPOINT_INTERVAL_S, so an interruption loses at most that much.

transformers is imported here at the top: import this module only where training happens.
"""

from __future__ import annotations

import time
import types
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import ProgressCallback, Trainer, TrainerCallback
from transformers.loss.loss_utils import ForCausalLMLoss

from hubcard.rundir import append_jsonl
from hubcard.tasks import IGNORED_LABEL

CHECKPOINT_INTERVAL_S = 600.0
"""Seconds of training between checkpoints; the last step is always saved."""


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """The positions, ascending, whose logits predict a labelled token in some row of the batch
    (position p predicts token p + 1): shape (positions,), from labels of shape (batch, length)."""
    return labels[:, 1:].ne(IGNORED_LABEL).any(0).nonzero().squeeze(-1)


def answer_loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    """transformers' causal-LM loss (`ForCausalLMLoss`) over logits of shape (batch, positions, vocab)
    that a model returned for `answer_positions(labels)`: the targets are the tokens those positions
    predict. Summed over `num_items_in_batch` labelled tokens when given (the Trainer's count across
    accumulated batches), else the mean."""
    positions = answer_positions(labels)
    targets = labels[:, 1:][:, positions]
    logits = outputs.logits
    return ForCausalLMLoss(logits, None, logits.shape[-1], num_items_in_batch=num_items_in_batch, shift_labels=targets)


def logits_in_fp32(model, task_type: str) -> None:
    """Under mixed precision, compute the layer that turns hidden states into logits in fp32: the
    classification head (the base model's top-level modules beside its backbone) or the language-model
    head of `model`, a PeftModel. Autocast would round its input and the logits to half precision,
    the one rounding that reaches the loss unchanged; in fp32 it costs a few products per row."""
    from hubcard.models import classification_heads

    base = model.get_base_model()
    if task_type == "sequence-classification":
        heads = [base.get_submodule(name) for name in classification_heads(base)]
    else:
        heads = [base.get_output_embeddings()]
    for head in heads:
        head.forward = types.MethodType(_forward_in_fp32, head)


def _forward_in_fp32(self, *inputs: Any, **options: Any) -> Any:
    """The module's own forward, with autocast off and its floating-point inputs in fp32."""

    def fp32(value: Any) -> Any:
        return value.float() if torch.is_tensor(value) and value.is_floating_point() else value

    device = next((value.device.type for value in inputs if torch.is_tensor(value)), "cpu")
    with torch.autocast(device, enabled=False):
        return type(self).forward(self, *map(fp32, inputs), **{name: fp32(value) for name, value in options.items()})


class HubcardTrainer(Trainer):
    """transformers' Trainer; with `model_projects_answers`, a causal LM's forward pass projects onto
    the vocabulary only the positions that predict a labelled token, and the loss is taken there.

    `model_projects_answers`: a causal-lm task whose model takes `logits_to_keep` and whose adapter
    puts no virtual tokens before the input (`hubcard.models.projects_chosen_positions`). Otherwise
    (sequence classification, prompt tuning) the Trainer's own loss, unchanged.
    """

    def __init__(self, *arguments: Any, model_projects_answers: bool, **options: Any):
        super().__init__(*arguments, compute_loss_func=answer_loss if model_projects_answers else None, **options)
        self.model_projects_answers = model_projects_answers

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model_projects_answers and "labels" in inputs:
            inputs = {**inputs, "logits_to_keep": answer_positions(inputs["labels"])}
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


class TrainingProgress(ProgressCallback):
    """The Trainer's progress bar, named, with the latest loss and learning rate in it; the logged
    entries themselves are not printed (`TrainingLog` keeps them)."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, desc="Training", unit="step", dynamic_ncols=True)
        self.current_step = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            rate = logs.get("learning_rate")
            self.training_bar.set_postfix_str(f"loss {logs['loss']:.4g}" + (f", lr {rate:.3g}" if rate is not None else ""))


class TrainingLog(TrainerCallback):
    """Every entry the Trainer logs (loss, learning rate, gradient norm, the final speeds), as one
    JSON line with its step, appended to `path` by the main process."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            append_jsonl(self.path, {"step": state.global_step, **logs})


class CheckpointClock(TrainerCallback):
    """Asks for a checkpoint once `interval` seconds of training have passed since the last one (or
    the start). For a single process: in several, each would decide by its own clock."""

    def __init__(self, interval: float | None = None):
        self.interval = CHECKPOINT_INTERVAL_S if interval is None else interval
        self.since = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.since = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.since >= self.interval:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.since = time.monotonic()
