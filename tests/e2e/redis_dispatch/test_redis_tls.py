"""TLS passed through: a gateway and a worker reach a TLS-only Redis that requires a client certificate."""

from __future__ import annotations

from pathlib import Path

import openai
import redis

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
