"""The pooled httpx client for one engine, tuned for long streams."""

from __future__ import annotations

import httpx

from backends.http.options import HttpOptions


def build_client(options: HttpOptions, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """One client per backend: connections are pooled per engine and never shared across engines.

    The read timeout is off here on purpose: a stream's silences are bounded by the adapter's own TTFT and
    idle-between-chunks deadlines, which differ before and after the first token.
    """
    return httpx.AsyncClient(
        base_url=options.url.rstrip("/"),
        headers=options.headers,
        timeout=httpx.Timeout(connect=options.connect_timeout_s, read=None, write=options.write_timeout_s,
                              pool=options.pool_timeout_s),
        limits=httpx.Limits(max_connections=options.max_connections,
                            max_keepalive_connections=options.max_keepalive_connections,
                            keepalive_expiry=options.keepalive_expiry_s),
        transport=transport,
        follow_redirects=False,  # an engine URL that redirects is a misconfiguration, not somewhere to go
        trust_env=False,  # engine traffic stays off HTTP(S)_PROXY settings meant for the outside world
    )
