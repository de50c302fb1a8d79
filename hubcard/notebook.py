"""For adapters trained in a notebook: evaluate, document and publish them the way the CLI does.

    from hubcard.notebook import document_adapter, publish_adapter

    outcome = publish_adapter(
        peft_model, tokenizer, eval_dataset, "runs/homework-3",
        config={"data": {"label_names": ["negative", "positive"], "text_column": "sentence",
                         "hub_id": "stanfordnlp/sst2", "max_length": 128},
                "card": {"developed_by": "Ada", "license": "mit"},
                "hub": {"repo_id": "ada/gpt2-sst2-lora"}},
        trainer=trainer,   # optional: the Trainer that trained it, for the card's training section
        train_data=train_dataset,   # optional (default: the trainer's): the card's Training Data section
    )
    print(outcome.summary())

`document_adapter` writes a run directory like `hubcard train` does: the adapter and tokenizer,
the evaluation data (as a JSON-lines file), and a run.json with the model's, adapter's and data's
facts, plus the training facts the Trainer kept and the size and labels of the training data. The
record says that the user's own code trained the adapter: the card attributes the settings that
differ from PEFT's and transformers' defaults to "your code", and does not offer its config as a way
to repeat the run. `config` takes the sections of a config file (task, data, evaluation, card, hub,
model) and is validated the same way; `data.hub_id` names the Hub data set the rows come from,
`data.max_length` the length the texts were cut at in training (hubcard's evaluation cuts them
there too). hubcard fills in the base model, the PEFT method and the data file. After that the
CLI's own stages take over:
`publish_adapter` evaluates, renders the card and publishes; `hubcard render-card RUN_DIR` and
`hubcard publish RUN_DIR` work on the directory too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubcard import environment, plots
from hubcard.config import PEFT_TASK_TO_TASK, Config, DataSection, HubSection, validate_config
from hubcard.data import load_data
from hubcard.errors import HubcardError, RunDirError
from hubcard.models import LoadedModel, adapter_facts, base_model_hub_id, model_facts, resolve_source
from hubcard.pipeline import PipelineOutcome, evaluate_and_publish
from hubcard.publish import preflight
from hubcard.rundir import RunDir, SplitFacts, write_jsonl
from hubcard.training import DEFAULT_SEED, new_record, precision, save_adapter, training_facts

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase, Trainer

environment.set_thread_defaults()  # where the notebook has not imported torch yet

EVAL_FILE = "eval.jsonl"
NOTEBOOK_SECTIONS = ("model", "task", "data", "evaluation", "card", "hub")


def document_adapter(
    model: PeftModel | str | Path,
    tokenizer: PreTrainedTokenizerBase,
    eval_data: Any,
    run_dir: str | Path,
    *,
    config: Mapping[str, Any] | None = None,
    trainer: Trainer | None = None,
    base_model: str | None = None,
    train_data: Any = None,
    overwrite: bool = False,
) -> RunDir:
    """Write the run directory of an adapter trained outside hubcard; nothing is evaluated yet.

    `model` is a PeftModel or the folder it was saved to; `eval_data` a datasets.Dataset, a pandas
    DataFrame or a list of rows, with the text and label columns that `config["data"]` names
    (default `text` and `label`). `base_model`: the base model's Hub id (config["model"]["hub_id"]),
    needed to publish when the base model was loaded from a local folder. `train_data`: the rows it
    was trained on (the same kinds, raw or tokenized: only their labels are read, from the label
    column, `labels` or `label`), or their number; default: the trainer's train_dataset. Raises
    ConfigError, DataError or RunDirError saying what to fix.
    """
    return _document(model, tokenizer, eval_data, run_dir, config or {}, trainer, base_model, train_data, overwrite)[0]


def publish_adapter(
    model: PeftModel | str | Path,
    tokenizer: PreTrainedTokenizerBase,
    eval_data: Any,
    run_dir: str | Path,
    *,
    config: Mapping[str, Any] | None = None,
    trainer: Trainer | None = None,
    base_model: str | None = None,
    train_data: Any = None,
    overwrite: bool = False,
    dry_run: bool = False,
) -> PipelineOutcome:
    """`document_adapter`, then the CLI's stages: evaluate base model and adapter, render the card,
    publish (a dry run when asked or without `hub.repo_id`). A publish is checked before the
    evaluation starts: token, access, and the base model's Hub id (`base_model`)."""
    try:
        hub = HubSection.model_validate((config or {}).get("hub") or {})
    except ValueError:
        hub = None  # reported with the rest of the config by _document
    if hub is not None:  # before the run directory is written
        preflight(hub, dry_run=dry_run, rerun="publish_adapter(...)")
    run, settings = _document(model, tokenizer, eval_data, run_dir, config or {}, trainer, base_model, train_data, overwrite)
    return evaluate_and_publish(run, settings, dry_run=dry_run)


def _document(
    model, tokenizer, eval_data, run_dir, config: Mapping[str, Any], trainer, base_model: str | None, train_data, overwrite: bool
) -> tuple[RunDir, Config]:
    run = RunDir(run_dir)
    with run.lock(create=True):
        return _write_run(run, model, tokenizer, eval_data, config, trainer, base_model, train_data, overwrite)


def _write_run(
    run: RunDir, model, tokenizer, eval_data, config: Mapping[str, Any], trainer, base_model: str | None, train_data, overwrite: bool
) -> tuple[RunDir, Config]:
    _claim(run, overwrite)
    if base_model is not None:
        config = {**config, "model": {**(config.get("model") or {}), "hub_id": base_model}}
    peft_model = _as_peft_model(model, config)
    data_section = config.get("data") or {}
    text_column = data_section.get("text_column", DataSection.model_fields["text_column"].default)
    label_column = data_section.get("label_column", DataSection.model_fields["label_column"].default)
    write_jsonl(run.path / "data" / EVAL_FILE, _rows(eval_data, text_column, label_column))
    settings = _config(run, peft_model, config)  # validated after the data file exists: validation checks it
    data = load_data(settings.data, seed=DEFAULT_SEED, with_train=False, project=settings.project)
    train_split = data_section.get("train_split") or DataSection.model_fields["train_split"].default
    given_train = train_data if train_data is not None else getattr(trainer, "train_dataset", None)
    train = _train_split(given_train, train_split, label_column, data.label_names)
    record = new_record(settings)
    record.trained_by = "your code"
    source = resolve_source(settings.model)
    save_adapter(peft_model, tokenizer, run, base_model_hub_id(settings.model, source))
    trainable, total = peft_model.get_nb_trainable_parameters()
    loaded = LoadedModel(model=peft_model.get_base_model(), tokenizer=tokenizer, source=source)
    base_parameters = total - trainable  # the base is frozen
    record.model = model_facts(settings.model, loaded, peft_model, base_parameters=base_parameters, project=settings.project)
    record.adapter = adapter_facts(settings.peft.method, run.adapter, model_type=record.model.model_type, author="your code")
    record.data = data.facts.model_copy(update={"train": train})
    if trainer is not None:
        record.training = training_facts(trainer, configured=None)
        trained_in = environment.PrecisionChoice(precision(trainer.args), "your code", "the Trainer's TrainingArguments")
        record.hardware = environment.hardware(trained_in, num_processes=trainer.args.world_size)
        plots.name_plots(run, record, plots.TRAINING_PLOTS)
    run.write(record)
    return run, settings


# --- the run directory ------------------------------------------------------------------------


def _claim(run: RunDir, overwrite: bool) -> None:
    if run.exists() and not overwrite:
        raise RunDirError(f"{run.path} already holds a run; pass overwrite=True to replace it, or choose another run_dir")
    if run.exists():
        run.clear()
    elif not run.is_empty():
        raise RunDirError(f"{run.path} is not empty and holds no hubcard run; choose an empty or new run_dir")
    run.check_writable()


def _as_peft_model(model: PeftModel | str | Path, config: Mapping[str, Any]) -> PeftModel:
    """The PeftModel itself, or the adapter in a folder loaded onto the base model it names."""
    if not isinstance(model, (str, Path)):
        return model
    from peft import AutoPeftModelForCausalLM, AutoPeftModelForSequenceClassification, PeftConfig

    folder = Path(model)
    task = (config.get("task") or {}).get("type") or _task_type(PeftConfig.from_pretrained(folder))
    auto_class = AutoPeftModelForCausalLM if task == "causal-lm" else AutoPeftModelForSequenceClassification
    labels = (config.get("data") or {}).get("label_names")
    options = {"num_labels": len(labels)} if labels and task != "causal-lm" else {}
    try:
        return auto_class.from_pretrained(folder, **options)
    except (OSError, ValueError) as error:
        raise HubcardError(f"cannot load the adapter in {folder}: {error}") from error


def _config(run: RunDir, peft_model: PeftModel, given: Mapping[str, Any]) -> Config:
    """The config of the run: the user's sections, with what the model and the run directory say."""
    peft_config = peft_model.active_peft_config
    base = str(peft_config.base_model_name_or_path or "")
    task = _task_type(peft_config)
    method = "dora" if getattr(peft_config, "use_dora", False) else str(peft_config.peft_type.value).lower()
    unknown = set(given) - set(NOTEBOOK_SECTIONS)
    if unknown:
        raise HubcardError(
            f"config: {', '.join(sorted(unknown))}: not a section for an adapter trained elsewhere; "
            f"give {', '.join(NOTEBOOK_SECTIONS)} (the PEFT settings are read from the adapter)"
        )
    raw: dict[str, Any] = {name: dict(given.get(name) or {}) for name in NOTEBOOK_SECTIONS}
    raw["model"].setdefault("name_or_path", base)
    raw["task"].setdefault("type", task)
    eval_file = str(run.path.resolve() / "data" / EVAL_FILE)
    eval_split = raw["data"].get("eval_split") or DataSection.model_fields["eval_split"].default
    # hubcard evaluates from the file it wrote and trains nothing: no training split to read.
    raw["data"] |= {"files": {eval_split: eval_file}, "train_split": None, "eval_split": eval_split}
    raw["peft"] = {"method": method}
    raw["run_dir"] = str(run.path.resolve())
    if not raw["data"].get("label_names"):
        raise HubcardError("config['data']['label_names']: give the label names, in the order of the label ids")
    return validate_config(raw, source="document_adapter(config=...)")


def _task_type(peft_config) -> str:
    task_type = getattr(peft_config.task_type, "value", peft_config.task_type)
    return PEFT_TASK_TO_TASK.get(str(task_type), "sequence-classification")


def _train_split(train_data: Any, name: str, label_column: str, label_names: list[str]) -> SplitFacts | None:
    """The training data's facts: its rows and, when the rows are given, how many have each label."""
    if train_data is None:
        return None
    if isinstance(train_data, int) and not isinstance(train_data, bool):
        return SplitFacts(name=name, rows=train_data, label_counts=None)
    labels = _labels(train_data, (label_column, "labels", "label"))
    if labels is None:
        raise HubcardError(f"train_data has no label column ({label_column!r}, 'labels' or 'label'); pass its number of rows instead")
    counts = Counter(label_names[label] if isinstance(label, int) and 0 <= label < len(label_names) else label for label in labels)
    unknown = sorted(str(label) for label in counts if label not in label_names)
    if unknown:
        raise HubcardError(f"train_data: labels {', '.join(unknown)} are not in config['data']['label_names'] ({', '.join(label_names)})")
    return SplitFacts(name=name, rows=len(labels), label_counts={label: counts[label] for label in label_names})


def _labels(data: Any, columns: tuple[str, ...]) -> list[Any] | None:
    """The first of `columns` that a datasets.Dataset, a pandas DataFrame or a list of rows has, as a list."""
    table = hasattr(data, "column_names") or hasattr(data, "columns")  # a Dataset or a DataFrame
    names = list(data.column_names if hasattr(data, "column_names") else data.columns if table else data[0] if data else [])
    column = next((column for column in columns if column in names), None)
    if column is None:
        return None
    values = data[column] if table else [row[column] for row in data]
    return [_plain(value) for value in (values.tolist() if hasattr(values, "tolist") else values)]


def _plain(value: Any) -> Any:
    """numpy and torch scalars as Python numbers."""
    return value.item() if getattr(value, "ndim", None) == 0 else value


def _rows(eval_data: Any, text_column: str, label_column: str) -> list[dict[str, Any]]:
    """The text and label of each evaluation row, JSON-ready."""
    if hasattr(eval_data, "to_dict") and hasattr(eval_data, "columns"):  # a pandas DataFrame
        eval_data = eval_data.to_dict(orient="records")
    rows: Iterable[Mapping[str, Any]] = eval_data
    out = []
    for number, row in enumerate(rows, 1):
        missing = [column for column in (text_column, label_column) if column not in row]
        if missing:
            raise HubcardError(f"eval_data row {number} has no column {missing[0]!r}; set config['data'] text_column/label_column")
        out.append({text_column: row[text_column], label_column: _plain(row[label_column])})
    return out
