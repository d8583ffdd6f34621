"""The HTTP edge: body limits, error shapes, request ids, failures before and after the first token."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.configs import sim_config
from tests.support.live import LiveServer

CHAT = "/v1/chat/completions"


def chat_body(content: str = "hello", **extra: object) -> dict[str, object]:
    return {"model": "sim-small", "messages": [{"role": "user", "content": content}], **extra}


def assert_openai_error(resp: httpx.Response, status: int, param: str | None = None) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    assert "Traceback" not in resp.text
    if param is not None:
        assert body["error"]["param"] == param
    return dict(body["error"])


def sse_events(resp: httpx.Response) -> list[str]:
    return [line.removeprefix("data: ") for line in resp.text.splitlines() if line.startswith("data: ")]


@pytest.fixture
def small_body_server() -> Iterator[LiveServer]:
    with LiveServer(sim_config(server={"max_body_bytes": 2048})) as server:
        yield server


def test_body_over_limit_with_content_length_is_413(small_body_server: LiveServer) -> None:
    resp = httpx.post(small_body_server.url + CHAT, json=chat_body("x" * 5000))
    assert_openai_error(resp, 413)


def test_chunked_body_over_limit_without_content_length_is_413(small_body_server: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "sim-small", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    resp = httpx.post(small_body_server.url + CHAT, content=chunks())
    assert "content-length" not in resp.request.headers
    assert resp.request.headers["transfer-encoding"] == "chunked"
    assert_openai_error(resp, 413)
    # The server is unharmed: a normal request still works.
    assert httpx.post(small_body_server.url + CHAT, json=chat_body(max_tokens=2)).status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "sim-small", "messages": []}, "messages"),
        ({"model": "sim-small", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        (chat_body(max_tokens=0), "max_tokens"),
        (chat_body(max_tokens=-3), "max_tokens"),
        (chat_body(max_tokens=100_000), "max_tokens"),
        (chat_body(max_completion_tokens=0), "max_completion_tokens"),
        (chat_body(temperature=2.5), "temperature"),
        (chat_body(temperature=-0.1), "temperature"),
        (chat_body(top_p=0), "top_p"),
        (chat_body(top_p=1.5), "top_p"),
        (chat_body(n=0), "n"),
        (chat_body(n=99), "n"),
        (chat_body(max_tokens="ten"), "max_tokens"),
        (chat_body(stream="yes"), "stream"),
        ({"model": "sim-small", "messages": "hello"}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        (chat_body(stop=["a", "b", "c", "d", "e"]), "stop"),
        (chat_body(stream_options={"include_usage": True}), "stream_options"),
        (chat_body(logprobs=True), "logprobs"),
        ({"model": "sim-small", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
         "messages[0].content[0].type"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(live: LiveServer, body: dict[str, object], param: str) -> None:
    assert_openai_error(httpx.post(live.url + CHAT, json=body), 400, param)


def test_malformed_json_and_non_object_bodies(live: LiveServer) -> None:
    assert_openai_error(httpx.post(live.url + CHAT, content=b'{"model": '), 400)
    assert_openai_error(httpx.post(live.url + CHAT, content=b"[1, 2]"), 400)
    assert_openai_error(httpx.post(live.url + CHAT, content=b""), 400)
    assert_openai_error(httpx.post(live.url + "/v1/completions", json={"model": "sim-small", "prompt": [1, 2]}),
                        400, "prompt")


def test_unknown_model_404_and_unknown_route_404(live: LiveServer) -> None:
    err = assert_openai_error(httpx.post(live.url + CHAT, json={**chat_body(), "model": "gpt-9"}), 404, "model")
    assert err["code"] == "model_not_found"
    assert_openai_error(httpx.get(live.url + "/v1/nothing-here"), 404)
    assert_openai_error(httpx.get(live.url + CHAT), 405)


def test_url_like_fields_are_ignored_never_fetched(live: LiveServer) -> None:
    resp = httpx.post(live.url + CHAT, json=chat_body(max_tokens=2, api_base="http://169.254.169.254/",
                                                      base_url="http://127.0.0.1:1/"))
    assert resp.status_code == 200
    assert resp.headers["x-lockgate-backend"] == "sim"


def test_request_id_is_echoed_or_generated(live: LiveServer) -> None:
    resp = httpx.post(live.url + CHAT, json=chat_body(max_tokens=1), headers={"X-Request-Id": "req-abc-123"})
    assert resp.headers["x-request-id"] == "req-abc-123"
    generated = httpx.post(live.url + CHAT, json=chat_body(max_tokens=1)).headers["x-request-id"]
    assert len(generated) == 32
    # Error responses carry it too.
    assert httpx.post(live.url + CHAT, json={}, headers={"X-Request-Id": "e1"}).headers["x-request-id"] == "e1"


def test_failure_after_first_token_is_one_error_event_then_done(live: LiveServer) -> None:
    resp = httpx.post(live.url + CHAT, json=chat_body("[[sim:fail_after=3]]", stream=True, max_tokens=50))
    assert resp.status_code == 200
    events = sse_events(resp)
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    errors = [p for p in payloads if "error" in p]
    assert len(errors) == 1
    assert payloads[-1] is errors[0]
    assert set(errors[0]["error"]) == {"message", "type", "param", "code"}
    content = [p for p in payloads if "choices" in p and p["choices"][0]["delta"].get("content")]
    assert len(content) == 3
    assert not any(p.get("choices") and p["choices"][0]["finish_reason"] for p in payloads)


def test_failure_after_first_token_non_streaming_is_an_error(live: LiveServer) -> None:
    assert_openai_error(httpx.post(live.url + CHAT, json=chat_body("[[sim:fail_after=2]]", max_tokens=50)), 500)


def test_failure_before_first_token_moves_to_another_backend() -> None:
    # "bad" always fails before its first token; the request must land on "good" within the attempt budget.
    config = sim_config(backends={"bad": {"fault": "fail_before_first_token", "ttft_ms": 1},
                                  "good": {"ttft_ms": 1, "tpot_ms": 1}},
                        models={"sim-small": [("bad", 100.0), ("good", 1.0)]}, limits={"max_attempts": 2})
    with LiveServer(config) as server:
        for _ in range(5):
            resp = httpx.post(server.url + CHAT, json=chat_body(max_tokens=2, stream=True))
            assert resp.status_code == 200
            assert resp.headers["x-lockgate-backend"] == "good"
            assert sse_events(resp)[-1] == "[DONE]"
            assert not any('"error"' in e for e in sse_events(resp))


def test_every_backend_failing_is_503_and_attempts_are_bounded() -> None:
    config = sim_config(backends={"a": {"fault": "fail_before_first_token", "ttft_ms": 1},
                                  "b": {"fault": "fail_before_first_token", "ttft_ms": 1}},
                        limits={"max_attempts": 3}, routing={"eject_after": 100})
    with LiveServer(config) as server:
        err = assert_openai_error(httpx.post(server.url + CHAT, json=chat_body(stream=True)), 503)
        assert "before the first token" in str(err["message"])
        sims = server.runtime.backends
        assert sum(b.started_requests for b in sims.values()) == 3  # type: ignore[attr-defined]


def test_ttft_timeout_is_504() -> None:
    with LiveServer(sim_config(limits={"ttft_timeout_s": 0.3})) as server:
        err = assert_openai_error(httpx.post(server.url + CHAT, json=chat_body("[[sim:hang]]")), 504)
        assert err["code"] == "ttft_timeout"
        assert server.wait_for(lambda: server.runtime.dispatcher.running("sim") == 0)


def test_health_and_readiness(live: LiveServer) -> None:
    assert httpx.get(live.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(live.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["backends"] == {"sim": "ok"}


def test_not_ready_while_backend_starts() -> None:
    with LiveServer(sim_config(backends={"sim": {"start_delay_ms": 60_000}})) as server:
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json() == {"status": "not_ready", "backends": {"sim": "starting"}}
        err = assert_openai_error(httpx.post(server.url + CHAT, json=chat_body()), 503)
        assert err["code"] == "no_backend_available"
