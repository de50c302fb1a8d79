"""Finding what a model card leaves undocumented: placeholders, empty sections, broken metadata.

`check_card(text)` is `render-card --check`: what a card rendered by hubcard must never contain.
`lint_card(target)` is `lint-card`: the placeholders of any card (a local file or a Hub repo's
README.md), each with its line and section, and the metadata problems that keep an adapter from
being found or loaded on the Hub.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hubcard.frontmatter import NOT_A_MAPPING, read_front_matter, split_front_matter
from hubcard.metadata import is_hub_id, metadata_problems

PLACEHOLDER = re.compile(r"\[?more information needed\]?", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
TABLE_DELIMITER = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
HTML_COMMENT = re.compile(r"^[ \t]*<!--.*-->[ \t]*$")
NONE_LINK = re.compile(r"huggingface\.co/(?:(?:datasets|spaces)/)?None\b")
# A value printed alone between these separators (a table cell, a "**Key:** value", a list item)
# that reads None or nan is a missing fact; "None of them" in an example's text is not.
VALUE_SEPARATORS = re.compile(r"\||\*\*|<br>|[:()\[\]`]")
MISSING_VALUES = {"None", "nan", "NaN", "inf", "-inf"}


@dataclass(frozen=True)
class LintProblem:
    message: str
    line: int | None = None
    section: str | None = None

    def __str__(self) -> str:
        where = ", ".join(part for part in (self.line and f"line {self.line}", self.section) if part)
        return f"{where}: {self.message}" if where else self.message


@dataclass
class LintReport:
    """The problems found in one card; `source` is the path or repo id it was read from; `error`: why
    it could not be read (no problems are known then)."""

    source: str
    problems: list[LintProblem] = field(default_factory=list)
    error: str | None = None

    def format(self) -> str:
        if self.error is not None:
            return f"{self.source}: could not be checked: {self.error}"
        if not self.problems:
            return f"{self.source}: no problems found"
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        return "\n".join([f"{self.source}: {count}"] + [f"  {problem}" for problem in self.problems])


def check_card(text: str) -> list[str]:
    """What a rendered card must never contain: placeholders, empty sections and tables, None/nan
    values, links to huggingface.co/None, metadata that the Hub cannot parse or would refuse."""
    metadata, body, offset = split_front_matter(text)
    problems = [str(problem) for problem in front_matter_problems(metadata)]
    problems += [str(problem) for problem in placeholders(body, offset)]
    lines = list(scan_markdown(body))
    for number, line, in_code in lines:
        where = f"line {number + offset}"
        if NONE_LINK.search(line):
            problems.append(f"{where}: link to huggingface.co/None (a repo id that was not known)")
        if not in_code and any(piece.strip(" \t*_") in MISSING_VALUES for piece in VALUE_SEPARATORS.split(line)):
            problems.append(f"{where}: a missing value printed as None/nan: {line.strip()}")
    problems += [f"line {number + offset}: {message}" for number, message in _empty_structures(lines)]
    return problems


def lint_card(target: str | Path) -> LintReport:
    """Lint a card: a local README.md (or a folder holding one), else a Hub repo id whose README.md
    is read from the Hub now, never from a cache (HF_ENDPOINT and the saved token apply, as for any
    huggingface_hub call); a card that cannot be read is a report with an `error`."""
    source = str(target)
    path = Path(target)
    if path.is_dir():
        path = path / "README.md"
    if path.is_file():
        text = path.read_text(encoding="utf-8-sig")
    elif is_hub_id(source):
        text, report = _read_hub_card(source)
        if report is not None:
            return report
    else:
        return LintReport(source, [LintProblem("no such file, and not a Hub repo id")])
    metadata, body, offset = split_front_matter(text)
    return LintReport(source, placeholders(body, offset) + card_metadata_problems(metadata))


def scan_markdown(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number from 1, line, whether the line belongs to a fenced code block, fences included)."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            yield number, line, True
        elif fence is not None:
            closes = match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) and not match.group(2).strip()
            if closes:
                fence = None
            yield number, line, True
        else:
            yield number, line, False


def placeholders(body: str, offset: int = 0) -> list[LintProblem]:
    """Each "[More Information Needed]" of a card's body, with its line (`offset`: lines before the
    body) and its section's headings."""
    problems = []
    sections: list[tuple[int, str]] = []
    for number, line, in_code in scan_markdown(body):
        heading = None if in_code else HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            sections = [(lvl, title) for lvl, title in sections if lvl < level] + [(level, heading.group(2))]
        for match in PLACEHOLDER.finditer(line):
            section = " > ".join(title for _, title in sections) or "before the first heading"
            problems.append(LintProblem(f"placeholder {match.group(0)!r}", number + offset, section))
    return problems


def _empty_structures(lines: list[tuple[int, str, bool]]) -> list[tuple[int, str]]:
    """Headings with nothing under them (but other headings and comments), tables with no rows."""
    found = []
    prose = [(number, line) for number, line, in_code in lines if not in_code or FENCE.match(line)]
    headings = [(index, len(m.group(1))) for index, (_, line) in enumerate(prose) if (m := HEADING.match(line))]
    for index, level in headings:
        end = next((i for i, lvl in headings if i > index and lvl <= level), len(prose))
        content = [line for _, line in prose[index + 1 : end] if line.strip() and not HEADING.match(line) and not HTML_COMMENT.match(line)]
        if not content:
            found.append((prose[index][0], f"empty section: {prose[index][1].strip()}"))
    for index in range(1, len(lines)):
        number, line, in_code = lines[index]
        header = lines[index - 1][1]
        if in_code or "|" not in header or "|" not in line or not TABLE_DELIMITER.match(line):
            continue
        following = lines[index + 1] if index + 1 < len(lines) else None
        if following is None or following[2] or "|" not in following[1] or not following[1].strip():
            found.append((lines[index - 1][0], f"empty table: {header.strip()}"))
    return found


def front_matter_problems(metadata: str | None) -> list[LintProblem]:
    """Problems that keep the Hub from reading the metadata, or that make it refuse the card
    (hubcard.metadata: every key's accepted values)."""
    if metadata is None:
        return [LintProblem("metadata: no YAML front matter (base_model, license, tags... are all missing)")]
    front = read_front_matter(metadata)
    if front.error is not None:
        return [LintProblem(f"metadata: {front.error}" if front.error == NOT_A_MAPPING else f"metadata: not valid YAML: {front.error}")]
    return [LintProblem(f"metadata: {problem}") for problem in metadata_problems(front.data)]


def card_metadata_problems(metadata: str | None) -> list[LintProblem]:
    """The format problems, then the keys an adapter's card needs to be found and loaded."""
    problems = front_matter_problems(metadata)
    if metadata is None:
        return problems
    front = read_front_matter(metadata)
    if front.error is None:
        if not front.data.get("base_model"):
            problems.append(LintProblem("metadata: no base_model (the Hub id of the model the adapter was trained from)"))
        if not front.data.get("license"):
            problems.append(LintProblem("metadata: no license"))
    return problems


def _read_hub_card(repo_id: str) -> tuple[str, LintReport | None]:
    """The README.md of `repo_id` read live (hubcard.repos.read_file, retried), or the report saying
    it has none or could not be read."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RemoteEntryNotFoundError

    from hubcard.hub import patient_client, with_retries
    from hubcard.repos import describe, read_file

    try:
        with patient_client():
            content = with_retries(lambda: read_file(HfApi(), repo_id, "README.md"), what=f"reading the card of {repo_id}")
    except RemoteEntryNotFoundError:
        return "", LintReport(repo_id, [LintProblem("the repository has no README.md: it has no model card at all")])
    except httpx2.HTTPError as error:
        return "", LintReport(repo_id, error=describe(error))
    return content.decode("utf-8-sig", errors="replace"), None
