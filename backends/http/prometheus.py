"""Just enough of the Prometheus text format to read an engine's gauges."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

import msgspec

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Sample(msgspec.Struct, frozen=True):
    name: str
    labels: dict[str, str]
    value: float


def parse_samples(text: str) -> list[Sample]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            value = float(m.group("value"))
        except ValueError:
            continue
        labels = dict(_LABEL.findall(m.group("labels") or ""))
        out.append(Sample(m.group("name"), labels, value))
    return out


def values(samples: Iterable[Sample], name: str, match: Mapping[str, str] | None = None) -> list[float]:
    """The values of ``name`` (NaN left out) whose labels agree with ``match`` where they have those labels."""
    return [s.value for s in samples if s.name == name and not math.isnan(s.value)
            and all(s.labels.get(k, v) == v for k, v in (match or {}).items())]


def total(samples: Iterable[Sample], names: Iterable[str], match: Mapping[str, str] | None = None) -> float | None:
    """Sum of the first of ``names`` present (engines rename metrics between versions), filtered by labels."""
    samples = list(samples)
    for name in names:
        found = values(samples, name, match)
        if found:
            return sum(found)
    return None
