"""Chance intervals: the conformal width by hand, coverage on a constructed case, storage, training, display."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from features.errors import UserError
from features.load import load_dataset
from models.bundle import INTERVALS_FILE, ModelBundle
from models.interval_fit import add_intervals, fit_intervals, read_true_chances
from models.intervals import SCALE_NORMAL, SCALE_TRUTH, ChanceIntervals, IntervalParams, conformal_scale, logit
from reports.meeting import chance_text


class FixedSpread(ChanceIntervals):
    """Intervals whose spread per pair is given (no bootstrap copies): for literal cases."""

    def __init__(self, spread: np.ndarray, scale: float) -> None:
        super().__init__(members=(), coverage=0.75, scale=scale, scale_source="test")
        object.__setattr__(self, "_given", np.asarray(spread, dtype=float))

    def spread(self, X: pd.DataFrame) -> np.ndarray:
        return self._given


def test_conformal_scale_by_hand():
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6])  # n = 9
    # ceil((9 + 1) * 0.8) = 8: the 8th smallest is 0.8
    assert conformal_scale(scores, 0.8) == pytest.approx(0.8)
    # ceil(10 * 0.5) = 5: the 5th smallest is 0.5
    assert conformal_scale(scores, 0.5) == pytest.approx(0.5)
    # ceil(10 * 0.95) = 10 > 9: too few scores for that coverage
    assert conformal_scale(scores, 0.95) == np.inf


def test_intervals_cover_a_constructed_case_and_fail_when_forced_too_narrow():
    # four pairs, model chance 50% each, spread 1 on the log-odds scale;
    # the true log-odds lie 0.5, 1.0, 1.5 and 0.2 spreads away from the model's (alternating sides)
    p = np.full(4, 0.5)
    spread = np.ones(4)
    true_logit = np.array([0.5, -1.0, 1.5, -0.2])
    truth = 1 / (1 + np.exp(-true_logit))
    X = pd.DataFrame(index=range(4))
    scores = np.abs(true_logit - logit(p)) / spread
    scale = conformal_scale(scores, 0.75)  # ceil(5 * 0.75) = 4: the largest, 1.5
    assert scale == pytest.approx(1.5)

    from models.intervals import truth_coverage

    wide = truth_coverage(FixedSpread(spread, scale), X, p, truth)
    assert wide["interval_coverage_truth"] == 1.0
    low, high = FixedSpread(spread, scale).interval(X, p)
    assert low[0] == pytest.approx(1 / (1 + np.exp(1.5)))  # sigmoid(-1.5) = 18.2%
    assert high[0] == pytest.approx(1 / (1 + np.exp(-1.5)))  # sigmoid(+1.5) = 81.8%
    # forced too narrow (scale 0.4): only the pair 0.2 spreads away is inside
    narrow = truth_coverage(FixedSpread(spread, 0.4), X, p, truth)
    assert narrow["interval_coverage_truth"] == 0.25
    assert narrow["interval_mean_width"] < wide["interval_mean_width"]


def test_intervals_always_contain_the_chance_and_stay_within_0_and_1():
    p = np.array([0.001, 0.3, 0.72, 0.999])
    low, high = FixedSpread(np.array([5.0, 0.2, 0.0, 3.0]), 1.645).interval(pd.DataFrame(index=range(4)), p)
    assert np.all((low > 0) & (high < 1) & (low <= p + 1e-12) & (p <= high + 1e-12))
    assert low[2] == pytest.approx(0.72) and high[2] == pytest.approx(0.72)  # no spread, no width


def test_chance_text():
    assert chance_text(0.724, 0.651, 0.789, lang="en") == "72% (65–79%)"
    assert chance_text(0.724, lang="en") == "72%"
    assert chance_text(0.724, np.nan, np.nan, lang="nl") == "72%"
    assert chance_text(0.724, 0.651, 0.789, lang="nl").startswith("72")


@pytest.fixture(scope="module")
def small_fit(small_synthetic):
    from features.config import load_params, section
    from features.labels import LabelParams
    from features.pairs import FeatureParams
    from features.rules import PassendToewijzen
    from models.experiment import placement_rows
    from models.ranker import TrainParams, temporal_split, train_bundle

    cfg = load_params()
    ds = load_dataset(small_synthetic[0])
    rows = placement_rows(
        ds,
        features=section(cfg, "features", FeatureParams),
        labels=section(cfg, "labels", LabelParams),
        rules=section(cfg, "passend_toewijzen", PassendToewijzen),
    )
    tp = dataclasses.replace(section(cfg, "train", TrainParams), test_weeks=16, calibration_weeks=26)
    split = temporal_split(rows, tp)
    bundle = train_bundle(rows, split, tp)
    return rows, split, tp, bundle, small_synthetic[1]


def test_fit_is_deterministic_calibrated_on_truth_and_measured(small_fit):
    rows, split, tp, bundle, truth = small_fit
    ip = IntervalParams(coverage=0.8, resamples=6, seed=3)
    true_p = read_true_chances(truth)
    a = fit_intervals(rows, split, bundle, train=tp, params=ip, true_p=true_p)
    b = fit_intervals(rows.sample(frac=1.0, random_state=0), split, bundle, train=tp, params=ip, true_p=true_p)
    assert a is not None and b is not None
    assert a.scale_source == SCALE_TRUTH and len(a.members) == 6
    test = rows[split.part(rows) == "test"]
    p = bundle.proba(test)
    la, ha = a.interval(test, p)
    lb, hb = b.interval(test, p)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(ha, hb)
    assert np.all((la <= p + 1e-12) & (p <= ha + 1e-12)) and np.all(ha > la)
    # the conformal scale covers at least the stated share of the calibration placements it was chosen on
    assert a.calibration_coverage is not None and a.calibration_coverage >= 0.8
    other = fit_intervals(rows, split, bundle, train=tp, params=dataclasses.replace(ip, seed=4), true_p=true_p)
    assert other is not None and not np.array_equal(other.interval(test, p)[0], la)


def test_a_copy_fitted_on_the_models_own_weeks_is_the_model(small_fit):
    """The bootstrap copies run the model's own pipeline: its prior kind (the learned prior), trees and Platt."""
    from models.interval_fit import fit_member

    rows, split, tp, bundle, _ = small_fit
    assert tp.prior_kind == "logistic" and bundle.prior is not None
    part = split.part(rows)
    member = fit_member(rows[part == "fit"], rows[part == "calibration"], tp, bundle.objective)
    assert member.prior == bundle.prior.to_json()
    test = rows[part == "test"]
    np.testing.assert_allclose(1 / (1 + np.exp(-member.logit(test))), bundle.proba(test), rtol=1e-9, atol=1e-12)


def test_without_truth_the_normal_quantile_or_the_params_scale(small_fit):
    rows, split, tp, bundle, _ = small_fit
    plain = fit_intervals(rows, split, bundle, train=tp, params=IntervalParams(coverage=0.9, resamples=3))
    assert plain is not None and plain.scale_source == SCALE_NORMAL and plain.scale == pytest.approx(1.6449, abs=1e-4)
    given = fit_intervals(rows, split, bundle, train=tp, params=IntervalParams(resamples=3, scale_without_truth=2.5))
    assert given is not None and given.scale == 2.5
    assert fit_intervals(rows, split, bundle, train=tp, params=IntervalParams(resamples=0)) is None


def test_bundle_stores_intervals_checksummed_and_old_folders_load_without(small_fit, tmp_path):
    rows, split, tp, bundle, truth = small_fit
    with_iv = dataclasses.replace(bundle, metadata=dict(bundle.metadata))
    test = rows[split.part(rows) == "test"]
    got = add_intervals(
        with_iv, rows, split, test, train=tp, params=IntervalParams(coverage=0.8, resamples=4), truth_dir=truth
    )
    assert {"interval_coverage_truth", "interval_mean_width", "interval_scale"} <= set(got)
    assert 0 <= got["interval_coverage_truth"] <= 1
    assert with_iv.metadata["intervals"]["resamples"] == 4
    folder = with_iv.save(tmp_path / "m")
    assert INTERVALS_FILE in json.loads((folder / "checksums.json").read_text())
    loaded = ModelBundle.load(folder)
    p = loaded.proba(test)
    assert loaded.chance_intervals(test, p) is not None
    np.testing.assert_allclose(loaded.chance_intervals(test, p)[0], with_iv.chance_intervals(test, p)[0])
    # a model folder without intervals (older) loads and has none
    old = bundle.save(tmp_path / "old")
    assert not (old / INTERVALS_FILE).exists()
    assert ModelBundle.load(old).chance_intervals(test, p) is None
    # a changed intervals.json is refused by its checksum
    text = (folder / INTERVALS_FILE).read_text()
    (folder / INTERVALS_FILE).write_text(text.replace('"coverage": 0.8', '"coverage": 0.5'))
    with pytest.raises(UserError, match="intervals.json does not match its checksum"):
        ModelBundle.load(folder)


class ConstantSpread(ChanceIntervals):
    """Intervals with the same log-odds spread for every pair."""

    def __init__(self, spread: float, scale: float = 2.0, coverage: float = 0.9) -> None:
        super().__init__(members=(), coverage=coverage, scale=scale, scale_source="test")
        object.__setattr__(self, "_value", spread)

    def spread(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), self._value)


def test_recommend_outputs_and_sheet_show_the_interval_only_when_the_model_has_one(tmp_path):
    from features.pairs import all_meeting_pairs, build_pair_features
    from pipelines.recommend import load_config
    from reports.suggestions import meeting_outputs
    from synthetic.stand_in import jittered, stand_in_bundle
    from tests.conftest import tiny_tables, write_dataset

    ds = load_dataset(write_dataset(tmp_path / "tiny", tiny_tables()))
    cfg = load_config()
    X = build_pair_features(
        ds, all_meeting_pairs(ds, ds.vacancies["meeting_date"].unique()), params=cfg.features, rules=cfg.amounts
    )
    plain = stand_in_bundle(jittered(X, 400, seed=1), n_trees=25, num_leaves=6, min_data_in_leaf=5)
    sure = dataclasses.replace(plain, intervals=ConstantSpread(0.25))
    date = pd.Timestamp("2023-01-02")

    without = meeting_outputs(ds, date, plain, cfg)
    assert "chance_low" not in without.recommendations.columns and "chance_low" not in without.assignment.columns
    assert "Chance (range)" not in without.html

    out = meeting_outputs(ds, date, sure, cfg)
    recs, plan = out.recommendations, out.assignment
    cols = list(recs.columns)
    assert cols[cols.index("p_sustained") + 1 : cols.index("p_sustained") + 3] == ["chance_low", "chance_high"]
    # logit(p) -/+ 2 * 0.25 mapped back, by hand for every row
    lo = 1 / (1 + np.exp(-(np.log(recs["p_sustained"] / (1 - recs["p_sustained"])) - 0.5)))
    hi = 1 / (1 + np.exp(-(np.log(recs["p_sustained"] / (1 - recs["p_sustained"])) + 0.5)))
    np.testing.assert_allclose(recs["chance_low"], lo, rtol=1e-9)
    np.testing.assert_allclose(recs["chance_high"], hi, rtol=1e-9)
    keyed = recs.set_index(["dwelling_id", "client_id"])
    for row in plan.itertuples(index=False):
        assert row.chance_low == pytest.approx(keyed.loc[(row.dwelling_id, row.client_id), "chance_low"])
    # the same rows otherwise
    pd.testing.assert_frame_equal(recs.drop(columns=["chance_low", "chance_high"]), without.recommendations)
    first = recs.iloc[0]
    shown = chance_text(first["p_sustained"], first["chance_low"], first["chance_high"], lang="en")
    assert "(" in shown and shown in out.html
    assert "Chance (range)" in out.html and "about 90% of pairs" in out.html
    nl = meeting_outputs(ds, date, sure, cfg, lang="nl")
    assert "Kans (bandbreedte)" in nl.html


@pytest.mark.parametrize("regions", [False, True])
def test_resample_copies_whole_meetings_as_separate_queries_in_ranking_order(regions):
    """A drawn meeting's rows come whole, one query per copy (dates moved apart), already sorted for ranking."""
    from features.meetings import meeting_codes
    from models.interval_fit import _resample
    from models.ranker import sort_for_ranking

    rng = np.random.default_rng(0)
    n = 400
    rows = pd.DataFrame(
        {
            "meeting_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 12, n) * 7, unit="D"),
            "dwelling_id": [f"W{i:03d}" for i in rng.integers(0, 300, n)],
            "client_id": [f"C{i:03d}" for i in rng.integers(0, 300, n)],
            "x": rng.normal(size=n),
        }
    )
    if regions:
        rows["region"] = rng.choice(["R01", "R02"], n)
    rows = sort_for_ranking(rows)
    codes = meeting_codes(rows)
    for seed in range(3):
        drawn = np.sort(np.random.default_rng([13, seed]).integers(0, codes.max() + 1, codes.max() + 1))
        by_meeting = dict(list(rows.groupby(codes, sort=True)))
        copies = [
            g.assign(meeting_date=g["meeting_date"] + pd.Timedelta(seconds=k))
            for k, g in enumerate(by_meeting[i] for i in drawn)
        ]
        expected = sort_for_ranking(pd.concat(copies, ignore_index=True))
        got = _resample(rows, np.random.default_rng([13, seed]))
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert len(np.unique(meeting_codes(got))) == len(drawn)  # every copy its own query


def test_two_workers_fit_the_copies_one_worker_fits(small_fit):
    """Copies fitted side by side in 2 processes are the copies 1 process fits: the same intervals, bit for bit."""
    rows, split, tp, bundle, truth = small_fit
    true_p = read_true_chances(truth)
    one = fit_intervals(
        rows, split, bundle, train=tp, params=IntervalParams(resamples=4, seed=5, workers=1), true_p=true_p
    )
    two = fit_intervals(
        rows, split, bundle, train=tp, params=IntervalParams(resamples=4, seed=5, workers=2), true_p=true_p
    )
    assert one is not None and two is not None
    assert one.scale == two.scale and one.calibration_coverage == two.calibration_coverage
    test = rows[split.part(rows) == "test"]
    np.testing.assert_array_equal(one.spread(test), two.spread(test))
    for a, b in zip(one.members, two.members, strict=True):
        assert a.booster.model_to_string() == b.booster.model_to_string() and a.prior == b.prior
    # the workers are let go once the copies are fitted (idle, each would hold its memory until loky's timeout)
    children = subprocess.run(["ps", "-ww", "-o", "args=", "--ppid", str(os.getpid())], capture_output=True, text=True)
    assert "popen_loky_posix" not in children.stdout


def test_failed_draws_are_drawn_again_in_attempt_order(small_fit, monkeypatch):
    """A copy that cannot be fitted is replaced by the next attempt, with 1 worker as with 2."""
    import models.interval_fit as interval_fit

    rows, split, tp, bundle, _ = small_fit
    fit = interval_fit.fit_member
    seeds: list[int] = []

    def failing(fit_rows, cal_rows, params, objective):  # attempts 1 and 2 fail (copy seeds tp.seed + 2, + 3)
        if params.seed - tp.seed in (2, 3):
            raise UserError("one outcome class only")
        seeds.append(params.seed - tp.seed)
        return fit(fit_rows, cal_rows, params, objective)

    monkeypatch.setattr(interval_fit, "fit_member", failing)
    iv = fit_intervals(rows, split, bundle, train=tp, params=IntervalParams(resamples=3, seed=5, workers=1))
    assert iv is not None and len(iv.members) == 3 and seeds == [1, 4, 5]
    seeds.clear()

    def never(fit_rows, cal_rows, params, objective):
        seeds.append(params.seed - tp.seed)
        raise UserError("one outcome class only")

    monkeypatch.setattr(interval_fit, "fit_member", never)
    with pytest.raises(UserError, match="one outcome class"):  # given up after 5 x resamples attempts
        fit_intervals(rows, split, bundle, train=tp, params=IntervalParams(resamples=2, seed=5, workers=1))
    assert seeds == list(range(1, 12))
