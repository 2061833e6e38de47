"""Small helpers shared by tests: params of the project's own params.yaml, literal replay tables."""

from __future__ import annotations

import pandas as pd

from features.config import load_params, section
from features.labels import LabelParams
from features.pairs import FeatureParams
from features.rules import PassendToewijzen

PARAMS = load_params()
FEATURE_PARAMS = section(PARAMS, "features", FeatureParams)
LABEL_PARAMS = section(PARAMS, "labels", LabelParams)
RULES = section(PARAMS, "passend_toewijzen", PassendToewijzen)


def replay_table(policy: dict[str, dict], history: dict[str, dict], *, clients: int) -> pd.DataFrame:
    """A queue replay's group table (fairness.frontier) by gender: the default policy and the meeting's history.

    `policy` and `history` map each group to its columns (placement_rate, placed, waiting weeks, judgeable...).
    """
    from fairness.frontier import HISTORY

    rows = [
        {"policy": name, "attribute": "gender", "group": group, "clients": clients, "judgeable": True, **columns}
        for name, groups in (("exact_longest_waiting", policy), (HISTORY, history))
        for group, columns in groups.items()
    ]
    return pd.DataFrame(rows)
