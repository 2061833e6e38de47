"""Baselines the ranker must beat, scored the same way: random, a rule-based profile fit, a plain classifier.

The historical decisions are the fourth baseline; they have no score of their own
(every held-out placement *is* a historical choice), so they enter the oracle
comparison (models/regret.py) rather than the placement metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features.pairs import FEATURE_NAMES


@dataclass(frozen=True)
class BaselineParams:
    """Weights of the rule-based profile-fit score (feature -> weight) and the classifier's regularisation."""

    profile_fit_weights: dict[str, float]
    logistic_C: float


def random_scores(n: int, seed: int) -> np.ndarray:
    """Uniform random scores: what ranking without information looks like."""
    return np.random.default_rng(seed).random(n)


def profile_fit_scores(X: pd.DataFrame, params: BaselineParams) -> np.ndarray:
    """A caseworker's rule of thumb: a weighted sum of self-reliance and needs-fit features."""
    unknown = set(params.profile_fit_weights) - set(FEATURE_NAMES)
    if unknown:
        raise ValueError(f"baselines.profile_fit_weights names unknown features: {sorted(unknown)}")
    score = np.zeros(len(X))
    for feature, weight in params.profile_fit_weights.items():
        score += weight * X[feature].to_numpy(dtype=float)
    return score


def fit_pointwise_classifier(X: pd.DataFrame, sustained: pd.Series, params: BaselineParams, seed: int):
    """A plain pointwise classifier (standardised logistic regression) of sustained vs failed."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=params.logistic_C, max_iter=2000, random_state=seed))
    model.fit(X[list(FEATURE_NAMES)].to_numpy(dtype=float), sustained.astype(int).to_numpy())
    return model


def classifier_proba(model, X: pd.DataFrame) -> np.ndarray:
    """P(sustained) of the pointwise classifier."""
    return model.predict_proba(X[list(FEATURE_NAMES)].to_numpy(dtype=float))[:, 1]
