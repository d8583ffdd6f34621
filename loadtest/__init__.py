"""``lockgate bench``: replay one seeded load against several OpenAI-compatible targets and compare them."""

from loadtest.bench import BenchResult, run_bench
from loadtest.config import SLO, BenchSpec, DatasetSpec, Exclusion, LengthDist, LoadShape, Target
from loadtest.metrics import RequestMetrics, derive
from loadtest.paired import PairedDiff, PairedStat
from loadtest.record import RequestRecord
from loadtest.selfcheck import SelfCheck
from loadtest.summary import PointSummary

__all__ = [
    "SLO",
    "BenchResult",
    "BenchSpec",
    "DatasetSpec",
    "Exclusion",
    "LengthDist",
    "LoadShape",
    "PairedDiff",
    "PairedStat",
    "PointSummary",
    "RequestMetrics",
    "RequestRecord",
    "SelfCheck",
    "Target",
    "derive",
    "run_bench",
]
