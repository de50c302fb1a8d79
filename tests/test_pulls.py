"""hubcard's own pull requests, recognised through the loopback Hub's discussions API."""

from __future__ import annotations

import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from hubcard.pulls import PULL_REQUEST_KINDS, marked_kind, marker, open_pull_requests

REPO = "amy/hw3-lora"


def test_only_open_pull_requests_with_hubcards_marker_count(hub):
    amy = HfApi(token=hub.add_user("amy"))
    staff = HfApi(token=hub.add_user("ta"))
    amy.create_repo(REPO)

    def propose(api: HfApi, path: str, description: str) -> int:
        made = api.create_commit(REPO, [CommitOperationAdd(path, b"x")], commit_message=f"Change {path}", commit_description=description, create_pr=True)
        return made.pr_num

    card = propose(staff, "README.md", f"{marker('card')}\nPlease write the Uses section.")
    results = propose(staff, "eval_results.json", f"Results on the held-out set.\n\n{marker('results')}")
    propose(amy, "notes.txt", "My own pull request, no marker")
    closed = propose(staff, "README.md", marker("card"))
    staff.change_discussion_status(REPO, closed, "closed")
    draft = staff.create_pull_request(REPO, "Publish the run", description=marker("publish")).num

    found = open_pull_requests(HfApi(token=staff.token), REPO)
    assert [(pull.number, pull.kind, pull.status) for pull in found] == [(card, "card", "open"), (results, "results", "open"), (draft, "publish", "draft")]
    assert [pull.git_reference for pull in open_pull_requests(amy, REPO, "card")] == [f"refs/pr/{card}"]
    assert open_pull_requests(amy, REPO, "results")[0].author == "ta"


def test_the_marker():
    assert [marked_kind(f"Some text\n{marker(kind)}\n") for kind in PULL_REQUEST_KINDS] == list(PULL_REQUEST_KINDS)
    assert marker("card") == "<!-- hubcard:pull-request kind=card -->"
    assert marked_kind("<!-- hubcard -->") is None
    with pytest.raises(ValueError, match="unknown pull request kind"):
        marker("cards")  # type: ignore[arg-type]
