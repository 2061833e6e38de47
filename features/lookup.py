"""Rows of a dataset table by id, with the table's ids indexed once (not a join against the whole table per call).

Pair features, eligibility and client profiles look up a home or a client for every pair.
At country scale (299,000 homes and 134,000 clients at 20 regions) a `merge` or a
`set_index(...).reindex(...)` hashes the whole table on every call, however few pairs the
call has: the oracle comparison and the fairness gate make a hundred such calls. The index of
a table's id column is built once per table object and kept while the table lives (a
dataset's tables are validated once and never changed in place; a new table gets a new index).
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

_INDEXES: dict[tuple[int, str], tuple[weakref.ref[pd.DataFrame], int, pd.Index]] = {}


def key_index(table: pd.DataFrame, key: str) -> pd.Index:
    """`table[key]` as an Index, made once per table object and column (and afresh if the table's length changed)."""
    rows = len(table)
    entry = _INDEXES.get((id(table), key))
    if entry is not None and entry[0]() is table and entry[1] == rows:
        return entry[2]
    for stale in [k for k, (ref, _, _) in _INDEXES.items() if ref() is None]:
        del _INDEXES[stale]
    index = pd.Index(table[key])
    _INDEXES[id(table), key] = (weakref.ref(table), rows, index)
    return index


def positions(table: pd.DataFrame, key: str, ids) -> np.ndarray | None:
    """The row position in `table` of each of `ids` (by `table[key]`), or None unless every id is there exactly once.

    None tells the caller to take its general path (a join or a reindex), which keeps that
    path's handling of unknown ids and its error for duplicate ones.
    """
    index = key_index(table, key)
    if not index.is_unique:
        return None
    at = index.get_indexer(ids)
    return at if (at >= 0).all() else None


def rows_by_key(table: pd.DataFrame, key: str, ids, index: pd.Index) -> pd.DataFrame:
    """The row of `table` for each of `ids`, with `index`: `table.set_index(key, drop=False).reindex(ids)` in value.

    Ids not in the table give rows of missing values, as the reindex does; an id that is in
    the table more than once raises pandas' reindex error, as the reindex does.
    """
    at = positions(table, key, ids)
    if at is None:
        out = table.set_index(key, drop=False).reindex(ids)
    else:
        out = table.take(at)
    out.index = index
    return out
