"""hubcard.merge: a person's edits to a card on the Hub kept when hubcard uploads its card again."""

from __future__ import annotations

from pathlib import Path

import yaml
from huggingface_hub import ModelCard, ModelCardData

from hubcard.card import render_card
from hubcard.frontmatter import split_front_matter
from hubcard.merge import CardRecord, merge_card, record_card
from hubcard.rundir import RunDir

FIXTURE = Path(__file__).parent / "fixtures" / "seqcls-minilm-lora"
NOTES = "## My notes\n\nI tried r=4 first: 2 points worse.\n\n"
BIAS = "## Bias, Risks, and Limitations\n\nIt was trained on movie reviews from around 2000 only; sarcasm fools it.\n\n"


def cards() -> tuple[str, str]:
    """hubcard's card as uploaded first (v1), and as rendered after the run was evaluated again (v2)."""
    record = RunDir(FIXTURE).read()
    first = render_card(record)
    again = render_card(record.model_copy(update={"config": {**record.config, "card": {**record.config["card"], "license": "mit"}}}))
    assert first != again
    return first, again


def edited_on_the_hub(card: str) -> str:
    """The owner's edits: a section added after Uses's subsections, hubcard's Bias section rewritten,
    Model Card Contact removed, a metadata key added, the tags edited."""
    block, body, _ = split_front_matter(card)
    metadata = yaml.safe_load(block)
    block = block.replace("- course-project\n", "- course-project\n- sentiment\n") + "\nthumbnail: plots/loss.png"
    start = body.index("## Bias, Risks, and Limitations")
    body = body[:start] + NOTES + BIAS + body[body.index("### Recommendations") :]
    body = body[: body.index("## Model Card Contact")]
    assert "sentiment" not in metadata["tags"]
    return f"---\n{block}\n---\n{body}"


def test_a_person_s_sections_and_keys_are_kept_and_hubcard_s_own_updated():
    first, again = cards()
    theirs = edited_on_the_hub(first)

    merged = merge_card(again, theirs, record_card(first))

    block, body, _ = split_front_matter(merged.text)
    metadata = yaml.safe_load(block)
    assert metadata["license"] == "mit"  # hubcard's key, untouched on the Hub: updated
    assert "sentiment" in metadata["tags"] and metadata["thumbnail"] == "plots/loss.png"  # the person's
    assert NOTES + BIAS + "### Recommendations" in body  # where the person put them, word for word
    assert "## Model Card Contact" not in body  # removed on the Hub: not put back
    assert "- **License:** `mit`" in body  # hubcard's section, updated
    assert merged.kept == [
        "front matter tags: edited on the Hub, kept",
        "front matter thumbnail: added on the Hub, kept",
        "'my notes': written on the Hub, kept",
        "'bias, risks, and limitations': edited on the Hub, kept (hubcard's new text for it is not used)",
        "'model card contact': removed on the Hub, not put back",
    ]
    assert merge_card(again, merged.text, record_card(again)).text == merged.text  # the next publish keeps them again


def test_an_untouched_card_or_one_changed_in_formatting_only_is_replaced_by_hubcard_s_new_one():
    first, again = cards()
    block, body, _ = split_front_matter(first)
    reformatted = f"---\n{block}\n---\n" + body.replace("\n", "  \r\n").replace("\r\n  \r\n", "\r\n\r\n\r\n")
    for theirs in (first, reformatted):
        merged = merge_card(again, theirs, record_card(first))
        assert merged.text == again and merged.kept == []


def test_a_card_hubcard_never_recorded_keeps_what_a_person_wrote_only():
    """The Hub's default card, with the owner's Uses and a section of their own, before a first publish."""
    ours, _ = cards()
    theirs = str(ModelCard.from_template(ModelCardData(license="mit"))).replace(
        "## Uses\n", "## Uses\n\nFor the course's third homework only.\n\n## What I learned\n\nLoRA is quick.\n\n", 1
    )

    merged = merge_card(ours, theirs, None)

    assert "## Uses\n\nFor the course's third homework only.\n\n## What I learned\n\nLoRA is quick." in merged.text
    assert "[More Information Needed]" not in merged.text and "### Direct Use" in merged.text  # hubcard's, not the template's
    assert yaml.safe_load(split_front_matter(merged.text)[0])["license"] == "mit"  # the Hub's value, not hubcard's apache-2.0
    assert merged.kept == [
        "front matter license: edited on the Hub, kept",
        "'uses': written on the Hub, kept (in place of hubcard's)",
        "'what i learned': written on the Hub, kept",
    ]
    assert CardRecord.from_json(record_card(ours).to_json()) == record_card(ours) and CardRecord.from_json(["x"]) is None


def test_a_card_hubcard_generated_without_a_record_keeps_the_sections_hubcard_does_not_write():
    """A manifest from before records: in hubcard's own card every line counts as generated."""
    first, again = cards()
    theirs = first.replace("## Bias, Risks, and Limitations", NOTES + "## Bias, Risks, and Limitations", 1)

    merged = merge_card(again, theirs, None)

    assert merged.text == again.replace("## Bias, Risks, and Limitations", NOTES + "## Bias, Risks, and Limitations", 1)
    assert merged.kept == ["'my notes': written on the Hub, kept"]
