"""Fact-checking a model card: every fact the default card states, derived again without hubcard's
card code, from what the run left and what the user gave.

    problems = fact_check(run_dir, Given(config=..., ...))   # [] when every fact is true

The sources, none of them hubcard.card: the config as the user wrote it (the YAML file and the
command-line overrides, or the notebook's `config=`), the data files, the adapter folder (its files,
sizes, adapter_config.json and safetensors), the Trainer's own record (the last checkpoint's
trainer_state.json and training_args.bin, or the notebook's Trainer), the predictions files, PEFT's
config classes and transformers' TrainingArguments for the defaults, the installed packages.

Besides checking each fact, the checker marks the lines it verified; a line of the card's prose or
tables that states a number and was not verified is a problem too ("unchecked"), unless it is one of
the facts nothing outside the run records (durations, dates, the machine, emissions): so a new fact
in the template cannot go unchecked.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HUB = "https://huggingface.co"
PIPELINE_TAGS = {"sequence-classification": "text-classification", "causal-lm": "text-generation"}
METHOD_NAMES = {"lora": "LoRA", "dora": "DoRA"}
DEFAULT_SEED = 42
DEFAULT_PROMPT = "Classify the sentiment of the following text as one of: {labels}.\n\nText: {text}\nAnswer with one word."
# Lines whose numbers nothing outside the run records: durations, dates, the machine, emissions.
UNVERIFIABLE = re.compile(
    r"^- \*\*(Training time|Evaluation time|Run started|Documented by hubcard|Hours used|Carbon Emitted|CPU|Hardware Type|"
    r"Platform|Compute Region|Accelerator)"
)


@dataclass
class Given:
    """What the user gave and what the Trainer recorded, outside hubcard's run record.

    `config`: the config as written (sections as mappings, overrides applied); `trainer_state` and
    `training_arguments`: the Trainer's state (trainer_state.json as a dict) and its TrainingArguments;
    `notebook`: whether the user's own code trained the adapter (then `train_labels` are the labels of
    the rows it trained on); `base_model_folder`: where the base model's files are (config.json)."""

    config: dict[str, Any]
    base_model_folder: Path
    trainer_state: dict[str, Any] | None = None
    training_arguments: Any = None
    notebook: bool = False
    train_labels: list[str] | None = None
    gguf_file: str | None = None


@dataclass
class Card:
    lines: list[str]
    verified: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def find(self, pattern: str, required: bool = True) -> re.Match | None:
        """The one line matching `pattern` (marked verified), or a problem."""
        found = [(index, match) for index, line in enumerate(self.lines) if (match := re.search(pattern, line))]
        if len(found) != 1:
            if required or found:
                self.problems.append(f"expected one line matching {pattern!r}, found {len(found)}")
            return None
        self.verified.add(found[0][0])
        return found[0][1]

    def has(self, text: str) -> None:
        """The one line holding `text` (marked verified), or a problem."""
        found = [index for index, line in enumerate(self.lines) if text in line]
        if len(found) != 1:
            self.problems.append(f"expected one line with {text!r}, found {len(found)}")
        self.verified.update(found[:1])

    def table(self, heading: str, header_starts: str) -> list[list[str]]:
        """The rows of the first table whose header starts with `header_starts` after `heading`, as plain text."""
        start = next((index for index, line in enumerate(self.lines) if line.strip() == heading), None)
        if start is None:
            self.problems.append(f"no section {heading!r}")
            return []
        index = next((i for i in range(start, len(self.lines)) if self.lines[i].startswith(header_starts)), None)
        if index is None:
            self.problems.append(f"no table {header_starts!r} under {heading!r}")
            return []
        rows = []
        self.verified.add(index)
        for row_index in range(index + 2, len(self.lines)):
            if not self.lines[row_index].startswith("|"):
                break
            self.verified.add(row_index)
            rows.append([plain(cell) for cell in re.split(r"(?<!\\)\|", self.lines[row_index].strip())[1:-1]])
        return rows

    def expect(self, what: str, stated: Any, true: Any) -> None:
        if stated != true:
            self.problems.append(f"{what}: the card says {stated!r}, the run says {true!r}")


def plain(cell: str) -> str:
    """A Markdown cell or span as the text it shows."""
    text = re.sub(r"</?code>|\*\*|`", "", cell.strip())
    return re.sub(r"\\(.)", r"\1", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def fact_check(run_dir: Path, given: Given) -> list[str]:
    """Every problem found: a fact the card states wrongly, a fact it lacks, a number it states unchecked."""
    text = (run_dir / "README.md").read_text(encoding="utf-8")
    front, body = text.split("\n---\n", 1)
    card = Card(body.splitlines())
    facts = _derive(run_dir, given)
    _check_metadata(card, yaml.safe_load(front.removeprefix("---\n")), facts)
    _check_title_and_details(card, facts, given)
    _check_adapter(card, facts)
    _check_uses_and_risks(card, facts, given)
    _check_training(card, facts, given)
    _check_evaluation(card, facts)
    _check_software(card)
    _check_user_texts(card, given.config)
    card.problems += [f"unchecked: {line}" for index, line in enumerate(card.lines) if index not in card.verified and _states_a_number(card, index)]
    return card.problems


# --- the facts, from the sources ------------------------------------------------------------------


def _derive(run_dir: Path, given: Given) -> dict[str, Any]:
    config = given.config
    data = config.get("data", {})
    adapter_dir = run_dir / "adapter"
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    task = (config.get("task") or {}).get("type") or {"SEQ_CLS": "sequence-classification", "CAUSAL_LM": "causal-lm"}[adapter_config["task_type"]]
    sizes = {str(path.relative_to(adapter_dir)): path.stat().st_size for path in adapter_dir.rglob("*") if path.is_file()}
    label_names = data["label_names"]
    seed = int(config.get("training", {}).get("seed", DEFAULT_SEED))
    train_labels = given.train_labels if given.notebook else _split_labels(data, data.get("train_split", "train"), data.get("max_train_samples"), seed)
    base = [json.loads(line) for line in (run_dir / "predictions" / "base.jsonl").read_text().splitlines()]
    adapter = [json.loads(line) for line in (run_dir / "predictions" / "adapter.jsonl").read_text().splitlines()]
    eval_labels = [row["label"] for row in adapter]
    if not given.notebook:
        assert eval_labels == _split_labels(data, data.get("eval_split", "validation"), data.get("max_eval_samples"), seed)
    model_config, architecture, base_parameters = _base_model(given, task, len(label_names))
    return {
        "config": config,
        "task": task,
        "labels": label_names,
        "adapter_config": adapter_config,
        "file_sizes": sizes,
        "weights": {name: size for name, size in sizes.items() if name.startswith("adapter_model")},
        "trainable": _safetensors_parameters(adapter_dir / "adapter_model.safetensors"),
        "base_parameters": base_parameters,
        "architecture": architecture,
        "model_type": model_config.model_type,
        "train_labels": train_labels,
        "eval_labels": eval_labels,
        "scores": {"Base model": _scores(base, label_names), "Adapter": _scores(adapter, label_names)},
        "predictions": {"base": base, "adapter": adapter},
        "metrics": config.get("evaluation", {}).get("metrics", ["accuracy", "f1"]),
        "max_length": data.get("max_length", 256),
        "hub_id": data.get("hub_id") or data.get("path"),
        "repo_id": (config.get("hub") or {}).get("repo_id"),
        "base_hub_id": config.get("model", {}).get("hub_id"),
        "license": _card_value(config, given, "license"),
        "language": _card_value(config, given, "language"),
    }


def _card_value(config: dict[str, Any], given: Given, key: str) -> Any:
    """`card.KEY` of the config, else the base model's own card's, when the Hub accepts it."""
    from hubcard.metadata import metadata_problems

    if (value := (config.get("card") or {}).get(key)) is not None:
        return value
    readme = given.base_model_folder / "README.md"
    front = yaml.safe_load(readme.read_text(encoding="utf-8").split("---")[1]) if readme.is_file() else {}
    value = (front or {}).get(key)
    value = [value] if key == "language" and isinstance(value, str) else value
    return value if value is not None and not metadata_problems({key: value}) else None


def _split_labels(data: dict[str, Any], split: str, limit: int | None, seed: int) -> list[str]:
    """The label names of a split's rows, as `datasets` reads the file, shuffled with the seed and cut
    when a limit is set."""
    import datasets

    file = data["files"][split]
    builder, options = ("json", {}) if file.endswith((".json", ".jsonl")) else ("csv", {"delimiter": "\t", "quoting": 3} if file.endswith(".tsv") else {})
    rows = datasets.load_dataset(builder, data_files={split: file}, split=split, **options)
    if limit is not None and limit < len(rows):
        rows = rows.shuffle(seed=seed).select(range(limit))
    return [label if isinstance(label, str) else data["label_names"][label] for label in rows[data.get("label_column", "label")]]


def _base_model(given: Given, task: str, num_labels: int):
    """The base model's config, the class that was trained and its number of parameters (built on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    options = {"gguf_file": given.gguf_file} if given.gguf_file else {}
    model_config = AutoConfig.from_pretrained(given.base_model_folder, **options)
    auto = AutoModelForSequenceClassification if task == "sequence-classification" else AutoModelForCausalLM
    if task == "sequence-classification":
        model_config.num_labels = num_labels
    with torch.device("meta"):
        model = auto.from_config(model_config)
    return model_config, type(model).__name__, model.num_parameters()


def _safetensors_parameters(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as weights:
        return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())


def _scores(rows: list[dict[str, Any]], label_names: list[str]) -> dict[str, Any]:
    """The metrics of a predictions file, with scikit-learn: F1, precision and recall macro-averaged over the labels."""
    from sklearn import metrics

    truth = [label_names.index(row["label"]) for row in rows]
    predicted = [label_names.index(row["prediction"]) if row["prediction"] in label_names else -1 for row in rows]
    labels = list(range(len(label_names)))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    matrix = metrics.confusion_matrix(truth, predicted, labels=[*labels, -1])[: len(labels)]
    unmatched = sum(label == -1 for label in predicted)
    return {
        "accuracy": metrics.accuracy_score(truth, predicted),
        "f1": metrics.f1_score(truth, predicted, labels=labels, average="macro", zero_division=0),
        "precision": metrics.precision_score(truth, predicted, labels=labels, average="macro", zero_division=0),
        "recall": metrics.recall_score(truth, predicted, labels=labels, average="macro", zero_division=0),
        "matthews_correlation": metrics.matthews_corrcoef(truth, predicted),
        "per_class": {name: (precision[i], recall[i], f1[i], int(support[i])) for i, name in enumerate(label_names)},
        "confusion": [list(map(int, row)) if unmatched else list(map(int, row[:-1])) for row in matrix],
        "unmatched": unmatched,
    }


# --- the checks -------------------------------------------------------------------------------


def _check_metadata(card: Card, metadata: dict[str, Any], facts: dict[str, Any]) -> None:
    from hubcard.metadata import metadata_problems  # the validator is the fact here: the Hub's rules

    config = facts["config"]
    card.problems += [f"metadata: {problem}" for problem in metadata_problems(metadata)]
    card.expect("metadata base_model", metadata.get("base_model"), facts["base_hub_id"])
    card.expect("adapter_config.json base_model_name_or_path", facts["adapter_config"]["base_model_name_or_path"], facts["base_hub_id"])
    card.expect("metadata library_name", metadata.get("library_name"), "peft")
    card.expect("metadata pipeline_tag", metadata.get("pipeline_tag"), PIPELINE_TAGS[facts["task"]])
    card.expect("metadata license", metadata.get("license"), facts["license"])
    card.expect("metadata language", metadata.get("language"), facts["language"])
    card.expect("metadata datasets", metadata.get("datasets"), [facts["hub_id"]] if facts["hub_id"] else None)
    card.expect("metadata metrics", metadata.get("metrics"), facts["metrics"])
    method = config.get("peft", {}).get("method") or ("dora" if facts["adapter_config"].get("use_dora") else "lora")
    card.expect("metadata tags", {facts["adapter_config"]["peft_type"].lower(), method} <= set(metadata.get("tags", [])), True)
    if not facts["hub_id"]:
        card.expect("model-index for local data without a Hub id", "model-index" in metadata, False)
        return
    results = metadata["model-index"][0]["results"]
    card.expect("model-index metrics", [metric["type"] for result in results for metric in result["metrics"]], facts["metrics"])
    for result in results:
        for metric in result["metrics"]:
            card.expect(f"model-index {metric['type']}", metric["value"], round(facts["scores"]["Adapter"][metric["type"]], 4))
        card.expect("model-index dataset.type", result["dataset"]["type"], facts["hub_id"])
        card.expect("model-index dataset.split", result["dataset"].get("split"), config["data"].get("eval_split", "validation"))


def _check_title_and_details(card: Card, facts: dict[str, Any], given: Given) -> None:
    labels, config = facts["labels"], facts["config"]
    method = "DoRA" if facts["adapter_config"].get("use_dora") else "LoRA"
    match = card.find(r"^A (\S+) adapter \(\[PEFT\].*that classifies text into (\d+) classes: (.*)\.$")
    if match:
        card.expect("method", match.group(1), method)
        card.expect("number of classes", int(match.group(2)), len(labels))
        card.expect("classes", [plain(label) for label in match.group(3).split(", ")], labels)
    state = given.trainer_state
    trained = card.find(r"^It was trained on ([\d,]+) examples of .* for (\S+) epochs?\.$", required=facts["train_labels"] is not None)
    if trained:
        card.expect("training examples", int(trained.group(1).replace(",", "")), len(facts["train_labels"]))
        card.expect("epochs", trained.group(2), f"{state['epoch']:.3g}")
    headline = card.find(r"^On ([\d,]+) (held-out )?examples \(split `([^`]+)`\), (\w+) goes from \*\*([\d.]+)\*\* .* \*\*([\d.]+)\*\* with the adapter: ([-+][\d.]+), 95% confidence interval \[(\S+), (\S+)\]\.$")
    if headline:
        name = headline.group(4)
        base, adapter = facts["scores"]["Base model"][name], facts["scores"]["Adapter"][name]
        card.expect("evaluation examples", int(headline.group(1).replace(",", "")), len(facts["eval_labels"]))
        card.expect("headline metric", name, facts["metrics"][0])
        card.expect("headline base score", headline.group(5), f"{base:.3f}")
        card.expect("headline adapter score", headline.group(6), f"{adapter:.3f}")
        card.expect("headline difference", headline.group(7), f"{adapter - base:+.3f}")
        low, high = float(headline.group(8)), float(headline.group(9))
        card.expect("the difference lies in its interval", low - 0.0005 <= adapter - base <= high + 0.0005, True)
        verdict = "excludes zero: the gain" if low > 0 else "excludes zero: the adapter is really worse" if high < 0 else "includes zero"
        card.has(f"The interval {verdict}")
    if developed := card.find(r"^- \*\*Developed by:\*\* (.*)$", required=False):
        card.expect("developed by", plain(developed.group(1)), config.get("card", {}).get("developed_by") or (facts["repo_id"] or "").split("/")[0])
    model_type = card.find(r"^- \*\*Model type:\*\* (\S+) adapter for text classification on `(\w+)`, a ([\d.]+[KMB]?)-parameter `(\w+)` model")
    if model_type:
        card.expect("model type: method", model_type.group(1), method)
        card.expect("model type: architecture", model_type.group(2), facts["architecture"])
        card.expect("model type: parameters", model_type.group(3), _parameters(facts["base_parameters"]))
        card.expect("model type: model_type", model_type.group(4), facts["model_type"])
    if language := card.find(r"^- \*\*Language\(s\) \(NLP\):\*\* (.*)$", required=False):
        card.expect("language", [plain(code) for code in language.group(1).split(", ")], facts["language"])
    if license := card.find(r"^- \*\*License:\*\* (.*)$", required=False):
        card.expect("license", plain(license.group(1)), facts["license"])
    finetuned = card.find(r"^- \*\*Finetuned from model:\*\* (.*)$")
    if finetuned and facts["base_hub_id"]:
        card.expect("finetuned from", finetuned.group(1).split(",")[0], f"[{facts['base_hub_id'].replace('_', chr(92) + '_')}]({HUB}/{facts['base_hub_id']})")
    if repository := card.find(r"^- \*\*Repository:\*\* (.*)$", required=False):
        card.expect("repository", repository.group(1), f"{HUB}/{facts['repo_id']}")


def _check_adapter(card: Card, facts: dict[str, Any]) -> None:
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    saved, config = facts["adapter_config"], facts["config"]
    card.has(f"PEFT type `{saved['peft_type']}`")
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory() for f in dataclasses.fields(PEFT_TYPE_TO_CONFIG_MAPPING[saved["peft_type"]])}
    defaults["target_modules"] = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(facts["model_type"])
    if saved.get("task_type") == "SEQ_CLS":
        defaults["modules_to_save"] = ["classifier", "score"]
    peft_section = config.get("peft") or {}
    configured = {key for key in peft_section if key != "method"} | ({"use_dora"} if peft_section.get("method") == "dora" else set())
    author = "your code" if not config.get("peft") else "hubcard"
    rows = card.table("### Adapter", "| Setting | Value | Set by |")
    shown = {}
    for name, value, source in rows:
        shown[name] = source
        true_value = saved[name]
        card.expect(f"adapter setting {name}", value, _setting(sorted(true_value) if isinstance(true_value, list) else true_value))
        default = defaults.get(name)
        is_default = _same(true_value, default)
        true_source = "config" if name in configured else "PEFT default" if is_default else author
        card.expect(f"who set {name}", source, true_source)
    bookkeeping = {"base_model_name_or_path", "revision", "peft_type", "task_type", "inference_mode", "peft_version", "auto_mapping"}
    for name, value in saved.items():
        if name not in bookkeeping and name in defaults and not _same(value, defaults[name]) and name not in shown:
            card.problems.append(f"adapter setting {name}={value!r} differs from PEFT's default {defaults[name]!r} but is not in the card")
    trainable = card.find(r"^- \*\*Trainable parameters:\*\* ([\d,]+) of ([\d,]+) \(([\d.]+)%\)")
    if trainable:
        total = facts["base_parameters"] + facts["trainable"]
        card.expect("trainable parameters", int(trainable.group(1).replace(",", "")), facts["trainable"])
        card.expect("total parameters", int(trainable.group(2).replace(",", "")), total)
        card.expect("trainable share", trainable.group(3), f"{facts['trainable'] / total * 100:.2f}")
    for pattern in (r"^- \*\*Adapter size on disk:\*\* (.*)$", r"^- \*\*Adapter size:\*\* (.*)$"):
        if size := card.find(pattern):
            card.expect("adapter size", size.group(1), _adapter_size(facts))
    technical = card.find(r"^`(\w+)` \(`(\w+)`, ([\d.]+[KMB]?) parameters, `(\w+)`\) with a (\w+) adapter on (.*?)(; (.*) trained in full when present)?\.$")
    if technical:
        card.expect("architecture", technical.groups()[:4], (facts["architecture"], facts["model_type"], _parameters(facts["base_parameters"]), "float32"))
        card.expect("adapted modules", [plain(name) for name in technical.group(6).split(", ")], sorted(saved["target_modules"]))
        card.expect("modules trained in full", [plain(name) for name in technical.group(8).split(", ")] if technical.group(8) else None, sorted(saved["modules_to_save"]) if saved.get("modules_to_save") else None)
    card.find(r"^Objective: the " + ("cross-entropy of the classification head over the %d labels\\.$" % len(facts["labels"]) if facts["task"] == "sequence-classification" else "causal language-modelling loss"))


def _check_uses_and_risks(card: Card, facts: dict[str, Any], given: Given) -> None:
    max_length = facts["max_length"]
    card.has(f"or texts longer than {max_length} tokens.")
    if facts["task"] == "sequence-classification":
        said = "hubcard's evaluation and the code below cut texts at" if given.notebook else "Texts are cut at"
        card.has(f"- {said} {max_length} tokens")
        card.has(f"max_length={max_length}, return_tensors=\"pt\")")
    interval = card.find(r"^- It was evaluated on ([\d,]+) examples of one split\. .* interval of the adapter's (\w+) is \[(\S+), (\S+)\]")
    if interval:
        score = facts["scores"]["Adapter"][interval.group(2)]
        card.expect("evaluated examples", int(interval.group(1).replace(",", "")), len(facts["eval_labels"]))
        card.expect("the adapter's score lies in its interval", float(interval.group(3)) - 0.0005 <= score <= float(interval.group(4)) + 0.0005, True)
    weakest = card.find(r"^- It is weakest on `([^`]+)`: F1 ([\d.]+), recall ([\d.]+) \(([\d,]+) evaluation examples\)\.$", required=False)
    per_class = facts["scores"]["Adapter"]["per_class"]
    if weakest:
        name = min(per_class, key=lambda label: per_class[label][2])
        card.expect("weakest class", weakest.groups(), (name, f"{per_class[name][2]:.3f}", f"{per_class[name][1]:.3f}", f"{per_class[name][3]:,}"))
    majority = card.find(r"^- ([\d.]+)% of the training examples are `([^`]+)`", required=False)
    if majority:
        counts = Counter(facts["train_labels"])
        most = max(counts.values())
        card.expect("majority label (one of the most frequent)", counts[majority.group(2)], most)
        card.expect("majority share", majority.group(1), f"{most / len(facts['train_labels']) * 100:.1f}")
    unmatched = card.find(r"^- ([\d,]+) of the adapter's answers \(and ([\d,]+) of the base model's\) named no label word", required=False)
    if unmatched or facts["scores"]["Adapter"]["unmatched"] or facts["scores"]["Base model"]["unmatched"]:
        card.expect("unmatched answers", unmatched.groups() if unmatched else None, (f"{facts['scores']['Adapter']['unmatched']:,}", f"{facts['scores']['Base model']['unmatched']:,}"))
    if facts["base_hub_id"] and facts["repo_id"]:
        card.has(f"base_model_id = {facts['base_hub_id']!r}")
        card.has(f"adapter_id = {facts['repo_id']!r}")


def _check_training(card: Card, facts: dict[str, Any], given: Given) -> None:
    config, state, arguments = facts["config"], given.trainer_state, given.training_arguments
    data = config["data"]
    if facts["train_labels"] is not None:
        said = r", as given to hubcard: your own code trained the adapter on them\.$" if given.notebook else r"\. The text is in the column"
        rows = card.find(r"^([\d,]+) examples of .*?(?:, split `([^`]+)`)?(?:, shuffled and cut to at most [\d,]+)?" + said)
        if rows and (rows.group(2) or not facts["hub_id"]):
            card.expect("training rows", int(rows.group(1).replace(",", "")), len(facts["train_labels"]))
            card.expect("training split", rows.group(2), data.get("train_split", "train") if facts["hub_id"] or not given.notebook else None)
            if data.get("max_train_samples"):
                card.expect("cut to", f"cut to at most {data['max_train_samples']:,}" in rows.string, True)
        train, evaluated = Counter(facts["train_labels"]), Counter(facts["eval_labels"])
        table = card.table("### Training Data", "| Label | Training examples |")
        card.expect(
            "label distribution",
            table,
            [
                [f"{name}", f"{train[name]:,}", f"{train[name] / len(facts['train_labels']) * 100:.1f}%", f"{evaluated[name]:,}", f"{evaluated[name] / len(facts['eval_labels']) * 100:.1f}%"]
                for name in facts["labels"]
            ],
        )
    if facts["task"] == "sequence-classification":
        if given.notebook:
            stated = "and cut them at" in " ".join(card.lines)
            card.expect("the training's max_length is stated only when the user gave it", stated, "max_length" in data)
            card.has(f"hubcard's evaluation cuts each text at {facts['max_length']} tokens.")
        else:
            card.has(f"Each text is tokenized with the base model's tokenizer and cut at {facts['max_length']} tokens")
    else:
        card.expect("prompt", f"```text\n{(config.get('task') or {}).get('prompt_template', DEFAULT_PROMPT)}\n```" in "\n".join(card.lines), True)
    _check_precision(card, config, arguments, given)
    epochs = card.find(r"^- \*\*Epochs:\*\* (\S+) \(([\d,]+) optimizer steps(, gradients accumulated over (\d+) batches)?\)$")
    if epochs:
        card.expect("epochs", epochs.group(1), f"{state['epoch']:.3g}")
        card.expect("optimizer steps", int(epochs.group(2).replace(",", "")), state["global_step"])
        card.expect("accumulation", int(epochs.group(4) or 1), arguments.gradient_accumulation_steps)
    if seed := card.find(r"^- \*\*Seed:\*\* (\d+)$"):
        card.expect("seed", int(seed.group(1)), arguments.seed)
    _check_training_arguments(card, config, arguments, given)
    losses = [entry for entry in state["log_history"] if "loss" in entry]
    if final := card.find(r"^- \*\*Final training loss:\*\* (\S+)$"):
        card.expect("final loss", float(final.group(1)), round(losses[-1]["loss"], 4))
    for step, epoch, loss in card.table("<summary>Training loss by step</summary>", "| Step | Epoch | Loss |"):
        entry = next((entry for entry in losses if entry["step"] == int(step)), None)
        card.expect(f"loss at step {step}", (epoch, float(loss)), (str(round(entry["epoch"], 2)), round(entry["loss"], 4)) if entry else None)
    _check_config_block(card, config, given)


def _check_precision(card: Card, config: dict[str, Any], arguments: Any, given: Given) -> None:
    """The training's precision as the Trainer ran it, who chose it and why: the notebook's own
    TrainingArguments, the config's training.bf16/fp16, else hubcard from what the CPU's flags say it
    computes natively; the evaluation's (on a CPU: the config's evaluation.precision, else fp32)."""
    regime = "bf16" if arguments.bf16 else "fp16" if arguments.fp16 else "fp32"
    trained_in = regime + (" mixed precision" if regime != "fp32" else "")
    stated = card.find(r"^- \*\*Training regime:\*\* (.+?) \(set by (hubcard|the config|your code): (.+)\)$")
    if stated:
        training = config.get("training") or {}
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "").split()
        native = "AMX-BF16" if "amx_bf16" in flags else "AVX512_BF16" if "avx512_bf16" in flags else None
        if given.notebook:
            who, why = "your code", "TrainingArguments"
        elif training.get(regime) is True:
            who, why = "the config", f"training.{regime}: true"
        elif native and training.get("bf16") is False:
            who, why = "the config", "training.bf16: false"
        else:
            who, why = "hubcard", native or "no bf16 instructions"
        card.expect("training regime", stated.group(1), trained_in)
        card.expect("who chose the precision", stated.group(2), who)
        card.expect("why this precision", why in plain(stated.group(3)), True)
    evaluated_in = (config.get("evaluation") or {}).get("precision") or "fp32"
    card.has(f"- **Precision:** training in {trained_in}, evaluation in {evaluated_in}")


def _check_training_arguments(card: Card, config: dict[str, Any], arguments: Any, given: Given) -> None:
    from transformers import TrainingArguments

    defaults = TrainingArguments(output_dir=arguments.output_dir).to_dict()
    actual = arguments.to_dict()
    not_hyperparameters = ("output_dir", "logging_dir", "run_name", "disable_tqdm")  # paths, names, display: follows the log level
    changed = {name: value for name, value in actual.items() if name not in not_hyperparameters and value != defaults.get(name)}
    user = set(config.get("training") or {})
    rows = card.table("#### Training Hyperparameters", "| Argument | Value | Set by |")
    card.expect("changed TrainingArguments", sorted(row[0] for row in rows), sorted(name for name, value in changed.items() if value is not None))
    for name, value, source in rows:
        card.expect(f"TrainingArguments {name}", value, _setting(actual.get(name)))
        card.expect(f"who set {name}", source, "your code" if given.notebook else "config" if name in user else "hubcard")


def _check_config_block(card: Card, config: dict[str, Any], given: Given) -> None:
    text = "\n".join(card.lines)
    block = re.search(r"<summary>config.yaml</summary>\n\n```yaml\n(.*?)\n```", text, re.DOTALL)
    recorded = yaml.safe_load(block.group(1)) if block else {}
    repeat = "`hubcard train-and-publish config.yaml` repeats the run." in text
    card.expect("a command repeats the run", repeat, not given.notebook)
    if given.notebook:
        card.expect("the recorded config names no training split", recorded["data"].get("train_split"), None)
        return
    for section, values in config.items():
        for key, value in (values.items() if isinstance(values, dict) else []):
            shown = recorded.get(section, {}).get(key)
            true = {split: Path(file).name for split, file in value.items()} if key == "files" else Path(value).name if key in ("name_or_path",) and "/" in str(value) and Path(str(value)).is_absolute() else value
            if key == "files" and shown:
                shown = {split: Path(file).name for split, file in shown.items()}
            if key == "name_or_path" and isinstance(value, str) and value.startswith("package:"):
                continue
            if isinstance(true, str) and isinstance(shown, float):  # YAML reads 2e-3 as a string; TrainingArguments' type is float
                true = float(true)
            card.expect(f"config block {section}.{key}", shown, true)


def _check_user_texts(card: Card, config: dict[str, Any]) -> None:
    """The card's own texts from the config (`card.description`, ...) appear as written."""
    for key, text in (config.get("card") or {}).items():
        if isinstance(text, str) and key not in ("license", "license_name", "license_link", "model_name", "template", "developed_by"):
            card.find("^" + re.escape(text.strip()) + "$")


def _check_evaluation(card: Card, facts: dict[str, Any]) -> None:
    tested = card.find(r"^The ([\d,]+) examples of .*, split `([^`]+)`")
    if tested:
        card.expect("testing examples", int(tested.group(1).replace(",", "")), len(facts["eval_labels"]))
        card.expect("testing split", tested.group(2), facts["config"]["data"].get("eval_split", "validation"))
    card.has(f"{facts['config'].get('evaluation', {}).get('bootstrap_samples', 1000):,} resamples of the evaluation examples")
    defined = [match.group(1) for index, line in enumerate(card.lines) if (match := re.match(r"^- \*\*(\w+)\*\*: ", line)) and not card.verified.add(index)]
    card.expect("the metrics defined", defined, facts["metrics"])
    for name, base, adapter, difference, verdict in card.table("### Results", "| Metric | Base model |"):
        b, a = facts["scores"]["Base model"][name], facts["scores"]["Adapter"][name]
        card.expect(f"{name} base", base.split(" ")[0], f"{b:.3f}")
        card.expect(f"{name} adapter", adapter.split(" ")[0], f"{a:.3f}")
        card.expect(f"{name} difference", difference.split(" ")[0], f"{a - b:+.3f}")
        low, high = (float(x) for x in re.findall(r"\[(\S+), (\S+)\]", difference)[0])
        card.expect(f"{name} verdict", verdict, "better" if low > 0 else "worse" if high < 0 else "within noise")
    per_class = card.table("#### Results by class", "| Label | Examples |")
    expected_rows = []
    for name in facts["labels"]:
        b, a = facts["scores"]["Base model"]["per_class"][name], facts["scores"]["Adapter"]["per_class"][name]
        expected_rows.append([name, f"{a[3]:,}", " / ".join(f"{x:.3f}" for x in b[:3]), " / ".join(f"{x:.3f}" for x in a[:3])])
    card.expect("results by class", per_class, expected_rows)
    for title in ("Base model", "Adapter"):
        matrix = card.table(f"**{title}**", "| true \\ predicted |")
        card.expect(f"confusion matrix of the {title}", [[int(x.replace(",", "")) for x in row[1:]] for row in matrix], facts["scores"][title]["confusion"])
    predictions = {(row["text"], row["label"]): row for row in facts["predictions"]["adapter"]}
    base_rows = {row["row"]: row for row in facts["predictions"]["base"]}
    for text, label, base, adapter, _ in card.table("#### Examples", "| Text | True label |"):
        row = next((row for (shown, truth), row in predictions.items() if truth == label and _shows(shown, text)), None)
        shown = [cell.split("<br>")[0].split(" ", 1)[1].strip() for cell in (base, adapter)]
        card.expect(f"example {text[:40]!r}: an evaluation example and its predictions", row and [base_rows[row["row"]]["prediction"], row["prediction"]], shown)
    summary = card.find(r"^On the ([\d,]+) evaluation examples, the adapter is better than the base model on (\d+) of (\d+) metrics")
    if summary:
        card.expect("summary", (int(summary.group(1).replace(",", "")), int(summary.group(3))), (len(facts["eval_labels"]), len(facts["metrics"])))


def _check_software(card: Card) -> None:
    for index, line in enumerate(card.lines):
        if match := re.match(r"^- ([\w.\\-]+) (\d[\w.+-]*)$", line):
            name, version = plain(match.group(1)), match.group(2)
            card.expect(f"version of {name}", version, "0.1.0" if name == "hubcard" else importlib.metadata.version(name))
            card.verified.add(index)
        if match := re.match(r"^Emissions were measured during training with codecarbon (\S+) ", line):
            card.expect("codecarbon version", match.group(1), importlib.metadata.version("codecarbon"))
            card.verified.add(index)
        if match := re.match(r'^pip install "peft==(\S+)" "transformers==(\S+)" torch$', line):
            card.expect("pip install versions", match.groups(), (importlib.metadata.version("peft"), importlib.metadata.version("transformers")))
            card.verified.add(index)


# --- helpers ----------------------------------------------------------------------------------


def _states_a_number(card: Card, index: int) -> bool:
    """A line of prose or a table row, outside code blocks and the config, that states a number."""
    in_code = sum(1 for line in card.lines[:index] if line.startswith("```")) % 2 == 1
    line = card.lines[index]
    return (
        not in_code
        and not line.startswith(("```", "![", "#"))
        and bool(re.search(r"\d", re.sub(r"\[[^\]]*\]\([^)]*\)|`[^`]*`|\d+% confidence|95%|hubcard \d[\d.]*", "", line)))
        and not UNVERIFIABLE.match(line)
    )


def _same(value: Any, default: Any) -> bool:
    def normal(item: Any) -> Any:
        item = getattr(item, "value", item)
        if isinstance(item, (set, frozenset, list, tuple)):
            return sorted(map(str, item))
        return item

    return normal(value) == normal(default)


def _setting(value: Any) -> str:
    """A value as the card's tables show it."""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) if value else "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True, width=1_000_000).strip()
    return str(value)


def _parameters(count: int) -> str:
    for divisor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= divisor:
            return f"{count / divisor:.1f}{suffix}"
    return str(count)


def _adapter_size(facts: dict[str, Any]) -> str:
    from jinja2.filters import do_filesizeformat

    weights = ", ".join(f"`{name}`" for name in sorted(facts["weights"]))
    others = ", ".join(f"`{name}`" for name in sorted(facts["file_sizes"]) if name not in facts["weights"])
    said = f"{do_filesizeformat(sum(facts['weights'].values()))} of weights ({weights})"
    return f"{said}; {do_filesizeformat(sum(facts['file_sizes'].values()))} in all, with {others}" if others else said


def _shows(text: str, cell: str) -> bool:
    """Whether a table cell shows `text` (one line, perhaps cut with an ellipsis)."""
    line = re.sub(r"\s", " ", text).strip()
    return cell == line or (cell.endswith("…") and line.startswith(cell[:-1].rstrip()))


def cli_run(run_dir: Path, config_file: Path, overrides: list[str]) -> Given:
    """What a `hubcard train-and-publish CONFIG KEY=VALUE...` run was given, and what its Trainer
    recorded in the last checkpoint."""
    import torch

    from hubcard.config import local_path  # where a `package:NAME/PATH` path is: the config's convention, not the card's

    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    for item in overrides:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    files = config["data"].get("files") or {}
    config["data"]["files"] = {split: str(_resolve(file, config_file.parent, local_path)) for split, file in files.items()}
    checkpoint = max((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda folder: int(folder.name.split("-")[1]))
    model = _resolve(config["model"]["name_or_path"], config_file.parent, local_path)
    return Given(
        config=config,
        base_model_folder=model.parent if model.suffix == ".gguf" else model,
        gguf_file=model.name if model.suffix == ".gguf" else None,
        trainer_state=json.loads((checkpoint / "trainer_state.json").read_text()),
        training_arguments=torch.load(checkpoint / "training_args.bin", weights_only=False),
    )


def _resolve(path: str, folder: Path, local_path) -> Path:
    if path.startswith("package:"):
        return local_path(path)
    return Path(path) if Path(path).is_absolute() else (folder / path).resolve()
