"""Baselines the ranker must beat, scored the same way: random, a rule-based profile fit, a plain classifier.

Each is a scorer (`models.scoring`). The historical decisions are the fourth
baseline; they have no score of their own (every held-out placement *is* a
historical choice), so they enter the oracle comparison (models/oracle.py)
rather than the placement metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from features.errors import UserError
from features.pairs import FEATURE_NAMES
from models.bundle import LinearPrior


@dataclass(frozen=True)
class BaselineParams:
    """Weights of the rule-based profile-fit score (feature -> weight) and the classifier's regularisation."""

    profile_fit_weights: dict[str, float]
    logistic_C: float

    def __post_init__(self) -> None:
        unknown = sorted(set(self.profile_fit_weights) - set(FEATURE_NAMES))
        if unknown:
            raise UserError(f"params: baselines.profile_fit_weights names unknown features: {', '.join(unknown)}")


@dataclass(frozen=True)
class RandomScorer:
    """Uniform random scores: what ranking without information looks like (the same seed, the same scores)."""

    seed: int

    def score(self, X: pd.DataFrame) -> np.ndarray:
        return np.random.default_rng(self.seed).random(len(X))


def profile_fit(params: BaselineParams) -> LinearPrior:
    """A caseworker's rule of thumb: a weighted sum of self-reliance and needs-fit features (no intercept)."""
    weights = dict(params.profile_fit_weights)
    return LinearPrior(coef=weights, intercept=0.0, mean=dict.fromkeys(weights, 0.0))


class LogisticScorer:
    """A plain pointwise classifier of sustained vs failed: standardised logistic regression on all features."""

    def __init__(self, model: Pipeline):
        self.model = model

    @classmethod
    def fit(cls, X: pd.DataFrame, sustained: pd.Series, *, C: float, seed: int) -> LogisticScorer:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))
        model.fit(X[list(FEATURE_NAMES)].to_numpy(dtype=float), sustained.astype(int).to_numpy())
        return cls(model)

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of a sustained tenancy."""
        return self.model.decision_function(X[list(FEATURE_NAMES)].to_numpy(dtype=float))

    def proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(X[list(FEATURE_NAMES)].to_numpy(dtype=float))[:, 1]
