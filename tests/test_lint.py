"""`hubcard lint-card` and the checks behind `render-card --check`."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.repocard import TEMPLATE_MODELCARD_PATH

from hubcard import card
from hubcard.cli import cli
from hubcard.lint import check_card, lint_card
from hubcard.rundir import RunDir

FIXTURES = Path(__file__).parent / "fixtures"

CARD_WITH_METADATA = """---
base_model: {base_model}
license: mit
library_name: peft
---

# An adapter

Some text.
"""


@pytest.fixture
def default_hub_card(tmp_path) -> Path:
    """The Hub's default model card template with nothing filled in: placeholders everywhere."""
    path = tmp_path / "README.md"
    path.write_text(str(ModelCard.from_template(ModelCardData())), encoding="utf-8")
    return path


def write_card(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_lint_reports_each_placeholder_of_the_hub_default_template_with_its_section(default_hub_card):
    report = lint_card(default_hub_card)
    placeholders = [problem for problem in report.problems if problem.message.startswith("placeholder")]
    expected = len(re.findall("more information needed", TEMPLATE_MODELCARD_PATH.read_text(), re.IGNORECASE))
    assert len(placeholders) == expected > 20
    lines = default_hub_card.read_text(encoding="utf-8").splitlines()
    for problem in placeholders:
        assert "more information needed" in lines[problem.line - 1].lower()
    sections = {lines[p.line - 1].split(":**")[0].strip("- *"): p.section for p in placeholders if ":**" in lines[p.line - 1]}
    assert sections["Developed by"] == "Model Card for Model ID > Model Details > Model Description"
    assert sections["Hardware Type"] == "Model Card for Model ID > Environmental Impact"
    assert any(p.section.endswith("Uses > Out-of-Scope Use") for p in placeholders)
    assert any(p.section.endswith("Bias, Risks, and Limitations > Recommendations") for p in placeholders)


def test_lint_reports_missing_metadata_of_the_default_template(default_hub_card):
    messages = [problem.message for problem in lint_card(default_hub_card).problems]
    assert any("no base_model" in message for message in messages)
    assert any("no license" in message for message in messages)


def test_lint_accepts_a_hubcard_card(tmp_path):
    path = write_card(tmp_path, card.render_card(RunDir(FIXTURES / "seqcls-minilm-lora").read()))
    report = lint_card(path)
    assert report.problems == []
    assert report.format() == f"{path}: no problems found"


def test_lint_of_a_card_whose_base_model_has_no_hub_id(tmp_path):
    path = write_card(tmp_path, card.render_card(RunDir(FIXTURES / "eval-only").read()))
    messages = [problem.message for problem in lint_card(tmp_path).problems]  # a folder holding README.md
    assert messages == [
        "metadata: no base_model (the Hub id of the model the adapter was trained from)",
        "metadata: no license",
    ]
    assert path.is_file()


@pytest.mark.parametrize(
    "base_model", ["/home/alice/models/minilm", "./model", "C:\\models\\minilm", "SmolLM2-135M-Instruct.Q4_1.gguf", "tiny-gpt2", "model"]
)
def test_lint_reports_a_local_path_as_base_model(tmp_path, base_model):
    report = lint_card(write_card(tmp_path, CARD_WITH_METADATA.format(base_model=base_model)))
    assert [problem.message for problem in report.problems] == [
        f"metadata: base_model: {base_model!r} is not a Hub model id; use the id of the model the adapter was trained from, "
        "`namespace/name` (never a local path or folder name; `name` alone only for the Hub's legacy ids such as gpt2)"
    ]


def test_lint_reports_an_invalid_model_index(tmp_path):
    text = CARD_WITH_METADATA.format(base_model="gpt2").replace("---\n\n", "model-index:\n- name: x\n  results:\n  - task: {}\n---\n\n", 1)
    messages = [problem.message for problem in lint_card(write_card(tmp_path, text)).problems]
    assert messages == [
        "metadata: model-index[0].results[0].dataset: required: a mapping",
        "metadata: model-index[0].results[0].metrics: required: a list of metrics",
        "metadata: model-index[0].results[0].task.type: required: a string",
    ]


def test_lint_reports_a_card_without_metadata_and_invalid_yaml(tmp_path):
    assert [p.message for p in lint_card(write_card(tmp_path, "# Card\n\nText.\n")).problems] == [
        "metadata: no YAML front matter (base_model, license, tags... are all missing)"
    ]
    broken = lint_card(write_card(tmp_path, "---\nlicense: [mit\n---\n\n# Card\n")).problems
    assert len(broken) == 1 and broken[0].message.startswith("metadata: not valid YAML")


def test_lint_reports_a_target_that_is_neither_file_nor_repo(tmp_path):
    report = lint_card(tmp_path / "missing" / "README.md")
    assert [problem.message for problem in report.problems] == ["no such file, and not a Hub repo id"]


def test_lint_card_command_exit_status(tmp_path, default_hub_card):
    clean = tmp_path / "clean" / "README.md"
    clean.parent.mkdir()
    clean.write_text(card.render_card(RunDir(FIXTURES / "causal-smollm2-dora").read()), encoding="utf-8")
    result = CliRunner().invoke(cli, ["lint-card", str(clean)])
    assert result.exit_code == 0 and "no problems found" in result.output
    result = CliRunner().invoke(cli, ["lint-card", str(clean), str(default_hub_card)])
    assert result.exit_code == 1
    assert f"{default_hub_card}: " in result.output
    assert "Model Details > Model Description: placeholder '[More Information Needed]'" in result.output


def test_lint_card_reads_readme_from_the_hub_endpoint(tmp_path):
    """A repo id is read from HF_ENDPOINT; an unreachable Hub means the card could not be checked (exit 3)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    environment = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_ETAG_TIMEOUT": "2"}
    environment.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run(
        [sys.executable, "-m", "hubcard", "lint-card", "alice/some-adapter"], capture_output=True, text=True, env=environment
    )
    assert result.returncode == 3
    assert result.stdout.startswith(f"alice/some-adapter: could not be checked: cannot reach the Hub at http://127.0.0.1:{port} (")


def test_lint_card_never_answers_from_a_cache_for_a_repo_it_cannot_read_now(hub, monkeypatch):
    """After the owner's read of a private card, another token, no token and a Hub that fails each get
    "could not be checked" (exit 3), not the card read before."""
    owner = hub.add_user("carol")
    hub.create_repo("carol/private-adapter", private=True)
    hub.commit_files("carol/private-adapter", {"README.md": CARD_WITH_METADATA.format(base_model="gpt2").encode()})
    monkeypatch.setattr("hubcard.hub.RETRY_WAITS", (0.0, 0.0))
    runner = CliRunner()

    monkeypatch.setenv("HF_TOKEN", owner)
    read = runner.invoke(cli, ["lint-card", "carol/private-adapter"])
    assert read.exit_code == 0 and read.stdout == "carol/private-adapter: no problems found\n"

    monkeypatch.setenv("HF_TOKEN", hub.add_user("dave"))
    other = runner.invoke(cli, ["lint-card", "carol/private-adapter"])
    monkeypatch.delenv("HF_TOKEN")
    anonymous = runner.invoke(cli, ["lint-card", "carol/private-adapter"])
    unreadable = "carol/private-adapter: could not be checked: not found on the Hub, or private and this token cannot read it\n"
    assert (other.exit_code, other.stdout) == (anonymous.exit_code, anonymous.stdout) == (3, unreadable)

    monkeypatch.setenv("HF_TOKEN", owner)
    hub.fail("resolve", status=503, times=None)
    failing = runner.invoke(cli, ["lint-card", "carol/private-adapter"])
    assert failing.exit_code == 3 and "could not be checked: the Hub answered 503" in failing.stdout
    hub.clear_faults()
    missing = runner.invoke(cli, ["lint-card", "carol/no-such-adapter"])
    assert missing.exit_code == 3 and "could not be checked: not found on the Hub" in missing.stdout


# --- check_card ---------------------------------------------------------------------------------

FRONT = "---\nlibrary_name: peft\n---\n\n"


@pytest.mark.parametrize(
    "body, problem",
    [
        ("# Card\n\nDeveloped by: [More Information Needed]\n", "line 7, Card: placeholder '[More Information Needed]'"),
        ("# Card\n\nText.\n\n## Empty\n\n<!-- a comment -->\n\n## Full\n\nText.\n", "line 9: empty section: ## Empty"),
        ("# Card\n\nText.\n\n## Parent\n\n### Child\n", "line 9: empty section: ## Parent"),
        ("# Card\n\n| a | b |\n|---|---|\n\nText.\n", "line 7: empty table: | a | b |"),
        ("# Card\n\n| metric | value |\n|---|---|\n| accuracy | nan |\n", "line 9: a missing value printed as None/nan"),
        ("# Card\n\n- **License:** None\n", "line 7: a missing value printed as None/nan"),
        ("# Card\n\nSee [the repo](https://huggingface.co/None).\n", "line 7: link to huggingface.co/None"),
    ],
)
def test_check_card_finds(body, problem):
    problems = check_card(FRONT + body)
    assert any(found.startswith(problem) for found in problems), problems


def test_check_card_leaves_data_and_code_alone():
    text = FRONT + (
        "# Card\n\n| Text | Label |\n|---|---|\n| None of them work, nan | `negative` |\n\n"
        "```python\nrevision = None\n# [More Information Needed]? no: code is checked for placeholders only\n```\n"
    )
    assert check_card(text) == ["line 13, Card: placeholder '[More Information Needed]'"]


def test_check_card_finds_broken_metadata():
    assert check_card("# Card\n\nText.\n") == ["metadata: no YAML front matter (base_model, license, tags... are all missing)"]
    invalid = check_card("---\nmodel-index: {name: x}\n---\n\n# Card\n\nText.\n")
    assert invalid == ["metadata: model-index: must be a list of models, each with a name and results, got a mapping"]
