"""Config loading: valid files parse; every error names the field and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, load_default_config, parse_config
from gateway.config.locate import locate, split_path

GOOD = """\
[server]
port = 9000

[limits]
max_queue_depth = 10

[models.tiny]
backends = [{ backend = "a", weight = 3 }, { backend = "b" }]

[backends.a]
kind = "sim"
options = { ttft_ms = 5 }

[backends.b]
kind = "sim"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="f.toml")
    return err.value.lines()


def test_valid_config_parses_with_defaults() -> None:
    cfg = parse_config(GOOD)
    assert cfg.server.port == 9000
    assert cfg.server.host == "127.0.0.1"
    assert cfg.limits.max_queue_depth == 10
    assert [(m.backend, m.weight) for m in cfg.models["tiny"].backends] == [("a", 3.0), ("b", 1.0)]
    assert cfg.dispatch.kind == "embedded"
    assert cfg.auth.enabled


def test_default_config_serves_one_sim_model_without_auth() -> None:
    cfg = load_default_config()
    assert list(cfg.models) == ["sim-small"]
    assert cfg.backends["sim"].kind == "sim"
    assert not cfg.auth.enabled


def test_toml_syntax_error_names_the_line() -> None:
    assert problems("[server]\nport = = 3\n")[0].startswith("f.toml:2: invalid TOML")


def test_wrong_type_names_field_and_line() -> None:
    lines = problems(GOOD.replace("max_queue_depth = 10", 'max_queue_depth = "ten"'))
    assert lines == ["f.toml:5: limits.max_queue_depth: Expected `int`, got `str`"]


def test_out_of_bounds_value() -> None:
    (line,) = problems(GOOD.replace("max_queue_depth = 10", "max_queue_depth = 0"))
    assert line.startswith("f.toml:5: limits.max_queue_depth: Expected `int` >= 1")


def test_unknown_field_is_rejected() -> None:
    (line,) = problems(GOOD.replace("port = 9000", "port = 9000\nprot = 1"))
    assert "server" in line
    assert "unknown field `prot`" in line.lower() or "prot" in line


def test_unknown_backend_reference() -> None:
    (line,) = problems(GOOD.replace('{ backend = "b" }', '{ backend = "c" }'))
    assert line.startswith("f.toml:8: models.tiny.backends[1].backend: unknown backend 'c'")


def test_unknown_kind_lists_installed_kinds() -> None:
    (line,) = problems(GOOD.replace('[backends.b]\nkind = "sim"', '[backends.b]\nkind = "nonesuch"'))
    assert line.startswith("f.toml:15: backends.b.kind: unknown backend kind 'nonesuch'")
    assert "sim" in line


def test_plugin_options_are_validated_against_the_plugin_schema() -> None:
    (line,) = problems(GOOD.replace("options = { ttft_ms = 5 }", "options = { ttft_ms = -5 }"))
    assert line.startswith("f.toml:12: backends.a.options.ttft_ms: Expected `float` >= 0")
    (typo,) = problems(GOOD.replace("options = { ttft_ms = 5 }", "options = { tfft_ms = 5 }"))
    assert "backends.a.options" in typo
    assert "tfft_ms" in typo


def test_all_zero_weights_and_output_over_context() -> None:
    lines = problems(GOOD.replace("weight = 3 }, { backend = \"b\" }", "weight = 0 }, { backend = \"b\", weight = 0 }")
                     .replace("[models.tiny]\n", "[models.tiny]\nmax_context = 100\nmax_output_tokens = 200\n"))
    assert any("models.tiny.backends: at least one backend needs a weight above 0" in x for x in lines)
    assert any("models.tiny.max_output_tokens: cannot exceed max_context" in x for x in lines)


def test_missing_required_section() -> None:
    (line,) = problems("[backends.a]\nkind = 'sim'\n")
    assert "models" in line


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "nope.toml")
    assert "cannot read" in str(err.value)


def test_locate_finds_inline_and_dotted_keys() -> None:
    text = '[a]\nx = 1\n[b.c]\nd.e = { f = 2 }\n["q.r"]\ns = 3\n'
    assert locate(text, split_path("$.a.x")) == 2
    assert locate(text, split_path("$.b.c.d.e.f")) == 4
    assert locate(text, ["q.r", "s"]) == 6
    assert locate(text, ["zzz"]) is None
