"""The protected-name guard: no model feature or tracked parameter may name a protected attribute."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from features.errors import UserError
from features.pairs import PROTECTED_COLUMNS
from models.bundle import ModelBundle

ERR_PROTECTED_FEATURE = "the model uses protected attribute(s) as features: {names}"


# Words that must never name a model feature or a tracked parameter (see `find_protected`).
SENSITIVE_WORDS = ("gender", "sex", "age", "birth", "migration", "nationality", "ethnicity", "religion")


class ProtectedAttributeError(UserError):
    """A protected attribute shows up where it must not (model features, tracked parameters)."""


def _identifiers(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:_[a-z0-9]+)*", text.lower())


def find_protected(names) -> list[str]:
    """The names (features, parameter keys or values) that name a protected attribute.

    A name is protected when one of its identifiers is a protected column
    (`features.pairs.PROTECTED_COLUMNS`) or contains a sensitive word as one of its
    `_`-separated parts (`gender_x_income`, `mean_age`), never by mere substring
    (`average`, `coverage` are fine).
    """
    hits = []
    for name in names:
        for ident in _identifiers(str(name)):
            parts = ident.split("_")
            if (
                ident in PROTECTED_COLUMNS
                or any(c in ident for c in PROTECTED_COLUMNS if "_" in c)
                or set(parts) & set(SENSITIVE_WORDS)
            ):
                hits.append(str(name))
                break
    return hits


def _is_path_key(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return last in ("path", "sha256", "dir", "store") or last.endswith(("_path", "_dir", "_file"))


def _flatten(prefix: str, value: Any, out: list[str]) -> list[str]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.append(key)
            if not _is_path_key(key):  # the user's folders and files are theirs to name
                _flatten(key, v, out)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            _flatten(prefix, v, out)
    elif isinstance(value, str):
        out.append(value)
    return out


def assert_no_protected(params: Mapping[str, Any]) -> None:
    """Raise ProtectedAttributeError if any key or text value of `params` (nested) names a protected attribute.

    Values of path keys (`data.path`, `*_dir`, `*_file`) are not examined: a dataset in a
    folder called `migration_2025` is fine, a feature or parameter called `migration` is not.

    Meant for the parameters the trainer logs to MLflow (and any other metadata
    that travels with a model).
    """
    hits = find_protected(_flatten("", params, []))
    if hits:
        raise ProtectedAttributeError("protected attribute in tracked parameters: " + ", ".join(sorted(set(hits))))


def assert_no_protected_features(bundle: ModelBundle) -> None:
    """Raise ProtectedAttributeError if the model's features include a protected attribute."""
    hits = find_protected(bundle.feature_names)
    if hits:
        raise ProtectedAttributeError(ERR_PROTECTED_FEATURE.format(names=", ".join(hits)))
