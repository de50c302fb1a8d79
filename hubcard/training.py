"""The training stage: a validated config in, the adapter and its facts in the run directory out.

transformers' Trainer does the training. hubcard chooses what a newcomer would otherwise get wrong
(precision for the hardware, dynamic padding with length-grouped batches, checkpoints and logging
at a sensible cadence) and the user's `training:` keys override every choice. Everything the card
needs later is written to run.json, so that no other stage loads the training data again.

Under `accelerate launch` or `torchrun` every process runs this stage; only the main process
writes the run directory.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Collection, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubcard import __version__, environment, plots
from hubcard.config import Config, redact
from hubcard.data import LabeledData, load_data
from hubcard.errors import ConfigError, ConfigProblem, RunDirError
from hubcard.models import (
    LoadedModel,
    adapter_facts,
    attach_adapter,
    base_model_hub_id,
    check_4bit_support,
    check_model_fits,
    load_base_model,
    model_facts,
    projects_chosen_positions,
)
from hubcard.rundir import RunDir, RunRecord, StageTiming, TaskFacts, TrainingFacts, checkpoint_step, usual_permissions
from hubcard.tasks import Prompter, encode_for_causal_lm, encode_for_classification

if TYPE_CHECKING:
    import datasets
    from accelerate import PartialState
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

DEFAULT_SEED = 42
LOG_POINTS = 50
"""About this many training-loss points in the loss curve."""
CHECKPOINTS_PER_RUN = 5
CHECKPOINTS_KEPT = 2


@dataclass(frozen=True)
class Plan:
    """What a call to `train` does with the run directory."""

    record: RunRecord
    checkpoint: str | None
    """The checkpoint to resume from, or None to start from the first step."""
    restore: bool = False
    """Training has finished, but its adapter is missing: save it again from `checkpoint`, the final one."""


def train(config: Config, *, resume: bool = False, overwrite: bool = False) -> RunDir:
    """Train the adapter `config` describes into its run directory and record the facts in run.json.

    A run directory that holds the same run (same config fingerprint) continues from its last
    checkpoint, or is left as it is when its training has finished and its adapter is saved; one
    that holds a different run is refused unless `overwrite`. The main process holds the run
    directory's lock throughout. Raises HubcardError subclasses for everything the user can fix.
    """
    from hubcard.pipeline import is_main_process

    check_before_training(config)  # before the run directory is touched and the weights are loaded
    with RunDir(config.run_dir).lock(create=True) if is_main_process() else nullcontext():
        return _train(config, resume=resume, overwrite=overwrite)


def check_before_training(config: Config) -> None:
    """What can be checked before anything starts: 4-bit support and the reporting integrations of
    training.report_to (the base model's limits are checked once the data is read, before its weights
    are loaded: `check_model_fits`). Raises ConfigError listing every problem."""
    check_4bit_support(config.model)
    problems = _reporting_problems(config.training)
    if problems:
        raise ConfigError(problems, config.source)


def _reporting_problems(training: dict[str, Any]) -> list[ConfigProblem]:
    """training.report_to naming an integration transformers does not know, or one not installed (the
    Trainer would fail when it starts)."""
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    report_to = training.get("report_to")
    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    installed = get_available_reporting_integrations()
    problems = []
    for name in names:
        if name in ("all", "none"):
            continue
        if name not in INTEGRATION_TO_CALLBACK:
            known = ", ".join(sorted(INTEGRATION_TO_CALLBACK))
            problems.append(ConfigProblem("training.report_to", f"{name!r} is not an integration transformers knows; known: {known}"))
        elif name not in installed:
            problems.append(
                ConfigProblem(
                    "training.report_to",
                    f"{name!r}: its package is not installed (pip install {name.replace('_', '-')}), or remove it from "
                    f"training.report_to; installed: {', '.join(installed) or 'none'}",
                )
            )
    return problems


def _train(config: Config, *, resume: bool, overwrite: bool) -> RunDir:
    run = RunDir(config.run_dir)
    processes = _base_arguments(config, run).distributed_state  # the processes, as the Trainer sees them
    plan = _main_process_plan(processes, run, config, resume=resume, overwrite=overwrite)
    if plan is None:
        logger.info("%s is already trained with this config; --overwrite trains it again", run.path)
        return run
    if plan.restore:
        if processes.is_main_process:
            _restore_adapter(config, run, plan)
        return run
    seed = int(config.training.get("seed", DEFAULT_SEED))
    # codecarbon measures the whole machine (every CPU and GPU): one meter, in the main process; its
    # hardware detection runs while the data and the model load
    meter = environment.EmissionsMeter.started() if processes.is_main_process else environment.EmissionsMeter()
    with meter:
        # the data set, model and tokenized data caches are built once; the stage's one bar is the training's
        with processes.main_process_first(), environment.library_progress_bars_off():
            data = load_data(config.data, seed=seed, project=config.project)
            check_model_fits(config)
            loaded = load_base_model(config.model, config.task.type, data.label_names, seed=seed)
            train_dataset = encode_training_data(config, loaded, data)
        base_parameters = loaded.model.num_parameters()
        peft_model = attach_adapter(loaded.model, config.peft, config.task.type)
        arguments = training_arguments(config, run, rows=len(train_dataset))
        record = plan.record
        if processes.is_main_process:
            record.hardware = environment.hardware(precision_choice(config.training), num_processes=processes.num_processes)
            record.stages["train"] = StageTiming(started_at=_now())
            run.write(record)
        trainer = _trainer(peft_model, loaded, arguments, train_dataset, config, run)
        trainer.train(resume_from_checkpoint=plan.checkpoint)
    if not processes.is_main_process:
        return run

    save_adapter(peft_model, loaded.tokenizer, run, base_model_hub_id(config.model, loaded.source))
    started = record.stages["train"].started_at
    record.stages["train"] = StageTiming(started_at=started, finished_at=_now(), seconds=(_now() - started).total_seconds())
    record.model = model_facts(config.model, loaded, peft_model, base_parameters=base_parameters, project=config.project)
    record.adapter = adapter_facts(
        config.peft.method, run.adapter, model_type=record.model.model_type, author="hubcard", configured=config.peft.configured
    )
    record.data = data.facts
    record.training = training_facts(
        trainer, configured=set(config.training), resumed_from=plan.checkpoint and str(Path(plan.checkpoint).relative_to(run.path))
    )
    record.emissions = meter.result
    plots.name_plots(run, record, plots.TRAINING_PLOTS)  # drawn by the card stage
    run.write(record)
    return run


# --- the run directory ------------------------------------------------------------------------


def _main_process_plan(processes: PartialState, run: RunDir, config: Config, *, resume: bool, overwrite: bool) -> Plan | None:
    """The main process's plan, in every process; a RunDirError there is raised in every process
    (the others would otherwise wait for the plan until the launcher stops them)."""
    from accelerate.utils import broadcast_object_list

    decision: list[Plan | RunDirError | None] = [None]
    if processes.is_main_process:
        try:
            decision[0] = _plan(run, config, resume=resume, overwrite=overwrite)
        except RunDirError as error:
            decision[0] = error
    if processes.num_processes > 1:
        broadcast_object_list(decision)
    if isinstance(decision[0], RunDirError):
        raise decision[0]
    return decision[0]


def _plan(run: RunDir, config: Config, *, resume: bool, overwrite: bool) -> Plan | None:
    """A fresh record, the record of the run to continue, or None when that run is already trained."""
    if run.exists():
        previous = run.read()
        same_run = previous.config_fingerprint == config.fingerprint()
        if not same_run and not overwrite:
            raise RunDirError(
                f"{run.path} holds a different run (trained from another config on "
                f"{previous.created_at:%Y-%m-%d %H:%M}); pass --overwrite to replace it, or choose another run "
                "directory with --run-dir or `run_dir:` in the config"
            )
        if same_run and not overwrite:
            if previous.training is not None and run.has_adapter():
                return None
            checkpoint = run.last_checkpoint()
            previous.config = redact(config.portable_dict())  # the same run; publishing settings may have changed
            if previous.training is not None:  # trained, but adapter/ was deleted or is incomplete
                final = checkpoint is not None and checkpoint_step(checkpoint) >= previous.training.global_steps
                logger.warning(
                    "%s records a finished training, but its adapter is missing (adapter/ holds no adapter_config.json "
                    "and weights): saving it again from %s",
                    run.path,
                    f"the checkpoint {checkpoint.name}" if checkpoint else "a new training (no checkpoint is left)",
                )
                if final:
                    return Plan(previous, str(checkpoint), restore=True)
                previous.training = None
            elif checkpoint is not None:
                logger.info("continuing %s from %s", run.path, checkpoint.name)
            return Plan(previous, str(checkpoint) if checkpoint else None)
        run.clear()
    elif resume:
        raise RunDirError(f"--resume: {run.path} holds no run to continue; start it without --resume")
    elif not run.is_empty():
        raise RunDirError(
            f"{run.path} is not empty and holds no hubcard run (no run.json); choose an empty or new run directory "
            "with --run-dir or `run_dir:` in the config"
        )
    run.check_writable()
    return Plan(new_record(config), None)


def _restore_adapter(config: Config, run: RunDir, plan: Plan) -> None:
    """Save the adapter of a finished training again from its final checkpoint (the Trainer, resumed
    there, would train one step more)."""
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    record = plan.record
    assert record.data is not None and record.model is not None and plan.checkpoint is not None
    seed = int(config.training.get("seed", DEFAULT_SEED))
    loaded = load_base_model(config.model, config.task.type, record.data.label_names, seed=seed)
    peft_model = attach_adapter(loaded.model, config.peft, config.task.type)
    set_peft_model_state_dict(peft_model, load_peft_weights(plan.checkpoint))
    save_adapter(peft_model, loaded.tokenizer, run, base_model_hub_id(config.model, loaded.source))
    record.adapter = adapter_facts(
        config.peft.method, run.adapter, model_type=record.model.model_type, author="hubcard", configured=config.peft.configured
    )
    run.write(record)


def new_record(config: Config) -> RunRecord:
    task = config.task
    causal = task.type == "causal-lm"
    return RunRecord(
        hubcard_version=__version__,
        created_at=_now(),
        config=redact(config.portable_dict()),
        config_fingerprint=config.fingerprint(),
        versions=environment.versions(),
        hardware=environment.hardware(),
        task=TaskFacts(
            type=task.type,
            prediction=task.prediction if causal else None,
            prompt_template=task.prompt_template if causal else None,
            system_prompt=task.system_prompt if causal else None,
            label_words=task.label_words if causal else None,
        ),
    )


def save_adapter(peft_model, tokenizer, run: RunDir, hub_id: str | None) -> None:
    """Save adapter and tokenizer next to the final folder, then swap them in: never half a folder.

    adapter_config.json names the base model by its Hub id, never by a local path. The embedding
    layers are not saved: hubcard never changes the vocabulary (and PEFT's check would ask the Hub).
    """
    staging = run.path / ".adapter.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    peft_config = peft_model.peft_config["default"]
    loaded_from, peft_config.base_model_name_or_path = peft_config.base_model_name_or_path, hub_id
    try:
        peft_model.save_pretrained(staging, save_embedding_layers=False)
    finally:
        peft_config.base_model_name_or_path = loaded_from  # the caller's model is left as it was
    if hub_id is None:  # PEFT names the local folder the base model was loaded from: never publish a path
        saved = json.loads((staging / "adapter_config.json").read_text(encoding="utf-8"))
        saved["base_model_name_or_path"] = None
        (staging / "adapter_config.json").write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (staging / "README.md").unlink(missing_ok=True)  # PEFT's placeholder card; hubcard writes the real one
    tokenizer.save_pretrained(staging)
    usual_permissions(staging)  # safetensors writes its files private (0600)
    shutil.rmtree(run.adapter, ignore_errors=True)
    staging.rename(run.adapter)


# --- data -------------------------------------------------------------------------------------


def encode_training_data(config: Config, loaded: LoadedModel, data: LabeledData) -> datasets.Dataset:
    """The training split as token ids and labels, unpadded (the collator pads each batch)."""
    max_length = config.data.max_length
    tokenizer = loaded.tokenizer
    if config.task.type == "sequence-classification":

        def encode(row: dict[str, Any]) -> dict[str, Any]:
            return {**encode_for_classification(tokenizer, row["text"], max_length), "labels": row["label"]}

    else:
        prompter = prompter_for(config.task, tokenizer, data.label_names)

        def encode(row: dict[str, Any]) -> dict[str, Any]:
            return encode_for_causal_lm(prompter, row["text"], row["label"], max_length)

    return data.train.map(encode, remove_columns=data.train.column_names, desc="Tokenizing the training data")


def prompter_for(task, tokenizer, label_names: list[str]) -> Prompter:
    """The Prompter of a task section (config) or task facts (run.json): they share these fields."""
    return Prompter(tokenizer, task.prompt_template, list(task.label_words or label_names), task.system_prompt)


# --- the Trainer ------------------------------------------------------------------------------


def training_arguments(config: Config, run: RunDir, *, rows: int) -> TrainingArguments:
    """TrainingArguments: hubcard's choices for this run and hardware, then the user's keys over them."""
    import torch
    from transformers import TrainingArguments

    user = dict(config.training)
    base = _base_arguments(config, run)
    steps = _total_steps(base, rows)
    chosen: dict[str, Any] = {
        "logging_steps": max(1, steps // LOG_POINTS),
        "logging_first_step": True,
        "save_strategy": "steps",
        "save_steps": _checkpoint_steps(steps, base.world_size),
        "save_total_limit": CHECKPOINTS_KEPT,
        "train_sampling_strategy": "group_by_length",  # batches of similar length: little padding
        "dataloader_pin_memory": torch.cuda.is_available(),
        **environment.device_arguments(),
        **_precision_arguments(user),
    }
    if config.model.load_in_4bit:
        chosen["gradient_checkpointing"] = True  # QLoRA's recipe: 4-bit weights and recomputed activations
    if {**chosen, **user}.get("gradient_checkpointing") and "gradient_checkpointing_kwargs" not in user:
        chosen["gradient_checkpointing_kwargs"] = {"use_reentrant": False}  # works with frozen embeddings
    return TrainingArguments(output_dir=str(run.checkpoints), **{**chosen, **user})


def _base_arguments(config: Config, run: RunDir) -> TrainingArguments:
    """The user's TrainingArguments on hubcard's device. Building TrainingArguments sets up accelerate's
    view of the processes anew (one, or those that `accelerate launch`/`torchrun` started)."""
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(run.checkpoints), **{**environment.device_arguments(), **config.training})


def _total_steps(arguments: TrainingArguments, rows: int) -> int:
    if arguments.max_steps > 0:
        return arguments.max_steps
    per_step = arguments.per_device_train_batch_size * arguments.gradient_accumulation_steps * arguments.world_size
    return max(1, math.ceil(arguments.num_train_epochs * math.ceil(rows / per_step)))


def _checkpoint_steps(steps: int, processes: int) -> int:
    """How many steps apart checkpoints are saved. One process saves the last step, and every
    CHECKPOINT_INTERVAL_S of training by the clock (`CheckpointClock`): as often as the run is long.
    Several processes save CHECKPOINTS_PER_RUN evenly spaced ones instead (each would read its own clock)."""
    return steps if processes == 1 else max(1, math.ceil(steps / CHECKPOINTS_PER_RUN))


def _precision_arguments(user: dict[str, Any]) -> dict[str, bool]:
    choice = precision_choice(user).precision
    return {} if choice == "fp32" else {choice: True}


def precision_choice(user: Mapping[str, Any]) -> environment.PrecisionChoice:
    """The training's precision, who chose it and why: `training.bf16` or `training.fp16` set to true
    in the config, else the half precision this machine computes natively (hubcard's choice,
    `environment.native_precision`) unless the config sets it to false, else fp32. `fp16: false`
    alone (a GPU config run on a CPU) leaves bf16 to the hardware."""
    for key in ("bf16", "fp16"):
        if user.get(key):
            return environment.PrecisionChoice(key, "config", f"training.{key}: true")
    native = environment.native_precision()
    if native.precision != "fp32" and user.get(native.precision) is False:
        return environment.PrecisionChoice("fp32", "config", f"training.{native.precision}: false, though {native.reason}")
    return native


def precision(arguments: TrainingArguments) -> str:
    return "bf16" if arguments.bf16 else "fp16" if arguments.fp16 else "fp32"


def _trainer(peft_model, loaded: LoadedModel, arguments: TrainingArguments, train_dataset, config: Config, run: RunDir):
    """hubcard's Trainer (`hubcard.trainer`): the loss at the answer positions for a causal LM, one
    progress bar, every logged entry in the run directory's training log, checkpoints by the clock
    unless the config says when to save."""
    import torch
    from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding, PrinterCallback, ProgressCallback

    from hubcard.trainer import CheckpointClock, HubcardTrainer, TrainingLog, TrainingProgress, logits_in_fp32

    gpu_half = (arguments.bf16 or arguments.fp16) and torch.cuda.is_available()
    multiple = 8 if gpu_half else None  # tensor cores like multiples of 8
    causal = config.task.type == "causal-lm"
    if arguments.bf16 or arguments.fp16:
        logits_in_fp32(peft_model, config.task.type)
    if causal:  # pads the labels with the ignored label, not the pad token
        collator = DataCollatorForSeq2Seq(loaded.tokenizer, padding=True, pad_to_multiple_of=multiple)
    else:
        collator = DataCollatorWithPadding(loaded.tokenizer, pad_to_multiple_of=multiple)
    trainer = HubcardTrainer(
        model=peft_model,
        args=arguments,
        train_dataset=train_dataset,
        data_collator=collator,
        processing_class=loaded.tokenizer,
        model_projects_answers=causal and projects_chosen_positions(peft_model),
    )
    trainer.remove_callback(PrinterCallback)  # the logged entries go to the training log, not the console
    trainer.remove_callback(ProgressCallback)
    if not config.training.get("disable_tqdm"):
        trainer.add_callback(TrainingProgress())
    trainer.add_callback(TrainingLog(run.training_log))
    if arguments.world_size == 1 and not {"save_steps", "save_strategy"} & set(config.training):
        trainer.add_callback(CheckpointClock())
    return trainer


def training_facts(trainer, *, configured: Collection[str] | None, resumed_from: str | None = None) -> TrainingFacts:
    """What the card says about training, from the Trainer's own state and arguments.

    `configured`: the TrainingArguments the config set when hubcard built them (every other change is
    hubcard's); None when the user's own code built them (a notebook's Trainer): every change is theirs.
    """
    state, arguments = trainer.state, trainer.args
    summary = next((entry for entry in reversed(state.log_history) if "train_runtime" in entry), {})
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    changed = changed_arguments(arguments)
    return TrainingFacts(
        arguments_changed=changed,
        arguments_set_by={
            name: "your code" if configured is None else "config" if name in configured else "hubcard" for name in changed
        },
        seed=arguments.seed,
        global_steps=state.global_step,
        epochs=float(state.epoch or 0.0),
        runtime_seconds=float(summary.get("train_runtime", 0.0)),
        samples_per_second=summary.get("train_samples_per_second"),
        steps_per_second=summary.get("train_steps_per_second"),
        final_loss=losses[-1] if losses else None,
        log_history=state.log_history,
        resumed_from_checkpoint=resumed_from,
        gradient_checkpointing=bool(arguments.gradient_checkpointing),
        gradient_accumulation_steps=arguments.gradient_accumulation_steps,
    )


# Paths, names and display settings that say nothing about how the adapter was trained (disable_tqdm
# follows transformers' log level).
NOT_HYPERPARAMETERS = {"output_dir", "logging_dir", "run_name", "disable_tqdm"}
# Set from the device arguments when TrainingArguments is built with them (use_cpu turns pinning off).
DEVICE_DEPENDENT_ARGUMENTS = ("dataloader_pin_memory",)


def changed_arguments(arguments: TrainingArguments) -> dict[str, Any]:
    """The TrainingArguments of this run that differ from transformers' defaults.

    The defaults are built with hubcard's device arguments (building TrainingArguments sets up
    accelerate's view of the processes anew, and must not undo the run's), then the device arguments
    and what follows from them are put back to their declared defaults: `use_cpu: true` is a change.
    """
    import dataclasses

    from transformers import TrainingArguments

    device = environment.device_arguments()
    defaults = TrainingArguments(output_dir=arguments.output_dir, **device).to_dict()
    declared = {field.name: field.default for field in dataclasses.fields(TrainingArguments)}
    defaults |= {name: declared[name] for name in (*device, *DEVICE_DEPENDENT_ARGUMENTS)}
    return {
        name: value
        for name, value in arguments.to_dict().items()
        if name not in NOT_HYPERPARAMETERS and value != defaults.get(name)
    }


def _now() -> datetime:
    return datetime.now(timezone.utc)
