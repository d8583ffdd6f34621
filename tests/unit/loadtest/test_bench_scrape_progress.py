"""/metrics counter deltas and the progress line."""

from __future__ import annotations

import io

from loadtest.config import Target
from loadtest.progress import LocalTally, ProgressBar
from loadtest.scrape import delta, metrics_url, parse

BEFORE = """# HELP lockgate_requests_total Requests.
# TYPE lockgate_requests_total counter
lockgate_requests_total{backend="sim",code="200"} 10
lockgate_queue_depth 3
ttft_seconds_count{backend="sim"} 10
ttft_seconds_sum{backend="sim"} 0.5
"""
AFTER = BEFORE.replace("} 10\n", "} 25\n").replace("0.5", "1.25").replace("depth 3", "depth 9")


def test_counter_deltas_skip_gauges() -> None:
    assert parse(BEFORE) == {'lockgate_requests_total{backend="sim",code="200"}': 10.0,
                             'ttft_seconds_count{backend="sim"}': 10.0, 'ttft_seconds_sum{backend="sim"}': 0.5}
    assert delta(parse(BEFORE), parse(AFTER)) == {'lockgate_requests_total{backend="sim",code="200"}': 15.0,
                                                  'ttft_seconds_count{backend="sim"}': 15.0,
                                                  'ttft_seconds_sum{backend="sim"}': 0.75}
    assert delta(None, parse(AFTER)) is None


def test_metrics_url_drops_v1() -> None:
    assert metrics_url(Target(base_url="http://h:8000/v1/", model="m")) == "http://h:8000/metrics"


def test_progress_line_counts_requests() -> None:
    tally = LocalTally()
    tally.add(5)
    bar = ProgressBar("run", 10, None, tally, stream=io.StringIO(), enabled=False, width=10)
    assert bar.line().startswith("run [#####.....] 5/10 req")
