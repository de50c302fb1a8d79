"""`hubcard init`: the example configs that ship with hubcard, copied out as starting points."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from hubcard.errors import HubcardError

SUMMARY_PREFIX = "# summary:"


def _example_files() -> dict[str, resources.abc.Traversable]:
    """The example configs: the YAML files whose first line is a summary (course-rubric.yaml is not a config)."""
    folder = resources.files("hubcard.example_configs")
    return {
        item.name.removesuffix(".yaml"): item
        for item in folder.iterdir()
        if item.name.endswith(".yaml") and item.read_text(encoding="utf-8").startswith(SUMMARY_PREFIX)
    }


def available() -> dict[str, str]:
    """Example name -> its one-line summary."""
    summaries = {}
    for name, file in sorted(_example_files().items()):
        first_line = file.read_text(encoding="utf-8").splitlines()[0]
        summaries[name] = first_line.removeprefix(SUMMARY_PREFIX).strip()
    return summaries


def write_example(name: str, path: Path, *, force: bool = False) -> None:
    examples = _example_files()
    if name not in examples:
        raise HubcardError(f"no example named {name!r}; choose one of: {', '.join(sorted(examples))}")
    if path.exists() and not force:
        raise HubcardError(f"{path} already exists; pass --force to overwrite it")
    path.write_text(examples[name].read_text(encoding="utf-8"), encoding="utf-8")
