"""`train` at scale: the oracle comparison and the deployed model in a side process give what inline gives."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.config import section
from features.errors import UserError
from features.load import load_dataset
from models.experiment import placement_rows
from models.intervals import IntervalParams
from models.ranker import TrainParams, temporal_split, train_bundle
from pipelines import train as train_module
from pipelines.train import SideJobs, _fit_deployed, _oracle, _side_process_wanted
from tests.helpers import FEATURE_PARAMS, LABEL_PARAMS, PARAMS, RULES

SHORT_SPLIT = {"test_weeks": 16, "calibration_weeks": 12}


@pytest.fixture(scope="module")
def small(small_synthetic):
    ds = load_dataset(small_synthetic[0])
    rows = placement_rows(ds, features=FEATURE_PARAMS, labels=LABEL_PARAMS, rules=RULES)
    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), **SHORT_SPLIT)
    return ds, rows, tp


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_the_deployed_model_of_the_side_process_is_the_one_fitted_inline(small, tmp_path):
    ds, rows, tp = small
    intervals = dataclasses.replace(section(PARAMS, "intervals", IntervalParams), resamples=3)
    saved = []
    for side, workers in ((False, 2), (True, 1)):  # the side process fits its copies one by one
        jobs = SideJobs(side)
        try:
            fitted = jobs.submit(
                _fit_deployed, rows, ds.as_of, tp, dataclasses.replace(intervals, workers=workers), None, 0.0
            )
            deployed, _, peak_gb = fitted.get()
        finally:
            jobs.close()
        assert deployed.intervals is not None and len(deployed.intervals.members) == 3 and peak_gb > 0
        saved.append(_files(deployed.save(tmp_path / f"side_{side}")))
    assert saved[0] == saved[1]  # booster, prior, calibration, the intervals' copies, support: byte for byte


def test_the_oracle_comparison_of_the_side_process_is_the_one_made_inline(small, small_synthetic):
    """The side process loads the dataset again from its folder and compares with the oracle: the same tables."""
    ds, rows, tp = small
    data, truth = small_synthetic
    bundle = train_bundle(rows, temporal_split(rows, tp), tp)
    inline = _oracle(ds, data, bundle, truth, PARAMS, {}, 0.0)
    jobs = SideJobs(True)
    try:
        side = jobs.submit(_oracle, None, data, bundle, truth, PARAMS, {}, 0.0).get()
    finally:
        jobs.close()
    pd.testing.assert_frame_equal(side.table, inline.table, check_exact=True)
    pd.testing.assert_frame_equal(side.per_meeting, inline.per_meeting, check_exact=True)
    assert side.summary.keys() == inline.summary.keys()
    assert all(np.isclose(side.summary[k], v, rtol=0, atol=0, equal_nan=True) for k, v in inline.summary.items())


def test_an_error_in_the_side_process_is_the_users_error(small):
    ds, rows, tp = small
    early = pd.Timestamp("2000-01-03")  # nothing known yet: no deployed model can be fitted
    jobs = SideJobs(True)
    try:
        with pytest.raises(UserError) as side:
            jobs.submit(_fit_deployed, rows, early, tp, None, None, 0.0).get()
    finally:
        jobs.close()
    with pytest.raises(UserError) as inline:
        SideJobs(False).submit(_fit_deployed, rows, early, tp, None, None, 0.0).get()
    assert str(side.value) == str(inline.value)


def test_a_side_process_only_for_regional_meetings_at_scale(small, monkeypatch):
    ds, rows, _ = small
    monkeypatch.setattr(train_module, "SIDE_PROCESS_MIN_ROWS", 1)
    assert not _side_process_wanted(ds, rows)  # one meeting a week: its pairs' memory is not doubled
    regional = dataclasses.replace(
        ds, vacancies=ds.vacancies.assign(region=np.where(np.arange(len(ds.vacancies)) % 2, "Noord", "Zuid"))
    )
    monkeypatch.setattr(train_module.os, "cpu_count", lambda: 2)
    assert _side_process_wanted(regional, rows)
    monkeypatch.setattr(train_module, "SIDE_PROCESS_MIN_ROWS", len(rows) + 1)
    assert not _side_process_wanted(regional, rows)
    monkeypatch.setattr(train_module, "SIDE_PROCESS_MIN_ROWS", 1)
    monkeypatch.setattr(train_module.os, "cpu_count", lambda: 1)
    assert not _side_process_wanted(regional, rows)


def test_a_side_process_that_dies_is_reported_not_waited_for():
    import os

    jobs = SideJobs(True)
    try:
        with pytest.raises(UserError, match="side process .* stopped unexpectedly"):
            jobs.submit(os._exit, 3).get()
    finally:
        jobs.close()
