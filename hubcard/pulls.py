"""hubcard's own pull requests on the Hub, recognised through the discussions API, and proposing a
change through one.

A pull request hubcard opens carries a hidden marker in its description (the text of its first
comment on the Hub): `<!-- hubcard:pull-request kind=KIND -->`, KIND one of PULL_REQUEST_KINDS
(`card`: a refreshed model card, `publish`: a run published as a pull request, `results`: evaluation
results for the card). The marker is what tells hubcard's pull requests from anyone else's, whoever
opened them.

    commit operations ──► nothing would change on the branch?  ──► no pull request (hubcard's stale one closed)
                          hubcard's open pull request of the kind? ──► a commit to its refs/pr/N (none if it holds them)
                          else ──► a new pull request, marked

So running the same command again never opens a second pull request, and a pull request of hubcard's
always holds the latest change it proposes. The kinds that change the card alone (CARD_KINDS: a refreshed
card, evaluation results) share one pull request: the second command's change goes into the first one's. A file "would change" when its content (git blob id, or
sha256 for an LFS file) differs from the revision's, as the Hub's file metadata gives it: nothing is
downloaded to compare.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils.sha import git_hash

Operation = CommitOperationAdd | CommitOperationDelete

PullRequestKind = Literal["card", "publish", "results"]
PULL_REQUEST_KINDS: tuple[PullRequestKind, ...] = ("card", "publish", "results")
CARD_KINDS: tuple[PullRequestKind, ...] = ("card", "results")
"""The kinds that change README.md alone: one pull request of hubcard's holds them all (two pull
requests changing the same file would conflict once either is merged)."""
MARKER = "<!-- hubcard:pull-request kind={kind} -->"
MARKER_PATTERN = re.compile(r"<!--\s*hubcard:pull-request\s+kind=(?P<kind>[\w-]+)\s*-->")
OPEN_STATUSES = ("open", "draft")
"""A draft pull request (opened without commits) is open too: hubcard can still push to it."""


@dataclass(frozen=True)
class HubcardPullRequest:
    repo_id: str
    number: int
    kind: str
    title: str
    status: str
    author: str
    target_branch: str = "main"
    """The branch it would be merged into."""
    comments: tuple[str, ...] = ()
    """The texts of its comments, its description first."""

    @property
    def git_reference(self) -> str:
        """The ref its commits go to: `refs/pr/N`."""
        return f"refs/pr/{self.number}"


def marker(kind: PullRequestKind) -> str:
    """The line that marks a pull request description as hubcard's, of `kind`."""
    if kind not in PULL_REQUEST_KINDS:
        raise ValueError(f"unknown pull request kind {kind!r}: one of {', '.join(PULL_REQUEST_KINDS)}")
    return MARKER.format(kind=kind)


def marked_kind(description: str) -> str | None:
    """The KIND of the first hubcard marker in a pull request's description, or None."""
    match = MARKER_PATTERN.search(description)
    return match.group("kind") if match else None


def open_pull_requests(api: HfApi, repo_id: str, kind: PullRequestKind | None = None) -> list[HubcardPullRequest]:
    """The open (or draft) pull requests of `repo_id` that hubcard opened, of `kind` if given, oldest first.

    One request lists the repo's pull requests (every page), and one more per open pull request reads
    its description; huggingface_hub's HTTP errors propagate (RepositoryNotFoundError for a repo this
    token cannot read). The token is `api`'s.
    """
    found = []
    for discussion in api.get_repo_discussions(repo_id, discussion_type="pull_request"):
        if discussion.status not in OPEN_STATUSES:
            continue
        details = api.get_discussion_details(repo_id, discussion.num)
        comments = tuple(event.content for event in details.events if event.type == "comment")  # type: ignore[attr-defined]
        found_kind = marked_kind(comments[0] if comments else "")
        if found_kind is not None and (kind is None or found_kind == kind):
            branch = (details.target_branch or "main").removeprefix("refs/heads/")
            found.append(
                HubcardPullRequest(repo_id, discussion.num, found_kind, discussion.title, discussion.status, discussion.author, branch, comments)
            )
    return sorted(found, key=lambda pull: pull.number)


def card_pull_request(pulls: Sequence[HubcardPullRequest], branch: str = "main") -> HubcardPullRequest | None:
    """Of hubcard's open pull requests `pulls` (`open_pull_requests`), the one to `branch` that changes
    the card (a kind of CARD_KINDS), if any."""
    return next((pull for pull in pulls if pull.kind in CARD_KINDS and pull.target_branch == branch), None)


# --- proposing a change -------------------------------------------------------------------------------

ProposalAction = Literal["nothing to change", "opened", "updated", "up to date"]


@dataclass(frozen=True)
class Proposal:
    """What `propose` did: `nothing to change` (the branch holds the change already), `opened` a pull
    request, `updated` hubcard's open one with a commit, or found it `up to date`."""

    action: ProposalAction
    number: int | None = None
    """The pull request's number (None when there is none)."""
    url: str | None = None
    commit: CommitInfo | None = None
    """The commit made, if one was."""
    closed: tuple[int, ...] = field(default_factory=tuple)
    """hubcard's pull requests of the kind closed because the branch already holds their change."""


def propose(
    api: HfApi,
    repo_id: str,
    operations: Sequence[Operation],
    *,
    kind: PullRequestKind,
    title: str,
    description: str,
    message: str | None = None,
    branch: str = "main",
    upload: Callable[[list[CommitOperationAdd], str, bool], None] | None = None,
    pulls: Sequence[HubcardPullRequest] | None = None,
) -> Proposal:
    """Propose `operations` to `branch` of `repo_id` through hubcard's pull request of `kind` (see the
    module's docstring); `title` and `description` are the commit's (a new pull request's description
    also holds `message`, e.g. a note to the repo's owner, and the marker; an existing one gets
    `message` as a comment unless it already says it). `upload(additions, revision, create_pr)`, if
    given, is called before a commit with the files it adds (to upload their LFS content with the
    caller's own error handling); nothing is uploaded when nothing is committed. `pulls`: hubcard's open
    pull requests of the repo as the caller has just read them (`open_pull_requests`), else read here.

    Safe to repeat after a failure whose answer was lost: the repeat finds the pull request the first
    attempt opened. huggingface_hub's HTTP errors propagate. The token is `api`'s.
    """
    changes = pending(api, repo_id, operations, branch)
    family = CARD_KINDS if kind in CARD_KINDS else (kind,)
    found = open_pull_requests(api, repo_id) if pulls is None else pulls
    mine = [pull for pull in found if pull.kind in family and pull.target_branch == branch]
    if not changes:
        for pull in mine:
            api.change_discussion_status(
                repo_id, pull.number, "closed", comment=f"Closed by hubcard: `{branch}` already holds this change."
            )
        return Proposal("nothing to change", closed=tuple(pull.number for pull in mine))
    if mine:
        pull = mine[0]
        url = f"{api.endpoint}/{repo_id}/discussions/{pull.number}"
        if message and not any(message.strip() in comment for comment in pull.comments):
            api.comment_discussion(repo_id, pull.number, message.strip())
        update = pending(api, repo_id, operations, pull.git_reference)
        if not update:
            return Proposal("up to date", pull.number, url)
        if upload is not None:
            upload([operation for operation in update if isinstance(operation, CommitOperationAdd)], pull.git_reference, False)
        commit = api.create_commit(repo_id, update, commit_message=title, commit_description=description, revision=pull.git_reference)
        return Proposal("updated", pull.number, url, commit)
    opening = "\n\n".join(part for part in (message and message.strip(), description.strip(), marker(kind)) if part)
    if upload is not None:
        upload([operation for operation in changes if isinstance(operation, CommitOperationAdd)], branch, True)
    commit = api.create_commit(repo_id, changes, commit_message=title, commit_description=opening, revision=branch, create_pr=True)
    return Proposal("opened", commit.pr_num, commit.pr_url, commit)


def pending(api: HfApi, repo_id: str, operations: Sequence[Operation], revision: str) -> list[Operation]:
    """The operations that would change `revision` (a branch or refs/pr/N) of `repo_id`: files to add
    whose content differs from the revision's, files to delete that it holds. One request."""
    paths = [operation.path_in_repo for operation in operations]
    found = {file.path: file for file in api.get_paths_info(repo_id, paths, revision=revision) if isinstance(file, RepoFile)} if paths else {}
    return [operation for operation in operations if not _applied(operation, found.get(operation.path_in_repo))]


def same_content(operation: CommitOperationAdd, remote: RepoFile | None) -> bool:
    """Whether the repo's file `remote` (None: there is none) holds the bytes `operation` uploads."""
    if remote is None:
        return False
    if remote.lfs is not None:
        return remote.lfs.size == operation.upload_info.size and remote.lfs.sha256 == operation.upload_info.sha256.hex()
    with operation.as_file() as handle:
        content = handle.read()
    return remote.size == len(content) and remote.blob_id == git_hash(content)


def _applied(operation: Operation, remote: RepoFile | None) -> bool:
    if isinstance(operation, CommitOperationDelete):
        return remote is None
    return same_content(operation, remote)
