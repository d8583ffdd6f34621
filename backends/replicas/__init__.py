"""Protocol replicas: the simulated engine served over HTTP, speaking vLLM's, SGLang's or TensorRT-LLM's wire
protocol byte for byte. They are replicas of the *protocols* for tests, benchmarks and demos, not engines: the
text is the simulator's deterministic filler and the latencies are configured."""

from backends.replicas.app import ReplicaApp, build_replica

__all__ = ["ReplicaApp", "build_replica"]
