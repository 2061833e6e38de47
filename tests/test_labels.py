"""Label rules with literal cases."""

from __future__ import annotations

import dataclasses

import pandas as pd

from features.labels import CENSORED, EXCLUDED, KNOWN, build_labels
from features.load import load_dataset
from tests.conftest import tiny_tables, write_dataset
from tests.helpers import LABEL_PARAMS


def _labels(tmp_path, ends=None, reports=None, as_of="2024-06-30", params=LABEL_PARAMS):
    t = tiny_tables()
    if ends is not None:
        t["tenancy_ends"] = pd.DataFrame(ends, columns=["placement_id", "end_date", "reason"])
    if reports is not None:
        t["nuisance_reports"] = pd.DataFrame(reports, columns=["report_id", "placement_id", "report_date", "severity"])
    ds = load_dataset(write_dataset(tmp_path / "d", t, as_of=as_of))
    return build_labels(ds, params).set_index("placement_id")


def test_grades_and_sustained(tmp_path):
    # P1 starts 2023-02-01 with one minor report -> grade 2; P2 evicted -> 0; P3 clean -> 3.
    lab = _labels(tmp_path)
    assert lab["status"].tolist() == [KNOWN] * 3
    assert lab["sustained"].tolist() == [1, 0, 1]
    assert lab["grade"].tolist() == [2, 0, 3]


def test_serious_nuisance_and_reports_after_horizon(tmp_path):
    reports = [
        ["R1", "P1", "2023-03-01", "serious"],  # within the year -> grade 1
        ["R2", "P3", "2024-02-02", "serious"],  # one day after P3's 365-day horizon -> ignored
    ]
    lab = _labels(tmp_path, reports=reports)
    assert lab.loc["P1", "grade"] == 1 and lab.loc["P3", "grade"] == 3


def test_failure_after_horizon_counts_as_sustained(tmp_path):
    lab = _labels(tmp_path, ends=[["P2", "2024-02-16", "eviction"]])  # P2 started 2023-02-15: day 366
    assert lab.loc["P2", "sustained"] == 1
    lab = _labels(tmp_path, ends=[["P2", "2024-02-15", "returned_to_care"]])  # day 365: still within
    assert lab.loc["P2", "sustained"] == 0


def test_censoring_drops_even_early_failures(tmp_path):
    # as_of 2023-12-31: no horizon is over yet, so even P2's eviction gives no label.
    lab = _labels(tmp_path, as_of="2023-12-31")
    assert (lab["status"] == CENSORED).all() and lab["sustained"].isna().all()


def test_other_end_reasons(tmp_path):
    ends = [["P1", "2023-06-01", "voluntary_move"], ["P2", "2023-06-01", "deceased"]]
    lab = _labels(tmp_path, ends=ends)
    assert lab.loc["P1", "status"] == KNOWN and lab.loc["P1", "sustained"] == 1
    assert lab.loc["P2", "status"] == EXCLUDED and pd.isna(lab.loc["P2", "grade"])
    strict = dataclasses.replace(
        LABEL_PARAMS, other_ends={"voluntary_move": "exclude", "deceased": "exclude", "other": "exclude"}
    )
    assert _labels(tmp_path, ends=ends, params=strict).loc["P1", "status"] == EXCLUDED
