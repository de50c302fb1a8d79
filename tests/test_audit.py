"""`hubcard audit` on a class of student repos on the loopback Hub, through the `hubcard` command."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import socket
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi

from hubcard import hub as hub_module
from hubcard.pulls import marker
from hubcard.refresh import refresh_repo_card
from hubcard.sections import TO_WRITE_MARKER, hub_template_sections
from tests.classroom import GOOD_CARD, LORA, USES, adapter, audit, rows_by_repo, weights

SECTIONS = [section.name for section in hub_template_sections()]


def rubric_failures(row: dict) -> list[str]:
    return [key for key, result in row["rubric"].items() if not result["pass"]]


def test_a_class_row_by_row(course, hub):
    """The six typical repos and the two copies, as a staff member (who cannot read the private repo) sees them."""
    HfApi(token=course.staff).create_commit(
        course.PLACEHOLDER, [CommitOperationAdd("README.md", b"# fixed\n")], commit_message="Fill in the card",
        commit_description=f"{marker('card')}\nPlease fill in Uses.", create_pr=True,
    )  # fmt: skip
    HfApi(token=course.tokens["ben"]).create_commit(
        course.PLACEHOLDER, [CommitOperationAdd("notes.txt", b"hi")], commit_message="A friend's pull request", create_pr=True
    )

    code, stdout, stderr = audit("--author", "amy", "--author", "ben", *course.repos[2:], "--format", "json")

    assert code == 3, stderr
    rows = rows_by_repo(stdout)
    assert list(rows) == [*course.repos[2:], course.PLACEHOLDER, course.DORA]  # REPO_IDs first, then each author's
    assert set(rows[course.GOOD]) == {
        "repo_id", "status", "error", "placeholders", "sections", "metadata_problems", "base_model", "peft_type", "method",
        "adapter_sha256", "duplicate_of", "has_results", "last_commit", "open_prs_by_hubcard", "rubric",
    }  # fmt: skip

    placeholder = rows[course.PLACEHOLDER]
    assert placeholder["status"] == "problems" and placeholder["error"] is None
    assert placeholder["placeholders"] > 20
    assert set(placeholder["sections"].values()) == {"template", "generated"}
    assert placeholder["sections"]["Software"] == "generated"  # peft's "- PEFT 0.17.0"
    assert placeholder["metadata_problems"] == ["no license"]
    assert (placeholder["base_model"], placeholder["peft_type"], placeholder["method"]) == ("sentence-transformers/all-MiniLM-L6-v2", "LORA", "lora")
    assert placeholder["open_prs_by_hubcard"] == 1
    assert rubric_failures(placeholder) == [
        "section: Uses", "section: Bias, Risks, and Limitations", "fact: license", "fact: training_data", "fact: evaluation", "no placeholders",
    ]  # fmt: skip
    assert placeholder["rubric"]["section: Uses"]["detail"] == "template text only"

    dora = rows[course.DORA]
    assert dora["status"] == "problems" and dora["method"] == "dora" and dora["peft_type"] == "LORA"
    assert dora["sections"]["Model Description"] == "written"  # the student's sentence
    assert dora["sections"]["Training Hyperparameters"] == "generated"  # the Trainer's list
    assert dora["sections"]["Uses"] == "template" and dora["sections"]["Training Data"] == "template"
    assert dora["placeholders"] == 2 and dora["metadata_problems"] == []
    assert rubric_failures(dora) == [
        "section: Uses", "section: Bias, Risks, and Limitations", "fact: training_data", "fact: evaluation", "no placeholders"
    ]

    no_readme = rows[course.NO_README]
    assert no_readme["status"] == "problems"
    assert set(no_readme["sections"].values()) == {"missing"}
    assert no_readme["metadata_problems"] == ["no model card: the repo has no README.md"]
    assert no_readme["placeholders"] == 0 and no_readme["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert rubric_failures(no_readme) == [
        "section: Uses", "section: Bias, Risks, and Limitations", "fact: base_model", "fact: license", "fact: training_data", "fact: evaluation",
    ]  # fmt: skip

    broken = rows[course.BROKEN]
    assert broken["status"] == "problems"
    assert len(broken["metadata_problems"]) == 1 and broken["metadata_problems"][0].startswith("not valid YAML")
    assert broken["sections"]["Model summary"] == "written"

    good = rows[course.GOOD]
    assert good["status"] == "ok" and rubric_failures(good) == [] and good["metadata_problems"] == []
    assert good["has_results"] is True and good["placeholders"] == 0
    assert good["rubric"]["section: Uses"] == {"pass": True, "detail": "33 words written (at least 20)"}
    assert {name for name, state in good["sections"].items() if state == "written"} >= {"Uses", "Bias, Risks, and Limitations", "Training Data", "Results"}
    assert good["last_commit"]["id"] == hub.commits(course.GOOD)[0].oid
    assert good["adapter_sha256"] == hashlib.sha256(weights(5)).hexdigest()
    assert list(good["sections"]) == SECTIONS and len(SECTIONS) == 36  # every section of the Hub's template, in order
    assert good["duplicate_of"] == [] and good["open_prs_by_hubcard"] == 0

    private = rows[course.PRIVATE]
    assert private["status"] == "error"
    assert private["error"] == "not found on the Hub, or private and this token cannot read it"
    assert all(private[key] is None for key in ("placeholders", "sections", "rubric", "adapter_sha256"))

    copy_a, copy_b = rows[course.COPY_A], rows[course.COPY_B]
    assert copy_a["duplicate_of"] == [course.COPY_B] and copy_b["duplicate_of"] == [course.COPY_A]
    assert copy_a["adapter_sha256"] == copy_b["adapter_sha256"] and copy_a["status"] == "problems"
    assert copy_a["sections"]["Model Description"] == "written"  # card.description of the run's config
    assert copy_a["sections"]["Results"] == "generated" and copy_a["has_results"] is True
    assert rubric_failures(copy_a) == ["section: Uses", "section: Bias, Risks, and Limitations"]
    assert copy_a["rubric"]["section: Uses"]["detail"] == "generated by a tool only"
    assert "could not be checked" in stderr  # the summary; the report alone is on stdout


def test_a_private_repo_is_read_with_its_owners_token_only(course, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", course.tokens["fay"])
    code, stdout, _ = audit(course.PRIVATE, "--format", "json")
    assert code == 0 and rows_by_repo(stdout)[course.PRIVATE]["status"] == "ok"

    for token in (course.tokens["eve"], None):  # another student's token; no token at all
        if token:
            monkeypatch.setenv("HF_TOKEN", token)
        else:
            monkeypatch.delenv("HF_TOKEN")
        code, stdout, _ = audit(course.PRIVATE, "--format", "json")
        assert code == 3
        row = rows_by_repo(stdout)[course.PRIVATE]
        assert row["status"] == "error" and row["sections"] is None


def test_no_cached_answer_passes_for_a_live_one(course, hub, monkeypatch):
    """After a first read, a Hub that no longer answers (or answers 500) makes the rows errors."""
    monkeypatch.setattr(hub_module, "RETRY_WAITS", (0.0, 0.0))
    code, stdout, _ = audit(course.GOOD, "--format", "json")
    assert code == 0

    hub.fail("resolve", status=500, times=None)  # the file list still answers; the card does not
    code, stdout, _ = audit(course.GOOD, "--format", "json")
    assert code == 3
    assert rows_by_repo(stdout)[course.GOOD]["error"].startswith("the Hub answered 500")
    hub.clear_faults()

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", closed)
    code, stdout, _ = audit(course.GOOD, "--format", "json")
    assert code == 3
    assert rows_by_repo(stdout)[course.GOOD]["error"].startswith(f"cannot reach the Hub at {closed}")


def test_table_and_csv_with_a_roster_and_a_filter(course, tmp_path):
    (tmp_path / "other.csv").write_text("repo_id,name\namy/hw2-lora,Amy\n", encoding="utf-8")
    roster = course.roster(tmp_path)

    code, stdout, stderr = audit("--roster", str(roster), "--filter", "HW3-ADAPTER")
    assert code == 3
    lines = stdout.splitlines()
    assert lines[0].split() == ["repo", "name", "section", "status", "wr", "gen", "ph", "meta", "peft", "dup", "prs", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9"]
    assert [line.split()[0] for line in lines[1:7]] == [course.NO_README, course.BROKEN, course.PRIVATE, "not", course.COPY_A, course.COPY_B]
    assert all(len(line) <= 100 for line in lines)
    # An error is printed whole, on the line under its row.
    assert lines[3].split() == [course.PRIVATE, "Student", "F", "B", "error"]
    assert lines[4] == "    not found on the Hub, or private and this token cannot read it"
    assert lines[5].split()[4:] == ["problems", "2", "30", "0", "0", "lora", "1", "0", "✗", "✗", "✓", "✓", "✓", "✓", "✓", "✓", "✓"]
    assert "5 repositories: 0 ok, 4 with problems, 1 could not be checked." in lines
    assert "R1 section: Uses - written by a person, at least 20 words" in lines
    assert stderr == ""

    code, stdout, _ = audit("--roster", str(roster), "--format", "csv")
    table = list(csv.DictReader(io.StringIO(stdout)))
    assert [row["repo_id"] for row in table] == course.repos
    assert table[4]["name"] == "Student E" and table[4]["status"] == "ok" and table[4]["rubric: fact: evaluation"] == "pass"
    assert table[5]["status"] == "error" and table[5]["section: Uses"] == ""
    assert table[6]["duplicate_of"] == course.COPY_B and table[6]["section: Results"] == "generated"


def test_a_rubric_of_the_course(course, tmp_path):
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text(
        "sections:\n  - heading: Uses\n    min_words: 50\nfacts: [license, limitations]\nfiles: [adapter_model.safetensors, tokenizer.json]\nallow_placeholders: true\n",
        encoding="utf-8",
    )
    code, stdout, _ = audit(course.GOOD, course.PLACEHOLDER, "--rubric", str(rubric), "--format", "json")
    rows = rows_by_repo(stdout)
    assert code == 1
    assert rows[course.GOOD]["rubric"] == {
        "section: Uses": {"pass": False, "detail": "33 words written (at least 50)"},
        "fact: license": {"pass": True, "detail": "mit"},
        "fact: limitations": {"pass": True, "detail": "Bias, Risks, and Limitations written"},
        "file: adapter_model.safetensors": {"pass": True, "detail": "adapter_model.safetensors"},
        "file: tokenizer.json": {"pass": False, "detail": "no such file"},
    }
    assert "no placeholders" not in rows[course.PLACEHOLDER]["rubric"]


def test_an_invalid_rubric_or_roster_is_a_usage_error(course, tmp_path):
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text("sections:\n  - heading: Uses\n    min_word: 50\nfacts:\n  - licence\nfiles: adapter_config.json\n", encoding="utf-8")
    code, stdout, stderr = audit(course.GOOD, "--rubric", str(rubric))
    assert code == 2 and stdout == ""
    assert f"Invalid rubric in {rubric} (3 problems)" in stderr
    assert "sections[0].min_word (line 3): unknown key (did you mean 'min_words'?)" in stderr
    assert "facts[0] (line 5): must be one of 'base_model', 'license', 'training_data', 'evaluation' or 'limitations', got 'licence'" in stderr
    assert "files (line 6): must be a list" in stderr
    rubric.write_text('allow_placeholders: "false"\nsections:\n  - {heading: Uses, min_words: "30"}\n', encoding="utf-8")
    code, _, stderr = audit(course.GOOD, "--rubric", str(rubric))  # a string is no yes/no, nor a number
    assert code == 2 and "allow_placeholders (line 1)" in stderr and "sections[0].min_words (line 3)" in stderr, stderr

    roster = tmp_path / "roster.csv"
    roster.write_text("name,repo\nAmy,amy/hw3-lora\n", encoding="utf-8")
    code, _, stderr = audit("--roster", str(roster))
    assert code == 2 and "the roster needs a repo_id column (found: name, repo)" in stderr
    roster.write_text("name,repo_id\nAmy,amy/hw3-lora\nBen,\nCat,cat\nAmy again,amy/hw3-lora\n", encoding="utf-8")
    code, _, stderr = audit("--roster", str(roster))
    assert code == 2
    assert "line 3: repo_id is empty" in stderr and "line 4: 'cat' is not a Hub repo id (owner/name)" in stderr
    assert "line 5: amy/hw3-lora is listed again (first on line 2)" in stderr
    roster.write_text("Name,Repo_ID\nAmy,amy/hw3-lora\nRodriguez, Ben,ben/hw3-dora\n", encoding="utf-8")
    code, _, stderr = audit("--roster", str(roster))
    assert code == 2 and "line 3: 3 fields, the header names 2 (a comma in a value? put the value in double quotes)" in stderr
    roster.write_bytes("name,repo_id\nJosé,amy/hw3-lora\n".encode("cp1252"))
    code, _, stderr = audit("--roster", str(roster))
    assert code == 2 and "is not UTF-8; save it as UTF-8 (in Excel: CSV UTF-8)" in stderr
    code, _, stderr = audit("--author", "nobody")
    assert code == 2 and "no repository selected: the roster and the --author listings hold no repo" in stderr
    code, _, stderr = audit("--author", "amy", "--filter", "hw9")
    assert code == 2 and "no repository selected: --filter 'hw9' is in the name of none of the 1 repos found" in stderr
    code, _, stderr = audit()
    assert code == 2 and "give REPO_IDs (or --repo), --author NAME or --roster FILE" in stderr


def test_a_student_audits_a_local_card_before_pushing(tmp_path, hub):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "README.md").write_text(GOOD_CARD.replace("## Uses", f"## Uses\n\n{TO_WRITE_MARKER}\nSay who should use it.\n\n### Direct Use"), encoding="utf-8")
    for name, content in adapter(LORA, 9).items():
        (run / "adapter" / name).write_bytes(content)

    code, stdout, _ = audit(str(run / "README.md"), "--format", "json")
    row = json.loads(stdout)[0]
    assert code == 0 and row["status"] == "ok"  # Uses's own text is still there, under Direct Use
    assert row["sections"]["Direct Use"] == "written" and row["open_prs_by_hubcard"] is None and row["last_commit"] is None

    (run / "README.md").write_text(GOOD_CARD.replace(USES, f"{TO_WRITE_MARKER}\nSay who should use it, and for what."), encoding="utf-8")
    code, stdout, _ = audit(str(run), "--format", "json")
    row = json.loads(stdout)[0]
    assert code == 1 and row["sections"]["Uses"] == "to write"
    assert row["rubric"]["section: Uses"] == {"pass": False, "detail": "still to write"}
    assert not hub.requests()  # nothing asked of the Hub


def test_revision_reads_another_branch(course, hub):
    HfApi(token=course.tokens["eve"]).create_branch(course.GOOD, branch="before-deadline", revision=hub.commits(course.GOOD)[1].oid)
    code, stdout, _ = audit(course.GOOD, "--revision", "before-deadline", "--format", "json")
    row = rows_by_repo(stdout)[course.GOOD]
    assert code == 1 and set(row["sections"].values()) == {"missing"}  # the initial commit: no card yet
    code, stdout, _ = audit(course.GOOD, "--revision", "no-such-branch", "--format", "json")
    assert code == 3 and rows_by_repo(stdout)[course.GOOD]["error"].startswith("no such revision")


def test_what_render_card_repo_fills_in_counts_as_generated(course, monkeypatch):
    """A card refreshed by `render-card --repo` holds hubcard's text where the template was: not a person's."""
    monkeypatch.setenv("HF_TOKEN", course.tokens["amy"])
    refresh_repo_card(course.PLACEHOLDER, push=True)
    code, stdout, _ = audit(course.PLACEHOLDER, "--format", "json")
    row = rows_by_repo(stdout)[course.PLACEHOLDER]
    assert row["placeholders"] == 0
    assert "written" not in row["sections"].values()
    assert row["sections"]["How to Get Started with the Model"] == row["sections"]["Model Description"] == "generated"
    assert row["sections"]["Uses"] == "to write"  # a to-do for the student: only a person can write it


def test_the_example_rubric_is_a_valid_rubric_and_no_config_example():
    from hubcard import starter
    from hubcard.rubric import load_rubric

    rubric = load_rubric(Path(__file__).parent.parent / "examples" / "course-rubric.yaml")
    assert [item.key for item in rubric.items()][:3] == ["section: Uses", "section: Bias, Risks, and Limitations", "section: Training Data"]
    assert "course-rubric" not in starter.available()


def test_a_long_list_gets_a_progress_bar_on_stderr_and_the_report_alone_on_stdout(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ta"))
    for number in range(12):
        hub.create_repo(f"cs101/hw1-{number:02d}")
        hub.commit_files(f"cs101/hw1-{number:02d}", {"README.md": GOOD_CARD.encode(), **adapter(LORA, number)})
    code, stdout, stderr = audit("--author", "cs101", "--format", "json")
    assert code == 0 and [row["repo_id"] for row in json.loads(stdout)] == [f"cs101/hw1-{number:02d}" for number in range(12)]
    assert stderr.startswith("Auditing 12 repositories") and stderr.endswith("12 repositories: 12 ok, 0 with problems, 0 could not be checked.\n")


def test_the_table_never_cuts_a_repo_id_a_roster_column_or_an_error(hub, monkeypatch, tmp_path):
    """Course repos have long names; the table is pasted into a gradebook, where a cut id matches nothing."""
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ta"))
    long_id = "machine-learning-course-2026/homework-3-sentiment-lora-adapter-student-0042"
    hub.create_repo(long_id)
    hub.commit_files(long_id, {"README.md": GOOD_CARD.encode(), **adapter(LORA, 1)})
    missing = "machine-learning-course-2026/homework-3-sentiment-lora-adapter-student-0043"
    roster = tmp_path / "students.csv"
    name = "Maria Fernanda Rodríguez de la Cruz"
    roster.write_text(f"repo_id,name\n{long_id},{name}\n{missing},Bo\n", encoding="utf-8")
    code, stdout, _ = audit("--roster", str(roster))
    lines = stdout.splitlines()
    assert code == 3
    assert lines[1].startswith(f"{long_id} {name} ok ")
    assert lines[2].split() == [missing, "Bo", "error"]
    assert lines[3].strip() == "not found on the Hub, or private and this token cannot read it"


def test_without_a_token_an_author_listing_says_private_repos_are_left_out(course, monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-token"))  # nor a login's
    code, stdout, stderr = audit("--author", course.PRIVATE.split("/")[0], "--author", "eve", "--format", "json")
    assert "no Hub token (HF_TOKEN or `hf auth login`): --author lists public repos only, private ones are left out" in caplog.text
    assert [row["repo_id"] for row in json.loads(stdout)] == ["eve/hw3-sst2"]


def test_a_hub_that_cannot_be_reached_fails_the_class_in_seconds(course, monkeypatch):
    """Three repos in a row that cannot reach the Hub: the rest are not tried, each row says why."""
    monkeypatch.setattr(hub_module, "RETRY_WAITS", (0.0, 0.0))
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", closed)
    code, stdout, _ = audit(*course.repos, "--jobs", "1", "--format", "json")
    errors = [row["error"] for row in json.loads(stdout)]
    assert code == 3 and len(errors) == len(course.repos) > 3
    assert all(error.startswith(f"cannot reach the Hub at {closed}") for error in errors[:3])
    assert all(error.startswith("not tried: 3 repos in a row could not reach the Hub (cannot reach") for error in errors[3:])


def test_a_repos_address_on_the_hub_is_taken_for_its_id(course, tmp_path):
    """Students hand in the address of their repo more often than its id."""
    roster = tmp_path / "students.csv"
    roster.write_text(f"repo_id,name\nhttps://huggingface.co/{course.GOOD}/tree/main,Eve\n", encoding="utf-8")
    code, stdout, _ = audit("--roster", str(roster), f"https://huggingface.co/{course.PLACEHOLDER}/", "--format", "json")
    assert [row["repo_id"] for row in json.loads(stdout)] == [course.PLACEHOLDER, course.GOOD]


def test_an_adapter_pushed_in_a_folder_is_found_and_said_to_be_out_of_place(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", hub.add_user("ta"))
    hub.create_repo("ivy/hw3-lora")
    files = {f"checkpoint-500/{name}": content for name, content in adapter(LORA, 3).items()}
    hub.commit_files("ivy/hw3-lora", {"README.md": GOOD_CARD.encode(), **files})
    code, stdout, _ = audit("ivy/hw3-lora", "--format", "json")
    rubric = json.loads(stdout)[0]["rubric"]
    assert code == 1 and not rubric["file: adapter_model.*"]["pass"]
    assert rubric["file: adapter_model.*"]["detail"] == (
        "not at the repo's root, where loading the repo looks for it; in a folder: checkpoint-500/adapter_model.safetensors"
    )
