"""hubcard.sections: who wrote each section of a card."""

from __future__ import annotations

from huggingface_hub import ModelCard, ModelCardData

from hubcard.sections import TO_WRITE_MARKER, read_sections


def test_the_hubs_template_filled_with_card_data_is_nobodys_text():
    """ModelCard.from_template with metadata fills '**License:** mit': the template's doing, not a person's."""
    card = str(ModelCard.from_template(ModelCardData(base_model="gpt2", license="mit", language="en")))
    states = read_sections(card).template_states()
    assert set(states.values()) == {"template", "generated"}
    assert states["Model Description"] == "generated" and states["Uses"] == "template"


def test_a_to_do_paragraph_comments_and_aliases():
    card = f"""# My adapter

## Uses

{TO_WRITE_MARKER}
Say who should use the adapter, and for what.
Two lines of hubcard's instructions.

## Limitations

<!-- write here
     what goes wrong -->
It fails on sarcasm.

## Bias, Risks, and Limitations

[More Information Needed]

### Framework versions

- PEFT 0.17.0
"""
    sections = read_sections(card)
    assert sections.find("Uses").state == "to write" and sections.find("Uses").words == 0
    limitations = sections.find("Bias, Risks, and Limitations")  # the template's heading and "Limitations" together
    assert (limitations.state, limitations.words) == ("written", 4)
    assert sections.find("Software").state == "generated"
    assert sections.find("What I learned").state == "missing"

    written = card.replace("Two lines of hubcard's instructions.\n", "Two lines of hubcard's instructions.\n\nFor classifying reviews.\n")
    assert read_sections(written).find("Uses").state == "written"


def test_in_a_tool_s_card_only_the_texts_a_person_gave_it_are_written():
    card = "---\ntags: [hubcard]\n---\n\n# Adapter\n\nA LoRA adapter.\n\n## Uses\n\nFor homework 3.\n\n## Bias, Risks, and Limitations\n\n- Inherits biases.\n"
    sections = read_sections(card, person_texts=["For homework 3."])
    assert sections.generator == "hubcard"
    assert [sections.find(name).state for name in ("Model summary", "Uses", "Bias, Risks, and Limitations")] == ["generated", "written", "generated"]
