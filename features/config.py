"""params.yaml, loaded once into frozen dataclasses, typed and checked.

Each library module declares the dataclass of its own section; `section()` fills
it from the loaded mapping. One schema: the dataclasses themselves, validated
with pydantic v2 (`TypeAdapter`); ranges are `typing.Annotated[..., Field(ge=1)]`
on the fields. Every missing or unknown key, wrong type or out-of-range value
becomes a named message such as
`params: explain.top_reasons must be a whole number ≥ 1, got 'three'`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from features.errors import UserError

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"
MAX_SHOWN = 80  # characters of a bad value echoed in a message
MAX_PARAMS_BYTES = 10 * 1024 * 1024


class ConfigError(UserError):
    """params.yaml is missing, unreadable, or a section does not fit its dataclass."""


class TextLoader(yaml.SafeLoader):
    """PyYAML's safe loader without the implicit timestamp type: dates stay text, checked by whoever reads them."""


TextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def shorten(value: Any, limit: int = MAX_SHOWN) -> str:
    """repr of `value`, cut to about `limit` characters with the full length said."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}… ({len(text):,} characters)"


def read_yaml(path: Path, what: str, error: type[UserError] = UserError, max_bytes: int = MAX_PARAMS_BYTES) -> Any:
    """Parse a small YAML file (dates kept as text); unreadable, oversized, non-UTF-8 or bad YAML is a named error."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{what} {path} is {size:,} bytes, more than the {max_bytes:,} allowed")
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {path} is not UTF-8 text: byte {raw[exc.start : exc.start + 1]!r} at position {exc.start}"
        ) from None
    try:
        return yaml.load(text, Loader=TextLoader)
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {str(exc)[:300]}") from None


def load_params(path: str | Path | None = None) -> dict[str, Any]:
    """Read params.yaml: the given path, else ./params.yaml, else the project's own."""
    if path is None:
        path = Path("params.yaml") if Path("params.yaml").is_file() else DEFAULT_PARAMS
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} does not exist")
    params = read_yaml(path, "params file", ConfigError)
    if not isinstance(params, dict):
        raise ConfigError(f"params file {path} must be a mapping of sections")
    return params


def build(cls: type[T], values: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, naming missing or unknown keys, wrong types and ranges."""
    _check_keys(cls, values, where)
    try:
        return _adapter(cls).validate_python(values)  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        raise ConfigError(_describe(cls, exc, where)) from None


@functools.cache
def _adapter(cls: type) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(cls)


def _strip(hint: Any) -> tuple[Any, list[Any]]:
    """The bare type of an Annotated hint and its metadata."""
    meta: list[Any] = []
    while typing.get_origin(hint) is typing.Annotated:
        args = typing.get_args(hint)
        hint, meta = args[0], [*meta, *args[1:]]
    return hint, meta


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _check_keys(cls: type, values: Any, where: str) -> None:
    """Missing and unknown keys, section by section (pydantic ignores extra keys of plain dataclasses)."""
    if not isinstance(values, dict):
        raise ConfigError(f"params: {where} must be a mapping of keys, got {shorten(values)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(values) - set(fields))
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
    hints = _hints(cls)
    for name, value in values.items():
        _check_nested(hints[name], value, f"{where}.{name}")


def _check_nested(hint: Any, value: Any, where: str) -> None:
    hint, _ = _strip(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        _check_keys(hint, value, where)
        return
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        for i, v in enumerate(value):
            inner = args[0] if args and (len(args) == 2 and args[1] is Ellipsis) else args[i] if i < len(args) else Any
            _check_nested(inner, v, f"{where}[{i}]")
    elif origin is dict and isinstance(value, dict):
        args = typing.get_args(hint)
        for k, v in value.items():
            _check_nested(args[1] if args else Any, v, f"{where}.{k}")


_KIND = {
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    str: "text",
}


def _expectation(hint: Any) -> str:
    """Words for what a field holds, with its range: `a whole number ≥ 1`."""
    bare, meta = _strip(hint)
    origin = typing.get_origin(bare)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(bare) if a is not type(None)]
        text = " or ".join(_expectation(a) for a in options)
        return text + (" or empty" if len(options) < len(typing.get_args(bare)) else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(bare))
    if origin is tuple:
        args = typing.get_args(bare)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)} values ({', '.join(_expectation(a) for a in args)})"
    if origin is dict:
        args = typing.get_args(bare)
        return f"a mapping to {_plural(args[1])}" if args else "a mapping"
    if isinstance(bare, type) and dataclasses.is_dataclass(bare):
        return "a mapping of keys"
    text = _KIND.get(bare, getattr(bare, "__name__", str(bare)))
    for m in meta:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            for item in getattr(m, "metadata", [m]):
                bound = getattr(item, attr, None)
                if bound is not None:
                    text += f" {sign} {bound}"
    return text


def _plural(hint: Any) -> str:
    words = _expectation(hint)
    for one, many in (("a whole number", "whole numbers"), ("a number", "numbers"), ("a mapping", "mappings")):
        if words.startswith(one):
            return many + words[len(one) :]
    return words


def _hint_at(cls: type, loc: tuple) -> Any:
    """The type hint at a pydantic error location inside dataclass `cls`."""
    hint: Any = cls
    for part in loc:
        bare, _ = _strip(hint)
        if isinstance(bare, type) and dataclasses.is_dataclass(bare):
            hints = _hints(bare)
            if part not in hints:
                return None
            hint = hints[part]
            continue
        origin = typing.get_origin(bare)
        args = typing.get_args(bare)
        if origin is tuple and isinstance(part, int):
            hint = args[0] if len(args) == 2 and args[1] is Ellipsis else args[part] if part < len(args) else Any
        elif origin is dict:
            hint = args[1] if args else Any
        elif origin in (typing.Union, types.UnionType):
            continue  # pydantic names the union member tried: skip it
        else:
            return hint
    return hint


def _describe(cls: type, exc: pydantic.ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "lax-"))))
        name = where + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        hint = _hint_at(cls, tuple(err["loc"]))
        value = err.get("input")
        if hint is None or err["type"] in ("value_error", "assertion_error"):
            lines.append(f"params: {name}: {err['msg']}, got {shorten(value)}")
        else:
            lines.append(f"params: {name} must be {_expectation(hint)}, got {shorten(value)}")
    lines = list(dict.fromkeys(lines))
    return "\n".join(lines) if len(lines) > 1 else lines[0]


def is_finite_number(value: Any) -> bool:
    """True for an int or a finite float (not bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def section(params: dict[str, Any], name: str, cls: type[T]) -> T:
    """The named top-level section of params.yaml as dataclass `cls`."""
    if name not in params:
        raise ConfigError(f"params: section `{name}` is missing")
    return build(cls, params[name], name)
