"""Every config in examples/ passes `lockgate config check` (documentation that is run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_is_valid(path: Path) -> None:
    config = load_config(path)
    assert config.models
