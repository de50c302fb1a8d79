"""The errors hubcard reports to its users.

Every error a user can cause derives from :class:`HubcardError`: the CLI prints its message (never a
traceback) and exits with its ``exit_code``. Messages say what is wrong, where (the YAML key, the
column, the file) and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass


class HubcardError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file: where it is (a dotted YAML path) and what was expected."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(HubcardError):
    """The config (or another file of settings, such as a rubric: `kind`) is invalid; carries every
    problem found, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[ConfigProblem], source: str | None = None, *, kind: str = "config"):
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = [f"Invalid {kind}{where} ({count}):"] + [f"  - {problem}" for problem in problems]
        super().__init__("\n".join(lines))


class DataError(HubcardError):
    """The data set does not match the config (missing column, unknown label, empty split...)."""


class ModelLoadError(HubcardError):
    """The base model or its tokenizer cannot be loaded."""


class RunDirError(HubcardError):
    """The run directory is missing, incomplete, or holds a different run."""


class CardError(HubcardError):
    """The model card cannot be rendered (template error, missing fact)."""


class PublishError(HubcardError):
    """Publishing to the Hub failed; the run directory is intact and publishing can be retried."""
