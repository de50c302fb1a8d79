"""A model card's front matter (its YAML metadata block): the one module that reads and rewrites it.

    README.md ──split_front_matter──► the YAML block, the Markdown body
    the YAML block ──read_front_matter──► FrontMatter: the metadata, key by key; the lines that do not parse
    FrontMatter + changes ──updated──► the YAML block with only those keys rewritten

Reading salvages: a block that is not valid YAML as a whole is read one top-level key at a time (a key
line and the indented or `- ` lines under it), so that one bad line costs its own key only; the lines
that still do not parse are `broken`, never dropped: `updated` keeps them as YAML comments under a
line that says so (BROKEN_NOTE), where they were.

Rewriting is minimal: a key that is not changed keeps its lines byte for byte (order, quotes, comments,
indentation), a changed key is written in place, a new key goes at the end: a block whose values do
not change comes back as it was.

No huggingface_hub here: `render-card --check` and `lint-card` use this module without the Hub's HTTP stack.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

# The Hub's own rule for the metadata block (huggingface_hub.repocard.REGEX_YAML_BLOCK).
FRONT_MATTER = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")
TOP_LEVEL_KEY = re.compile(r"""^(?!-(?:\s|$))(?P<key>"[^"\n]*"|'[^'\n]*'|[^\s#{}\[\]&*!|>'"%@`,][^:#\n]*?)[ \t]*:(?=\s|$)""")
"""A line that starts a top-level key of a block mapping: `license: mit`, `model-index:`, `"tags":`."""
NOT_A_MAPPING = "the front matter is not a mapping of keys"
BROKEN_NOTE = "# hubcard: the Hub cannot read the lines below (not valid YAML); fix them and remove the '# '"


class _Remove:
    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Any = _Remove()
"""A change that deletes its key (see `updated`)."""


@dataclass(frozen=True)
class Entry:
    """One top-level key of the block and its lines; `key` None for lines before the first key and for
    lines that start no key."""

    key: str | None
    lines: tuple[str, ...]
    """The key's line and the lines that belong to it."""
    trailing: tuple[str, ...]
    """The blank lines and comments after them (kept when the key is rewritten)."""
    first_line: int
    """The line of `lines[0]` in the card (1-based)."""
    readable: bool
    """Whether `lines` parse as YAML (a mapping of `key`, or nothing but comments for a key None)."""


@dataclass(frozen=True)
class BrokenLines:
    """Lines of the block that do not parse, even alone."""

    first_line: int
    """Its first line in the card (1-based)."""
    lines: tuple[str, ...]
    error: str


@dataclass(frozen=True)
class FrontMatter:
    """A front matter as read: `data` holds the keys that parse (all of them when `error` is None)."""

    text: str | None
    """The YAML block as found; None when the card has none."""
    data: dict[str, Any]
    error: str | None
    """Why the block as a whole is not a YAML mapping; None when it is (or there is no block)."""
    broken: tuple[BrokenLines, ...]
    entries: tuple[Entry, ...]


def split_front_matter(text: str) -> tuple[str | None, str, int]:
    """(the YAML metadata block or None, the Markdown body, the number of lines before the body)."""
    match = FRONT_MATTER.match(text)
    if match is None:
        return None, text, 0
    return match.group(2), text[match.end() :], match.group(0).count("\n")


def front_matter_data(front_matter: str | None) -> dict[str, Any]:
    """The metadata of a YAML block (`split_front_matter`'s first part), as the Hub reads it: empty when
    there is none or it is not a valid YAML mapping (see `read_front_matter` for what can be salvaged)."""
    read = read_front_matter(front_matter)
    return read.data if read.error is None else {}


def read_front_matter(front_matter: str | None) -> FrontMatter:
    """The block read whole, or key by key when it is not a valid YAML mapping (see the module's docstring)."""
    if front_matter is None:
        return FrontMatter(None, {}, None, (), ())
    entries = _entries(front_matter)
    try:
        whole = yaml.safe_load(front_matter)
        error = None if whole is None or isinstance(whole, dict) else NOT_A_MAPPING
    except yaml.YAMLError as problem:
        whole, error = None, _yaml_error(problem, first_line=2)
    if error is None:
        return FrontMatter(front_matter, dict(whole or {}), None, (), entries)
    data: dict[str, Any] = {}
    broken = []
    for entry in entries:
        if entry.readable and entry.key is not None:
            data |= yaml.safe_load("\n".join(entry.lines))
        elif not entry.readable:
            broken.append(BrokenLines(entry.first_line, entry.lines, _parse_error(entry)))
    return FrontMatter(front_matter, data, error, tuple(broken), entries)


def updated(front: FrontMatter, changes: Mapping[str, Any]) -> str:
    """The block with `changes` (key -> new value, or REMOVE) applied and the broken lines commented out;
    every other line as it was. A changed key is written where it was (once: a key that was there twice
    keeps its first place), a new one at the end. Falls back to writing every key anew, in the block's
    order, in the rare block whose layout hides its keys from a line-by-line reading."""
    expected = {key: value for key, value in (front.data | dict(changes)).items() if value is not REMOVE}
    if front.error is None and not all(entry.readable for entry in front.entries):
        return _anew(expected, front)  # valid YAML whose layout hides its keys from a line-by-line reading
    lines: list[str] = []
    written: set[str] = set()
    for entry in front.entries:
        if not entry.readable:
            lines += _commented(entry.lines)
        elif entry.key in changes:
            if entry.key not in written and changes[entry.key] is not REMOVE:
                lines += _dumped(entry.key, changes[entry.key])
            written.add(entry.key)
        else:
            lines += entry.lines
        lines += entry.trailing
    for key, value in changes.items():
        if key not in written and value is not REMOVE:
            lines += _dumped(key, value)
    text = "\n".join(lines)
    return text if _parses_to(text, expected) else _anew(expected, front)


def _anew(expected: dict[str, Any], front: FrontMatter) -> str:
    """Every key written anew, in order, then the broken lines as comments."""
    anew = [line for key, value in expected.items() for line in _dumped(key, value)]
    return "\n".join(anew + [line for broken in front.broken for line in _commented(broken.lines)])


def with_front_matter(card: str, block: str) -> str:
    """`card` with its YAML block replaced by `block` (a block is added before the body if it had none),
    in the card's own line endings."""
    match = FRONT_MATTER.match(card)
    if match is None:
        return f"---\n{block}\n---\n\n{card}" if card.strip() else f"---\n{block}\n---\n"
    newline = "\r\n" if match.group(1).endswith("\r\n") else "\r" if match.group(1).endswith("\r") else "\n"
    return match.group(1) + newline.join(block.split("\n")) + card[match.end(2) :]


# --- reading line by line -------------------------------------------------------------------------------


def _entries(block: str) -> tuple[Entry, ...]:
    """The block's top-level keys with their lines (line numbers: the block starts on line 2 of the card)."""
    groups: list[tuple[str | None, int, list[str]]] = []
    for number, line in enumerate(block.split("\n"), 2):
        stripped = line.strip()
        match = TOP_LEVEL_KEY.match(line)
        if match:
            groups.append((_key(match.group("key")), number, [line]))
        elif groups and (not stripped or stripped.startswith("#") or line[0] in " \t-"):
            groups[-1][2].append(line)
        elif stripped and not stripped.startswith("#") and groups and groups[-1][0] is None and groups[-1][2][-1].strip():
            groups[-1][2].append(line)  # a run of lines that start no key stays one group
        else:
            groups.append((None, number, [line]))
    entries = []
    for key, number, lines in groups:
        end = len(lines)
        while end > 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        own, trailing = tuple(lines[:end]), tuple(lines[end:])
        if key is None and all(not line.strip() or line.lstrip().startswith("#") for line in own):
            entries.append(Entry(None, (), own + trailing, number, True))
        else:
            entries.append(Entry(key, own, trailing, number, _readable(key, own)))
    return tuple(entries)


def _key(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text.strip()


def _readable(key: str | None, lines: tuple[str, ...]) -> bool:
    if key is None:
        return False
    try:
        value = yaml.safe_load("\n".join(lines))
    except yaml.YAMLError:
        return False
    return isinstance(value, dict) and list(value) == [key]


def _parse_error(entry: Entry) -> str:
    try:
        value = yaml.safe_load("\n".join(entry.lines))
    except yaml.YAMLError as problem:
        return _yaml_error(problem, entry.first_line)
    return "not a `key: value` line" if not isinstance(value, dict) else "more than one key on these lines"


def _yaml_error(problem: yaml.YAMLError, first_line: int) -> str:
    """What PyYAML found wrong, at its line (in the card, 1-based) and column."""
    if isinstance(problem, yaml.MarkedYAMLError) and problem.problem_mark is not None:
        mark = problem.problem_mark
        what = f"{problem.context}: {problem.problem}" if problem.context else str(problem.problem)
        return f"{what} (line {first_line + mark.line}, column {mark.column + 1})"
    return " ".join(str(problem).split())


# --- writing ------------------------------------------------------------------------------------------


def _dumped(key: str, value: Any) -> list[str]:
    text = yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True, default_flow_style=False, width=10**9)
    return text.rstrip("\n").split("\n")


def _commented(lines: tuple[str, ...]) -> list[str]:
    return [BROKEN_NOTE, *(f"# {line}" if line.strip() else "#" for line in lines)]


def _parses_to(text: str, expected: dict[str, Any]) -> bool:
    try:
        return (yaml.safe_load(text) or {}) == expected
    except yaml.YAMLError:
        return False
