"""Calibration: from a model's raw score to the chance of a sustained tenancy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from features.errors import UserError

ERR_ONE_CLASS = "the calibration weeks hold only one outcome class; widen train.calibration_weeks"


@dataclass(frozen=True)
class PlattCalibration:
    """Platt scaling: P(sustained) = sigmoid(a * score + b)."""

    a: float
    b: float

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        s = np.asarray(scores, dtype=float)
        return 1.0 / (1.0 + np.exp(-(self.a * s + self.b)))

    @classmethod
    def fit(cls, scores: np.ndarray, sustained: np.ndarray) -> PlattCalibration:
        """Fitted by (almost unpenalised) logistic regression of the outcome on the score."""
        y = np.asarray(sustained, dtype=int)
        if len(np.unique(y)) < 2:
            raise UserError(ERR_ONE_CLASS)
        lr = LogisticRegression(C=1e6, max_iter=1000)
        lr.fit(np.asarray(scores, dtype=float).reshape(-1, 1), y)
        return cls(float(lr.coef_[0, 0]), float(lr.intercept_[0]))

    def to_json(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b}

    @classmethod
    def from_json(cls, value: dict) -> PlattCalibration:
        return cls(float(value["a"]), float(value["b"]))
