"""The pooled httpx client for one engine, tuned for long streams."""

from __future__ import annotations

import logging

import httpx

from backends.http.network import AsyncioBackend
from backends.http.options import HttpOptions

log = logging.getLogger("lockgate.backends.http")


def build_transport(options: HttpOptions) -> httpx.AsyncHTTPTransport:
    """One pool per backend: connections are pooled per engine and never shared across engines."""
    limits = httpx.Limits(max_connections=options.max_connections,
                          max_keepalive_connections=options.max_keepalive_connections,
                          keepalive_expiry=options.keepalive_expiry_s)
    return engine_transport(limits, options.network)


def engine_timeout(options: HttpOptions) -> httpx.Timeout:
    """The read timeout is off on purpose: a stream's silences are bounded by the adapter's own TTFT and
    idle-between-chunks deadlines, which differ before and after the first token."""
    return httpx.Timeout(connect=options.connect_timeout_s, read=None, write=options.write_timeout_s,
                         pool=options.pool_timeout_s)


def build_client(options: HttpOptions, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The client for probes and one-off calls; generation streams go to the same transport without it
    (backends/http/base.py), so both share one pool."""
    return httpx.AsyncClient(
        base_url=options.url.rstrip("/"),
        headers=options.headers,
        timeout=engine_timeout(options),
        transport=transport or build_transport(options),
        follow_redirects=False,  # an engine URL that redirects is a misconfiguration, not somewhere to go
        trust_env=False,  # engine traffic stays off HTTP(S)_PROXY settings meant for the outside world
    )


def engine_transport(limits: httpx.Limits, network: str = "asyncio") -> httpx.AsyncHTTPTransport:
    """httpx's own transport (its pool, TLS and error mapping) with connections on plain asyncio
    (backends/http/network.py) instead of anyio: the read path per token is the worker's hottest.
    ``network="anyio"`` keeps httpx's default backend (HttpOptions.network)."""
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    return transport if network == "anyio" else use_asyncio_network(transport)


def use_asyncio_network(transport: httpx.AsyncHTTPTransport) -> httpx.AsyncHTTPTransport:
    pool = getattr(transport, "_pool", None)
    # httpcore's pool takes the backend at construction only, and httpx does not pass one through: set it on
    # the pool httpx built, before it has opened any connection.
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = AsyncioBackend()
    else:  # a future httpx/httpcore without these: keep its default backend, which works, only costs more
        log.warning("httpx's transport has no httpcore pool to set a network backend on; using its default")
    return transport
