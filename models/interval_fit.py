"""Fitting the chance intervals of `models.intervals`: bootstrap copies of the ranker and the conformal width."""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor
from scipy.stats import norm

from features.errors import UserError
from features.meetings import meeting_codes
from models.bundle import ModelBundle
from models.intervals import (
    EPS,
    SCALE_NORMAL,
    SCALE_PARAMS,
    SCALE_TRUTH,
    ChanceIntervals,
    IntervalParams,
    Member,
    conformal_scale,
    logit,
    truth_coverage,
)
from models.ranker import Split, TrainParams, fit_calibrated, sort_for_ranking

TRUTH_PLACEMENTS_FILE = "truth_placements.parquet"


def _resample(rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Regional meetings of `rows` drawn with replacement; each copy is its own query (dates moved apart).

    `rows` are sorted for ranking (`sort_for_ranking`); so is the result: the drawn meetings are
    taken in (date, region) order and copy k is moved k seconds, so the copies' dates rise.
    """
    codes = meeting_codes(rows)
    n_meetings = int(codes.max()) + 1 if len(codes) else 0
    if n_meetings == 0:
        return rows
    drawn = np.sort(rng.integers(0, n_meetings, size=n_meetings))
    order = np.argsort(codes, kind="stable")  # each meeting's rows in row order
    starts = np.searchsorted(codes[order], np.arange(n_meetings + 1))
    sizes = np.diff(starts)[drawn]
    # row positions of the drawn meetings, copy after copy (one take instead of a frame per copy)
    first = np.repeat(starts[drawn] - np.r_[0, np.cumsum(sizes)[:-1]], sizes)
    taken = rows.iloc[order[first + np.arange(sizes.sum())]].reset_index(drop=True)
    # query groups are built from (meeting_date, region): a repeated meeting is a separate query
    copy = np.repeat(np.arange(n_meetings), sizes)
    taken["meeting_date"] = taken["meeting_date"] + pd.to_timedelta(copy, unit="s")
    return taken


def _count(rows: pd.DataFrame) -> int:
    return int(meeting_codes(rows).max()) + 1 if len(rows) else 0


def fit_member(fit_rows: pd.DataFrame, cal_rows: pd.DataFrame, params: TrainParams, objective: str) -> Member:
    """The training pipeline of `models.ranker.train_bundle` (`fit_calibrated`) on given fit and calibration rows."""
    prior, booster, calibration = fit_calibrated(fit_rows, cal_rows, params, objective)
    return Member(booster, None if prior is None else prior.to_json(), calibration)


def _copy(
    fit_rows: pd.DataFrame, cal_rows: pd.DataFrame, train: TrainParams, seed: int, attempt: int, objective: str
) -> Member | UserError:
    """Bootstrap copy number `attempt`: its own draw (seeded by `seed`, `attempt`) and LightGBM seed.

    A draw with one outcome class only comes back as its UserError (the caller draws again).
    """
    rng = np.random.default_rng([seed, attempt])
    copy_params = replace(train, seed=train.seed + 1 + attempt)
    try:
        return fit_member(_resample(fit_rows, rng), _resample(cal_rows, rng), copy_params, objective)
    except UserError as error:
        return error


def workers_for(params: IntervalParams) -> int:
    """Processes fitting the copies: params `intervals.workers`, or min(2, the machine's cores) when unset."""
    return params.workers if params.workers is not None else max(1, min(2, os.cpu_count() or 1))


def _fit_copies(
    fit_rows: pd.DataFrame, cal_rows: pd.DataFrame, train: TrainParams, params: IntervalParams, objective: str
) -> list[Member]:
    """The first `params.resamples` copies that fit, in attempt order, whatever the number of workers.

    Copies are independent and seeded by their attempt number, so fitting them side by side in
    `workers_for(params)` processes gives the very copies one process fits one after another.
    Attempts are made in waves of as many as are still missing; a draw that fails is drawn again
    (as attempt number n + 1, ...), at most 5 × resamples attempts in all.
    """
    workers = workers_for(params)
    members: list[Member] = []
    attempt = 0
    pooled = False
    while len(members) < params.resamples:
        wave = range(attempt, attempt + params.resamples - len(members))
        if workers > 1 and len(wave) > 1:
            pooled = True
            outcomes = Parallel(n_jobs=min(workers, len(wave)), backend="loky")(
                delayed(_copy)(fit_rows, cal_rows, train, params.seed, a, objective) for a in wave
            )
        else:  # lazily: no attempt after the one that gives up
            outcomes = (_copy(fit_rows, cal_rows, train, params.seed, a, objective) for a in wave)  # one by one
        for a, outcome in zip(wave, outcomes, strict=True):
            attempt = a + 1
            if isinstance(outcome, UserError):
                if attempt > 5 * params.resamples:
                    raise outcome
                continue
            members.append(outcome)
    if pooled:  # idle workers keep their memory (a few hundred MB each) until loky's timeout: let them go now
        get_reusable_executor().shutdown(wait=True)
    return members


def fit_intervals(
    rows: pd.DataFrame,
    split: Split,
    bundle: ModelBundle,
    *,
    train: TrainParams,
    params: IntervalParams,
    true_p: pd.Series | None = None,
    progress=lambda msg: None,
) -> ChanceIntervals | None:
    """Bootstrap copies of the ranker and the width scale (see module doc); None when `resamples` < 2.

    Args:
        rows: placement rows (features, sustained, grade, meeting_date, outcome_known_on, placement_id).
        split: the temporal split `bundle` was trained with.
        bundle: the trained model whose chances the intervals surround.
        train: the training params the bundle was fitted with.
        params: params.yaml `intervals`.
        true_p: the true chance per placement_id (synthetic data only): calibrates the scale.
    """
    if params.resamples < 2:
        return None
    rows = sort_for_ranking(rows)
    part = split.part(rows)
    fit_rows, cal_rows = rows[part == "fit"], rows[part == "calibration"]
    progress(
        f"intervals: {params.resamples} bootstrap copies of the ranker on resampled meetings "
        f"({_count(fit_rows)} fit, {_count(cal_rows)} calibration)"
    )
    members = _fit_copies(fit_rows, cal_rows, train, params, bundle.objective)
    fitted = ChanceIntervals(tuple(members), params.coverage, 1.0, SCALE_NORMAL)
    if true_p is not None:
        matched = cal_rows[cal_rows["placement_id"].isin(true_p.index)]
        if len(matched) == 0:
            raise UserError("--truth has no true chance for any placement of the calibration weeks")
        p = bundle.proba(matched)
        spread = fitted.spread(matched)
        truth = true_p.reindex(matched["placement_id"]).to_numpy(dtype=float)
        scores = np.abs(logit(truth) - logit(p)) / np.maximum(spread, EPS)
        scale = conformal_scale(scores, params.coverage)
        if not math.isfinite(scale):
            raise UserError(
                f"intervals: {len(matched)} calibration placements are too few for coverage {params.coverage}"
            )
        low, high = fitted.bounds(p, spread * scale)
        covered = float(np.mean((truth >= low - 1e-12) & (truth <= high + 1e-12)))
        return replace(
            fitted, scale=scale, scale_source=SCALE_TRUTH, calibration_coverage=covered, n_calibration=len(matched)
        )
    if params.scale_without_truth is not None:
        return replace(fitted, scale=float(params.scale_without_truth), scale_source=SCALE_PARAMS)
    return replace(fitted, scale=float(norm.ppf(0.5 + params.coverage / 2)), scale_source=SCALE_NORMAL)


def read_true_chances(truth_dir: str | Path) -> pd.Series:
    """The generator's true P(sustained) per placement_id (truth_placements.parquet of `generate --truth`)."""
    file = Path(truth_dir) / TRUTH_PLACEMENTS_FILE
    if not file.is_file():
        raise UserError(f"{file} does not exist: pass the folder `matchwijs generate --truth` wrote")
    frame = pd.read_parquet(file, columns=["placement_id", "p_sustained"])
    return frame.set_index(frame["placement_id"].astype(str))["p_sustained"].astype(float)


def add_intervals(
    bundle: ModelBundle,
    rows: pd.DataFrame,
    split: Split,
    test: pd.DataFrame,
    *,
    train: TrainParams,
    params: IntervalParams,
    truth_dir: str | Path | None = None,
    progress=lambda msg: None,
) -> dict[str, float]:
    """Fit `bundle.intervals` (in place) and measure them: what `train` records.

    With a truth folder the width is calibrated on the calibration weeks' true chances and
    the coverage of the test weeks' placements is measured against theirs
    (`interval_coverage_truth`); without one only the mean width is reported.
    """
    started = time.perf_counter()
    true_p = read_true_chances(truth_dir) if truth_dir is not None else None
    bundle.intervals = fit_intervals(rows, split, bundle, train=train, params=params, true_p=true_p, progress=progress)
    iv = bundle.intervals
    if iv is None:
        return {}
    out = {"interval_coverage_stated": iv.coverage, "interval_scale": iv.scale}
    if iv.calibration_coverage is not None:
        out["interval_coverage_calibration"] = iv.calibration_coverage
    p = bundle.proba(test)
    if true_p is not None:
        matched = test["placement_id"].isin(true_p.index).to_numpy()
        if matched.any():
            truth = true_p.reindex(test.loc[matched, "placement_id"]).to_numpy(dtype=float)
            out.update(truth_coverage(iv, test[matched], p[matched], truth))
    if "interval_mean_width" not in out and len(test):
        low, high = iv.interval(test, p)
        out["interval_mean_width"] = float(np.mean(high - low))
    bundle.metadata["intervals"] = {
        "coverage": iv.coverage,
        "resamples": len(iv.members),
        "scale": round(iv.scale, 4),
        "scale_source": iv.scale_source,
        **{k: round(v, 4) for k, v in out.items() if k.startswith("interval_coverage_") or k == "interval_mean_width"},
    }
    progress(
        f"intervals: scale {iv.scale:.3f} ({iv.scale_source}), {time.perf_counter() - started:.1f} s"
        + (
            f"; test weeks: {out['interval_coverage_truth']:.1%} of true chances inside (stated {iv.coverage:.0%})"
            if "interval_coverage_truth" in out
            else ""
        )
    )
    return out
