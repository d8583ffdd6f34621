"""What the tenant tests share: an admin client for the key routes, SSE reading, a flood-and-trickle load."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai

from backends.request import ChatMessage, GenerationRequest
from gateway.tenants.service import prompt_estimate

ADMIN_KEY = "sk-admin-tenants-0123456789"
PROMPT_ESTIMATE = prompt_estimate(GenerationRequest(request_id="r", model="m", operation="chat", max_tokens=1,
                                                    messages=(ChatMessage("user", "hello there"),)))
"""What admission charges for the prompt of ``chat()`` / ``body()``."""
RESET = r"^(\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s)$"


class Admin:
    def __init__(self, url: str, key: str = ADMIN_KEY) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}

    def create(self, **spec: Any) -> tuple[str, str]:
        r = httpx.post(f"{self.url}/v1/lockgate/keys", json={"name": "t", **spec}, headers=self.headers, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["secret"]

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/v1/lockgate{path}", headers=self.headers, timeout=10, **kwargs)


def sdk(url: str, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0, timeout=60)


def body(model: str, prompt: str = "hello there", max_tokens: int = 8, stream: bool = False) -> dict[str, Any]:
    """A JSON body for plain HTTP: exactly ``max_tokens`` from the simulator."""
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "stream": stream, "ignore_eos": True}


def chat(model: str, prompt: str = "hello there", max_tokens: int = 8) -> dict[str, Any]:
    """Keyword arguments of the SDK's ``chat.completions.create``."""
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "extra_body": {"ignore_eos": True}}


def flood_and_trickle(url: str, model: str, flood_key: str, trickle_key: str, *, flood: int = 32,
                      trickles: int = 3, queued: Any) -> tuple[list[float], list[float]]:
    """``flood`` requests at once from one key on a backend that serves one at a time; once ``queued()`` says
    they wait, ``trickles`` requests one after the other from another key. Returns both keys' TTFTs (s)."""
    flood_ttft: list[float] = []
    trickle_ttft: list[float] = []
    lock = threading.Lock()

    def one(key: str, out: list[float]) -> None:
        t0 = time.perf_counter()
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body(model, stream=True, max_tokens=4),
                          headers={"Authorization": f"Bearer {key}"}, timeout=120) as resp:
            assert resp.status_code == 200, resp.read()
            seen = False
            for line in resp.iter_lines():
                if not seen and '"content":"' in line and '"content":""' not in line:
                    seen = True
                    with lock:
                        out.append(time.perf_counter() - t0)

    with ThreadPoolExecutor(flood) as pool:
        futures = [pool.submit(one, flood_key, flood_ttft) for _ in range(flood)]
        deadline = time.monotonic() + 30
        while not queued() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert queued(), "the flood never queued up"
        for _ in range(trickles):
            one(trickle_key, trickle_ttft)
        for f in futures:
            f.result()
    return flood_ttft, trickle_ttft
