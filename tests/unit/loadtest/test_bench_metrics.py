"""Per-request metrics follow the written definitions (docs/bench.md) exactly."""

from __future__ import annotations

import pytest

from loadtest.metrics import derive, meets
from loadtest.record import RequestRecord
from loadtest.stats import describe, percentile


def _record(**kw: object) -> RequestRecord:
    base: dict[str, object] = {"target": "t", "point": 0, "round": 0, "index": 0, "prompt_id": "p", "t_sched": 1.0,
                               "t_send": 1.5, "outcome": "ok"}
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def test_ttft_e2e_and_tpot() -> None:
    r = _record(t_first=1.6, t_last=2.0, chunk_offsets=[0.1, 0.3, 0.5], chunk_tokens=[1, 2, 2], n_out=5)
    m = derive(r)
    assert m.ttft == pytest.approx(0.1)
    assert m.ttft_sched == pytest.approx(0.6)  # includes the 0.5 s the request waited in the client
    assert m.e2e == pytest.approx(0.5)
    assert m.e2e_sched == pytest.approx(1.0)
    assert m.tpot == pytest.approx((0.5 - 0.1) / 4)
    assert m.send_lag == pytest.approx(0.5)


def test_itl_is_token_weighted_and_icl_is_raw() -> None:
    r = _record(t_first=1.6, t_last=2.0, chunk_offsets=[0.1, 0.4, 0.5], chunk_tokens=[1, 3, 1], n_out=5)
    m = derive(r)
    assert m.itl == pytest.approx([0.1, 0.1, 0.1, 0.1])  # 3 samples of 0.3/3, then 1 of 0.1
    assert m.icl == pytest.approx([0.3, 0.1])


def test_a_chunk_counted_as_no_tokens_merges_its_gap_into_the_next() -> None:
    # The hf engine's byte pieces, counted by a word tokenizer and rescaled to usage, can leave a chunk with 0.
    r = _record(t_first=1.6, t_last=2.0, chunk_offsets=[0.1, 0.2, 0.4, 0.5], chunk_tokens=[1, 0, 2, 1], n_out=4)
    m = derive(r)
    assert m.itl == pytest.approx([0.15, 0.15, 0.1])  # 0.3 s from the first chunk over the 2 tokens of the third
    assert m.icl == pytest.approx([0.1, 0.2, 0.1])  # chunk gaps stay raw


def test_tpot_needs_two_tokens() -> None:
    m = derive(_record(t_first=1.6, t_last=1.6, chunk_offsets=[0.1], chunk_tokens=[1], n_out=1))
    assert m.tpot is None
    assert m.itl == []


def test_slo_checks_every_bound() -> None:
    m = derive(_record(t_first=1.6, t_last=2.0, chunk_offsets=[0.1, 0.5], chunk_tokens=[1, 1], n_out=2))
    assert meets(m, 0.2, 0.5, 1.0)
    assert not meets(m, 0.05, None, None)
    assert not meets(m, None, 0.3, None)
    assert not meets(m, None, None, 0.4)
    assert meets(m, None, None, None)


def test_percentiles_interpolate_between_ranks() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert percentile(xs, 50) == pytest.approx(50.5)
    assert percentile(xs, 99) == pytest.approx(99.01)
    st = describe(xs)
    assert st is not None
    assert (st.min, st.max, st.count) == (1.0, 100.0, 100)
    assert st.p99_9 == pytest.approx(99.901)
    assert describe([]) is None
