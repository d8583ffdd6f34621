"""Prompts by request index: the same seed gives the same prompts, whichever process or target asks.

Synthetic prompts start with a unique seeded tag so no engine gets free prefix-cache hits; the shared-prefix
generator reuses prefixes on purpose. Lengths are in words (the simulator's tokens; about 1.3 BPE tokens each).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Protocol

import msgspec

from loadtest.config import DatasetSpec, LengthDist
from loadtest.tokens import TokenCounter

# A plain vocabulary: distinct common words, so prompts look like text to a tokenizer.
_VOCAB = tuple((  # noqa: SIM905 - a paragraph reads better than 100 quoted words
    "time year people way day man thing woman life child world school state family student group country problem "
    "hand part place case week company system program question work government number night point home water "
    "room mother area money story fact month lot right study book eye job word business issue side kind head "
    "house service friend father power hour game line end member law car city community name president team "
    "minute idea kid body information back parent face others level office door health person art war history "
    "party result change morning reason research girl guy moment air teacher force education"
).split())


class Prompt(msgspec.Struct, frozen=True):
    id: str
    text: str
    input_tokens: int
    """Prompt length as generated or counted (the response's usage, when given, is what metrics use)."""
    output_tokens: int | None
    """max_tokens to send; None leaves it to the model (ShareGPT without a fixed output length)."""


class Dataset(Protocol):
    def prompt(self, index: int) -> Prompt: ...


def sample_length(rng: random.Random, dist: LengthDist) -> int:
    if dist.kind == "uniform":
        return max(1, round(rng.uniform(dist.mean - dist.spread, dist.mean + dist.spread)))
    if dist.kind == "normal":
        return max(1, round(rng.gauss(dist.mean, dist.spread)))
    return dist.mean


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


class Synthetic:
    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec

    def prompt(self, index: int) -> Prompt:
        rng = random.Random(f"synthetic:{self.spec.seed}:{index}")
        n_in = sample_length(rng, self.spec.input_len)
        tag = f"req{self.spec.seed}x{index}"  # one word, unique per (seed, index)
        text = " ".join(filter(None, [tag, _words(rng, n_in - 1)]))
        out = sample_length(rng, self.spec.output_len) if self.spec.output_len else None
        return Prompt(id=f"s{index}", text=text, input_tokens=n_in, output_tokens=out)


class SharedPrefix:
    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.prefixes = [_words(random.Random(f"prefix:{spec.seed}:{g}"), spec.prefix_len)
                         for g in range(spec.num_prefixes)]

    def prompt(self, index: int) -> Prompt:
        rng = random.Random(f"suffix:{self.spec.seed}:{index}")
        group = index % self.spec.num_prefixes
        n_suffix = sample_length(rng, self.spec.input_len)
        suffix = " ".join(filter(None, [f"req{self.spec.seed}x{index}", _words(rng, n_suffix - 1)]))
        out = sample_length(rng, self.spec.output_len) if self.spec.output_len else None
        return Prompt(id=f"p{group}-{index}", text=f"{self.prefixes[group]} {suffix}".strip(),
                      input_tokens=self.spec.prefix_len + n_suffix, output_tokens=out)


class ShareGPT:
    """First human turn as the prompt; the first reply's length as max_tokens unless output_len is fixed."""

    def __init__(self, spec: DatasetSpec, counter: TokenCounter) -> None:
        if spec.path is None:
            raise ValueError("the sharegpt dataset needs a path")
        self.spec = spec
        self.items: list[tuple[str, str]] = []
        for entry in json.loads(Path(spec.path).read_text()):
            turns = entry.get("conversations") or entry.get("conversation") or []
            if len(turns) >= 2 and turns[0].get("value") and turns[1].get("value"):
                self.items.append((turns[0]["value"], turns[1]["value"]))
        if not self.items:
            raise ValueError(f"{spec.path}: no conversation with a prompt and a reply")
        random.Random(spec.seed).shuffle(self.items)
        self.counter = counter

    def prompt(self, index: int) -> Prompt:
        i = index % len(self.items)
        text, reply = self.items[i]
        rng = random.Random(f"sharegpt:{self.spec.seed}:{index}")
        out = sample_length(rng, self.spec.output_len) if self.spec.output_len else max(
            1, self.counter.count(reply))
        return Prompt(id=f"g{i}", text=text, input_tokens=self.counter.count(text), output_tokens=out)


def build(spec: DatasetSpec, counter: TokenCounter) -> Dataset:
    if spec.kind == "sharegpt":
        return ShareGPT(spec, counter)
    if spec.kind == "shared-prefix":
        return SharedPrefix(spec)
    return Synthetic(spec)
