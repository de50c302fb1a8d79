"""`hubcard render-card --repo`: refreshing the card of an adapter repo on the loopback Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, ModelCardData

from hubcard.errors import CardError, PublishError
from hubcard.frontmatter import split_front_matter
from hubcard.lint import PLACEHOLDER, check_card
from hubcard.refresh import refresh_repo_card
from hubcard.sections import TO_WRITE_MARKER
from tests.classroom import hubcard, rows_by_repo
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
    assert "tags" not in metadata  # tags are a card's choice: the Hub derives base_model:adapter:... itself
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
    assert outcome.done.startswith("pushed ") and outcome.where == outcome.commit.commit_url
    commits, sent = len(hub.commits(REPO)), len(hub.requests())
    again = refresh_repo_card(REPO, push=True)
    assert (again.changed, again.done, again.text) == (False, "nothing to change", outcome.text)
    assert len(hub.commits(REPO)) == commits and not hub.writes(sent)


def test_pr_opens_a_pull_request_and_leaves_main_alone(hub, old_repo):
    main = hub.files(REPO)["README.md"]
    outcome = refresh_repo_card(REPO, pr=True)

    assert hub.files(REPO)["README.md"] == main
    assert hub.files(REPO, "refs/pr/1")["README.md"].decode() == outcome.text
    assert (outcome.done, outcome.where) == ("PR #1 opened", f"{hub.endpoint}/{REPO}/discussions/1")


def test_broken_front_matter_is_salvaged_key_by_key_and_the_body_kept(hub, alice, tmp_path):
    body = "# My adapter\n\nIt classifies movie reviews. [More Information Needed]\n\n## Results\n\n85% accuracy.\n"
    front = "license: mit\ndatasets:\n- stanfordnlp/sst2\nbase_model: [sentence-transformers/all-MiniLM-L6-v2\nlanguage: en\n"
    HfApi(token=alice).create_repo(REPO)
    hub.commit_files(REPO, {"README.md": f"---\n{front}---\n\n{body}".encode(), "adapter_config.json": json.dumps(ADAPTER_CONFIG).encode()})

    outcome = refresh_repo_card(REPO, output=tmp_path / "card.md")

    metadata, refreshed, _ = split_front_matter(outcome.text)
    assert metadata.splitlines() == [
        "license: mit",
        "datasets:",
        "- stanfordnlp/sst2",
        "# hubcard: the Hub cannot read the lines below (not valid YAML); fix them and remove the '# '",
        "# base_model: [sentence-transformers/all-MiniLM-L6-v2",
        "language: en",
        "base_model: sentence-transformers/all-MiniLM-L6-v2",  # what adapter_config.json tells
        "library_name: peft",
        "pipeline_tag: text-classification",
    ]
    assert refreshed == "\n" + body.replace(" [More Information Needed]", "")
    assert outcome.for_a_person == [
        "front matter line 5 kept as a comment, the Hub cannot read it (while parsing a flow sequence: expected ',' or ']', "
        "but got '<stream end>' (line 5, column 52)): base_model: [sentence-transformers/all-MiniLM-L6-v2"
    ]
    hub.commit_files(REPO, {"README.md": outcome.text.encode()})
    assert not refresh_repo_card(REPO, output=tmp_path / "again.md").changed  # the comment stays, for the student to fix


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
    sent = len(hub.requests())
    code, stdout, stderr = hubcard("render-card", "--repo", REPO)

    assert code == 0, stderr
    written = Path("alice--old-homework-adapter.README.md")
    assert stdout.splitlines()[0].split() == ["repo", "status", "done", "todo", "meta"]
    assert stdout.splitlines()[1].split() == [REPO, "ok", "written", "3", "3"]
    assert all(len(line) <= 100 for line in stdout.splitlines())
    assert check_card(written.read_text(encoding="utf-8")) == []
    assert not hub.writes(sent)


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

    code, stdout, _ = hubcard("render-card", "--repo", REPO, "--pr", "--format", "json")  # a class: that row is problems
    row = json.loads(stdout)[0]
    assert code == 1 and row["done"] == "not pushed: fix the metadata" and not hub.repo(REPO).discussions
    assert row["for_a_person"][0].startswith("the Hub would refuse the front matter's license: 'Apache 2.0'")


# --- changing only what needs changing ------------------------------------------------------------------

NEEDS_NOTHING = """---
license: "mit"   # Eve chose it
datasets: [stanfordnlp/sst2]
base_model: bert-base-uncased
library_name: peft
tags: [sentiment, homework]
---
# Eve's SST-2 adapter  

A LoRA adapter of BERT for sentiment classification.


## Uses

For the course's third homework: short English movie-review sentences, not long reviews or other languages.
"""


def test_a_card_that_needs_nothing_gets_no_commit_and_no_pull_request(hub, alice, tmp_path, monkeypatch):
    """Keys in the student's order and style, a legacy base model id, odd blank lines and spaces: nothing to change."""
    upload(alice, REPO, {"README.md": NEEDS_NOTHING.replace("\n", "\r\n").encode(), "adapter_config.json": json.dumps(LEGACY).encode()})
    sent = len(hub.requests())

    written = refresh_repo_card(REPO, output=tmp_path / "card.md")
    pushed = refresh_repo_card(REPO, push=True)
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ta"))
    proposed = refresh_repo_card(REPO, pr=True)

    assert (tmp_path / "card.md").read_bytes() == NEEDS_NOTHING.replace("\n", "\r\n").encode()
    assert not written.changed and written.metadata_changes == [] and written.for_a_person == []
    assert (pushed.done, proposed.done) == ("nothing to change", "nothing to change")
    assert not hub.writes(sent) and not hub.repo(REPO).discussions


LEGACY = {**ADAPTER_CONFIG, "base_model_name_or_path": "google-bert/bert-base-uncased"}
KEYS_OF_A_STUDENT = """# the metadata of my homework
license: mit
course: {name: cs4780, term: fall}   # a key hubcard knows nothing of
base_model:
  - bert-base-uncased
  - google-bert/bert-base-uncased
tags:
- base_model:adapter:model
- sentiment
- sentiment
datasets: [stanfordnlp/sst2]"""


def test_the_front_matter_keeps_its_order_and_every_key_refresh_need_not_change(hub, alice, tmp_path):
    text = f"---\n{KEYS_OF_A_STUDENT}\n---\n\n# My adapter\n\nIt labels movie reviews.\n"
    upload(alice, REPO, {"README.md": text.encode(), "adapter_config.json": json.dumps(LEGACY).encode()})

    outcome = refresh_repo_card(REPO, output=tmp_path / "card.md")

    assert split_front_matter(outcome.text)[0].splitlines() == [
        "# the metadata of my homework",
        "license: mit",
        "course: {name: cs4780, term: fall}   # a key hubcard knows nothing of",
        "base_model: bert-base-uncased",  # one model under two names: one base model, as the card spells it
        "tags:",
        "- sentiment",  # the tag naming a local folder is gone, the repeat too
        "datasets: [stanfordnlp/sst2]",
        "library_name: peft",
        "pipeline_tag: text-classification",
    ]
    assert outcome.metadata_changes == [
        "base_model: bert-base-uncased, google-bert/bert-base-uncased -> bert-base-uncased",
        "library_name: (none) -> peft",
        "tags: base_model:adapter:model, sentiment, sentiment -> sentiment",
        "pipeline_tag: (none) -> text-classification",
    ]
    assert "- **Finetuned from model:**" not in outcome.text  # the card's own sections are the student's


@pytest.mark.parametrize("local", ["/content/drive/MyDrive/hw3/tiny-gpt2", "model", "tiny-gpt2"])
def test_base_model_is_never_a_local_folder_name(hub, alice, tmp_path, local):
    """adapter_config.json names the folder the base model was loaded from; an earlier tool copied it into the card."""
    name = local.rsplit("/", 1)[-1]
    card = str(ModelCard.from_template(ModelCardData(base_model=name, library_name="peft", tags=[f"base_model:adapter:{name}", "lora"])))
    upload(alice, REPO, {"README.md": card.encode(), "adapter_config.json": json.dumps({**ADAPTER_CONFIG, "base_model_name_or_path": local}).encode()})

    outcome = refresh_repo_card(REPO, output=tmp_path / "card.md")

    metadata = yaml.safe_load(split_front_matter(outcome.text)[0])
    assert "base_model" not in metadata and metadata["tags"] == ["lora"]
    assert name not in split_front_matter(outcome.text)[0]
    assert "- **Finetuned from model:**" not in outcome.text and f"from_pretrained({name!r})" not in outcome.text
    assert outcome.for_a_person == [
        f"base model unknown: adapter_config.json names {local!r}, not a Hub id; give it with --set base_model=OWNER/NAME"
    ]

    code, stdout, _ = hubcard("render-card", "--repo", REPO, "--set", "base_model=sshleifer/tiny-gpt2", "--output", str(tmp_path), "--format", "json")
    text = (tmp_path / "alice--old-homework-adapter.README.md").read_text(encoding="utf-8")
    assert code == 0 and json.loads(stdout)[0]["for_a_person"] == []
    assert yaml.safe_load(split_front_matter(text)[0])["base_model"] == "sshleifer/tiny-gpt2"
    assert "AutoModelForSequenceClassification.from_pretrained('sshleifer/tiny-gpt2')" in text


def test_each_fact_once_and_no_empty_heading(hub, alice, tmp_path):
    """peft's card: its "Framework versions" sits under "Model Card Contact"; modules_to_save saved with repeats."""
    card = str(ModelCard.from_template(ModelCardData(library_name="peft"))) + "\n### Framework versions\n\n- PEFT 0.17.0\n"
    config = {**ADAPTER_CONFIG, "modules_to_save": ["classifier", "score", "classifier", "score"], "peft_version": "0.17.0"}
    upload(alice, REPO, {"README.md": card.encode(), "adapter_config.json": json.dumps(config).encode()})

    text = refresh_repo_card(REPO, output=tmp_path / "card.md").text

    assert "- `modules_to_save`: `classifier, score`" in text
    assert text.count("PEFT 0.17.0") == 1 and "## Software" not in text
    assert "## Model Card Contact" not in text and text.endswith("## Framework versions\n\n- PEFT 0.17.0\n")
    assert check_card(text) == []


# --- pull requests --------------------------------------------------------------------------------------


def test_render_card_pr_again_and_again_keeps_one_pull_request_up_to_date(hub, old_repo, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ta"))
    pr = ["render-card", "--repo", REPO, "--pr", "--format", "json"]

    first = [json.loads(hubcard(*pr)[1])[0]["done"]]
    sent = len(hub.requests())
    first += [json.loads(hubcard(*pr)[1])[0]["done"] for _ in range(2)]

    assert first == ["PR #1 opened", "PR #1 up to date", "PR #1 up to date"]
    assert not hub.writes(sent) and list(hub.repo(REPO).pull_requests) == [1]

    card = hub.files(REPO)["README.md"].decode().replace("## Training Details", "## My results\n\n85% on SST-2.\n\n## Training Details")
    hub.commit_files(REPO, {"README.md": card.encode()})  # the student goes on editing main
    code, stdout, _ = hubcard(*pr)
    assert code == 0 and json.loads(stdout)[0]["done"] == "PR #1 updated"
    assert list(hub.repo(REPO).pull_requests) == [1] and len(hub.repo(REPO).discussions) == 1
    assert "## My results\n\n85% on SST-2." in hub.files(REPO, "refs/pr/1")["README.md"].decode()
    assert [event["type"] for event in hub.repo(REPO).discussions[1].events] == ["comment", "commit", "commit"]

    hub.commit_files(REPO, {"README.md": hub.files(REPO, "refs/pr/1")["README.md"]})  # the student applies it by hand
    code, stdout, _ = hubcard(*pr)
    assert json.loads(stdout)[0]["done"] == "nothing to change, PR #1 closed"
    assert hub.repo(REPO).discussions[1].status == "closed"  # a stale pull request would undo newer edits once merged
    assert json.loads(hubcard(*pr)[1])[0]["done"] == "nothing to change" and len(hub.repo(REPO).discussions) == 1


# --- what the staff give ------------------------------------------------------------------------------


def test_staff_give_facts_and_a_message_and_the_student_gets_a_to_do(hub, old_repo, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ta"))
    message = "Please write the Uses and the Limitations sections by Friday."
    code, stdout, stderr = hubcard(
        "render-card", "--repo", REPO, "--pr", "--message", message, "--set", "license=mit", "--set", "developed_by=Alice Liddell",
        "--set", "language=en,fr", "--set", "datasets=stanfordnlp/sst2", "--format", "json",
    )  # fmt: skip

    assert code == 0, stderr
    pull = hub.repo(REPO).discussions[1]
    description = pull.events[0]["data"]["latest"]["raw"]
    assert description.startswith(message + "\n\nhubcard refreshed the card of alice/old-homework-adapter")
    assert "- left for you to write: Uses, Bias, Risks, and Limitations, Recommendations" in description
    assert description.endswith("<!-- hubcard:pull-request kind=card -->")
    text = hub.files(REPO, "refs/pr/1")["README.md"].decode()
    metadata = yaml.safe_load(split_front_matter(text)[0])
    assert (metadata["license"], metadata["language"], metadata["datasets"]) == ("mit", ["en", "fr"], ["stanfordnlp/sst2"])
    assert "- **Developed by:** Alice Liddell" in text and "- **License:** mit" in text and "- **Language(s) (NLP):** en, fr" in text
    assert f"## Uses\n\n{TO_WRITE_MARKER}\n**To write:** who is this adapter for" in text
    assert "### Direct Use" not in text and f"### Recommendations\n\n{TO_WRITE_MARKER}" in text

    code, stdout, _ = hubcard("render-card", "--repo", REPO, "--pr", "--message", "A second note.", "--set", "license=mit", "--set",
                              "developed_by=Alice Liddell", "--set", "language=en,fr", "--set", "datasets=stanfordnlp/sst2", "--format", "json")  # fmt: skip
    assert json.loads(stdout)[0]["done"] == "PR #1 up to date"
    assert [event["data"]["latest"]["raw"] for event in pull.events[1:] if event["type"] == "comment"] == ["A second note."]

    code, _, _ = hubcard("render-card", "--repo", REPO, "--no-to-write", "--output", str(tmp_path))
    text = (tmp_path / "alice--old-homework-adapter.README.md").read_text(encoding="utf-8")
    assert code == 0 and TO_WRITE_MARKER not in text and "## Uses" not in text and "## What I learned" in text


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--set", "licence=mit"], "--set: licence: not a fact hubcard can set (one of base_model, license, language"),
        (["--set", "base_model=model"], "--set: base_model: 'model' is not a Hub model id (owner/name)"),
        (["--set", "datasets="], "--set: datasets: empty"),
        (["--set", "license"], "--set 'license': give KEY=VALUE, e.g. --set license=mit"),
        (["--message", "Hi"], "--message goes with --pr or --push"),
        (["--push", "--pr"], "give --push or --pr, not both"),
    ],
    ids=["unknown-fact", "local-base-model", "empty", "no-equals", "message-without-pr", "push-and-pr"],
)
def test_bad_staff_options_are_refused_before_anything_is_sent(hub, old_repo, arguments, message):
    sent = len(hub.requests())
    code, stdout, stderr = hubcard("render-card", "--repo", REPO, *arguments)
    assert code == 2 and stdout == "" and message in stderr
    assert len(hub.requests()) == sent


def test_bad_facts_in_a_roster_are_refused_before_any_repo_is_touched(course, hub, tmp_path):
    roster = tmp_path / "students.csv"
    roster.write_text(f"repo_id,name,base_model\n{course.GOOD},Eve,\n{course.DORA},Ben,model\n", encoding="utf-8")
    sent = len(hub.requests())
    code, stdout, stderr = hubcard("render-card", "--roster", str(roster), "--pr")
    assert code == 2 and stdout == ""
    assert f"the roster's line for {course.DORA}: base_model: 'model' is not a Hub model id (owner/name)" in stderr
    assert not hub.writes(sent)


# --- a class, twice -------------------------------------------------------------------------------------


def test_refresh_and_audit_of_a_class_twice_the_second_time_sends_nothing(course, hub, tmp_path):
    roster = tmp_path / "students.csv"
    roster.write_text("repo_id,developed_by,section\n" + "".join(f"{repo_id},Student {repo_id[0].upper()},B\n" for repo_id in course.repos), encoding="utf-8")
    refresh = ["render-card", "--roster", str(roster), "--pr", "--message", "Your card, refreshed: please write what is marked To write.", "--format", "json"]
    audit = ["audit", "--roster", str(roster), "--format", "json"]

    code, stdout, _ = hubcard(*refresh)
    first = rows_by_repo(stdout)
    _, audited, _ = hubcard(*audit)
    sent = len(hub.requests())
    code_again, again, _ = hubcard(*refresh)
    _, audited_again, _ = hubcard(*audit)

    assert code == code_again == 3  # the private repo cannot be read with the staff's token
    proposed = [course.PLACEHOLDER, course.DORA, course.NO_README, course.BROKEN]  # eve wrote her card; gus's and hal's are hubcard's own
    assert {repo_id: row["done"] for repo_id, row in first.items()} == {
        repo_id: "PR #1 opened" if repo_id in proposed else None if repo_id == course.PRIVATE else "nothing to change" for repo_id in course.repos
    }
    assert first[course.BROKEN]["status"] == "problems" and "kept as a comment" in first[course.BROKEN]["for_a_person"][0]
    assert {repo_id: row["done"] for repo_id, row in rows_by_repo(again).items()} == {
        repo_id: (row["done"] or "").replace("opened", "up to date") or None for repo_id, row in first.items()
    }
    assert not hub.writes(sent)  # no commit, no pull request, no comment: the second run changed nothing on the Hub
    assert audited_again == audited
    assert [repo_id for repo_id, row in rows_by_repo(audited).items() if row["open_prs_by_hubcard"]] == proposed

    assert "- **Developed by:** Student A" in hub.files(course.PLACEHOLDER, "refs/pr/1")["README.md"].decode()  # the roster's column
    HfApi(token=course.tokens["amy"]).merge_pull_request(course.PLACEHOLDER, 1)
    _, stdout, _ = hubcard("audit", course.PLACEHOLDER, "--format", "json")
    row = rows_by_repo(stdout)[course.PLACEHOLDER]
    assert row["placeholders"] == 0 and row["open_prs_by_hubcard"] == 0
    assert (row["sections"]["Uses"], row["sections"]["Bias, Risks, and Limitations"]) == ("to write", "to write")
    assert row["rubric"]["section: Uses"] == {"pass": False, "detail": "still to write"}


def test_revision_is_the_branch_read_and_written(hub, old_repo):
    HfApi().create_branch(REPO, branch="draft")
    main = hub.files(REPO)["README.md"]
    code, stdout, stderr = hubcard("render-card", "--repo", REPO, "--revision", "draft", "--push", "--format", "json")
    assert code == 0, stderr
    assert json.loads(stdout)[0]["done"].startswith("pushed ")
    assert hub.files(REPO)["README.md"] == main and hub.files(REPO, "draft")["README.md"] != main
