"""The peer: a plain LightGBM classifier on the raw joined columns, as an outside team would build it.

It sees the client's, the home's and the neighbourhood's own columns and the
distance to the care provider (the join), but none of the project's match
features (rent burden, stairs x physical health, quiet need x busy complex ...),
no prior, no monotone constraints and no Platt calibration: LightGBM's defaults
(31 leaves, 100 rounds, learning rate 0.1). Its `proba` is the classifier's own
chance of a sustained tenancy; the plan maximises its sum like the project's.
Used by the world-family benchmark (pipelines/bench_family.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.pairs import FEATURES

# Raw columns of the joined tables: everything but the engineered match features and the ZRM summaries.
PEER_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in FEATURES if f.group in ("client", "home", "neighbourhood") and f.name not in ("zrm_mean", "zrm_min")
) + ("distance_to_care_km",)


@dataclass(frozen=True)
class PeerClassifier:
    """LightGBM binary classifier with default settings on `PEER_COLUMNS`."""

    booster: lgb.Booster

    @classmethod
    def fit(cls, rows: pd.DataFrame, *, seed: int) -> PeerClassifier:
        """Fit on placement rows (pair features and `sustained`), in a deterministic order."""
        rows = rows.sort_values(["meeting_date", "dwelling_id", "client_id"], kind="stable")
        data = lgb.Dataset(
            rows[list(PEER_COLUMNS)].to_numpy(dtype=float),
            label=rows["sustained"].astype(int).to_numpy(),
            feature_name=list(PEER_COLUMNS),
        )
        params = {
            "objective": "binary",
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 1,
            "verbosity": -1,
        }
        return cls(lgb.train(params, data, num_boost_round=100))

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of a sustained tenancy."""
        return np.asarray(self.booster.predict(X[list(PEER_COLUMNS)].to_numpy(dtype=float), raw_score=True))

    def proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(X[list(PEER_COLUMNS)].to_numpy(dtype=float)))
