"""The whole job: train, evaluate, render the card, publish; each stage reads the run directory
that the previous one wrote, so any stage can be re-run alone and a finished stage is not repeated."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hubcard.config import Config, HubSection
from hubcard.rundir import RunDir, RunRecord


@dataclass
class PipelineOutcome:
    run_dir: RunDir
    headline: str
    publish_summary: str

    def summary(self) -> str:
        return "\n".join([self.publish_summary, f"Card: {self.run_dir.card}", f"Result: {self.headline}"])


def train_and_publish(
    config: Config, *, resume: bool = False, overwrite: bool = False, dry_run: bool = False
) -> PipelineOutcome | None:
    """Run every stage; None in the helper processes of a multi-process run (the main process
    alone evaluates, renders and publishes)."""
    from hubcard import training

    run = training.train(config, resume=resume, overwrite=overwrite)
    if not is_main_process():
        return None
    return evaluate_and_publish(run, config.hub, dry_run=dry_run)


def evaluate_and_publish(run: RunDir, hub: HubSection, *, dry_run: bool = False) -> PipelineOutcome:
    """The stages after training: evaluate (unless done since the adapter was saved), render the
    card, publish (a dry run without a token or hub.repo_id)."""
    from hubcard import card, evaluation, publish

    record = run.read()
    if needs_evaluation(record):
        record = evaluation.evaluate_run(run.path)
    card.render_run_card(run.path)
    published = publish.publish_run(run.path, dry_run=dry_run or not publish.can_publish(hub))
    return PipelineOutcome(run_dir=run, headline=evaluation.headline(record), publish_summary=published.summary())


def needs_evaluation(record: RunRecord) -> bool:
    """Whether the run has no evaluation, or one older than its adapter."""
    evaluated, trained = record.stages.get("evaluate"), record.stages.get("train")
    if record.evaluation is None or evaluated is None:
        return True
    return trained is not None and trained.finished_at is not None and evaluated.started_at < trained.finished_at


def is_main_process() -> bool:
    """True but in the helper processes that `accelerate launch` or `torchrun` start (RANK > 0)."""
    return int(os.environ.get("RANK", "0")) == 0
