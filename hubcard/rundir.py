"""The run directory: the one place that knows its layout and reads and writes run.json.

    RUN_DIR/
      run.json        every fact the card needs (:class:`RunRecord`)
      adapter/        adapter_model.safetensors, adapter_config.json, tokenizer files
      predictions/    base.jsonl, adapter.jsonl: one row per evaluated example
      plots/          loss curve, confusion matrices (PNG)
      README.md       the rendered card
      checkpoints/    Trainer checkpoints (never uploaded)
      training-log.jsonl  every entry the Trainer logged (loss, learning rate, ...), one JSON line each
      repo/           the exact view that is (or would be) uploaded to the Hub

Stages fill run.json in turn (train: model, adapter, data, training; evaluate: evaluation, plots;
publish: publish). Every write is atomic (temporary file, then rename), so an interrupted stage
never leaves a half-written run.json or card behind, and gives the file the permissions any other
program would (0644 under the usual umask). A stage holds the run directory's lock
(RUN_DIR/.hubcard.lock) while it works: a second process on the same run directory stops at once,
naming the first.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hubcard.errors import RunDirError

RUN_SCHEMA_VERSION = 1
CHECKPOINT_FOLDER = re.compile(r"^checkpoint-(\d+)$")
MIN_FREE_BYTES = 200 * 2**20
"""Free space a run directory needs before training starts: checkpoints of an adapter, plots, card."""
LOCK_FILE = ".hubcard.lock"
"""Held (flock) by the process working on the run directory; it holds that process's PID and command."""
# The files of an adapter, as PEFT saves it and as a Hub repo of hubcard holds it (one owner of the names).
CARD = "README.md"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TRAINING_CONFIG = "config.yaml"
"""The config a run was trained with, as published beside its adapter."""


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageTiming(Record):
    started_at: datetime
    finished_at: datetime | None = None
    seconds: float | None = None


class Hardware(Record):
    cpu: str
    cpu_count: int
    memory_gib: float
    accelerator: str | None = None
    """The GPU's name, e.g. 'NVIDIA H100 80GB HBM3'; None on CPU."""
    accelerator_count: int = 0
    accelerator_memory_gib: float | None = None
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """The precision the adapter was trained in (bf16/fp16: mixed precision)."""
    precision_set_by: str | None = None
    """Who chose it: 'hubcard' (for this hardware), 'config' or 'your code' (a notebook's Trainer)."""
    precision_reason: str | None = None
    """Why, in words: 'this CPU computes bf16 natively, with AVX512_BF16', 'training.bf16: true', ..."""
    num_processes: int = 1
    platform: str | None = None


class ModelFacts(Record):
    name_or_path: str
    """As configured: a Hub id, a local folder or a .gguf file."""
    hub_id: str | None
    """The Hub id the card names as base model; None when it cannot be known (never a local path)."""
    revision: str | None = None
    source: Literal["hub", "local", "gguf"]
    gguf_file: str | None = None
    architecture: str
    """The class that was trained, e.g. 'GPT2ForSequenceClassification'."""
    model_type: str
    num_parameters: int
    """Parameters of the base model (with the classification head, for sequence classification)."""
    trainable_parameters: int
    total_parameters: int
    """Parameters of the model with the adapter attached."""
    dtype: str
    trust_remote_code: bool = False
    load_in_4bit: bool = False
    license: str | None = None
    language: list[str] | None = None
    uses_chat_template: bool = False


class AdapterFacts(Record):
    method: str
    """hubcard's name for it: lora, dora, ia3, ..."""
    peft_type: str
    config: dict[str, Any]
    """adapter_config.json as saved."""
    target_modules: list[str] | None = None
    modules_to_save: list[str] | None = None
    size_bytes: int
    """The weights: the adapter_model files."""
    files: list[str]
    file_sizes: dict[str, int] = {}
    """Every file of the adapter folder (weights, config, tokenizer) -> bytes."""
    set_by: dict[str, str] = {}
    """Setting of adapter_config.json -> who set it: config, hubcard, your code or PEFT default."""


class SplitFacts(Record):
    name: str
    rows: int
    label_counts: dict[str, int] | None
    """Rows per label name; None when only the number of rows is known (a notebook's training data)."""


class DataFacts(Record):
    source: Literal["hub", "local"]
    path: str | None = None
    name: str | None = None
    revision: str | None = None
    files: dict[str, str] | None = None
    hub_id: str | None = None
    """The data set's Hub id for the card's metadata: data.path, or data.hub_id for a local copy; None for
    local files that name none."""
    text_column: str
    label_column: str
    label_names: list[str]
    max_length: int
    train: SplitFacts | None = None
    eval: SplitFacts


class TaskFacts(Record):
    type: Literal["sequence-classification", "causal-lm"]
    prediction: Literal["score", "generate"] | None = None
    prompt_template: str | None = None
    system_prompt: str | None = None
    label_words: list[str] | None = None


class TrainingFacts(Record):
    arguments_changed: dict[str, Any]
    """TrainingArguments that differ from transformers' defaults (output_dir and logging paths left out)."""
    arguments_set_by: dict[str, str] = {}
    """Each changed argument -> who set it: config, hubcard or your code."""
    seed: int
    global_steps: int
    epochs: float
    runtime_seconds: float
    samples_per_second: float | None = None
    steps_per_second: float | None = None
    final_loss: float | None = None
    log_history: list[dict[str, Any]]
    resumed_from_checkpoint: str | None = None
    gradient_checkpointing: bool = False
    gradient_accumulation_steps: int = 1


class ClassScores(Record):
    label: str
    precision: float
    recall: float
    f1: float
    support: int


class ModelEvaluation(Record):
    metrics: dict[str, float]
    per_class: list[ClassScores]
    confusion_matrix: list[list[int]]
    """Rows: true label, columns: predicted label, in label_names order."""
    unmatched_answers: int = 0
    """causal-lm with prediction 'generate': answers that matched no label word (counted wrong)."""
    seconds: float


class MetricComparison(Record):
    name: str
    base: float
    adapter: float
    difference: float
    base_interval: tuple[float, float]
    adapter_interval: tuple[float, float]
    difference_interval: tuple[float, float]


class Example(Record):
    text: str
    label: str
    base_prediction: str
    adapter_prediction: str
    base_answer: str | None = None
    """causal-lm: the base model's raw answer, e.g. 'The sentiment of the text is negative.'"""
    adapter_answer: str | None = None
    kind: Literal["fixed", "still wrong", "broken", "both right"]
    exact: bool = True
    """Whether `text` is the example's text as the data has it; False when it was cut to its beginning
    (a long text) or a token-like string in it was masked: what the card and the upload show."""


class EvaluationFacts(Record):
    metric_backend: Literal["evaluate", "scikit-learn"]
    metric_names: list[str]
    average: str | None = None
    """How f1, precision and recall are averaged over the labels ('binary', 'macro', ...); the card says so."""
    rows: int
    batch_size: int
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """The precision of the predictions (bf16/fp16: autocast, weights in fp32)."""
    base: ModelEvaluation
    adapter: ModelEvaluation
    comparison: list[MetricComparison]
    bootstrap_samples: int
    confidence_level: float
    examples: list[Example]


class Emissions(Record):
    measured: bool
    kg_co2eq: float | None = None
    energy_kwh: float | None = None
    tracker: str | None = None
    country: str | None = None
    reason: str | None = None
    """Why it was not measured, when it was not."""


class PublishFacts(Record):
    """Where the run was last published; the target (repo, branch, pull request, visibility) was the
    choice of that publish, also kept in the config's `hub` section."""

    repo_id: str
    url: str
    revision: str
    """The branch, or refs/pr/N for a pull request."""
    commit_oid: str
    commit_url: str
    pull_request_url: str | None = None
    private: bool | None = None
    """The repo's visibility as the Hub reported it (None: not known)."""
    published_at: datetime


class HubAdapterFacts(Record):
    """Where an adapter evaluated from the Hub (`hubcard evaluate --repo`) came from: it was not trained here."""

    repo_id: str
    commit: str
    """The commit whose adapter was evaluated."""
    commit_date: datetime | None = None
    revision: str | None = None
    """The branch, tag or commit asked for (--revision); None: the default branch."""
    before: datetime | None = None
    """--before: the commit is the last one on the branch at or before this moment (a deadline)."""
    weights_file: str
    weights_sha256: str
    base_model_from: Literal["adapter_config.json", "roster", "--base-model"]
    """Where the base model's Hub id came from."""


class RunRecord(Record):
    """run.json: every fact the card needs, filled stage by stage."""

    schema_version: int = RUN_SCHEMA_VERSION
    hubcard_version: str
    trained_by: Literal["hubcard", "your code"] = "hubcard"
    """hubcard (`hubcard train`: the config repeats the run), or the user's own code (a notebook's
    adapter that hubcard documented, an adapter from the Hub that `hubcard evaluate --repo` evaluated:
    its config evaluates, it does not train)."""
    created_at: datetime
    config: dict[str, Any]
    """The redacted config: what the user wrote, after overrides, with no secret."""
    config_fingerprint: str
    versions: dict[str, str]
    hardware: Hardware
    task: TaskFacts
    stages: dict[str, StageTiming] = {}
    model: ModelFacts | None = None
    adapter: AdapterFacts | None = None
    data: DataFacts | None = None
    training: TrainingFacts | None = None
    evaluation: EvaluationFacts | None = None
    emissions: Emissions | None = None
    plots: dict[str, str] = {}
    """Plot name ('loss', 'confusion_base', 'confusion_adapter') -> path relative to the run directory."""
    publish: PublishFacts | None = None
    hub_adapter: HubAdapterFacts | None = None
    """Set for an adapter evaluated from the Hub: its repo and commit."""
    card_sha256: str | None = None
    """sha256 of RUN_DIR/README.md as hubcard last wrote it (`RunDir.write_card`): a card that differs
    was edited by hand, and hubcard does not write over it. None for runs from before it was recorded."""


class RunDir:
    """Paths of a run directory, and run.json's reader and writer."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def card(self) -> Path:
        return self.path / CARD

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def repo_view(self) -> Path:
        return self.path / "repo"

    @property
    def training_log(self) -> Path:
        return self.path / "training-log.jsonl"

    @property
    def layout(self) -> list[Path]:
        """Everything hubcard writes into a run directory, and nothing else."""
        return [
            self.run_json,
            self.adapter,
            self.predictions,
            self.plots,
            self.card,
            self.checkpoints,
            self.repo_view,
            self.training_log,
        ]

    @property
    def lock_file(self) -> Path:
        return self.path / LOCK_FILE

    def exists(self) -> bool:
        return self.run_json.is_file()

    def has_adapter(self) -> bool:
        """Whether adapter/ holds a saved adapter: its config and its weights."""
        return (self.adapter / ADAPTER_CONFIG).is_file() and any((self.adapter / name).is_file() for name in ADAPTER_WEIGHTS)

    def is_empty(self) -> bool:
        """Whether the folder is missing or holds nothing (but the lock of the process that works on it)."""
        return not self.path.is_dir() or all(path.name == LOCK_FILE for path in self.path.iterdir())

    @contextlib.contextmanager
    def lock(self, *, create: bool = False) -> Iterator[None]:
        """Hold the run directory for this process while the block runs; nested holds are one.

        `create`: make the folder first (after `check_writable`) if it is missing; a folder made here
        that is still empty afterwards is removed again, so a stage refused for bad input leaves
        nothing behind. A missing folder is not created otherwise (nor locked: the stage reports it).
        Raises RunDirError naming the process that holds the run directory.
        """
        created: list[Path] = []
        if not self.path.is_dir():
            if not create:
                yield
                return
            self.check_writable()
            created = [folder for folder in (self.path, *self.path.parents) if not folder.exists()]
            self.path.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock, Timeout

        lock = FileLock(self.lock_file, timeout=0, is_singleton=True, on_acquired=_record_holder)
        try:
            lock.acquire()
        except Timeout:
            _remove_if_empty(created)
            raise RunDirError(
                f"{self.path} is in use by another hubcard process ({_holder(self.lock_file)}): wait until it has "
                "finished, or use another run directory (--run-dir)"
            ) from None
        except OSError as error:
            _remove_if_empty(created)
            raise RunDirError(f"cannot write to the run directory {self.path}: {error.strerror or error}") from None
        try:
            yield
        finally:
            if lock.lock_counter == 1:
                self.lock_file.unlink(missing_ok=True)  # while still held: a waiter sees the file go and starts anew
            lock.release()
            _remove_if_empty(created)

    def last_checkpoint(self) -> Path | None:
        """The Trainer checkpoint with the highest step that was saved completely, or None."""
        complete = [
            (int(match.group(1)), folder)
            for folder in (self.checkpoints.iterdir() if self.checkpoints.is_dir() else [])
            if (match := CHECKPOINT_FOLDER.match(folder.name)) and _saved_completely(folder)
        ]
        return max(complete)[1] if complete else None

    def clear(self) -> None:
        """Remove what hubcard wrote here (a user's own files in the folder stay)."""
        for path in self.layout:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def check_writable(self) -> None:
        """Fail now, before hours of training, if the run cannot be saved here. Creates nothing: the
        folder that exists (the run directory, or the nearest one above it) is what is checked."""
        existing = next(folder for folder in (self.path, *self.path.parents) if folder.exists())
        if not existing.is_dir():
            raise RunDirError(
                f"cannot create the run directory {self.path}: {existing} is a file, not a folder; "
                "choose another one with --run-dir or `run_dir:` in the config"
            )
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as error:
            raise RunDirError(
                f"cannot write to the run directory {self.path}: {error.strerror or error} ({existing}); "
                "choose another one with --run-dir or `run_dir:` in the config"
            ) from None
        free = shutil.disk_usage(existing).free
        if free < MIN_FREE_BYTES:
            raise RunDirError(
                f"only {free / 2**20:.0f} MiB free on the disk of {self.path}; a run needs at least "
                f"{MIN_FREE_BYTES / 2**20:.0f} MiB for checkpoints, the adapter and plots: free some space or choose "
                "another run directory with --run-dir"
            )

    def read(self) -> RunRecord:
        try:
            text = self.run_json.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunDirError(
                f"{self.path} is not a hubcard run directory (no run.json); run `hubcard train CONFIG` first"
            ) from None
        try:
            return RunRecord.model_validate_json(text)
        except ValidationError as error:
            raise RunDirError(f"{self.run_json} is not a valid run record:\n{error}") from None

    def write(self, record: RunRecord) -> None:
        write_text_atomic(self.run_json, record.model_dump_json(indent=2) + "\n")

    def write_card(self, text: str) -> None:
        """Write README.md and record its sha256 in run.json (the caller holds the lock)."""
        write_text_atomic(self.card, text)
        record = self.read()
        record.card_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.write(record)

    def card_edited_by_hand(self) -> bool:
        """Whether README.md differs from the card hubcard last wrote into it (run.json's card_sha256)."""
        recorded = self.read().card_sha256
        if recorded is None or not self.card.is_file():
            return False
        return hashlib.sha256(self.card.read_bytes()).hexdigest() != recorded


Stage = TypeVar("Stage", bound=Callable[..., Any])


def holding_run_dir(stage: Stage) -> Stage:
    """A stage whose first argument is a run directory, run while it holds that directory's lock."""

    @functools.wraps(stage)
    def held(run_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
        with RunDir(run_dir).lock():
            return stage(run_dir, *args, **kwargs)

    return held  # type: ignore[return-value]


def _record_holder(descriptor: int) -> None:
    """Write who holds the lock into the lock file, for the message of a process that finds it held."""
    from hubcard.secrets import scrub

    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": scrub(" ".join([os.path.basename(command[0]), *command[1:]]) if (command := sys.orig_argv) else ""),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(descriptor, 0)
    os.write(descriptor, json.dumps(holder).encode())


def _holder(lock_file: Path) -> str:
    """'PID 4242 on host, `hubcard train config.yaml`, since 2025-11-20 14:02 UTC', as far as it is known."""
    try:
        holder = json.loads(lock_file.read_text(encoding="utf-8"))
        since = datetime.fromisoformat(holder["since"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"PID {holder['pid']} on {holder['host']}, `{holder['command']}`, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its PID is not recorded"


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders a lock created (innermost first) that are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def checkpoint_step(checkpoint: Path) -> int:
    """The optimizer step a Trainer checkpoint folder (checkpoint-N) was saved at."""
    match = CHECKPOINT_FOLDER.match(checkpoint.name)
    if match is None:
        raise ValueError(f"{checkpoint} is not a Trainer checkpoint folder")
    return int(match.group(1))


def _saved_completely(checkpoint: Path) -> bool:
    """The Trainer writes trainer_state.json last, in place: a checkpoint is complete when it reads back
    (a process killed while writing it leaves it cut short)."""
    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a part."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes the file private (0600)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def temporary_folder(parent: Path, prefix: str) -> Path:
    """A new folder in `parent` with the permissions of any other folder (mkdtemp makes it private)."""
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    folder.chmod(0o777 & ~_umask())
    return folder


def usual_permissions(folder: Path) -> None:
    """Give `folder` and everything in it the permissions a new file or folder gets (0644 and 0755 under
    the usual umask): libraries that write through private temporary files leave 0600 behind."""
    for path in (folder, *folder.rglob("*")):
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~_umask())


@functools.cache
def _umask() -> int:
    """The process's umask (read by setting it, so read once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Add one line to a JSON-lines log, in one write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    # split on "\n" only: splitlines() also splits on characters JSON leaves unescaped in a text (U+2028...)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
