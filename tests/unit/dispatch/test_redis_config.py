"""Redis dispatch settings: validated when loaded; the URL comes from the environment first."""

from __future__ import annotations

import pytest

from gateway.config.loader import ConfigError, parse_config
from gateway.config.redis_target import redis_url
from gateway.config.schema import DispatchConfig

BASE = """
[models.m]
backends = [{ backend = "sim" }]
[backends.sim]
kind = "sim"
[dispatch]
kind = "redis"
"""


def test_heartbeat_over_half_the_visibility_timeout_is_refused() -> None:
    with pytest.raises(ConfigError, match="heartbeat_interval_s"):
        parse_config(BASE + "visibility_timeout_s = 2\nheartbeat_interval_s = 1.5\n")


def test_local_start_without_packing_is_refused_as_it_would_never_apply() -> None:
    with pytest.raises(ConfigError, match=r"dispatch\.local.*pack >= 1"):
        parse_config(BASE + "local = true\npack = 0\n")
    assert parse_config(BASE + "local = true\n").dispatch.local  # with the default pack


def test_redis_settings_parse() -> None:
    config = parse_config(BASE + 'redis_url = "redis://r:6379/2"\npriority_bands = 3\n')
    assert config.dispatch.kind == "redis"
    assert config.dispatch.priority_bands == 3


def test_env_overrides_the_configured_url() -> None:
    config = DispatchConfig(kind="redis", redis_url="redis://config:6379/0")
    assert redis_url(config, {}) == "redis://config:6379/0"
    assert redis_url(config, {"LOCKGATE_REDIS_URL": "redis://env:6379/1"}) == "redis://env:6379/1"
