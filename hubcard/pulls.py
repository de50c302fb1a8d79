"""hubcard's own pull requests on the Hub, recognised through the discussions API.

A pull request hubcard opens carries a hidden marker in its description (the text of its first
comment on the Hub): `<!-- hubcard:pull-request kind=KIND -->`, KIND one of PULL_REQUEST_KINDS
(`card`: a refreshed model card, `publish`: a run published as a pull request, `results`: evaluation
results for the card). The marker is what tells hubcard's pull requests from anyone else's, whoever
opened them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from huggingface_hub import HfApi

PullRequestKind = Literal["card", "publish", "results"]
PULL_REQUEST_KINDS: tuple[PullRequestKind, ...] = ("card", "publish", "results")
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
        description = next((event.content for event in details.events if event.type == "comment"), "")  # type: ignore[attr-defined]
        found_kind = marked_kind(description)
        if found_kind is not None and (kind is None or found_kind == kind):
            found.append(HubcardPullRequest(repo_id, discussion.num, found_kind, discussion.title, discussion.status, discussion.author))
    return sorted(found, key=lambda pull: pull.number)
