"""hubcard.frontmatter, the one reader and writer of a card's YAML front matter; hubcard.model_ids, Hub ids offline."""

from __future__ import annotations

import pytest
import yaml

from hubcard.frontmatter import BROKEN_NOTE, REMOVE, front_matter_data, read_front_matter, split_front_matter, updated, with_front_matter
from hubcard.metadata import metadata_problems
from hubcard.model_ids import LEGACY_IDS, canonical_id, model_id, same_model

BLOCK = """# my metadata
license: mit   # the course's
tags: [a, b]

datasets:
  - imdb
language: en"""


def test_a_change_rewrites_its_key_alone_and_a_new_key_goes_at_the_end():
    front = read_front_matter(BLOCK)
    assert front.error is None and front.data == {"license": "mit", "tags": ["a", "b"], "datasets": ["imdb"], "language": "en"}

    assert updated(front, {}) == BLOCK
    assert updated(front, {"tags": ["a"], "base_model": "openai-community/gpt2", "language": REMOVE}).splitlines() == [
        "# my metadata", "license: mit   # the course's", "tags:", "- a", "", "datasets:", "  - imdb", "base_model: openai-community/gpt2",
    ]  # fmt: skip


def test_a_block_that_does_not_parse_is_read_key_by_key_and_its_bad_lines_kept_as_comments():
    block = "license: mit\ntags:\n  - a\n  - [b\nbase_model: x\n  bad indentation: here\nlanguage: en\nnot a key\n"
    front = read_front_matter(block)

    assert front.error is not None and front_matter_data(block) == {}  # the Hub reads none of it
    assert front.data == {"license": "mit", "language": "en"}
    assert [(broken.first_line, broken.lines) for broken in front.broken] == [
        (3, ("tags:", "  - a", "  - [b")), (6, ("base_model: x", "  bad indentation: here")), (9, ("not a key",)),
    ]  # fmt: skip (line numbers in the card: the block starts on line 2)
    text = updated(front, {"library_name": "peft"})
    assert yaml.safe_load(text) == {"license": "mit", "language": "en", "library_name": "peft"}
    assert text.splitlines() == [
        "license: mit", BROKEN_NOTE, "# tags:", "#   - a", "#   - [b", BROKEN_NOTE, "# base_model: x", "#   bad indentation: here",
        "language: en", BROKEN_NOTE, "# not a key", "", "library_name: peft",
    ]  # fmt: skip
    assert read_front_matter(text).error is None


@pytest.mark.parametrize("block", ["{license: mit, tags: [a]}", "- a list\n- not a mapping"])
def test_a_layout_read_line_by_line_cannot_follow_is_written_anew(block):
    front = read_front_matter(block)
    text = updated(front, {"library_name": "peft"})
    assert yaml.safe_load(text) == ({"license": "mit", "tags": ["a"]} if front.error is None else {}) | {"library_name": "peft"}


def test_the_card_around_the_block():
    card = "---\r\nlicense: mit\r\n---\r\n# Title\r\n"
    block, body, offset = split_front_matter(card)
    assert (block, body, offset) == ("license: mit", "# Title\r\n", 3)
    assert with_front_matter(card, "license: mit\nlanguage: en") == "---\r\nlicense: mit\r\nlanguage: en\r\n---\r\n# Title\r\n"
    assert with_front_matter("# Title\n", "license: mit") == "---\nlicense: mit\n---\n\n# Title\n"


def test_model_ids_offline():
    assert model_id("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert model_id("bert-base-uncased") == "bert-base-uncased" and model_id("gpt2") == "gpt2"  # legacy ids still resolve
    for local in ("model", "tiny-gpt2", "/content/drive/MyDrive/tiny-gpt2", "./runs/x/adapter", "../base", "model.gguf", None, 3):
        assert model_id(local) is None, local
    assert same_model("bert-base-uncased", "google-bert/bert-base-uncased") and same_model("GPT2", "openai-community/gpt2")
    assert not same_model("bert-base-uncased", "alice/bert-base-uncased")
    assert canonical_id("t5-small") == "google-t5/t5-small" and canonical_id("alice/x") == "alice/x"
    assert all(new.endswith("/" + old) for old, new in LEGACY_IDS.items())
    twice = metadata_problems({"base_model": ["bert-base-uncased", "google-bert/bert-base-uncased"]})  # the one validator agrees
    assert [(problem.key, problem.message.split(";")[0]) for problem in twice] == [("base_model", "lists the same model more than once")]
    assert [problem.key for problem in metadata_problems({"base_model": "tiny-gpt2"})] == ["base_model"]
