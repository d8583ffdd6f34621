"""An adapter that raises or ends without finishing never hangs a client or leaks a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from backends.events import Delta, Event, Started
from backends.protocol import Health, HealthState, Load
from backends.registry import PluginRegistry
from backends.request import GenerationRequest
from backends.sim.plugin import plugin as sim_plugin
from gateway.config import parse_config
from tests.support.live import LiveServer


class BrokenOptions(msgspec.Struct, frozen=True):
    mode: str = "raise_before"


class BrokenBackend:
    """A deliberately buggy adapter: raises, or stops without a terminal event."""

    engine = "broken"
    max_concurrency = 4
    max_n = 1

    def __init__(self, name: str, options: BrokenOptions) -> None:
        self.name = name
        self.mode = options.mode

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> Health:
        return Health(HealthState.OK)

    async def load(self) -> Load | None:
        return None

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        yield Started(backend=self.name, engine=self.engine)
        if self.mode == "raise_before":
            raise RuntimeError("secret internal detail /etc/passwd")
        yield Delta(text="partial", tokens=1)
        if self.mode == "raise_after":
            raise RuntimeError("secret internal detail /etc/passwd")
        # mode "truncate": end with no terminal event


class BrokenPlugin:
    kind = "broken"
    options_type = BrokenOptions

    def create(self, name: str, options: Any) -> BrokenBackend:
        return BrokenBackend(name, options)


def server_for(mode: str) -> LiveServer:
    registry = PluginRegistry({"sim": sim_plugin, "broken": BrokenPlugin()})
    text = f"""
[auth]
enabled = false
[limits]
max_attempts = 1
[models.m]
backends = [{{ backend = "b" }}]
[backends.b]
kind = "broken"
options = {{ mode = "{mode}" }}
"""
    return LiveServer(parse_config(text, registry=registry), registry=registry)


BODY = {"model": "m", "messages": [{"role": "user", "content": "x"}]}


@pytest.mark.parametrize("stream", [False, True])
def test_adapter_raising_before_first_token_is_a_clean_5xx(stream: bool) -> None:
    with server_for("raise_before") as server:
        resp = httpx.post(server.url + "/v1/chat/completions", json={**BODY, "stream": stream}, timeout=10)
    assert resp.status_code == 502
    assert resp.json()["error"]["message"] == "backend 'b' failed: RuntimeError"
    assert "secret" not in resp.text
    assert "Traceback" not in resp.text


def test_adapter_raising_mid_stream_is_one_error_event() -> None:
    with server_for("raise_after") as server:
        resp = httpx.post(server.url + "/v1/chat/completions", json={**BODY, "stream": True}, timeout=10)
    events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert sum('"error"' in e for e in events) == 1
    assert '"partial"' in resp.text
    assert "secret" not in resp.text


def test_adapter_ending_without_terminal_event_is_an_error_not_a_hang() -> None:
    with server_for("truncate") as server:
        resp = httpx.post(server.url + "/v1/chat/completions", json={**BODY, "stream": True}, timeout=10)
    events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert "ended the stream without finishing" in events[-2]
