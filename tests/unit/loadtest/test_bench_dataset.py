"""Datasets: seeded, unique synthetic prompts; shared prefixes on purpose; ShareGPT files."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from loadtest.config import DatasetSpec, LengthDist
from loadtest.dataset import build
from loadtest.tokens import WordCounter


def test_synthetic_prompts_are_seeded_unique_and_sized() -> None:
    spec = DatasetSpec(input_len=LengthDist(mean=64), output_len=LengthDist(kind="uniform", mean=32, spread=8))
    a, b = build(spec, WordCounter()), build(spec, WordCounter())
    prompts = [a.prompt(i) for i in range(200)]
    assert prompts == [b.prompt(i) for i in range(200)]  # same seed, same prompts, any process
    assert len({p.text for p in prompts}) == 200
    assert len({p.text.split()[0] for p in prompts}) == 200  # unique from the first word: no free prefix hits
    assert all(len(p.text.split()) == p.input_tokens == 64 for p in prompts)
    outs = [p.output_tokens for p in prompts]
    assert all(o is not None and 24 <= o <= 40 for o in outs)
    other = build(DatasetSpec(seed=1, input_len=LengthDist(mean=64)), WordCounter())
    assert other.prompt(0).text != prompts[0].text


def test_normal_lengths_have_the_requested_mean() -> None:
    ds = build(DatasetSpec(input_len=LengthDist(kind="normal", mean=100, spread=10)), WordCounter())
    lengths = [ds.prompt(i).input_tokens for i in range(500)]
    assert statistics.fmean(lengths) == pytest.approx(100, abs=2)
    assert statistics.stdev(lengths) == pytest.approx(10, rel=0.2)


def test_shared_prefix_prompts_share_their_groups_prefix() -> None:
    ds = build(DatasetSpec(kind="shared-prefix", prefix_len=20, num_prefixes=3, input_len=LengthDist(mean=5)),
               WordCounter())
    prompts = [ds.prompt(i) for i in range(9)]
    prefixes = [" ".join(p.text.split()[:20]) for p in prompts]
    assert len(set(prefixes)) == 3
    assert prefixes[0] == prefixes[3] == prefixes[6]
    assert len({p.text for p in prompts}) == 9
    assert all(p.input_tokens == 25 for p in prompts)


def test_sharegpt_file(tmp_path: Path) -> None:
    data = [{"conversations": [{"from": "human", "value": f"question {i}"},
                               {"from": "gpt", "value": " ".join(["word"] * (i + 1))}]} for i in range(5)]
    data.append({"conversations": [{"from": "human", "value": "no reply"}]})
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(data))
    ds = build(DatasetSpec(kind="sharegpt", path=str(path), output_len=None), WordCounter())
    prompts = [ds.prompt(i) for i in range(5)]
    assert sorted(p.text for p in prompts) == [f"question {i}" for i in range(5)]
    assert all(p.output_tokens == int(p.text.split()[1]) + 1 for p in prompts)
    assert ds.prompt(5) == prompts[0]  # cycles
    fixed = build(DatasetSpec(kind="sharegpt", path=str(path), output_len=LengthDist(mean=9)), WordCounter())
    assert fixed.prompt(0).output_tokens == 9
