"""params.yaml, loaded once into frozen dataclasses.

Each library module declares the dataclass of its own section; `section()` fills
it from the loaded mapping and names any missing or unknown key. Nested
dataclasses (and tuples/dicts of plain values) are supported.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from features.errors import UserError

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"


class ConfigError(UserError):
    """params.yaml is missing, unreadable, or a section does not fit its dataclass."""


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """Read params.yaml: the given path, else ./params.yaml, else the project's own."""
    if path is None:
        path = Path("params.yaml") if Path("params.yaml").is_file() else DEFAULT_PARAMS
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} does not exist")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"params file {path} is not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"params file {path} must be a mapping of sections")
    return params


def build(cls: type[T], values: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, naming missing or unknown keys."""
    if not isinstance(values, dict):
        raise ConfigError(f"params: {where} must be a mapping, found {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    required = {
        n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(values))
    if unknown or missing:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing))
        if unknown:
            parts.append("unknown " + ", ".join(unknown))
        raise ConfigError(f"params: {where}: " + "; ".join(parts))
    hints = typing.get_type_hints(cls)
    kwargs = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in values.items()}
    return cls(**kwargs)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict and isinstance(value, dict):
        _, inner = typing.get_args(hint) or (Any, Any)
        return {k: _convert(inner, v, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def section(params: dict[str, Any], name: str, cls: type[T]) -> T:
    """The named top-level section of params.yaml as dataclass `cls`."""
    if name not in params:
        raise ConfigError(f"params: section `{name}` is missing")
    return build(cls, params[name], name)
