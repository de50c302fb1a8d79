"""A model card's Markdown sections, and who wrote each section of the Hub's default model-card template.

    card text ──► sections (heading, level, lines) ──► for each template section: written / generated /
                                                        template / missing / to write

The Hub's default template is huggingface_hub's (`ModelCard.from_template`): its headings name the
sections (`HUB_TEMPLATE_SECTIONS`; its title, "Model Card for Model ID", is called "Model summary").
A section of a card is found by its heading (case, "[optional]" and a trailing colon ignored; a few
headings of other generators count too, see ALIASES) and judged with its subsections, line by line:

- `written`: a line a person wrote: not the template's text, not a comment, not a placeholder, not a
  tool's. In a card a tool generated, only the lines of the texts a person gave it (`person_texts`,
  e.g. the `card:` texts of a hubcard config) are a person's.
- `generated`: a tool's line: any line of hubcard's own card (metadata tag `hubcard`), the Trainer's
  sections of a card that transformers' Trainer wrote, framework-version lines ("- PEFT 0.17.0"),
  and `generated_lines` the caller knows a tool wrote (e.g. `render-card --repo`'s).
- `to write`: hubcard's visible to-do for the student: the marker line `TO_WRITE_MARKER`, followed by
  one paragraph of instructions (not counted as anyone's text). The section stays `to write` until a
  person writes anything else in it.
- `template`: the heading is there with nothing but template text, placeholders or comments.
- `missing`: no such heading.

A section holding a person's line is `written`; else one holding the marker is `to write`; else one
holding a tool's line is `generated`; else `template`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Literal


from hubcard.errors import CardError
from hubcard.frontmatter import front_matter_data, split_front_matter
from hubcard.lint import HEADING, PLACEHOLDER, scan_markdown

SectionState = Literal["written", "generated", "template", "missing", "to write"]
TO_WRITE_MARKER = "<!-- hubcard:to-write -->"
STATE_ORDER: tuple[SectionState, ...] = ("written", "to write", "generated", "template")
"""What a section holding lines of several kinds is: the first of these it holds."""
TO_WRITE: dict[str, str] = {
    "Uses": (
        "**To write:** who is this adapter for, and for what? Say what it does (the task, the kind of text, the "
        "language) and what it should not be used for."
    ),
    "Bias, Risks, and Limitations": (
        "**To write:** where does this adapter go wrong? Say what its training data leaves out, the mistakes you "
        "saw, and the biases it may take from its base model and data."
    ),
    "Recommendations": "**To write:** what should someone who uses this adapter do about its risks and limitations?",
}
"""The sections of the Hub's template that only a person can write, and the to-do paragraph hubcard
leaves in one that holds nothing but template text (after TO_WRITE_MARKER)."""
TITLE = "Model summary"
"""The name of the template's title section ("# Model Card for Model ID" and the summary under it)."""
HTML_COMMENT = re.compile(r"<!--.*?-->")
KEY_LINE = re.compile(r"^\s*[-*]\s*\*\*(?P<key>[^*]+?)(?:\s*\[optional\])?:\*\*")
OPTIONAL = re.compile(r"\s*\[optional\]", re.IGNORECASE)
SPACED_PLACEHOLDER = re.compile(r"[ \t]*" + PLACEHOLDER.pattern, re.IGNORECASE)
FRAMEWORK_VERSION = re.compile(r"^- (?:PEFT|Transformers|Pytorch|Datasets|Tokenizers) \S+$")
"""A line of the "Framework versions" list that peft and the Trainer write."""
TRAINER_MARK = re.compile(
    r"generated automatically according to the information the Trainer had access to"
    r"|^This model (?:is a fine-tuned version of|was trained from scratch on)",
    re.MULTILINE,
)
TRAINER_SECTIONS = {"training hyperparameters", "training results", "framework versions"}
"""The sections transformers' Trainer fills (TrainingSummary.to_model_card), besides the title's paragraph."""
ALIASES: dict[str, tuple[str, ...]] = {
    "intended uses & limitations": ("Uses", "Bias, Risks, and Limitations"),  # the Trainer's card
    "training and evaluation data": ("Training Data", "Testing Data"),  # the Trainer's card
    "training results": ("Results",),  # the Trainer's card
    "framework versions": ("Software",),  # the Trainer's and peft's
    "intended uses": ("Uses",),
    "intended use": ("Uses",),
    "limitations": ("Bias, Risks, and Limitations",),
    "bias and limitations": ("Bias, Risks, and Limitations",),
    "limitations and bias": ("Bias, Risks, and Limitations",),
    "risks and limitations": ("Bias, Risks, and Limitations",),
    "usage": ("How to Get Started with the Model",),
    "how to use": ("How to Get Started with the Model",),
    "evaluation results": ("Results",),
}
"""Heading key -> the template sections a heading of another common layout stands for."""
WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
LINK_TARGET = re.compile(r"\]\([^)]*\)|https?://\S+")


@dataclass
class Section:
    """A heading and the lines under it, up to the next heading (subsections are sections of their own)."""

    level: int
    """1 to 6; 0 for the text before the first heading."""
    heading: str | None
    """The heading line as written, e.g. '## Uses'."""
    lines: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The heading's text in lower case, without the template's '[optional]' or a trailing colon."""
        match = HEADING.match(self.heading) if self.heading else None
        return heading_key(match.group(2)) if match else ""


@dataclass(frozen=True)
class TemplateSection:
    name: str
    """The template's heading without '[optional]' (TITLE for its title)."""
    level: int


@dataclass(frozen=True)
class SectionReport:
    """What one section of a card holds."""

    state: SectionState
    words: int
    """Words a person wrote in it and its subsections (the to-do paragraph, comments, links not counted)."""
    heading: str | None
    """Its heading in the card (None when missing, or for the title's text before any heading)."""
    text: str
    """Its lines and its subsections', as in the card (empty when missing)."""


@dataclass(frozen=True)
class CardSections:
    """The sections of one card, judged (see the module's docstring)."""

    sections: list[Section]
    reports: list[SectionReport]
    """One per section of `sections` (with its subsections' lines, below level 1)."""
    generator: Literal["hubcard", "trainer"] | None
    own_states: list[SectionState] = field(default_factory=list)
    """One per section of `sections`: its state from its own lines alone."""

    def template_states(self) -> dict[str, SectionState]:
        """Each section of the Hub's default template -> its state in this card, in template order."""
        return {section.name: self.find(section.name).state for section in hub_template_sections()}

    def find(self, heading: str) -> SectionReport:
        """The section a heading names: a section of the Hub's template by its name, or any heading of
        the card; with the headings ALIASES lists for it, all taken together (words summed, the state
        first in STATE_ORDER); `missing` when the card has none."""
        key = heading_key(heading)
        if key == heading_key(TITLE):
            index = self._title_index()
            return self.reports[index] if index is not None else _MISSING
        found = [
            self.reports[index]
            for index, section in enumerate(self.sections)
            if section.key == key or key in (heading_key(name) for name in ALIASES.get(section.key, ()))
        ]
        if not found:
            return _MISSING
        state = next(state for state in STATE_ORDER if any(report.state == state for report in found))
        return SectionReport(state, sum(report.words for report in found), found[0].heading, "\n".join(report.text for report in found))

    def _title_index(self) -> int | None:
        """The title: the first level-1 heading, else the text before the first heading if it has any."""
        titles = [index for index, section in enumerate(self.sections) if section.level == 1]
        if titles:
            return titles[0]
        return 0 if has_text(self.sections[0].lines) else None


_MISSING = SectionReport("missing", 0, None, "")


def read_sections(
    card_text: str,
    *,
    person_texts: Iterable[str] = (),
    generated_lines: Iterable[str] = (),
    template: str | Path | None = None,
) -> CardSections:
    """The sections of `card_text` (front matter included or not) judged line by line.

    `person_texts`: texts a person gave a tool that wrote the card (their lines count as written);
    `generated_lines`: lines a tool is known to have written; `template`: the card template the card
    was made from (default: the Hub's), whose text is nobody's.
    """
    front_matter, body, _ = split_front_matter(card_text)
    metadata = front_matter_data(front_matter)
    generator = _generator(metadata, body)
    person = {line.strip() for text in person_texts for line in text.splitlines() if line.strip()}
    known = {OPTIONAL.sub("", line).strip() for line in generated_lines if line.strip()}
    known |= template_filled_lines(metadata, template)
    sections = parse_sections(body)
    nobodys = template_lines(template)
    owners = [_line_owners(section, nobodys, person, known, generator) for section in sections]
    reports = []
    for index, section in enumerate(sections):
        family = [index] if section.level <= 1 else [index, *subsection_indexes(sections, index)]
        lines = [pair for member in family for pair in zip(_all_lines(sections[member]), owners[member])]
        reports.append(_report(section, lines))
    own = [_report(section, list(zip(_all_lines(section), owners[index]))).state for index, section in enumerate(sections)]
    return CardSections(sections, reports, generator, own)


def parse_sections(body: str) -> list[Section]:
    """The Markdown body split at its headings (outside code blocks); the first section holds what
    comes before the first heading."""
    sections = [Section(0, None)]
    for _, line, in_code in scan_markdown(body):
        heading = None if in_code else HEADING.match(line)
        if heading:
            sections.append(Section(len(heading.group(1)), line))
        else:
            sections[-1].lines.append(line)
    return sections


def subsection_indexes(sections: list[Section], index: int) -> list[int]:
    """The indexes of the sections under `sections[index]` (deeper headings up to the next one as high)."""
    children = []
    for later in range(index + 1, len(sections)):
        if sections[later].level <= sections[index].level:
            break
        children.append(later)
    return children if sections[index].level else []


def heading_key(text: str) -> str:
    """A heading's text as sections are matched: lower case, single spaces, no '[optional]', no ':'."""
    return " ".join(OPTIONAL.sub("", text).split()).rstrip(":").strip().lower()


@functools.cache
def hub_template_sections() -> tuple[TemplateSection, ...]:
    """The sections of huggingface_hub's default model-card template, in order."""
    from huggingface_hub import ModelCard, ModelCardData

    _, body, _ = split_front_matter(str(ModelCard.from_template(ModelCardData())))
    found: list[TemplateSection] = []
    for section in parse_sections(body)[1:]:
        match = HEADING.match(section.heading or "")
        assert match is not None
        name = TITLE if section.level == 1 else " ".join(OPTIONAL.sub("", match.group(2)).split())
        found.append(TemplateSection(name, section.level))
    return tuple(found)


def template_lines(template: str | Path | None = None) -> set[str]:
    """Every line of a card template (rendered with no data), stripped: text nobody wrote for a repo.
    `template`: a Jinja template file (default: the Hub's); CardError when there is no such file."""
    if template is not None and not Path(template).is_file():
        raise CardError(f"card template not found: {template}")
    return _template_lines(str(template) if template else None)


@functools.cache
def _template_lines(template: str | None) -> frozenset[str]:
    from huggingface_hub import ModelCard, ModelCardData

    text = str(ModelCard.from_template(ModelCardData(), template_path=template))
    return frozenset(line.strip() for line in split_front_matter(text)[1].splitlines() if line.strip())


def written(section: Section, template_text: AbstractSet[str]) -> bool:
    """Whether a section holds a line that is not the template's, not a comment and not a placeholder
    (alone or after a '**Key:**'): text someone wrote for this card."""
    return any(is_written(line, template_text) for line in section.lines)


def is_written(line: str, template_text: AbstractSet[str]) -> bool:
    stripped = line.strip()
    if not stripped or stripped in template_text or OPTIONAL.sub("", stripped) in template_text or HTML_COMMENT.fullmatch(stripped):
        return False
    return not PLACEHOLDER.search(stripped) or has_text([KEY_LINE.sub("", without_placeholders(stripped))])


def to_write_names(section: Section) -> list[str]:
    """The sections of TO_WRITE that `section` stands for: itself, or those ALIASES gives its heading."""
    names = [name for name in TO_WRITE if heading_key(name) == section.key]
    return names or [name for name in ALIASES.get(section.key, ()) if name in TO_WRITE]


def to_write_lines(names: Iterable[str]) -> list[str]:
    """The to-do of each TO_WRITE section named: the marker line and its paragraph, a blank line between."""
    lines: list[str] = []
    for name in names:
        lines += ["", TO_WRITE_MARKER, TO_WRITE[name]] if lines else [TO_WRITE_MARKER, TO_WRITE[name]]
    return lines


def is_to_write(section: Section, template_text: AbstractSet[str]) -> bool:
    """Whether the section holds hubcard's to-do and nothing a person wrote besides."""
    owners = _line_owners(section, template_text, set(), set(), None)
    return "todo" in owners and "person" not in owners


def without_placeholders(line: str) -> str:
    """The line without its placeholders and comments (a '**Key:**' before them stays)."""
    return SPACED_PLACEHOLDER.sub("", HTML_COMMENT.sub("", line)).rstrip()


def has_text(lines: Iterable[str]) -> bool:
    """Whether any line has a word outside HTML comments."""
    return any(re.search(r"\w", HTML_COMMENT.sub("", line)) for line in lines)


def normalized_lines(text: str) -> list[str]:
    """The text's lines as its meaning goes: line endings, trailing spaces and runs of blank lines (and
    blank lines at either end) aside. Two texts with the same normalized lines differ in formatting only."""
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.strip() or (lines and lines[-1]):
            lines.append(line.rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return lines


def count_words(lines: Iterable[str]) -> int:
    """Words in `lines`, without comments and link targets."""
    return sum(len(WORD.findall(LINK_TARGET.sub("]", HTML_COMMENT.sub("", line)))) for line in lines)


# --- judging lines ----------------------------------------------------------------------------------

Owner = Literal["person", "tool", "todo", "nobody"]


def _metadata_values(metadata: dict) -> set[str]:
    """The metadata's top-level values as text (list items one by one): what a template fills a
    '**Key:**' line with (ModelCard.from_template with card data, e.g. '**Finetuned from model:** gpt2')."""
    values = set()
    for value in metadata.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (str, int, float)) and not isinstance(item, bool):
                values.add(str(item))
    return values


def template_filled_lines(metadata: dict, template: str | Path | None = None) -> set[str]:
    """The '- **Key:** value' lines a template writes when it is filled with the card's metadata
    (ModelCard.from_template with card data: '- **Finetuned from model:** gpt2'), without '[optional]':
    a tool's text, not a person's."""
    return {f"{key_line}{value}" for key_line in _template_key_lines(template) for value in _metadata_values(metadata)}


def _template_key_lines(template: str | Path | None) -> set[str]:
    """The '- **Key:** ' starts of the template's key lines, without '[optional]', ending in a space."""
    starts = {KEY_LINE.match(line) for line in template_lines(template)}
    return {OPTIONAL.sub("", match.group(0)) + " " for match in starts if match}


def _generator(metadata: dict, body: str) -> Literal["hubcard", "trainer"] | None:
    """Which known tool wrote the whole card: hubcard (its metadata tag) or transformers' Trainer."""
    tags = metadata.get("tags")
    if isinstance(tags, list) and "hubcard" in tags:
        return "hubcard"
    return "trainer" if TRAINER_MARK.search(body) else None


def _all_lines(section: Section) -> list[str]:
    return [section.heading, *section.lines] if section.heading else list(section.lines)


def _line_owners(
    section: Section, template_text: AbstractSet[str], person: set[str], known: set[str], generator: str | None
) -> list[Owner]:
    """Who wrote each line of the section (its heading first, if it has one)."""
    owners: list[Owner] = ["nobody"] if section.heading else []
    tool_section = generator == "trainer" and (section.key in TRAINER_SECTIONS or section.level <= 1)
    in_todo = in_comment = False
    for line in section.lines:
        stripped = line.strip()
        if stripped == TO_WRITE_MARKER:
            owners.append("todo")
            in_todo = True
            continue
        in_todo = in_todo and bool(stripped)
        opens_comment = not in_comment and "<!--" in stripped and "-->" not in stripped.split("<!--")[-1]
        if in_comment or opens_comment:  # a comment over several lines
            owners.append("nobody")
            in_comment = "-->" not in stripped if in_comment else True
        elif in_todo:
            owners.append("todo")
        elif not is_written(line, template_text):
            owners.append("nobody")
        elif stripped in person:
            owners.append("person")
        elif generator == "hubcard" or tool_section or OPTIONAL.sub("", stripped) in known or FRAMEWORK_VERSION.match(stripped):
            owners.append("tool")
        else:
            owners.append("person")
    return owners


def _report(section: Section, lines: list[tuple[str, Owner]]) -> SectionReport:
    owners = {owner for _, owner in lines}
    person = [without_placeholders(line) for line, owner in lines if owner == "person"]
    held = {"written": bool(person), "to write": "todo" in owners, "generated": "tool" in owners, "template": True}
    state = next(state for state in STATE_ORDER if held[state])
    return SectionReport(state, count_words(person), section.heading, "\n".join(line for line, _ in lines))
