"""Config builders for tests: real TOML text through the real loader."""

from __future__ import annotations

from typing import Any

from gateway.config import Config, parse_config


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def sim_config_text(
    *,
    backends: dict[str, dict[str, Any]] | None = None,
    models: dict[str, list[tuple[str, float]]] | None = None,
    limits: dict[str, Any] | None = None,
    auth_keys: list[tuple[str, str]] | None = None,
    server: dict[str, Any] | None = None,
    routing: dict[str, Any] | None = None,
    tenants: dict[str, Any] | None = None,
    admin_keys: list[tuple[str, str]] | None = None,
    max_output_tokens: int = 512,
    max_context: int = 8192,
) -> str:
    backends = backends if backends is not None else {"sim": {"ttft_ms": 5, "tpot_ms": 1}}
    models = models if models is not None else {"sim-small": [(name, 1.0) for name in backends]}
    lines = []
    for section, values in (("server", server), ("limits", limits), ("routing", routing), ("tenants", tenants)):
        if values:
            lines.append(f"[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    lines.append("[auth]")
    lines.append(f"enabled = {toml_value(auth_keys is not None)}")
    for name, digest in auth_keys or []:
        lines += ["[[auth.keys]]", f"name = {toml_value(name)}", f"sha256 = {toml_value(digest)}"]
    for name, digest in admin_keys or []:
        lines += ["[[auth.admin_keys]]", f"name = {toml_value(name)}", f"sha256 = {toml_value(digest)}"]
    for model, members in models.items():
        lines.append(f"[models.{model}]")
        lines.append(f"max_output_tokens = {max_output_tokens}")
        lines.append(f"max_context = {max_context}")
        lines.append("backends = [" + ", ".join(f'{{ backend = "{b}", weight = {w} }}' for b, w in members) + "]")
    for name, options in backends.items():
        lines += [f"[backends.{name}]", 'kind = "sim"', f"options = {toml_value(options)}"]
    return "\n".join(lines) + "\n"


def sim_config(**kwargs: Any) -> Config:
    return parse_config(sim_config_text(**kwargs), source="<test>")
