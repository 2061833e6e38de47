"""TreeSHAP contributions of the model's scores: per pair and feature, base value + sum = score.

They explain a pair's *score*, not its rank; to compare two candidates for the
same home, look at the differences of their contributions (`differences`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def explanations_frame(keys: pd.DataFrame, X: pd.DataFrame, contributions: pd.DataFrame) -> pd.DataFrame:
    """The long table of explanations.csv: one row per (pair, feature), pairs in `keys` order.

    Args:
        keys: dwelling_id and client_id per pair.
        X: feature values per pair (same rows as keys), at least the contribution columns.
        contributions: TreeSHAP contributions per pair and feature (same rows as keys).
    """
    features = list(contributions.columns)
    n, k = len(keys), len(features)
    return pd.DataFrame(
        {
            "dwelling_id": np.repeat(keys["dwelling_id"].to_numpy(dtype=object), k),
            "client_id": np.repeat(keys["client_id"].to_numpy(dtype=object), k),
            "feature": np.tile(np.asarray(features, dtype=object), n),
            "value": X[features].to_numpy(dtype=float).reshape(-1),
            "contribution": contributions.to_numpy(dtype=float).reshape(-1),
        }
    )


def top_features(contributions: pd.DataFrame, k: int, min_abs: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column positions of the `k` largest |contributions| (largest first) and a mask of those above `min_abs`."""
    c = np.abs(contributions.to_numpy(dtype=float))
    k = min(k, c.shape[1])
    if k == 0 or len(c) == 0:
        return np.zeros((len(c), 0), dtype=int), np.zeros((len(c), 0), dtype=bool)
    # Stable: ties keep feature order, so reasons are deterministic.
    order = np.argsort(-c, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(c, order, axis=1) > min_abs


def differences(first, other, k: int, features=None) -> list[tuple[str, float]]:
    """What separates two candidates of one home: the `k` features with the largest |other − first| contribution.

    `first` and `other` are contribution rows (Series, or arrays with `features` naming
    the positions). Returns (feature, other − first) pairs, largest first, zeros left out.
    """
    if features is None:
        features = list(first.index)
    diff = np.asarray(other, dtype=float) - np.asarray(first, dtype=float)
    order = np.argsort(-np.abs(diff), kind="stable")[:k]
    return [(features[j], float(diff[j])) for j in order if diff[j] != 0]
