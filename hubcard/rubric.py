"""A course's rubric for `hubcard audit`: what every card must hold, read from a YAML file.

    sections:            # sections a person must write: heading, and at least min_words of their own
      - {heading: Uses, min_words: 30}
    facts: [base_model, license, training_data, evaluation, limitations]
    files: [adapter_config.json, "adapter_model.*"]     # glob patterns over the repo's files
    allow_placeholders: false                           # "[More Information Needed]" left in the card

`examples/course-rubric.yaml` documents each key. Without a file, `DEFAULT_RUBRIC` applies: what the
Hub's model card guidebook (https://huggingface.co/docs/hub/model-cards) asks of a card. This module
owns the format and the list of items; hubcard.audit judges a card against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator

from hubcard.config import did_you_mean, pydantic_problems, line_of
from hubcard.errors import ConfigError, ConfigProblem
from hubcard.sections import heading_key

Fact = Literal["base_model", "license", "training_data", "evaluation", "limitations"]
FACTS: dict[str, str] = {
    "base_model": "the base model named by its Hub id (metadata base_model)",
    "license": "a license (metadata license)",
    "training_data": "the training data named (metadata datasets, or a Training Data section with text)",
    "evaluation": "evaluation results (model-index or a results table) with a baseline's score (a base model, baseline or zero-shot)",
    "limitations": "limitations stated (a Bias, Risks, and Limitations section with text)",
}


class SectionRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    heading: str = Field(min_length=1)
    """A section of the Hub's card template by its name (e.g. 'Bias, Risks, and Limitations') or any heading."""
    min_words: StrictInt = Field(default=1, gt=0)


class Rubric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sections: list[SectionRule] = []
    facts: list[Fact] = []
    files: list[str] = []
    allow_placeholders: StrictBool = False

    @model_validator(mode="after")
    def _each_once(self) -> Rubric:
        headings = [heading_key(rule.heading) for rule in self.sections]
        repeated = sorted({rule.heading for rule in self.sections if headings.count(heading_key(rule.heading)) > 1})
        if repeated or len(set(self.facts)) < len(self.facts) or len(set(self.files)) < len(self.files):
            raise ValueError(f"each section, fact and file is listed once{': ' + ', '.join(repeated) if repeated else ''}")
        return self

    def items(self) -> list[RubricItem]:
        """Every item, in the order of the file: sections, facts, files, then placeholders."""
        items = [RubricItem(f"section: {rule.heading}", f"written by a person, at least {rule.min_words} words") for rule in self.sections]
        items += [RubricItem(f"fact: {fact}", FACTS[fact]) for fact in self.facts]
        items += [RubricItem(f"file: {pattern}", "a file of this name (pattern) in the repo") for pattern in self.files]
        if not self.allow_placeholders:
            items.append(RubricItem("no placeholders", "no '[More Information Needed]' left"))
        return items


@dataclass(frozen=True)
class RubricItem:
    key: str
    """Its name in the report: 'section: Uses', 'fact: license', 'file: adapter_config.json', 'no placeholders'."""
    label: str
    """What it asks, in words."""


DEFAULT_RUBRIC = Rubric(
    sections=[SectionRule(heading="Uses", min_words=20), SectionRule(heading="Bias, Risks, and Limitations", min_words=20)],
    facts=["base_model", "license", "training_data", "evaluation"],
    files=["adapter_config.json", "adapter_model.*"],
)


def load_rubric(path: str | Path) -> Rubric:
    """The rubric in a YAML file; ConfigError (exit code 2) listing every problem with its key and line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([ConfigProblem("", f"cannot read the file: {error}")], source, kind="rubric") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([ConfigProblem("", f"not valid YAML{where}: {getattr(error, 'problem', None) or error}")], source, kind="rubric") from None
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError([ConfigProblem("", f"a rubric is a mapping of sections, facts, files, allow_placeholders; got {got}")], source, kind="rubric")
    problems = _duplicate_keys(node)
    try:
        rubric = Rubric.model_validate(raw)
    except ValidationError as error:
        for problem, item in zip(pydantic_problems(error, "", Rubric), error.errors()):
            message = problem.message
            if item["type"] == "extra_forbidden":  # the did-you-mean of the model the key is in
                model = SectionRule if item["loc"][0] == "sections" else Rubric
                message = "unknown key" + did_you_mean(str(item["loc"][-1]), model.model_fields)
            path = problem.path.lstrip(".")
            problems.append(ConfigProblem(f"{path} (line {line_of(node, path) or 1})", message))
    if problems:
        raise ConfigError(problems, source, kind="rubric")
    return rubric


def _duplicate_keys(node: yaml.Node, path: str = "") -> list[ConfigProblem]:
    problems = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = f"{path}.{key.value}" if path else str(key.value)
            if key.value in seen:
                problems.append(ConfigProblem(f"{name} (line {key.start_mark.line + 1})", f"given twice (first on line {seen[key.value]})"))
            seen.setdefault(key.value, key.start_mark.line + 1)
            problems += _duplicate_keys(value, name)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            problems += _duplicate_keys(value, f"{path}[{index}]")
    return problems
