"""Finds adapter plugins through the ``lockgate.backends`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import msgspec
from opentelemetry.trace import Tracer

from backends.protocol import Backend, BackendPlugin, Traced

ENTRY_POINT_GROUP = "lockgate.backends"


class UnknownBackendKind(LookupError):
    def __init__(self, kind: str, known: list[str]) -> None:
        super().__init__(f"unknown backend kind {kind!r}; installed kinds: {', '.join(sorted(known)) or 'none'}")
        self.kind = kind
        self.known = known


class PluginRegistry:
    """Plugins by kind. Built from entry points, or from an explicit mapping in tests and embedders."""

    def __init__(self, plugins: dict[str, BackendPlugin]) -> None:
        self._plugins = dict(plugins)

    @classmethod
    def discover(cls) -> PluginRegistry:
        found: dict[str, BackendPlugin] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            plugin = ep.load()
            if not isinstance(plugin, BackendPlugin):
                raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a lockgate BackendPlugin")
            found[ep.name] = plugin
        return cls(found)

    def kinds(self) -> list[str]:
        return sorted(self._plugins)

    def get(self, kind: str) -> BackendPlugin:
        try:
            return self._plugins[kind]
        except KeyError:
            raise UnknownBackendKind(kind, self.kinds()) from None

    def convert_options(self, kind: str, options: dict[str, Any]) -> msgspec.Struct:
        """Raises UnknownBackendKind or msgspec.ValidationError (with a ``$.field`` path)."""
        plugin = self.get(kind)
        return msgspec.convert(options, plugin.options_type, strict=True)

    def create(self, name: str, kind: str, options: dict[str, Any]) -> Backend:
        return self.get(kind).create(name, self.convert_options(kind, options))

    def build(self, specs: dict[str, tuple[str, dict[str, Any]]], tracer: Tracer | None = None) -> dict[str, Backend]:
        """Backends by name from ``{name: (kind, options)}``; those that trace their own calls get ``tracer``.
        Every process that hosts backends (``serve``, ``worker``) builds them here, so none is missed."""
        backends = {name: self.create(name, kind, options) for name, (kind, options) in specs.items()}
        if tracer is not None:
            for backend in backends.values():
                if isinstance(backend, Traced):
                    backend.use_tracer(tracer)
        return backends
