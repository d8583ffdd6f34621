"""How the client classifies streams: what counts as the first token, what counts as success."""

from __future__ import annotations

import asyncio
from typing import Any

from loadtest import BenchSpec, DatasetSpec, LengthDist, LoadShape, RequestRecord, Target, run_bench
from tests.support.bench import DONE, ROLE, Write, chunk, content, finish, serve, usage

DELAY_S = 0.05


async def scripted(path: str, body: dict[str, Any], write: Write) -> bool:
    """The scenario is the first segment of the URL path: /<scenario>/v1/chat/completions."""
    scenario = path.strip("/").split("/")[0]
    n = int(body.get("max_tokens", 4))
    if scenario == "role-then-wait":
        await write(ROLE)
        await asyncio.sleep(DELAY_S)
        for i in range(n):
            await write(content(f" w{i}"))
        await write(finish() + usage(3, n) + DONE)
    elif scenario == "error-only":
        await write(b'data: {"error": {"message": "engine fell over", "type": "engine_error"}}\n\n' + DONE)
    elif scenario == "no-done":
        await write(ROLE + content(" a") + content(" b") + finish())
    elif scenario == "no-finish":
        await write(ROLE + content(" a") + content(" b") + DONE)
    elif scenario == "cut":
        await write(ROLE + content(" a"))
        return False
    elif scenario == "batched-usage":
        # vLLM's continuous usage: cumulative completion_tokens on every chunk; 2 then 3 tokens.
        await write(chunk([{"index": 0, "delta": {"content": " a b"}, "finish_reason": None}],
                          {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}))
        await asyncio.sleep(0.03)
        await write(chunk([{"index": 0, "delta": {"content": " c d e"}, "finish_reason": None}],
                          {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}))
        await write(finish() + usage(3, 5) + DONE)
    return True


def _run(scenario: str, url: str, n: int = 3) -> list[RequestRecord]:
    base = url.removesuffix("/v1") + f"/{scenario}/v1"
    records: list[RequestRecord] = []
    run_bench(BenchSpec(targets=(Target(base_url=base, model="m"),), loads=(LoadShape(concurrency=1),),
                        num_requests=n, self_check=False,
                        dataset=DatasetSpec(input_len=LengthDist(mean=4), output_len=LengthDist(mean=4))),
              sink=records.extend)
    return records


def test_a_role_only_first_chunk_is_not_the_first_token() -> None:
    with serve(scripted) as url:
        records = _run("role-then-wait", url)
    for r in records:
        assert r.outcome == "ok"
        assert r.t_first is not None
        assert r.t_first - r.t_send >= DELAY_S
        assert r.n_out == 4
        assert r.n_out_source == "usage"
        assert r.trace_id == "0123456789abcdef0123456789abcdef"


def test_a_stream_whose_only_event_is_an_error_is_a_failure() -> None:
    with serve(scripted) as url:
        records = _run("error-only", url)
    assert [r.outcome for r in records] == ["error"] * 3
    assert {r.error_type for r in records} == {"stream_error:engine_error"}


def test_streams_without_done_or_finish_reason_are_incomplete() -> None:
    with serve(scripted) as url:
        for scenario in ("no-done", "no-finish", "cut"):
            records = _run(scenario, url)
            assert [r.outcome for r in records] == ["incomplete"] * 3, scenario
            assert {r.error_type for r in records} == {"incomplete_stream"}, scenario


def test_failures_are_counted_by_type_and_never_as_completed() -> None:
    with serve(scripted) as url:
        base = url.removesuffix("/v1")
        result = run_bench(BenchSpec(
            targets=(Target(base_url=f"{base}/error-only/v1", model="m", label="err"),
                     Target(base_url=f"{base}/no-done/v1", model="m", label="nodone")),
            loads=(LoadShape(concurrency=2),), num_requests=4, self_check=False))
    err, nodone = result.points
    assert (err.completed, err.failed, err.incomplete) == (0, 4, 0)
    assert err.errors == {"stream_error:engine_error": 4}
    assert (nodone.completed, nodone.failed, nodone.incomplete) == (0, 4, 4)
    assert err.request_throughput == nodone.request_throughput == 0.0


def test_per_chunk_usage_gives_exact_tokens_per_chunk() -> None:
    with serve(scripted) as url:
        records = _run("batched-usage", url, n=2)
    for r in records:
        assert r.chunk_tokens == [2, 3]
        assert r.chunk_tokens_source == "usage:continuous"


def test_an_unreachable_target_is_a_connect_error() -> None:
    result = run_bench(BenchSpec(targets=(Target(base_url="http://127.0.0.1:9/v1", model="m"),),
                                 loads=(LoadShape(concurrency=1),), num_requests=2, self_check=False))
    assert result.points[0].errors == {"connect_error": 2}
