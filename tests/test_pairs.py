"""Point-in-time pair features on the tiny literal dataset."""

from __future__ import annotations

import pandas as pd
import pytest

from features.load import load_dataset
from features.pairs import (
    FEATURE_NAMES,
    PROTECTED_COLUMNS,
    build_pair_features,
    haversine_km,
    meeting_pairs,
    window_count,
)
from tests.conftest import tiny_tables, write_dataset
from tests.helpers import FEATURE_PARAMS, RULES


def test_window_count_is_half_open():
    ev_key = pd.Series(["a", "a", "a", "b"])
    ev_day = pd.to_datetime(pd.Series(["2023-01-01", "2023-06-01", "2023-12-31", "2023-06-01"]))
    q_key = pd.Series(["a", "a", "b", "c"])
    q_day = pd.to_datetime(pd.Series(["2023-12-31", "2024-01-01", "2023-06-01", "2023-06-01"]))
    # window [q - 365 d, q): 2023-12-31 itself is excluded for the first query, included for the second.
    assert window_count(ev_key, ev_day, q_key, q_day, 365).tolist() == [2, 3, 0, 0]


def test_haversine_amsterdam_scale():
    # Dam square to Amsterdam Centraal is about 0.9 km.
    assert haversine_km([52.3731], [4.8926], [52.3791], [4.9003])[0] == pytest.approx(0.85, abs=0.1)


def test_features_of_one_meeting(tiny_dir):
    ds = load_dataset(tiny_dir)
    pairs = meeting_pairs(ds, pd.Timestamp("2023-01-02"))
    assert len(pairs) == 2 * 3
    f = build_pair_features(ds, pairs, params=FEATURE_PARAMS, rules=RULES).set_index(["dwelling_id", "client_id"])
    assert list(f.columns[1:]) == list(FEATURE_NAMES)
    row = f.loc[("D002", "0002")]  # 3rd floor, no lift, rent 700, income 1800, household of 2
    assert row["floors_without_lift"] == 3 and row["stairs_x_physical"] == 3 * (5 - 2)
    assert row["rent_to_income"] == pytest.approx(700 / 1800)
    assert row["rent_cap_headroom_eur"] == pytest.approx(647.19 - 700)  # 2023 cap for 1-2 persons
    assert f.loc[("D001", "0001"), "network_in_district"] == 1  # client 0001's network is in Oost
    assert f.loc[("D001", "0001"), "quiet_need_x_units"] == 40
    # Nothing was placed before the first meeting.
    assert (f["recent_placements_complex"] == 0).all()


def test_history_counts_earlier_placements_only(tiny_dir):
    ds = load_dataset(tiny_dir)
    f = build_pair_features(ds, meeting_pairs(ds, pd.Timestamp("2023-01-09")), params=FEATURE_PARAMS, rules=RULES)
    # P2 (complex C2) was made a week earlier; D003 is in C2 too.
    assert f["recent_placements_complex"].tolist() == [1]
    assert f["recent_placements_neighbourhood"].tolist() == [1]


def test_point_in_time_invariance(tmp_path):
    """Appending later placements, ends and reports does not change an earlier meeting's features."""
    base = tiny_tables()
    ds = load_dataset(write_dataset(tmp_path / "a", base, as_of="2025-12-31"))
    meeting = pd.Timestamp("2023-01-09")
    before = build_pair_features(ds, meeting_pairs(ds, meeting), params=FEATURE_PARAMS, rules=RULES)

    later = tiny_tables()
    later["vacancies"] = pd.concat(
        [
            later["vacancies"],
            pd.DataFrame({"meeting_date": ["2023-01-09", "2023-03-06"], "dwelling_id": ["D001", "D002"]}),
        ],
        ignore_index=True,
    )
    later["candidates"] = pd.concat(
        [later["candidates"], pd.DataFrame({"meeting_date": ["2023-03-06"], "client_id": ["0001"]})], ignore_index=True
    )
    later["placements"] = pd.concat(
        [
            later["placements"],
            pd.DataFrame(
                {
                    "placement_id": ["P9"],
                    "client_id": ["0001"],
                    "dwelling_id": ["D002"],
                    "meeting_date": ["2023-03-06"],
                    "tenancy_start": ["2023-04-01"],
                }
            ),
        ],
        ignore_index=True,
    )
    later["tenancy_ends"] = pd.concat(
        [
            later["tenancy_ends"],
            pd.DataFrame(
                {
                    "placement_id": ["P9", "P3"],
                    "end_date": ["2023-05-01", "2023-03-01"],
                    "reason": ["eviction", "returned_to_care"],
                }
            ),
        ],
        ignore_index=True,
    )
    later["nuisance_reports"] = pd.concat(
        [
            later["nuisance_reports"],
            pd.DataFrame(
                {"report_id": ["R9"], "placement_id": ["P9"], "report_date": ["2023-04-15"], "severity": ["serious"]}
            ),
        ],
        ignore_index=True,
    )
    ds2 = load_dataset(write_dataset(tmp_path / "b", later, as_of="2025-12-31"))
    after = build_pair_features(ds2, meeting_pairs(ds2, meeting), params=FEATURE_PARAMS, rules=RULES)
    # The new vacancy at the same meeting adds pairs; the pairs that existed are unchanged.
    merged = before.merge(after, on=["meeting_date", "dwelling_id", "client_id"], suffixes=("_a", "_b"))
    assert len(merged) == len(before)
    for name in FEATURE_NAMES:
        assert (merged[f"{name}_a"] == merged[f"{name}_b"]).all(), name


def test_no_protected_attribute_is_a_feature(tiny_dir):
    ds = load_dataset(tiny_dir)
    f = build_pair_features(ds, meeting_pairs(ds, pd.Timestamp("2023-01-02")), params=FEATURE_PARAMS, rules=RULES)
    assert not set(f.columns) & set(PROTECTED_COLUMNS)
