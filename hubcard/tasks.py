"""How each task type turns an example into model inputs, shared by training and evaluation.

sequence-classification: the text, tokenized and cut at max_length; the label is the class id.

causal-lm: the text goes into the prompt template, which becomes the user message of the model's
chat template when it has one; the model answers with the label's word followed by its end-of-
sequence token. Prompt and answer are tokenized separately and concatenated, in training and in
scoring alike, so that the answer tokens the adapter learns are exactly the ones scored. The
card's usage snippet (card.py) builds the same prompt in plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHARS_PER_TOKEN = 16
"""Characters per token assumed when a long text is cut before tokenizing (see `bounded_text`)."""
MAX_CHARS_PER_TOKEN = 4096
"""Beyond this many characters per token (one enormous word), a text is cut without checking."""
SPARE_TOKENS = 16
WHITESPACE = (" ", "\n", "\t", "\r")
IGNORED_LABEL = -100
"""Label of the prompt tokens: the loss is computed on the answer only."""
NO_LABEL = -1
"""The prediction for a generated answer that names no label word."""


@dataclass(frozen=True)
class Prompter:
    """Builds the prompt of a causal-lm task, for one tokenizer."""

    tokenizer: PreTrainedTokenizerBase
    template: str
    label_words: list[str]
    system_prompt: str | None = None

    @property
    def uses_chat_template(self) -> bool:
        return getattr(self.tokenizer, "chat_template", None) is not None

    def prompt(self, text: str) -> str:
        """The text the model answers: the user message in the chat template, or the message and a newline."""
        message = self.template.replace("{labels}", ", ".join(self.label_words)).replace("{text}", text)
        if self.uses_chat_template:
            messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
            messages.append({"role": "user", "content": message})
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return (f"{self.system_prompt}\n\n" if self.system_prompt else "") + message + "\n"

    def prompt_ids(self, text: str, max_length: int) -> list[int]:
        """The prompt's token ids; a long prompt loses its beginning, never the question at its end."""
        text = bounded_text(self.tokenizer, text, max_length, keep_end=True)
        ids = self.tokenizer(self.prompt(text), add_special_tokens=False)["input_ids"]
        return ids[-max_length:]

    def word_ids(self, label: int) -> list[int]:
        """The tokens of the label's word."""
        return self.tokenizer(self.label_words[label], add_special_tokens=False)["input_ids"]

    def answer_ids(self, label: int) -> list[int]:
        """The label's word, then the end-of-sequence token that ends the answer (and generation)."""
        eos = self.tokenizer.eos_token_id
        return self.word_ids(label) + ([eos] if eos is not None else [])


def encode_for_classification(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int) -> dict[str, Any]:
    """Token ids of one example for a sequence classifier (no padding: batches are padded as they form)."""
    text = bounded_text(tokenizer, text, max_length, keep_end=tokenizer.truncation_side == "left")
    return dict(tokenizer(text, truncation=True, max_length=max_length))  # a dict: batches sort by its length


def bounded_text(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int, *, keep_end: bool = False) -> str:
    """The beginning (`keep_end`: the end) of `text` that holds its first (last) `max_length` tokens and
    SPARE_TOKENS more, cut between words: tokenizing it gives those tokens exactly, without tokenizing
    the rest. A tokenizer spends memory on every character it is given (a 50 MB text takes gigabytes),
    however few tokens are kept. The part tried first has CHARS_PER_TOKEN characters per token, then
    four times as many, until it holds enough tokens or is the whole text; beyond MAX_CHARS_PER_TOKEN
    (a text of a few enormous words) it is cut where it is."""
    size, cap = max_length * CHARS_PER_TOKEN, max_length * MAX_CHARS_PER_TOKEN
    while size < min(len(text), cap):
        part = _cut_between_words(text, size, keep_end)
        if part is not None and len(tokenizer(part, add_special_tokens=False)["input_ids"]) > max_length + SPARE_TOKENS:
            return part
        size *= 4
    if len(text) <= cap:
        return text
    return text[-cap:] if keep_end else text[:cap]


def _cut_between_words(text: str, size: int, keep_end: bool) -> str | None:
    """The first (last) `size` characters of `text` or fewer, ending (starting) at a space, tab or line
    break, so that no word is split; None when they hold no such character."""
    if keep_end:
        part = text[-size:]
        starts = [index for index in (part.find(space) for space in WHITESPACE) if index >= 0]
        return part[min(starts) :] if starts else None
    part = text[:size]
    end = max(part.rfind(space) for space in WHITESPACE)
    return part[:end] if end >= 0 else None


def encode_for_causal_lm(prompter: Prompter, text: str, label: int, max_length: int) -> dict[str, Any]:
    """Prompt and answer tokens of one training example, with the loss on the answer only."""
    answer = prompter.answer_ids(label)
    prompt = prompter.prompt_ids(text, max(1, max_length - len(answer)))
    return {
        "input_ids": prompt + answer,
        "attention_mask": [1] * (len(prompt) + len(answer)),
        "labels": [IGNORED_LABEL] * len(prompt) + answer,
    }


def match_label(answer: str, label_words: list[str]) -> int:
    """The label whose word the answer mentions first (case-insensitive), else NO_LABEL.

    At the same position the longer word wins ('positive' over 'pos')."""
    lowered = answer.lower()
    found = [(lowered.find(word.lower()), -len(word), index) for index, word in enumerate(label_words) if word.lower() in lowered]
    return min(found)[2] if found else NO_LABEL
