"""A cancelled job closes its engine connection, however often it is cancelled: the engine learns of a client's
disconnect only from that close (vLLM and SGLang abort the request then), over a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from backends.events import Delta, Event
from backends.replicas.app import ReplicaApp
from backends.replicas.server import replica_app
from backends.request import GenerationRequest
from backends.vllm import VllmBackend, VllmOptions
from backends.worker import run_job
from dispatch.job import Job
from observability.telemetry import Telemetry
from tests.support.servers import until


def long_request(i: int) -> GenerationRequest:
    return GenerationRequest(request_id=f"r{i}", model="tiny", operation="text_completion", max_tokens=2000,
                             prompt="hello", extra={"ignore_eos": True})


@pytest.mark.parametrize("cancels", [1, 2, 3])
def test_a_job_cancelled_again_during_its_cleanup_still_closes_the_engine_stream(
        serve: Callable[[Any], Any], cancels: int) -> None:
    app = replica_app("vllm", "tiny", {"ttft_ms": 1, "tpot_ms": 5, "max_model_len": 4096})
    assert isinstance(app, ReplicaApp)
    server = serve(app)
    streams = 4

    async def go() -> tuple[Any, int]:
        backend = VllmBackend("v", VllmOptions(url=server.url, model="tiny", poll_interval_s=0.05))
        await backend.start()
        try:
            for i in range(streams):
                first = asyncio.Event()

                async def emit(event: Event, first: asyncio.Event = first) -> None:
                    if isinstance(event, Delta):
                        first.set()

                task = asyncio.create_task(run_job(backend, Job(id=f"j{i}", model="tiny", backend="v",
                                                                request=long_request(i)), emit, Telemetry()))
                await first.wait()
                # The first cancellation starts the adapter's cleanup (httpx closing the unread connection); the
                # next ones arrive while it runs, as when a disconnect and a shutdown (or a Redis cancel message
                # and a lost lease) both cancel one job.
                task.cancel()
                for _ in range(cancels - 1):
                    await asyncio.sleep(0)
                    task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

            async def cancelled() -> int:
                return app.sim.cancelled_requests

            # Unclosed, these generations would run for 10 s more.
            seen = await until(cancelled, lambda n: n == streams, within_s=3)
            idle = await until(backend.load, lambda v: v is not None and v.running == 0, within_s=3)
            return idle, seen
        finally:
            await backend.close()

    idle, cancelled = asyncio.run(go())
    # The engine saw every disconnect (the replica cancels a generation when its client leaves) and runs nothing.
    assert cancelled == streams
    assert idle is not None
    assert idle.running == 0
