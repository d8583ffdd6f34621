"""Run aggregates: the measurement window, throughputs, achieved concurrency, goodput, warm-up exclusion."""

from __future__ import annotations

import pytest

from loadtest.config import SLO, Exclusion, LoadShape
from loadtest.record import RequestRecord
from loadtest.summary import mark_measured, summarize


def _req(index: int, t_send: float, ttft: float, e2e: float, n_out: int = 11, outcome: str = "ok") -> RequestRecord:
    return RequestRecord(target="t", point=0, round=0, index=index, prompt_id=f"p{index}", t_sched=t_send,
                         t_send=t_send, t_first=t_send + ttft, t_last=t_send + e2e, t_end=t_send + e2e + 0.001,
                         chunk_offsets=[ttft, e2e], chunk_tokens=[1, n_out - 1], n_out=n_out, n_in=5,
                         outcome=outcome,  # type: ignore[arg-type]
                         error_type=None if outcome == "ok" else "stream_error:x")


def test_warmup_and_cooldown_are_excluded_from_the_window() -> None:
    records = [_req(i, float(i), 0.1, 0.5) for i in range(10)]
    mark_measured(records, Exclusion(requests=2), Exclusion(requests=1))
    assert [r.measured for r in records] == [False, False] + [True] * 7 + [False]
    p = summarize("t", 0, LoadShape(concurrency=1), [records], SLO())
    assert p.requests == 7
    assert p.window_s == pytest.approx(8.501 - 2.0)  # first measured send -> last measured response end


def test_warmup_by_seconds() -> None:
    records = [_req(i, i * 0.5, 0.1, 0.2) for i in range(10)]
    mark_measured(records, Exclusion(seconds=1.0), Exclusion(seconds=1.0))
    assert [r.index for r in records if r.measured] == [2, 3, 4, 5, 6, 7]


def test_throughputs_concurrency_and_goodput() -> None:
    records = [_req(0, 0.0, 0.1, 1.0), _req(1, 0.0, 0.3, 1.0), _req(2, 1.0, 0.1, 0.999),
               _req(3, 1.0, 0.1, 0.5, outcome="error")]
    mark_measured(records, Exclusion(), Exclusion())
    p = summarize("t", 0, LoadShape(concurrency=2), [records], SLO(ttft_s=0.2))
    w = 2.0  # 0.0 -> 1.999 + 0.001
    assert p.window_s == pytest.approx(w)
    assert (p.completed, p.failed, p.incomplete) == (3, 1, 0)
    assert p.errors == {"stream_error:x": 1}
    assert p.request_throughput == pytest.approx(3 / w)
    assert p.output_token_throughput == pytest.approx(33 / w)
    assert p.total_token_throughput == pytest.approx((33 + 15) / w)
    assert p.achieved_concurrency == pytest.approx((1.0 + 1.0 + 0.999) / w)
    assert p.goodput == pytest.approx(2 / w)  # request 1 misses the TTFT SLO, request 3 failed
    assert p.slo_attainment == pytest.approx(2 / 4)
    assert p.token_sources == {"n_out:": 3, "n_in:": 3}


def test_rounds_add_their_windows() -> None:
    a = [_req(i, float(i), 0.1, 0.5) for i in range(3)]
    b = [_req(i, float(i), 0.1, 0.5) for i in range(3)]
    for run in (a, b):
        mark_measured(run, Exclusion(), Exclusion())
    p = summarize("t", 0, LoadShape(concurrency=1), [a, b], SLO())
    assert p.window_s == pytest.approx(2 * 2.501)
    assert p.request_throughput == pytest.approx(6 / (2 * 2.501))
