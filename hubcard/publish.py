"""Publishing a run: its repo view, uploaded to a Hub repo in one commit; again, only what changed.

    RUN_DIR ──build_view──► RUN_DIR/repo (the repo's files, exactly) ──plan against the repo──► one commit

The view holds the adapter and tokenizer files at the root (so that
`PeftModel.from_pretrained(base, repo_id)` works), README.md (the card), the plots, eval_results.json,
config.yaml (the redacted config) and .hubcard/manifest.json: the files hubcard wrote. A later publish
deletes those the run no longer produces, and no other file of the repo. Checkpoints, optimizer and
Trainer state, predictions, logs and run.json never enter the view, nor does a file that holds
something that looks like a token.

Publishing again is cheap: a file whose size and sha256 (LFS) or git blob id match the repo's is not
uploaded, and when nothing differs no commit is made. Failures leave the run directory as it was
(RUN_DIR/repo aside, rebuilt each time); running `hubcard publish RUN_DIR` again finishes the job.

huggingface_hub is the only Hub library used here; torch, transformers and peft are not imported.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Literal

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils.sha import git_hash, sha_fileobj
from jinja2.filters import do_filesizeformat

from hubcard import __version__
from hubcard.card import CardFacts, config_yaml, gather_facts, recorded_template, render_card
from hubcard.config import HubSection
from hubcard.errors import PublishError
from hubcard.hub import HUB_ERRORS, hub_error, patient_client, request_timeout, require_token, with_retries
from hubcard.rundir import PublishFacts, RunDir, RunRecord, holding_run_dir, temporary_folder, write_text_atomic
from hubcard.secrets import MASK, current_token, files_with_tokens

CARD = "README.md"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
EVAL_RESULTS = "eval_results.json"
CONFIG = "config.yaml"
MANIFEST = ".hubcard/manifest.json"
MANIFEST_ABOUT = "The files hubcard uploaded to this repo: the next publish deletes those its run no longer produces."
NOT_UPLOADED = (
    "README.md", "training_args.bin", "trainer_state.json", "optimizer.pt", "scheduler.pt", "scaler.pt",
    "rng_state*.pth", "*.log", "events.out.tfevents*",
)  # fmt: skip
"""Files of RUN_DIR/adapter that stay local: peft's placeholder card (the run's card replaces it) and
Trainer state (training_args.bin would carry a hub_token)."""

Status = Literal["added", "changed", "unchanged", "deleted", "unknown"]


@dataclass(frozen=True)
class FileChange:
    path: str
    size: int
    status: Status


@dataclass(frozen=True)
class RemoteState:
    head: str
    """The commit the plan compares with: the head of the branch (of main, for a branch not created yet)."""
    files: dict[str, RepoFile]
    """The repo's files among the view's paths and the manifest's."""
    manifest: list[str]
    """The files hubcard wrote there before."""
    private: bool | None = None


@dataclass(frozen=True)
class PublishOutcome:
    repo_id: str | None
    revision: str
    view: Path
    changes: list[FileChange]
    dry_run: bool
    url: str | None = None
    note: str | None = None
    """Dry run: why the plan could not be compared with the repo, if it could not."""
    published: PublishFacts | None = None

    @property
    def up_to_date(self) -> bool:
        return all(change.status == "unchanged" for change in self.changes)

    def summary(self) -> str:
        counts = _counts(self.changes)
        if self.dry_run:
            return self._plan_summary(counts)
        where = f"{self.repo_id} (branch {self.revision})"
        assert self.published is not None
        if self.up_to_date:
            return f"{where} is already up to date: nothing uploaded, no commit made.\nCommit: {self.published.commit_url}"
        if self.published.pull_request_url:
            lines = [f"Opened a pull request against {where}: {counts}.", f"Pull request: {self.published.pull_request_url}"]
        else:
            lines = [f"Published {where} in one commit: {counts}.", f"Commit: {self.published.commit_url}"]
        return "\n".join([*lines, f"Repo: {self.url}"])

    def _plan_summary(self, counts: str) -> str:
        if self.repo_id is None:
            lines = ["Dry run: the config has no hub.repo_id; set it to publish. Nothing was uploaded."]
        else:
            lines = [f"Dry run for {self.repo_id} (branch {self.revision}) at {self.url}: nothing was uploaded."]
        if self.note:
            lines.append(self.note)
        width = max((len(change.path) for change in self.changes), default=0)
        lines += [f"  {change.status:9}  {change.path:{width}}  {do_filesizeformat(change.size):>9}" for change in self.changes]
        total = sum(change.size for change in self.changes if change.status != "deleted")
        lines.append(f"{len(self.changes)} files, {do_filesizeformat(total)}: {counts}. The repo view is in {self.view}.")
        return "\n".join(lines)


def can_publish(hub: HubSection) -> bool:
    """Whether a real publish can be attempted: a repo to publish to and a token to do it with."""
    return bool(hub.repo_id) and current_token() is not None


@holding_run_dir
def publish_run(run_dir: str | Path, *, dry_run: bool = False) -> PublishOutcome:
    """Publish the run in `run_dir` to its config's `hub.repo_id` (see the module's docstring).

    `dry_run`: build the repo view in RUN_DIR/repo and compare it with the repo where the Hub can be
    reached; upload nothing (no token needed).
    """
    run = RunDir(run_dir)
    record = run.read()
    hub = _hub_section(run, record)
    token = None if dry_run else require_token(f"publishing {run.path}")
    if not dry_run and hub.repo_id is None:
        raise PublishError(
            f"The run in {run.path} has no hub.repo_id: there is no repo to publish to. "
            "Set hub.repo_id (e.g. your-name/my-adapter) in the config."
        )
    upcoming = record.model_copy(update={"publish": None})
    facts = gather_facts(upcoming)
    card_text, rendered = _card(run, record, hub)
    view = build_view(run, record, facts, card_text)
    _refuse_tokens(run, token or current_token())
    api = HfApi(token=token)
    revision = hub.revision or "main"
    url = f"{api.endpoint}/{hub.repo_id}" if hub.repo_id else None
    if dry_run:
        with patient_client():
            changes, note = _dry_run_plan(api, hub, view)
        return PublishOutcome(hub.repo_id, revision, run.repo_view, changes, dry_run=True, url=url, note=note)
    assert hub.repo_id is not None and url is not None
    rerun = f"hubcard publish {run.path}"
    try:
        with patient_client():
            changes, commit, head = with_retries(
                lambda: _sync(api, hub, view, _commit_message(hub, facts), _commit_description(upcoming, facts), rerun),
                what=f"publishing to {hub.repo_id}",
                safe_to_repeat=not hub.create_pr,
            )
    except HUB_ERRORS as error:
        raise hub_error(error, repo_id=hub.repo_id, rerun=rerun) from error
    published = _record_publish(run, record, hub, url, commit, head)
    if rendered:
        write_text_atomic(run.card, card_text)
    return PublishOutcome(hub.repo_id, revision, run.repo_view, changes, dry_run=False, url=url, published=published)


# --- the repo view ----------------------------------------------------------------------------------


def build_view(run: RunDir, record: RunRecord, facts: CardFacts, card_text: str) -> dict[str, Path]:
    """Write the repo view into RUN_DIR/repo (replacing the previous one); path in the repo -> file."""
    contents: dict[str, bytes | Path] = {file.name: file for file in _adapter_files(run)}
    contents[ADAPTER_CONFIG] = _adapter_config(run, facts)
    contents[CARD] = card_text.encode("utf-8")
    contents |= {relative: _plot(run, relative) for relative in sorted(record.plots.values())}
    if record.evaluation is not None:
        contents[EVAL_RESULTS] = (json.dumps(record.evaluation.model_dump(mode="json"), indent=2) + "\n").encode()
    contents[CONFIG] = config_yaml(record.config).encode("utf-8")
    manifest = {"about": MANIFEST_ABOUT, "files": sorted(contents)}
    contents[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    run.path.mkdir(parents=True, exist_ok=True)
    staging = temporary_folder(run.path, ".repo-")
    try:
        for path, content in contents.items():
            target = staging / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            else:
                target.write_bytes(content)
        shutil.rmtree(run.repo_view, ignore_errors=True)
        staging.rename(run.repo_view)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {path: run.repo_view / path for path in sorted(contents)}


def _adapter_files(run: RunDir) -> list[Path]:
    if not run.adapter.is_dir():
        raise PublishError(f"{run.adapter} does not exist: there is no adapter to publish (run `hubcard train CONFIG` first)")
    files = sorted(
        path for path in run.adapter.iterdir() if path.is_file() and not any(fnmatch.fnmatch(path.name, p) for p in NOT_UPLOADED)
    )
    names = {path.name for path in files}
    if ADAPTER_CONFIG not in names or not names & set(ADAPTER_WEIGHTS):
        raise PublishError(
            f"{run.adapter} lacks {ADAPTER_CONFIG} or the adapter weights ({' or '.join(ADAPTER_WEIGHTS)}): "
            "the adapter was not saved completely; train again (`hubcard train CONFIG --resume`)"
        )
    return files


def _adapter_config(run: RunDir, facts: CardFacts) -> bytes:
    """adapter_config.json naming the base model by its Hub id (so that AutoPeftModel and the Hub find
    it), else by its file or folder name: never a local path."""
    config = json.loads((run.adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    if facts.base_model_name is not None:
        config["base_model_name_or_path"] = facts.base_model_name
        config["revision"] = facts.record.model.revision if facts.base_model and facts.record.model else None
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def _plot(run: RunDir, relative: str) -> Path:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise PublishError(f"run.json names the plot {relative!r}, which is not inside the run directory")
    if not (run.path / path).is_file():
        raise PublishError(f"{run.path / path} is named in run.json but missing: run `hubcard evaluate {run.path}` again")
    return run.path / path


def _card(run: RunDir, record: RunRecord, hub: HubSection) -> tuple[str, bool]:
    """The card to upload, and whether hubcard rendered it now (then RUN_DIR/README.md is updated after
    the upload). RUN_DIR/README.md is uploaded as it is, unless it is missing or it is hubcard's own
    rendering for another repo (run.json recorded an earlier publish elsewhere): then it is rendered for
    the repo it goes to. Publish facts never change the default card otherwise, so re-publishing an
    unchanged run finds the same card."""
    template = recorded_template(run, record)
    existing = run.card.read_text(encoding="utf-8") if run.card.is_file() else None
    names_another_repo = record.publish is not None and record.publish.repo_id != hub.repo_id
    if existing is not None and not (names_another_repo and existing == render_card(record, template)):
        return existing, False
    return render_card(record.model_copy(update={"publish": None}), template), True


def _refuse_tokens(run: RunDir, token: str | None) -> None:
    found = files_with_tokens(run.repo_view, token)
    if found:
        names = ", ".join(str(path.relative_to(run.repo_view)) for path in found)
        shutil.rmtree(run.repo_view, ignore_errors=True)
        raise PublishError(
            f"Refusing to publish: {names} holds a string that looks like a Hugging Face token ({MASK}). "
            f"Remove it from the run directory {run.path} (the file it was copied from) and publish again."
        )


# --- the plan -----------------------------------------------------------------------------------------


def plan(view: dict[str, Path], remote: RemoteState) -> list[FileChange]:
    """Each file of the view as added, changed or unchanged against the repo, then the files hubcard
    wrote before that the view no longer has, as deleted."""
    changes = [FileChange(path, file.stat().st_size, _status(file, remote.files.get(path))) for path, file in view.items()]
    gone = [path for path in remote.manifest if path not in view and path in remote.files]
    return changes + [FileChange(path, remote.files[path].size, "deleted") for path in gone]


def _status(file: Path, remote: RepoFile | None) -> Status:
    if remote is None:
        return "added"
    size = file.stat().st_size
    if remote.lfs is not None:
        with file.open("rb") as handle:
            same = remote.lfs.size == size and remote.lfs.sha256 == sha_fileobj(handle).hex()
    else:
        same = remote.size == size and remote.blob_id == git_hash(file.read_bytes())
    return "unchanged" if same else "changed"


def _remote_state(api: HfApi, repo_id: str, revision: str, paths: list[str]) -> RemoteState:
    head = api.model_info(repo_id, revision=revision, timeout=request_timeout())
    names = {sibling.rfilename for sibling in head.siblings or []}
    manifest = _read_manifest(api, repo_id, head.sha) if MANIFEST in names else []
    wanted = sorted(names & {*paths, *manifest})
    files = api.get_paths_info(repo_id, wanted, revision=head.sha) if wanted else []
    return RemoteState(head.sha, {file.path: file for file in files if isinstance(file, RepoFile)}, manifest, head.private)


def _read_manifest(api: HfApi, repo_id: str, commit: str) -> list[str]:
    path = Path(api.hf_hub_download(repo_id, MANIFEST, revision=commit))
    try:
        files = json.loads(path.read_text(encoding="utf-8")).get("files", [])
    except (ValueError, AttributeError):
        return []  # not ours to trust: delete nothing
    return [file for file in files if isinstance(file, str)]


def _dry_run_plan(api: HfApi, hub: HubSection, view: dict[str, Path]) -> tuple[list[FileChange], str | None]:
    """The plan against the repo if it can be read (a branch to be created is compared with main)."""
    if hub.repo_id is None:
        return [FileChange(path, file.stat().st_size, "added") for path, file in view.items()], None
    empty = RemoteState("", {}, [])
    try:
        try:
            remote = _remote_state(api, hub.repo_id, hub.revision or "main", list(view))
        except RevisionNotFoundError:
            remote = _remote_state(api, hub.repo_id, "main", list(view))
        return plan(view, remote), _public_repo(hub.repo_id) if hub.private and remote.private is False else None
    except RepositoryNotFoundError:
        return plan(view, empty), f"{hub.repo_id} does not exist yet (or this token cannot see it): every file is new."
    except HUB_ERRORS as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        unknown = [FileChange(path, file.stat().st_size, "unknown") for path, file in view.items()]
        return unknown, f"The repo could not be read to compare ({reason}): what would change is unknown."


# --- the commit -------------------------------------------------------------------------------------


def _sync(
    api: HfApi, hub: HubSection, view: dict[str, Path], message: str, description: str, rerun: str
) -> tuple[list[FileChange], CommitInfo | None, str]:
    """One attempt: make sure the repo and branch exist, plan against the branch's head, upload what is
    missing, commit. Returns the plan, the commit (None when nothing changed) and the resulting head."""
    assert hub.repo_id is not None
    revision = hub.revision or "main"
    api.create_repo(hub.repo_id, private=hub.private, exist_ok=True)
    if revision != "main":
        api.create_branch(hub.repo_id, branch=revision, exist_ok=True)
    remote = _remote_state(api, hub.repo_id, revision, list(view))
    if hub.private and remote.private is False:
        raise PublishError(_public_repo(hub.repo_id))
    changes = plan(view, remote)
    operations = [
        CommitOperationAdd(change.path, view[change.path]) if change.status != "deleted" else CommitOperationDelete(change.path)
        for change in changes
        if change.status != "unchanged"
    ]
    if not operations:
        return changes, None, remote.head
    additions = [operation for operation in operations if isinstance(operation, CommitOperationAdd)]
    try:
        # Retried by huggingface_hub itself: a failure here is final for this run.
        api.preupload_lfs_files(hub.repo_id, additions=additions, revision=revision, create_pr=hub.create_pr)
    except HUB_ERRORS as error:
        raise hub_error(error, repo_id=hub.repo_id, rerun=rerun) from error
    commit = api.create_commit(
        hub.repo_id,
        operations,
        commit_message=message,
        commit_description=description,
        revision=revision,
        create_pr=hub.create_pr,
        parent_commit=remote.head,
    )
    return changes, commit, commit.oid


def _public_repo(repo_id: str) -> str:
    return (
        f"{repo_id} exists and is public, but the config says hub.private: true. Make it private on the Hub "
        f"(its Settings), or set hub.private: false, then publish again."
    )


def _commit_message(hub: HubSection, facts: CardFacts) -> str:
    if hub.commit_message:
        return hub.commit_message
    return f"Upload {facts.method_name or 'PEFT'} adapter for {facts.base_model_name or 'its base model'}"


def _commit_description(record: RunRecord, facts: CardFacts) -> str:
    lines = []
    if record.evaluation is not None and facts.results:
        level = f"{record.evaluation.confidence_level:.0%}"
        lines.append(f"Evaluated on {record.evaluation.rows} examples; base model -> adapter ({level} interval of the difference):")
        lines += [
            f"- {r.metric.name}: {r.metric.base:.3f} -> {r.metric.adapter:.3f} "
            f"({r.metric.difference:+.3f} [{r.metric.difference_interval[0]:.3f}, {r.metric.difference_interval[1]:.3f}], {r.verdict})"
            for r in facts.results
        ]
        lines.append("")
    return "\n".join([*lines, f"Published with hubcard {__version__}."])


def _record_publish(run: RunDir, record: RunRecord, hub: HubSection, url: str, commit: CommitInfo | None, head: str) -> PublishFacts:
    """Write where the run is published into run.json (unless it already says so)."""
    assert hub.repo_id is not None
    revision = (commit.pr_revision if commit else None) or hub.revision or "main"
    previous = record.publish
    if commit is None and previous and (previous.repo_id, previous.revision, previous.commit_oid) == (hub.repo_id, revision, head):
        return previous
    facts = PublishFacts(
        repo_id=hub.repo_id,
        url=url,
        revision=revision,
        commit_oid=head,
        commit_url=commit.commit_url if commit else f"{url}/commit/{head}",
        pull_request_url=commit.pr_url if commit else None,
        published_at=datetime.now(timezone.utc),
    )
    run.write(record.model_copy(update={"publish": facts}))
    return facts


def _hub_section(run: RunDir, record: RunRecord) -> HubSection:
    try:
        return HubSection.model_validate(record.config.get("hub") or {})
    except ValueError as error:
        raise PublishError(f"the hub section of the config in {run.run_json} is invalid:\n{error}") from None


def _counts(changes: list[FileChange]) -> str:
    statuses: list[Status] = ["added", "changed", "unchanged", "deleted", "unknown"]
    counted = [(status, sum(change.status == status for change in changes)) for status in statuses]
    return ", ".join(f"{count} {status}" for status, count in counted if count)
