"""Refreshing the card of an adapter already on the Hub: `hubcard render-card --repo USER/NAME`.

    README.md, adapter_config.json, the file list ──► what the repo tells ──► the card, section by section

A section a person wrote is kept, word for word; only its placeholder lines ("[More Information
Needed]") are filled from the repo or dropped. A section that holds nothing but the template's text
(its guidance comments, boilerplate sentences, placeholders) is filled with what the repo tells — the
base model, the PEFT method and its settings, how to load the adapter, its files, the PEFT version —
or removed. The front matter is repaired, the body kept: base_model (a Hub id, never a local path),
library_name: peft, the PEFT tags, pipeline_tag; every other key stays.

Nothing is uploaded unless `push` (a commit) or `pr` (a pull request) is asked for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import AbstractSet, Any, NamedTuple

import yaml
from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import RemoteEntryNotFoundError
from jinja2.filters import do_filesizeformat

from hubcard.card import ADAPTER_SETTINGS, BASE_MODEL_STAND_IN, HUB_URL, METHOD_NAMES
from hubcard.errors import CardError
from hubcard.hub import HUB_ERRORS, hub_error, patient_client, request_timeout, require_token, with_retries
from hubcard.lint import PLACEHOLDER, split_front_matter
from hubcard.metadata import MetadataProblem, is_hub_id, metadata_problems
from hubcard.repos import read_file
from hubcard.rundir import write_text_atomic
from hubcard.sections import (
    KEY_LINE, OPTIONAL, Section, has_text, parse_sections, subsection_indexes, template_lines, without_placeholders, written,
)  # fmt: skip

CARD = "README.md"
ADAPTER_CONFIG = "adapter_config.json"
COMMIT_MESSAGE = "Refresh the model card with hubcard"
PEFT_VERSION = re.compile(r"^\s*-\s*PEFT\s+(\S+)\s*$", re.MULTILINE)


class PeftTask(NamedTuple):
    words: str
    auto_class: str
    """The transformers class that loads the base model."""
    pipeline_tag: str


PEFT_TASKS = {
    "SEQ_CLS": PeftTask("sequence classification", "AutoModelForSequenceClassification", "text-classification"),
    "CAUSAL_LM": PeftTask("text generation", "AutoModelForCausalLM", "text-generation"),
    "SEQ_2_SEQ_LM": PeftTask("sequence-to-sequence generation", "AutoModelForSeq2SeqLM", "text2text-generation"),
    "TOKEN_CLS": PeftTask("token classification", "AutoModelForTokenClassification", "token-classification"),
    "QUESTION_ANS": PeftTask("question answering", "AutoModelForQuestionAnswering", "question-answering"),
    "FEATURE_EXTRACTION": PeftTask("feature extraction", "AutoModel", "feature-extraction"),
}


@dataclass(frozen=True)
class RepoFacts:
    """What a repo tells about its adapter."""

    repo_id: str
    base_model: str | None
    """The base model's Hub id; None when adapter_config.json names a local path or nothing."""
    peft_type: str
    method: str
    """hubcard's name for the method: lora, dora, ia3..."""
    task: PeftTask | None
    """None when adapter_config.json's task_type is missing or unknown."""
    settings: dict[str, Any]
    peft_version: str | None
    files: dict[str, int]
    """Path -> size of the repo's files."""
    metadata: dict[str, Any]
    """The card's front matter as found (empty when missing or broken)."""

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.method, self.peft_type)

    @property
    def summary(self) -> str:
        base = f"[{self.base_model}]({HUB_URL}/{self.base_model})" if self.base_model else "its base model"
        task = f" for {self.task.words}" if self.task else ""
        return f"A {self.method_name} adapter (PEFT) of {base}{task}."


@dataclass(frozen=True)
class RefreshOutcome:
    repo_id: str
    text: str
    kept: list[str]
    filled: list[str]
    removed: list[str]
    metadata_changes: list[str]
    metadata_problems: list[MetadataProblem] = field(default_factory=list)
    """What the Hub would still refuse in the refreshed front matter: keys a person must fix."""
    path: Path | None = None
    commit: CommitInfo | None = None
    up_to_date: bool = False

    def summary(self) -> str:
        lines = [
            f"Refreshed the card of {self.repo_id}: kept {len(self.kept)} written section(s)"
            + (f" ({', '.join(self.kept)})" if self.kept else "")
            + f", filled {len(self.filled)}, removed {len(self.removed)} placeholder section(s).",
        ]
        if self.metadata_changes:
            lines.append(f"Front matter: {'; '.join(self.metadata_changes)}.")
        if self.metadata_problems:
            lines.append("The Hub would refuse this front matter; fix these keys in the card:")
            lines += [f"  - {problem}" for problem in self.metadata_problems]
        if self.path is not None:
            lines.append(f"Card written to {self.path} (nothing uploaded; --push or --pr uploads it).")
        if self.up_to_date:
            lines.append("The card on the Hub is already this one: nothing pushed.")
        elif self.commit is not None and self.commit.pr_url:
            lines.append(f"Pull request opened: {self.commit.pr_url}")
        elif self.commit is not None:
            lines.append(f"Pushed: {self.commit.commit_url}")
        return "\n".join(lines)


def refresh_repo_card(
    repo_id: str, *, template: str | Path | None = None, output: str | Path | None = None, push: bool = False, pr: bool = False
) -> RefreshOutcome:
    """Refresh the card of the adapter repo `repo_id` (see the module's docstring).

    `template`: the card template the repo's card was made from (default: the Hub's); its text counts
    as placeholder text. `output`: where to write the card (default: REPO--NAME.README.md in the current
    folder, unless pushing). `push`: commit it to the repo; `pr`: open a pull request with it.
    """
    if push and pr:
        raise CardError("give --push or --pr, not both")
    rerun = f"hubcard render-card --repo {repo_id}" + (" --push" if push else " --pr" if pr else "")
    token = require_token(f"pushing the card of {repo_id}") if push or pr else None
    known_text = template_lines(template)
    api = HfApi(token=token)
    try:
        with patient_client():
            head, card_text, facts = _read_repo(api, repo_id)
            outcome = refresh_card(card_text, facts, known_text)
            if (push or pr) and outcome.metadata_problems:
                listed = "\n".join(f"  - {problem}" for problem in outcome.metadata_problems)
                raise CardError(
                    f"the refreshed card of {repo_id} has metadata the Hub would refuse; nothing was pushed. Run without "
                    f"--push/--pr to write it to a file, fix these keys, and upload it:\n{listed}"
                )
            if push or pr:
                commit, up_to_date = _push(api, repo_id, head, outcome, pr)
                return replace(outcome, commit=commit, up_to_date=up_to_date)
    except HUB_ERRORS as error:
        raise hub_error(error, repo_id=repo_id, rerun=rerun) from error
    path = Path(output) if output else Path(f"{repo_id.replace('/', '--')}.README.md")
    write_text_atomic(path, outcome.text)
    return replace(outcome, path=path)


def refresh_card(text: str, facts: RepoFacts, template_text: AbstractSet[str]) -> RefreshOutcome:
    """The refreshed card of `text` (the repo's README.md); `template_text`: the template's lines (`sections.template_lines`)."""
    _, body, _ = split_front_matter(text)
    derived = _derived_sections(facts)
    sections = parse_sections(body)
    kept, filled = [], []
    for section in sections:
        if written(section, template_text):
            section.lines = _fill_placeholder_lines(section.lines, facts)
            if has_text(section.lines):
                kept += [section.heading.strip()] if section.heading else []
                continue
        key = section.key
        section.heading = _template_heading(section.heading, facts)
        section.lines = ["", *derived[key], ""] if key in derived else []
        if key in derived and section.heading:
            filled.append(section.heading.strip())
    lines, removed = _render(sections)
    metadata, changes = _metadata(facts)
    body = "\n".join(lines).strip() + "\n"
    text = f"---\n{metadata.to_yaml()}\n---\n\n{body}"
    return RefreshOutcome(facts.repo_id, text, kept, filled, removed, changes, metadata_problems(metadata.to_dict()))


# --- reading the repo -------------------------------------------------------------------------------


def _read_repo(api: HfApi, repo_id: str) -> tuple[str, str, RepoFacts]:
    """The head commit, README.md (the template's text when there is none) and the facts of `repo_id`."""
    info = api.model_info(repo_id, files_metadata=True, timeout=request_timeout())
    assert info.sha is not None
    files = {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or [] if sibling.rfilename != ".gitattributes"}
    if ADAPTER_CONFIG not in files:
        raise CardError(f"{repo_id} has no {ADAPTER_CONFIG}: it is not a PEFT adapter, and hubcard refreshes adapter cards only")
    adapter_config = _adapter_config(repo_id, read_file(api, repo_id, ADAPTER_CONFIG, revision=info.sha))
    try:
        card_text = read_file(api, repo_id, CARD, revision=info.sha).decode("utf-8-sig")
    except RemoteEntryNotFoundError:
        card_text = str(ModelCard.from_template(ModelCardData()))
    return info.sha, card_text, repo_facts(repo_id, adapter_config, card_text, files)


def _adapter_config(repo_id: str, content: bytes) -> dict[str, Any]:
    try:
        config = json.loads(content)
    except ValueError as error:
        raise CardError(f"{ADAPTER_CONFIG} of {repo_id} is not valid JSON ({error}): fix it in the repo first") from None
    if not isinstance(config, dict):
        raise CardError(f"{ADAPTER_CONFIG} of {repo_id} is not a JSON object: fix it in the repo first")
    return config


def repo_facts(repo_id: str, adapter_config: dict[str, Any], card_text: str, files: dict[str, int]) -> RepoFacts:
    base = adapter_config.get("base_model_name_or_path")
    peft_type = str(adapter_config.get("peft_type") or "PEFT")
    version = adapter_config.get("peft_version") or (match.group(1) if (match := PEFT_VERSION.search(card_text)) else None)
    return RepoFacts(
        repo_id=repo_id,
        base_model=base if isinstance(base, str) and is_hub_id(base) else None,
        peft_type=peft_type,
        method="dora" if adapter_config.get("use_dora") else peft_type.lower(),
        task=PEFT_TASKS.get(str(adapter_config.get("task_type"))),
        settings={key: adapter_config[key] for key in ADAPTER_SETTINGS if adapter_config.get(key) not in (None, [], {})},
        peft_version=str(version) if version else None,
        files=files,
        metadata=_front_matter(card_text) or {},
    )


def _front_matter(text: str) -> dict[str, Any] | None:
    """The card's metadata, or None when it is missing or not a valid YAML mapping."""
    metadata, _, _ = split_front_matter(text)
    try:
        data = yaml.safe_load(metadata) if metadata else None
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


# --- the sections -----------------------------------------------------------------------------------


def _fill_placeholder_lines(lines: list[str], facts: RepoFacts) -> list[str]:
    """The lines, with a '**Key:** [More Information Needed]' line filled when the repo tells the key,
    and every other placeholder removed (with its line, when nothing else is on it)."""
    values = {key.lower(): value for key, value in _key_values(facts).items()}
    kept = []
    for line in lines:
        if not PLACEHOLDER.search(line):
            kept.append(line)
            continue
        key = KEY_LINE.match(line)
        if key and key.group("key").strip().lower() in values:
            kept.append(f"{key.group(0)} {values[key.group('key').strip().lower()]}")
            continue
        rest = without_placeholders(line)
        if has_text([KEY_LINE.sub("", rest)]):
            kept.append(rest)
    return kept


def _render(sections: list[Section]) -> tuple[list[str], list[str]]:
    """The card's lines, and the headings left out: those of sections with no text left, unless a
    subsection under one still has text."""
    lines: list[str] = []
    left_out: list[str] = []
    for index, section in enumerate(sections):
        children = [sections[child] for child in subsection_indexes(sections, index)]
        if not has_text(section.lines) and not any(has_text(child.lines) for child in children):
            left_out += [section.heading.strip()] if section.heading else []
            continue
        if section.heading:
            lines.append(section.heading)
        lines += section.lines if has_text(section.lines) else [""]
    return lines, left_out


def _template_heading(heading: str | None, facts: RepoFacts) -> str | None:
    """A heading of the template as the refreshed card shows it: without '[optional]', and with the
    repo's name in the template's title 'Model Card for Model ID'."""
    if heading is None:
        return None
    return OPTIONAL.sub("", heading).replace("Model Card for Model ID", f"Model Card for {facts.repo_id.split('/')[-1]}")


def _derived_sections(facts: RepoFacts) -> dict[str, list[str]]:
    """Section key -> the lines that fill it."""
    values = _key_values(facts)
    derived = {
        "model card for model id": [facts.summary],
        "model description": [f"- **{key}:** {value}" for key, value in values.items() if key != "Repository"],
        "model sources": [f"- **Repository:** {values['Repository']}"],
        "how to get started with the model": [
            "Load the adapter on top of its base model with PEFT:",
            "",
            "```python",
            *_usage(facts),
            "```",
        ],
        "model architecture and objective": [_architecture(facts)],
    }
    if facts.settings:
        derived["training hyperparameters"] = [
            f"The {facts.method_name} settings of the adapter (adapter_config.json):",
            "",
            *(f"- `{key}`: `{_setting(value)}`" for key, value in facts.settings.items()),
        ]
    files = {path: size for path, size in facts.files.items() if path != CARD}  # the card's own size changes with it
    if files:
        derived["speeds, sizes, times"] = [
            "The files of the repository:",
            "",
            *(f"- `{path}`: {do_filesizeformat(size)}" for path, size in sorted(files.items())),
        ]
    if facts.peft_version:
        derived["software"] = [f"- PEFT {facts.peft_version}"]
    return derived


def generated_lines(facts: RepoFacts) -> set[str]:
    """Every line a refresh writes from what the repo tells (without the template's '[optional]'):
    a tool's text, not a person's (see sections.read_sections)."""
    derived = {line for lines in _derived_sections(facts).values() for line in lines}
    return derived | {f"- **{key}:** {value}" for key, value in _key_values(facts).items()}


def _key_values(facts: RepoFacts) -> dict[str, str]:
    """The '**Key:**' lines of the template that the repo can fill: key as the template writes it -> value."""
    values = {"Model type": f"{facts.method_name} adapter (PEFT {facts.peft_type})"}
    if facts.base_model:
        values["Finetuned from model"] = f"[{facts.base_model}]({HUB_URL}/{facts.base_model})"
    if isinstance(facts.metadata.get("license"), str):
        values["License"] = facts.metadata["license"]
    languages = facts.metadata.get("language")
    if languages:
        values["Language(s) (NLP)"] = ", ".join(languages) if isinstance(languages, list) else str(languages)
    values["Repository"] = f"{HUB_URL}/{facts.repo_id}"
    return values


def _usage(facts: RepoFacts) -> list[str]:
    base = repr(facts.base_model or BASE_MODEL_STAND_IN)
    note = "" if facts.base_model else "  # the model the adapter was trained from: its Hub id is not recorded"
    auto_class = facts.task.auto_class if facts.task else "AutoModel"
    return [
        "from peft import PeftModel",
        f"from transformers import {auto_class}",
        "",
        f"base_model = {auto_class}.from_pretrained({base}){note}",
        f"model = PeftModel.from_pretrained(base_model, {facts.repo_id!r})",
    ]


def _architecture(facts: RepoFacts) -> str:
    modules = facts.settings.get("target_modules")
    adapted = f"; it adapts the modules {', '.join(f'`{name}`' for name in sorted(modules))}" if isinstance(modules, list) else ""
    return f"{facts.summary.removesuffix('.')} (PEFT type `{facts.peft_type}`){adapted}."


def _setting(value: Any) -> str:
    return ", ".join(map(str, sorted(value))) if isinstance(value, list) else json.dumps(value) if isinstance(value, bool) else str(value)


# --- the metadata -----------------------------------------------------------------------------------


def _metadata(facts: RepoFacts) -> tuple[ModelCardData, list[str]]:
    """The repaired front matter, and what changed in it."""
    data = dict(facts.metadata)
    changes = [] if facts.metadata else ["rebuilt (it was missing, empty or not valid YAML)"]
    base_models = data.get("base_model")
    listed = base_models if isinstance(base_models, list) else [base_models] if base_models else []
    hub_ids = [model for model in listed if isinstance(model, str) and is_hub_id(model)]
    if facts.base_model and facts.base_model not in hub_ids:
        hub_ids.append(facts.base_model)
    if hub_ids != listed:
        changes.append(f"base_model: {', '.join(hub_ids) or 'removed (a local path is not a Hub id)'}")
        data["base_model"] = (hub_ids[0] if len(hub_ids) == 1 else hub_ids) or None
    if data.get("library_name") != "peft":
        data["library_name"] = "peft"
        changes.append("library_name: peft")
    found = data.get("tags") or []
    found = [found] if isinstance(found, str) else found
    tags = [tag for tag in found if not _local_base_model_tag(tag)]
    wanted = ["peft", facts.peft_type.lower(), facts.method] + ([f"base_model:adapter:{facts.base_model}"] if facts.base_model else [])
    added = [tag for tag in dict.fromkeys(wanted) if tag not in tags]
    if added or len(tags) != len(found):
        data["tags"] = tags + added
        changes.append(f"tags: {', '.join(data['tags'])}")
    if not data.get("pipeline_tag") and facts.task:
        data["pipeline_tag"] = facts.task.pipeline_tag
        changes.append(f"pipeline_tag: {facts.task.pipeline_tag}")
    try:
        return ModelCardData(**data), changes
    except (ValueError, TypeError, KeyError) as error:
        data.pop("model-index", None)
        return ModelCardData(**data), [*changes, f"model-index removed (it could not be read: {error})"]


def _local_base_model_tag(tag: Any) -> bool:
    return isinstance(tag, str) and tag.startswith("base_model:") and not is_hub_id(tag.rsplit(":", 1)[-1])


# --- pushing ----------------------------------------------------------------------------------------


def _push(api: HfApi, repo_id: str, head: str, outcome: RefreshOutcome, pr: bool) -> tuple[CommitInfo | None, bool]:
    """Commit the refreshed card (as a pull request with `pr`); (None, True) when the Hub has it already."""

    def attempt() -> tuple[CommitInfo | None, bool]:
        current = api.model_info(repo_id, timeout=request_timeout()).sha or head
        try:
            remote = read_file(api, repo_id, CARD, revision=current).decode("utf-8-sig")
        except RemoteEntryNotFoundError:
            remote = None
        if remote == outcome.text:
            return None, True
        description = "Filled: " + (", ".join(outcome.filled) or "none") + ". Removed: " + (", ".join(outcome.removed) or "none") + "."
        operation = CommitOperationAdd(CARD, outcome.text.encode("utf-8"))
        commit = api.create_commit(
            repo_id, [operation], commit_message=COMMIT_MESSAGE, commit_description=description, create_pr=pr, parent_commit=current
        )
        return commit, False

    return with_retries(attempt, what=f"pushing the card of {repo_id}", safe_to_repeat=not pr)
