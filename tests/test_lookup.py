"""features/lookup.py and the lookups built on it: the same rows as a join or a reindex, the same errors."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from features import lookup
from features.pairs import FEATURE_NAMES, EventDays, build_pair_features, meeting_pairs, window_count
from features.profiles import clients_as_of
from tests.test_pairs import FEATURE_PARAMS, RULES


@pytest.fixture
def homes() -> pd.DataFrame:
    return pd.DataFrame(
        {"dwelling_id": ["h2", "h1", "h3"], "rent_eur": [700.0, 650.0, 800.0], "lift": [True, False, True]}
    )


def test_rows_by_key_equals_reindex_with_known_unknown_and_missing_ids(homes):
    index = pd.Index([10, 11, 12, 13])
    for ids in (["h1", "h1", "h3", "h2"], ["h1", "h9", None, "h2"]):
        got = lookup.rows_by_key(homes, "dwelling_id", np.array(ids, dtype=object), index)
        want = homes.set_index("dwelling_id", drop=False).reindex(np.array(ids, dtype=object))
        want.index = index
        pd.testing.assert_frame_equal(got, want)
    assert lookup.positions(homes, "dwelling_id", ["h3", "h2"]).tolist() == [2, 0]
    assert lookup.positions(homes, "dwelling_id", ["h3", "h9"]) is None  # the general path decides


def test_a_duplicate_id_keeps_the_reindex_error(homes):
    twice = pd.concat([homes, homes.iloc[[0]]], ignore_index=True)
    assert lookup.positions(twice, "dwelling_id", ["h1"]) is None
    with pytest.raises(ValueError, match="duplicate"):
        lookup.rows_by_key(twice, "dwelling_id", np.array(["h1"], dtype=object), pd.Index([0]))


def test_the_index_is_made_once_per_table_and_afresh_for_another(homes):
    first = lookup.key_index(homes, "dwelling_id")
    assert lookup.key_index(homes, "dwelling_id") is first
    other = homes.assign(dwelling_id=["x", "y", "z"])
    assert lookup.key_index(other, "dwelling_id").tolist() == ["x", "y", "z"]
    longer = pd.concat([homes, homes.assign(dwelling_id=["a", "b", "c"])], ignore_index=True)
    assert len(lookup.key_index(longer, "dwelling_id")) == 6
    del other, longer
    gc.collect()
    lookup.key_index(homes, "rent_eur")  # a new entry prunes the entries of tables that are gone
    assert all(ref() is not None for ref, _, _ in lookup._INDEXES.values())


def test_event_days_counts_missing_keys_together_and_unknown_keys_as_none():
    ev_key = pd.Series(["a", None, None, "b"], dtype=object)
    ev_day = pd.to_datetime(pd.Series(["2023-01-01", "2023-02-01", "2023-03-01", "2023-03-01"]))
    q_key = pd.Series(["a", None, "zz", "b"], dtype=object)
    q_day = pd.to_datetime(pd.Series(["2023-06-01"] * 4))
    counts = EventDays(ev_key, ev_day)
    assert counts.count(q_key, q_day, 365).tolist() == [1, 2, 0, 1]
    assert counts.count(q_key, q_day, 365).tolist() == window_count(ev_key, ev_day, q_key, q_day, 365).tolist()
    empty = EventDays(pd.Series([], dtype=object), pd.Series([], dtype="datetime64[ns]"))
    assert empty.count(q_key, q_day, 365).tolist() == [0, 0, 0, 0]


def test_pair_features_and_profiles_for_a_home_not_in_the_dataset_take_the_join(tiny_dir):
    """A pair whose home is unknown gets the merge's missing values (the general path), known pairs are unchanged."""
    from features.load import load_dataset

    ds = load_dataset(tiny_dir)
    pairs = meeting_pairs(ds, pd.Timestamp("2023-01-09"))
    known = build_pair_features(ds, pairs, params=FEATURE_PARAMS, rules=RULES)
    odd = pd.concat([pairs, pairs.iloc[[0]].assign(dwelling_id="nowhere")], ignore_index=True)
    feats = build_pair_features(ds, odd, params=FEATURE_PARAMS, rules=RULES)
    pd.testing.assert_frame_equal(feats.iloc[: len(pairs)][list(FEATURE_NAMES)], known[list(FEATURE_NAMES)])
    assert np.isnan(feats.iloc[-1]["rent_eur"]) and feats.iloc[-1]["zrm_finances"] == known.iloc[0]["zrm_finances"]
    profiles = clients_as_of(ds, odd.assign(client_id=[*pairs["client_id"], "nobody"]))
    assert profiles["client_id"].iloc[:-1].tolist() == pairs["client_id"].tolist()
    assert profiles.iloc[-1].isna().all()
