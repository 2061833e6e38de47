"""One interface for everything that scores (client, home) pairs: the ranker, its prior and the baselines.

sklearn-style: a scorer has `score(X) -> array` (higher = a better expected outcome;
comparable within one meeting); a scorer that estimates a calibrated chance of a
sustained tenancy also has `proba(X) -> array`. Evaluation, the oracle comparison
and the plan treat every scorer alike through these two methods.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd


@runtime_checkable
class Scorer(Protocol):
    """Scores pairs (rows of pair features); higher is better."""

    def score(self, X: pd.DataFrame) -> np.ndarray: ...


@runtime_checkable
class ProbabilityScorer(Scorer, Protocol):
    """A scorer that also gives the chance of a sustained tenancy."""

    def proba(self, X: pd.DataFrame) -> np.ndarray: ...
