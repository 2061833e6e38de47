"""A stand-in model: a small deterministic LightGBM on toy labels, wrapped as a ModelBundle (benchmarks and tests)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.pairs import FEATURE_NAMES, build_pair_features
from models.bundle import SUPPORT_FEATURES, ModelBundle, standardise, support_scale_of
from models.calibration import PlattCalibration

# A made-up truth for the stand-in model: weights on standardised features of the log-odds of a sustained tenancy.
TOY_TRUTH = {
    "zrm_mean": 0.6,
    "zrm_finances": 0.3,
    "rent_to_income": -0.7,
    "support_x_distance": -0.5,
    "stairs_x_physical": -0.4,
    "quiet_need_x_units": -0.4,
    "network_in_district": 0.35,
    "recent_failures_complex": -0.3,
    "liveability_score": 0.25,
    "prior_failed_tenancies": -0.3,
}


def toy_labels(X: pd.DataFrame, *, seed: int = 0) -> np.ndarray:
    """Sustained (1) or failed (0) per row, drawn from TOY_TRUTH on standardised features."""
    rng = np.random.default_rng(seed)
    logit = np.full(len(X), 1.2)
    for f, w in TOY_TRUTH.items():
        v = X[f].to_numpy(dtype=float)
        logit += w * (v - v.mean()) / (v.std() or 1.0)
    return (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(int)


def jittered(X: pd.DataFrame, n_rows: int, *, seed: int = 0) -> pd.DataFrame:
    """`n_rows` rows resampled from X with small noise on every feature (training data for a tiny stand-in model)."""
    rng = np.random.default_rng(seed)
    base = X[list(FEATURE_NAMES)].to_numpy(dtype=float)
    rows = base[rng.integers(0, len(base), n_rows)]
    spread = np.where(base.std(axis=0) > 0, base.std(axis=0), np.maximum(np.abs(base.mean(axis=0)) * 0.1, 0.5))
    return pd.DataFrame(rows + rng.normal(0, 0.5, rows.shape) * spread, columns=list(FEATURE_NAMES))


def stand_in_bundle(
    X: pd.DataFrame,
    y: np.ndarray | None = None,
    *,
    n_trees: int = 300,
    num_leaves: int = 15,
    min_data_in_leaf: int = 20,
    seed: int = 0,
    support_radius: float = 2.0,
) -> ModelBundle:
    """A deterministic binary LightGBM wrapped as a ModelBundle, until the real trainer's model is available.

    `X` holds FEATURE_NAMES columns of training pairs; `y` their outcomes (default: `toy_labels`).
    """
    y = toy_labels(X, seed=seed) if y is None else np.asarray(y)
    params = {
        "objective": "binary",
        "num_leaves": num_leaves,
        "learning_rate": 0.05,
        "min_data_in_leaf": min_data_in_leaf,
        "min_data_in_bin": 1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    data = lgb.Dataset(X[list(FEATURE_NAMES)].to_numpy(dtype=float), label=y, feature_name=list(FEATURE_NAMES))
    booster = lgb.train(params, data, num_boost_round=n_trees)
    scale = support_scale_of(X)
    reference = pd.DataFrame(standardise(X, scale), columns=list(SUPPORT_FEATURES))
    return ModelBundle(
        booster,
        tuple(FEATURE_NAMES),
        "binary",
        PlattCalibration(1.0, 0.0),
        0.5,
        support_reference=reference,
        support_scale=scale,
        support_radius=support_radius,
        metadata={"name": f"stand-in binary LightGBM ({n_trees} trees, not the trained model)"},
    )


def history_bundle(ds, cfg, *, n_trees: int = 300, num_leaves: int = 15, seed: int = 0) -> ModelBundle:
    """A stand-in bundle fitted on the dataset's placements (features at their meeting, toy labels)."""
    pairs = ds.placements[["meeting_date", "dwelling_id", "client_id"]].reset_index(drop=True)
    X = build_pair_features(ds, pairs, params=cfg.features, rules=cfg.amounts)
    return stand_in_bundle(X, n_trees=n_trees, num_leaves=num_leaves, seed=seed)
