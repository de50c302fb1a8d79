"""Benchmark 4, re-publishing: the bytes a second publish of an unchanged run sends, against the first.

The quickstart run (bench.setups.quickstart_run) is published twice with `hubcard.publish.publish_run`
to the loopback Hub of the tests (tests/hub/, the real huggingface_hub client over HTTP on 127.0.0.1).
Bytes are request bodies as the server counts them (`bytes_received`): in all, and in LFS uploads
(the adapter weights). The second publish should send no weights and, in all, less than the card.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from bench.common import Figure, Outcome, serve
from bench.setups import QUICKSTART_REPO, quickstart_run

if TYPE_CHECKING:
    from hubcard.rundir import RunDir
    from tests.hub import HubServer


@dataclass(frozen=True)
class Sent:
    bytes: int
    lfs_bytes: int
    requests: int
    commits: int
    summary: str


def benchmark(quick: bool) -> Outcome:
    # First: it points huggingface_hub (not imported yet) at a loopback Hub, with a fresh HF_HOME.
    from tests.hub.fixtures import LOOPBACK_HUB

    hub = LOOPBACK_HUB.start()
    os.environ["HF_TOKEN"] = hub.add_user(QUICKSTART_REPO.split("/")[0])
    run = quickstart_run(quick)
    first, second = publish(hub, run), publish(hub, run)
    card_bytes = run.card.stat().st_size
    hub.stop()
    return Outcome(
        figures=[
            Figure(
                "second publish: weight (LFS) bytes",
                second.lfs_bytes,
                first.lfs_bytes,
                "B",
                target="0",
                passed=second.lfs_bytes == 0,
            ),
            Figure(
                "second publish: bytes sent",
                second.bytes,
                first.bytes,
                "B",
                ratio=first.bytes / max(second.bytes, 1),
                target=f"≤ the card ({card_bytes:,} B)",
                passed=second.bytes <= card_bytes,
            ),
        ],
        details={"card_bytes": card_bytes, "first": asdict(first), "second": asdict(second)},
    )


def publish(hub: HubServer, run: RunDir) -> Sent:
    """Publish the run once; what the loopback Hub received meanwhile."""
    from hubcard.publish import publish_run

    before = _counters(hub)
    outcome = publish_run(run.path)
    sent, lfs, requests, commits = (now - then for now, then in zip(_counters(hub), before))
    return Sent(sent, lfs, requests, commits, outcome.summary())


def _counters(hub: HubServer) -> tuple[int, int, int, int]:
    """Bytes received in all and in LFS uploads, requests, and commits of the repo (the Hub's initial one included)."""
    repo = hub.repo(QUICKSTART_REPO)
    return hub.bytes_received(), hub.bytes_received("lfs_upload"), len(hub.requests()), len(repo.commits) if repo else 0


BENCHMARKS = {"publish": benchmark}

if __name__ == "__main__":
    serve(BENCHMARKS)
