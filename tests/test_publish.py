"""`hubcard publish`: the real huggingface_hub client against the loopback Hub (tests/hub/).

The run published is tests/publishable.py's: the seqcls-minilm-lora facts with a real LoRA adapter of
MiniLM saved by peft, real plots, predictions and a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import HfApi, ModelCard, ModelCardData, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError
from jinja2.filters import do_filesizeformat

from hubcard import card, publish
from hubcard.cli import cli
from hubcard.errors import PublishError
from hubcard.rundir import RunDir
from tests.publishable import FIXTURE, make_publishable_run, minilm_path, save_minilm_adapter, with_card_setting

REPO = "alice/minilm-sst2-lora"
FAKE_TOKEN = "hf_" + "Fake" * 8
EXPECTED_FILES = [
    ".gitattributes",
    ".hubcard/manifest.json",
    "README.md",
    "adapter_config.json",
    "adapter_model.safetensors",
    "config.yaml",
    "eval_results.json",
    "plots/confusion_adapter.png",
    "plots/confusion_base.png",
    "plots/loss.png",
    "tokenizer.json",
    "tokenizer_config.json",
]


@pytest.fixture(scope="session")
def adapter(tmp_path_factory) -> Path:
    return save_minilm_adapter(tmp_path_factory.mktemp("minilm-lora") / "adapter")


@pytest.fixture
def alice(hub, monkeypatch) -> str:
    """Alice's token, the one huggingface_hub uses (HF_TOKEN)."""
    token = hub.add_user("alice", FAKE_TOKEN)
    monkeypatch.setenv("HF_TOKEN", token)
    return token


@pytest.fixture
def run(tmp_path, adapter) -> Path:
    return make_publishable_run(tmp_path / "run", adapter, repo_id=REPO)


def snapshot(run: Path) -> dict[str, str]:
    """sha256 of every file of the run directory but the repo view (rebuilt by each publish) and the lock
    file (a killed process leaves it behind, unlocked)."""
    return {
        str(path.relative_to(run)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run.rglob("*"))
        if path.is_file() and RunDir(run).repo_view not in path.parents and path != RunDir(run).lock_file
    }


def invoke(*arguments: str):
    return CliRunner().invoke(cli, list(arguments))


# --- what is published ----------------------------------------------------------------------------


def test_a_run_is_published_in_one_commit_with_its_repo_view_and_nothing_else(hub, alice, run):
    outcome = publish.publish_run(run)

    commits = hub.commits(REPO)
    assert len(commits) == 2  # the Hub's initial commit, then hubcard's one
    files = hub.files(REPO)
    assert sorted(files) == EXPECTED_FILES
    view = RunDir(run).repo_view
    assert all(files[path] == (view / path).read_bytes() for path in EXPECTED_FILES if path != ".gitattributes")
    assert files["adapter_model.safetensors"] == (run / "adapter" / "adapter_model.safetensors").read_bytes()
    assert hub.repo(REPO).commits[commits[0].oid].files["adapter_model.safetensors"].lfs
    assert hub.bytes_received("lfs_upload") == len(files["adapter_model.safetensors"])

    config = json.loads(files["adapter_config.json"])
    assert config["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"  # not the local path
    assert files["README.md"] == (run / "README.md").read_bytes()
    assert json.loads(files["eval_results.json"])["adapter"]["metrics"]["accuracy"] == 0.8532
    assert files["config.yaml"].decode() == card.config_yaml(RunDir(run).read().config)
    assert b"/home/alice" not in files["config.yaml"]
    manifest = json.loads(files[".hubcard/manifest.json"])
    assert list(manifest["files"]) == [p for p in EXPECTED_FILES if not p.startswith(".")]  # what hubcard uploaded, exactly:
    assert all(manifest["files"][path]["sha256"] == hashlib.sha256(files[path]).hexdigest() for path in manifest["files"])
    assert manifest["files"]["README.md"]["blob_id"] == hub.repo(REPO).commits[commits[0].oid].files["README.md"].git_oid
    assert set(manifest["card"]) == {"metadata", "sections"} and "license" in manifest["card"]["metadata"]

    assert commits[0].title == "Upload LoRA adapter for sentence-transformers/all-MiniLM-L6-v2"
    assert "- accuracy: 0.506 -> 0.853 (+0.347 [0.309, 0.386], better)" in commits[0].message

    published = RunDir(run).read().publish
    assert published.repo_id == REPO and published.revision == "main"
    assert published.commit_oid == commits[0].oid == outcome.published.commit_oid
    assert published.url == f"{hub.endpoint}/{REPO}"
    assert outcome.summary().startswith(f"Published {REPO} (branch main) in one commit: 11 added.")


def test_peft_loads_the_published_adapter_and_computes_the_same_logits(hub, alice, run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    publish.publish_run(run)

    def logits(adapter: str | Path) -> torch.Tensor:
        base = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)
        model = PeftModel.from_pretrained(base, adapter).eval()
        inputs = AutoTokenizer.from_pretrained(adapter)(["a gorgeous , witty , seductive movie ."], return_tensors="pt")
        with torch.no_grad():
            return model(**inputs).logits

    downloaded = {record.path.rsplit("/", 1)[-1] for record in hub.requests("resolve") if record.method == "GET"}
    assert torch.equal(logits(REPO), logits(run / "adapter"))
    downloaded = {record.path.rsplit("/", 1)[-1] for record in hub.requests("resolve") if record.method == "GET"} - downloaded
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= downloaded


def test_the_cards_usage_snippet_runs_unmodified_against_the_published_repo(hub, alice, run, capsys):
    """The base model is published to the loopback Hub under its real id: the snippet runs as printed."""
    base_id = "sentence-transformers/all-MiniLM-L6-v2"
    owner = hub.add_user("sentence-transformers")
    HfApi(token=owner).create_repo(base_id)
    HfApi(token=owner).upload_folder(repo_id=base_id, folder_path=minilm_path(), commit_message="MiniLM")
    publish.publish_run(run)

    snippet = card.usage_snippet(RunDir(run).read())
    assert f"base_model_id = {base_id!r}\nadapter_id = {REPO!r}\n" in snippet
    capsys.readouterr()
    exec(compile(snippet, "usage_snippet", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out.strip().splitlines()[-1] in ("negative", "positive")
    downloads = [record.path for record in hub.requests("resolve") if record.method == "GET" and record.status == 200]
    assert any(path.startswith(f"/{base_id}/resolve/") and path.endswith("/model.safetensors") for path in downloads)


# --- idempotence ----------------------------------------------------------------------------------


def test_publishing_an_unchanged_run_again_sends_no_weights_and_makes_no_commit(hub, alice, run):
    publish.publish_run(run)
    before, sent, files = snapshot(run), len(hub.requests()), hub.files(REPO)

    outcome = publish.publish_run(run)

    again = hub.requests()[sent:]
    assert outcome.up_to_date and "already up to date" in outcome.summary()
    assert len(hub.commits(REPO)) == 2
    assert hub.files(REPO) == files
    assert not [record for record in again if record.kind in ("commit", "preupload", "lfs_batch", "lfs_upload")]
    assert sum(record.body_bytes for record in again) < 1000  # paths-info and create_repo only
    assert snapshot(run) == before  # run.json already said so, the card is the same


def test_a_changed_card_uploads_the_card_only(hub, alice, run):
    publish.publish_run(run)
    sent = hub.bytes_received("lfs_upload")
    (run / "README.md").write_text((run / "README.md").read_text(encoding="utf-8") + "\nA note from Alice.\n", encoding="utf-8")

    outcome = publish.publish_run(run)

    changed = {change.path: change.status for change in outcome.changes if change.status != "unchanged"}
    assert changed == {"README.md": "changed", ".hubcard/manifest.json": "changed"}  # the manifest records the new card
    assert hub.bytes_received("lfs_upload") == sent
    assert len(hub.commits(REPO)) == 3
    assert hub.files(REPO)["README.md"].endswith(b"A note from Alice.\n")  # the user's edit is published as is


def test_files_hubcard_wrote_before_are_deleted_and_the_others_kept(hub, alice, run):
    publish.publish_run(run)
    HfApi(token=alice).upload_file(path_or_fileobj=b"Alice's notes", path_in_repo="NOTES.md", repo_id=REPO)
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    del data["plots"]["confusion_base"]
    (run / "run.json").write_text(json.dumps(data), encoding="utf-8")
    (run / "plots" / "confusion_base.png").unlink()
    card.render_run_card(run)

    outcome = publish.publish_run(run)

    assert [change.path for change in outcome.changes if change.status == "deleted"] == ["plots/confusion_base.png"]
    files = hub.files(REPO)
    assert "plots/confusion_base.png" not in files
    assert {"NOTES.md", ".gitattributes", "plots/confusion_adapter.png"} <= set(files)
    assert len(hub.commits(REPO)) == 4


def test_a_card_rendered_for_another_repo_is_rendered_again_for_this_one(hub, alice, tmp_path, adapter):
    """run.json recorded a publish to an earlier repo: hubcard's card named that one."""
    run = make_publishable_run(tmp_path / "run", adapter, repo_id="alice/renamed")
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    data["publish"] = json.loads(FIXTURE.read_text(encoding="utf-8"))["publish"]
    (run / "run.json").write_text(json.dumps(data), encoding="utf-8")
    card.render_run_card(run)
    assert "adapter_id = 'alice/minilm-sst2-lora'" in (run / "README.md").read_text(encoding="utf-8")

    publish.publish_run(run)

    uploaded = hub.files("alice/renamed")["README.md"]
    assert b"adapter_id = 'alice/renamed'" in uploaded and b"alice/minilm-sst2-lora" not in uploaded
    assert (run / "README.md").read_bytes() == uploaded
    assert publish.publish_run(run).up_to_date


# --- publishing again keeps what was edited on the Hub -------------------------------------------------

NOTES = "## My notes\n\nI tried r=4 first: two points worse on SST-2.\n\n"
LIMITATIONS = "It was trained on movie reviews from around 2000 only; sarcasm fools it.\n\n"


def edit_on_the_hub(hub, token: str) -> str:
    """The owner's edits of the published card in the Hub's editor: a section of their own, hubcard's
    Bias section rewritten, Model Card Contact removed, a metadata key added. Returns the card."""
    text = hub.files(REPO)["README.md"].decode()
    start = text.index("## Bias, Risks, and Limitations")
    text = text[:start] + NOTES + "## Bias, Risks, and Limitations\n\n" + LIMITATIONS + text[text.index("### Recommendations") :]
    text = text[: text.index("## Model Card Contact")].replace("\nlicense:", "\nthumbnail: plots/loss.png\nlicense:", 1)
    HfApi(token=token).upload_file(path_or_fileobj=text.encode(), path_in_repo="README.md", repo_id=REPO, commit_message="Edit the card")
    return text


def test_publishing_again_keeps_the_card_edited_on_the_hub_and_updates_hubcards_own_sections(hub, alice, run):
    publish.publish_run(run)
    edit_on_the_hub(hub, alice)
    with_card_setting(run, license="mit")  # the run's card changes too: hubcard's sections must follow

    planned = invoke("publish", str(run), "--dry-run")
    sent = len(hub.requests())
    outcome = publish.publish_run(run)

    assert planned.exit_code == 0 and "edited on the Hub  README.md" in planned.output
    assert "  README.md: 'my notes': written on the Hub, kept" in planned.output
    assert "--force replaces it" in planned.output
    text = hub.files(REPO)["README.md"].decode()
    assert NOTES + "## Bias, Risks, and Limitations\n\n" + LIMITATIONS + "### Recommendations" in text  # word for word, in place
    assert "## Model Card Contact" not in text and "thumbnail: plots/loss.png" in text
    assert "- **License:** `mit`" in text and "\nlicense: mit\n" in text  # hubcard's own, updated
    sent_files = {change.path: change.status for change in outcome.changes if change.sent}
    assert sent_files == {"README.md": "edited on the Hub", ".hubcard/manifest.json": "changed", "config.yaml": "changed"}
    assert "Kept what was edited on the Hub (publish --force replaces it):" in outcome.summary()
    assert "'bias, risks, and limitations': edited on the Hub, kept (hubcard's new text for it is not used)" in outcome.summary()
    assert (run / "README.md").read_text(encoding="utf-8") != text  # the run keeps hubcard's own card
    assert [record.kind for record in hub.writes(sent)] == ["preupload", "commit"]

    sent = len(hub.requests())
    again = publish.publish_run(run)
    assert again.up_to_date and not hub.writes(sent) and hub.files(REPO)["README.md"].decode() == text

    forced = invoke("publish", str(run), "--force")
    assert forced.exit_code == 0, forced.output
    assert hub.files(REPO)["README.md"] == (run / "README.md").read_bytes()


def test_any_other_file_hubcard_uploaded_and_someone_changed_on_the_hub_is_kept(hub, alice, run):
    publish.publish_run(run)
    theirs = b"# my own config, with the learning rate I really used\n"
    api = HfApi(token=alice)
    api.upload_file(path_or_fileobj=theirs, path_in_repo="config.yaml", repo_id=REPO)
    api.upload_file(path_or_fileobj=b"\x89PNG my plot", path_in_repo="plots/confusion_base.png", repo_id=REPO)
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    del data["plots"]["confusion_base"]  # the run no longer makes it: hubcard would delete it
    data["config"]["training"]["learning_rate"] = 0.0005
    (run / "run.json").write_text(json.dumps(data), encoding="utf-8")
    (run / "plots" / "confusion_base.png").unlink()
    card.render_run_card(run)

    outcome = publish.publish_run(run)

    statuses = {change.path: change.status for change in outcome.changes if change.status != "unchanged"}
    assert statuses["config.yaml"] == statuses["plots/confusion_base.png"] == "edited on the Hub"
    files = hub.files(REPO)
    assert files["config.yaml"] == theirs and files["plots/confusion_base.png"] == b"\x89PNG my plot"
    assert "  config.yaml: the whole file, as changed on the Hub" in outcome.summary()
    assert publish.publish_run(run).up_to_date  # still theirs: still kept

    publish.publish_run(run, force=True)
    files = hub.files(REPO)
    assert files["config.yaml"] == (RunDir(run).repo_view / "config.yaml").read_bytes() and "plots/confusion_base.png" not in files


def test_a_card_hubcard_never_uploaded_keeps_what_its_owner_wrote_on_a_first_publish(hub, alice, run):
    """The owner made the repo on the Hub with the default card and wrote its Uses section."""
    text = str(ModelCard.from_template(ModelCardData())).replace("## Uses\n", "## Uses\n\nFor the course's third homework only.\n\n", 1)
    HfApi(token=alice).create_repo(REPO)
    HfApi(token=alice).upload_file(path_or_fileobj=text.encode(), path_in_repo="README.md", repo_id=REPO)

    publish.publish_run(run)

    published = hub.files(REPO)["README.md"].decode()
    uses = published[published.index("## Uses") : published.index("### Direct Use")]
    assert uses.startswith("## Uses\n\nFor the course's third homework only.\n")  # with the template's comment it had
    assert "[More Information Needed]" not in published and published.count("## Uses") == 1


def test_publishing_as_a_pull_request_again_updates_hubcards_pull_request(hub, alice, tmp_path, adapter):
    HfApi(token=alice).create_repo(REPO)
    run = make_publishable_run(tmp_path / "run", adapter, repo_id=REPO, create_pr=True)
    publish.publish_run(run)
    sent = len(hub.requests())

    again = publish.publish_run(run)

    assert not hub.writes(sent) and list(hub.repo(REPO).pull_requests) == [1]
    assert again.summary().startswith(f"hubcard's pull request #1 against {REPO} (branch main) already holds this run")
    with_card_setting(run, license="mit")
    updated = publish.publish_run(run)
    assert updated.proposal.action == "updated" and list(hub.repo(REPO).pull_requests) == [1]
    assert b"license: mit" in hub.files(REPO, "refs/pr/1")["README.md"]
    assert RunDir(run).read().publish.commit_oid == hub.repo(REPO).pull_requests[1]
    assert len(hub.commits(REPO, "main")) == 1  # main untouched throughout


# --- branches, pull requests, private repos --------------------------------------------------------


def test_hub_revision_publishes_to_a_branch_created_from_main(hub, alice, tmp_path, adapter):
    run = make_publishable_run(tmp_path / "run", adapter, repo_id=REPO, revision="experiment")
    outcome = publish.publish_run(run)

    assert sorted(hub.repo(REPO).branches) == ["experiment", "main"]
    assert len(hub.commits(REPO, "main")) == 1
    assert sorted(hub.files(REPO, "experiment")) == EXPECTED_FILES
    assert RunDir(run).read().publish.revision == "experiment"
    assert "(branch experiment)" in outcome.summary()
    assert publish.publish_run(run).up_to_date


def test_create_pr_opens_a_pull_request_and_leaves_main_alone(hub, alice, tmp_path, adapter):
    run = make_publishable_run(tmp_path / "run", adapter, repo_id=REPO, create_pr=True)
    outcome = publish.publish_run(run)

    assert len(hub.commits(REPO, "main")) == 1
    assert list(hub.repo(REPO).pull_requests) == [1]
    assert sorted(hub.files(REPO, "refs/pr/1")) == EXPECTED_FILES
    published = RunDir(run).read().publish
    assert published.pull_request_url == f"{hub.endpoint}/{REPO}/discussions/1"
    assert published.revision == "refs/pr/1"
    assert outcome.summary().startswith(f"Opened a pull request against {REPO} (branch main)")


def test_a_private_repo_is_invisible_without_its_owners_token(hub, alice, tmp_path, adapter):
    repo_id = "alice/private-adapter"  # never downloaded before: no cached copy to fall back on
    run = make_publishable_run(tmp_path / "run", adapter, repo_id=repo_id, private=True)
    publish.publish_run(run)
    bob = hub.add_user("bob")

    assert hub.repo(repo_id).private
    for token in (False, bob):
        with pytest.raises(RepositoryNotFoundError):
            HfApi(token=token).model_info(repo_id)
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(repo_id, "README.md", token=token)
    assert HfApi(token=alice).model_info(repo_id).private
    assert Path(hf_hub_download(repo_id, "README.md", token=alice)).read_bytes() == (run / "README.md").read_bytes()


def test_a_private_run_is_not_published_into_an_existing_public_repo(hub, alice, run, tmp_path, adapter):
    publish.publish_run(run)
    private_run = make_publishable_run(tmp_path / "private", adapter, repo_id=REPO, private=True)

    sent = len(hub.requests())
    with pytest.raises(PublishError, match=f"{REPO} exists and is public, but private was asked"):
        publish.publish_run(private_run)
    assert {record.kind for record in hub.requests()[sent:]} == {"whoami", "repo_info"}  # found before any change
    assert len(hub.commits(REPO)) == 2
    assert "exists and is public" in publish.publish_run(private_run, dry_run=True).summary()


# --- failures -------------------------------------------------------------------------------------


def test_an_upload_cut_midway_is_finished_by_publishing_again_with_one_commit(hub, alice, run):
    """The connection drops in the middle of the weights' upload and the process dies there."""
    before = snapshot(run)
    cut = hub.fail("lfs_upload", drop=True, times=None)
    process = subprocess.Popen([sys.executable, "-m", "hubcard", "publish", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert cut.triggered.wait(timeout=120), "the upload never started"
    finally:
        process.kill()
        process.communicate()
    hub.clear_faults()
    assert 0 < hub.bytes_received("lfs_upload") < (run / "adapter" / "adapter_model.safetensors").stat().st_size
    assert len(hub.commits(REPO)) == 1 and snapshot(run) == before

    publish.publish_run(run)

    assert len(hub.commits(REPO)) == 2
    assert hub.files(REPO)["adapter_model.safetensors"] == (run / "adapter" / "adapter_model.safetensors").read_bytes()


def test_an_upload_that_fails_for_good_names_the_file_and_says_nothing_was_committed(hub, alice, run):
    hub.fail("lfs_upload", status=400, times=None)  # not retried: huggingface_hub retries 5xx, 429 and network errors

    with pytest.raises(PublishError) as raised:
        publish.publish_run(run)

    message = str(raised.value)
    assert message.startswith("Error while uploading 'adapter_model.safetensors' to the Hub. Nothing was committed.")
    assert f"Run `hubcard publish {run}` again to finish" in message
    assert len(hub.requests("lfs_upload")) == 1 and not hub.requests("commit")


def test_an_upload_cut_once_is_retried_by_huggingface_hub(hub, alice, run):
    hub.fail("lfs_upload", drop=True)
    publish.publish_run(run)
    assert [record.status for record in hub.requests("lfs_upload")] == [None, 200]
    assert len(hub.commits(REPO)) == 2


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 429, "headers": {"Retry-After": "1"}},
        {"hang": 30},  # the client gives up after HUBCARD_HUB_TIMEOUT
        {"drop": True, "after": True},  # committed, but the answer is lost: no second commit
    ],
    ids=["500", "429", "timeout", "lost-answer"],
)
def test_a_commit_that_fails_once_is_retried_and_made_exactly_once(hub, alice, run, monkeypatch, fault):
    monkeypatch.setenv("HUBCARD_HUB_TIMEOUT", "1")
    hub.fail("commit", **fault)

    outcome = publish.publish_run(run)

    commits = hub.commits(REPO)
    assert len(commits) == 2
    assert outcome.published.commit_oid == commits[0].oid == RunDir(run).read().publish.commit_oid
    assert sorted(hub.files(REPO)) == EXPECTED_FILES


@pytest.mark.parametrize(
    "kind, fault, message",
    [
        ("commit", {"status": 503}, "The Hub failed (503: injected 503 on commit), also when asked again."),
        ("commit", {"status": 429, "headers": {"Retry-After": "3600"}}, "rate-limiting this account (429 Too Many Requests): wait 3600 s"),
        ("create_repo", {"drop": True}, "The connection to the Hub at http://127.0.0.1:"),
    ],
    ids=["503", "429-long", "network-down"],
)
def test_a_hub_that_keeps_failing_is_reported_with_what_to_do(hub, alice, run, kind, fault, message):
    before = snapshot(run)
    hub.fail(kind, times=None, **fault)

    result = invoke("publish", str(run))

    assert result.exit_code == 1
    assert message in result.stderr
    assert f"un `hubcard publish {run}` again" in result.stderr
    assert "Traceback" not in result.output
    assert snapshot(run) == before
    assert hub.repo(REPO) is None or len(hub.commits(REPO)) == 1


def test_a_token_the_hub_refuses_is_reported_without_the_token(hub, run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)  # nobody's token on this Hub

    result = invoke("publish", str(run))

    assert result.exit_code == 1
    assert "The Hub refused the token (401 Unauthorized: Invalid credentials in Authorization header)" in result.stderr
    assert "HF_TOKEN" in result.stderr and "hf auth login" in result.stderr
    assert FAKE_TOKEN not in result.output


@pytest.mark.parametrize("bob_has_the_repo", [False, True])
def test_publishing_into_another_accounts_namespace_is_forbidden(hub, alice, tmp_path, adapter, bob_has_the_repo):
    bob = hub.add_user("bob")
    if bob_has_the_repo:
        HfApi(token=bob).create_repo("bob/minilm")
    run = make_publishable_run(tmp_path / "run", adapter, repo_id="bob/minilm")
    sent = len(hub.requests())

    with pytest.raises(PublishError) as raised:
        publish.publish_run(run)

    verb = "write to bob/minilm" if bob_has_the_repo else "create bob/minilm (in the namespace 'bob')"
    assert f"The token of alice may not {verb}. Publish to your own namespace (--repo-id alice/minilm)" in str(raised.value)
    assert {record.kind for record in hub.requests()[sent:]} == {"whoami", "repo_info"}  # checked, nothing tried
    assert RunDir(run).read().publish is None


def test_without_a_token_nothing_is_sent_and_the_error_says_how_to_get_one(hub, run, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PublishError, match=r"No Hugging Face token: publishing .* Set HF_TOKEN .* or run `hf auth login`"):
        publish.publish_run(run)
    assert hub.requests() == []


@pytest.mark.parametrize("where", ["README.md", "adapter/tokenizer_config.json"])
def test_a_file_holding_something_like_a_token_blocks_the_upload(hub, alice, run, where):
    leaked = run / where
    leaked.write_text(leaked.read_text(encoding="utf-8").replace("\n", "\nhf_" + "Leak" * 8 + "\n", 1), encoding="utf-8")

    with pytest.raises(PublishError, match=f"Refusing to publish: {Path(where).name} holds a string that looks like a Hugging Face token"):
        publish.publish_run(run)

    assert hub.requests() == []
    assert not RunDir(run).repo_view.exists()


def test_the_token_is_never_uploaded_logged_or_printed(hub, alice, run):
    result = subprocess.run(
        [sys.executable, "-m", "hubcard", "publish", str(run)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_VERBOSITY": "debug", "HF_DEBUG": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "Published" in result.stdout and "Request" in result.stderr  # huggingface_hub logged its requests
    assert FAKE_TOKEN not in result.stdout + result.stderr
    assert not [path for path in hub.stored_objects() if FAKE_TOKEN.encode() in path.read_bytes()]
    assert not [path for path in run.rglob("*") if path.is_file() and FAKE_TOKEN.encode() in path.read_bytes()]


# --- the dry run and the command ------------------------------------------------------------------


def test_dry_run_without_a_token_prints_the_plan_and_leaves_the_view(hub, run, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    result = invoke("publish", str(run), "--dry-run")

    assert result.exit_code == 0, result.output
    assert f"Dry run for {REPO} (branch main)" in result.output
    assert f"{REPO} does not exist yet" in result.output
    lines = result.output.splitlines()
    for path in EXPECTED_FILES[1:]:
        size = do_filesizeformat((RunDir(run).repo_view / path).stat().st_size)
        assert [line for line in lines if line.split()[:2] == ["added", path] and line.endswith(size)], path
    assert "11 files" in result.output and "11 added" in result.output
    assert sorted(str(p.relative_to(RunDir(run).repo_view)) for p in RunDir(run).repo_view.rglob("*") if p.is_file()) == EXPECTED_FILES[1:]
    assert {record.kind for record in hub.requests()} <= {"repo_info"}


def test_dry_run_compares_with_the_published_repo(hub, alice, run, monkeypatch):
    publish.publish_run(run)
    (run / "README.md").write_text("---\nlicense: mit\n---\n\n# Rewritten\n", encoding="utf-8")
    (run / "plots" / "confusion_base.png").unlink()
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    del data["plots"]["confusion_base"]
    (run / "run.json").write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.delenv("HF_TOKEN")

    outcome = publish.publish_run(run, dry_run=True)

    statuses = {change.path: change.status for change in outcome.changes}
    assert statuses["README.md"] == statuses[".hubcard/manifest.json"] == "changed"
    assert statuses["plots/confusion_base.png"] == "deleted"
    assert "11 files, 1.1 MB: 2 changed, 8 unchanged, 1 deleted." in outcome.summary()
    assert len(hub.commits(REPO)) == 2


def test_publish_command_imports_no_heavy_library(hub, run):
    command = [sys.executable, "-X", "importtime", "-m", "hubcard", "publish", str(run), "--dry-run"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "huggingface_hub" in imported
    assert not imported & {"torch", "transformers", "peft", "datasets", "accelerate"}
