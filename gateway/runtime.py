"""Everything a gateway process runs, built from one Config: backends, dispatch, routing, auth, telemetry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from backends.protocol import Backend, Health, HealthState
from backends.registry import PluginRegistry
from dispatch.contract import BackendStatus
from dispatch.embedded import EmbeddedDispatcher
from dispatch.redis import RedisDispatcher, RedisWorker, resolve
from dispatch.redis.connection import connect
from gateway.auth import Authenticator
from gateway.config.schema import Config
from gateway.tenants.service import Tenancy
from observability.gauges import register_gauges
from observability.telemetry import Telemetry
from routing.budget import RetryBudget
from routing.experiments import ExperimentStore
from routing.health import HealthBoard
from routing.load import LoadBoard
from routing.router import Router

SLOW_PROBES_BEFORE_DOWN = 3
"""Health probes in a row that may overrun their interval before the backends count as down."""
log = logging.getLogger("lockgate.runtime")


class Runtime:
    def __init__(
        self,
        config: Config,
        *,
        registry: PluginRegistry | None = None,
        telemetry: Telemetry | None = None,
        environ: dict[str, str] | None = None,
        local_workers: bool = True,
    ) -> None:
        """``local_workers``: with Redis dispatch, also run workers for every backend in this process
        (``lockgate serve``); off for ``lockgate gateway``, whose backends live in ``lockgate worker``
        processes and are built here only for their metadata (engine, max n), never started."""
        self.config = config
        registry = registry or PluginRegistry.discover()
        self.telemetry = telemetry or Telemetry.build(config.telemetry)
        self.backends: dict[str, Backend] = registry.build(
            {name: (b.kind, b.options) for name, b in config.backends.items()}, self.telemetry.tracer)
        concurrency = {n: b.concurrency for n, b in config.backends.items() if b.concurrency}
        self.dispatcher: EmbeddedDispatcher | RedisDispatcher
        self.worker: RedisWorker | None = None
        self.remote = config.dispatch.kind == "redis"
        self.local_backends = not self.remote or local_workers
        if self.remote:
            target = resolve(config.dispatch, environ)
            if local_workers:
                self.worker = RedisWorker(self.backends, config.dispatch, target=target, telemetry=self.telemetry,
                                          concurrency=concurrency)
            self.dispatcher = RedisDispatcher(
                config.dispatch, target=target, backends=list(self.backends), telemetry=self.telemetry,
                max_queue_depth=config.limits.max_queue_depth, retry_after_s=config.limits.retry_after_s,
                max_buffered_events=config.server.max_buffered_events, local=self.worker)
        else:
            self.dispatcher = EmbeddedDispatcher(
                self.backends, telemetry=self.telemetry, max_queue_depth=config.limits.max_queue_depth,
                retry_after_s=config.limits.retry_after_s, concurrency=concurrency,
                max_buffered_events=config.server.max_buffered_events)
        r = config.routing
        self.health = HealthBoard(list(self.backends), eject_after=r.eject_after, error_rate=r.error_rate_threshold,
                                  window=r.error_rate_window, base_ejection_s=r.ejection_s,
                                  max_ejection_s=r.max_ejection_s, on_eject=self._ejected)
        capacity = {n: config.backends[n].concurrency or b.max_concurrency for n, b in self.backends.items()}
        self.router = Router(config.models, self.health, LoadBoard(capacity), r)
        self.budget = RetryBudget(r.retry_budget_ratio, r.min_retries_per_s)
        self.experiments = ExperimentStore()
        self.shadows: set[asyncio.Task[None]] = set()
        self.auth = Authenticator.from_config(config.auth, environ)
        # Keys, limits and usage live where the dispatch does: in Redis when gateways share one.
        self.tenancy = Tenancy(config, self.telemetry.meter, dict(os.environ) if environ is None else environ,
                               connect(resolve(config.dispatch, environ)) if self.remote else None)
        self.engines = {name: b.engine for name, b in self.backends.items()}
        self.max_n = {name: b.max_n for name, b in self.backends.items()}
        self._poller: asyncio.Task[None] | None = None
        self.started_at = int(time.time())
        self.status: dict[str, BackendStatus] = {}
        self._slow_probes = 0
        """The last polled status per backend (read by the gauges)."""
        register_gauges(self.telemetry, self)
        self._closing = False

    def _ejected(self, backend: str, seconds: float) -> None:
        log.warning("backend %s ejected for %.1f s after repeated failures", backend, seconds)
        self.telemetry.instruments.ejections.add(1, {"lockgate.backend": backend})

    async def start(self) -> None:
        if self.local_backends:
            results = await asyncio.gather(*(b.start() for b in self.backends.values()), return_exceptions=True)
            for (name, _), result in zip(self.backends.items(), results, strict=True):
                if isinstance(result, BaseException):
                    log.error("backend %s failed to start: %s", name, result)
                    self.health.set_health(name, Health(HealthState.DOWN, f"start failed: {result}"))
        await self.dispatcher.start()
        await self.tenancy.start()
        if self.worker is not None:
            await self.worker.start()
        await self.poll_health()
        self._poller = asyncio.create_task(self._poll_forever(), name="lockgate-health-poller")
        if not self.auth.enabled:
            log.warning("API key authentication is off: anyone who can reach this port can use it")

    async def close(self) -> None:
        self._closing = True
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for task in list(self.shadows):
            task.cancel()
        await asyncio.gather(*self.shadows, return_exceptions=True)
        await self.dispatcher.close(self.config.server.shutdown_grace_s)
        await self.tenancy.close()
        if self.worker is not None:
            await self.worker.stop(self.config.server.shutdown_grace_s)
        if self.local_backends:
            await asyncio.gather(*(b.close() for b in self.backends.values()), return_exceptions=True)
        self.telemetry.shutdown()

    async def poll_health(self) -> None:
        """Active health (also the probe that readmits an ejected backend), the engines' own load and the
        queue figures, all from the dispatch, which knows them whether workers are local or remote."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that lands as the
            # probe completes, and the poller would then never stop.
            async with asyncio.timeout(self.config.routing.health_interval_s):
                statuses = await self.dispatcher.status()
            self._slow_probes = 0
        except TimeoutError:
            # A probe that overran its interval says this process is busy (a flood of streams on a small
            # machine), not that the backends are down: keep the last answer for a few rounds, so a loaded
            # gateway does not turn its own slowness into 503s for everyone.
            self._slow_probes += 1
            if self._slow_probes < SLOW_PROBES_BEFORE_DOWN and self.status:
                log.info("health probe overran %.1f s; keeping the last status", self.config.routing.health_interval_s)
                return
            down = Health(HealthState.DOWN, f"health check timed out {self._slow_probes} times in a row")
            statuses = {name: BackendStatus(down, None, 0, 0) for name in self.config.backends}
        except Exception as exc:  # a failing probe means down backends, not a crashed poller
            down = Health(HealthState.DOWN, f"health check failed: {type(exc).__name__}")
            statuses = {name: BackendStatus(down, None, 0, 0) for name in self.config.backends}
        for name, status in statuses.items():
            self.health.set_health(name, status.health)
            self.router.load.set_engine_load(name, status.load if status.health.ok else None)
        self.status = statuses

    async def _poll_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.config.routing.health_interval_s)
            await self.poll_health()

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        healthy = self.health.snapshot()
        ok = await self.dispatcher.ping() and any(self.health.available(n) for n in self.backends)
        return ok, healthy
