"""The precomputed content chunk is byte for byte the generic chunk encoding."""

from __future__ import annotations

import random

import pytest

from backends.events import Delta
from gateway.render import Renderer

ALPHABET = "abc xyz\n\t\"\\/\x00\x1f\x7f\u00e9\u2028\u4e2d\U0001f600"


@pytest.mark.parametrize("chat", [True, False])
@pytest.mark.parametrize("include_usage", [True, False])
def test_delta_chunk_equals_generic_encoding(chat: bool, include_usage: bool) -> None:
    rng = random.Random(3)
    renderer = Renderer(chat, 'model "quoted" \u00e9', 3, include_usage)
    for _ in range(500):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
        delta = Delta(text=text, tokens=1, index=rng.randint(0, 2))
        assert renderer.delta(delta) == renderer._chunk([renderer._choice(delta.index, delta.text, None)])
