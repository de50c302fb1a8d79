"""Issue 18: publishing right the first time, through the `hubcard` command against the loopback Hub.

The target (repo, branch, pull request, visibility) is chosen when publishing and the card is rendered
for it; a run that will publish is checked before the base model is loaded; a dry run says why it is
one; the base model's Hub id is required in what is published. "Nothing changed on the Hub" is read
from the server's request log: no request of a kind that changes a repo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import HfApi

from hubcard.card import ADAPTER_ID_STAND_IN
from hubcard.cli import cli
from hubcard.rundir import RunDir
from tests.publishable import make_publishable_run
from tests.test_publish import adapter, alice, snapshot  # noqa: F401  (fixtures)
from tests.tiny import config_dict, tiny_model, write_config

UNPUBLISHED = "This adapter is not published yet"
BASE_ID = "sentence-transformers/all-MiniLM-L6-v2"


def hubcard(*arguments: str):
    return CliRunner().invoke(cli, [str(argument) for argument in arguments])


@pytest.fixture
def dry_run(tmp_path, adapter) -> Path:
    """A run trained without hub.repo_id: its card was rendered before it had a repo."""
    return make_publishable_run(tmp_path / "run", adapter, repo_id=None)


# --- the target is chosen when publishing -----------------------------------------------------------


def test_publish_repo_id_publishes_a_run_that_had_no_repo_with_a_card_rendered_for_it(hub, alice, dry_run):
    assert UNPUBLISHED in (dry_run / "README.md").read_text(encoding="utf-8")

    result = hubcard("publish", dry_run, "--repo-id", "alice/qs")

    assert result.exit_code == 0, result.output
    card = hub.files("alice/qs")["README.md"].decode()
    assert UNPUBLISHED not in card and ADAPTER_ID_STAND_IN not in card
    assert "adapter_id = 'alice/qs'\n" in card and "model = PeftModel.from_pretrained(model, adapter_id)\n" in card
    assert "repo_id: alice/qs" in hub.files("alice/qs")["config.yaml"].decode()
    record = RunDir(dry_run).read()
    assert record.publish.repo_id == "alice/qs" and record.config["hub"]["repo_id"] == "alice/qs"  # recorded
    assert (dry_run / "README.md").read_text(encoding="utf-8") == card  # the run's card is the published one

    again = hubcard("publish", dry_run)  # run.json now supplies the target

    assert again.exit_code == 0 and "alice/qs (branch main) is already up to date" in again.output
    assert len(hub.commits("alice/qs")) == 2


def test_a_branch_and_a_pull_request_are_publish_options_and_the_card_loads_that_branch(hub, alice, dry_run):
    HfApi(token=alice).create_repo("alice/qs")

    branch = hubcard("publish", dry_run, "--repo-id", "alice/qs", "--revision", "experiment")

    assert branch.exit_code == 0, branch.output
    card = hub.files("alice/qs", "experiment")["README.md"].decode()
    assert "model = PeftModel.from_pretrained(model, adapter_id, revision='experiment')" in card
    assert "AutoTokenizer.from_pretrained(adapter_id, revision='experiment')" in card
    assert len(hub.commits("alice/qs", "main")) == 1 and RunDir(dry_run).read().publish.revision == "experiment"

    pull = hubcard("publish", dry_run, "--repo-id", "alice/qs", "--revision", "main", "--pr")

    assert pull.exit_code == 0, pull.output
    assert f"Pull request: {hub.endpoint}/alice/qs/discussions/1" in pull.output
    # Another repo: the pull request and the branch asked for alice/qs are not carried over to it.
    other = hubcard("publish", dry_run, "--repo-id", "alice/other")
    assert other.exit_code == 0, other.output
    assert "README.md" in hub.files("alice/other", "main") and not hub.repo("alice/other").discussions
    card = hub.files("alice/qs", "refs/pr/1")["README.md"].decode()  # written for main, where it is merged
    assert "model = PeftModel.from_pretrained(model, adapter_id)\n" in card and "revision='experiment'" not in card


def test_visibility_is_sent_only_when_asked(hub, alice, tmp_path, adapter):
    """An organization whose new repos are private: hub.private unset keeps its default."""
    hub.add_org("course", {"alice": "write"}, private_by_default=True)
    run = make_publishable_run(tmp_path / "run", adapter, repo_id="course/hw3")
    assert RunDir(run).read().config["hub"]["private"] is None  # the default: not set

    assert hubcard("publish", run).exit_code == 0
    assert hub.repo("course/hw3").private  # the organization's default
    assert RunDir(run).read().publish.private is True

    public = hubcard("publish", run, "--repo-id", "course/hw3-public", "--public")
    assert public.exit_code == 0, public.output
    assert not hub.repo("course/hw3-public").private
    mine = hubcard("publish", run, "--repo-id", "alice/hw3", "--private")
    assert mine.exit_code == 0, mine.output
    assert hub.repo("alice/hw3").private
    # Another repo: the visibility asked for alice/hw3 is not carried over to it.
    other = hubcard("publish", run, "--repo-id", "alice/hw3-copy")
    assert other.exit_code == 0, other.output
    assert not hub.repo("alice/hw3-copy").private


def test_a_card_edited_by_hand_is_not_thrown_away_nor_published_under_another_repo(hub, alice, dry_run):
    edited = (dry_run / "README.md").read_text(encoding="utf-8").replace("## Uses", "## Uses\n\nWritten by Alice.\n", 1)
    (dry_run / "README.md").write_text(edited, encoding="utf-8")

    refused = hubcard("publish", dry_run, "--repo-id", "alice/qs")

    assert refused.exit_code == 1
    assert "README.md was edited by hand" in refused.stderr and "would name the wrong repo" in refused.stderr
    assert "Traceback" not in refused.output and hub.writes() == [] and hub.repo("alice/qs") is None
    assert (dry_run / "README.md").read_text(encoding="utf-8") == edited  # kept as it is

    named = edited.replace(UNPUBLISHED, "Published").replace(ADAPTER_ID_STAND_IN, "alice/qs")
    (dry_run / "README.md").write_text(named, encoding="utf-8")
    accepted = hubcard("publish", dry_run, "--repo-id", "alice/qs")

    assert accepted.exit_code == 0, accepted.output
    assert hub.files("alice/qs")["README.md"].decode() == named  # the person's card, as written


# --- train-and-publish: the config in force decides, and is checked before training ------------------


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Path:
    return tiny_model("bert", tmp_path_factory.mktemp("tiny-bert") / "model")


def tiny_config(bert: Path, folder: Path, **sections) -> Path:
    raw = config_dict(bert, "sequence-classification", folder / "run", **sections)
    raw.setdefault("card", {})["license"] = "mit"
    return write_config(raw, folder)


def test_hub_overrides_of_an_already_trained_run_are_used_and_recorded(hub, alice, bert, tmp_path, monkeypatch):
    """The reported case: the quickstart ends in a dry run; `hub.repo_id=...` on the command line then publishes it."""
    config = tiny_config(bert, tmp_path, model={"hub_id": "someone/tiny-bert"})
    monkeypatch.delenv("HF_TOKEN")
    first = hubcard("train-and-publish", config)
    assert first.exit_code == 0, first.output
    assert "Dry run (no repo to publish to: set hub.repo_id (in the config, or hub.repo_id=ID on the command line), or run `hubcard publish RUN_DIR --repo-id ID`)" in first.output
    monkeypatch.setenv("HF_TOKEN", alice)
    trained = RunDir(tmp_path / "run").read().stages["train"]

    second = hubcard("train-and-publish", config, "hub.repo_id=alice/tiny")

    assert second.exit_code == 0, second.output
    assert "Published alice/tiny (branch main) in one commit" in second.output
    assert RunDir(tmp_path / "run").read().stages["train"] == trained  # not trained again
    card = hub.files("alice/tiny")["README.md"].decode()
    assert UNPUBLISHED not in card and "adapter_id = 'alice/tiny'" in card
    assert json.loads(hub.files("alice/tiny")["adapter_config.json"])["base_model_name_or_path"] == "someone/tiny-bert"
    assert RunDir(tmp_path / "run").read().publish.repo_id == "alice/tiny"


PREFLIGHT = {
    "no-token": ({}, "No Hugging Face token: publishing to alice/tiny needs one. Set HF_TOKEN"),
    "refused-token": ({"token": "hf_" + "Nobody" * 6}, "The Hub refused the token (401 Unauthorized: Invalid credentials"),
    "read-only-token": ({"role": "read"}, "The token of alice is read-only: publishing needs a token with the write role"),
    "another-namespace": ({"repo_id": "bob/tiny"}, "The token of alice may not create bob/tiny (in the namespace 'bob')"),
    "org-reader": ({"repo_id": "course/tiny", "org_role": "read"}, "may not create course/tiny (in the namespace 'course')"),
    "fine-grained-elsewhere": ({"scopes": {"bob": ("repo.write",)}}, "The token of alice may not create alice/tiny"),
    "public-repo-asked-private": ({"existing": False, "private": True}, "alice/tiny exists and is public, but private was asked"),
    "private-repo-asked-public": ({"existing": True, "private": False}, "alice/tiny exists and is private, but public was asked"),
    "local-base-model": ({"hub_id": None}, "model.name_or_path is the local folder"),
}


@pytest.mark.parametrize("case", PREFLIGHT)
def test_a_run_that_cannot_publish_stops_before_the_model_is_loaded(hub, bert, tmp_path, monkeypatch, case):
    setup, says = PREFLIGHT[case]
    repo_id = setup.get("repo_id", "alice/tiny")
    if "existing" in setup:
        hub.create_repo(repo_id, private=setup["existing"])
    hub.add_user("bob")
    hub.add_org("course", {"alice": setup.get("org_role", "write")})
    role = "fineGrained" if "scopes" in setup else setup.get("role", "write")
    token = hub.add_user("alice", role=role, scopes=setup.get("scopes"))
    if case != "no-token":
        monkeypatch.setenv("HF_TOKEN", setup.get("token", token))
    hub_section = {"repo_id": repo_id} | ({"private": setup["private"]} if "private" in setup else {})
    model = {} if setup.get("hub_id", True) is None else {"hub_id": "someone/tiny-bert"}
    config = tiny_config(bert, tmp_path, model=model, hub=hub_section)
    sent = len(hub.requests())

    result = hubcard("train-and-publish", config)

    assert result.exit_code == 1
    assert says in result.stderr, result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing trained, the model never loaded
    assert hub.writes(sent) == []


def test_the_same_checks_pass_for_an_organization_member_and_a_scoped_fine_grained_token(hub, bert, tmp_path, monkeypatch):
    hub.add_org("course", {"alice": "contributor"})
    monkeypatch.setenv("HF_TOKEN", hub.add_user("alice", role="fineGrained", scopes={"course": ("repo.content.read", "repo.write")}))
    config = tiny_config(bert, tmp_path, model={"hub_id": "someone/tiny-bert"}, hub={"repo_id": "course/tiny"})

    result = hubcard("train-and-publish", config)

    assert result.exit_code == 0, result.output
    assert len(hub.commits("course/tiny")) == 2


def test_offline_mode_with_a_repo_id_is_reported_before_training(hub, alice, bert, tmp_path):
    config = tiny_config(bert, tmp_path, model={"hub_id": "someone/tiny-bert"}, hub={"repo_id": "alice/tiny"})
    result = subprocess.run(
        [sys.executable, "-m", "hubcard", "train-and-publish", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 1
    assert "HF_HUB_OFFLINE=1 is set: hubcard cannot reach the Hub to publish to alice/tiny" in result.stderr
    assert "--dry-run" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists() and hub.requests() == []


# --- dry runs say why --------------------------------------------------------------------------------


def test_a_dry_run_says_why_it_is_one(hub, tmp_path, adapter, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    run = make_publishable_run(tmp_path / "run", adapter, repo_id="alice/qs")

    asked = hubcard("publish", run, "--dry-run")

    assert asked.exit_code == 0, asked.output
    assert f"Dry run for alice/qs (branch main) at {hub.endpoint}/alice/qs (asked for with --dry-run)" in asked.output
    assert "No Hugging Face token was found: publishing needs one." in asked.output
    no_repo = hubcard("publish", make_publishable_run(tmp_path / "other", adapter, repo_id=None))
    assert no_repo.exit_code == 0 and "Dry run (no repo to publish to: set hub.repo_id (in the config, or hub.repo_id=ID on the command line), or run `hubcard publish RUN_DIR --repo-id ID`)" in no_repo.output
    assert hub.writes() == []


# --- the base model's Hub id --------------------------------------------------------------------------


def test_a_run_whose_base_model_has_no_hub_id_asks_for_it_and_publishes_with_base_model(hub, alice, tmp_path, adapter):
    run = make_publishable_run(tmp_path / "run", adapter, repo_id="alice/local-base")
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    data["model"]["hub_id"] = None  # a local folder, no model.hub_id
    (run / "run.json").write_text(json.dumps(data), encoding="utf-8")

    asked = hubcard("publish", run)

    assert asked.exit_code == 1
    assert "The base model (model) has no Hub id" in asked.stderr and f"hubcard publish {run} --base-model OWNER/NAME" in asked.stderr
    assert hub.requests() == []  # found before anything was sent
    assert "has no Hub id" in hubcard("publish", run, "--dry-run").output

    given = hubcard("publish", run, "--base-model", BASE_ID)

    assert given.exit_code == 0, given.output
    files = hub.files("alice/local-base")
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == BASE_ID
    assert f"base_model: {BASE_ID}" in files["README.md"].decode()
    assert RunDir(run).read().model.hub_id == BASE_ID  # recorded


# --- nothing half-done ---------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new-repo", "existing-repo"])
def test_a_card_the_hub_refuses_stops_publishing_before_anything_changes(hub, alice, tmp_path, adapter, existing):
    """hubcard's own check passes, the Hub's refuses (its rules can be newer than hubcard's lists)."""
    run = make_publishable_run(tmp_path / "run", adapter, repo_id="alice/qs")
    if existing:
        HfApi(token=alice).create_repo("alice/qs")
    before, sent = snapshot(run), len(hub.requests())
    hub.fail("validate_yaml", status=400)

    result = hubcard("publish", run)

    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "The Hub refused the card's metadata (README.md's front matter), so nothing was sent to alice/qs" in result.stderr
    assert "Invalid metadata in README.md" in result.stderr
    assert hub.requests("validate_yaml") and hub.writes(sent) == []
    assert hub.bytes_received("lfs_upload") == 0
    assert (hub.repo("alice/qs") is not None) == existing and snapshot(run) == before


@pytest.mark.parametrize(
    "old, new, named",
    [
        ("model-index:", "model-index:\n- results: nothing\n  name: broken\nold-index:", "model-index"),
        ("license: apache-2.0", "license: Apache 2.0", "apache-2.0"),
    ],
    ids=["model-index-unreadable", "license-misspelt"],
)
def test_metadata_the_hub_would_refuse_is_found_locally_before_any_request(hub, alice, tmp_path, adapter, old, new, named):
    run = make_publishable_run(tmp_path / "run", adapter, repo_id="alice/qs")
    card = (run / "README.md").read_text(encoding="utf-8")
    assert old in card
    (run / "README.md").write_text(card.replace(old, new, 1), encoding="utf-8")

    result = hubcard("publish", run)

    assert result.exit_code == 1
    assert "The card's metadata (README.md's front matter) would be refused by the Hub; nothing was sent" in result.stderr
    assert named in result.stderr and hub.requests() == []


@pytest.mark.parametrize("existing", [False, True], ids=["new-repo", "existing-repo"])
def test_a_publish_that_fails_removes_the_repo_it_created_and_never_one_that_existed(hub, alice, tmp_path, adapter, existing):
    run = make_publishable_run(tmp_path / "run", adapter, repo_id="alice/qs")
    if existing:
        HfApi(token=alice).create_repo("alice/qs")
    before = snapshot(run)
    hub.fail("commit", status=503, times=None)

    result = hubcard("publish", run)

    assert result.exit_code == 1 and "The Hub failed (503" in result.stderr
    assert snapshot(run) == before
    if existing:
        assert len(hub.commits("alice/qs")) == 1 and not hub.requests("delete_repo")
        assert "deleted it again" not in result.stderr
    else:
        assert hub.repo("alice/qs") is None and [record.status for record in hub.requests("delete_repo")] == [200]
        assert "hubcard had created alice/qs for this publish and deleted it again: nothing of this publish is left" in result.stderr
    hub.clear_faults()
    assert hubcard("publish", run).exit_code == 0 and len(hub.commits("alice/qs")) == 2


def test_a_branch_created_by_a_publish_that_fails_is_removed(hub, alice, tmp_path, adapter):
    HfApi(token=alice).create_repo("alice/qs")
    run = make_publishable_run(tmp_path / "run", adapter, repo_id="alice/qs", revision="experiment")
    hub.fail("commit", status=503, times=None)

    result = hubcard("publish", run)

    assert result.exit_code == 1
    assert "hubcard had created the branch experiment of alice/qs for this publish and deleted it again" in result.stderr
    assert sorted(hub.repo("alice/qs").branches) == ["main"] and len(hub.commits("alice/qs")) == 1
