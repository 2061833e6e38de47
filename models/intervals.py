"""How sure is each chance: an interval around every calibrated P(sustained).

What the interval covers: the pair's *true* chance of a sustained tenancy (the rate
that many tenancies exactly like this pair would show), not its single 0/1 outcome.
With the stated coverage c (params `intervals.coverage`, e.g. 0.90), about c of the
pairs' true chances lie inside their intervals.

How it is built (a bootstrap of the boosting, its width calibrated conformally):

1. Spread. `resamples` copies of the whole training pipeline (prior, trees, Platt
   scaling, refit) are fitted on the training weeks' meetings drawn with replacement
   (fit and calibration weeks each resampled within themselves; a meeting is the unit,
   so clients placed together stay together). For each pair, `spread` is the standard
   deviation of the copies' chances on the log-odds scale.
2. Width. The interval is logit(p) +/- scale * spread around the model's own chance p,
   mapped back to a probability (so it stays within 0..1 and is wider towards 50%).
   `scale` is calibrated on the calibration weeks (held out from the trees that make
   the spread): the conformal quantile of |logit(true p) - logit(p)| / spread over the
   calibration placements (normalised split conformal, Lei et al. 2018; the bootstrap
   alone only measures estimation noise, not what the model cannot represent).

The true chance is known only on synthetic data (`train --truth`: the generator's
truth_placements.parquet). Real outcomes are one 0/1 per pair, and a single
Bernoulli draw says nothing about how far a pair's true chance lies from the
model's, so on real data the scale cannot be calibrated or checked pair by pair:
`train` without --truth uses params `intervals.scale_without_truth` (measured on
synthetic worlds, see README "How sure is each chance"), or, when that is null,
the normal quantile (estimation noise only). The bundle records which.

This module holds what a model folder stores and what `recommend` computes (bundle.py
imports it); fitting is in `models.interval_fit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import Field

from features.pairs import FEATURE_NAMES
from models.calibration import PlattCalibration

EPS = 1e-6
SCALE_TRUTH = "conformal on the calibration weeks' true chances"
SCALE_PARAMS = "params intervals.scale_without_truth"
SCALE_NORMAL = "normal quantile of the bootstrap (estimation noise only)"


@dataclass(frozen=True)
class IntervalParams:
    """params.yaml `intervals`: how many bootstrap copies, the stated coverage, the fallback scale."""

    coverage: Annotated[float, Field(gt=0, lt=1)] = 0.90
    resamples: Annotated[int, Field(ge=0)] = 10  # 0 = no intervals
    scale_without_truth: Annotated[float, Field(gt=0)] | None = None  # None: the normal quantile
    seed: Annotated[int, Field(ge=0)] = 13
    workers: Annotated[int, Field(ge=1)] | None = None  # processes fitting the copies; None: min(2, cores)


@dataclass(frozen=True)
class Member:
    """One bootstrap copy: trees, their prior and their Platt scaling."""

    booster: lgb.Booster
    prior: dict | None  # LinearPrior.to_json() of the copy's prior: {"coef": {feature: w}, "intercept": b, ...}
    calibration: PlattCalibration

    def logit(self, X: pd.DataFrame) -> np.ndarray:
        """The copy's calibrated log-odds of a sustained tenancy per pair."""
        raw = np.asarray(self.booster.predict(X[list(FEATURE_NAMES)].to_numpy(dtype=float), raw_score=True))
        if self.prior is not None:
            raw = raw + float(self.prior["intercept"])
            for feature in sorted(self.prior["coef"]):  # the order LinearPrior.score sums in
                raw = raw + float(self.prior["coef"][feature]) * X[feature].to_numpy(dtype=float)
        return self.calibration.a * raw + self.calibration.b


@dataclass(frozen=True)
class ChanceIntervals:
    """The bootstrap copies and the calibrated width: chance_low/chance_high for any pairs."""

    members: tuple[Member, ...]
    coverage: float
    scale: float
    scale_source: str
    calibration_coverage: float | None = None  # share of calibration placements covered (with truth)
    n_calibration: int = 0

    def spread(self, X: pd.DataFrame) -> np.ndarray:
        """Standard deviation of the copies' log-odds per pair."""
        if len(X) == 0:
            return np.zeros(0)
        logits = np.vstack([m.logit(X) for m in self.members])
        return logits.std(axis=0, ddof=1)

    def bounds(self, p: np.ndarray, spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """chance_low, chance_high around chances `p` with log-odds spread `spread`."""
        centre = logit(np.asarray(p, dtype=float))
        half = self.scale * np.asarray(spread, dtype=float)
        return sigmoid(centre - half), sigmoid(centre + half)

    def interval(self, X: pd.DataFrame, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """chance_low, chance_high of pairs X whose calibrated chances are `p`."""
        return self.bounds(p, self.spread(X))

    def to_json(self) -> dict:
        return {
            "coverage": self.coverage,
            "scale": self.scale,
            "scale_source": self.scale_source,
            "calibration_coverage": self.calibration_coverage,
            "n_calibration": self.n_calibration,
            "members": [
                {
                    "booster": m.booster.model_to_string(),
                    "prior": m.prior,
                    "calibration": m.calibration.to_json(),
                }
                for m in self.members
            ],
        }

    @classmethod
    def from_json(cls, value: dict) -> ChanceIntervals:
        members = tuple(
            Member(
                lgb.Booster(model_str=str(m["booster"])),
                None if m["prior"] is None else dict(m["prior"]),
                PlattCalibration.from_json(m["calibration"]),
            )
            for m in value["members"]
        )
        if len(members) < 2:
            raise ValueError("intervals need at least two bootstrap copies")
        scale = float(value["scale"])
        coverage = float(value["coverage"])
        if not (math.isfinite(scale) and scale > 0 and 0 < coverage < 1):
            raise ValueError("intervals: scale or coverage out of range")
        cal = value.get("calibration_coverage")
        return cls(
            members,
            coverage,
            scale,
            str(value["scale_source"]),
            None if cal is None else float(cal),
            int(value.get("n_calibration", 0)),
        )


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def conformal_scale(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile of nonconformity scores: the ceil((n+1)c)-th smallest (inf if n too small)."""
    s = np.sort(np.asarray(scores, dtype=float))
    k = math.ceil((len(s) + 1) * coverage)
    return float(s[k - 1]) if k <= len(s) else math.inf


def truth_coverage(intervals: ChanceIntervals, X: pd.DataFrame, p: np.ndarray, true_p: np.ndarray) -> dict[str, float]:
    """Share of pairs whose true chance lies inside their interval, and the mean width (percentage points / 100)."""
    low, high = intervals.interval(X, p)
    truth = np.asarray(true_p, dtype=float)
    return {
        "interval_coverage_truth": float(np.mean((truth >= low - 1e-12) & (truth <= high + 1e-12))),
        "interval_mean_width": float(np.mean(high - low)),
        "interval_pairs": float(len(truth)),
    }
