"""Publishing a run: its repo view, uploaded to a Hub repo in one commit; again, only what changed.

    target (the action's options over run.json) ──preflight──► RUN_DIR ──build_view──► RUN_DIR/repo
        ──checked (locally, then by the Hub's card validation)──► [create the repo] ──► one commit

Where to publish (repo id, branch, pull request, visibility) is the choice of the publish action:
`hubcard publish` options, or the config in force for `train-and-publish`; run.json's `hub` section
supplies what they leave out, and records the target once published. The card and the uploaded
config.yaml are rendered for that target.

`preflight` runs before the base model is loaded when a run will publish: a token that the Hub
accepts, write access to the repo (or to its namespace, to create it), the visibility asked; or the
reason why this is a dry run. Nothing that changes the Hub is sent before the whole view and the
card's metadata passed the local checks and the Hub's card validation; the repo is created only
when the commit is ready to go, and removed again if publishing then fails (never a repo that existed
before).

The view holds the adapter and tokenizer files at the root (so that
`PeftModel.from_pretrained(base, repo_id)` works), README.md (the card), the plots, eval_results.json,
config.yaml (the redacted config) and .hubcard/manifest.json: the files hubcard wrote. A later publish
deletes those the run no longer produces, and no other file of the repo. Checkpoints, optimizer and
Trainer state, predictions, logs and run.json never enter the view, nor does a file that holds
something that looks like a token.

Publishing again is cheap: a file whose size and sha256 (LFS) or git blob id match the repo's is not
uploaded, and when nothing differs no commit is made. Failures leave the run directory as it was
(RUN_DIR/repo aside, rebuilt each time); running `hubcard publish RUN_DIR` again finishes the job.

Publishing again keeps what a person changed on the Hub. The manifest records what hubcard uploaded:
each file's sha256 and git blob id, and a record of its card's sections and metadata values
(hubcard.merge). A README.md edited on the Hub since is merged (a person's added or rewritten sections
and keys kept word for word, hubcard's own updated); any other file hubcard uploaded that was changed
on the Hub is kept as it is, not replaced nor deleted. The plan names each such file `edited on the
Hub` with what is kept; `force` replaces them all.

A pull request (`hub.create_pr`) goes through hubcard.pulls.propose: publishing again updates hubcard's
own pull request instead of opening another, and opens none when the branch already holds the run.

huggingface_hub is the only Hub library used here; torch, transformers and peft are not imported.
"""

from __future__ import annotations

import fnmatch
import io
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import httpx2
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi, is_offline_mode
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils.sha import git_hash, sha_fileobj
from jinja2.filters import do_filesizeformat

from hubcard import __version__, plots
from hubcard.card import ADAPTER_ID_STAND_IN, CardFacts, config_yaml, gather_facts, recorded_template, render_card
from hubcard.config import HubSection, ModelSection
from hubcard.errors import PublishError
from hubcard.frontmatter import split_front_matter
from hubcard.hub import (
    HUB_ERRORS,
    TOKEN_HELP,
    XetError,
    hub_error,
    patient_client,
    request_timeout,
    short_reason,
    upload_failure,
    with_retries,
)
from hubcard.lint import front_matter_problems
from hubcard.merge import CardRecord, merge_card, record_card
from hubcard.model_ids import model_id
from hubcard.pulls import Proposal, propose, same_content
from hubcard.repos import read_file
from hubcard.rundir import (
    ADAPTER_CONFIG, ADAPTER_WEIGHTS, CARD, TRAINING_CONFIG, PublishFacts, RunDir, RunRecord, holding_run_dir, temporary_folder,
)  # fmt: skip
from hubcard.secrets import MASK, current_token, files_with_tokens

EVAL_RESULTS = "eval_results.json"
MANIFEST = ".hubcard/manifest.json"
MANIFEST_ABOUT = "The files hubcard uploaded to this repo: the next publish deletes those its run no longer produces."
NOT_UPLOADED = (
    "README.md", "training_args.bin", "trainer_state.json", "optimizer.pt", "scheduler.pt", "scaler.pt",
    "rng_state*.pth", "*.log", "events.out.tfevents*",
)  # fmt: skip
"""Files of RUN_DIR/adapter that stay local: peft's placeholder card (the run's card replaces it) and
Trainer state (training_args.bin would carry a hub_token)."""
WRITE_ROLES = ("admin", "write", "contributor")
"""Organization roles that may publish: a `contributor` creates repos and writes to those they created
(which whoami does not tell: the Hub's answer decides for an existing repo)."""
OPTIONS = {"repo_id": "--repo-id", "revision": "--revision"}
"""The `hubcard publish` options that name a HubSection field, for the command that finishes a publish."""

LFS_FROM = 10 * 1000 * 1000
"""Bytes from which the Hub stores any file in LFS (by its sha256; its git blob id is the pointer's)."""

Status = Literal["added", "changed", "unchanged", "deleted", "edited on the Hub", "unknown"]
STATUSES: tuple[Status, ...] = ("added", "changed", "unchanged", "deleted", "edited on the Hub", "unknown")


@dataclass(frozen=True)
class FileChange:
    path: str
    size: int
    status: Status
    kept: tuple[str, ...] = ()
    """For a file `edited on the Hub`: what of the Hub's version is kept."""
    merged: bool = False
    """README.md edited on the Hub and merged: the merged card is uploaded."""

    @property
    def sent(self) -> bool:
        """Whether the commit adds, replaces or deletes this file."""
        return self.status in ("added", "changed", "deleted") or self.merged


@dataclass(frozen=True)
class FileRecord:
    """A file as hubcard uploaded it (in its manifest)."""

    sha256: str
    size: int
    blob_id: str | None
    """Its git blob id; None for a file the Hub keeps in LFS whatever its name (LFS_FROM bytes and more)."""

    def holds(self, remote: RepoFile) -> bool:
        """Whether the repo's file is still the one hubcard uploaded."""
        if remote.lfs is not None:
            return remote.lfs.sha256 == self.sha256 and remote.lfs.size == self.size
        return remote.blob_id == self.blob_id and remote.size == self.size

    @classmethod
    def of(cls, content: bytes | Path) -> FileRecord:
        if isinstance(content, Path):
            with content.open("rb") as handle:
                sha256 = sha_fileobj(handle).hex()
            size = content.stat().st_size
            data = content.read_bytes() if size < LFS_FROM else None
        else:
            sha256, size, data = sha_fileobj(io.BytesIO(content)).hex(), len(content), content
        return cls(sha256, size, git_hash(data) if data is not None else None)


@dataclass(frozen=True)
class Manifest:
    """What hubcard uploaded to a repo (.hubcard/manifest.json)."""

    files: dict[str, FileRecord | None]
    """Path -> the file as uploaded; None when the manifest is older than the records (paths only)."""
    card: CardRecord | None = None


@dataclass(frozen=True)
class RemoteState:
    head: str
    """The commit the plan compares with: the head of the branch (of main, for a branch not created yet)."""
    files: dict[str, RepoFile]
    """The repo's files among the view's paths and the manifest's."""
    manifest: Manifest
    """What hubcard wrote there before."""
    private: bool | None = None


@dataclass(frozen=True)
class Preflight:
    """What was checked before publishing: why this is a dry run (None: it publishes), and whether a
    token was found."""

    dry_run_reason: str | None
    token_found: bool


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
    checked: Preflight | None = None
    proposal: Proposal | None = None
    """What became of hubcard's pull request (hub.create_pr)."""

    @property
    def up_to_date(self) -> bool:
        return not any(change.sent for change in self.changes)

    def summary(self) -> str:
        counts = _counts(self.changes)
        if self.dry_run:
            return self._plan_summary(counts)
        where = f"{self.repo_id} (branch {self.revision})"
        assert self.published is not None
        kept = self._kept()
        if self.proposal is not None:
            number = f"#{self.proposal.number}"
            said = {
                "nothing to change": f"{where} already holds this run: no pull request opened, no commit made."
                + (f" hubcard's stale pull request #{', #'.join(map(str, self.proposal.closed))} closed." if self.proposal.closed else ""),
                "opened": f"Opened a pull request against {where}: {counts}.",
                "updated": f"Updated hubcard's pull request {number} against {where}: {counts}.",
                "up to date": f"hubcard's pull request {number} against {where} already holds this run: nothing uploaded.",
            }[self.proposal.action]
            lines = [said] + ([f"Pull request: {self.proposal.url}"] if self.proposal.url else [])
        elif self.up_to_date:
            lines = [f"{where} is already up to date: nothing uploaded, no commit made.", f"Commit: {self.published.commit_url}"]
        else:
            lines = [f"Published {where} in one commit: {counts}.", f"Commit: {self.published.commit_url}"]
        return "\n".join([*lines, *kept, f"Repo: {self.url}"])

    def _kept(self) -> list[str]:
        """What was kept of the files edited on the Hub, one line each."""
        edited = [change for change in self.changes if change.status == "edited on the Hub"]
        if not edited:
            return []
        lines = [f"Kept what was edited on the Hub ({'--force replaces it' if self.dry_run else 'publish --force replaces it'}):"]
        for change in edited:
            lines += [f"  {change.path}: {item}" for item in change.kept]
        return lines

    def _plan_summary(self, counts: str) -> str:
        reason = self.checked.dry_run_reason if self.checked else None
        if self.repo_id is None:
            lines = [f"Dry run ({reason}): nothing was uploaded."]
        else:
            lines = [f"Dry run for {self.repo_id} (branch {self.revision}) at {self.url} ({reason}): nothing was uploaded."]
        if self.repo_id is not None and self.checked is not None and not self.checked.token_found:
            lines.append(f"No Hugging Face token was found: publishing needs one. {TOKEN_HELP}.")
        if self.note:
            lines.append(self.note)
        width = max((len(change.path) for change in self.changes), default=0)
        lines += [f"  {change.status:17}  {change.path:{width}}  {do_filesizeformat(change.size):>9}" for change in self.changes]
        total = sum(change.size for change in self.changes if change.status != "deleted")
        lines.append(f"{len(self.changes)} files, {do_filesizeformat(total)}: {counts}. The repo view is in {self.view}.")
        return "\n".join(lines + self._kept())


# --- before anything starts -------------------------------------------------------------------------


def preflight(target: HubSection, *, dry_run: bool = False, rerun: str) -> Preflight:
    """Check that publishing to `target` can succeed, before anything long starts (the pipeline calls it
    before the base model is loaded): a token is found, the Hub accepts it (whoami), it may write to
    the repo or create it in its namespace (the user's, or an organization where the user has a write
    role), an existing repo has the visibility asked. A dry run (asked for, or no repo id) says why.

    Raises PublishError saying what to do (log in, --dry-run, another repo id...); `rerun` is the
    command that tries again. Reads the Hub, changes nothing.
    """
    token = current_token()
    if dry_run or target.repo_id is None:
        reason = "asked for with --dry-run" if dry_run else (
            "no repo to publish to: set hub.repo_id (in the config, or hub.repo_id=ID on the command line), "
            "or run `hubcard publish RUN_DIR --repo-id ID`"
        )
        return Preflight(reason, token is not None)
    repo_id = target.repo_id
    if is_offline_mode():
        raise PublishError(
            f"HF_HUB_OFFLINE=1 is set: hubcard cannot reach the Hub to publish to {repo_id}. Unset HF_HUB_OFFLINE, "
            "or pass --dry-run to build the repo view without publishing."
        )
    if token is None:
        raise PublishError(
            f"No Hugging Face token: publishing to {repo_id} needs one. {TOKEN_HELP}; "
            "or pass --dry-run to build the repo view without publishing."
        )
    api = HfApi(token=token)
    try:
        with patient_client():
            with_retries(lambda: _check_access(api, target), what=f"checking access to {repo_id}")
    except HUB_ERRORS as error:
        raise hub_error(error, repo_id=repo_id, rerun=rerun) from error
    return Preflight(None, True)


def require_base_model_id(model: ModelSection, *, fix: str) -> None:
    """Before training (or evaluating) a run that will publish: stop when the base model is a local
    folder that names no Hub id (model.hub_id), since the published adapter_config.json must name one;
    `fix` says how to give it. (A .gguf file may record its source repo: `build_view` checks the run's
    facts when publishing.)"""
    from hubcard.models import base_model_hub_id, resolve_source

    if model.hub_id is not None or model.gguf_file is not None or model.name_or_path.endswith(".gguf"):
        return
    source = resolve_source(model)
    if source.kind == "local" and base_model_hub_id(model, source) is None:
        raise PublishError(
            f"model.name_or_path is the local folder {model.name_or_path}, which has no Hub id: the published "
            f"adapter_config.json must name the base model's Hub id for PeftModel and AutoPeftModel to find it: {fix}; "
            "or publish a dry run (--dry-run, dry_run=True)."
        )


def _check_access(api: HfApi, target: HubSection) -> None:
    """A PublishError when this token cannot publish to `target` as asked."""
    assert target.repo_id is not None
    me = api.whoami()
    try:
        info = api.model_info(target.repo_id, timeout=request_timeout())
        exists, private = True, info.private
    except RepositoryNotFoundError:
        exists, private = False, None
    problem = _write_problem(me, target, exists)
    if problem is None and exists and target.private is not None and private is not None and private != target.private:
        problem = _visibility_differs(target.repo_id, private)
    if problem:
        raise PublishError(problem)


def _write_problem(me: Mapping[str, Any], target: HubSection, exists: bool) -> str | None:
    """Why the token described by whoami `me` cannot publish to `target` as asked, or None."""
    assert target.repo_id is not None
    repo_id, user = target.repo_id, str(me.get("name"))
    namespace, _, name = repo_id.partition("/")
    access = (me.get("auth") or {}).get("accessToken") or {}
    role = access.get("role")
    if role == "read":
        return f"The token of {user} is read-only: publishing needs a token with the write role. {TOKEN_HELP}."
    if target.create_pr and exists:
        return None  # anyone who can read a repo may open a pull request
    if role == "fineGrained":
        scopes = (access.get("fineGrained") or {}).get("scoped") or []
        allowed = any(
            (scope.get("entity") or {}).get("name") in (namespace, repo_id) and "repo.write" in (scope.get("permissions") or [])
            for scope in scopes
        )
    else:
        roles = {org.get("name"): org.get("roleInOrg") for org in me.get("orgs") or []}
        allowed = namespace == user or roles.get(namespace) in WRITE_ROLES
    if allowed:
        return None
    what = f"write to {repo_id}" if exists else f"create {repo_id} (in the namespace {namespace!r})"
    return (
        f"The token of {user} may not {what}. Publish to your own namespace (--repo-id {user}/{name}), "
        f"open a pull request against an existing repo (--pr), or use a token with write access to {namespace!r}."
    )


def _visibility_differs(repo_id: str, private: bool) -> str:
    actual, asked = ("private", "public") if private else ("public", "private")
    flag = "--public" if private else "--private"
    return (
        f"{repo_id} exists and is {actual}, but {asked} was asked (hub.private: {str(not private).lower()}, or {flag}). Make it "
        f"{asked} on the Hub (its Settings), or leave hub.private unset to keep its visibility, then publish again."
    )


# --- publishing -------------------------------------------------------------------------------------


@holding_run_dir
def publish_run(
    run_dir: str | Path,
    *,
    dry_run: bool = False,
    hub: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    force: bool = False,
) -> PublishOutcome:
    """Publish the run in `run_dir` (see the module's docstring).

    `hub`: the action's choice of target, HubSection fields (repo_id, private, revision, create_pr,
    commit_message) that override the `hub` section recorded in run.json. `base_model`: the Hub id of
    the base model, for a run that does not know it (recorded in run.json once published).
    `dry_run`: build the repo view in RUN_DIR/repo and compare it with the repo where the Hub can be
    reached; upload nothing (no token needed). `force`: replace the files edited on the Hub since
    hubcard uploaded them (by default they are kept, README.md merged). Raises PublishError saying
    what to do; the run directory is left as it was (RUN_DIR/repo aside).
    """
    run = RunDir(run_dir)
    record = run.read()
    plots.draw_missing(run, record)  # where the card was not rendered since the last stage
    recorded = _hub_section(run, record.config.get("hub") or {})
    target = _hub_section(run, {**_carried_to(recorded, (hub or {}).get("repo_id")), **(hub or {})})
    rerun = _rerun_command(run, recorded, target, base_model)
    record = _with_base_model(record, base_model)
    upcoming = _published_to(record, recorded, target)
    facts = gather_facts(upcoming)
    card_text, rendered = _card(run, record, upcoming, target)
    view = build_view(run, upcoming, facts, card_text)
    _refuse_tokens(run, current_token())
    _refuse_metadata(card_text)
    if facts.base_model is None and not dry_run and target.repo_id is not None:
        raise PublishError(f"{_no_base_model_id(run, facts)} Nothing was sent.")
    checked = preflight(target, dry_run=dry_run, rerun=rerun)
    api = HfApi()
    revision = target.revision or "main"
    url = f"{api.endpoint}/{target.repo_id}" if target.repo_id else None
    if checked.dry_run_reason is not None:
        with patient_client():
            changes, note = _dry_run_plan(api, target, view, card_text, force)
        notes = "\n".join(filter(None, [note, None if facts.base_model else _no_base_model_id(run, facts)]))
        return PublishOutcome(target.repo_id, revision, run.repo_view, changes, True, url, notes or None, checked=checked)
    assert target.repo_id is not None and url is not None
    created = _Created()
    with patient_client():
        try:
            changes, commit, remote, proposal = with_retries(
                lambda: _sync(
                    api, target, view, _commit_message(target, facts), _commit_description(upcoming, facts), rerun, created,
                    card_text=card_text, force=force,
                ),
                what=f"publishing to {target.repo_id}",
            )  # fmt: skip (safe to repeat: a pull request goes through pulls.propose, which finds the one a lost answer opened)
        except (PublishError, *HUB_ERRORS) as error:
            undone = _undo(api, target.repo_id, created)
            failure = error if isinstance(error, PublishError) else hub_error(error, repo_id=target.repo_id, rerun=rerun)
            raise PublishError(f"{failure} {undone}".strip()) from error
    published = _record_publish(run, upcoming, target, url, commit, remote, proposal)
    if rendered:
        run.write_card(card_text)
    return PublishOutcome(target.repo_id, revision, run.repo_view, changes, False, url, published=published, checked=checked, proposal=proposal)


def metadata_problems(card_text: str) -> list[str]:
    """What keeps the Hub from reading the card's YAML front matter (not YAML, not a mapping, a
    model-index it cannot parse), one line each: the local check before anything is sent.
    (lint.front_matter_problems: hubcard.metadata.metadata_problems on the parsed front matter.)"""
    return [str(problem) for problem in front_matter_problems(split_front_matter(card_text)[0])]


def _refuse_metadata(card_text: str) -> None:
    problems = metadata_problems(card_text)
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise PublishError(f"The card's metadata (README.md's front matter) would be refused by the Hub; nothing was sent:\n{lines}")


def _validate_card(api: HfApi, card_text: str, repo_id: str) -> None:
    """The Hub's own validation of the card's metadata (POST /api/validate-yaml): a PublishError with
    what the Hub said when it refuses it. Sends the card only, changes nothing. This is the check that
    huggingface_hub's create_commit runs on a README.md, on the exact text (ModelCard.validate would
    send the card re-written from what huggingface_hub could parse of it)."""
    try:
        api._validate_yaml(card_text, repo_type="model")
    except ValueError as error:
        said = str(error).strip()
        raise PublishError(
            f"The Hub refused the card's metadata (README.md's front matter), so nothing was sent to {repo_id}:\n{said}\n"
            "Fix it in the config's card: section (or in RUN_DIR/README.md), then publish again."
        ) from None


def _hub_section(run: RunDir, values: Mapping[str, Any]) -> HubSection:
    try:
        return HubSection.model_validate(values)
    except ValueError as error:
        raise PublishError(f"the hub section for publishing {run.path} is invalid:\n{error}") from None


REPO_CHOICES = ("private", "revision", "create_pr")
"""The recorded choices that belong to the repo they were made for: publishing to another repo id
does not carry them over (a --pr or --private given for a friend's repo is not one for your own)."""


def _carried_to(recorded: HubSection, repo_id: str | None) -> dict[str, Any]:
    """What of the recorded hub section a publish to `repo_id` starts from: all of it for the same repo
    (or none named), else all but REPO_CHOICES."""
    values = recorded.model_dump()
    if repo_id is None or repo_id == recorded.repo_id:
        return values
    return {key: value for key, value in values.items() if key not in REPO_CHOICES}


def _rerun_command(run: RunDir, recorded: HubSection, target: HubSection, base_model: str | None) -> str:
    """The `hubcard publish` command that publishes to `target` again (the options that differ from run.json)."""
    options = [f"{flag} {getattr(target, field)}" for field, flag in OPTIONS.items() if getattr(target, field) != getattr(recorded, field)]
    if target.private != recorded.private and target.private is not None:
        options.append("--private" if target.private else "--public")
    if target.create_pr != recorded.create_pr:
        options.append("--pr" if target.create_pr else "--no-pr")
    if base_model:
        options.append(f"--base-model {base_model}")
    return " ".join([f"hubcard publish {run.path}", *options])


def _with_base_model(record: RunRecord, base_model: str | None) -> RunRecord:
    """The record with the base model's Hub id the user gave (`--base-model`, `base_model=`)."""
    if base_model is None:
        return record
    if model_id(base_model) is None:
        raise PublishError(f"--base-model {base_model}: not a Hub model id (owner/name)")
    if record.model is None:
        raise PublishError("run.json records no base model: train the run first (`hubcard train CONFIG`)")
    return record.model_copy(update={"model": record.model.model_copy(update={"hub_id": base_model})})


def _published_to(record: RunRecord, recorded: HubSection, target: HubSection) -> RunRecord:
    """The record as its card and uploaded config describe it once published to `target`: the config's
    hub section is the target, and earlier publish facts do not name another repo."""
    if target == recorded:
        return record.model_copy(update={"publish": None})
    config = {**record.config, "hub": target.model_dump(exclude_defaults=True)}
    return record.model_copy(update={"config": config, "publish": None})


# --- the repo view ----------------------------------------------------------------------------------


def build_view(run: RunDir, record: RunRecord, facts: CardFacts, card_text: str) -> dict[str, Path]:
    """Write the repo view into RUN_DIR/repo (replacing the previous one); path in the repo -> file."""
    contents: dict[str, bytes | Path] = {file.name: file for file in _adapter_files(run)}
    contents[ADAPTER_CONFIG] = _adapter_config(run, facts)
    contents[CARD] = card_text.encode("utf-8")
    contents |= {relative: _plot(run, relative) for relative in sorted(record.plots.values())}
    if record.evaluation is not None:
        contents[EVAL_RESULTS] = (json.dumps(record.evaluation.model_dump(mode="json"), indent=2) + "\n").encode()
    contents[TRAINING_CONFIG] = config_yaml(record.config).encode("utf-8")
    files = {path: FileRecord.of(content) for path, content in sorted(contents.items())}
    contents[MANIFEST] = _manifest_json(Manifest(files, record_card(card_text)))
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
    """adapter_config.json naming the base model by its Hub id, so that PeftModel, AutoPeftModel and the
    Hub find it; never by a local path or a folder name (publishing stops when the id is unknown)."""
    config = json.loads((run.adapter / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    if facts.base_model is not None:
        config["base_model_name_or_path"] = facts.base_model
        config["revision"] = facts.record.model.revision if facts.record.model else None
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def _no_base_model_id(run: RunDir, facts: CardFacts) -> str:
    return (
        f"The base model ({facts.base_model_name or 'unknown'}) has no Hub id in {run.run_json}, and the published "
        f"{ADAPTER_CONFIG} must name one: `AutoPeftModel.from_pretrained(repo)` would look for a model called "
        f"{facts.base_model_name!r} on the Hub. Give the Hub id of the model it was trained from: "
        f"`hubcard publish {run.path} --base-model OWNER/NAME` (or model.hub_id in the config before training, "
        "base_model= in hubcard.notebook)."
    )


def _plot(run: RunDir, relative: str) -> Path:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise PublishError(f"run.json names the plot {relative!r}, which is not inside the run directory")
    if not (run.path / path).is_file():
        raise PublishError(f"{run.path / path} is named in run.json but missing: run `hubcard evaluate {run.path}` again")
    return run.path / path


def _card(run: RunDir, record: RunRecord, upcoming: RunRecord, target: HubSection) -> tuple[str, bool]:
    """The card to upload, and whether hubcard rendered it now (then RUN_DIR/README.md is updated after
    the upload). It is the card rendered for `target` (`upcoming`), unless RUN_DIR/README.md was edited
    by hand (it is not the card hubcard renders from run.json): that card is uploaded as it is when it
    was written for this repo or names it, and never replaced; otherwise publishing stops, naming it."""
    template = recorded_template(run, record)
    wanted = render_card(upcoming, template)
    existing = run.card.read_text(encoding="utf-8") if run.card.is_file() else None
    if existing is None or existing == wanted:
        return wanted, existing is None
    if existing == render_card(record, template):  # hubcard's own card, rendered for the earlier target
        return wanted, True
    written_for = gather_facts(record).repo_id
    if written_for == target.repo_id or _names_only(existing, target.repo_id, written_for):
        return existing, False
    earlier = f"rendered for {written_for}" if written_for else f"rendered before the run had a repo (its snippet loads {ADAPTER_ID_STAND_IN})"
    raise PublishError(
        f"{run.card} was edited by hand (it is not the card hubcard renders from run.json), and it was {earlier}: "
        f"published to {target.repo_id} it would name the wrong repo. hubcard keeps it as it is and sends nothing. "
        f"Either make it name {target.repo_id} (its usage snippet's adapter_id), or move it away (e.g. to "
        f"README.edited.md) so that hubcard renders the card for {target.repo_id}, then publish again."
    )


def _names_only(card_text: str, repo_id: str | None, written_for: str | None) -> bool:
    """Whether a hand-written card names `repo_id` and neither the repo it was rendered for nor the
    stand-in id of an unpublished card."""
    if repo_id is None or repo_id not in card_text or ADAPTER_ID_STAND_IN in card_text:
        return False
    return written_for is None or written_for not in card_text


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


def plan(view: dict[str, Path], remote: RemoteState, kept: Mapping[str, tuple[str, ...]] | None = None) -> list[FileChange]:
    """Each file of the view as added, changed or unchanged against the repo, then the files hubcard
    wrote before that the view no longer has, as deleted; a file of `kept` (path -> what of the Hub's
    version is kept: `their_edits`) is `edited on the Hub` instead, sent only when it is README.md and
    the merged card differs from the Hub's."""
    kept = kept or {}
    changes = []
    for path, file in view.items():
        status = _status(file, remote.files.get(path))
        if path in kept:
            changes.append(FileChange(path, file.stat().st_size, "edited on the Hub", kept[path], merged=path == CARD and status != "unchanged"))
        else:
            changes.append(FileChange(path, file.stat().st_size, status))
    for path in remote.manifest.files:
        if path not in view and path in remote.files:
            size = remote.files[path].size
            changes.append(FileChange(path, size, "edited on the Hub", kept[path]) if path in kept else FileChange(path, size, "deleted"))
    return changes


def _status(file: Path, remote: RepoFile | None) -> Status:
    if remote is None:
        return "added"
    return "unchanged" if same_content(CommitOperationAdd(file.name, file), remote) else "changed"


def their_edits(api: HfApi, repo_id: str, view: dict[str, Path], remote: RemoteState, card_text: str) -> dict[str, tuple[str, ...]]:
    """The files of the repo hubcard uploaded that were changed on the Hub since, and what is kept of
    each (path -> lines): README.md merged with hubcard's new card (`card_text`, hubcard.merge; the view's
    README.md becomes the merged card), any other file kept as it is. The view's manifest is written
    again: a kept file keeps its old record, so that the next publish keeps it too. Reads README.md from
    the Hub when it differs from hubcard's card."""
    kept: dict[str, tuple[str, ...]] = {}
    theirs = remote.files.get(CARD)
    card = card_text
    if theirs is not None and not same_content(CommitOperationAdd(CARD, card_text.encode("utf-8")), theirs):
        their_card = read_file(api, repo_id, CARD, revision=remote.head).decode("utf-8-sig")
        merged = merge_card(card_text, their_card, remote.manifest.card)
        if merged.kept:
            card, kept[CARD] = merged.text, tuple(merged.kept)
    view[CARD].write_bytes(card.encode("utf-8"))
    for path, record in remote.manifest.files.items():
        found = remote.files.get(path)
        if path in (CARD, MANIFEST) or record is None or found is None or record.holds(found):
            continue
        if path not in view or not same_content(CommitOperationAdd(path, view[path]), found):
            kept[path] = ("the whole file, as changed on the Hub",)
    files = {path: record for path, record in _parse_manifest(view[MANIFEST].read_text(encoding="utf-8")).files.items() if path not in kept}
    files |= {path: remote.manifest.files[path] for path in kept if path != CARD} | {CARD: FileRecord.of(card.encode("utf-8"))}
    view[MANIFEST].write_bytes(_manifest_json(Manifest(dict(sorted(files.items())), record_card(card_text))))
    return kept


def _manifest_json(manifest: Manifest) -> bytes:
    files = {
        path: None if record is None else {"sha256": record.sha256, "size": record.size, "blob_id": record.blob_id}
        for path, record in manifest.files.items()
    }
    card = manifest.card.to_json() if manifest.card is not None else None
    return (json.dumps({"about": MANIFEST_ABOUT, "files": files, "card": card}, indent=2) + "\n").encode()


NO_REPO = RemoteState("", {}, Manifest({}))
"""What a repo that does not exist yet holds."""


def _remote_state(api: HfApi, repo_id: str, revision: str, paths: list[str]) -> RemoteState:
    head = api.model_info(repo_id, revision=revision, timeout=request_timeout())
    names = {sibling.rfilename for sibling in head.siblings or []}
    manifest = _read_manifest(api, repo_id, head.sha) if MANIFEST in names else Manifest({})
    wanted = sorted(names & {*paths, *manifest.files})
    files = api.get_paths_info(repo_id, wanted, revision=head.sha) if wanted else []
    return RemoteState(head.sha, {file.path: file for file in files if isinstance(file, RepoFile)}, manifest, head.private)


def _branch_state(api: HfApi, repo_id: str, revision: str, paths: list[str]) -> tuple[RemoteState, bool, bool]:
    """The repo at `revision` (at main for a branch not created yet; NO_REPO for a repo that does not
    exist), whether the repo exists, and whether the branch does."""
    try:
        return _remote_state(api, repo_id, revision, paths), True, True
    except RevisionNotFoundError:
        return _remote_state(api, repo_id, "main", paths), True, False
    except RepositoryNotFoundError:
        return NO_REPO, False, False


def _read_manifest(api: HfApi, repo_id: str, commit: str) -> Manifest:
    """The manifest at `commit`: its records, or the paths alone of an older manifest; nothing for one
    that is not hubcard's to trust (then nothing is deleted, nothing known as edited)."""
    return _parse_manifest(Path(api.hf_hub_download(repo_id, MANIFEST, revision=commit)).read_text(encoding="utf-8"))


def _parse_manifest(text: str) -> Manifest:
    try:
        data = json.loads(text)
        files = data.get("files", [])
    except (ValueError, AttributeError):
        return Manifest({})
    if isinstance(files, list):
        return Manifest({file: None for file in files if isinstance(file, str)})
    records = {}
    for name, record in files.items() if isinstance(files, dict) else ():
        try:
            records[name] = FileRecord(str(record["sha256"]), int(record["size"]), record.get("blob_id"))
        except (TypeError, KeyError, ValueError):
            records[name] = None
    return Manifest(records, CardRecord.from_json(data.get("card")))


def _dry_run_plan(
    api: HfApi, target: HubSection, view: dict[str, Path], card_text: str, force: bool
) -> tuple[list[FileChange], str | None]:
    """The plan against the repo if it can be read (a branch to be created is compared with main), with
    the files edited on the Hub (unless `force`)."""
    if target.repo_id is None:
        return [FileChange(path, file.stat().st_size, "added") for path, file in view.items()], None
    try:
        remote, exists, _ = _branch_state(api, target.repo_id, target.revision or "main", list(view))
        kept = their_edits(api, target.repo_id, view, remote, card_text) if exists and not force else {}
    except HUB_ERRORS as error:
        unknown = [FileChange(path, file.stat().st_size, "unknown") for path, file in view.items()]
        return unknown, f"The repo could not be read to compare ({short_reason(error)}): what would change is unknown."
    if not exists:
        return plan(view, remote), f"{target.repo_id} does not exist yet (or this token cannot see it): every file is new."
    differs = target.private is not None and remote.private is not None and remote.private != target.private
    return plan(view, remote, kept), _visibility_differs(target.repo_id, remote.private) if differs else None


# --- the commit -------------------------------------------------------------------------------------


@dataclass
class _Created:
    """What this publish created on the Hub: removed again if it fails."""

    repo: bool = False
    branch: str | None = None
    unanswered: bool = False
    """A request to create the repo got no answer: the repo found afterwards is this publish's."""


def _sync(
    api: HfApi,
    target: HubSection,
    view: dict[str, Path],
    message: str,
    description: str,
    rerun: str,
    created: _Created,
    *,
    card_text: str,
    force: bool,
) -> tuple[list[FileChange], CommitInfo | None, RemoteState, Proposal | None]:
    """One attempt: plan against the branch's head (keeping what was edited on the Hub, unless `force`),
    and when there is something to commit, have the Hub validate a new card, create the repo and the
    branch if they are missing (recorded in `created`), upload what is missing, commit — or, with
    `create_pr`, propose it through hubcard's pull request.
    Returns the plan, the commit (None when none was made), the repo as it was before it, and what
    became of the pull request."""
    assert target.repo_id is not None
    repo_id, revision = target.repo_id, target.revision or "main"
    remote, exists, branch_exists = _branch_state(api, repo_id, revision, list(view))
    if exists and target.private is not None and remote.private is not None and remote.private != target.private:
        raise PublishError(_visibility_differs(repo_id, remote.private))
    changes = plan(view, remote, their_edits(api, repo_id, view, remote, card_text) if exists and not force else {})
    sent = [change for change in changes if change.sent]
    if not sent and not (target.create_pr and exists):
        return changes, None, remote, None
    if any(change.path == CARD for change in sent):
        _validate_card(api, view[CARD].read_text(encoding="utf-8"), repo_id)  # before anything changes on the Hub
    if not exists:
        _create_repo(api, target, created)
        remote = _remote_state(api, repo_id, "main", list(view))  # the new repo: its first commit, its visibility
    if not branch_exists and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
        created.branch = created.branch or revision

    def upload(additions: list[CommitOperationAdd], to: str, create_pr: bool) -> None:
        try:
            api.preupload_lfs_files(repo_id, additions=additions, revision=to, create_pr=create_pr)
        except (OSError, *HUB_ERRORS) as error:
            failure = upload_failure(error)
            if isinstance(failure, XetError):
                raise failure from error
            # Retried by huggingface_hub itself: a failure here is final for this run.
            raise hub_error(error, repo_id=repo_id, rerun=rerun) from error

    if target.create_pr:  # the whole view, so that hubcard's pull request holds all of it (propose sends what differs)
        whole = [change for change in changes if change.status != "edited on the Hub" or change.merged]
        proposal = propose(api, repo_id, _operations(whole, view), kind="publish", title=message, description=description, branch=revision, upload=upload)
        return changes, proposal.commit, remote, proposal
    operations = _operations(sent, view)
    upload([operation for operation in operations if isinstance(operation, CommitOperationAdd)], revision, False)
    commit = api.create_commit(
        repo_id,
        operations,
        commit_message=message,
        commit_description=description,
        revision=revision,
        parent_commit=remote.head,
    )
    return changes, commit, remote, None


def _operations(changes: list[FileChange], view: dict[str, Path]) -> list[CommitOperationAdd | CommitOperationDelete]:
    return [CommitOperationDelete(change.path) if change.status == "deleted" else CommitOperationAdd(change.path, view[change.path]) for change in changes]


def _create_repo(api: HfApi, target: HubSection, created: _Created) -> None:
    """Create the repo, sending a visibility only when one was asked (the namespace's default otherwise)."""
    assert target.repo_id is not None
    try:
        api.create_repo(target.repo_id, private=target.private, exist_ok=False)
    except HfHubHTTPError as error:
        if error.response is None or error.response.status_code != 409:
            raise
        created.repo = created.unanswered  # it exists: this publish's only if an earlier request got no answer
        return
    except httpx2.TransportError:
        created.unanswered = True
        raise
    created.repo = True


def _undo(api: HfApi, repo_id: str, created: _Created) -> str:
    """Remove what this publish created (the repo, else a branch; never what existed before it) and say so."""
    if not created.repo and created.branch is None:
        return ""
    what = repo_id if created.repo else f"the branch {created.branch} of {repo_id}"
    try:
        if created.repo:
            with_retries(lambda: api.delete_repo(repo_id), what=f"deleting {repo_id}")
        else:
            with_retries(lambda: api.delete_branch(repo_id, branch=created.branch), what=f"deleting {what}")
    except HUB_ERRORS as error:
        return (
            f"hubcard had created {what} for this publish and could not delete it again ({short_reason(error)}): "
            "publishing again fills it, or delete it on the Hub."
        )
    return f"hubcard had created {what} for this publish and deleted it again: nothing of this publish is left on the Hub."


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


def _record_publish(
    run: RunDir,
    upcoming: RunRecord,
    target: HubSection,
    url: str,
    commit: CommitInfo | None,
    remote: RemoteState,
    proposal: Proposal | None,
) -> PublishFacts:
    """Write into run.json where the run is published (the target in the config's hub section, and the
    publish facts: hubcard's pull request, when there is one), unless it already says so."""
    assert target.repo_id is not None
    pull = proposal.number if proposal is not None else None
    revision = f"refs/pr/{pull}" if pull is not None else target.revision or "main"
    previous = run.read().publish
    if commit is not None:
        head = commit.oid
    elif pull is not None and previous is not None and (previous.repo_id, previous.revision) == (target.repo_id, revision):
        head = previous.commit_oid  # hubcard's pull request already held the run
    else:
        head = remote.head
    if commit is None and previous and (previous.repo_id, previous.revision, previous.commit_oid) == (target.repo_id, revision, head):
        return previous
    facts = PublishFacts(
        repo_id=target.repo_id,
        url=url,
        revision=revision,
        commit_oid=head,
        commit_url=commit.commit_url if commit else f"{url}/commit/{head}",
        pull_request_url=proposal.url if proposal is not None else None,
        private=target.private if remote.private is None else remote.private,
        published_at=datetime.now(timezone.utc),
    )
    run.write(upcoming.model_copy(update={"publish": facts}))
    return facts


def _counts(changes: list[FileChange]) -> str:
    counted = [(status, sum(change.status == status for change in changes)) for status in STATUSES]
    return ", ".join(f"{count} {status}" for status, count in counted if count)
