"""Deterministic text for the simulator: a word is a token, and the words derive from the prompt."""

from __future__ import annotations

import hashlib
import random
import re

_WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "engines", "stream",
    "tokens", "to", "gateways", "and", "queues", "hold", "jobs", "until", "workers", "take", "them",
    "latency", "matters", "when", "users", "wait", "for", "the", "first", "word", "of", "every", "answer",
    "lockgate", "measures", "time", "to", "first", "token", "and", "each", "gap", "between", "tokens", "so",
    "teams", "compare", "engines", "fairly",
)
_TOKEN = re.compile(r"\S+")


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: one token per whitespace-separated word."""
    return len(_TOKEN.findall(text))


def rng_for(prompt: str, seed: int | None, index: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def next_token(rng: random.Random, position: int) -> str:
    word = _WORDS[rng.randrange(len(_WORDS))]
    return word if position == 0 else " " + word


def natural_length(rng: random.Random, lo: int, hi: int) -> int:
    return rng.randint(lo, max(lo, hi))
