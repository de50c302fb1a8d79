"""`hubcard evaluate --repo`: adapters already on the Hub, evaluated on a held-out set (course staff grading).

    repos (hubcard.repos) ──► read each (threads): the commit (--revision, or the last one at or before
        --before), adapter_config.json and the weights at that commit (huggingface_hub's cache), the base
        model (adapter_config.json, else the roster's base_model, else --base-model: never a guess), the
        task type (EVAL.yaml's task.type, else the adapter's task_type)
    ──► per base model and task type: the base model loaded once and evaluated once on the data (loaded
        once for all); each adapter tried on a skeleton of the model (meta device: one that does not fit
        never touches the model), then attached, evaluated and detached in turn
    ──► a run directory per repo (OUTPUT_DIR/OWNER/NAME: run.json, adapter/, predictions/, plots/, as a
        training run's, so that `render-card` and `publish` work on it) ──► one row per repo ──► report

A run directory of an adapter from the Hub records what it has and lacks: the repo and commit it came
from (`hub_adapter`), the base model, adapter, data and evaluation facts; no training facts, and
`trained_by: your code` (the repo owner's code trained it, not hubcard: its config evaluates, it does
not train). A re-run replaces the run directory of the same repo; any other folder there is left alone.

A row is `ok`; `problems` when its adapter weights are byte-identical to another evaluated repo's; `error`
(with the reason) when the repo cannot be read, holds no adapter at that commit, names no base model
that can be known, has a task_type hubcard cannot evaluate, or its adapter does not load on its base
model (a classification head for other labels, too): the other repos go on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from hubcard.config import PEFT_TASK_TO_TASK, EvalConfig, portable_path
from hubcard.errors import ConfigError, ConfigProblem, DataError, HubcardError, RunDirError
from hubcard.metadata import metadata_problems
from hubcard.repos import TABLE_WIDTH, Column, Row, SelectionError, Status, Target, Unchecked, mark_duplicates, run
from hubcard.rundir import ADAPTER_CONFIG, ADAPTER_WEIGHTS, TRAINING_CONFIG, HubAdapterFacts, RunDir, temporary_folder

if TYPE_CHECKING:
    from huggingface_hub import HfApi, ModelInfo

    from hubcard.data import LabeledData
    from hubcard.evaluation import Predictions, Predictor
    from hubcard.models import LoadedModel

logger = logging.getLogger(__name__)

ROSTER_BASE_MODEL = "base_model"
"""The roster column that names a repo's base model where its adapter_config.json does not."""
DEFAULT_OUTPUT_DIR = Path("evaluations")
FIELDS = (
    "commit", "base_model", "base_model_from", "task_type", "metric", "base", "adapter", "difference", "interval",
    "scores", "adapter_sha256", "duplicate_of", "base_model_loads", "base_model_evaluations", "adapters_evaluated", "run_dir",
    "card",
)  # fmt: skip
Mode = Literal["pr", "push"]
"""How the results go to a repo's card: hubcard's pull request, or a commit to the default branch."""


def parse_moment(text: str) -> datetime:
    """A moment given as ISO 8601: a date (`2025-03-01`: the end of that day, UTC, so that anything
    committed that day counts) or a date and time with an offset (`2025-03-01T23:59:00+01:00`, `...Z`).
    ValueError saying what is accepted; a time without an offset is refused (in which time zone?)."""
    accepted = "give an ISO 8601 date (2025-03-01: the end of that day, UTC) or a date and time with an offset (2025-03-01T23:59:00+01:00, or Z for UTC)"
    try:
        return datetime.combine(date.fromisoformat(text), time.max, tzinfo=timezone.utc)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date or a date and time: {accepted}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no offset, so the time zone is not known: {accepted}")
    return moment


def stamp(moment: datetime | None) -> str:
    """'2025-03-01 23:59:59 UTC' (in UTC, to the second)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "unknown"


@dataclass(frozen=True)
class Fetched:
    """One repo's adapter, found at its commit and downloaded into huggingface_hub's cache."""

    repo_id: str
    commit: str
    commit_date: datetime | None
    folder: Path
    """The cache's folder of that commit: adapter_config.json and the weights."""
    weights_file: str
    weights_sha256: str
    base_model: str
    base_model_from: str
    task_type: str
    method: str
    """hubcard's name of the PEFT method: lora, dora, ia3, ..."""


@dataclass
class Group:
    """The repos of one base model and task type, and what evaluating them took."""

    base_model: str
    task_type: str
    base_model_loads: int = 0
    base_model_evaluations: int = 0
    adapters_evaluated: int = 0
    repos: list[str] = field(default_factory=list)


class Evaluation:
    """The evaluation action over many repos (hubcard.repos.Action): `check` reads one repo (run by
    hubcard.repos.run, concurrently), `evaluate` evaluates what was read, group by group."""

    label = "Reading"
    fields = FIELDS

    def __init__(
        self,
        eval_config: EvalConfig,
        data: LabeledData,
        *,
        revision: str | None = None,
        before: datetime | None = None,
        base_model: str | None = None,
        output_dir: Path = DEFAULT_OUTPUT_DIR,
        send: Mode | None = None,
        api: HfApi | None = None,
    ):
        from huggingface_hub import HfApi

        self.eval_config = eval_config
        self.data = data
        self.revision = revision
        self.before = before
        self.base_model = base_model
        self.output_dir = output_dir
        self.send = send
        self.api = api or HfApi()
        self.texts = list(data.eval["text"])
        self.groups: list[Group] = []

    # --- reading a repo -------------------------------------------------------------------------------

    def check(self, target: Target) -> tuple[Status, dict[str, Any]]:
        return "ok", {"fetched": self.fetch(target)}

    def fetch(self, target: Target) -> Fetched:
        """The adapter of `target` at the commit asked for, downloaded; Unchecked saying why it cannot
        be evaluated, huggingface_hub's errors for a repo that cannot be read."""
        from hubcard.hub import request_timeout
        from hubcard.models import file_sha256
        from hubcard.refresh import repo_facts

        repo_id = target.repo_id
        commit, commit_date, head = self._commit(repo_id)
        info = head or self.api.model_info(repo_id, revision=commit, timeout=request_timeout())
        files = {sibling.rfilename for sibling in info.siblings or []}
        where = f"at commit {commit[:8]} ({self._chosen_by()})"
        if ADAPTER_CONFIG not in files:
            raise Unchecked(f"no {ADAPTER_CONFIG} {where}: no PEFT adapter to evaluate")
        weights = next((name for name in ADAPTER_WEIGHTS if name in files), None)
        if weights is None:
            raise Unchecked(f"no adapter weights ({' or '.join(ADAPTER_WEIGHTS)}) {where}")
        config_path = Path(self.api.hf_hub_download(repo_id, ADAPTER_CONFIG, revision=commit))
        adapter_config = _adapter_config(config_path, where)
        if TRAINING_CONFIG in files:
            self._check_label_names(Path(self.api.hf_hub_download(repo_id, TRAINING_CONFIG, revision=commit)), f"{TRAINING_CONFIG} {where}")
        weights_path = Path(self.api.hf_hub_download(repo_id, weights, revision=commit))
        facts = repo_facts(repo_id, adapter_config, "", {})
        base_model, base_model_from = self._base_model(facts.base_model, adapter_config, target)
        logger.info("%s: commit %s of %s (%s)", repo_id, commit, stamp(commit_date), self._chosen_by())
        return Fetched(
            repo_id=repo_id,
            commit=commit,
            commit_date=commit_date,
            folder=config_path.parent,
            weights_file=weights,
            weights_sha256=file_sha256(weights_path),
            base_model=base_model,
            base_model_from=base_model_from,
            task_type=self._task_type(adapter_config),
            method=facts.method,
        )

    def _check_label_names(self, training_config: Path, where: str) -> None:
        """Unchecked when the config the adapter was trained with (hubcard's config.yaml in the repo) names
        other labels, or the same in another order, than the evaluation's: the classifier's outputs (or
        the label words) would be scored against the wrong labels."""
        try:
            trained = ((yaml.safe_load(training_config.read_text(encoding="utf-8")) or {}).get("data") or {}).get("label_names")
        except (yaml.YAMLError, UnicodeDecodeError, AttributeError):
            return  # not hubcard's config, or not one it can read: nothing to compare
        ours = self.data.label_names
        if isinstance(trained, list) and [str(name) for name in trained] != list(ours):
            raise Unchecked(
                f"labels do not match: the adapter was trained with data.label_names {trained} ({where}), "
                f"the evaluation data's are {ours}; its outputs would be scored against the wrong labels "
                "(fix data.label_names in the evaluation file: the same names, in the same order)"
            )

    def _commit(self, repo_id: str) -> tuple[str, datetime | None, ModelInfo | None]:
        """The commit to evaluate, its date, and the repo's info at it where it was read: the revision's
        head, or the last commit of the branch whose date is at or before --before (the commits as the
        Hub lists them, newest first; no info read then)."""
        from hubcard.hub import request_timeout

        if self.before is None:
            info = self.api.model_info(repo_id, revision=self.revision, timeout=request_timeout())
            assert info.sha is not None
            return info.sha, info.last_modified, info
        history = self.api.list_repo_commits(repo_id, revision=self.revision)
        chosen = next((commit for commit in history if commit.created_at <= self.before), None)
        if chosen is None:
            first = f"; its first commit is of {stamp(history[-1].created_at)}" if history else ""
            raise Unchecked(f"no commit on {self.revision or 'the default branch'} at or before {stamp(self.before)}{first}")
        return chosen.commit_id, chosen.created_at, None

    def _chosen_by(self) -> str:
        branch = self.revision or "the default branch"
        return f"the last on {branch} at or before {stamp(self.before)}" if self.before else f"the head of {branch}"

    def _base_model(self, hub_id: str | None, adapter_config: Mapping[str, Any], target: Target) -> tuple[str, str]:
        """The base model's Hub id and where it came from: adapter_config.json when it names a Hub id,
        else the roster's base_model column, else --base-model; Unchecked when none does."""
        if hub_id:
            return hub_id, "adapter_config.json"
        if target.roster.get(ROSTER_BASE_MODEL):
            return target.roster[ROSTER_BASE_MODEL], "roster"
        if self.base_model:
            return self.base_model, "--base-model"
        named = adapter_config.get("base_model_name_or_path")
        raise Unchecked(
            f"the base model cannot be known: {ADAPTER_CONFIG} names {named!r}, not a Hub model id; give it with "
            f"--base-model ID, or in a {ROSTER_BASE_MODEL} column of the roster"
        )

    def _task_type(self, adapter_config: Mapping[str, Any]) -> str:
        """The evaluation file's task.type, else the one the adapter's task_type names."""
        if self.eval_config.task_type:
            return self.eval_config.task_type
        task_type = adapter_config.get("task_type")
        if task_type in PEFT_TASK_TO_TASK:
            return PEFT_TASK_TO_TASK[task_type]
        known = ", ".join(PEFT_TASK_TO_TASK)
        raise Unchecked(f"task_type {task_type!r} of the adapter: hubcard evaluates {known} adapters (or set task.type in the evaluation file)")

    # --- evaluating -----------------------------------------------------------------------------------

    def evaluate(self, rows: Sequence[Row]) -> list[Row]:
        """Evaluate the adapters of the rows read (see the module's docstring); the rows in the same order."""
        by_group: dict[tuple[str, str], list[Row]] = {}
        for row in rows:
            if row.status != "error":
                fetched: Fetched = row.fields["fetched"]
                by_group.setdefault((fetched.base_model, fetched.task_type), []).append(row)
        done: dict[str, Row] = {}
        for (base_model, task_type), members in by_group.items():
            group = Group(base_model, task_type, repos=[row.target.repo_id for row in members])
            self.groups.append(group)
            done |= self._evaluate_group(group, members)
        return [done.get(row.target.repo_id, row) for row in rows]

    def _evaluate_group(self, group: Group, members: list[Row]) -> dict[str, Row]:
        """Load the base model, evaluate it once, then each adapter on it; the rows by repo id."""
        from hubcard.evaluation import Predictor, evaluation_precision, to_device
        from hubcard.models import load_base_model
        from hubcard.training import DEFAULT_SEED, new_record

        first: Fetched = members[0].fields["fetched"]
        config = self._config(first)
        section, label_names = config.model, self.data.label_names
        try:
            loaded = load_base_model(section, group.task_type, label_names, seed=DEFAULT_SEED)
        except HubcardError as error:
            why = f"the base model {group.base_model} cannot be loaded: {error}"
            return {row.target.repo_id: _error(row, why) for row in members}
        group.base_model_loads += 1
        loaded.model = to_device(loaded.model)
        record = new_record(config)  # evaluation.precision of EVAL.yaml, else fp32 (the training's is not known)
        predictor = Predictor.for_run(config, record, loaded.tokenizer, label_names, evaluation_precision(config, record))
        base = predictor.predict(loaded.model, self.texts, f"base model {group.base_model}")
        group.base_model_evaluations += 1
        rows = {}
        for row in members:
            fetched = row.fields["fetched"]
            try:
                rows[row.target.repo_id] = self._evaluate_adapter(row, fetched, loaded, predictor, base, group)
            except _AttachFailed as failure:
                rows[row.target.repo_id] = _error(row, str(failure), _known_fields(fetched))
                loaded = load_base_model(section, group.task_type, label_names, seed=DEFAULT_SEED)  # it may hold part of the adapter
                group.base_model_loads += 1
                loaded.model = to_device(loaded.model)
        counts = {"base_model_loads": group.base_model_loads, "base_model_evaluations": group.base_model_evaluations, "adapters_evaluated": group.adapters_evaluated}
        return {repo_id: dataclasses.replace(row, fields={**row.fields, **counts}) for repo_id, row in rows.items()}

    def _evaluate_adapter(self, row: Row, fetched: Fetched, loaded: LoadedModel, predictor: Predictor, base: Predictions, group: Group) -> Row:
        """Evaluate one adapter on `loaded.model` (detached again afterwards) into its run directory."""
        from hubcard.evaluation import record_evaluation
        from hubcard.models import adapter_facts, adapter_fit_problem, detach_adapter, load_adapter, model_facts
        from hubcard.training import DEFAULT_SEED, new_record

        known = _known_fields(fetched)
        problem = adapter_fit_problem(loaded.model, fetched.folder)
        if problem is not None:
            return _error(row, problem, known)
        run_dir = RunDir(self.output_dir / fetched.repo_id)
        try:
            config = self._config(fetched, run_dir.path)
        except ConfigError as error:
            return _error(row, f"cannot evaluate it as configured: {'; '.join(map(str, error.problems))}", known)
        base_parameters = loaded.model.num_parameters()
        try:
            with run_dir.lock(create=True):
                started = _now()
                _claim(run_dir, fetched.repo_id)
                _copy_adapter(fetched, run_dir)
                try:
                    peft_model = load_adapter(loaded.model, run_dir.adapter)
                except Exception as error:  # noqa: BLE001 - the skeleton took it: whatever this is, it is this adapter's
                    run_dir.clear()
                    raise _AttachFailed(f"the adapter does not load on {fetched.base_model}: {error}") from error
                adapter = predictor.predict(peft_model, self.texts, f"adapter of {fetched.repo_id}")
                group.adapters_evaluated += 1
                record = new_record(config)
                record.trained_by = "your code"
                record.hub_adapter = HubAdapterFacts(
                    repo_id=fetched.repo_id,
                    commit=fetched.commit,
                    commit_date=fetched.commit_date,
                    revision=self.revision,
                    before=self.before,
                    weights_file=fetched.weights_file,
                    weights_sha256=fetched.weights_sha256,
                    base_model_from=fetched.base_model_from,
                )
                record.model = model_facts(config.model, loaded, peft_model, base_parameters=base_parameters, project=config.project)
                record.adapter = adapter_facts(fetched.method, run_dir.adapter, model_type=record.model.model_type, author="your code")
                files = self.data.facts.files
                record.data = self.data.facts.model_copy(
                    update={"files": {split: portable_path(path, config.project) for split, path in files.items()} if files else None}
                )
                record_evaluation(run_dir, record, config, self.data, predictor, peft_model, base, adapter, seed=DEFAULT_SEED, started=started)
                run_dir.write(record)
                loaded.model = detach_adapter(peft_model)
        except RunDirError as error:
            return _error(row, str(error), known)
        return dataclasses.replace(row, fields=_fields(fetched, record, run_dir))

    def _config(self, fetched: Fetched, run_dir: Path | None = None):
        return self.eval_config.config_for(
            base_model=fetched.base_model,
            task_type=fetched.task_type,
            peft_method=fetched.method,
            repo_id=fetched.repo_id,
            run_dir=run_dir or self.output_dir / fetched.repo_id,
        )

    # --- sending the results ----------------------------------------------------------------------------

    def send_results(self, row: Row) -> Row:
        """The results of an evaluated row merged into its repo's card and sent as `self.send` says
        (hubcard.results_card); a row whose results could not be sent becomes an error, saying why."""
        from hubcard.hub import HUB_ERRORS, with_retries
        from hubcard.repos import describe
        from hubcard.results_card import send_results

        if row.status == "error" or self.send is None:
            return row
        repo_id = row.target.repo_id
        record = RunDir(row.fields["run_dir"]).read()
        try:
            sent = with_retries(lambda: send_results(self.api, repo_id, record, self.send), what=f"sending the results to {repo_id}", safe_to_repeat=self.send == "pr")
        except HUB_ERRORS as error:
            return dataclasses.replace(row, status="error", error=f"evaluated, but the results were not sent: {describe(error)}")
        return dataclasses.replace(row, fields={**row.fields, "card": {"done": sent.done, "url": sent.url, "kept": sent.kept}})

    # --- the report -----------------------------------------------------------------------------------

    def columns(self) -> list[Column]:
        metric = self.eval_config.evaluation.metrics[0]
        level = f"{self.eval_config.evaluation.confidence_level:.0%} CI"
        return [
            Column("commit", 8, lambda row: (row.fields.get("commit") or {}).get("id", "")[:8]),
            Column(metric, 13, lambda row: f"{row.fields['base']:.3f}→{row.fields['adapter']:.3f}"),
            Column("diff", 6, lambda row: f"{row.fields['difference']:+.3f}"),
            Column(level, 16, lambda row: "[{:+.3f}, {:+.3f}]".format(*row.fields["interval"])),
            Column("dup", 3, lambda row: str(len(row.fields["duplicate_of"])) if row.fields["duplicate_of"] else ""),
            *([Column("card", 32, _card_cell)] if self.send else []),
        ]

    def flat(self, row: Row) -> dict[str, str]:
        """The CSV cells: the commit (id, date), the base model and where it came from, the task type,
        per metric the base model's and the adapter's score, their difference and its interval, the
        adapter's sha256 and the repos with the same weights, what evaluating took, the run directory."""
        fields = row.fields
        commit = fields.get("commit") or {}
        cells = {"commit": commit.get("id", ""), "commit_date": commit.get("date") or ""}
        cells |= {key: _cell(fields.get(key)) for key in ("base_model", "base_model_from", "task_type")}
        for metric, score in (fields.get("scores") or {}).items():
            low, high = score["interval"]
            cells |= {f"{metric}_base": _number(score["base"]), f"{metric}_adapter": _number(score["adapter"])}
            cells |= {f"{metric}_difference": _number(score["difference"]), f"{metric}_low": _number(low), f"{metric}_high": _number(high)}
        keys = ("adapter_sha256", "duplicate_of", "base_model_loads", "base_model_evaluations", "adapters_evaluated", "run_dir")
        card = fields.get("card") or {}
        sent = {"card": card.get("done", ""), "card_url": card.get("url") or "", "card_kept": _cell(card.get("kept"))} if self.send else {}
        return cells | {key: _cell(fields.get(key)) for key in keys} | sent

    def legend(self) -> list[str]:
        metric = self.eval_config.evaluation.metrics[0]
        text = [
            f"commit: the commit evaluated; {metric}: the base model's → the adapter's, on the same data; diff: the "
            "adapter's minus the base model's, with its paired-bootstrap confidence interval; dup: other repos evaluated "
            "here whose adapter weights are byte-identical (their rows have problems). --format json or csv: every metric, "
            "the commit's full id and date, the run directory."
        ]
        if self.send:
            text.append(
                "card: what was sent to the repo's card; 'kept theirs': the student has edited hubcard's results "
                "section (or model-index entry), which stays as they wrote it: the new scores are in this report only."
            )
        for group in self.groups:
            text.append(
                f"{group.base_model} ({group.task_type}): loaded {_times(group.base_model_loads)}, evaluated "
                f"{_times(group.base_model_evaluations)}, {group.adapters_evaluated} adapter(s) of {len(group.repos)} repo(s) evaluated on it."
            )
        return [line for paragraph in text for line in textwrap.wrap(paragraph, TABLE_WIDTH, subsequent_indent="    ")]


def _card_cell(row: Row) -> str:
    card = row.fields.get("card") or {}
    return f"{card.get('done', '')}; kept theirs" if card.get("kept") else card.get("done", "")


class _AttachFailed(Exception):
    """The adapter passed the skeleton check but failed on the model itself, which may now hold part of it."""


def evaluate_repos(
    targets: Sequence[Target],
    eval_config: EvalConfig,
    *,
    revision: str | None = None,
    before: datetime | None = None,
    base_model: str | None = None,
    output_dir: Path = DEFAULT_OUTPUT_DIR,
    send: Mode | None = None,
    jobs: int,
) -> tuple[Evaluation, list[Row]]:
    """Evaluate the adapter of every target (see the module's docstring): the action and one row per target.

    Checked before any repo is read: a token, when the results are sent (`send`: `pr` proposes them in
    hubcard's pull request, `push` commits them, hubcard.results_card); the roster's base_model column
    (SelectionError); the evaluation data (loaded once; ConfigError when they do not match the file). `revision`/`before`: which commit of
    each repo; `base_model`: the base model's Hub id for the adapters whose adapter_config.json names none.
    """
    from huggingface_hub import HfApi

    from hubcard.data import load_data
    from hubcard.hub import require_token
    from hubcard.training import DEFAULT_SEED

    token = require_token("sending the results to the repos' cards") if send else None
    _check_roster(targets)
    try:
        data = load_data(eval_config.data, seed=DEFAULT_SEED, with_train=False)
    except DataError as error:  # the held-out set does not match the evaluation file: a usage error (exit 2)
        raise ConfigError([ConfigProblem("data", str(error))], eval_config.source, kind="evaluation file") from None
    api = HfApi(token=token) if token else None
    action = Evaluation(eval_config, data, revision=revision, before=before, base_model=base_model, output_dir=output_dir, send=send, api=api)
    rows = mark_duplicates(action.evaluate(run(action, targets, jobs=jobs)), status_of)
    return action, [action.send_results(row) for row in rows] if send else rows


def status_of(fields: Mapping[str, Any]) -> Status:
    """`problems` when the adapter is another repo's byte for byte, else `ok`."""
    return "problems" if fields.get("duplicate_of") else "ok"


def _check_roster(targets: Sequence[Target]) -> None:
    """Every base_model the roster gives is a Hub model id; SelectionError listing the bad ones."""
    problems = [
        f"{target.repo_id}: {ROSTER_BASE_MODEL} {value!r}: {found[0].message}"
        for target in targets
        if (value := target.roster.get(ROSTER_BASE_MODEL)) and (found := metadata_problems({"base_model": value}))
    ]
    if problems:
        raise SelectionError("bad base models in the roster:\n  " + "\n  ".join(problems))


def _adapter_config(path: Path, where: str) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise Unchecked(f"{ADAPTER_CONFIG} {where} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise Unchecked(f"{ADAPTER_CONFIG} {where} is not a JSON object")
    return config


def _claim(run_dir: RunDir, repo_id: str) -> None:
    """Make `run_dir` ready for the evaluation of `repo_id`: an earlier evaluation of it is replaced;
    RunDirError for a folder that holds anything else (it is left as it is)."""
    if run_dir.exists():
        record = run_dir.read()
        if record.hub_adapter is None or record.hub_adapter.repo_id != repo_id:
            what = f"an evaluation of {record.hub_adapter.repo_id}" if record.hub_adapter else "a run of `hubcard train` or of a notebook"
            raise RunDirError(f"{run_dir.path} holds {what}, not one of {repo_id}: choose another --output-dir")
        run_dir.clear()
    elif not run_dir.is_empty():
        raise RunDirError(f"{run_dir.path} holds files that are not a hubcard run: choose another --output-dir")


def _copy_adapter(fetched: Fetched, run_dir: RunDir) -> None:
    """adapter_config.json and the weights, as the repo has them at the commit, into RUN_DIR/adapter."""
    staging = temporary_folder(run_dir.path, ".adapter.")
    for name in (ADAPTER_CONFIG, fetched.weights_file):
        shutil.copyfile(fetched.folder / name, staging / name)
    staging.rename(run_dir.adapter)


def _known_fields(fetched: Fetched) -> dict[str, Any]:
    """What a row says of a repo whose adapter was read but could not be evaluated."""
    return {
        "commit": _commit(fetched),
        "base_model": fetched.base_model,
        "base_model_from": fetched.base_model_from,
        "task_type": fetched.task_type,
        "adapter_sha256": fetched.weights_sha256,
    }


def _fields(fetched: Fetched, record, run_dir: RunDir) -> dict[str, Any]:
    comparison = record.evaluation.comparison
    scores = {
        item.name: {"base": item.base, "adapter": item.adapter, "difference": item.difference, "interval": list(item.difference_interval)}
        for item in comparison
    }
    first = comparison[0]
    return _known_fields(fetched) | {
        "metric": first.name,
        "base": first.base,
        "adapter": first.adapter,
        "difference": first.difference,
        "interval": list(first.difference_interval),
        "scores": scores,
        "duplicate_of": [],
        "run_dir": str(run_dir.path),
    }


def _commit(fetched: Fetched) -> dict[str, str | None]:
    return {"id": fetched.commit, "date": fetched.commit_date.isoformat() if fetched.commit_date else None}


def _error(row: Row, why: str, fields: Mapping[str, Any] | None = None) -> Row:
    return Row(row.target, "error", why, dict(fields or {}))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return "; ".join(map(str, value)) if isinstance(value, list) else str(value)


def _number(value: float) -> str:
    return f"{value:.4f}"


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _now() -> datetime:
    return datetime.now(timezone.utc)
