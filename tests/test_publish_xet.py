"""Issue 18: the Xet upload path, with Xet left on against the loopback Hub.

huggingface_hub uploads through Xet storage whenever hf_xet is installed, unless HF_HUB_DISABLE_XET=1
(the tests' default, read into huggingface_hub.constants at import). Here it is left on: in a
subprocess whose environment lacks HF_HUB_DISABLE_XET (what a user gets), and in-process by turning
`constants.HF_HUB_DISABLE_XET` off, which is what huggingface_hub's `is_xet_available()` reads at each
upload. The loopback Hub answers the Xet write-token request (GET /api/models/{repo}/xet-write-token/
{revision}) as the Hub does, or with an error, or drops it; its Xet storage answers 503 to everything
(a Xet store that cannot be reached). hf_xet's own retries are kept few and quick by
HF_XET_CLIENT_RETRY_* (tests/hub/fixtures.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import HfApi, constants

from hubcard.cli import cli
from tests.publishable import make_publishable_run
from tests.test_publish import EXPECTED_FILES, adapter, alice, snapshot  # noqa: F401  (fixtures)

REPO = "alice/xet-adapter"
CHANGES = {"create_repo", "preupload", "lfs_batch", "lfs_upload", "commit", "branch"}


@pytest.fixture
def run(tmp_path, adapter) -> Path:
    return make_publishable_run(tmp_path / "run", adapter, repo_id=REPO)


@pytest.fixture
def xet_on(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)


def hubcard(*arguments: str):
    return CliRunner().invoke(cli, [str(argument) for argument in arguments])


XET_FAILURES = {
    # fault on the write-token request, what the message says, how many token requests (hf_xet retries 2 more)
    "storage-unreachable": (None, "Xet storage could not be reached or kept failing", 1),
    "token-500": ({"status": 500}, "Server error: Request error: HTTP status server error (500", 3),
    "token-dropped": ({"drop": True}, "Network error", 3),
    "token-refused": ({"status": 401}, "Xet storage refused it (HTTP 401)", 1),
}


@pytest.mark.parametrize("case", XET_FAILURES)
def test_a_xet_failure_is_reported_with_the_fallback_and_the_next_publish_makes_one_commit(hub, alice, run, xet_on, monkeypatch, case):
    fault, says, token_requests = XET_FAILURES[case]
    if fault:
        hub.fail("xet_token", times=None, **fault)
    before = snapshot(run)

    failed = hubcard("publish", run)

    assert failed.exit_code == 1
    assert "The upload through Xet storage failed (ConnectionError: " in failed.stderr and says in failed.stderr
    assert f"upload over plain HTTP instead: `HF_HUB_DISABLE_XET=1 hubcard publish {run}`" in failed.stderr
    assert "Traceback" not in failed.output
    assert len(hub.requests("xet_token")) == token_requests  # hf_xet's retries where they are safe, none on a refusal
    assert not hub.requests("commit") and not hub.requests("lfs_upload")
    assert hub.repo(REPO) is None and "deleted it again" in failed.stderr  # no new empty repo left behind
    assert snapshot(run) == before

    hub.clear_faults()
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    again = hubcard("publish", run)

    assert again.exit_code == 0, again.output
    assert len(hub.commits(REPO)) == 2 and sorted(hub.files(REPO)) == EXPECTED_FILES


def test_a_xet_failure_leaves_an_existing_repo_as_it_was(hub, alice, run, xet_on, tmp_path, adapter):
    HfApi(token=alice).create_repo(REPO)
    files = hub.files(REPO)

    failed = hubcard("publish", run)

    assert failed.exit_code == 1 and "Xet storage" in failed.stderr
    assert hub.files(REPO) == files and len(hub.commits(REPO)) == 1 and not hub.requests("delete_repo")


def test_xet_is_on_for_a_user_who_did_not_turn_it_off(hub, alice, run):
    """The real process, with HF_HUB_DISABLE_XET unset: huggingface_hub picks Xet by itself."""
    environment = {name: value for name, value in os.environ.items() if name != "HF_HUB_DISABLE_XET"}
    before = snapshot(run)

    result = subprocess.run([sys.executable, "-m", "hubcard", "publish", str(run)], capture_output=True, text=True, env=environment)

    assert result.returncode == 1
    assert "The upload through Xet storage failed" in result.stderr and "HF_HUB_DISABLE_XET=1" in result.stderr
    assert "Traceback" not in result.stderr
    assert [record.status for record in hub.requests("xet_token")] == [200]  # Xet was really taken
    assert not hub.requests("lfs_batch") and not hub.requests("commit") and hub.repo(REPO) is None
    assert snapshot(run) == before

    fallback = subprocess.run(
        [sys.executable, "-m", "hubcard", "publish", str(run)], capture_output=True, text=True, env={**environment, "HF_HUB_DISABLE_XET": "1"}
    )
    assert fallback.returncode == 0, fallback.stderr
    assert len(hub.commits(REPO)) == 2 and hub.requests("lfs_upload")
