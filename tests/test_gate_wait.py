"""The gate's waiting-time check: the policy replayed as a queue against the meeting's history, in weeks."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from fairness.gate import judge
from fairness.metrics import LONG_COLUMNS
from fairness.params import FairnessParams
from features.config import section
from features.errors import UserError
from tests.helpers import PARAMS, replay_table

BASE = section(PARAMS, "fairness", FairnessParams)
EMPTY = pd.DataFrame(columns=LONG_COLUMNS).astype({"judgeable": bool, "n": int})
WAIT = "placed_waiting_median_weeks"


def _params() -> FairnessParams:
    """Only the waiting check, on gender (min_group_size 30, threshold 4 weeks as in params.yaml)."""
    gate = dataclasses.replace(
        BASE.gate, attributes=("gender",), max_difference={}, max_ratio_drop={}, max_replay_ratio_drop={}
    )
    return dataclasses.replace(BASE, gate=gate)


def _replay(policy: dict, history: dict) -> pd.DataFrame:
    """group -> (median weeks waited by those placed, number placed), for the policy and for the meeting."""

    def groups(waits: dict) -> dict:
        return {
            g: {"placement_rate": 0.5, "placed": placed, "placed_waiting_median_weeks": weeks}
            for g, (weeks, placed) in waits.items()
        }

    return replay_table(groups(policy), groups(history), clients=200)


def test_the_threshold_is_fixed_in_params_with_its_recorded_decision():
    assert BASE.gate.max_replay_wait_widening == {WAIT: 4}
    added = [d for d in BASE.decisions if "max_replay_wait_widening" in d.by]
    assert len(added) == 1 and added[0].date == "2026-12-01" and "before" in added[0].reason


def test_equal_waits_pass_with_a_widening_of_zero():
    result = judge(
        EMPTY,
        params=_params(),
        replay=_replay({"female": (10, 80), "male": (10, 90)}, {"female": (10, 70), "male": (10, 95)}),
    )
    assert result.passed, result.failures
    row = result.table.set_index("check").loc["max_replay_wait_widening"]
    assert row["value"] == 0 and row["threshold"] == 4 and row["groups_judged"] == 2
    assert row["population"] == "queue" and row["statistic"] == "gap_widening_weeks"


def test_a_group_made_to_wait_longer_than_under_the_meeting_fails():
    # the meeting: both 10 weeks; the policy: women 15, men 10: the gap widens by 5 > 4 weeks
    result = judge(
        EMPTY,
        params=_params(),
        replay=_replay({"female": (15, 80), "male": (10, 90)}, {"female": (10, 70), "male": (10, 95)}),
    )
    assert not result.passed
    row = result.table.set_index("check").loc["max_replay_wait_widening"]
    assert row["value"] == 5 and (row["highest_group"], row["lowest_group"]) == ("female", "male")
    assert "gender" in result.failures[0] and "widening 5 > 4 weeks" in result.failures[0]
    # exactly at the threshold passes: 14 vs 10
    edge = judge(
        EMPTY,
        params=_params(),
        replay=_replay({"female": (14, 80), "male": (10, 90)}, {"female": (10, 70), "male": (10, 95)}),
    )
    assert edge.passed


def test_narrowing_a_historical_gap_passes():
    # the meeting made women wait 9 weeks longer; the policy 1 week: a widening of -8 weeks
    result = judge(
        EMPTY,
        params=_params(),
        replay=_replay({"female": (11, 80), "male": (10, 90)}, {"female": (19, 70), "male": (10, 95)}),
    )
    assert result.passed
    assert result.table.set_index("check").loc["max_replay_wait_widening", "value"] == -8


def test_groups_too_small_are_named_and_not_judged():
    # x: 12 placed by the policy (< 30): not judged, named in the note; the other two are judged
    three = _replay(
        {"female": (10, 80), "male": (11, 90), "x": (30, 12)}, {"female": (10, 70), "male": (10, 95), "x": (10, 40)}
    )
    result = judge(EMPTY, params=_params(), replay=three)
    assert result.passed
    row = result.table.set_index("check").loc["max_replay_wait_widening"]
    assert row["groups_judged"] == 2 and row["value"] == 1
    assert "x (12 placed by the policy, 40 by the meeting)" in row["note"]
    # too small in the meeting's history counts the same (the same definition: the median's own denominator)
    history_small = _replay({"female": (10, 80), "male": (20, 90)}, {"female": (10, 29), "male": (10, 95)})
    unjudged = judge(EMPTY, params=_params(), replay=history_small)
    assert not unjudged.passed and "cannot judge" in unjudged.failures[0]
    assert "female (80 placed by the policy, 29 by the meeting)" in unjudged.table.iloc[0]["note"]


def test_an_unknown_waiting_metric_is_a_user_error():
    with pytest.raises(UserError, match="max_replay_wait_widening"):
        dataclasses.replace(BASE.gate, max_replay_wait_widening={"mean_wait": 4.0})
