"""Transports passed through: TLS with client certificates, and a unix socket."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import redis

from dispatch.redis.connection import connect
from gateway.config.redis_target import parse_url

from .harness import Deployment, expected_text
from .topology import Certs, Server


def test_requests_through_a_tls_only_redis_with_client_certificates(tmp_path: Path) -> None:
    certs = Certs(tmp_path)
    server = Server(tmp_path, "tls", [], tls=certs)
    # The server really refuses plain connections and unauthenticated TLS.
    try:
        redis.Redis(port=server.port, socket_timeout=2).ping()
        raise AssertionError("a plain connection was accepted")
    except redis.ConnectionError:
        pass
    dep = Deployment(tmp_path, redis_url=f"rediss://localhost:{server.port}/0", client=server.client,
                     dispatch={"redis": {"tls_ca_file": str(certs.ca), "tls_cert_file": str(certs.client_cert),
                                         "tls_key_file": str(certs.client_key)}})
    try:
        cfg = dep.config()
        dep.worker(cfg)
        gw = dep.gateway(cfg)
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=30)
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "over tls"}], max_tokens=10, seed=7, stream=True,
            extra_body={"ignore_eos": True})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected_text("over tls", 10)
        dep.close()
        assert dep.keys_without_ttl() == []
    finally:
        dep.close()
        dep.cleanup()
        server.kill()


@pytest.mark.anyio
async def test_a_unix_socket_url_connects(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server = Server(tmp_path, "unix", ["--unixsocket", str(sock), "--unixsocketperm", "700"])
    client = connect(parse_url(f"unix://{sock}?db=3"))
    try:
        await client.set("k", "v")
        assert redis.Redis(unix_socket_path=str(sock), db=3).get("k") == b"v"
    finally:
        await client.aclose()
        server.kill()
