"""Many repositories at once, for course staff: select them, act on each, report one row per repo.

    REPO_ID... / --repo / --author / --roster / --filter ──► targets ──► action on each (threads, retries)
                                                                         ──► rows ──► table | csv | json

The layer is generic: an action (`Action`: audit, and later refresh and evaluate) decides what a row
holds and what makes it `ok` or `problems`; the layer selects the repos, runs the action on each with
bounded concurrency and hubcard.hub's retry policy, turns a repo that could not be read into a row
with status `error` and the reason (never a guess), and prints the report on stdout (a progress bar
on stderr). Exit codes: EXIT_OK when every row is ok, EXIT_PROBLEMS when some row has problems,
EXIT_UNCHECKED when some repo could not be checked; EXIT_USAGE (2) is left to bad options, rosters
and config files.

Reads are live: `read_file` asks the Hub every time and never answers from huggingface_hub's cache,
so a repo that cannot be read now (private without a token that can read it, the Hub unreachable) is
an error, not an old answer.

huggingface_hub and hubcard.hub are imported when a repo is read, not with this module, so that the
commands that use `selection_options` answer --help at once.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import logging
import re
import sys
import textwrap
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import click

from hubcard.errors import HubcardError
from hubcard.secrets import scrub

if TYPE_CHECKING:
    from huggingface_hub import HfApi

logger = logging.getLogger(__name__)

Status = Literal["ok", "problems", "error"]
Format = Literal["table", "csv", "json"]
FORMATS: tuple[Format, ...] = ("table", "csv", "json")
EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_UNCHECKED = 0, 1, 2, 3
DEFAULT_JOBS = 8
"""Repos checked at the same time (each a few small requests)."""
PROGRESS_FROM = 10
"""Lists at least this long get a progress bar on stderr."""
TABLE_WIDTH = 100
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
ROSTER_COLUMN = "repo_id"

F = TypeVar("F", bound=Callable[..., Any])


class SelectionError(HubcardError):
    """The repos to check cannot be known: bad REPO_IDs, a bad roster, nothing selected."""

    exit_code = EXIT_USAGE


class ListingError(HubcardError):
    """The Hub could not list the models of an --author: no repo of it could be checked."""

    exit_code = EXIT_UNCHECKED


class Unchecked(Exception):
    """Raised by an action when it cannot check a target (its message says why): an `error` row."""


@dataclass(frozen=True)
class Target:
    """One repo to act on."""

    repo_id: str
    """owner/name; for a local card, the path as given."""
    roster: Mapping[str, str] = field(default_factory=dict)
    """The roster's other columns for this repo (the student's name...), as read."""
    path: Path | None = None
    """A local card (a README.md or a folder holding one) instead of a Hub repo."""


@dataclass(frozen=True)
class Selection:
    """What the selection options asked for (see `selection_options`)."""

    repo_ids: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    roster: Path | None = None
    filter: str | None = None
    revision: str | None = None

    @property
    def names_repos(self) -> bool:
        """Whether any repo was asked for (REPO_IDs, --author or --roster)."""
        return bool(self.repo_ids or self.authors or self.roster is not None)


@dataclass(frozen=True)
class Row:
    """The outcome for one target: `fields` are the action's (empty for an `error` row)."""

    target: Target
    status: Status
    error: str | None
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    """A column of the table: its header, its width at most, and a row's cell."""

    header: str
    width: int
    cell: Callable[[Row], str]


class Action(Protocol):
    """What is done to each repo, and how its rows are shown."""

    label: str
    """For the progress bar: 'Auditing'."""
    fields: tuple[str, ...]
    """The keys of a row after repo_id, roster, status and error, in order (null in an error row)."""

    def check(self, target: Target) -> tuple[Status, dict[str, Any]]:
        """The status and fields of one repo; raises Unchecked or an HTTP error when it cannot be checked."""
        ...

    def columns(self) -> list[Column]:
        """The table's columns after repo, roster columns and status."""
        ...

    def flat(self, row: Row) -> dict[str, str]:
        """The CSV cells of a row after repo_id, roster columns, status and error (empty for an error row)."""
        ...

    def legend(self) -> list[str]:
        """Lines printed under the table that explain its columns."""
        ...


# --- selecting ----------------------------------------------------------------------------------------


def selection_options(*, positional: bool = True) -> Callable[[F], F]:
    """click options that select repos, handed to the command as one `selection: Selection` argument:
    REPO_ID... (if `positional`), --repo (repeatable), --author (repeatable), --roster, --filter, --revision."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def run(*args: Any, repo_ids=(), repos=(), authors=(), roster=None, filter_text=None, revision=None, **kwargs: Any) -> Any:
            selection = Selection(tuple(repo_ids) + tuple(repos), tuple(authors), roster, filter_text, revision)
            return command(*args, selection=selection, **kwargs)

        options = [
            click.option("--repo", "repos", multiple=True, metavar="REPO_ID", help="A Hub repo (owner/name); repeatable."),
            click.option(
                "--author", "authors", multiple=True, metavar="NAME", help="Every model repo of a user or an organisation; repeatable."
            ),
            click.option(
                "--roster",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help=f"A CSV file with a {ROSTER_COLUMN} column; its other columns (a student's name...) are kept in the report.",
            ),
            click.option("--filter", "filter_text", metavar="TEXT", help="Only repos whose name contains TEXT (case ignored), e.g. hw3."),
            click.option("--revision", metavar="REV", help="A branch, tag or commit to read instead of the default branch."),
        ]
        if positional:
            options.insert(0, click.argument("repo_ids", nargs=-1, metavar="[REPO_ID]..."))
        for option in reversed(options):
            run = option(run)
        return run  # type: ignore[return-value]

    return decorate


def select(selection: Selection, api: HfApi, *, local_files: bool = False) -> list[Target]:
    """The targets `selection` names, each once: the REPO_IDs as given, the roster's lines in order, then
    each author's repos sorted by id; `--filter` keeps the Hub repos whose name (after the owner/)
    contains it. A repo also on the roster keeps the roster's columns.

    `api`'s token decides which private repos an --author listing shows; `local_files`: a REPO_ID that
    is an existing file or folder is a local card. SelectionError for a REPO_ID that is neither, a bad
    roster or an empty selection; ListingError when the Hub cannot list an author's models.
    """
    targets = [_target(value, local_files) for value in selection.repo_ids]
    if selection.roster is not None:
        targets += read_roster(selection.roster)
    if selection.authors and not _has_token(api):
        logger.warning("no Hub token (HF_TOKEN or `hf auth login`): --author lists public repos only, private ones are left out")
    for author in selection.authors:
        listed = _list_models(api, author)
        if not listed:
            logger.warning("the Hub lists no model repo of %s that this token can see", author)
        targets += [Target(repo_id) for repo_id in listed]
    found = len({target.repo_id for target in targets})
    if selection.filter:
        needle = selection.filter.lower()
        targets = [t for t in targets if t.path is not None or needle in t.repo_id.split("/", 1)[-1].lower()]
    unique: dict[str, Target] = {}
    for target in targets:
        if target.repo_id not in unique or (target.roster and not unique[target.repo_id].roster):
            unique[target.repo_id] = target
    if not unique:
        if found:
            raise SelectionError(f"no repository selected: --filter {selection.filter!r} is in the name of none of the {found} repos found")
        if selection.authors or selection.roster is not None:
            raise SelectionError("no repository selected: the roster and the --author listings hold no repo")
        raise SelectionError("no repository selected: give REPO_IDs (or --repo), --author NAME or --roster FILE")
    return list(unique.values())


def _has_token(api: HfApi) -> bool:
    from huggingface_hub import get_token

    return bool(api.token or get_token())


def read_roster(path: Path) -> list[Target]:
    """The repos of a roster: a CSV file (UTF-8, a header row) with a `repo_id` column; every other
    column is kept for the report. SelectionError listing every bad line (1-based)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise SelectionError(
            f"cannot read the roster {path}: byte {error.start + 1} is not UTF-8; save it as UTF-8 (in Excel: CSV UTF-8)"
        ) from None
    except OSError as error:
        raise SelectionError(f"cannot read the roster {path}: {error}") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [name.strip() for name in reader.fieldnames or []]
    columns = [ROSTER_COLUMN if name.lower() == ROSTER_COLUMN else name for name in columns]  # Repo_ID, REPO_ID
    if ROSTER_COLUMN not in columns:
        found = ", ".join(columns) or "none"
        raise SelectionError(f"{path}: the roster needs a {ROSTER_COLUMN} column (found: {found}), one owner/name per line")
    reader.fieldnames = columns
    targets, problems, first_line = [], [], {}
    for row in reader:
        line = reader.line_num
        repo_id = repo_id_of((row.get(ROSTER_COLUMN) or "").strip())
        if None in row:  # csv's restkey: more fields than the header names
            fields = len(columns) + len(row[None])
            problems.append(f"line {line}: {fields} fields, the header names {len(columns)} (a comma in a value? put the value in double quotes)")
        elif not repo_id:
            problems.append(f"line {line}: {ROSTER_COLUMN} is empty")
        elif not REPO_ID.match(repo_id):
            problems.append(f"line {line}: {repo_id!r} is not a Hub repo id (owner/name)")
        elif repo_id in first_line:
            problems.append(f"line {line}: {repo_id} is listed again (first on line {first_line[repo_id]})")
        else:
            first_line[repo_id] = line
            extra = {name: (value or "").strip() for name, value in row.items() if name not in (ROSTER_COLUMN, None)}
            targets.append(Target(repo_id, extra))
    if problems:
        raise SelectionError(f"{path}: " + ("\n  ".join(["bad roster:", *problems])))
    return targets


def repo_id_of(value: str) -> str:
    """`value` as a repo id: a model repo's address on the Hub (what students often hand in:
    https://huggingface.co/OWNER/NAME, with /tree/main or a trailing slash; or on HF_ENDPOINT) becomes
    OWNER/NAME; anything else is returned as it is."""
    from huggingface_hub import constants

    for hub in {constants.ENDPOINT.rstrip("/"), "https://huggingface.co"}:
        if value.startswith(f"{hub}/"):
            parts = value.removeprefix(f"{hub}/").split("/")
            return "/".join(parts[:2]) if len(parts) >= 2 and parts[0] not in ("datasets", "spaces") else value
    return value


def _target(value: str, local_files: bool) -> Target:
    if local_files and Path(value).exists():
        return Target(value, path=Path(value))
    if REPO_ID.match(repo_id := repo_id_of(value)):
        return Target(repo_id)
    what = "an existing card file or folder, nor a Hub repo id" if local_files else "a Hub repo id"
    raise SelectionError(f"{value}: not {what} (owner/name)")


def _list_models(api: HfApi, author: str) -> list[str]:
    import httpx2

    from hubcard.hub import patient_client, with_retries

    try:
        with patient_client():
            models = with_retries(lambda: list(api.list_models(author=author)), what=f"listing the models of {author}")
    except httpx2.HTTPError as error:
        raise ListingError(f"could not list the models of {author}: {describe(error)}") from None
    return sorted(model.id for model in models)


# --- reading ------------------------------------------------------------------------------------------


def read_file(api: HfApi, repo_id: str, path: str, *, revision: str | None = None) -> bytes:
    """The bytes of `path` in model repo `repo_id` at `revision` (default branch if None), asked of the
    Hub now with `api`'s token: never huggingface_hub's cache (which answers for a repo that can no
    longer be read) and nothing written to it. Raises huggingface_hub's errors: RepositoryNotFoundError,
    RevisionNotFoundError, RemoteEntryNotFoundError, HfHubHTTPError; httpx2's for the network."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    from hubcard.hub import request_timeout

    url = hf_hub_url(repo_id, path, revision=revision, endpoint=api.endpoint)
    response = get_session().get(url, headers=build_hf_headers(token=api.token), follow_redirects=True, timeout=request_timeout())
    hf_raise_for_status(response)
    return response.content


def describe(error: BaseException) -> str:
    """Why a repo could not be checked, in one line (no token in it)."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    from hubcard.hub import request_timeout

    if isinstance(error, RepositoryNotFoundError):
        text = "not found on the Hub, or private and this token cannot read it"
    elif isinstance(error, RevisionNotFoundError):
        text = f"no such revision ({_server_message(error)})"
    elif isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        text = f"the Hub refused the token (401: {_server_message(error)})" if status == 401 else f"the Hub answered {status}: {_server_message(error)}"
        if status == 403 and error.response.request.method != "GET":
            text += "; this token may not write to the repo: --pr proposes the change instead (reading is enough for a pull request)"
    elif isinstance(error, httpx2.TimeoutException):
        text = f"the Hub at {constants.ENDPOINT} did not answer within {request_timeout():g} s"
    elif isinstance(error, httpx2.TransportError):
        text = f"cannot reach the Hub at {constants.ENDPOINT} ({_first_line(error)})"
    else:
        text = _first_line(error)
    return scrub(text)


def _server_message(error: Any) -> str:
    return error.server_message or (error.response.reason_phrase if error.response is not None else "") or "no details"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- running ------------------------------------------------------------------------------------------


def run(action: Action, targets: Sequence[Target], *, jobs: int = DEFAULT_JOBS) -> list[Row]:
    """`action.check` on every target, `jobs` at a time, each retried as hubcard.hub.with_retries does;
    the rows in the targets' order. A target that cannot be checked is an `error` row with the reason.
    Once UNREACHABLE_IN_A_ROW targets in a row could not reach the Hub at all, the targets not started
    yet are not tried (their rows say so): a Hub that is down fails the command in seconds, not after
    every repo's retries."""
    from hubcard.hub import patient_client

    rows: list[Row | None] = [None] * len(targets)
    hub_down = _HubDown()
    with patient_client(), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_check, action, target, hub_down): index for index, target in enumerate(targets)}
        with _progress(action.label, len(targets)) as bar:
            for future in as_completed(futures):
                rows[futures[future]] = future.result()
                bar.update(1)
    return [row for row in rows if row is not None]


UNREACHABLE_IN_A_ROW = 3


class _HubDown:
    """Counts the targets in a row whose check could not reach the Hub (connection refused, DNS,
    timeouts), shared by the threads of one `run`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_a_row = 0
        self.reason: str | None = None
        """Set once UNREACHABLE_IN_A_ROW targets in a row could not reach the Hub."""

    def record(self, error: BaseException | None) -> None:
        import httpx2

        with self._lock:
            if isinstance(error, httpx2.TransportError):
                self._in_a_row += 1
                if self._in_a_row >= UNREACHABLE_IN_A_ROW and self.reason is None:
                    self.reason = f"not tried: {self._in_a_row} repos in a row could not reach the Hub ({describe(error)})"
            else:
                self._in_a_row = 0


def mark_duplicates(rows: Sequence[Row], status_of: Callable[[Mapping[str, Any]], Status]) -> list[Row]:
    """Each checked row's `duplicate_of`: the other checked rows whose `adapter_sha256` field is the same
    (byte-identical adapter weights), and its status again by `status_of(fields)`."""
    owners: dict[str, list[str]] = {}
    for row in rows:
        if row.status != "error" and row.fields.get("adapter_sha256"):
            owners.setdefault(row.fields["adapter_sha256"], []).append(row.target.repo_id)
    marked = []
    for row in rows:
        if row.status == "error":
            marked.append(row)
            continue
        others = [repo_id for repo_id in owners.get(row.fields.get("adapter_sha256") or "", []) if repo_id != row.target.repo_id]
        fields = {**row.fields, "duplicate_of": others}
        marked.append(dataclasses.replace(row, fields=fields, status=status_of(fields)))
    return marked


def exit_code(rows: Iterable[Row]) -> int:
    """EXIT_UNCHECKED if a repo could not be checked, else EXIT_PROBLEMS if one has problems, else EXIT_OK."""
    statuses = {row.status for row in rows}
    return EXIT_UNCHECKED if "error" in statuses else EXIT_PROBLEMS if "problems" in statuses else EXIT_OK


def _check(action: Action, target: Target, hub_down: _HubDown) -> Row:
    import httpx2

    from hubcard.hub import with_retries

    if hub_down.reason is not None:
        return Row(target, "error", hub_down.reason, {})
    try:
        status, fields = with_retries(lambda: action.check(target), what=f"reading {target.repo_id}")
    except (Unchecked, httpx2.HTTPError) as error:
        hub_down.record(error)
        return Row(target, "error", describe(error), {})
    hub_down.record(None)
    return Row(target, status, None, fields)


def _progress(label: str, count: int) -> Any:
    if count < PROGRESS_FROM:
        return click.progressbar(length=count, file=io.StringIO())  # nothing shown for a short list
    return click.progressbar(length=count, label=f"{label} {count} repositories", file=sys.stderr)


# --- reporting ----------------------------------------------------------------------------------------


def report(action: Action, rows: Sequence[Row], format: Format) -> str:
    """The report of `rows` as `format`: a table (one line per repo, TABLE_WIDTH columns at most, then
    a summary and the legend), CSV (a header row) or JSON (a list of objects)."""
    if format == "json":
        return json.dumps([_json_row(action, row) for row in rows], indent=2, ensure_ascii=False) + "\n"
    if format == "csv":
        return _csv(action, rows)
    return _table(action, rows)


def summary(rows: Sequence[Row]) -> str:
    counts = {status: sum(row.status == status for row in rows) for status in ("ok", "problems", "error")}
    noun = "repository" if len(rows) == 1 else "repositories"
    return f"{len(rows)} {noun}: {counts['ok']} ok, {counts['problems']} with problems, {counts['error']} could not be checked."


def _json_row(action: Action, row: Row) -> dict[str, Any]:
    head: dict[str, Any] = {"repo_id": row.target.repo_id}
    if row.target.roster:
        head["roster"] = dict(row.target.roster)
    return head | {"status": row.status, "error": row.error} | {key: row.fields.get(key) for key in action.fields}


def _roster_columns(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(name for row in rows for name in row.target.roster))


def _csv(action: Action, rows: Sequence[Row]) -> str:
    roster = _roster_columns(rows)
    flats = [action.flat(row) for row in rows]
    names = list(dict.fromkeys(name for flat in flats for name in flat))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([ROSTER_COLUMN, *roster, "status", "error", *names])
    for row, flat in zip(rows, flats):
        writer.writerow([row.target.repo_id, *(row.target.roster.get(name, "") for name in roster), row.status, row.error or "", *(flat.get(name, "") for name in names)])
    return buffer.getvalue()


def _table(action: Action, rows: Sequence[Row]) -> str:
    """One line per repo; the repo id and the roster's columns are never cut (the line grows past
    TABLE_WIDTH instead), and an error is printed whole, indented on the lines under its row."""
    roster = [Column(name, 10_000, lambda row, name=name: row.target.roster.get(name, "")) for name in _roster_columns(rows)]
    columns = [*roster, Column("status", 8, lambda row: row.status), *action.columns()]
    checked = [row for row in rows if row.status != "error"]
    widths = [max([len(column.header), *(len(column.cell(row)) for row in (rows if column in roster else checked))]) for column in columns]
    widths = [width if column in roster else min(column.width, width) for column, width in zip(columns, widths)]
    widths.insert(0, max([4, *(len(row.target.repo_id) for row in rows)]))
    lines = [_line(["repo", *(column.header for column in columns)], widths)]
    for row in rows:
        cells = [row.target.repo_id, *(column.cell(row) for column in roster), row.status]
        if row.status == "error":
            lines.append(_line(cells, widths[: len(cells)]))
            lines += textwrap.wrap(row.error or "", TABLE_WIDTH, initial_indent="    ", subsequent_indent="    ", break_on_hyphens=False)
        else:
            lines.append(_line([*cells, *(column.cell(row) for column in columns[len(roster) + 1 :])], widths))
    return "\n".join([*lines, "", summary(rows), *action.legend()]) + "\n"


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return " ".join(_fit(cell, width).ljust(width) for cell, width in zip(cells, widths)).rstrip()


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"
