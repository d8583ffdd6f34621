"""The three HTTP kinds are installed plugins whose options are checked by `lockgate config check`."""

from __future__ import annotations

import pytest

from backends.registry import PluginRegistry
from backends.sglang import SglangBackend
from backends.trtllm import TrtllmBackend
from backends.vllm import VllmBackend
from gateway.config import parse_config
from gateway.config.loader import ConfigError


def config(kind: str, options: str) -> str:
    return f"""
[auth]
enabled = false
[models.m]
backends = [{{ backend = "b" }}]
[backends.b]
kind = "{kind}"
options = {{ {options} }}
"""


@pytest.mark.parametrize(("kind", "cls"), [("vllm", VllmBackend), ("sglang", SglangBackend),
                                           ("trtllm", TrtllmBackend)])
def test_kind_is_selectable_in_the_config(kind: str, cls: type) -> None:
    cfg = parse_config(config(kind, 'url = "http://10.0.0.5:8000", model = "m"'))
    backend = PluginRegistry.discover().create("b", cfg.backends["b"].kind, cfg.backends["b"].options)
    assert isinstance(backend, cls)


def test_unknown_option_is_refused_with_its_name_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config("vllm", 'url = "http://e:1", colour = "red"'), source="x.toml")
    assert "colour" in str(info.value)
    assert "x.toml:" in str(info.value)


def test_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="url"):
        parse_config(config("sglang", 'url = "file:///etc/passwd"'))


def test_protocol_variant_is_checked() -> None:
    with pytest.raises(ConfigError, match="protocol"):
        parse_config(config("trtllm", 'url = "http://e:1", protocol = "grpc"'))
