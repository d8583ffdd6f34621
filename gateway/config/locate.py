"""Maps a config field path (``$.models.m.backends[0].weight``) to the TOML line that sets it."""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = r'(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_\-]+)'
_ASSIGN = re.compile(rf"^\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=")
_PART = re.compile(r'"([^"]*)"|\'([^\']*)\'|([A-Za-z0-9_\-]+)')


def _keys(dotted: str) -> list[str]:
    return [a or b or c for a, b, c in _PART.findall(dotted)]


def split_path(path: str) -> list[str]:
    """``$.models.m.backends[0].weight`` -> ["models", "m", "backends", "weight"] (indexes dropped)."""
    path = re.sub(r"\[\d+\]", "", path.removeprefix("$").lstrip("."))
    return [p for p in path.split(".") if p]


def locate(text: str, path: list[str]) -> int | None:
    """1-based line of the deepest key on ``path`` that the file sets, or None."""
    best: tuple[int, int] | None = None  # (matched depth, line)
    table: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _keys(header.group(1))
            full = table
        else:
            assign = _ASSIGN.match(line)
            if not assign:
                continue
            full = table + _keys(assign.group(1))
        depth = 0
        for a, b in zip(full, path, strict=False):
            if a != b:
                break
            depth += 1
        if depth == len(full) and depth and (best is None or depth > best[0]):
            best = (depth, lineno)
    return best[1] if best else None
