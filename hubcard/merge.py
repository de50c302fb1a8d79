"""Keeping what a person wrote on the Hub when hubcard uploads its card again: a merge, section by section.

    hubcard's new card (ours) + the card on the Hub (theirs) + what hubcard uploaded last time (CardRecord)
        ──merge_card──► the card to upload, and what was kept of theirs, in words

When hubcard uploads a card it records, in its manifest, a digest of each of its own front-matter
values and of each of its own sections (`record_card`). Next time, a section (or key) on the Hub is:

- hubcard's, untouched (its digest is the recorded one): hubcard's new version replaces it;
- hubcard's, edited on the Hub (a recorded heading, another digest): the person's text wins, kept as it is;
- added on the Hub (a heading hubcard never wrote): kept, after the section it followed;
- gone: a section or key hubcard wrote that a person removed is not put back.

A card on the Hub that hubcard never recorded (no manifest, or one from before records) is judged
with hubcard.sections: a section a person wrote is kept (it replaces hubcard's of the same heading),
template and tool text is not; in a card hubcard generated (its `hubcard` tag), whose every line
counts as generated, a section under a heading hubcard's new card does not have is kept. The front matter is rewritten key by key (hubcard.frontmatter), so a
person's keys keep their lines. Sections are told apart by their headings and the headings above
them (`Evaluation > Results`); formatting alone (spaces, blank lines, line endings) is no edit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from hubcard.frontmatter import REMOVE, read_front_matter, split_front_matter, updated, with_front_matter
from hubcard.sections import CardSections, Section, normalized_lines, parse_sections, read_sections


TITLE_KEY = "(title)"
"""The key of a card's title section (its level-1 heading): cards name their title differently."""


@dataclass(frozen=True)
class CardRecord:
    """What hubcard's own card held when it was uploaded: a digest of each front-matter key's value and
    of each section's text (by the section's path of headings)."""

    metadata: dict[str, str] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"metadata": self.metadata, "sections": self.sections}

    @classmethod
    def from_json(cls, value: Any) -> CardRecord | None:
        """The record as a manifest holds it; None when it holds none (or not one hubcard wrote)."""
        if not isinstance(value, dict) or not isinstance(value.get("metadata"), dict) or not isinstance(value.get("sections"), dict):
            return None
        return cls({str(k): str(v) for k, v in value["metadata"].items()}, {str(k): str(v) for k, v in value["sections"].items()})


@dataclass(frozen=True)
class CardMerge:
    text: str
    """The card to upload."""
    kept: list[str]
    """What was kept of the card on the Hub (or left out because a person removed it), one line each."""


def record_card(text: str) -> CardRecord:
    """The record of a card hubcard uploads (see the module's docstring)."""
    block, body, _ = split_front_matter(text)
    metadata = read_front_matter(block).data
    return CardRecord(
        {key: _value_digest(value) for key, value in metadata.items()},
        {key: _section_digest(section) for key, section in _keyed(parse_sections(body))},
    )


def merge_card(ours: str, theirs: str, recorded: CardRecord | None) -> CardMerge:
    """`ours` (the card hubcard renders now) merged with `theirs` (the card on the Hub) as the module's
    docstring says; `recorded`: what hubcard uploaded last time (None when it is not known). The text is
    `ours` itself when nothing of theirs is kept."""
    our_block, our_body, _ = split_front_matter(ours)
    their_block, their_body, _ = split_front_matter(theirs)
    judged = read_sections(theirs) if recorded is None else None
    metadata_record = recorded
    if judged is not None and judged.generator == "hubcard":  # its values of the keys hubcard writes are hubcard's
        mine, their = read_front_matter(our_block).data, read_front_matter(their_block).data
        metadata_record = CardRecord({key: _value_digest(value) for key, value in their.items() if key in mine})
    block, metadata_kept = _merge_metadata(our_block, their_block, metadata_record)
    body, sections_kept = _merge_sections(our_body, their_body, recorded, judged)
    kept = metadata_kept + sections_kept
    if not kept:
        return CardMerge(ours, [])
    return CardMerge(with_front_matter(body, block) if block is not None else body, kept)


# --- the front matter -----------------------------------------------------------------------------


def _merge_metadata(ours: str | None, theirs: str | None, recorded: CardRecord | None) -> tuple[str | None, list[str]]:
    """The merged YAML block (written from theirs, key by key) and what was kept of theirs."""
    mine = read_front_matter(ours).data
    front = read_front_matter(theirs)
    their = front.data
    changes: dict[str, Any] = {}
    kept = []
    for key, value in mine.items():
        if key not in their:
            if recorded is not None and key in recorded.metadata:
                kept.append(f"front matter {key}: removed on the Hub, not put back")
            else:
                changes[key] = value
        elif their[key] != value:
            if recorded is not None and recorded.metadata.get(key) == _value_digest(their[key]):
                changes[key] = value
            else:
                kept.append(f"front matter {key}: edited on the Hub, kept")
    for key, value in their.items():
        if key in mine:
            continue
        if recorded is not None and recorded.metadata.get(key) == _value_digest(value):
            changes[key] = REMOVE  # hubcard's own key, which it no longer writes
        else:
            kept.append(f"front matter {key}: added on the Hub, kept")
    kept += [f"front matter line {broken.first_line}: not valid YAML, kept as a comment" for broken in front.broken]
    if not changes and not front.broken:
        return theirs, kept
    return updated(front, changes), kept


# --- the sections -----------------------------------------------------------------------------------


def _merge_sections(ours: str, theirs: str, recorded: CardRecord | None, judged: CardSections | None) -> tuple[str, list[str]]:
    """The merged body (hubcard's order, with the person's sections in it) and what was kept of theirs;
    `judged`: the card on the Hub's sections as hubcard.sections judges them, when there is no record."""
    mine = _keyed(parse_sections(ours))
    their = _keyed(parse_sections(theirs))
    my_keys = {key for key, _ in mine}
    owners = {}
    for index, (key, section) in enumerate(their):
        if recorded is not None:
            owners[key] = _owner(key, section, recorded)
        elif judged is not None and judged.generator == "hubcard":
            owners[key] = "hubcard" if key in my_keys else "person"
        else:
            owners[key] = "person" if judged is not None and judged.own_states[index] == "written" else "hubcard"
    after: dict[str | None, list[tuple[str, Section]]] = {}
    anchor: str | None = None
    for key, section in their:
        if key in my_keys:
            anchor = key
        elif owners[key] != "hubcard":
            after.setdefault(anchor, []).append((key, section))
    their_by_key = dict(their)
    out: list[Section] = [section for _, section in after.get(None, [])]
    kept = [_said(key, owners[key]) for key, _ in after.get(None, [])]
    for key, section in mine:
        found = their_by_key.get(key)
        if found is None and recorded is not None and key in recorded.sections and key:
            kept.append(f"{_heading(key)}: removed on the Hub, not put back")
        elif found is not None and owners[key] != "hubcard" and _section_digest(found) != _section_digest(section):
            out.append(found)
            kept.append(_said(key, owners[key], replaces=True))
        else:
            out.append(section)
        out += [added for _, added in after.get(key, [])]
        kept += [_said(added_key, owners[added_key]) for added_key, _ in after.get(key, [])]
    lines = [line for section in out for line in ([section.heading] if section.heading else []) + section.lines]
    return "\n".join(lines).strip("\n") + "\n", kept


def _owner(key: str, section: Section, recorded: CardRecord) -> str:
    """Who holds a section of a card hubcard recorded: `hubcard` (untouched), `edited` (hubcard's,
    changed on the Hub) or `person` (added on the Hub)."""
    if key in recorded.sections:
        return "hubcard" if recorded.sections[key] == _section_digest(section) else "edited"
    return "person"


def _said(key: str, owner: str, *, replaces: bool = False) -> str:
    if owner == "edited":
        return f"{_heading(key)}: edited on the Hub, kept" + (" (hubcard's new text for it is not used)" if replaces else "")
    return f"{_heading(key)}: written on the Hub, kept" + (" (in place of hubcard's)" if replaces else "")


def _heading(key: str) -> str:
    if key == TITLE_KEY:
        return "the title's section"
    return f"'{key.rsplit(' > ', 1)[-1]}'" if key else "the text before the first heading"


def _keyed(sections: list[Section]) -> list[tuple[str, Section]]:
    """Each section with its key: the path of heading texts down to it below the title
    (`evaluation > results`; TITLE_KEY for a level-1 heading, whatever its text), made unique with `#2`...
    for a path that repeats; '' for the text before the first heading."""
    keyed = []
    seen: dict[str, int] = {}
    path: list[tuple[int, str]] = []
    for section in sections:
        if section.heading is None:
            keyed.append(("", section))
            continue
        path = [(level, key) for level, key in path if level < section.level] + [(section.level, section.key)]
        key = " > ".join(name for level, name in path if level > 1) or TITLE_KEY
        seen[key] = seen.get(key, 0) + 1
        keyed.append((key if seen[key] == 1 else f"{key} #{seen[key]}", section))
    return keyed


def _section_digest(section: Section) -> str:
    return hashlib.sha256("\n".join(normalized_lines("\n".join(section.lines))).encode("utf-8")).hexdigest()


def _value_digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()

