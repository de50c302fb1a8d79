"""`hubcard render-card --repo`: refreshing the card of an adapter repo on the loopback Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, ModelCardData

from hubcard.cli import cli
from hubcard.errors import CardError, PublishError
from hubcard.lint import PLACEHOLDER, check_card, split_front_matter
from hubcard.refresh import refresh_repo_card
from tests.publishable import save_minilm_adapter

REPO = "alice/old-homework-adapter"
ADAPTER_CONFIG = {
    "base_model_name_or_path": "sentence-transformers/all-MiniLM-L6-v2",
    "peft_type": "LORA",
    "task_type": "SEQ_CLS",
    "r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.1,
    "target_modules": ["value", "query"],
    "use_dora": False,
}
WRITTEN = """## What I learned

LoRA with `r=8` was enough for this homework: the adapter reaches 85% accuracy on SST-2.

- Training took 7 minutes on my laptop.
- [More Information Needed] about the learning rate, which I did not tune.
"""


@pytest.fixture
def alice(hub, monkeypatch) -> str:
    token = hub.add_user("alice")
    monkeypatch.setenv("HF_TOKEN", token)
    return token


def upload(token: str, repo_id: str, files: dict[str, bytes]) -> None:
    api = HfApi(token=token)
    api.create_repo(repo_id, exist_ok=True)
    api.create_commit(repo_id, [CommitOperationAdd(path, content) for path, content in files.items()], commit_message="Upload")


def default_card_with_a_written_section() -> str:
    """The Hub's default card, never filled in, plus one section its owner wrote."""
    text = str(ModelCard.from_template(ModelCardData()))
    return text.replace("## Training Details", WRITTEN + "\n## Training Details")


@pytest.fixture
def old_repo(alice) -> str:
    upload(
        alice,
        REPO,
        {
            "README.md": default_card_with_a_written_section().encode(),
            "adapter_config.json": json.dumps(ADAPTER_CONFIG).encode(),
            "adapter_model.safetensors": b"\0" * 1000,
        },
    )
    return REPO


def test_the_hub_default_card_loses_every_placeholder_and_keeps_what_its_owner_wrote(hub, old_repo, tmp_path):
    commits = len(hub.commits(REPO))

    outcome = refresh_repo_card(REPO, output=tmp_path / "card.md")

    text = (tmp_path / "card.md").read_text(encoding="utf-8")
    assert text == outcome.text
    assert not PLACEHOLDER.search(text)
    assert check_card(text) == []
    kept = WRITTEN.replace(
        "- [More Information Needed] about the learning rate, which I did not tune.\n", "- about the learning rate, which I did not tune.\n"
    )
    assert kept in text
    assert outcome.kept == ["## What I learned"]
    metadata = yaml.safe_load(split_front_matter(text)[0])
    assert metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert metadata["library_name"] == "peft"
    assert metadata["pipeline_tag"] == "text-classification"
    assert {"peft", "lora", "base_model:adapter:sentence-transformers/all-MiniLM-L6-v2"} <= set(metadata["tags"])
    assert "# Model Card for old-homework-adapter" in text
    assert "model = PeftModel.from_pretrained(base_model, 'alice/old-homework-adapter')" in text
    assert "- `target_modules`: `query, value`" in text
    assert "- `adapter_model.safetensors`: 1.0 kB" in text
    assert "## Environmental Impact" not in text and "[optional]" not in text
    assert len(hub.commits(REPO)) == commits and not hub.requests("commit")[commits - 1 :]


def test_a_peft_card_that_names_a_local_base_model_gets_no_local_path(hub, alice, tmp_path):
    """What peft's save_pretrained leaves: its own card and a base_model that is a path on the laptop."""
    adapter = save_minilm_adapter(tmp_path / "adapter")
    local = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert local.startswith("/")
    hub.create_repo(REPO)  # pushed as git would: the Hub's API refuses a base_model that is a path
    hub.commit_files(REPO, {path.name: path.read_bytes() for path in adapter.iterdir()})

    text = refresh_repo_card(REPO, output=tmp_path / "card.md").text

    metadata = yaml.safe_load(split_front_matter(text)[0])
    assert "base_model" not in metadata
    assert not [tag for tag in metadata["tags"] if "/" in tag and tag.startswith("base_model:")]
    assert local not in text
    assert "'path/to/base-model'" in text  # the usage snippet says what to fill in
    import peft

    assert f"- PEFT {peft.__version__}" in text  # peft's "Framework versions" section is kept
    assert not PLACEHOLDER.search(text) and check_card(text) == []


def test_push_commits_the_refreshed_card_once(hub, old_repo):
    outcome = refresh_repo_card(REPO, push=True)

    assert hub.files(REPO)["README.md"].decode() == outcome.text
    assert hub.commits(REPO)[0].title == "Refresh the model card with hubcard"
    assert outcome.summary().splitlines()[-1] == f"Pushed: {outcome.commit.commit_url}"
    commits = len(hub.commits(REPO))
    again = refresh_repo_card(REPO, push=True)
    assert again.up_to_date and len(hub.commits(REPO)) == commits


def test_pr_opens_a_pull_request_and_leaves_main_alone(hub, old_repo):
    main = hub.files(REPO)["README.md"]
    outcome = refresh_repo_card(REPO, pr=True)

    assert hub.files(REPO)["README.md"] == main
    assert hub.files(REPO, "refs/pr/1")["README.md"].decode() == outcome.text
    assert outcome.summary().endswith(f"Pull request opened: {hub.endpoint}/{REPO}/discussions/1")


def test_broken_front_matter_is_rebuilt_and_the_body_kept(hub, alice, tmp_path):
    body = "# My adapter\n\nIt classifies movie reviews. [More Information Needed]\n\n## Results\n\n85% accuracy.\n"
    HfApi(token=alice).create_repo(REPO)
    hub.commit_files(
        REPO,
        {"README.md": ("---\nlicense: [unclosed\n---\n\n" + body).encode(), "adapter_config.json": json.dumps(ADAPTER_CONFIG).encode()},
    )

    outcome = refresh_repo_card(REPO, output=tmp_path / "card.md")

    metadata, refreshed, _ = split_front_matter(outcome.text)
    assert yaml.safe_load(metadata)["library_name"] == "peft"
    assert refreshed == "\n" + body.replace(" [More Information Needed]", "")
    assert "rebuilt" in outcome.summary()


def test_a_repo_that_is_not_an_adapter_is_refused(hub, alice):
    upload(alice, REPO, {"README.md": b"# A model\n"})
    with pytest.raises(CardError, match="has no adapter_config.json: it is not a PEFT adapter"):
        refresh_repo_card(REPO, output="unused.md")


def test_pushing_needs_a_token_and_reading_a_private_repo_needs_its_owners(hub, old_repo, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PublishError, match="No Hugging Face token"):
        refresh_repo_card(REPO, push=True)
    HfApi(token=hub.add_user("carol")).create_repo("carol/secret", private=True)
    with pytest.raises(PublishError, match="carol/secret was not found on the Hub, or this token cannot see it"):
        refresh_repo_card("carol/secret", output=tmp_path / "card.md")


def test_render_card_command_refreshes_a_repo(hub, old_repo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["render-card", "--repo", REPO])

    assert result.exit_code == 0, result.output
    written = Path("alice--old-homework-adapter.README.md")
    assert f"Card written to {written} (nothing uploaded" in result.output
    assert check_card(written.read_text(encoding="utf-8")) == []


BAD_METADATA_CARD = """---
base_model: sentence-transformers/all-MiniLM-L6-v2
license: Apache 2.0
datasets:
- the movie reviews I collected
- ./data/reviews.csv
model-index:
- name: old-homework-adapter
  results:
  - task:
      type: text-classification
    dataset:
      type: stanfordnlp/sst2
      name: SST-2
      config: 3
    metrics:
    - type: accuracy
      value: 0.85
---

# My adapter

I trained it for homework 3.
"""


def test_metadata_the_hub_would_refuse_is_reported_and_never_pushed(hub, alice, tmp_path):
    hub.create_repo(REPO)  # pushed as git would: the Hub's API refuses this front matter
    hub.commit_files(REPO, {"README.md": BAD_METADATA_CARD.encode(), "adapter_config.json": json.dumps(ADAPTER_CONFIG).encode()})
    commits = len(hub.commits(REPO))

    outcome = refresh_repo_card(REPO, output=tmp_path / "card.md")
    assert [problem.key for problem in outcome.metadata_problems] == [
        "license",
        "datasets[0]",
        "datasets[1]",
        "model-index[0].results[0].dataset.config",
    ]
    assert "did you mean 'apache-2.0'?" in outcome.metadata_problems[0].message
    assert "The Hub would refuse this front matter" in outcome.summary() and "datasets[1]: './data/reviews.csv'" in outcome.summary()
    assert check_card(outcome.text)  # render-card --check refuses it too

    for option in ({"push": True}, {"pr": True}):
        with pytest.raises(CardError, match=r"metadata the Hub would refuse; nothing was pushed.*\n  - license: 'Apache 2.0'"):
            refresh_repo_card(REPO, **option)
    assert len(hub.commits(REPO)) == commits and hub.files(REPO)["README.md"] == BAD_METADATA_CARD.encode()
