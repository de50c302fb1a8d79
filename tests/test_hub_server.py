"""The loopback Hub is as strict as the Hub where the tests rely on it (tests/hub/README.md)."""

from __future__ import annotations

import base64
import hashlib
import json

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
