"""Token counting when a response carries no ``usage``: the source is recorded with every count."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

_WORD = re.compile(r"\S+")


class TokenCounter(Protocol):
    source: str

    def count(self, text: str) -> int: ...


class WordCounter:
    """One token per whitespace-separated word: exact for the simulator, an estimate elsewhere."""

    source = "tokenizer:words"

    def count(self, text: str) -> int:
        return len(_WORD.findall(text))


class CharCounter:
    """About four characters per token: the usual rule of thumb for English BPE vocabularies."""

    source = "tokenizer:chars4"

    def count(self, text: str) -> int:
        return (len(text) + 3) // 4


class HFTokenizer:
    """A ``tokenizer.json`` through the ``tokenizers`` package (optional: ``pip install tokenizers``)."""

    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer  # type: ignore[import-not-found,unused-ignore]

        self._tok = Tokenizer.from_file(path)
        self.source = f"tokenizer:{Path(path).name}"

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)


def counter_for(name: str) -> TokenCounter:
    if name == "words":
        return WordCounter()
    if name == "chars4":
        return CharCounter()
    return HFTokenizer(name)
