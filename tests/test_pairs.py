"""Point-in-time pair features on the tiny literal dataset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.config import section
from features.contract import PROFILE_COLUMNS
from features.load import load_dataset
from features.pairs import (
    FEATURE_NAMES,
    PROTECTED_COLUMNS,
    build_pair_features,
    haversine_km,
    meeting_pairs,
    window_count,
)
from planning.eligibility import EligibilityParams, apply_eligibility
from tests.conftest import tiny_tables, write_dataset
from tests.helpers import FEATURE_PARAMS, PARAMS, RULES


def profile_rows(*rows: tuple[str, str, dict]) -> pd.DataFrame:
    """client_profiles rows: (client_id, valid_from, changes to the client's profile in tiny_tables)."""
    clients = tiny_tables()["clients"].set_index("client_id")
    out = []
    for client_id, valid_from, changes in rows:
        profile = {c: clients.at[client_id, c] for c in PROFILE_COLUMNS}
        out.append({"client_id": client_id, "valid_from": valid_from, **profile, **changes})
    return pd.DataFrame(out)


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
    # the domain terms: client 0001 needs quiet, D001 has 40 homes in the complex
    one = f.loc[("D001", "0001")]
    assert one["quiet_need_x_busy_entrance"] == pytest.approx(one["shared_entrance"] * np.log(40))
    assert one["isolation_x_complex_size"] == pytest.approx((5 - one["zrm_social_network"]) * np.log(40))
    # Nothing was placed before the first meeting.
    assert (f["recent_placements_complex"] == 0).all()


def test_saturating_size_and_stairs_threshold(tiny_dir):
    """The complex's size saturates at busy_complex_units homes; stairs count from stairs_from_floor up."""
    ds = load_dataset(tiny_dir)
    pairs = meeting_pairs(ds, pd.Timestamp("2023-01-02"))
    f = build_pair_features(ds, pairs, params=FEATURE_PARAMS, rules=RULES).set_index(["dwelling_id", "client_id"])
    one = f.loc[("D001", "0001")]  # needs quiet; 40 homes in the complex: log 40 / log 100 of the way to saturation
    assert one["quiet_need_x_crowded_entrance"] == pytest.approx(one["shared_entrance"] * np.log(40) / np.log(100))
    assert one["isolation_x_large_complex"] == pytest.approx((5 - one["zrm_social_network"]) * np.log(40) / np.log(100))
    assert f.loc[("D002", "0002"), "upper_floor_stairs_x_physical"] == 5 - 2  # 3rd floor, no lift, physical health 2
    assert f.loc[("D001", "0002"), "upper_floor_stairs_x_physical"] == 0  # D001 is not above the 2nd floor without lift
    small = dataclasses.replace(FEATURE_PARAMS, busy_complex_units=20.0, stairs_from_floor=4)
    g = build_pair_features(ds, pairs, params=small, rules=RULES).set_index(["dwelling_id", "client_id"])
    assert g.loc[("D001", "0001"), "isolation_x_large_complex"] == pytest.approx(5 - one["zrm_social_network"])
    assert g.loc[("D002", "0002"), "upper_floor_stairs_x_physical"] == 0  # 3rd floor is below the 4th


def test_history_counts_earlier_placements_only(tiny_dir):
    ds = load_dataset(tiny_dir)
    f = build_pair_features(ds, meeting_pairs(ds, pd.Timestamp("2023-01-09")), params=FEATURE_PARAMS, rules=RULES)
    # P2 (complex C2) was made a week earlier; D003 is in C2 too.
    assert f["recent_placements_complex"].tolist() == [1]
    assert f["recent_placements_neighbourhood"].tolist() == [1]


def test_point_in_time_invariance(tmp_path):
    """Appending later placements, ends, reports and profile changes does not change an earlier meeting's features."""
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
    # Profile changes dated after the meeting (the day after, and months later).
    later["client_profiles"] = profile_rows(
        ("0003", "2023-01-10", {"household_size": 3, "monthly_income_eur": 900.0, "zrm_finances": 1}),
        ("0001", "2023-03-06", {"needs_quiet_surroundings": "false", "support_hours_per_week": 20.0}),
    )
    ds2 = load_dataset(write_dataset(tmp_path / "b", later, as_of="2025-12-31"))
    after = build_pair_features(ds2, meeting_pairs(ds2, meeting), params=FEATURE_PARAMS, rules=RULES)
    # The new vacancy at the same meeting adds pairs; the pairs that existed are unchanged.
    merged = before.merge(after, on=["meeting_date", "dwelling_id", "client_id"], suffixes=("_a", "_b"))
    assert len(merged) == len(before)
    for name in FEATURE_NAMES:
        assert (merged[f"{name}_a"] == merged[f"{name}_b"]).all(), name


def test_protected_attributes_do_not_change_any_feature(tmp_path):
    """Features are the same whatever the protected attributes say: the model never sees them."""
    base = tiny_tables()
    swapped = tiny_tables()
    swapped["client_protected"] = swapped["client_protected"].assign(
        gender=["x", "female", "male"], birth_year=[2001, 1950, 1988], migration_background=["europe"] * 3
    )
    frames = []
    for name, tables in (("a", base), ("b", swapped)):
        ds = load_dataset(write_dataset(tmp_path / name, tables))
        frames.append(
            build_pair_features(ds, meeting_pairs(ds, pd.Timestamp("2023-01-02")), params=FEATURE_PARAMS, rules=RULES)
        )
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert not set(frames[0].columns) & set(PROTECTED_COLUMNS)


def test_profile_history_applies_from_its_valid_from_date(tmp_path):
    """A client_profiles row counts from its valid_from date on (that day included); before it, clients."""
    tables = tiny_tables()
    tables["client_profiles"] = profile_rows(
        ("0003", "2023-01-09", {"household_size": 2, "monthly_income_eur": 2000.0, "zrm_finances": 5})
    )
    ds = load_dataset(write_dataset(tmp_path / "h", tables))
    first = build_pair_features(ds, meeting_pairs(ds, pd.Timestamp("2023-01-02")), params=FEATURE_PARAMS, rules=RULES)
    at_first = first.set_index("client_id").loc["0003"].iloc[0]
    assert (at_first["household_size"], at_first["monthly_income_eur"], at_first["zrm_finances"]) == (1, 1100, 4)
    pairs = meeting_pairs(ds, pd.Timestamp("2023-01-09"))  # D003 (studio, 1 room, rent 480) with client 0003
    second = build_pair_features(ds, pairs, params=FEATURE_PARAMS, rules=RULES).iloc[0]
    assert (second["household_size"], second["monthly_income_eur"], second["zrm_finances"]) == (2, 2000, 5)
    assert second["rent_to_income"] == pytest.approx(480 / 2000) and second["rooms_surplus"] == 1 - 2
    # Eligibility reads the same profile: a household of 2 needs 2 rooms, the studio has 1.
    eligible, excluded = apply_eligibility(ds, pairs, section(PARAMS, "eligibility", EligibilityParams), RULES)
    assert eligible.empty and excluded["rule"].tolist() == ["rooms"]
    intake = load_dataset(write_dataset(tmp_path / "i", tiny_tables()))
    eligible, _ = apply_eligibility(intake, pairs, section(PARAMS, "eligibility", EligibilityParams), RULES)
    assert eligible["client_id"].tolist() == ["0003"]


def test_joined_tables_are_made_once_per_dataset_and_afresh_for_a_changed_table(tiny_dir):
    """Batches of one dataset share its joined tables; a dataset with a replaced table gets its own."""
    import dataclasses

    from features import pairs as pairs_module

    ds = load_dataset(tiny_dir)
    pairs = meeting_pairs(ds, pd.Timestamp("2023-01-09"))
    first = build_pair_features(ds, pairs, params=FEATURE_PARAMS, rules=RULES)
    joined = pairs_module._joined_tables(ds)
    assert all(a is b for a, b in zip(joined[:2], pairs_module._joined_tables(ds)[:2], strict=True))  # reused
    pd.testing.assert_frame_equal(build_pair_features(ds, pairs, params=FEATURE_PARAMS, rules=RULES), first)
    cheaper = dataclasses.replace(ds, dwellings=ds.dwellings.assign(rent_eur=ds.dwellings["rent_eur"] - 100))
    again = build_pair_features(cheaper, pairs, params=FEATURE_PARAMS, rules=RULES)
    assert (again["rent_eur"] == first["rent_eur"] - 100).all()
    pd.testing.assert_frame_equal(build_pair_features(ds, pairs, params=FEATURE_PARAMS, rules=RULES), first)
