"""The model card: facts from run.json, rendered by a Jinja template into RUN_DIR/README.md.

    run.json ──gather_facts──► CardFacts ──template──► the card's body
             ──card_metadata─► ModelCardData (huggingface_hub) ──► the YAML front matter

Every fact a template prints comes from the run record or from the user's `card:` section; a fact
the run does not have is None, and the default template leaves its line or section out. Printing
None or NaN, or naming a fact that does not exist, is an error (StrictUndefined and `finalize`),
never an empty string or "None" in the card. Text from the data (examples, label names, answers)
reaches the card only through the escaping filters of this module and is never evaluated as
template code.

Only light libraries are imported here (no torch, transformers or peft): `render-card` is quick.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import traceback
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable

import jinja2
import yaml
from huggingface_hub.repocard_data import EvalResult, ModelCardData
from markupsafe import escape
from pydantic import ValidationError

from hubcard import plots
from hubcard.config import CardSection, recorded_project, resolve_recorded_path
from hubcard.errors import CardError
from hubcard.lint import PLACEHOLDER, check_card, lint_card, scan_markdown
from hubcard.metadata import is_hub_id, metadata_problems
from hubcard.rundir import ClassScores, MetricComparison, ModelFacts, RunDir, RunRecord, holding_run_dir, write_text_atomic

__all__ = [
    "CardFacts",
    "card_metadata",
    "check_card",
    "config_yaml",
    "gather_facts",
    "lint_card",
    "render_card",
    "render_run_card",
    "results_section",
    "usage_snippet",
]

logger = logging.getLogger(__name__)
SAY_ONCE = {"once": True}
"""`extra=` of a note that each rendering of the card would repeat: the console prints it once."""

HUB_URL = "https://huggingface.co"
DEFAULT_TEMPLATE = "modelcard.md.j2"
RESULTS_TEMPLATE = "results.md.j2"
RESULTS_HEADING = "Evaluation on held-out data"
"""The heading of the results section `hubcard evaluate --repo --pr/--push` adds to a repo's card."""
ADAPTER_ID_STAND_IN = "your-name/your-adapter"
BASE_MODEL_STAND_IN = "path/to/base-model"
CELL_WIDTH = 300
LOSS_TABLE_ROWS = 20

METHOD_NAMES = {"lora": "LoRA", "dora": "DoRA", "qlora": "QLoRA", "ia3": "IA³", "adalora": "AdaLoRA", "loha": "LoHa", "lokr": "LoKr"}
METHOD_PAPERS = {
    "lora": "https://arxiv.org/abs/2106.09685",
    "dora": "https://arxiv.org/abs/2402.09353",
    "qlora": "https://arxiv.org/abs/2305.14314",
    "ia3": "https://arxiv.org/abs/2205.05638",
    "adalora": "https://arxiv.org/abs/2303.10512",
}
# adapter_config.json keys the card always shows when present; the user's own peft options follow.
ADAPTER_SETTINGS = ("r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "use_dora", "use_rslora", "bias")
PIPELINE_TAGS = {"sequence-classification": "text-classification", "causal-lm": "text-generation"}
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "matthews_correlation": "Matthews correlation",
}
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json"}


@dataclass(frozen=True)
class Setting:
    """One adapter setting or TrainingArgument, and who chose it: 'config', 'hubcard', 'your code' (an
    adapter trained in a notebook), 'PEFT default'; None when the run does not say."""

    name: str
    value: Any
    source: str | None


@dataclass(frozen=True)
class Result:
    """A metric of the results table; `verdict` says whether the difference's interval excludes 0."""

    metric: MetricComparison
    verdict: str  # "better", "worse" or "within noise"


@dataclass(frozen=True)
class ClassResult:
    label: str
    support: int
    base: ClassScores
    adapter: ClassScores


@dataclass(frozen=True)
class LabelCount:
    label: str
    train: int | None
    train_share: float | None
    eval: int
    eval_share: float


@dataclass(frozen=True)
class Confusion:
    title: str
    matrix: list[list[int]]
    """Rows: true labels; columns: predicted labels, then, when `unmatched_column`, answers that named no label."""
    unmatched_column: bool
    plot: str | None


@dataclass(frozen=True)
class CardFacts:
    """Everything a card template can print (docs/card-template.md documents each field).

    `record` is run.json itself; the other fields are derived from it, None where the run lacks them.
    """

    record: RunRecord
    card: CardSection
    model_name: str
    repo_id: str | None
    repo_url: str | None
    adapter_id: str
    developed_by: str | None
    license: str | None
    language: list[str] | None
    base_model: str | None
    base_model_url: str | None
    base_model_name: str | None
    pipeline_tag: str
    method_name: str | None
    method_paper: str | None
    labels: list[str]
    label_words: list[str] | None
    trainable_share: float | None
    adapter_settings: list[Setting]
    training_arguments: list[Setting]
    loss_points: list[dict[str, Any]]
    dataset_url: str | None
    data_files: dict[str, str] | None
    label_distribution: list[LabelCount]
    majority_label: LabelCount | None
    results: list[Result]
    headline: Result | None
    per_class: list[ClassResult]
    weakest_class: ClassResult | None
    confusion: list[Confusion]
    compute_seconds: float | None
    usage_snippet: str | None
    config_yaml: str
    metadata: ModelCardData
    hubcard_version: str


# --- public functions -------------------------------------------------------------------------


@holding_run_dir
def render_run_card(run_dir: str | Path, template: str | Path | None = None, output: str | Path | None = None) -> Path:
    """Render the card of the run in `run_dir` into `output` (default RUN_DIR/README.md), atomically.

    The template is `template`, else the config's `card.template`, else hubcard's default. CardError
    when RUN_DIR/README.md was edited by hand since hubcard wrote it (`RunDir.card_edited_by_hand`):
    it is never written over.
    """
    run = RunDir(run_dir)
    record = run.read()
    plots.draw_missing(run, record)
    template = template or recorded_template(run, record)
    text = render_card(record, template)
    if output is not None and Path(output).resolve() != run.card.resolve():
        write_text_atomic(Path(output), text)
        return Path(output)
    if run.card_edited_by_hand():
        raise CardError(
            f"{run.card} was edited by hand since hubcard wrote it: hubcard keeps it as it is and wrote nothing. "
            f"Render into another file (--output FILE) and copy what you want, or move your card away to let hubcard "
            "write README.md again."
        )
    run.write_card(text)
    return run.card


def recorded_template(run: RunDir, record: RunRecord) -> str | None:
    """The config's card.template, where it lies now (run.json records it relative to the project)."""
    template = (record.config.get("card") or {}).get("template")
    return resolve_recorded_path(template, recorded_project(record.config, run.path)) if template else None


def render_card(record: RunRecord, template: str | Path | None = None) -> str:
    """The whole card (front matter and body) of `record`; the same record gives the same text."""
    facts = gather_facts(record)
    body = _render_template(template, {field.name: getattr(facts, field.name) for field in fields(facts)})
    return f"---\n{facts.metadata.to_yaml()}\n---\n\n{_tidy(body)}"


def card_metadata(record: RunRecord) -> ModelCardData:
    """The card's YAML front matter: what the Hub indexes (base model, task, tags, results).

    Raises CardError when it is metadata the Hub would refuse (hubcard.metadata), naming each key:
    the config is checked before a run starts, so this is a run.json from an older hubcard or edited.
    """
    base_model = _base_model(record.model)
    if base_model is None:
        logger.warning(
            "base_model is left out of the card's metadata: the run knows no Hub id for the base model "
            "(set model.hub_id in the config to name it)",
            extra=SAY_ONCE,
        )
    card = _card_section(record)
    license = _license(record)
    if license is None:
        logger.warning("the card has no license: set card.license in the config", extra=SAY_ONCE)
    method_tags = [record.adapter.peft_type.lower(), record.adapter.method] if record.adapter else []
    base_tags = [f"base_model:adapter:{base_model}"] if base_model else []
    eval_results = model_index_results(record)
    repo_id = _repo_id(record)
    metadata = ModelCardData(
        base_model=base_model,
        datasets=[record.data.hub_id] if record.data and record.data.hub_id else None,
        language=_language(record),
        library_name="peft",
        license=license,
        license_name=card.license_name if license == card.license else None,
        license_link=card.license_link if license == card.license else None,
        metrics=list(record.evaluation.metric_names) if record.evaluation else None,
        pipeline_tag=PIPELINE_TAGS[record.task.type],
        tags=["peft", *method_tags, "transformers", "text-classification", *base_tags, "hubcard", *card.tags],
        model_name=(repo_id.split("/")[-1] if repo_id else _model_name(record)) if eval_results else None,
        eval_results=eval_results or None,
    )
    problems = metadata_problems(metadata.to_dict())
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise CardError(f"the card's metadata would be refused by the Hub; fix these in the config (card:, model.hub_id, data.hub_id):\n{listed}")
    return metadata


def usage_snippet(record: RunRecord) -> str:
    """Python code that loads the adapter from its Hub repo and classifies a text as hubcard did.

    Where the repo id or the base model's Hub id is unknown, the code names a stand-in and says so.
    """
    if record.model is None or record.data is None:
        raise CardError("the run records no model or no data: the usage snippet needs both")
    base_id, base_kwargs = _base_model_loading(record.model)
    adapter_id = _repo_id(record)
    branch = _branch(record)
    adapter_arguments = f", revision={branch!r}" if branch else ""
    has_tokenizer = record.adapter is not None and bool(TOKENIZER_FILES & {Path(f).name for f in record.adapter.files})
    text, expected = _sample_text(record)
    base_arguments = "".join(f", {key}={value!r}" for key, value in base_kwargs.items())
    base_note = f"  # a copy of {_base_model_name(record.model)!r}: it has no Hub id" if base_id == BASE_MODEL_STAND_IN else ""
    values = {
        "base_id": repr(base_id),
        "base_note": base_note,
        "adapter_id": repr(adapter_id or ADAPTER_ID_STAND_IN),
        "adapter_note": "" if adapter_id else "  # not published yet: the repo id you publish it to",
        "base_kwargs": base_arguments,
        "adapter_arguments": adapter_arguments,
        "tokenizer": f"adapter_id{adapter_arguments}" if has_tokenizer else f"base_model_id{base_arguments}",
        "text": repr(text),
        "expected": f"  # {expected}" if expected else "",
    }
    if record.task.type == "sequence-classification":
        id2label = dict(enumerate(record.data.label_names))
        return SEQUENCE_CLASSIFICATION_SNIPPET.format(**values, id2label=repr(id2label), max_length=record.data.max_length)
    return _causal_lm_snippet(record, values)


def results_section(record: RunRecord) -> str:
    """The section (a level-2 heading, RESULTS_HEADING, and its text) that puts the evaluation of an
    adapter from the Hub (`record.hub_adapter`: its repo and commit) into that repo's own card: the
    commit, the base model, the data, each metric of both models with the difference and its interval.
    CardError for a run that is not such an evaluation."""
    source, evaluation, data = record.hub_adapter, record.evaluation, record.data
    if source is None or evaluation is None or data is None:
        raise CardError("a results section is for an adapter from the Hub that `hubcard evaluate --repo` evaluated")
    base_model = _base_model(record.model)
    context = {
        "heading": RESULTS_HEADING,
        "commit": source,
        "commit_url": f"{HUB_URL}/{source.repo_id}/tree/{source.commit}",
        "commit_date": _moment(source.commit_date) if source.commit_date else "date unknown",
        "before": _moment(source.before) if source.before else None,
        "base_model": base_model or _base_model_name(record.model),
        "base_model_url": f"{HUB_URL}/{base_model}" if base_model else None,
        "evaluation": evaluation,
        "data": data,
        "dataset_url": f"{HUB_URL}/datasets/{data.hub_id}" if data.hub_id else None,
        "data_files": [_file_name(path) for path in (data.files or {}).values()],
        "results": [Result(comparison, _verdict(comparison)) for comparison in evaluation.comparison],
        "metric_names": METRIC_NAMES,
        "level": f"{evaluation.confidence_level:.0%}",
        "hubcard_version": record.hubcard_version,
    }
    return _tidy(_render_template(None, context, packaged=RESULTS_TEMPLATE))


def _moment(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- facts ------------------------------------------------------------------------------------


def gather_facts(record: RunRecord) -> CardFacts:
    """Derive every fact a card template can print from the run record."""
    card = _card_section(record)
    model, adapter, data, evaluation = record.model, record.adapter, record.data, record.evaluation
    repo_id = _repo_id(record)
    base_model = _base_model(model)
    method_name = METHOD_NAMES.get(adapter.method, adapter.method) if adapter else None
    labels = list(data.label_names) if data else []
    results = [Result(c, _verdict(c)) for c in evaluation.comparison] if evaluation else []
    per_class = _per_class(record)
    distribution = _label_distribution(record)
    return CardFacts(
        record=record,
        card=card,
        model_name=_model_name(record),
        repo_id=repo_id,
        repo_url=f"{HUB_URL}/{repo_id}" if repo_id else None,
        adapter_id=repo_id or ADAPTER_ID_STAND_IN,
        developed_by=card.developed_by or (repo_id.split("/")[0] if repo_id else None),
        license=_license(record),
        language=_language(record),
        base_model=base_model,
        base_model_url=f"{HUB_URL}/{base_model}" if base_model else None,
        base_model_name=_base_model_name(model),
        pipeline_tag=PIPELINE_TAGS[record.task.type],
        method_name=method_name,
        method_paper=METHOD_PAPERS.get(adapter.method) if adapter else None,
        labels=labels,
        label_words=(record.task.label_words or labels) if record.task.type == "causal-lm" else None,
        trainable_share=model.trainable_parameters / model.total_parameters if model and model.total_parameters else None,
        adapter_settings=_adapter_settings(record),
        training_arguments=_training_arguments(record),
        loss_points=_loss_points(record),
        dataset_url=f"{HUB_URL}/datasets/{data.hub_id}" if data and data.hub_id else None,
        data_files={split: _file_name(path) for split, path in data.files.items()} if data and data.files else None,
        label_distribution=distribution,
        majority_label=max(distribution, key=lambda row: row.train) if data and data.train and data.train.label_counts else None,
        results=results,
        headline=results[0] if results else None,
        per_class=per_class,
        weakest_class=min(per_class, key=lambda row: row.adapter.f1) if per_class else None,
        confusion=_confusion(record),
        compute_seconds=_compute_seconds(record),
        usage_snippet=usage_snippet(record) if model and data else None,
        config_yaml=config_yaml(record.config),
        metadata=card_metadata(record),
        hubcard_version=record.hubcard_version,
    )


def _card_section(record: RunRecord) -> CardSection:
    try:
        return CardSection.model_validate(record.config.get("card") or {})
    except ValidationError as error:
        raise CardError(f"the card section of the config stored in run.json is invalid:\n{error}") from None


def _model_name(record: RunRecord) -> str:
    """`card.model_name`, else the repo's name, else what it is: 'LoRA adapter for tiny-bert'."""
    repo_id = _repo_id(record)
    if name := _card_section(record).model_name:
        return name
    if repo_id:
        return repo_id.split("/")[-1]
    method = METHOD_NAMES.get(record.adapter.method, record.adapter.method) if record.adapter else "PEFT"
    return f"{method} adapter for {_base_model_name(record.model) or 'a base model'}"


def _license(record: RunRecord) -> str | None:
    """`card.license`, else the base model's license when it is one of the Hub's ids."""
    return _card_section(record).license or _base_model_metadata(record, "license")


def _language(record: RunRecord) -> list[str] | None:
    """`card.language`, else the base model's languages when they are all ISO 639 codes."""
    return _card_section(record).language or _base_model_metadata(record, "language")


def _base_model_metadata(record: RunRecord, key: str) -> Any:
    """The base model's own `license` or `language` (from its card or GGUF file), or None when it has
    none or one the Hub would refuse (then with a warning: hubcard does not guess what it meant)."""
    value = getattr(record.model, key) if record.model else None
    if value is None:
        return None
    problems = metadata_problems({key: value})
    if problems:
        logger.warning(
            "the base model's %s %r is left out of the card: %s; set card.%s in the config", key, value, problems[0].message, key, extra=SAY_ONCE
        )
        return None
    return value


def _repo_id(record: RunRecord) -> str | None:
    if record.publish:
        return record.publish.repo_id
    return (record.config.get("hub") or {}).get("repo_id")


def _branch(record: RunRecord) -> str | None:
    """The branch the adapter is published to when it is not main (a pull request's card is written
    for the branch it is to be merged into)."""
    if record.publish and not record.publish.pull_request_url:
        branch = record.publish.revision
    else:
        branch = (record.config.get("hub") or {}).get("revision")
    return branch if branch and branch != "main" else None


def _base_model(model: ModelFacts | None) -> str | None:
    """The base model's Hub id, never a local path."""
    if model is None or model.hub_id is None:
        return None
    return model.hub_id if is_hub_id(model.hub_id) else None


def _base_model_name(model: ModelFacts | None) -> str | None:
    """How the card names the base model: its Hub id, else its file or folder name (never a path)."""
    if model is None:
        return None
    return _base_model(model) or _file_name(model.gguf_file or model.name_or_path)


def model_index_results(record: RunRecord) -> list[EvalResult]:
    """The model-index results: only for data that is a Hub data set (`dataset.type` is read as a Hub
    data-set id, so local files without data.hub_id get no model-index; the card's body has the results)."""
    data, evaluation = record.data, record.evaluation
    if data is None or evaluation is None:
        return []
    if data.hub_id is None:
        logger.info(
            "the card's metadata has no model-index: the evaluation data are local files with no Hub id "
            "(set data.hub_id to the Hub data set they are a copy of)",
            extra=SAY_ONCE,
        )
        return []
    return [
        EvalResult(
            task_type="text-classification",
            task_name="Text Classification",
            dataset_type=data.hub_id,
            dataset_name=f"{data.hub_id} ({data.name})" if data.name else data.hub_id,
            dataset_config=data.name,
            dataset_split=data.eval.name,
            dataset_revision=data.revision,
            metric_type=comparison.name,
            metric_name=METRIC_NAMES.get(comparison.name, comparison.name),
            metric_value=round(comparison.adapter, 4),
        )
        for comparison in evaluation.comparison
    ]


def _verdict(comparison: MetricComparison) -> str:
    low, high = comparison.difference_interval
    return "better" if low > 0 else "worse" if high < 0 else "within noise"


def _adapter_settings(record: RunRecord) -> list[Setting]:
    """The main settings of adapter_config.json, then every other one that is not PEFT's default,
    each with who set it (None for a run.json that does not say)."""
    if record.adapter is None:
        return []
    saved, set_by = record.adapter.config, record.adapter.set_by
    facts = {"target_modules": record.adapter.target_modules, "modules_to_save": record.adapter.modules_to_save}
    chosen = [key for key, source in set_by.items() if source != "PEFT default" and key not in ADAPTER_SETTINGS]
    settings = []
    for name in [key for key in ADAPTER_SETTINGS if key in saved] + chosen:
        value = facts.get(name) or saved.get(name)
        if value is not None:
            settings.append(Setting(name, sorted(value) if isinstance(value, list) else value, set_by.get(name)))
    return settings


def _training_arguments(record: RunRecord) -> list[Setting]:
    if record.training is None:
        return []
    return [
        Setting(name, value, record.training.arguments_set_by.get(name))
        for name, value in record.training.arguments_changed.items()
        if value is not None
    ]


def _loss_points(record: RunRecord) -> list[dict[str, Any]]:
    """The logged training losses, thinned to at most LOSS_TABLE_ROWS rows (the last one kept)."""
    if record.training is None:
        return []
    points = [entry for entry in record.training.log_history if "loss" in entry and "step" in entry]
    if len(points) <= LOSS_TABLE_ROWS:
        return points
    stride = math.ceil(len(points) / LOSS_TABLE_ROWS)
    return points[::stride] if (len(points) - 1) % stride == 0 else points[::stride] + points[-1:]


def _label_distribution(record: RunRecord) -> list[LabelCount]:
    data = record.data
    if data is None:
        return []
    train = data.train.label_counts if data.train else None  # None too when only the number of rows is known
    labels = list(data.label_names) + [name for name in {**(train or {}), **data.eval.label_counts} if name not in data.label_names]
    train_total = sum(train.values()) if train else 0
    eval_total = sum(data.eval.label_counts.values()) or 1
    return [
        LabelCount(
            label=label,
            train=train.get(label, 0) if train is not None else None,
            train_share=train.get(label, 0) / train_total if train else None,
            eval=data.eval.label_counts.get(label, 0),
            eval_share=data.eval.label_counts.get(label, 0) / eval_total,
        )
        for label in labels
    ]


def _per_class(record: RunRecord) -> list[ClassResult]:
    if record.evaluation is None:
        return []
    adapter = {scores.label: scores for scores in record.evaluation.adapter.per_class}
    return [
        ClassResult(base.label, base.support, base, adapter[base.label])
        for base in record.evaluation.base.per_class
        if base.label in adapter
    ]


def _confusion(record: RunRecord) -> list[Confusion]:
    if record.evaluation is None:
        return []
    labels = len(record.data.label_names) if record.data else None
    models = (("Base model", record.evaluation.base, "confusion_base"), ("Adapter", record.evaluation.adapter, "confusion_adapter"))
    return [
        Confusion(title, scores.confusion_matrix, any(len(row) != labels for row in scores.confusion_matrix), record.plots.get(plot))
        for title, scores, plot in models
    ]


def _compute_seconds(record: RunRecord) -> float | None:
    seconds = [record.training.runtime_seconds] if record.training else []
    if record.evaluation:
        seconds += [record.evaluation.base.seconds, record.evaluation.adapter.seconds]
    return sum(seconds) if seconds else None


def config_yaml(config: dict[str, Any]) -> str:
    """The run's redacted config as YAML, local paths shortened to file names: what the card shows
    and what `publish` uploads."""
    return yaml.dump(_paths_to_names(config), Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True, width=10**6)


def _paths_to_names(value: Any) -> Any:
    """The config with every absolute local path replaced by its file name (no /home/alice/... in a card)."""
    if isinstance(value, dict):
        return {key: _paths_to_names(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_paths_to_names(item) for item in value]
    if isinstance(value, str) and (
        value.startswith(("~", "./")) or PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()
    ):
        return _file_name(value)
    return value


def _file_name(path: str) -> str:
    return PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name


class _ConfigDumper(yaml.SafeDumper):
    """Writes multi-line strings (prompt templates) as YAML block literals, as a person would."""


_ConfigDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)
)


# --- the usage snippet ------------------------------------------------------------------------

SEQUENCE_CLASSIFICATION_SNIPPET = """\
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

base_model_id = {base_id}{base_note}
adapter_id = {adapter_id}{adapter_note}
id2label = {id2label}

tokenizer = AutoTokenizer.from_pretrained({tokenizer})
model = AutoModelForSequenceClassification.from_pretrained(
    base_model_id{base_kwargs}, num_labels=len(id2label), id2label=id2label, label2id={{label: i for i, label in id2label.items()}}
)
model = PeftModel.from_pretrained(model, adapter_id{adapter_arguments})
model.eval()

text = {text}
inputs = tokenizer(text, truncation=True, max_length={max_length}, return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
print(id2label[logits.argmax(-1).item()]){expected}
"""

CAUSAL_LM_SNIPPET = """\
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

base_model_id = {base_id}{base_note}
adapter_id = {adapter_id}{adapter_note}
{labels}prompt_template = {prompt_template}
{system_prompt}
tokenizer = AutoTokenizer.from_pretrained({tokenizer})
model = AutoModelForCausalLM.from_pretrained(base_model_id{base_kwargs})
model = PeftModel.from_pretrained(model, adapter_id{adapter_arguments})
model.eval()


def build_prompt(text):
    message = prompt_template.replace("{{labels}}", ", ".join(label_words)).replace("{{text}}", text)
{build_prompt}


{classify}


text = {text}
print(classify(text)){expected}
"""

CHAT_PROMPT = """\
    messages = [{system_message}{{"role": "user", "content": message}}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)"""

SCORE_CLASSIFY = """\
def classify(text):
    \"\"\"The label whose word is the most likely answer to the prompt (summed token log-probabilities).\"\"\"
    prompt_ids = tokenizer(build_prompt(text), add_special_tokens=False, return_tensors="pt").input_ids
    scores = []
    for word in label_words:
        word_ids = tokenizer(word, add_special_tokens=False, return_tensors="pt").input_ids
        input_ids = torch.cat([prompt_ids, word_ids], dim=1)
        with torch.no_grad():
            log_probs = model(input_ids=input_ids).logits[0, prompt_ids.shape[1] - 1 : -1].log_softmax(-1)
        scores.append(log_probs.gather(1, word_ids[0].unsqueeze(1)).sum().item())
    return {labels_name}[scores.index(max(scores))]"""

GENERATE_CLASSIFY = """\
def classify(text):
    \"\"\"The greedy answer to the prompt, mapped to the label whose word it mentions first (None if none).\"\"\"
    inputs = tokenizer(build_prompt(text), add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        output = model.generate(
            input_ids=inputs.input_ids, attention_mask=inputs.attention_mask, max_new_tokens={max_new_tokens}, do_sample=False
        )
    answer = tokenizer.decode(output[0, inputs.input_ids.shape[1] :], skip_special_tokens=True).lower()
    mentioned = sorted((answer.find(word.lower()), -len(word), index) for index, word in enumerate(label_words) if word.lower() in answer)
    return {labels_name}[mentioned[0][2]] if mentioned else None"""


def _causal_lm_snippet(record: RunRecord, values: dict[str, str]) -> str:
    names = list(record.data.label_names)
    words = list(record.task.label_words or names)
    labels = f"label_words = {words!r}\n" + (f"labels = {names!r}  # the label each word stands for\n" if words != names else "")
    system_prompt = record.task.system_prompt
    if record.model.uses_chat_template:
        system_message = '{"role": "system", "content": system_prompt}, ' if system_prompt else ""
        build_prompt = CHAT_PROMPT.format(system_message=system_message)
    else:
        build_prompt = '    return system_prompt + "\\n\\n" + message + "\\n"' if system_prompt else '    return message + "\\n"'
    classify = SCORE_CLASSIFY if record.task.prediction != "generate" else GENERATE_CLASSIFY
    max_new_tokens = (record.config.get("task") or {}).get("max_new_tokens", 16)
    return CAUSAL_LM_SNIPPET.format(
        **values,
        labels=labels,
        prompt_template=repr(record.task.prompt_template or "{text}"),
        system_prompt=f"system_prompt = {system_prompt!r}\n" if system_prompt else "",
        build_prompt=build_prompt,
        classify=classify.format(labels_name="labels" if words != names else "label_words", max_new_tokens=max_new_tokens),
    )


def _base_model_loading(model: ModelFacts) -> tuple[str, dict[str, Any]]:
    """What from_pretrained loads as the base model, and its keyword arguments (trust_remote_code
    too, when the run trusted the base model's own code: loading it needs the same consent)."""
    base_id, kwargs = _base_model_files(model)
    return base_id, kwargs | ({"trust_remote_code": True} if model.trust_remote_code else {})


def _base_model_files(model: ModelFacts) -> tuple[str, dict[str, str]]:
    hub_id = _base_model(model)
    if hub_id and model.source == "gguf" and model.gguf_file and model.name_or_path == hub_id:
        return hub_id, {"gguf_file": model.gguf_file} | ({"revision": model.revision} if model.revision else {})
    if hub_id:
        return hub_id, {"revision": model.revision} if model.revision else {}
    if model.source == "gguf":
        return BASE_MODEL_STAND_IN, {"gguf_file": _file_name(model.gguf_file or model.name_or_path)}
    return BASE_MODEL_STAND_IN, {}


def _sample_text(record: RunRecord) -> tuple[str, str | None]:
    """An evaluation example for the snippet (the shortest the adapter fixed, else the shortest) and
    what hubcard's evaluation predicted for it, as a comment."""
    # Only a text as the data has it (not cut, nothing masked), and none a card check reads as a placeholder.
    examples = [e for e in record.evaluation.examples if e.exact and not PLACEHOLDER.search(e.text)] if record.evaluation else []
    if not examples:
        return "Replace this with the text to classify.", None
    fixed = [example for example in examples if example.kind == "fixed"]
    example = min(fixed or examples, key=lambda example: len(example.text))
    return example.text, f"hubcard's evaluation: the adapter predicted {example.adapter_prediction!r} (true label: {example.label!r})"


# --- rendering --------------------------------------------------------------------------------


class _MissingFact(Exception):
    pass


def _render_template(template: str | Path | None, context: dict[str, Any], packaged: str = DEFAULT_TEMPLATE) -> str:
    """`template` (a user's file), else hubcard's template `packaged`, rendered with `context`."""
    user_template = Path(template) if template else None
    if user_template is not None and not user_template.is_file():
        raise CardError(f"card template not found: {user_template}")
    environment = _environment(user_template.parent if user_template else None)
    name = user_template.name if user_template else packaged
    try:
        return environment.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as error:
        raise CardError(f"{error.filename or name}, line {error.lineno}: template syntax error: {error.message}") from None
    except jinja2.TemplateNotFound as error:
        raise CardError(f"{name}: template not found: {error.name}") from None
    except (jinja2.UndefinedError, _MissingFact) as error:
        raise CardError(f"{_template_line(error)}: {error} (a fact this run does not have, or a misspelt name)") from None
    except (jinja2.TemplateRuntimeError, TypeError, ValueError, LookupError) as error:
        raise CardError(f"{_template_line(error)}: {type(error).__name__}: {error}") from None


def _environment(search_path: Path | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(search_path)] if search_path else []
    loaders.append(jinja2.FunctionLoader(_packaged_template))
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        bytecode_cache=jinja2.FileSystemBytecodeCache(),  # compiling the default template is most of a render
        undefined=jinja2.StrictUndefined,
        finalize=_refuse_missing,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(FILTERS)
    return environment


def _packaged_template(name: str) -> tuple[str, str, Any] | None:
    resource = resources.files("hubcard.templates").joinpath(name)
    if not resource.is_file():
        return None
    return resource.read_text(encoding="utf-8"), f"hubcard/templates/{name}", lambda: True


def _refuse_missing(value: Any) -> Any:
    """What Jinja prints and what the filters format: never None or NaN, which are missing facts."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        raise _MissingFact(f"the template printed {value!r}")
    if isinstance(value, tuple):
        for item in value:
            _refuse_missing(item)
    return value


def _refusing_missing(function: Callable[..., str]) -> Callable[..., str]:
    @functools.wraps(function)
    def formatted(value: Any, *args: Any) -> str:
        return function(_refuse_missing(value), *args)

    return formatted


def _template_line(error: BaseException) -> str:
    """'file, line N' of the template statement that raised `error`: Jinja rewrites the traceback so
    that its template frames carry the template's file name and line."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.name in ("top-level template code", "template") or frame.name.startswith("block ")
    ]
    if not frames:
        return "card template"
    return f"{frames[-1].filename}, line {frames[-1].lineno}"


def _tidy(body: str) -> str:
    """Collapse the blank lines that left-out facts leave behind (outside code blocks); one final newline."""
    lines: list[str] = []
    for _, line, in_code in scan_markdown(body):
        if not in_code and not line.strip() and (not lines or not lines[-1].strip()):
            continue
        lines.append(line.rstrip() if not in_code else line)
    return "\n".join(lines).strip("\n") + "\n"


# --- filters: the one place where text becomes Markdown ---------------------------------------

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
PROSE_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters but tab and line feed, which prose the user wrote keeps."""
# Characters with a meaning in inline Markdown (emphasis, code, links, images, HTML, tables, math,
# mentions), escaped with a backslash so that data shows as written.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~!$@#])")
# Data that reads like a missing value (None, nan, inf) or a placeholder ("More Information Needed")
# is printed with its first letter as a character reference: it shows as written, and no card check
# (render-card --check, lint-card) takes the data for a missing fact.
READS_AS_MISSING = re.compile(r"(?<!\w)(?:None|nan|NaN|inf)(?!\w)|(?i:more information needed)")


def one_line(value: Any) -> str:
    """`value` as text on one line: newlines, tabs and other control characters become spaces."""
    return CONTROL_CHARACTERS.sub(" ", str(value)).strip()


def markdown_text(value: Any, width: int | None = None) -> str:
    """Data as inline Markdown text that shows exactly as written: in prose and in table cells."""
    text = one_line(value)
    if width is not None and len(text) > width:
        text = text[: width - 1].rstrip() + "…"
    text = str(escape(text)).replace("&#39;", "'").replace("&#34;", '"')
    return _as_data(MARKDOWN_SPECIAL.sub(r"\\\1", text))


def _as_data(text: str) -> str:
    """Escaped text with what reads like a missing fact written as data (see READS_AS_MISSING)."""
    return READS_AS_MISSING.sub(lambda match: f"&#{ord(match.group(0)[0])};{match.group(0)[1:]}", text)


def table_cell(value: Any, width: int = CELL_WIDTH) -> str:
    """Data in a Markdown table cell: escaped, and cut with an ellipsis beyond `width` characters."""
    return markdown_text(value, width)


def inline_code(value: Any) -> str:
    """`value` as inline code, safe in prose and in table cells."""
    text = one_line(value)
    if text and "`" not in text and "|" not in text and not READS_AS_MISSING.search(text):
        return f"`{text}`"
    return f"<code>{markdown_text(text)}</code>"


def html_text(value: Any) -> str:
    """Data inside an HTML element or attribute of the card (e.g. a <summary>)."""
    return _as_data(str(escape(one_line(value))))


def prose(value: Any) -> str:
    """Text the user wrote for the card (card.description, card.direct_use, ...): Markdown, kept as
    written, with `<` escaped so that HTML shows as text and runs nothing, like data does."""
    return PROSE_CONTROL_CHARACTERS.sub(" ", str(value)).replace("<", "&lt;")


def fenced(code: str, language: str = "") -> str:
    """`code` in a fenced block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{code.rstrip()}\n{fence}"


def config_value(value: Any) -> str:
    """A config or adapter setting for a table cell: lists as code items, the rest as inline code."""
    if isinstance(value, list):
        return ", ".join(inline_code(item) for item in value) if value else "none"
    if isinstance(value, bool):
        return inline_code(str(value).lower())
    if isinstance(value, dict):
        return inline_code(yaml.safe_dump(value, default_flow_style=True, width=1_000_000).strip())
    return inline_code(value)


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def parameters(count: int) -> str:
    """A parameter count the way model names say it: 22.7M, 1.2B, 74.5K."""
    for divisor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= divisor:
            return f"{count / divisor:.1f}{suffix}"
    return str(count)


FILTERS = {
    name: _refusing_missing(function)
    for name, function in {
        "text": markdown_text,
        "cell": table_cell,
        "code": inline_code,
        "html": html_text,
        "prose": prose,
        "fenced": fenced,
        "setting": config_value,
        "file_name": _file_name,
        "score": lambda value: f"{value:.3f}",
        "signed": lambda value: f"{value:+.3f}",
        "interval": lambda bounds: f"[{bounds[0]:.3f}, {bounds[1]:.3f}]",
        "percent": lambda value, digits=1: f"{value * 100:.{digits}f}%",
        "thousands": lambda value: f"{value:,}",
        "parameters": parameters,
        "duration": duration,
    }.items()
}
