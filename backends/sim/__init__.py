"""``sim``: a simulated engine. It is a simulator, not an inference engine: it generates deterministic
filler text with configured latencies so lockgate can be tried and measured without a GPU."""

from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions

__all__ = ["SimBackend", "SimOptions"]
