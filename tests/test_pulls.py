"""hubcard's own pull requests, recognised and kept up to date through the loopback Hub's discussions API."""

from __future__ import annotations

import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from hubcard.pulls import PULL_REQUEST_KINDS, Proposal, marked_kind, marker, open_pull_requests, propose

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


def test_propose_opens_one_pull_request_updates_it_and_never_duplicates_it(hub):
    amy = HfApi(token=hub.add_user("amy"))
    staff = HfApi(token=hub.add_user("ta"))
    amy.create_repo(REPO)
    amy.create_commit(REPO, [CommitOperationAdd("README.md", b"# hw3\n"), CommitOperationAdd("weights.safetensors", b"\0" * 64)], commit_message="Upload")

    def card(text: bytes, message: str | None = None) -> Proposal:
        operations = [CommitOperationAdd("README.md", text), CommitOperationAdd("weights.safetensors", b"\0" * 64)]
        return propose(staff, REPO, operations, kind="card", title="Refresh the card", description="What changed.", message=message)

    sent = len(hub.requests())
    assert card(b"# hw3\n") == Proposal("nothing to change")  # main holds it already (LFS file compared by sha256)
    assert not hub.writes(sent)

    opened = card(b"# hw3\n\nA LoRA adapter.\n", message="Please write Uses.")
    assert (opened.action, opened.number) == ("opened", 1)
    assert hub.repo(REPO).discussions[1].events[0]["data"]["latest"]["raw"] == "Please write Uses.\n\nWhat changed.\n\n" + marker("card")
    assert sorted(hub.files(REPO, "refs/pr/1")) == [".gitattributes", "README.md", "weights.safetensors"]

    sent = len(hub.requests())
    assert card(b"# hw3\n\nA LoRA adapter.\n", message="Please write Uses.") == Proposal("up to date", 1, opened.url)
    assert not hub.writes(sent)  # the same content and a message it already holds: nothing sent

    staff.create_commit(REPO, [CommitOperationAdd("README.md", b"x")], commit_message="Another kind", create_pr=True,
                        commit_description=marker("publish"))  # fmt: skip
    amy.create_pull_request(REPO, "Amy's own pull request")
    updated = card(b"# hw3\n\nA LoRA adapter of MiniLM.\n", message="Also Limitations.")
    assert (updated.action, updated.number) == ("updated", 1)
    assert hub.files(REPO, "refs/pr/1")["README.md"] == b"# hw3\n\nA LoRA adapter of MiniLM.\n"
    assert hub.commits(REPO, "refs/pr/1")[0].message == "What changed."
    assert [event["type"] for event in hub.repo(REPO).discussions[1].events] == ["comment", "commit", "comment", "commit"]
    assert len(hub.repo(REPO).discussions) == 3 and hub.files(REPO)["README.md"] == b"# hw3\n"

    amy.create_commit(REPO, [CommitOperationAdd("README.md", b"# hw3\n\nA LoRA adapter of MiniLM.\n")], commit_message="Applied by hand")
    assert card(b"# hw3\n\nA LoRA adapter of MiniLM.\n") == Proposal("nothing to change", closed=(1,))
    assert [pull.number for pull in open_pull_requests(staff, REPO)] == [2]  # the other kind's stays open
    # The kinds that change the card alone share one pull request: evaluation results go into a refresh's.
    opened = card(b"# hw3\n\nRefreshed.\n")
    results = propose(staff, REPO, [CommitOperationAdd("README.md", b"# hw3\n\nRefreshed.\n\n## Results\n")], kind="results", title="Results", description="")
    assert (opened.action, results.action, results.number) == ("opened", "updated", opened.number)
