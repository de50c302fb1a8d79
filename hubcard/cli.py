"""The `hubcard` command: parse arguments, call a stage, print the outcome. No logic lives here.

Heavy libraries (torch, transformers, peft) are imported inside the stages, never at the top of
this module, so that `hubcard --help` answers at once.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

import click

from hubcard import __version__, environment
from hubcard.errors import HubcardError
from hubcard.repos import DEFAULT_JOBS, FORMATS, selection_options

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
RESUMABLE = {"train", "train-and-publish"}
INTERRUPTED_EXIT_CODE = 130
"""128 + SIGINT, what shells report for a command stopped with Ctrl-C."""


class HubcardGroup(click.Group):
    """Prints a HubcardError as a message (no traceback) and exits with its code; Ctrl-C says how to go on."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HubcardError as error:
            from hubcard.secrets import scrub

            click.secho(f"Error: {scrub(str(error))}", fg="red", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            again = "with --resume to continue from the last checkpoint" if ctx.invoked_subcommand in RESUMABLE else "to finish"
            click.secho(f"\nInterrupted. Run the same command again {again}.", fg="red", err=True)
            sys.exit(INTERRUPTED_EXIT_CODE)


@click.group(cls=HubcardGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="hubcard")
def cli() -> None:
    """Train a PEFT adapter from one config, evaluate it against its base model, and publish it
    to the Hugging Face Hub with a complete model card.

    \b
    config.yaml -> train -> evaluate (base and adapter) -> run directory -> card -> publish

    \b
    Start with:
      hubcard init config.yaml
      hubcard train-and-publish config.yaml
    """


config_argument = click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
overrides_argument = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
run_dir_argument = click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
run_dir_option = click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the run is written (default: run_dir in the config, else runs/CONFIG_NAME).",
)
resume_option = click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint.")
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace a different run that already is in the run directory."
)
dry_run_option = click.option(
    "--dry-run", is_flag=True, help="Print what would be uploaded and leave the repo view in RUN_DIR/repo; upload nothing."
)


@cli.command("train-and-publish", context_settings=CONTEXT_SETTINGS)
@config_argument
@overrides_argument
@run_dir_option
@resume_option
@overwrite_option
@dry_run_option
def train_and_publish_command(config, overrides, run_dir, resume, overwrite, dry_run) -> None:
    """Train, evaluate, render the card and publish, in one go.

    The hub section of the config (with its KEY=VALUE overrides) says where to publish, also for a
    run already trained. Before the base model is loaded, publishing is checked: a token (HF_TOKEN or
    `hf auth login`) that may write to hub.repo_id. Without hub.repo_id, or with --dry-run, publishing
    is a dry run: the plan is printed and the repo view is left in RUN_DIR/repo.

    \b
    Example:
      hubcard train-and-publish examples/quickstart.yaml
      hubcard train-and-publish config.yaml training.learning_rate=1e-4 hub.repo_id=me/my-adapter
    """
    loaded = _load(config, overrides, run_dir)
    from hubcard import pipeline

    outcome = pipeline.train_and_publish(loaded, resume=resume, overwrite=overwrite, dry_run=dry_run)
    if outcome is not None:
        click.echo(outcome.summary())


@cli.command("train", context_settings=CONTEXT_SETTINGS)
@config_argument
@overrides_argument
@run_dir_option
@resume_option
@overwrite_option
def train_command(config, overrides, run_dir, resume, overwrite) -> None:
    """Train the adapter and record the run in its run directory.

    \b
    Example:
      hubcard train config.yaml
      hubcard train config.yaml --resume          # continue from the last checkpoint
      hubcard train config.yaml peft.r=16 data.max_train_samples=2000
    """
    loaded = _load(config, overrides, run_dir)
    from hubcard import training
    from hubcard.pipeline import is_main_process

    trained = training.train(loaded, resume=resume, overwrite=overwrite)
    if is_main_process():  # once, not in each of the processes accelerate or torchrun started
        click.echo(f"Adapter saved in {trained.adapter}")


@cli.command("evaluate", context_settings=CONTEXT_SETTINGS)
@run_dir_argument
def evaluate_command(run_dir) -> None:
    """Evaluate the base model and the trained adapter on the same data.

    \b
    Example:
      hubcard evaluate runs/my-run
    """
    from hubcard import evaluation

    record = evaluation.evaluate_run(run_dir)
    click.echo(evaluation.headline(record))


@cli.command("render-card", context_settings=CONTEXT_SETTINGS)
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--template", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="A Jinja template to use instead of the default.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write the card (default: RUN_DIR/README.md).")
@click.option("--check", is_flag=True, help="Exit non-zero if the card has a placeholder, an empty section or a 'None'.")
@click.option("--repo", "repo_id", help="Refresh the card of an existing Hub repository instead of a run.")
@click.option("--push", is_flag=True, help="With --repo: push the refreshed card as a commit.")
@click.option("--pr", is_flag=True, help="With --repo: open a pull request with the refreshed card.")
def render_card_command(run_dir, template, output, check, repo_id, push, pr) -> None:
    """Render the model card of a finished run (or refresh the card of a Hub repository).

    \b
    Example:
      hubcard render-card runs/my-run
      hubcard render-card runs/my-run --template my-card.md.j2 --check
      hubcard render-card --repo me/old-homework-adapter --pr
    """
    from hubcard import card

    if (run_dir is None) == (repo_id is None):
        raise click.UsageError("give either RUN_DIR or --repo REPO_ID")
    if repo_id is None and (push or pr):
        raise click.UsageError("--push and --pr go with --repo")
    if repo_id is not None:
        from hubcard import refresh

        click.echo(refresh.refresh_repo_card(repo_id, template=template, output=output, push=push, pr=pr).summary())
        return
    path = card.render_run_card(run_dir, template=template, output=output)
    click.echo(f"Card written to {path}")
    if check:
        problems = card.check_card(path.read_text(encoding="utf-8"))
        for problem in problems:
            click.echo(f"{path}: {problem}", err=True)
        if problems:
            sys.exit(1)


@cli.command("publish", context_settings=CONTEXT_SETTINGS)
@run_dir_argument
@click.option("--repo-id", help="The repo to publish to, e.g. me/my-adapter (default: hub.repo_id of the run).")
@click.option("--private/--public", default=None, help="The visibility asked: a repo created now gets it, an existing one must have it (default: the namespace's).")
@click.option("--revision", help="The branch to publish to, created from main if missing (default: main).")
@click.option("--pr/--no-pr", "create_pr", default=None, help="Open a pull request instead of committing to the branch.")
@click.option("--base-model", help="The base model's Hub id, for a run whose base model was a local folder without model.hub_id.")
@dry_run_option
def publish_command(run_dir, repo_id, private, revision, create_pr, base_model, dry_run) -> None:
    """Upload the adapter, the card and the plots of a run to the Hub, in one commit.

    The options choose where; what they leave out comes from the run's hub section (run.json). The
    token comes from HF_TOKEN or `hf auth login`; it is never written anywhere.

    \b
    Example:
      hubcard publish runs/my-run --dry-run
      hubcard publish runs/my-run --repo-id me/my-adapter --private
      hubcard publish runs/my-run --repo-id someone/their-adapter --pr
    """
    from hubcard import publish

    given = {"repo_id": repo_id, "private": private, "revision": revision, "create_pr": create_pr}
    choice = {key: value for key, value in given.items() if value is not None}
    click.echo(publish.publish_run(run_dir, dry_run=dry_run, hub=choice, base_model=base_model).summary())


@cli.command("lint-card", context_settings=CONTEXT_SETTINGS)
@click.argument("cards", nargs=-1, required=True, metavar="PATH_OR_REPO_ID...")
def lint_card_command(cards) -> None:
    """Report placeholders and metadata problems in model cards (local files or Hub repos).

    A Hub repo's card is read from the Hub now, never from a local cache.
    Exit codes: 0 no problems, 1 problems, 3 a card could not be read.

    \b
    Example:
      hubcard lint-card README.md
      hubcard lint-card me/old-homework-adapter runs/my-run/README.md
    """
    from hubcard import card

    from hubcard.repos import EXIT_OK, EXIT_PROBLEMS, EXIT_UNCHECKED

    reports = [card.lint_card(target) for target in cards]
    for report in reports:
        click.echo(report.format())
    if any(report.error is not None for report in reports):
        sys.exit(EXIT_UNCHECKED)
    sys.exit(EXIT_PROBLEMS if any(report.problems for report in reports) else EXIT_OK)


@cli.command("audit", context_settings=CONTEXT_SETTINGS)
@selection_options(positional=True)
@click.option("--rubric", type=click.Path(dir_okay=False, path_type=Path), help="What a card must hold (YAML; default: the Hub's card guidebook).")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True, help="How the report is printed on stdout.")
@click.option("--jobs", type=click.IntRange(1, 64), default=DEFAULT_JOBS, show_default=True, help="Repos read at the same time.")
def audit_command(selection, rubric, output_format, jobs) -> None:
    """Report on many adapter repos (or local cards) at once: one row per repository.

    Each row: placeholders left, who wrote each section of the Hub's card template, metadata
    problems, base model, PEFT type, the adapter weights' sha256 and the audited repos with the same
    weights, results, last commit, open hubcard pull requests, and each rubric item passed or failed.
    Reads are live: a repo that cannot be read now is reported as an error, never from a cache.

    \b
    Exit codes: 0 every repo passes, 1 some repo has problems,
    2 bad options, roster or rubric, 3 some repo could not be checked.

    \b
    Example:
      hubcard audit --author cs4780-fall --filter hw3 --rubric course-rubric.yaml
      hubcard audit --roster students.csv --format csv > hw3.csv
      hubcard audit runs/my-run/README.md
    """
    from huggingface_hub import HfApi

    from hubcard import audit, repos, rubric as rubrics

    chosen = rubrics.load_rubric(rubric) if rubric else rubrics.DEFAULT_RUBRIC
    targets = repos.select(selection, HfApi(), local_files=True)
    action, rows = audit.audit(targets, chosen, revision=selection.revision, jobs=jobs)
    click.echo(repos.report(action, rows, output_format), nl=False)
    if output_format != "table":
        click.echo(repos.summary(rows), err=True)
    sys.exit(repos.exit_code(rows))


@cli.command("init", context_settings=CONTEXT_SETTINGS)
@click.argument("path", default="config.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--example", default="starter", show_default=True, help="Which example to start from (see --list).")
@click.option("--list", "list_examples", is_flag=True, help="List the examples and exit.")
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
def init_command(path, example, list_examples, force) -> None:
    """Write a commented starter config.

    \b
    Example:
      hubcard init config.yaml
      hubcard init homework.yaml --example sst2-gpt2-lora
    """
    from hubcard import starter

    if list_examples:
        for name, summary in starter.available().items():
            click.echo(f"{name:24} {summary}")
        return
    starter.write_example(example, path, force=force)
    click.echo(f"Wrote {path}; edit it, then run: hubcard train-and-publish {path}")


def _load(config: Path, overrides: tuple[str, ...], run_dir: Path | None):
    from hubcard.config import load_config

    return load_config(config, overrides, run_dir=run_dir)


class ConsoleFormatter(logging.Formatter):
    """hubcard's messages as sentences; a warning or an error says so first."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno <= logging.INFO else f"{record.levelname.capitalize()}: {message}"


class SaidOnce(logging.Filter):
    """A message logged with `extra=SAY_ONCE` (the card's notes about its metadata, which every
    rendering of the card repeats: the card, the repo view, the dry run) is printed the first time only."""

    def __init__(self) -> None:
        super().__init__()
        self.said: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "once", False):
            return True
        message = record.getMessage()
        if message in self.said:
            return False
        self.said.add(message)
        return True


def main() -> None:
    environment.set_thread_defaults()  # before anything imports torch
    # The libraries' own chatter (a new classification head's load report, deprecations between
    # transformers, peft and accelerate) is nothing a user can act on; TRANSFORMERS_VERBOSITY=info
    # brings the reports back.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    handler = logging.StreamHandler()
    handler.setFormatter(ConsoleFormatter("%(message)s"))
    handler.addFilter(SaidOnce())
    logger = logging.getLogger("hubcard")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    cli(prog_name="hubcard")
