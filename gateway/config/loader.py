"""Loads and validates a config file, explaining every error with its field and line."""

from __future__ import annotations

import re
import tomllib
from importlib.resources import files
from pathlib import Path

import msgspec

from backends.registry import PluginRegistry, UnknownBackendKind
from gateway.config.locate import locate, split_path
from gateway.config.redis_target import RedisTargetError
from gateway.config.redis_target import resolve as resolve_redis_target
from gateway.config.schema import BackendConfig, Config, ModelConfig


class ConfigError(ValueError):
    """A config problem, with where it is. ``str()`` gives ``FILE:LINE: field: message`` lines."""

    def __init__(self, problems: list[tuple[str, str, int | None]], source: str) -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        out = []
        for field, message, line in self.problems:
            where = f"{self.source}:{line}" if line else self.source
            out.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        return out


_TOML_POS = re.compile(r"\(at line (\d+), column \d+\)")
_MSGSPEC_PATH = re.compile(r" - at `(\$[^`]*)`$")


def parse_config(text: str, *, source: str = "<config>", registry: PluginRegistry | None = None) -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POS.search(str(exc))
        raise ConfigError([("", f"invalid TOML: {exc}", int(m.group(1)) if m else None)], source) from None
    # msgspec writes dict keys as ``[...]`` in error paths, so named tables are checked entry by entry first.
    for section, entry_type in (("models", ModelConfig), ("backends", BackendConfig)):
        entries = raw.get(section)
        if isinstance(entries, dict):
            for key, entry in entries.items():
                try:
                    msgspec.convert(entry, entry_type, strict=True)
                except msgspec.ValidationError as exc:
                    raise _field_error(str(exc), text, source, prefix=f".{section}.{key}") from None
    try:
        config = msgspec.convert(raw, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise _field_error(str(exc), text, source) from None
    problems = _check(config, registry or PluginRegistry.discover())
    if problems:
        raise ConfigError([(f, msg, locate(text, split_path(f))) for f, msg in problems], source)
    return config


def _field_error(message: str, text: str, source: str, prefix: str = "") -> ConfigError:
    m = _MSGSPEC_PATH.search(message)
    path = prefix + (m.group(1).removeprefix("$") if m else "")
    field = path.lstrip(".")
    msg = message[: m.start()] if m else message
    return ConfigError([(field, msg, locate(text, split_path(path)))], source)


def _check(config: Config, registry: PluginRegistry) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not config.models:
        problems.append(("models", "at least one model is required"))
    for name, model in config.models.items():
        if not model.backends:
            problems.append((f"models.{name}.backends", "a model needs at least one backend"))
        for i, member in enumerate(model.backends):
            if member.backend not in config.backends:
                problems.append((f"models.{name}.backends[{i}].backend",
                                 f"unknown backend {member.backend!r}; defined: {', '.join(sorted(config.backends))}"))
        if model.backends and not any(m.weight > 0 for m in model.backends):
            problems.append((f"models.{name}.backends", "at least one backend needs a weight above 0"))
        if model.max_output_tokens > model.max_context:
            problems.append((f"models.{name}.max_output_tokens", "cannot exceed max_context"))
    seen: set[str] = set()
    for i, key in enumerate(config.auth.keys):
        key_id = key.id or key.name
        if key_id in seen:
            problems.append((f"auth.keys[{i}].id", f"key id {key_id!r} is used twice (the id defaults to the name)"))
        seen.add(key_id)
        for model_name in key.models:
            if model_name not in config.models:
                problems.append((f"auth.keys[{i}].models", f"unknown model {model_name!r}"))
    if config.tenants.keys_file is not None:
        # Imported here: the key records import the schema, whose package imports this module.
        from gateway.tenants.store import FileKeyStore

        try:
            FileKeyStore(config.tenants.keys_file)
        except ValueError as exc:
            problems.append(("tenants.keys_file", str(exc)))
    d = config.dispatch
    if d.heartbeat_interval_s * 2 > d.visibility_timeout_s:
        problems.append(("dispatch.heartbeat_interval_s",
                         "must be at most half of visibility_timeout_s, or live workers' jobs get reclaimed"))
    if d.local and not d.pack:
        # With pack = 0 an idle worker's blocked take asks for every free slot, so none is left to start locally.
        problems.append(("dispatch.local", "needs dispatch.pack >= 1 (a local start uses the slots a waiting "
                                           "take has not asked for; with pack = 0 it asks for all of them)"))
    try:
        resolve_redis_target(d, environ={})  # the file alone; LOCKGATE_REDIS_URL is the operator's business
    except RedisTargetError as exc:
        problems.append((exc.field, str(exc).removeprefix(f"{exc.field}: ")))
    for name in config.backends:
        if "{" in name or "}" in name:
            # Backend names become Redis Cluster hash tags ({name}): a brace would split a backend's keys
            # over several slots.
            problems.append((f"backends.{name}", "a backend name cannot contain { or }"))
    for name, backend in config.backends.items():
        try:
            registry.convert_options(backend.kind, backend.options)
        except UnknownBackendKind as exc:
            problems.append((f"backends.{name}.kind", str(exc)))
        except msgspec.ValidationError as exc:
            m = _MSGSPEC_PATH.search(str(exc))
            sub = m.group(1).removeprefix("$") if m else ""
            msg = str(exc)[: m.start()] if m else str(exc)
            problems.append((f"backends.{name}.options{sub}", msg))
    return problems


def load_config(path: str | Path, registry: PluginRegistry | None = None) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read: {exc.strerror}", None)], str(p)) from None
    return parse_config(text, source=str(p), registry=registry)


def default_config_text() -> str:
    return files("gateway.config").joinpath("default.toml").read_text(encoding="utf-8")


def load_default_config(registry: PluginRegistry | None = None) -> Config:
    return parse_config(default_config_text(), source="<built-in default>", registry=registry)
