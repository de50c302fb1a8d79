"""The loopback Hub is as strict as the Hub where the tests rely on it (tests/hub/README.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import httpx2
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

REPO = "alice/strict"


@pytest.fixture
def alice(hub) -> HfApi:
    api = HfApi(token=hub.add_user("alice"))
    api.create_repo(REPO)
    return api


def commit_lines(*lines: dict) -> bytes:
    header = {"key": "header", "value": {"summary": "raw commit", "description": ""}}
    return b"".join(json.dumps(line).encode() + b"\n" for line in (header, *lines))


def test_an_lfs_upload_must_match_its_sha256_and_a_commit_may_only_name_uploaded_objects(hub, alice):
    content = b"weights" * 1000
    oid = hashlib.sha256(content).hexdigest()
    headers = {"Authorization": f"Bearer {alice.token}"}
    batch = httpx2.post(
        f"{hub.endpoint}/{REPO}.git/info/lfs/objects/batch",
        json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(content)}], "hash_algo": "sha256"},
        headers=headers,
    ).json()
    upload = batch["objects"][0]["actions"]["upload"]["href"]

    tampered = httpx2.put(upload, content=content[:-1] + b"!")
    assert tampered.status_code == 400 and "sha256 mismatch" in tampered.headers["X-Error-Message"]
    lfs_file = {"key": "lfsFile", "value": {"path": "model.safetensors", "algo": "sha256", "oid": oid, "size": len(content)}}
    refused = httpx2.post(f"{hub.endpoint}/api/models/{REPO}/commit/main", content=commit_lines(lfs_file), headers=headers)
    assert refused.status_code == 422 and "does not exist" in refused.headers["X-Error-Message"]

    assert httpx2.put(upload, content=content).status_code == 200
    made = httpx2.post(f"{hub.endpoint}/api/models/{REPO}/commit/main", content=commit_lines(lfs_file), headers=headers)
    assert made.status_code == 200
    assert hub.files(REPO)["model.safetensors"] == content


def test_binary_files_must_travel_through_lfs(hub, alice):
    regular = {"key": "file", "value": {"path": "model.safetensors", "content": base64.b64encode(b"\0\1").decode(), "encoding": "base64"}}
    answer = httpx2.post(
        f"{hub.endpoint}/api/models/{REPO}/commit/main", content=commit_lines(regular), headers={"Authorization": f"Bearer {alice.token}"}
    )
    assert answer.status_code == 400 and "must be uploaded with LFS" in answer.headers["X-Error-Message"]


def test_a_commit_on_a_moved_branch_is_refused(hub, alice):
    first = alice.list_repo_commits(REPO)[0].commit_id
    alice.upload_file(path_or_fileobj=b"one", path_in_repo="a.txt", repo_id=REPO)
    with pytest.raises(HfHubHTTPError) as raised:
        alice.create_commit(REPO, [CommitOperationAdd("b.txt", b"two")], commit_message="late", parent_commit=first)
    assert raised.value.response.status_code == 412


def test_writes_need_the_owners_token_with_the_write_role(hub, alice):
    operation = lambda: [CommitOperationAdd("a.txt", b"x")]  # noqa: E731  (operations are single-use)
    for token, status in ((hub.add_user("bob"), 403), (hub.add_user("alice", role="read"), 403), ("hf_" + "Nobody" * 6, 401)):
        with pytest.raises(HfHubHTTPError) as raised:
            HfApi(token=token).create_commit(REPO, operation(), commit_message="intrusion")
        assert raised.value.response.status_code == status
    with pytest.raises(HfHubHTTPError) as raised:
        HfApi(token=hub.add_user("carol")).create_repo("alice/squatted")
    assert raised.value.response.status_code == 403


def test_errors_become_the_clients_exceptions(hub, alice):
    alice.create_repo("alice/hidden", private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info("alice/hidden")
    with pytest.raises(RevisionNotFoundError):
        alice.model_info(REPO, revision="no-such-branch")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "missing.txt", token=alice.token)


def test_history_branches_and_pull_requests_are_kept(hub, alice):
    alice.upload_file(path_or_fileobj=b"one", path_in_repo="a.txt", repo_id=REPO, commit_message="one")
    alice.create_branch(REPO, branch="dev")
    pull = alice.upload_file(path_or_fileobj=b"two", path_in_repo="a.txt", repo_id=REPO, create_pr=True, commit_message="two")

    assert [commit.title for commit in alice.list_repo_commits(REPO)] == ["one", "initial commit"]
    refs = alice.list_repo_refs(REPO, include_pull_requests=True)
    assert sorted(branch.name for branch in refs.branches) == ["dev", "main"]
    assert [ref.ref for ref in refs.pull_requests] == ["refs/pr/1"] == [pull.pr_revision]
    assert hub.files(REPO, "refs/pr/1")["a.txt"] == b"two" and hub.files(REPO)["a.txt"] == b"one"


def test_injected_faults_and_received_bytes_are_reported(hub, alice):
    fault = hub.fail("repo_info", status=503, headers={"Retry-After": "7"})
    answer = httpx2.get(f"{hub.endpoint}/api/models/{REPO}")
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "7") and fault.triggered.is_set()
    assert httpx2.get(f"{hub.endpoint}/api/models/{REPO}").status_code == 200  # once only
    alice.upload_file(path_or_fileobj=b"w" * 5000, path_in_repo="w.bin", repo_id=REPO)
    assert hub.bytes_received("lfs_upload") == 5000
    with pytest.raises(ValueError, match="unknown request kind"):
        hub.fail("comit", status=500)


def test_models_are_listed_by_author_page_by_page_private_ones_to_their_owner(hub, alice, monkeypatch):
    monkeypatch.setattr("tests.hub.server.PAGE_SIZE", 2)
    for name in ("b", "c", "d"):
        alice.create_repo(f"alice/{name}")
    alice.create_repo("alice/hidden", private=True)
    HfApi(token=hub.add_user("bob")).create_repo("bob/other")

    listed = [model.id for model in alice.list_models(author="alice")]
    assert listed == ["alice/b", "alice/c", "alice/d", "alice/hidden", REPO]
    assert len(hub.requests("list_models")) == 3  # two per page, the next one through the Link header
    assert [model.id for model in HfApi(token=False).list_models(author="alice")] == ["alice/b", "alice/c", "alice/d", REPO]
    assert [model.id for model in alice.list_models(author="alice", search="hid")] == ["alice/hidden"]
    assert list(alice.list_models(author="nobody")) == []


def test_pull_requests_through_the_discussions_api(hub, alice):
    """create_commit(create_pr=True) and create_pull_request, commits to refs/pr/N by their author,
    comments, status changes and a merge, read back through huggingface_hub."""
    bob = HfApi(token=hub.add_user("bob"))
    opened = bob.create_commit(REPO, [CommitOperationAdd("a.txt", b"bob")], commit_message="Add a.txt", commit_description="Bob's text", create_pr=True)
    draft = bob.create_pull_request(REPO, "An empty draft", description="Later")
    alice.create_discussion(REPO, "A question")

    assert draft.num == 2 and draft.status == "draft" and draft.target_branch == "refs/heads/main"
    pulls = list(alice.get_repo_discussions(REPO, discussion_type="pull_request"))
    assert [(p.num, p.title, p.status, p.author) for p in pulls] == [(2, "An empty draft", "draft", "bob"), (1, "Add a.txt", "open", "bob")]
    assert [d.num for d in alice.get_repo_discussions(REPO, discussion_type="discussion")] == [3]
    details = alice.get_discussion_details(REPO, opened.pr_num)
    assert [event.type for event in details.events] == ["comment", "commit"] and details.events[0].content == "Bob's text"

    bob.create_commit(REPO, [CommitOperationAdd("b.txt", b"more")], commit_message="Add b.txt", revision=draft.git_reference)
    with pytest.raises(HfHubHTTPError) as raised:  # only the author (or the owner) pushes to a pull request
        HfApi(token=hub.add_user("carol")).create_commit(REPO, [CommitOperationAdd("c.txt", b"x")], commit_message="c", revision="refs/pr/1")
    assert raised.value.response.status_code == 403
    assert alice.get_discussion_details(REPO, 2).status == "open"
    alice.comment_discussion(REPO, 2, "Thanks!")
    with pytest.raises(HfHubHTTPError):
        HfApi(token=hub.add_user("carol")).change_discussion_status(REPO, 2, "closed")
    bob.change_discussion_status(REPO, 2, "closed", comment="Not needed")
    assert [event.type for event in alice.get_discussion_details(REPO, 2).events] == ["comment", "commit", "comment", "status-change", "comment"]
    assert [p.num for p in alice.get_repo_discussions(REPO, discussion_status="open")] == [3, 1]

    alice.merge_pull_request(REPO, 1)
    assert hub.files(REPO)["a.txt"] == b"bob" and alice.get_discussion_details(REPO, 1).status == "merged"
    with pytest.raises(HfHubHTTPError) as raised:
        bob.create_commit(REPO, [CommitOperationAdd("a.txt", b"late")], commit_message="late", revision="refs/pr/1")
    assert raised.value.response.status_code == 403
    alice.create_repo("alice/secret", private=True)
    with pytest.raises(RepositoryNotFoundError):
        list(bob.get_repo_discussions("alice/secret"))

BAD_METADATA = {
    "not-yaml": ("license: [mit\n", "Invalid YAML"),
    "not-a-mapping": ("- license\n", "not a mapping"),
    "unknown-license": ("license: Apache 2.0\n", '"license" must be one of the Hub\'s license ids'),
    "language-name": ("language:\n- English\n", '"language" must be ISO 639-1, 639-2 or 639-3 codes'),
    "local-base-model": ("base_model: /home/ada/models/gpt2\n", '"base_model[0]" with value "/home/ada/models/gpt2" is not valid'),
    "model-index-without-dataset-name": (
        "model-index:\n- name: x\n  results:\n  - task: {type: text-classification}\n    dataset: {type: sst2}\n"
        "    metrics: [{type: accuracy, value: 0.9}]\n",
        '"model-index"[0].results[0].dataset: needs a type and a name',
    ),
}


@pytest.mark.parametrize("case", BAD_METADATA)
def test_card_metadata_the_hub_refuses_is_refused_by_validation_and_by_the_commit(hub, alice, case):
    from huggingface_hub import ModelCard

    metadata, says = BAD_METADATA[case]
    card = f"---\n{metadata}---\n\n# A card\n"
    checked = httpx2.post(f"{hub.endpoint}/api/validate-yaml", json={"content": card, "repoType": "model"}, headers={"Accept": "text/plain"})
    assert checked.status_code == 400 and says in checked.text
    with pytest.raises(ValueError, match=re.escape(says)):
        HfApi(token=alice.token)._validate_yaml(card)  # the check create_commit (and hubcard's publish) runs first
    if case in ("unknown-license", "language-name", "local-base-model"):  # ModelCard re-writes the others before sending
        with pytest.raises(ValueError, match=re.escape(says)):
            ModelCard(card).validate()
    answer = httpx2.post(
        f"{hub.endpoint}/api/models/{REPO}/commit/main",
        content=commit_lines({"key": "file", "value": {"path": "README.md", "content": card, "encoding": "utf-8"}}),
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert answer.status_code == 400 and "Invalid metadata in README.md" in answer.headers["X-Error-Message"]
    good = "---\nlicense: mit\nlanguage: [en, fra]\nbase_model: openai-community/gpt2\n---\n\n# A card\n"
    ModelCard(good).validate()


def test_a_xet_write_token_is_answered_as_the_hub_does_and_its_faults_are_injectable(hub, alice):
    url = f"{hub.endpoint}/api/models/{REPO}/xet-write-token/main"
    answer = httpx2.get(url, headers={"Authorization": f"Bearer {alice.token}"})
    assert answer.status_code == 200
    token = answer.json()
    assert token["casUrl"] == answer.headers["X-Xet-Cas-Url"] == f"{hub.endpoint}/_xet"
    assert token["accessToken"] == answer.headers["X-Xet-Access-Token"] and int(answer.headers["X-Xet-Token-Expiration"]) == token["exp"]
    assert httpx2.get(url).status_code == 401
    assert httpx2.get(url, headers={"Authorization": f"Bearer {hub.add_user('bob')}"}).status_code == 403
    assert httpx2.post(f"{token['casUrl']}/v1/xorbs/default/abc", content=b"chunk").status_code == 503  # no Xet storage here
    hub.fail("xet_token", status=500)
    assert httpx2.get(url, headers={"Authorization": f"Bearer {alice.token}"}).status_code == 500


def test_organizations_choose_the_default_visibility_and_who_may_write(hub):
    alice, carol = hub.add_user("alice"), hub.add_user("carol")
    hub.add_org("course", {"alice": "contributor", "carol": "read"}, private_by_default=True)
    HfApi(token=alice).create_repo("course/hw1")
    HfApi(token=alice).create_repo("course/hw2", private=False)
    assert hub.repo("course/hw1").private and not hub.repo("course/hw2").private
    HfApi(token=alice).upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id="course/hw1")  # a contributor's own repo
    with pytest.raises(HfHubHTTPError) as raised:
        HfApi(token=carol).create_repo("course/hw3")
    assert raised.value.response.status_code == 403
    me = HfApi(token=alice).whoami()
    assert me["orgs"] == [{"type": "org", "name": "course", "fullname": "course", "roleInOrg": "contributor"}]
    scoped = hub.add_user("dave", role="fineGrained", scopes={"dave": ("repo.write",)})
    assert HfApi(token=scoped).whoami()["auth"]["accessToken"]["fineGrained"]["scoped"][0]["permissions"] == ["repo.write"]
    HfApi(token=scoped).create_repo("dave/ok")
    with pytest.raises(HfHubHTTPError):
        HfApi(token=hub.add_user("erin", role="fineGrained", scopes={"dave": ("repo.write",)})).create_repo("erin/no")
