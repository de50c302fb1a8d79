"""Keeping the Hugging Face token out of everything hubcard writes, prints or uploads."""

from __future__ import annotations

import os
import re
from pathlib import Path

HF_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{30,}")
MASK = "hf_***"


def current_token() -> str | None:
    """The token huggingface_hub would use (HF_TOKEN, else the saved login), or None."""
    from huggingface_hub import get_token

    return get_token()


def mask_tokens(text: str) -> str:
    """`text` with every string that looks like a Hugging Face token masked: data shown in a card or
    uploaded (an example's text, a model's answer) may hold one, and it is data, not the user's secret."""
    return HF_TOKEN_PATTERN.sub(MASK, text)


def scrub(text: str) -> str:
    """`text` with the user's token and anything that looks like a Hugging Face token masked."""
    token = os.environ.get("HF_TOKEN")
    if token:
        text = text.replace(token, MASK)
    return mask_tokens(text)


def files_with_tokens(folder: Path, token: str | None = None) -> list[Path]:
    """Files under `folder` that hold `token` or a string that looks like a Hugging Face token."""
    needles = [re.compile(re.escape(token.encode()))] if token else []
    needles.append(re.compile(HF_TOKEN_PATTERN.pattern.encode()))
    return [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and any(needle.search(path.read_bytes()) for needle in needles)
    ]
