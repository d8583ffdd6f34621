"""What one ``lockgate bench`` run does, as validated msgspec Structs (built from the CLI or from Python)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

NonNeg = Annotated[float, msgspec.Meta(ge=0)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=1)]
Arrival = Literal["poisson", "gamma", "constant"]
Endpoint = Literal["chat", "completions"]


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class Target(_Spec, frozen=True):
    base_url: str
    """OpenAI-compatible base URL, ending in ``/v1`` (through lockgate or straight at an engine)."""
    model: str
    """Model name sent in each request."""
    label: str = ""
    """Name in reports (default: model@host:port)."""
    api_key: str | None = None
    """Sent as ``Authorization: Bearer``; never written to outputs."""

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        host = self.base_url.split("://", 1)[-1].split("/", 1)[0]
        return f"{self.model}@{host}"


class LengthDist(_Spec, frozen=True):
    kind: Literal["fixed", "uniform", "normal"] = "fixed"
    mean: Annotated[int, msgspec.Meta(ge=1)] = 128
    """Fixed value, or the centre of the distribution."""
    spread: NonNeg = 0.0
    """uniform: half-width of [mean - spread, mean + spread]; normal: standard deviation."""


class DatasetSpec(_Spec, frozen=True):
    kind: Literal["synthetic", "sharegpt", "shared-prefix"] = "synthetic"
    input_len: LengthDist = LengthDist(mean=128)
    """Prompt length in tokens (counted in words: one word is one token for the simulator)."""
    output_len: LengthDist | None = LengthDist(mean=128)
    """Output length sent as ``max_tokens`` (with ``ignore_eos``); None: ShareGPT's reply lengths."""
    path: str | None = None
    """ShareGPT-format JSON file (``[{"conversations": [{"from": "human", "value": ...}, ...]}]``)."""
    prefix_len: Annotated[int, msgspec.Meta(ge=0)] = 512
    """shared-prefix: words in each shared prefix (the unique suffix has ``input_len``)."""
    num_prefixes: Count = 4
    """shared-prefix: distinct prefixes, assigned round-robin."""
    seed: int = 0
    """Seeds prompts and lengths, so every target gets the same ones."""


class LoadShape(_Spec, frozen=True):
    concurrency: Count | None = None
    """Closed loop: this many requests in flight, the next sent as soon as one ends."""
    rate: Positive | None = None
    """Open loop: requests per second, sent on the schedule whatever the responses do."""
    arrival: Arrival = "poisson"
    burstiness: Positive = 1.0
    """Gamma shape factor: 1 is Poisson, below 1 burstier, above 1 more regular."""
    max_concurrency: Count | None = None
    """Open loop: the client never has more in flight (requests wait in the client: see TTFT_sched)."""


class Exclusion(_Spec, frozen=True):
    requests: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Requests (by schedule index) excluded at this end of the run."""
    seconds: NonNeg = 0.0
    """Scheduled seconds excluded at this end of the run."""


class SLO(_Spec, frozen=True):
    ttft_s: Positive | None = None
    tpot_s: Positive | None = None
    e2e_s: Positive | None = None


class BenchSpec(_Spec, frozen=True):
    targets: tuple[Target, ...]
    loads: tuple[LoadShape, ...]
    """One load shape, or several for a sweep (each is one point of the curves)."""
    dataset: DatasetSpec = DatasetSpec()
    num_requests: Count | None = None
    """Count bound: requests per load point (with warm-up and cool-down)."""
    duration_s: Positive | None = None
    """Duration bound: schedule seconds per load point."""
    warmup: Exclusion = Exclusion()
    cooldown: Exclusion = Exclusion()
    rounds: Count = 1
    """Each target runs each point this many times, the target order reversed every other round."""
    concurrent_targets: bool = False
    """Send every scheduled request to all targets at once instead of one target after another."""
    interleave: bool = False
    """Closed loop: each slot sends each request to every target in turn, one after another (the first target
    rotating with the request's index), so the targets share one run and whatever the engine drifts through,
    every target meets alike. For added latency measured in pairs (``BenchResult.paired``); each target's
    throughput is then its share of the shared run, not what it serves alone."""
    endpoint: Endpoint = "chat"
    ignore_eos: bool = True
    """Send ``ignore_eos: true`` (a top-level extra field vLLM, SGLang and lockgate accept)."""
    slo: SLO = SLO()
    seed: int = 0
    """Seeds the arrival schedule."""
    processes: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Client processes; 0 picks by the load (one per ~150 req/s or 200 in-flight, at most the cores)."""
    timeout_s: Positive = 600.0
    http_client: Literal["h1", "httpx"] = "h1"
    """``h1``: lockgate's lean HTTP/1.1 client (default, ~0.1 ms per request); ``httpx`` for proxies or HTTP/2."""
    tokenizer: str = "words"
    """Counts tokens when a response has no usage: ``words``, ``chars4`` or a ``tokenizer.json`` path."""
    scrape_metrics: bool = False
    """Fetch each target's ``/metrics`` before and after each run and keep the counters' deltas."""
    self_check: bool = True
    """Run the load against a zero-latency target first, to report the client's own overhead."""

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("at least one target is needed")
        if not self.loads:
            raise ValueError("at least one load shape is needed")
        for load in self.loads:
            if (load.concurrency is None) == (load.rate is None):
                raise ValueError("a load shape has either a concurrency (closed loop) or a rate (open loop)")
        if self.num_requests is None and self.duration_s is None:
            raise ValueError("bound the run with a request count or a duration")
        if self.interleave and self.concurrent_targets:
            raise ValueError("interleave sends a request's copies one after another, concurrent_targets at once: "
                             "choose one")
        if self.interleave and any(load.concurrency is None for load in self.loads):
            raise ValueError("interleave needs a closed loop (concurrency): an open loop's schedule fixes when "
                             "each copy is sent")
        labels = [t.name for t in self.targets]
        if len(set(labels)) != len(labels):
            raise ValueError(f"target labels must differ: {labels}")
