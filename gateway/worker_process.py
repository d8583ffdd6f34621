"""``lockgate worker``: runs Redis dispatch workers for some or all configured backends until told to stop.

SIGTERM or SIGINT stops it gracefully: no new jobs; running jobs get ``server.shutdown_grace_s`` to finish;
what is left is handed back (claimable by another worker at once) or, if tokens are already out, failed with
one error event. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from backends.protocol import Backend
from backends.registry import PluginRegistry
from dispatch.redis import RedisWorker, resolve
from gateway.config.schema import Config
from gateway.gctune import tune_gc
from observability.telemetry import Telemetry

log = logging.getLogger("lockgate.worker")


class UnknownBackends(ValueError):
    pass


def select_backends(config: Config, names: list[str] | None) -> list[str]:
    if not names:
        return list(config.backends)
    unknown = [n for n in names if n not in config.backends]
    if unknown:
        raise UnknownBackends(f"unknown backend(s) {', '.join(unknown)}; configured: {', '.join(config.backends)}")
    return list(dict.fromkeys(names))


async def serve_worker(config: Config, names: list[str], stop: asyncio.Event) -> None:
    registry = PluginRegistry.discover()
    telemetry = Telemetry.build(config.telemetry)
    backends: dict[str, Backend] = registry.build(
        {n: (config.backends[n].kind, config.backends[n].options) for n in names}, telemetry.tracer)
    await asyncio.gather(*(b.start() for b in backends.values()))
    worker = RedisWorker(backends, config.dispatch, target=resolve(config.dispatch), telemetry=telemetry,
                         concurrency={n: c for n in names if (c := config.backends[n].concurrency)})
    await worker.start()
    tune_gc()
    try:
        await stop.wait()
        log.info("worker %s stopping (grace %.1fs)", worker.worker_id, config.server.shutdown_grace_s)
    finally:
        await worker.stop(config.server.shutdown_grace_s)
        await asyncio.gather(*(b.close() for b in backends.values()), return_exceptions=True)
        telemetry.shutdown()


def run_worker(config: Config, names: list[str] | None) -> int:
    selected = select_backends(config, names)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                log.warning("second signal: exiting now")
                sys.exit(1)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await serve_worker(config, selected, stop)

    if sys.platform != "win32":
        import uvloop

        uvloop.run(main())
    else:  # pragma: no cover
        asyncio.run(main())
    return 0
