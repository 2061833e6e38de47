"""The audit section "the meeting and the plan": numbers hand-computed on literal data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fairness.context import HeldOut, PipelineParams
from fairness.decisions import (
    OVERRIDDEN,
    SELECTIVE_LABELS_CAVEAT,
    meeting_and_plan,
    outcome_table,
    passed_over_table,
    reason_tables,
)
from fairness.params import FairnessParams
from features.config import section
from features.load import load_dataset
from reports.audit import meeting_context, meeting_decisions_frame
from tests.conftest import tiny_decisions, tiny_tables, write_dataset
from tests.helpers import FEATURE_PARAMS, LABEL_PARAMS, PARAMS, RULES

FAIRNESS = section(PARAMS, "fairness", FairnessParams)
PIPELINE = PipelineParams(features=FEATURE_PARAMS, labels=LABEL_PARAMS, rules=RULES, from_model=True)


class ZrmBundle:
    """A stand-in model: P(sustained) = zrm_finances / 5 (tiny clients 0001: 0.6, 0002: 0.4, 0003: 0.8)."""

    feature_names = ("zrm_finances",)

    def proba(self, X: pd.DataFrame) -> np.ndarray:
        return X["zrm_finances"].to_numpy(dtype=float) / 5


def _current(decisions: list[str], reasons: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"decision": decisions, "reason": pd.Series(reasons, dtype="string")})


def test_reason_tables_count_and_share():
    cur = _current(
        ["plan_followed"] * 5
        + ["other_candidate", "other_candidate", "no_placement", "rule_exception", "no_placement"],
        [None] * 5 + ["client_preference", "urgency", "urgency", "urgency", None],
    )
    by_decision, by_reason = reason_tables(cur)
    assert by_decision.set_index("decision")["n"].to_dict() == {
        "plan_followed": 5,
        "other_candidate": 2,
        "no_placement": 2,
        "rule_exception": 1,
    }
    assert by_decision.set_index("decision")["share"].to_dict() == pytest.approx(
        {"plan_followed": 0.5, "other_candidate": 0.2, "no_placement": 0.2, "rule_exception": 0.1}
    )
    table = by_reason.set_index("reason")
    assert list(table.index) == ["client_preference", "urgency", "(no reason given)"]  # contract order
    assert table.loc["urgency", ["other_candidate", "no_placement", "rule_exception", "n"]].tolist() == [1, 1, 1, 3]
    assert table["share"].tolist() == pytest.approx([0.2, 0.6, 0.2])


def test_reason_tables_without_departures():
    by_decision, by_reason = reason_tables(_current(["plan_followed"] * 2, [None, None]))
    assert by_decision["n"].tolist() == [2, 0, 0, 0] and by_reason.empty


def test_outcome_table_observed_vs_expected():
    rows = pd.DataFrame(
        {
            "decision": ["plan_followed"] * 5 + ["other_candidate"] * 2 + ["rule_exception"],
            "status": ["known"] * 4 + ["censored"] + ["known"] * 3,
            "sustained": pd.array([1, 1, 0, 1, pd.NA, 0, 1, 0], dtype="Int64"),
            "probability": [0.9, 0.8, 0.7, 0.6, 0.99, 0.5, 0.7, 0.4],
            "probability_proposed": [np.nan] * 5 + [0.8, np.nan, 0.9],
        }
    )
    t = outcome_table(rows).set_index("group")
    followed = t.loc["plan_followed"]
    assert (followed["placements"], followed["known"]) == (5, 4)  # the censored one is left out
    assert followed["observed_sustained"] == pytest.approx(0.75)
    assert followed["se"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4))  # 0.2165
    assert followed["mean_probability"] == pytest.approx(0.75)  # (0.9+0.8+0.7+0.6)/4, not the censored 0.99
    assert followed["difference"] == pytest.approx(0.0)
    over = t.loc[OVERRIDDEN]
    assert (over["placements"], over["known"]) == (3, 3)
    assert over["observed_sustained"] == pytest.approx(1 / 3)
    assert over["se"] == pytest.approx(math.sqrt((1 / 3) * (2 / 3) / 3))
    assert over["mean_probability"] == pytest.approx((0.5 + 0.7 + 0.4) / 3)
    assert over["difference"] == pytest.approx(1 / 3 - 1.6 / 3)
    assert (over["with_proposal"], over["mean_probability_proposed"]) == (2, pytest.approx(0.85))
    assert t.loc["rule_exception", "observed_sustained"] == 0.0 and t.loc["rule_exception", "known"] == 1


def test_outcome_table_with_nothing_known_is_empty_not_an_error():
    rows = pd.DataFrame(
        {
            "decision": ["plan_followed"],
            "status": ["censored"],
            "sustained": pd.array([pd.NA], dtype="Int64"),
            "probability": [0.8],
            "probability_proposed": [np.nan],
        }
    )
    t = outcome_table(rows).set_index("group")
    assert t.loc["plan_followed", "known"] == 0 and np.isnan(t.loc["plan_followed", "observed_sustained"])


def test_passed_over_table():
    rows = pd.DataFrame({"followed": [1, 0, 0, 1, 1], "proposed_client_id": ["a", "b", "b", "c", "d"]})
    attrs = pd.DataFrame({"gender": ["female", "male", "male", "female", "male"]})
    t = passed_over_table(rows, attrs, min_group_size=2).set_index("group")
    assert t.loc["male", ["proposals", "passed_over", "clients"]].tolist() == [3, 2, 2]
    assert t.loc["male", "share"] == pytest.approx(2 / 3)
    assert t.loc["male", "se"] == pytest.approx(math.sqrt((2 / 3) * (1 / 3) / 3))
    assert t.loc["female", "share"] == 0.0 and bool(t.loc["female", "judgeable"]) is True
    t1 = passed_over_table(rows, attrs, min_group_size=3).set_index("group")
    assert not t1["judgeable"].any()


# --- the whole section on the tiny dataset ----------------------------------------------------


@pytest.fixture
def tiny_with_decisions(tmp_path):
    return load_dataset(write_dataset(tmp_path / "d", {**tiny_tables(), "decisions": tiny_decisions()}))


def test_meeting_and_plan_on_the_tiny_dataset(tiny_with_decisions):
    """Current: DEC1 plan_followed (P1, sustained), DEC3 other_candidate instead of 0003 (P2, evicted),
    DEC4 plan_followed (P3, sustained); DEC2 (no_placement) was superseded by DEC3."""
    ds = tiny_with_decisions
    m = meeting_and_plan(
        ds, ZrmBundle(), pipeline=PIPELINE, period=HeldOut(pd.Timestamp("2023-01-01"), None), params=FAIRNESS
    )
    assert m is not None and (m.n_records, m.n_current) == (4, 3)
    assert m.by_decision.set_index("decision")["n"].to_dict()["plan_followed"] == 2
    assert m.by_reason[["reason", "other_candidate", "n", "share"]].values.tolist() == [["other", 1, 1, 1.0]]
    rows = m.rows.set_index("decision_id")
    assert rows["placement_id"].to_dict() == {"DEC1": "P1", "DEC3": "P2", "DEC4": "P3"}
    assert rows["probability"].tolist() == pytest.approx([0.6, 0.4, 0.8])
    assert rows.loc["DEC3", "probability_proposed"] == pytest.approx(0.8)  # 0003 was proposed
    out = m.outcomes.set_index("group")
    assert out.loc["plan_followed", ["known", "observed_sustained", "mean_probability"]].tolist() == pytest.approx(
        [2, 1.0, 0.7]
    )
    assert out.loc[OVERRIDDEN, ["known", "observed_sustained", "mean_probability"]].tolist() == pytest.approx(
        [1, 0.0, 0.4]
    )
    po = m.passed_over[m.passed_over["attribute"] == "gender"].set_index("group")
    # proposals: 0001 (female, followed), 0003 (x, passed over at DEC3, followed at DEC4)
    assert po.loc["x", ["proposals", "passed_over", "share"]].tolist() == [2, 1, 0.5]
    assert po.loc["female", "share"] == 0.0
    assert m.caveat == SELECTIVE_LABELS_CAVEAT and "not a random" in m.caveat


def test_outcomes_only_on_held_out_meetings(tiny_with_decisions):
    m = meeting_and_plan(
        tiny_with_decisions,
        ZrmBundle(),
        pipeline=PIPELINE,
        period=HeldOut(pd.Timestamp("2023-01-09"), None),
        params=FAIRNESS,
    )
    assert m is not None
    out = m.outcomes.set_index("group")
    assert out.loc["plan_followed", "known"] == 1 and out.loc[OVERRIDDEN, "placements"] == 0
    assert m.by_decision["n"].sum() == 3  # reasons count every meeting
    assert m.rows["held_out"].tolist() == [0, 0, 1]


def test_no_decisions_no_section(tiny_dir):
    ds = load_dataset(tiny_dir)
    period = HeldOut(pd.Timestamp("2023-01-01"), None)
    assert meeting_and_plan(ds, ZrmBundle(), pipeline=PIPELINE, period=period, params=FAIRNESS) is None
    assert meeting_context(None) is None


def test_report_context_and_csv(tiny_with_decisions):
    m = meeting_and_plan(
        tiny_with_decisions,
        ZrmBundle(),
        pipeline=PIPELINE,
        period=HeldOut(pd.Timestamp("2023-01-01"), None),
        params=FAIRNESS,
    )
    assert m is not None
    ctx = meeting_context(m)
    assert ctx is not None
    assert (ctx["followed"], ctx["departed"], ctx["n_superseded"]) == (2, 1, 1)
    assert "client_preference" not in ctx["by_reason"] and "other" in ctx["by_reason"]
    frame = meeting_decisions_frame(m)
    assert frame.loc[0, "decided_at"] == "2023-01-02T09:00:00+00:00" and frame.loc[0, "meeting_date"] == "2023-01-02"
    assert not {"gender", "age_band", "migration_background"} & set(frame.columns)
