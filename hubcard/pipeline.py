"""The whole job: train, evaluate, render the card, publish; each stage reads the run directory
that the previous one wrote, so any stage can be re-run alone and a finished stage is not repeated.

A run that will publish is checked first (`publish.preflight`: token, access, visibility; the base
model's Hub id), before the base model is loaded: nothing long starts that cannot be published.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from hubcard.config import Config, HubSection
from hubcard.rundir import RunDir, RunRecord

logger = logging.getLogger(__name__)


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
    alone evaluates, renders and publishes). The config's hub section is where it publishes, also for
    a run already trained."""
    rerun = f"hubcard train-and-publish {config.source or 'CONFIG'}"
    _check_publishing(config, dry_run=dry_run, rerun=rerun, base_model_fix=CONFIG_FIX)
    from hubcard import training  # torch and transformers: after the checks

    run = training.train(config, resume=resume, overwrite=overwrite)
    if not is_main_process():
        return None
    return _evaluate_and_publish(run, config.hub, dry_run=dry_run)


def evaluate_and_publish(run: RunDir, config: Config, *, dry_run: bool = False) -> PipelineOutcome:
    """The stages after training, for an adapter trained elsewhere (the notebook API): checked before
    the evaluation starts, as `train_and_publish` is before training."""
    _check_publishing(config, dry_run=dry_run, rerun="publish_adapter(...)", base_model_fix=NOTEBOOK_FIX)
    return _evaluate_and_publish(run, config.hub, dry_run=dry_run)


CONFIG_FIX = "set model.hub_id in the config (e.g. model.hub_id=sentence-transformers/all-MiniLM-L6-v2)"
NOTEBOOK_FIX = "pass base_model='OWNER/NAME' to publish_adapter (or document_adapter)"


def _check_publishing(config: Config, *, dry_run: bool, rerun: str, base_model_fix: str) -> None:
    from hubcard import publish

    if publish.preflight(config.hub, dry_run=dry_run, rerun=rerun).dry_run_reason is None:
        publish.require_base_model_id(config.model, fix=base_model_fix)


def _evaluate_and_publish(run: RunDir, hub: HubSection, *, dry_run: bool) -> PipelineOutcome:
    """Evaluate (unless done since the adapter was saved), render the card, publish to `hub` (a dry run
    when asked or without hub.repo_id)."""
    from hubcard import card, evaluation, publish

    record = run.read()
    if needs_evaluation(record):
        record = evaluation.evaluate_run(run.path)
    if run.card_edited_by_hand():  # published as it is where it names the repo (publish says otherwise)
        logger.warning("%s was edited by hand since hubcard wrote it: kept as it is, not rendered again", run.card)
    else:
        card.render_run_card(run.path)
    published = publish.publish_run(run.path, dry_run=dry_run, hub=hub.model_dump())
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
