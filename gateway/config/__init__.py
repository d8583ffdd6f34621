"""The configuration schema and its loader."""

from gateway.config.loader import ConfigError, load_config, load_default_config, parse_config
from gateway.config.schema import Config

__all__ = ["Config", "ConfigError", "load_config", "load_default_config", "parse_config"]
