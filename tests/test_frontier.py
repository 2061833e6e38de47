"""The policy frontier on the tiny dataset: placements, waits and per-group rates next to the meeting's history."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from fairness.frontier import HISTORY, policy_frontier
from fairness.params import FairnessParams
from features.config import section
from features.load import load_dataset
from planning.assignment import AssignmentParams
from tests.conftest import tiny_tables, write_dataset
from tests.helpers import PARAMS


def test_frontier_on_the_tiny_dataset(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "d", tiny_tables()))
    fairness = dataclasses.replace(section(PARAMS, "fairness", FairnessParams), min_group_size=1)
    fit = {"0001": 0.9, "0002": 0.5, "0003": 0.7}

    def score(pairs: pd.DataFrame) -> pd.DataFrame:
        return pairs.assign(p_sustained=pairs["client_id"].map(fit))

    meetings = [pd.Timestamp("2023-01-02"), pd.Timestamp("2023-01-09")]
    policies = {"exact": AssignmentParams(), "everyone": AssignmentParams(policy="everyone")}
    table, by_group, runs = policy_frontier(ds, meetings, policies, score, fairness=fairness, tolerance=0.02)
    t = table.set_index("policy")
    # exact: week 1 two homes for three clients who all waited 0 weeks: 0001 and 0002 (ties by id); week 2: 0003
    assert runs["exact"].placements["client_id"].tolist() == ["0001", "0002", "0003"]
    assert t.at["exact", "placements"] == 3 and t.at[HISTORY, "placements"] == 3
    assert t.at["exact", "expected_sustained_model"] == pytest.approx(2.1)
    assert t.at["exact", "placed_waiting_median_weeks"] == 0.0 and t.at["exact", "still_waiting"] == 0
    # everyone: the model picks 0001 (0.9) and 0003 (0.7) in week 1; 0002 waits and gets D003 in week 2
    everyone = runs["everyone"].placements
    assert sorted(zip(everyone["meeting_date"].dt.day, everyone["client_id"], strict=True)) == [
        (2, "0001"),
        (2, "0003"),
        (9, "0002"),
    ]
    assert t.at["everyone", "placed_waiting_median_weeks"] == 0.0 and everyone["waiting_weeks"].max() == 1.0
    gender = by_group[(by_group["attribute"] == "gender") & (by_group["policy"] == "exact")].set_index("group")
    assert gender["placement_rate"].to_dict() == {"female": 1.0, "male": 1.0, "x": 1.0}
    assert (gender["history_placement_rate"] == 1.0).all()
    assert t.at["exact", "placement_ratio_gender"] == pytest.approx(1.0)
