"""Refreshing the card of adapters already on the Hub: `hubcard render-card --repo USER/NAME...`.

    README.md, adapter_config.json, the file list, facts the staff give ──► the card, section by section,
    its front matter key by key ──► a file, a commit (--push) or hubcard's pull request (--pr)

The body. A section a person wrote is kept word for word; only its placeholder lines ("[More
Information Needed]") are filled from the repo or dropped. A section holding nothing but the
template's text (guidance comments, boilerplate, placeholders) is filled with what the repo tells —
the base model, the PEFT method and its settings, how to load the adapter, its files, the PEFT
version — unless the kept text states that fact already; a section only a person can write
(sections.TO_WRITE: Uses; Bias, Risks, and Limitations; Recommendations) gets a visible to-do for the
student instead (`to_write=False`: it is removed); any other is removed. A heading left with nothing
under it is dropped (a subsection of another section that sat under it moves up a level).

The front matter changes only where it must (hubcard.frontmatter: every other key keeps its lines and
its place): `base_model` when it is missing, not a Hub id or named twice; `library_name: peft` when
missing; `base_model:` tags that name no Hub model; duplicates in a list; the facts the staff give
(`--set`, a roster's columns); and, only when the card changes anyway, a missing `pipeline_tag`. No
tag is added (the Hub derives `base_model:adapter:...` itself). Lines that do not parse are kept as
comments and reported. `base_model` is only ever a Hub id the card states, adapter_config.json states or the staff
give — never a local folder's name (hubcard.model_ids) — and a legacy id and its new id are one model.

A refreshed card that differs from the repo's only in order or formatting is the repo's card: nothing
is pushed and no pull request is opened. Pull requests go through hubcard.pulls.propose: a re-run
updates hubcard's own pull request instead of opening another.
"""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Literal, NamedTuple

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import RemoteEntryNotFoundError
from jinja2.filters import do_filesizeformat
from pydantic import ValidationError

from hubcard.card import ADAPTER_SETTINGS, BASE_MODEL_STAND_IN, HUB_URL, METHOD_NAMES
from hubcard.config import CardSection
from hubcard.errors import CardError
from hubcard.frontmatter import REMOVE, FrontMatter, read_front_matter, split_front_matter, updated, with_front_matter
from hubcard.hub import HUB_ERRORS, hub_error, patient_client, request_timeout, require_token, with_retries
from hubcard.lint import PLACEHOLDER
from hubcard.metadata import MetadataProblem, metadata_problems
from hubcard.model_ids import model_id, same_model
from hubcard.pulls import HubcardPullRequest, Proposal, card_pull_request, open_pull_requests, pending, propose
from hubcard.repos import TABLE_WIDTH, Column, Row, SelectionError, Status, Target, Unchecked, read_file
from hubcard.results_card import holds_results
from hubcard.rundir import ADAPTER_CONFIG, CARD, write_text_atomic
from hubcard.sections import (
    KEY_LINE, OPTIONAL, Section, has_text, heading_key, hub_template_sections, is_to_write, normalized_lines, parse_sections,
    subsection_indexes, template_filled_lines, template_lines, to_write_lines, to_write_names, without_placeholders, written,
)  # fmt: skip

COMMIT_MESSAGE = "Refresh the model card with hubcard"
PEFT_VERSION = re.compile(r"^\s*-\s*PEFT\s+(\S+)\s*$", re.MULTILINE)
Mode = Literal["file", "push", "pr"]

METADATA_FACTS = ("base_model", "license", "language", "datasets")
"""Facts the staff may give that go into the front matter."""
KEY_LINE_FACTS = {"developed_by": "Developed by", "funded_by": "Funded by", "shared_by": "Shared by", "paper": "Paper", "demo": "Demo"}
"""Facts the staff may give that fill a '**Key:**' line of the template: fact -> the template's key."""
GIVEN_FACTS = (*METADATA_FACTS, *KEY_LINE_FACTS, "contact")
LIST_FACTS = ("language", "datasets")
"""Given as comma-separated values: `--set language=en,fr`."""
SOURCE_KEYS = ("Repository", "Paper", "Demo")
"""The '**Key:**' lines of the template's "Model Sources"; the others are "Model Description"'s."""


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
    """The base model's Hub id as adapter_config.json names it (once refreshed: the card's, see
    `refresh_card`); None when it names a local path, a folder name or nothing."""
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
    """The card's front matter: the keys that parse (hubcard.frontmatter)."""
    adapter_base: str | None = None
    """adapter_config.json's base_model_name_or_path as written (a local path, too)."""

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
    """A refreshed card, and what became of it."""

    repo_id: str
    text: str
    """The refreshed card: the repo's own, byte for byte, when nothing needs to change."""
    changed: bool
    kept: list[str]
    """The headings of the sections a person wrote, kept."""
    filled: list[str]
    to_write: list[str]
    """The headings left as a to-do for the student."""
    removed: list[str]
    metadata_changes: list[str]
    for_a_person: list[str] = field(default_factory=list)
    """What a person must still do: lines of the front matter that do not parse (kept as comments),
    a base model nobody states, two base models that disagree (see also `metadata_problems`)."""
    metadata_problems: list[MetadataProblem] = field(default_factory=list)
    """What the Hub would refuse in the refreshed front matter (hubcard.metadata): keys a person must
    fix; such a card is not pushed."""
    path: Path | None = None
    commit: CommitInfo | None = None
    """The commit pushed (--push)."""
    proposal: Proposal | None = None
    """What became of hubcard's pull request (--pr)."""

    @property
    def done(self) -> str:
        """What happened, in a few words."""
        if self.path is not None:
            return "written" if self.changed else "written (no change)"
        if self.proposal is not None:
            number = f" #{self.proposal.number}" if self.proposal.number else ""
            closed = f", PR #{', #'.join(map(str, self.proposal.closed))} closed" if self.proposal.closed else ""
            return {
                "nothing to change": f"nothing to change{closed}",
                "opened": f"PR{number} opened",
                "updated": f"PR{number} updated",
                "up to date": f"PR{number} up to date",
            }[self.proposal.action]
        if self.commit is not None:
            return f"pushed {self.commit.oid[:8]}"
        return "not pushed: fix the metadata" if self.metadata_problems else "nothing to change"

    @property
    def where(self) -> str | None:
        """The file written, the pull request's or the commit's URL."""
        if self.path is not None:
            return str(self.path)
        if self.proposal is not None:
            return self.proposal.url
        return self.commit.commit_url if self.commit is not None else None

    @property
    def needs_a_person(self) -> list[str]:
        """`for_a_person`, then each metadata problem."""
        return [*self.for_a_person, *(f"the Hub would refuse the front matter's {problem}" for problem in self.metadata_problems)]

    def summary(self) -> str:
        """What the refresh did to the card, in sentences (a pull request's description)."""
        lines = []
        if not self.changed:
            lines.append(f"The card of {self.repo_id} needs no change.")
        else:
            lines.append(f"hubcard refreshed the card of {self.repo_id} from what the repository tells:")
            for label, headings in (
                ("kept as written", self.kept),
                ("filled", self.filled),
                ("left for you to write", self.to_write),
                ("removed (template text only)", self.removed),
            ):
                if headings:
                    lines.append(f"- {label}: {', '.join(heading.lstrip('# ') for heading in headings)}")
            if self.metadata_changes:
                lines.append(f"- front matter: {'; '.join(self.metadata_changes)}")
        if self.metadata_problems:
            lines.append("The Hub would refuse this front matter; fix these keys in the card:")
            lines += [f"  - {problem}" for problem in self.metadata_problems]
        lines += [f"To do: {item}" for item in self.for_a_person]
        return "\n".join(lines)


# --- one repo -----------------------------------------------------------------------------------------


def refresh_repo_card(
    repo_id: str,
    *,
    template: str | Path | None = None,
    output: str | Path | None = None,
    push: bool = False,
    pr: bool = False,
    given: Mapping[str, Any] | None = None,
    message: str | None = None,
    to_write: bool = True,
    revision: str | None = None,
) -> RefreshOutcome:
    """Refresh the card of the adapter repo `repo_id` (see the module's docstring).

    `template`: the card template the repo's card was made from (default: the Hub's); its text counts
    as placeholder text. `output`: where to write the card (default: OWNER--NAME.README.md in the
    current folder, unless pushing). `push`: commit it to the repo; `pr`: propose it through hubcard's
    pull request. `given`: facts the staff give (`given_facts`); `message`: the pull request's (or
    commit's) description; `to_write`: leave a to-do in the sections only a person can write (else
    remove them); `revision`: the branch read and written (default main).
    """
    if push and pr:
        raise CardError("give --push or --pr, not both")
    mode: Mode = "push" if push else "pr" if pr else "file"
    rerun = f"hubcard render-card --repo {repo_id}" + (" --push" if push else " --pr" if pr else "")
    refresher = Refresher(mode=mode, template=template, given=given or {}, message=message, to_write=to_write, revision=revision)
    path = Path(output) if output else Path(refresher.file_name(repo_id))
    try:
        with patient_client():
            outcome = with_retries(lambda: refresher.refresh(repo_id, refresher.given, path), what=f"refreshing the card of {repo_id}")
    except HUB_ERRORS as error:
        raise hub_error(error, repo_id=repo_id, rerun=rerun) from error
    if mode != "file" and outcome.metadata_problems:
        listed = "\n".join(f"  - {problem}" for problem in outcome.metadata_problems)
        raise CardError(
            f"the refreshed card of {repo_id} has metadata the Hub would refuse; nothing was pushed. Run without "
            f"--push/--pr to write it to a file, fix these keys, and upload it:\n{listed}"
        )
    return outcome


class Refresher:
    """`render-card --repo` on one repo after another (hubcard.repos.Action: `check` is one row)."""

    label = "Refreshing"
    fields = ("done", "where", "changed", "kept", "filled", "to_write", "removed", "metadata_changes", "for_a_person")

    def __init__(
        self,
        *,
        mode: Mode,
        template: str | Path | None = None,
        output_dir: Path = Path("."),
        given: Mapping[str, Any] | None = None,
        message: str | None = None,
        to_write: bool = True,
        revision: str | None = None,
        api: HfApi | None = None,
    ):
        self.mode = mode
        self.template = template
        template_lines(template)  # CardError now for a template that does not exist
        self.output_dir = output_dir
        self.given = dict(given or {})
        self.roster: dict[str, dict[str, Any]] = {}
        """Repo id -> the facts its roster line gives (`take_roster`)."""
        self.message = message
        self.to_write = to_write
        self.branch = revision or "main"
        token = require_token("pushing a refreshed card") if mode != "file" else None
        self.api = api or HfApi(token=token)

    def file_name(self, repo_id: str) -> str:
        return f"{repo_id.replace('/', '--')}.README.md"

    def take_roster(self, targets: Sequence[Target]) -> None:
        """Read the facts of the targets' roster lines (columns named like GIVEN_FACTS), before any repo
        is touched: SelectionError listing every bad one."""
        problems = []
        for target in targets:
            try:
                self.roster[target.repo_id] = roster_facts(target)
            except SelectionError as error:
                problems.append(str(error))
        if problems:
            raise SelectionError("bad facts in the roster:\n  " + "\n  ".join(problems))

    def check(self, target: Target) -> tuple[Status, dict[str, Any]]:
        given = self.given | self.roster.get(target.repo_id, {})
        try:
            outcome = self.refresh(target.repo_id, given, self.output_dir / self.file_name(target.repo_id))
        except CardError as error:
            raise Unchecked(str(error)) from None
        fields = {
            "done": outcome.done,
            "where": outcome.where,
            "changed": outcome.changed,
            "kept": outcome.kept,
            "filled": outcome.filled,
            "to_write": outcome.to_write,
            "removed": outcome.removed,
            "metadata_changes": outcome.metadata_changes,
            "for_a_person": outcome.needs_a_person,
        }
        return ("problems" if outcome.needs_a_person else "ok"), fields

    def refresh(self, repo_id: str, given: Mapping[str, Any], path: Path) -> RefreshOutcome:
        """Read the repo, refresh its card, and write it to `path` or send it as the mode says."""
        pulls = open_pull_requests(self.api, repo_id) if self.mode == "pr" else []
        head, card_text, found, facts = _read_repo(self.api, repo_id, self._source(repo_id, pulls))
        outcome = refresh_card(card_text, facts, self.template, given=given, to_write=self.to_write, found=found)
        if self.mode == "file":
            write_text_atomic(path, outcome.text)
            return dataclasses.replace(outcome, path=path)
        if outcome.metadata_problems:
            return outcome  # the Hub would refuse it: nothing is sent
        operations = [CommitOperationAdd(CARD, outcome.text.encode("utf-8"))]
        description = "\n\n".join(part for part in (self.message, outcome.summary()) if part)
        if self.mode == "pr":
            proposal = propose(
                self.api, repo_id, operations, kind="card", title=COMMIT_MESSAGE, description=outcome.summary(),
                message=self.message, branch=self.branch, pulls=pulls,
            )  # fmt: skip
            return dataclasses.replace(outcome, proposal=proposal)
        if not pending(self.api, repo_id, operations, head):
            return outcome
        commit = self.api.create_commit(
            repo_id, operations, commit_message=COMMIT_MESSAGE, commit_description=description, revision=self.branch, parent_commit=head
        )
        return dataclasses.replace(outcome, commit=commit)

    def _source(self, repo_id: str, pulls: Sequence[HubcardPullRequest]) -> str:
        """The revision whose card is refreshed: the branch, or hubcard's open pull request of the card
        (of `pulls`) when it holds evaluation results (`hubcard evaluate --pr`), which the refreshed card
        must keep."""
        if (pull := card_pull_request(pulls, self.branch)) is None:
            return self.branch
        card = read_file(self.api, repo_id, CARD, revision=pull.git_reference).decode("utf-8-sig")
        return pull.git_reference if holds_results(card) else self.branch

    def columns(self) -> list[Column]:
        return [
            Column("done", 24, lambda row: row.fields["done"]),
            Column("todo", 4, lambda row: str(len(row.fields["to_write"]))),
            Column("meta", 4, lambda row: str(len(row.fields["metadata_changes"]))),
        ]

    def flat(self, row: Row) -> dict[str, str]:
        return {key: "; ".join(value) if isinstance(value, list) else "" if value is None else str(value) for key, value in row.fields.items()}

    def legend(self) -> list[str]:
        text = (
            "todo: sections left for the student to write; meta: front matter keys changed. --format json (or csv) gives "
            "each card's file, pull request or commit (where), the sections kept, filled, left to write and removed, and "
            "each change. Under the table: what a person must still do in each repo with problems."
        )
        return textwrap.wrap(text, TABLE_WIDTH)


def for_a_person(rows: Sequence[Row]) -> str:
    """What a person must still do, repo by repo: the lines printed under the table."""
    lines = [f"{row.target.repo_id}: {item}" for row in rows if row.status == "problems" for item in row.fields["for_a_person"]]
    return "\n".join(lines) + "\n" if lines else ""


def roster_facts(target: Target) -> dict[str, Any]:
    """The facts a roster's columns give for one repo (columns named like GIVEN_FACTS, non-empty)."""
    values = {name: value for name, value in target.roster.items() if name in GIVEN_FACTS and value.strip()}
    return given_facts(values, where=f"the roster's line for {target.repo_id}") if values else {}


def given_facts(values: Mapping[str, str], *, where: str = "--set") -> dict[str, Any]:
    """Facts given as text (`--set KEY=VALUE`, a roster's columns), checked: fact -> value (a list for
    LIST_FACTS). SelectionError naming each bad one."""
    facts: dict[str, Any] = {}
    problems = []
    for key, text in values.items():
        if key not in GIVEN_FACTS:
            problems.append(f"{key}: not a fact hubcard can set (one of {', '.join(GIVEN_FACTS)})")
            continue
        value: Any = [item.strip() for item in text.split(",") if item.strip()] if key in LIST_FACTS else text.strip()
        if not value:
            problems.append(f"{key}: empty")
            continue
        facts[key] = value
    problems += fact_problems(facts)
    if problems:
        raise SelectionError(f"{where}: " + "; ".join(problems))
    return facts


def parse_settings(settings: Sequence[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` options as checked facts (`given_facts`)."""
    values = {}
    for setting in settings:
        key, equals, value = setting.partition("=")
        if not equals or not key.strip():
            raise SelectionError(f"--set {setting!r}: give KEY=VALUE, e.g. --set license=mit")
        values[key.strip()] = value
    return given_facts(values)


def fact_problems(facts: Mapping[str, Any]) -> list[str]:
    """What is wrong with given facts, checked as the config's `card:` section and the card's metadata are."""
    problems = []
    card_keys = {key: value for key, value in facts.items() if key in CardSection.model_fields}
    try:
        CardSection.model_validate(card_keys)
    except ValidationError as error:
        problems += [f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors()]
    if "base_model" in facts and model_id(facts["base_model"]) is None:
        problems.append(f"base_model: {facts['base_model']!r} is not a Hub model id (owner/name)")
    problems += [str(problem) for problem in metadata_problems({key: facts[key] for key in METADATA_FACTS if key in facts and key != "base_model"})]
    return problems


# --- reading the repo -------------------------------------------------------------------------------


def _read_repo(api: HfApi, repo_id: str, revision: str) -> tuple[str, str, bool, RepoFacts]:
    """The head commit, README.md (the template's text when there is none), whether there was one, and
    the facts of `repo_id` at `revision`."""
    info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=request_timeout())
    assert info.sha is not None
    files = {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or [] if sibling.rfilename != ".gitattributes"}
    if ADAPTER_CONFIG not in files:
        raise CardError(f"{repo_id} has no {ADAPTER_CONFIG}: it is not a PEFT adapter, and hubcard refreshes adapter cards only")
    adapter_config = _adapter_config(repo_id, read_file(api, repo_id, ADAPTER_CONFIG, revision=info.sha))
    try:
        card_text, found = read_file(api, repo_id, CARD, revision=info.sha).decode("utf-8-sig"), True
    except RemoteEntryNotFoundError:
        card_text, found = str(ModelCard.from_template(ModelCardData())), False
    return info.sha, card_text, found, repo_facts(repo_id, adapter_config, card_text, files)


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
        base_model=model_id(base),
        peft_type=peft_type,
        method="dora" if adapter_config.get("use_dora") else peft_type.lower(),
        task=PEFT_TASKS.get(str(adapter_config.get("task_type"))),
        settings={key: adapter_config[key] for key in ADAPTER_SETTINGS if adapter_config.get(key) not in (None, [], {})},
        peft_version=str(version) if version else None,
        files=files,
        metadata=read_front_matter(split_front_matter(card_text)[0]).data,
        adapter_base=base if isinstance(base, str) else None,
    )


# --- the card -----------------------------------------------------------------------------------------


def refresh_card(
    text: str,
    facts: RepoFacts,
    template: str | Path | None = None,
    *,
    given: Mapping[str, Any] | None = None,
    to_write: bool = True,
    found: bool = True,
) -> RefreshOutcome:
    """The refreshed card of `text` (the repo's README.md; `found` False: the template's text stands in
    for a missing one); `template`: the card template it was made from (default: the Hub's); `given`:
    facts the staff give (`given_facts`); `to_write`: leave a to-do in the sections only a person can
    write, else remove them."""
    given = dict(given or {})
    block, body, _ = split_front_matter(text)
    front = read_front_matter(block)
    template_text = template_lines(template) | template_filled_lines(front.data, template)
    changes, optional, for_a_person = _metadata_plan(front.data, facts, given)
    metadata = {key: value for key, value in (front.data | changes).items() if value is not REMOVE}
    facts = dataclasses.replace(facts, base_model=_single(metadata.get("base_model")), metadata=metadata)
    for_a_person = [*_broken(front), *for_a_person]
    sections = parse_sections(body)
    kept, filled, todo = _fill(sections, facts, given, template_text, to_write)
    lines, removed = _render(sections)
    new_body = "\n".join(lines).strip() + "\n"
    changed = bool(not found or changes or front.broken or normalized_lines(new_body) != normalized_lines(body))
    changes |= optional if changed else {}
    new_block = updated(front, changes) if changed else block
    said = [f"{key}: {_shown(front.data.get(key))} -> {_shown(value)}" for key, value in changes.items()]
    if not changed:
        new_text = text
    else:
        new_text = new_body if new_block is None else with_front_matter(new_body, new_block)
    refused = metadata_problems(metadata)
    return RefreshOutcome(facts.repo_id, new_text, changed, kept, filled, todo, removed, said, for_a_person, refused)


def _broken(front: FrontMatter) -> list[str]:
    return [
        f"front matter line {broken.first_line}" + (f"-{broken.first_line + len(broken.lines) - 1}" if len(broken.lines) > 1 else "")
        + f" kept as a comment, the Hub cannot read it ({broken.error}): {broken.lines[0].strip()}"
        for broken in front.broken
    ]  # fmt: skip


# --- the sections -----------------------------------------------------------------------------------


def _fill(
    sections: list[Section], facts: RepoFacts, given: Mapping[str, Any], template_text: AbstractSet[str], to_write: bool
) -> tuple[list[str], list[str], list[str]]:
    """Decide each section in place (see the module's docstring); the headings kept, filled and left to write."""
    values = _key_values(facts, given)
    kept: list[str] = []
    todo: list[str] = []
    person: set[int] = set()
    for index, section in enumerate(sections):
        if is_to_write(section, template_text):
            if to_write:
                todo += [section.heading.strip()] if section.heading else []
                person.add(index)
            continue
        if written(section, template_text):
            section.lines = _fill_placeholder_lines(section.lines, values)
            if has_text(section.lines):
                kept += [section.heading.strip()] if section.heading else []
                person.add(index)
    stated = {line.strip() for index in person for line in sections[index].lines if line.strip()}
    derived = _derived_sections(facts, given, stated)
    filled = []
    for index, section in enumerate(sections):
        if index in person:
            continue
        family_written = any(child in person for child in subsection_indexes(sections, index))
        section.heading = _template_heading(section.heading, facts)
        names = to_write_names(section)
        if section.key in derived:
            section.lines = ["", *derived[section.key], ""]
            filled += [section.heading.strip()] if section.heading else []
        elif names and to_write and not family_written:
            section.lines = ["", *to_write_lines(names), ""]
            todo += [section.heading.strip()] if section.heading else []
            for child in subsection_indexes(sections, index):
                sections[child].lines = []  # their template text goes with the parent's (a TO_WRITE child gets its own to-do)
        else:
            section.lines = []
    return kept, filled, todo


def _fill_placeholder_lines(lines: list[str], values: Mapping[str, str]) -> list[str]:
    """The lines, with a '**Key:** [More Information Needed]' line filled when the repo (or the staff)
    tell the key, and every other placeholder removed (with its line, when nothing else is on it)."""
    known = {key.lower(): value for key, value in values.items()}
    kept: list[str] = []
    dropped = False
    for line in lines:
        if not PLACEHOLDER.search(line):
            if not (dropped and not line.strip() and kept and not kept[-1].strip()):  # no blank line left doubled
                kept.append(line)
            dropped = False
            continue
        key = KEY_LINE.match(line)
        if key and key.group("key").strip().lower() in known:
            kept.append(f"{key.group(0)} {known[key.group('key').strip().lower()]}")
            continue
        rest = without_placeholders(line)
        if has_text([KEY_LINE.sub("", rest)]):
            kept.append(rest)
        else:
            dropped = True
    return kept


def _render(sections: list[Section]) -> tuple[list[str], list[str]]:
    """The card's lines, and the headings left out: those of sections with no text left. A section of
    the Hub's template with no text of its own is left out too when none of its subsections with text
    is one of its own in the template (peft's "Framework versions" under "Model Card Contact"): they
    move up a level."""
    lines: list[str] = []
    left_out: list[str] = []
    shift = {index: 0 for index in range(len(sections))}
    for index, section in enumerate(sections):
        children = subsection_indexes(sections, index)
        with_text = [child for child in children if has_text(sections[child].lines)]
        if has_text(section.lines):
            pass
        elif not with_text or (section.heading and _strangers(section, [sections[child] for child in with_text])):
            left_out += [section.heading.strip()] if section.heading else []
            for child in children if with_text else []:
                shift[child] += 1
            continue
        if section.heading:
            lines.append(_raised(section.heading, shift[index]))
        lines += section.lines if has_text(section.lines) else [""]
    return lines, left_out


def _strangers(section: Section, children: list[Section]) -> bool:
    """Whether `section` is a section of the Hub's template and none of `children` is one of its own there."""
    template = hub_template_sections()
    names = [heading_key(item.name) for item in template]
    if section.key not in names:
        return False
    start = names.index(section.key)
    own = set()
    for item in template[start + 1 :]:
        if item.level <= template[start].level:
            break
        own.add(heading_key(item.name))
    return not any(child.key in own for child in children)


def _raised(heading: str, levels: int) -> str:
    """The heading `levels` levels up (one '#' less for each)."""
    stripped = heading.lstrip()
    return stripped[levels:] if levels and stripped.startswith("#" * (levels + 1)) else heading


def _template_heading(heading: str | None, facts: RepoFacts) -> str | None:
    """A heading of the template as the refreshed card shows it: without '[optional]', and with the
    repo's name in the template's title 'Model Card for Model ID'."""
    if heading is None:
        return None
    return OPTIONAL.sub("", heading).replace("Model Card for Model ID", f"Model Card for {facts.repo_id.split('/')[-1]}")


def _derived_sections(facts: RepoFacts, given: Mapping[str, Any] | None = None, stated: AbstractSet[str] = frozenset()) -> dict[str, list[str]]:
    """Section key -> the lines that fill it; a line `stated` already holds (stripped) is left out, and
    a section left with no text is not filled."""
    values = _key_values(facts, given or {})
    derived = {
        "model card for model id": [facts.summary],
        "model description": [f"- **{key}:** {value}" for key, value in values.items() if key not in SOURCE_KEYS],
        "model sources": [f"- **{key}:** {value}" for key, value in values.items() if key in SOURCE_KEYS],
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
    if facts.peft_version and not any(PEFT_VERSION.match(line) for line in stated):
        derived["software"] = [f"- PEFT {facts.peft_version}"]
    if given and given.get("contact"):
        derived["model card contact"] = [given["contact"]]
    for key, lines in list(derived.items()):
        lines = [line for line in lines if not line.strip() or line.strip() not in stated]
        if has_text(lines):
            derived[key] = lines
        else:
            del derived[key]
    return derived


def generated_lines(facts: RepoFacts) -> set[str]:
    """Every line a refresh writes from what the repo tells (without the template's '[optional]'):
    a tool's text, not a person's (see sections.read_sections)."""
    derived = {line for lines in _derived_sections(facts).values() for line in lines}
    return derived | {f"- **{key}:** {value}" for key, value in _key_values(facts, {}).items()}


def _key_values(facts: RepoFacts, given: Mapping[str, Any]) -> dict[str, str]:
    """The '**Key:**' lines of the template that the repo (or the staff) can fill: key as the template
    writes it -> value, in the template's order."""
    values = {label: given[fact] for fact, label in KEY_LINE_FACTS.items() if fact in ("developed_by", "funded_by", "shared_by") and fact in given}
    values["Model type"] = f"{facts.method_name} adapter (PEFT {facts.peft_type})"
    languages = facts.metadata.get("language")
    if languages:
        values["Language(s) (NLP)"] = ", ".join(map(str, languages)) if isinstance(languages, list) else str(languages)
    if isinstance(facts.metadata.get("license"), str):
        values["License"] = facts.metadata["license"]
    if facts.base_model:
        values["Finetuned from model"] = f"[{facts.base_model}]({HUB_URL}/{facts.base_model})"
    values["Repository"] = f"{HUB_URL}/{facts.repo_id}"
    values |= {label: given[fact] for fact, label in KEY_LINE_FACTS.items() if label in SOURCE_KEYS and fact in given}
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
    adapted = f"; it adapts the modules {', '.join(f'`{name}`' for name in _unique(modules))}" if isinstance(modules, list) else ""
    return f"{facts.summary.removesuffix('.')} (PEFT type `{facts.peft_type}`){adapted}."


def _setting(value: Any) -> str:
    return ", ".join(_unique(value)) if isinstance(value, list) else json.dumps(value) if isinstance(value, bool) else str(value)


def _unique(values: list[Any]) -> list[str]:
    """The values as text, each once, sorted (peft may save `modules_to_save` with repeats)."""
    return sorted(dict.fromkeys(map(str, values)))


# --- the front matter -----------------------------------------------------------------------------


def _metadata_plan(data: dict[str, Any], facts: RepoFacts, given: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The keys that must change (key -> new value, or REMOVE), those worth adding when the card changes
    anyway (pipeline_tag: the Hub does without it), and what a person must still do (see the module's
    docstring)."""
    changes: dict[str, Any] = {}
    for_a_person: list[str] = []
    base, note = _base_model(data.get("base_model"), facts, given.get("base_model"))
    if base is not None:
        changes["base_model"] = base
    for_a_person += [note] if note else []
    if not data.get("library_name"):
        changes["library_name"] = "peft"
    for key in ("license", "language", "datasets"):
        if key in given and _as_list(data.get(key)) != _as_list(given[key]):
            changes[key] = given[key]
    tags = data.get("tags")
    if isinstance(tags, (list, str)):
        listed = _as_list(tags)
        kept = list(dict.fromkeys(tag for tag in listed if not _names_no_model(tag)))
        if kept != listed:
            changes["tags"] = kept or REMOVE
    for key, value in data.items():
        if key not in changes and isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
            if len(set(value)) != len(value):
                changes[key] = list(dict.fromkeys(value))
    optional = {"pipeline_tag": facts.task.pipeline_tag} if not data.get("pipeline_tag") and facts.task else {}
    return changes, optional, for_a_person


def _base_model(value: Any, facts: RepoFacts, given: str | None) -> tuple[Any, str | None]:
    """The base_model to write (None: leave it as it is) and a note for a person, if any.

    Given by the staff: that one (in the card's spelling if the card names the same model alone).
    Else the card's Hub ids, each model once; adapter_config.json's id when the card states none; a
    card and an adapter_config.json that name different models keep the card's, and say so."""
    stated = _as_list(value)
    ids = [item for item in stated if model_id(item)]
    unique: list[str] = []
    for item in ids:
        if not any(same_model(item, other) for other in unique):
            unique.append(item)
    note = None
    if given is not None:
        wanted = unique if len(unique) == 1 and same_model(unique[0], given) else [given]
    elif facts.base_model and unique and not any(same_model(facts.base_model, item) for item in unique):
        wanted = unique
        note = (
            f"base_model: the card says {', '.join(unique)} but {ADAPTER_CONFIG} says {facts.base_model}; the card's is kept "
            "(--set base_model=ID to choose)"
        )
    else:
        wanted = unique or ([facts.base_model] if facts.base_model else [])
    if not wanted:
        local = f"{ADAPTER_CONFIG} names {facts.adapter_base!r}, not a Hub id" if facts.adapter_base else f"{ADAPTER_CONFIG} names none"
        note = f"base model unknown: {local}; give it with --set base_model=OWNER/NAME"
    if wanted == stated:
        return None, note
    return (wanted[0] if len(wanted) == 1 else wanted) if wanted else REMOVE, note


def _names_no_model(tag: Any) -> bool:
    """A `base_model:...:ID` tag whose ID names no Hub model (a local folder's name or path)."""
    return isinstance(tag, str) and tag.startswith("base_model:") and model_id(tag.rsplit(":", 1)[-1]) is None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [] if value is None else [value]


def _single(value: Any) -> str | None:
    listed = [item for item in _as_list(value) if model_id(item)]
    return listed[0] if len(listed) == 1 else None


def _shown(value: Any) -> str:
    if value is REMOVE or value is None:
        return "(none)" if value is None else "(removed)"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
