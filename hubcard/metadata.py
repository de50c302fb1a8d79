"""The one validator of a model card's metadata (its YAML front matter): what the Hub would refuse.

    metadata_problems({"license": "Apache 2.0", "language": ["en", "jp"]})
    -> [MetadataProblem("license", "'Apache 2.0' is not a license id of the Hub (did you mean 'apache-2.0'?); ..."),
        MetadataProblem("language[1]", "'jp' is not an ISO 639-1, 639-2 or 639-3 language code (did you mean 'ja'?); ...")]

Config validation (the `card:` section, `model.hub_id`, `data.hub_id`), `render-card` and its
`--check`, `lint-card`, `render-card --repo`, audit and publish all call `metadata_problems`. The
keys and types follow the Hub's model-card metadata specification (hub-docs' modelcard.md and the
Hub API's model metadata types in @huggingface/hub); the value lists come from:

- language codes: ISO 639-1, 639-2 and 639-3, through the `langcodes` library (with `language_data`
  for language names: "English" -> en), plus the Hub's special value `code`;
- license ids, pipeline tags, library names: the Hub's own lists, which huggingface_hub does not
  ship, copied into hub_metadata.json next to this module with the file, commit and day each was
  taken from.

Keys the specification does not type (widget, thumbnail, ...) are left alone.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hubcard.model_ids import is_hub_id, model_id, same_model

DATA_FILE_SUFFIXES = (".csv", ".tsv", ".tab", ".json", ".jsonl", ".parquet", ".txt", ".arrow", ".zip", ".gz", ".xlsx")
LICENSES_PAGE = "https://huggingface.co/docs/hub/repositories-licenses"
LANGUAGE_SPECIAL_VALUES = ("code",)
"""Accepted by the Hub besides ISO 639 codes (huggingface/huggingface_hub issue 3862)."""
LANGUAGE_EXAMPLES = "codes such as en, fr, ja, or ISO 639-3 codes such as gsw"
# The model-index schema: for each mapping, its keys with (required, expected type).
STRING, NUMBER_OR_STRING, MAPPING_OR_STRING = "a string", "a number or a string", "a mapping or a string"
MODEL_INDEX_RESULT = {
    "task": {"type": (True, STRING), "name": (False, STRING)},
    "dataset": {
        "type": (True, STRING),
        "name": (True, STRING),
        "config": (False, STRING),
        "split": (False, STRING),
        "revision": (False, STRING),
        "args": (False, MAPPING_OR_STRING),
    },
    "source": {"name": (False, STRING), "url": (True, STRING)},
}
MODEL_INDEX_METRIC = {
    "type": (True, STRING),
    "value": (True, NUMBER_OR_STRING),
    "name": (False, STRING),
    "config": (False, STRING),
    "args": (False, MAPPING_OR_STRING),
    "verifyToken": (False, STRING),
}


@dataclass(frozen=True)
class MetadataProblem:
    """One problem of the metadata: `key` is its dotted path in the front matter (`license`,
    `language[1]`, `model-index[0].results[0].dataset.config`); `message` says what is wrong and the
    accepted form, with a did-you-mean where one is close."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass(frozen=True)
class HubList:
    """One of the Hub's lists of accepted values, and where it was copied from."""

    values: tuple[str, ...]
    source: str
    taken: str


def metadata_problems(metadata: Mapping[str, Any]) -> list[MetadataProblem]:
    """Every problem of `metadata` (the parsed front matter) that the Hub would refuse, in key order;
    an empty list when it is valid. Keys that are absent are not problems."""
    checks = {
        "license": _check_license,
        "license_name": _check_string,
        "license_link": _check_string,
        "language": _check_language,
        "datasets": _check_datasets,
        "base_model": _check_base_model,
        "pipeline_tag": _check_pipeline_tag,
        "library_name": _check_library_name,
        "tags": _check_tags,
        "metrics": _check_metrics,
        "model-index": _check_model_index,
    }
    problems = []
    for key, check in checks.items():
        if key in metadata and metadata[key] is not None:
            problems += check(key, metadata[key])
    problems += _other_license_details(metadata)
    return problems


@functools.cache
def hub_lists() -> dict[str, HubList]:
    """The Hub's lists kept in hub_metadata.json: `licenses`, `pipeline_tags`, `library_names`."""
    data = json.loads(resources.files("hubcard").joinpath("hub_metadata.json").read_text(encoding="utf-8"))
    return {
        name: HubList(tuple(entry["values"]), entry["source"], entry["taken"])
        for name, entry in data.items()
        if isinstance(entry, dict)
    }


# --- one key at a time ------------------------------------------------------------------------


def _check_license(key: str, value: Any) -> list[MetadataProblem]:
    licenses = hub_lists()["licenses"].values
    problems = []
    for where, item in _one_or_list(key, value):
        if not isinstance(item, str):
            problems.append(MetadataProblem(where, f"must be a license id (a string), got {_shown(item)}"))
        elif item not in licenses:
            hint = _did_you_mean(_license_guess(item), licenses)
            problems.append(
                MetadataProblem(
                    where,
                    f"{item!r} is not a license id of the Hub{hint}; use an id from {LICENSES_PAGE} (such as "
                    "apache-2.0, mit, cc-by-4.0), or `other` with license_name and license_link",
                )
            )
    return problems


def _license_guess(value: str) -> str:
    """'Apache License 2.0' -> 'apache-2.0', 'GPL-3.0-only' -> 'gpl-3.0': the Hub's spelling of SPDX-like names."""
    words = [word for word in re.split(r"[\s_-]+", value.strip().lower()) if word not in ("license", "licence", "only")]
    return "-".join(words)


def _other_license_details(metadata: Mapping[str, Any]) -> list[MetadataProblem]:
    licenses = metadata.get("license")
    if "other" not in (licenses if isinstance(licenses, list) else [licenses]):
        return []
    wanted = {
        "license_name": "a short id for the license, such as my-license-1.0",
        "license_link": "LICENSE (a file in the repo) or the URL of the license's text",
    }
    return [
        MetadataProblem(name, f"required when license is `other`: {what}")
        for name, what in wanted.items()
        if not isinstance(metadata.get(name), str) or not metadata[name].strip()
    ]


def _check_language(key: str, value: Any) -> list[MetadataProblem]:
    problems = []
    for where, item in _one_or_list(key, value):
        if not isinstance(item, str):
            problems.append(MetadataProblem(where, f"must be a language code (a string), got {_shown(item)}"))
        elif not is_language_code(item):
            suggestion = _language_guess(item)
            hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
            problems.append(
                MetadataProblem(where, f"{item!r} is not an ISO 639-1, 639-2 or 639-3 language code{hint}; use {LANGUAGE_EXAMPLES}")
            )
    return problems


def is_language_code(value: str) -> bool:
    """An ISO 639-1 (two letters, current), 639-2 or 639-3 (three letters) code of a known language, in
    lower case as the Hub wants it, or one of the Hub's special values."""
    import langcodes

    if value in LANGUAGE_SPECIAL_VALUES:
        return True
    if not re.fullmatch(r"[a-z]{2,3}", value) or not langcodes.tag_is_valid(value):
        return False
    if len(value) == 2 and langcodes.standardize_tag(value) != value:  # withdrawn codes: iw (now he), in (id)
        return False
    return not langcodes.Language.get(value).language_name().startswith("Unknown language")


def _language_guess(value: str) -> str | None:
    """The code meant by a wrongly cased code, a tag with a region (en-US), a language's name
    (English, Deutsch) or a country's code (jp -> ja); None when nothing fits."""
    import langcodes

    text = value.strip()
    candidates = [text.lower(), re.split(r"[-_]", text.lower())[0]]
    for candidate in candidates:
        if langcodes.tag_is_valid(candidate):
            standard = langcodes.standardize_tag(candidate).split("-")[0]
            if is_language_code(standard):
                return standard
    try:
        found = langcodes.find(text).language
    except LookupError:
        found = None
    if found and is_language_code(found):
        return found
    if re.fullmatch(r"[A-Za-z]{2}", text):  # a country's code: the language spoken there
        spoken = langcodes.Language.get(f"und-{text.upper()}").maximize().language
        if spoken and spoken != "und" and is_language_code(spoken):
            return spoken
    return None


def _check_datasets(key: str, value: Any) -> list[MetadataProblem]:
    return [problem for where, item in _one_or_list(key, value) for problem in dataset_id_problems(where, item)]


def dataset_id_problems(key: str, value: Any) -> list[MetadataProblem]:
    """Problems of one Hub data-set id (`name` or `namespace/name`), never a sentence or a local path."""
    accepted = "a Hub data-set id, `name` or `namespace/name` as in huggingface.co/datasets/NAMESPACE/NAME"
    if not isinstance(value, str):
        return [MetadataProblem(key, f"must be {accepted}, got {_shown(value)}")]
    if value.lower().endswith(DATA_FILE_SUFFIXES) or not is_hub_id(value):
        what = " but a sentence" if re.search(r"\s", value.strip()) else " but a file name or path" if re.search(r"[/\\.~]", value) else ""
        return [
            MetadataProblem(
                key,
                f"{_shown(value)} is not a Hub data-set id{what}; use {accepted} (for local files: the Hub data set "
                "they are a copy of, or nothing)",
            )
        ]
    return []


def _check_base_model(key: str, value: Any) -> list[MetadataProblem]:
    items = list(_one_or_list(key, value))
    problems = []
    for where, item in items:
        if model_id(item) is None:
            problems.append(
                MetadataProblem(
                    where,
                    f"{_shown(item)} is not a Hub model id; use the id of the model the adapter was trained from, "
                    "`namespace/name` (never a local path or folder name; `name` alone only for the Hub's legacy ids such as gpt2)",
                )
            )
    names = [item for _, item in items if isinstance(item, str)]
    if isinstance(value, list) and any(same_model(name, other) for index, name in enumerate(names) for other in names[:index]):
        problems.append(MetadataProblem(key, "lists the same model more than once; a list is for distinct models (a merge)"))
    return problems


def _check_pipeline_tag(key: str, value: Any) -> list[MetadataProblem]:
    return _in_hub_list(key, value, "pipeline_tags", "one of the Hub's pipeline tags (such as text-classification)")


def _check_library_name(key: str, value: Any) -> list[MetadataProblem]:
    return _in_hub_list(key, value, "library_names", "one of the Hub's library names (such as peft or transformers)")


def _in_hub_list(key: str, value: Any, list_name: str, accepted: str) -> list[MetadataProblem]:
    known = hub_lists()[list_name].values
    if not isinstance(value, str):
        return [MetadataProblem(key, f"must be {accepted}, got {_shown(value)}")]
    if value in known:
        return []
    spellings = [value.lower(), value.lower().replace("_", "-"), value.lower().replace("-", "_"), value.lower().replace(" ", "-")]
    exact = next((name for name in known for spelling in spellings if name.lower() == spelling), None)
    hint = f" (did you mean {exact!r}?)" if exact else _did_you_mean(value.lower(), known)
    return [MetadataProblem(key, f"{value!r} is not {accepted}{hint}")]


def _check_tags(key: str, value: Any) -> list[MetadataProblem]:
    if not isinstance(value, list):
        return [MetadataProblem(key, f"must be a list of strings, got {_shown(value)}")]
    return [
        MetadataProblem(f"{key}[{index}]", f"must be a string, got {_shown(tag)} (quote it in YAML: '{tag}')")
        for index, tag in enumerate(value)
        if not isinstance(tag, str)
    ]


def _check_metrics(key: str, value: Any) -> list[MetadataProblem]:
    return [
        MetadataProblem(where, f"must be a metric id (a string) such as accuracy, got {_shown(item)}")
        for where, item in _one_or_list(key, value)
        if not isinstance(item, str)
    ]


def _check_string(key: str, value: Any) -> list[MetadataProblem]:
    return [] if isinstance(value, str) else [MetadataProblem(key, f"must be a string, got {_shown(value)}")]


# --- model-index --------------------------------------------------------------------------------


def _check_model_index(key: str, value: Any) -> list[MetadataProblem]:
    if not isinstance(value, list) or not value:
        return [MetadataProblem(key, f"must be a list of models, each with a name and results, got {_shown(value)}")]
    problems = []
    for index, model in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(model, dict):
            problems.append(MetadataProblem(where, f"must be a mapping with name and results, got {_shown(model)}"))
            continue
        problems += _fields(where, model, {"name": (True, STRING), "results": (True, "a list of results")})
        results = model.get("results")
        if results is not None and not isinstance(results, list):
            problems.append(MetadataProblem(f"{where}.results", f"must be a list of results, got {_shown(results)}"))
        for number, result in enumerate(results if isinstance(results, list) else []):
            problems += _check_result(f"{where}.results[{number}]", result)
    return problems


def _check_result(where: str, result: Any) -> list[MetadataProblem]:
    if not isinstance(result, dict):
        return [MetadataProblem(where, f"must be a mapping with task, dataset and metrics, got {_shown(result)}")]
    problems = _fields(where, result, {"task": (True, "a mapping"), "dataset": (True, "a mapping"), "metrics": (True, "a list of metrics")})
    for name, schema in MODEL_INDEX_RESULT.items():
        part = result.get(name)
        if part is None:
            continue
        if not isinstance(part, dict):
            problems.append(MetadataProblem(f"{where}.{name}", f"must be a mapping, got {_shown(part)}"))
            continue
        problems += _fields(f"{where}.{name}", part, schema)
    dataset = result.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("type"), str):
        problems += dataset_id_problems(f"{where}.dataset.type", dataset["type"])
    task = result.get("task")
    if isinstance(task, dict) and isinstance(task.get("type"), str):
        problems += _check_pipeline_tag(f"{where}.task.type", task["type"])
    metrics = result.get("metrics")
    if metrics is not None and (not isinstance(metrics, list) or not metrics):
        problems.append(MetadataProblem(f"{where}.metrics", f"must be a list of metrics, each with type and value, got {_shown(metrics)}"))
    for number, metric in enumerate(metrics if isinstance(metrics, list) else []):
        if not isinstance(metric, dict):
            problems.append(MetadataProblem(f"{where}.metrics[{number}]", f"must be a mapping with type and value, got {_shown(metric)}"))
        else:
            problems += _fields(f"{where}.metrics[{number}]", metric, MODEL_INDEX_METRIC)
    return problems


def _fields(where: str, mapping: dict[str, Any], schema: dict[str, tuple[bool, str]]) -> list[MetadataProblem]:
    """Required keys present, and the scalar ones of the expected type (containers are checked by the caller)."""
    problems = []
    for name, (required, expected) in schema.items():
        if mapping.get(name) is None:
            if required:
                problems.append(MetadataProblem(f"{where}.{name}", f"required: {expected}"))
            continue
        if not _has_type(mapping[name], expected):
            problems.append(MetadataProblem(f"{where}.{name}", f"must be {expected}, got {_shown(mapping[name])}"))
    return problems


def _has_type(value: Any, expected: str) -> bool:
    if expected == STRING:
        return isinstance(value, str)
    if expected == NUMBER_OR_STRING:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return isinstance(value, str) or (number and math.isfinite(value))
    if expected == MAPPING_OR_STRING:
        return isinstance(value, (dict, str))
    return True  # mappings and lists: their contents are checked where they are read


# --- helpers ------------------------------------------------------------------------------------


def _one_or_list(key: str, value: Any) -> list[tuple[str, Any]]:
    """(`key` or `key[i]`, item) for a single value or each item of a list."""
    if isinstance(value, list):
        return [(f"{key}[{index}]", item) for index, item in enumerate(value)]
    return [(key, value)]


def _did_you_mean(word: str, known: tuple[str, ...]) -> str:
    if word in known:
        return f" (did you mean {word!r}?)"
    matches = difflib.get_close_matches(word, known, n=1, cutoff=0.75)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
