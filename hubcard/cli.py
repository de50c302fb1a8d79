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


def _moment(ctx: click.Context, param: click.Parameter, value: str | None):
    from hubcard.repo_evaluation import parse_moment

    try:
        return parse_moment(value) if value is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _hub_model_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from hubcard.metadata import metadata_problems

    if value is not None and (problems := metadata_problems({"base_model": value})):
        raise click.BadParameter(problems[0].message)
    return value


@cli.command("evaluate", context_settings=CONTEXT_SETTINGS)
@click.argument("path", metavar="RUN_DIR | EVAL.yaml", type=click.Path(path_type=Path))
@selection_options(positional=False)
@click.option(
    "--before",
    metavar="DATETIME",
    callback=_moment,
    help="Evaluate the last commit at or before this moment (ISO 8601: 2025-03-01, the end of that day in UTC, "
    "or 2025-03-01T23:59:00+01:00); on the --revision branch, else the default branch.",
)
@click.option("--base-model", metavar="ID", callback=_hub_model_id, help="The base model's Hub id for adapters whose adapter_config.json names none.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="evaluations",
    show_default=True,
    help="Where the run directories go: OUTPUT_DIR/OWNER/NAME.",
)
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True, help="How the report is printed on stdout.")
@click.option("--pr", is_flag=True, help="Propose the results in each repo's card: hubcard's pull request (a re-run updates it).")
@click.option(
    "--push",
    is_flag=True,
    help="Commit the results to each repo's card on its default branch (with --before or a fixed --revision: the commit made becomes the head).",
)
@click.option("--jobs", type=click.IntRange(1, 64), default=DEFAULT_JOBS, show_default=True, help="Repos read at the same time.")
def evaluate_command(path, selection, before, base_model, output_dir, output_format, pr, push, jobs) -> None:
    """Evaluate base model and adapter on the same data: of a run (RUN_DIR), or of adapters on the Hub
    (EVAL.yaml, with --repo, --author or --roster).

    EVAL.yaml holds the task, data and evaluation sections of a config: the held-out data, and for
    causal-lm adapters the prompt. Each repo's adapter is evaluated at --revision, or at the last
    commit at or before --before; its base model is the one its adapter_config.json names (else the
    roster's base_model column, else --base-model), loaded and evaluated once for all the adapters
    on it. Each repo gets a run directory (OUTPUT_DIR/OWNER/NAME) that render-card and publish take;
    the report has one row per repo, on stdout. With --pr or --push, a results section and (for a
    Hub data set) model-index entries go into each repo's card; the rest of the card is kept.

    \b
    Exit codes: 0 every repo evaluated, 1 some adapters are byte-identical,
    2 bad options, roster or EVAL.yaml, 3 some repo could not be evaluated.

    \b
    Example:
      hubcard evaluate runs/my-run
      hubcard evaluate --roster students.csv hw3-test.yaml --before 2025-03-01 --format csv > hw3.csv
      hubcard evaluate --repo alice/hw3 --repo bob/hw3 hw3-test.yaml --revision submitted --pr
    """
    if pr and push:
        raise click.UsageError("give --pr or --push, not both")
    if not selection.names_repos:
        options = {"--filter": selection.filter, "--revision": selection.revision, "--before": before, "--base-model": base_model, "--pr": pr, "--push": push}
        given = [name for name, value in options.items() if value]
        if given:
            raise click.UsageError(f"{', '.join(given)} go with --repo, --author or --roster (and an EVAL.yaml)")
        from hubcard import evaluation

        record = evaluation.evaluate_run(path)
        click.echo(evaluation.headline(record))
        return
    from huggingface_hub import HfApi

    from hubcard import repo_evaluation, repos
    from hubcard.config import load_eval_config

    eval_config = load_eval_config(path)
    targets = repos.select(selection, HfApi())
    action, rows = repo_evaluation.evaluate_repos(
        targets,
        eval_config,
        revision=selection.revision,
        before=before,
        base_model=base_model,
        output_dir=output_dir,
        send="pr" if pr else "push" if push else None,
        jobs=jobs,
    )
    click.echo(repos.report(action, rows, output_format), nl=False)
    if output_format != "table":
        click.echo(repos.summary(rows), err=True)
    sys.exit(repos.exit_code(rows))


@cli.command("render-card", context_settings=CONTEXT_SETTINGS)
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@selection_options(positional=False)
@click.option("--template", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="A Jinja template to use instead of the default.")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write the card (default: RUN_DIR/README.md); with --repo..., the folder for the refreshed cards (default: here).",
)
@click.option("--check", is_flag=True, help="Exit non-zero if the card has a placeholder, an empty section or a 'None'.")
@click.option("--push", is_flag=True, help="With --repo...: push each refreshed card as a commit (the repo's owner only).")
@click.option("--pr", is_flag=True, help="With --repo...: propose each refreshed card in hubcard's pull request (a re-run updates it).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="With --repo...: a fact of the card (license, developed_by, base_model, language, datasets...); repeatable.")
@click.option("--message", metavar="TEXT", help="With --pr or --push: the pull request's (or commit's) description, e.g. a note to the student.")
@click.option("--to-write/--no-to-write", default=True, show_default=True, help="With --repo...: leave a to-do in Uses, Bias/Risks/Limitations and Recommendations when they hold template text only (else remove them).")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="table", show_default=True, help="With --repo...: how the report is printed on stdout.")
@click.option("--jobs", type=click.IntRange(1, 64), default=DEFAULT_JOBS, show_default=True, help="With --repo...: repos refreshed at the same time.")
def render_card_command(run_dir, selection, template, output, check, push, pr, settings, message, to_write, output_format, jobs) -> None:
    """Render the model card of a finished run, or refresh the cards of adapter repos on the Hub.

    With --repo, --author or --roster: each repo's card is refreshed — the sections a person wrote
    kept word for word, template sections filled from the repo or left as a to-do, the front matter
    changed only where it must — and written to a file, pushed (--push) or proposed in hubcard's pull
    request (--pr). A roster's columns named like a --set key give that fact for its repo.

    \b
    Exit codes with --repo...: 0 every card done, 1 some card needs a person (see under the
    table), 2 bad options or roster, 3 some repo could not be refreshed.

    \b
    Example:
      hubcard render-card runs/my-run
      hubcard render-card runs/my-run --template my-card.md.j2 --check
      hubcard render-card --repo me/old-homework-adapter --pr
      hubcard render-card --roster students.csv --filter hw3 --set license=mit --pr --message "Please write Uses."
    """
    from hubcard import card

    if run_dir is not None and selection.names_repos:
        raise click.UsageError("give either RUN_DIR or --repo/--author/--roster, not both")
    if run_dir is None and not selection.names_repos:
        raise click.UsageError("give either RUN_DIR or --repo/--author/--roster")
    if run_dir is not None:
        if push or pr or settings or message:
            raise click.UsageError("--push, --pr, --set and --message go with --repo/--author/--roster")
        from hubcard.rundir import RunDir

        if check and output is None and RunDir(run_dir).card_edited_by_hand():
            path = RunDir(run_dir).card
            click.echo(f"{path} was edited by hand since hubcard wrote it: checked as it is, not rendered again")
        else:
            path = card.render_run_card(run_dir, template=template, output=output)
            click.echo(f"Card written to {path}")
        if check:
            problems = card.check_card(path.read_text(encoding="utf-8"))
            for problem in problems:
                click.echo(f"{path}: {problem}", err=True)
            if problems:
                sys.exit(1)
        return
    if push and pr:
        raise click.UsageError("give --push or --pr, not both")
    if message and not (push or pr):
        raise click.UsageError("--message goes with --pr or --push")
    from hubcard import refresh, repos

    mode = "push" if push else "pr" if pr else "file"
    refresher = refresh.Refresher(
        mode=mode, template=template, output_dir=output or Path("."), given=refresh.parse_settings(settings), message=message,
        to_write=to_write, revision=selection.revision,
    )  # fmt: skip
    targets = repos.select(selection, refresher.api)
    refresher.take_roster(targets)
    rows = repos.run(refresher, targets, jobs=jobs)
    click.echo(repos.report(refresher, rows, output_format), nl=False)
    if output_format == "table":
        click.echo(refresh.for_a_person(rows), nl=False)
    else:
        click.echo(repos.summary(rows), err=True)
    sys.exit(repos.exit_code(rows))


@cli.command("publish", context_settings=CONTEXT_SETTINGS)
@run_dir_argument
@click.option("--repo-id", help="The repo to publish to, e.g. me/my-adapter (default: hub.repo_id of the run).")
@click.option("--private/--public", default=None, help="The visibility asked: a repo created now gets it, an existing one must have it (default: the namespace's).")
@click.option("--revision", help="The branch to publish to, created from main if missing (default: main).")
@click.option("--pr/--no-pr", "create_pr", default=None, help="Open a pull request instead of committing to the branch.")
@click.option("--base-model", help="The base model's Hub id, for a run whose base model was a local folder without model.hub_id.")
@click.option("--force", is_flag=True, help="Replace the files hubcard uploaded that were edited on the Hub since (kept by default).")
@dry_run_option
def publish_command(run_dir, repo_id, private, revision, create_pr, base_model, force, dry_run) -> None:
    """Upload the adapter, the card and the plots of a run to the Hub, in one commit.

    The options choose where; what they leave out comes from the run's hub section (run.json). The
    token comes from HF_TOKEN or `hf auth login`; it is never written anywhere.

    Publishing again keeps what was edited on the Hub since: README.md is merged (sections and
    metadata a person added or rewrote kept, hubcard's own updated), any other file hubcard
    uploaded and someone changed is kept. --dry-run shows each such file as `edited on the Hub`
    with what is kept; --force replaces them. With --pr, a re-run updates hubcard's own pull request.

    \b
    Example:
      hubcard publish runs/my-run --dry-run
      hubcard publish runs/my-run --repo-id me/my-adapter --private
      hubcard publish runs/my-run --repo-id someone/their-adapter --pr
    """
    from hubcard import publish

    given = {"repo_id": repo_id, "private": private, "revision": revision, "create_pr": create_pr}
    choice = {key: value for key, value in given.items() if value is not None}
    click.echo(publish.publish_run(run_dir, dry_run=dry_run, hub=choice, base_model=base_model, force=force).summary())


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
