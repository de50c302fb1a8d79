"""Hub ids, offline: what can be a repo id, which Hub model a name stands for (`owner/name` ids, the
legacy ids of the Hub's renamed canonical models), and local names that are no Hub id at all.

The Hub's first models had ids without an owner (`gpt2`, `bert-base-uncased`). In 2024 the Hub moved
them into the organisations that made them (`openai-community/gpt2`, `google-bert/bert-base-uncased`);
the old ids still resolve, redirected to the new ones. `LEGACY_IDS` lists those renamed models (the
ids transformers' own documentation now uses). So `bert-base-uncased` in a card and
`google-bert/bert-base-uncased` in adapter_config.json are one base model, and a name without an owner
that is not in the table (`tiny-gpt2`, `model`: the folder a base model was loaded from, as peft
writes it into `base_model_name_or_path`) names no Hub model.
"""

from __future__ import annotations

import re
from typing import Any

HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")

_RENAMED: dict[str, tuple[str, ...]] = {
    "albert": (
        "albert-base-v1", "albert-base-v2", "albert-large-v1", "albert-large-v2", "albert-xlarge-v1", "albert-xlarge-v2",
        "albert-xxlarge-v1", "albert-xxlarge-v2",
    ),
    "almanach": ("camembert-base",),
    "distilbert": (
        "distilbert-base-cased", "distilbert-base-cased-distilled-squad", "distilbert-base-german-cased",
        "distilbert-base-multilingual-cased", "distilbert-base-uncased", "distilbert-base-uncased-distilled-squad",
        "distilbert-base-uncased-finetuned-sst-2-english", "distilgpt2", "distilroberta-base",
    ),
    "FacebookAI": (
        "roberta-base", "roberta-large", "roberta-large-mnli", "xlm-roberta-base", "xlm-roberta-large",
        "xlm-roberta-large-finetuned-conll03-english",
    ),
    "google-bert": (
        "bert-base-cased", "bert-base-chinese", "bert-base-german-cased", "bert-base-multilingual-cased",
        "bert-base-multilingual-uncased", "bert-base-uncased", "bert-large-cased", "bert-large-cased-whole-word-masking",
        "bert-large-uncased", "bert-large-uncased-whole-word-masking",
        "bert-large-uncased-whole-word-masking-finetuned-squad",
    ),
    "google-t5": ("t5-small", "t5-base", "t5-large", "t5-3b", "t5-11b"),
    "openai-community": ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "openai-gpt"),
    "Salesforce": ("ctrl",),
    "xlnet": ("xlnet-base-cased", "xlnet-large-cased"),
}  # fmt: skip
LEGACY_IDS: dict[str, str] = {name: f"{owner}/{name}" for owner, names in _RENAMED.items() for name in names}
"""Legacy id (no owner) -> the id the Hub moved the model to."""


def is_hub_id(value: str) -> bool:
    """Whether `value` can be a Hub repo id (`name` or `namespace/name`), not a local path."""
    return bool(HUB_ID.match(value)) and ".." not in value and not value.endswith((".gguf", ".md"))


def model_id(value: Any) -> str | None:
    """`value` if it names a Hub model: an `owner/name` id (not a local path) or a legacy id of
    LEGACY_IDS, as written; None for anything else (a path, a folder name, not a string)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if value.lower() in _LEGACY_LOWER:
        return value
    return value if "/" in value and is_hub_id(value) else None


def canonical_id(model: str) -> str:
    """The id the Hub serves `model` under now: a legacy id's new id, else `model`."""
    return _LEGACY_LOWER.get(model.lower(), model)


def same_model(first: str, second: str) -> bool:
    """Whether two ids name one model (a legacy id and its new id do; the Hub ignores case)."""
    return canonical_id(first).lower() == canonical_id(second).lower()


_LEGACY_LOWER = {name.lower(): new for name, new in LEGACY_IDS.items()}
