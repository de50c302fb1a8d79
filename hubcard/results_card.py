"""An evaluation's results into the card of the repo its adapter came from: `hubcard evaluate --repo --pr/--push`.

    the evaluation's run.json ──► hubcard's card of the results: its section (card.results_section) and a
        model-index entry per metric for the evaluation data (card.model_index_results), the repo's
        earlier model-index entries kept (hubcard's own for the same data, split and metric replaced)
    + the repo's README.md ──hubcard.merge──► the card to send: every section and front-matter key of the
        repo's card as it is; hubcard's results section added at its end, or replaced where it is already
    ──► a commit to the default branch (--push), or hubcard's pull request of kind `results`
        (hubcard.pulls.propose: a re-run updates it, or finds it up to date; none when the card holds
        these results already)

The results section ends with a marker holding the digest of its text (RESULTS_MARKER): a re-run
replaces a results section that hubcard wrote, and keeps one that a person has edited since (the
merge says so). A model-index entry needs a Hub data set (data.hub_id): without one, the section alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from huggingface_hub import CommitOperationAdd, HfApi, ModelCardData
from huggingface_hub.errors import RemoteEntryNotFoundError
from huggingface_hub.repocard_data import EvalResult, model_index_to_eval_results

from hubcard.card import RESULTS_HEADING, model_index_results, results_section
from hubcard.frontmatter import read_front_matter, split_front_matter
from hubcard.merge import CardRecord, merge_card, record_card
from hubcard.metadata import metadata_problems
from hubcard.pulls import Proposal, card_pull_request, open_pull_requests, pending, propose
from hubcard.repos import read_file
from hubcard.rundir import CARD, RunRecord
from hubcard.sections import heading_key, normalized_lines, parse_sections

Mode = Literal["pr", "push"]
BRANCH = "main"
RESULTS_MARKER = "<!-- hubcard:results sha256={digest} -->"
MARKER_PATTERN = re.compile(r"^<!--\s*hubcard:results\s+sha256=(?P<digest>[0-9a-f]{64})\s*-->\s*$")


@dataclass(frozen=True)
class ResultsCard:
    """The card with the results, and what the merge kept of the repo's card that concerns them."""

    text: str
    kept: list[str]
    """E.g. "'Evaluation on held-out data': edited on the Hub, kept (hubcard's new text for it is not used)"."""
    model_index: bool
    """Whether the card gets model-index entries (the evaluation data has a Hub id, the card's model-index reads)."""


@dataclass(frozen=True)
class Sent:
    """What became of a repo's results: `done` in a few words, and where (a pull request's or a commit's URL)."""

    done: str
    url: str | None
    kept: list[str]


def results_card(theirs: str | None, record: RunRecord) -> ResultsCard:
    """The repo's card `theirs` (None: it has none) with the results of `record` merged into it (see the
    module's docstring)."""
    section = results_section(record)
    section = f"{section.rstrip()}\n\n{RESULTS_MARKER.format(digest=_digest(section))}\n"
    block, body, _ = split_front_matter(theirs or "")
    front = read_front_matter(block).data
    index = _model_index(front.get("model-index"), model_index_results(record), record)
    ours = section if index is None else f"---\n{ModelCardData(model_name=index[0], eval_results=index[1]).to_yaml()}\n---\n\n{section}"
    # What of the repo's card is hubcard's to replace: its model-index (hubcard's merged value keeps every
    # entry of it), and a results section hubcard wrote that nobody has edited since.
    recorded = record_card(theirs or "")
    metadata = {key: digest for key, digest in recorded.metadata.items() if key == "model-index" and index is not None}
    sections = {key: digest for key, digest in recorded.sections.items() if key == RESULTS_KEY and _untouched(body)}
    merged = merge_card(ours, theirs or "", CardRecord(metadata, sections))
    kept = [line for line in merged.kept if line.lower().startswith((f"'{RESULTS_KEY}'", "front matter model-index"))]
    return ResultsCard(merged.text, kept, index is not None)


def holds_results(card: str) -> bool:
    """Whether `card` holds a results section of hubcard's (its marker)."""
    return any(MARKER_PATTERN.match(line) for line in card.splitlines())


def send_results(api: HfApi, repo_id: str, record: RunRecord, mode: Mode) -> Sent:
    """Merge the results of `record` into the card of `repo_id`'s default branch and push them (`push`)
    or propose them through hubcard's pull request of the card (`pr`: the open one, a refreshed card's
    included, on its card; else a new `results` one). ValueError when the merged card's
    metadata is one the Hub would refuse (nothing is sent); huggingface_hub's errors propagate."""
    head = api.model_info(repo_id).sha
    # hubcard's open pull request of the card (a refreshed card): the results go into it, on its card
    pulls = open_pull_requests(api, repo_id) if mode == "pr" else []
    pull = card_pull_request(pulls, BRANCH)
    try:
        theirs = read_file(api, repo_id, CARD, revision=pull.git_reference if pull else head).decode("utf-8-sig")
    except RemoteEntryNotFoundError:
        theirs = None
    merged = results_card(theirs, record)
    problems = metadata_problems(read_front_matter(split_front_matter(merged.text)[0]).data)
    if problems:
        raise ValueError("the card's metadata would be refused by the Hub, nothing sent: " + "; ".join(map(str, problems)))
    operations = [CommitOperationAdd(CARD, merged.text.encode("utf-8"))]
    title, description = _message(record)
    if mode == "pr":
        proposal = propose(api, repo_id, operations, kind="results", title=title, description=description, branch=BRANCH, pulls=pulls)
        return Sent(_done(proposal), proposal.url, merged.kept)
    if not pending(api, repo_id, operations, head):
        return Sent("nothing to change", None, merged.kept)
    commit = api.create_commit(repo_id, operations, commit_message=title, commit_description=description, revision=BRANCH, parent_commit=head)
    return Sent(f"pushed {commit.oid[:8]}", commit.commit_url, merged.kept)


RESULTS_KEY = heading_key(RESULTS_HEADING)


def _model_index(found: Any, ours: list[EvalResult], record: RunRecord) -> tuple[str, list[EvalResult]] | None:
    """The model name and the results of the card's model-index with `ours` in it: the card's entries
    kept but those for the same task, data set, split and metric as one of `ours` (an earlier evaluation
    of hubcard's), which `ours` replace. None when there is nothing to add (no Hub data set) or the
    card's model-index cannot be read (it is left as it is)."""
    if not ours:
        return None
    name = record.hub_adapter.repo_id.split("/")[-1] if record.hub_adapter else "adapter"
    if not found:
        return name, ours
    try:
        name, theirs = model_index_to_eval_results(found)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return name, [result for result in theirs if not any(result.is_equal_except_value(mine) for mine in ours)] + ours


def _digest(section: str) -> str:
    """The digest of a results section's text below its heading, without the marker line."""
    below = next((found.lines for found in parse_sections(section) if found.heading), [])
    text = "\n".join(line for line in below if not MARKER_PATTERN.match(line.strip()))
    return hashlib.sha256("\n".join(normalized_lines(text)).encode("utf-8")).hexdigest()


def _untouched(body: str) -> bool:
    """Whether the card's results section is as hubcard wrote it: its marker's digest is its text's."""
    for section in parse_sections(body):
        if section.heading and section.key == RESULTS_KEY:
            text = "\n".join([section.heading, *section.lines])
            markers = [match["digest"] for line in section.lines if (match := MARKER_PATTERN.match(line.strip()))]
            return markers == [_digest(text)]
    return False


def _message(record: RunRecord) -> tuple[str, str]:
    """The commit's (or pull request's) title and description."""
    data, source = record.data, record.hub_adapter
    assert data is not None and source is not None and record.evaluation is not None
    what = data.hub_id or ", ".join(Path(path).name for path in (data.files or {}).values())
    first = record.evaluation.comparison[0]
    low, high = first.difference_interval
    description = (
        f"hubcard evaluated the adapter at commit {source.commit[:8]} and its base model on {record.evaluation.rows} examples of "
        f"{what} (split {data.eval.name}): {first.name} {first.base:.3f} → {first.adapter:.3f} ({first.difference:+.3f}, "
        f"{record.evaluation.confidence_level:.0%} CI [{low:+.3f}, {high:+.3f}]). This adds the section "
        f"'{RESULTS_HEADING}' to the card" + (" and the results to its model-index" if data.hub_id else "") + "; the rest of the card is unchanged."
    )
    return f"Evaluation results on {what}", description


def _done(proposal: Proposal) -> str:
    number = f"PR #{proposal.number} " if proposal.number else ""
    return f"{number}{proposal.action}"
