"""The whole job: train, evaluate, render the card, publish; each stage reads the run directory
that the previous one wrote, so any stage can be re-run alone."""

from __future__ import annotations

from dataclasses import dataclass

from hubcard.config import Config
from hubcard.rundir import RunDir


@dataclass
class PipelineOutcome:
    run_dir: RunDir
    headline: str
    publish_summary: str

    def summary(self) -> str:
        return "\n".join(
            [
                self.publish_summary,
                f"Card: {self.run_dir.card}",
                f"Result: {self.headline}",
            ]
        )


def train_and_publish(config: Config, *, resume: bool = False, overwrite: bool = False, dry_run: bool = False) -> PipelineOutcome:
    from hubcard import card, evaluation, publish, training

    run_dir = training.train(config, resume=resume, overwrite=overwrite)
    record = evaluation.evaluate_run(run_dir.path)
    card.render_run_card(run_dir.path)
    published = publish.publish_run(run_dir.path, dry_run=dry_run or not publish.can_publish(config.hub))
    return PipelineOutcome(run_dir=run_dir, headline=evaluation.headline(record), publish_summary=published.summary())
