"""Group metrics checked by hand, the gate, protected names, attributes and the plan counterfactual on tiny data."""

from __future__ import annotations

import dataclasses

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairness.attributes import age_band, attribute_frame
from fairness.audit import fairness_gate
from fairness.catalogue import CANDIDATES, METRICS, PLACEMENTS
from fairness.context import pipeline_params
from fairness.gate import judge
from fairness.guard import ProtectedAttributeError, assert_no_protected, find_protected
from fairness.metrics import group_metrics, metric_by_group
from fairness.params import FairnessParams, GateParams
from features.config import section
from features.errors import UserError
from features.load import load_dataset
from features.pairs import FEATURE_NAMES
from models.bundle import SUPPORT_FEATURES, ModelBundle, standardise, support_scale_of
from models.calibration import PlattCalibration
from tests.conftest import tiny_tables, write_dataset
from tests.helpers import PARAMS, replay_table

FAIRNESS = section(PARAMS, "fairness", FairnessParams)


def tiny_bundle(
    seed: int = 0, *, test_start: str = "2023-01-01", test_end: str = "2023-12-31", **metadata
) -> ModelBundle:
    """A small deterministic binary LightGBM on random features, wrapped as a bundle."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(300, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    y = (X["zrm_mean"] + X["rent_to_income"] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    params = {
        "objective": "binary",
        "num_leaves": 4,
        "min_data_in_leaf": 10,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    booster = lgb.train(params, lgb.Dataset(X.to_numpy(), label=y, feature_name=list(FEATURE_NAMES)), num_boost_round=5)
    scale = support_scale_of(X)
    return ModelBundle(
        booster,
        tuple(FEATURE_NAMES),
        "binary",
        PlattCalibration(1.0, 0.0),
        0.5,
        support_reference=pd.DataFrame(standardise(X, scale), columns=list(SUPPORT_FEATURES)),
        support_scale=scale,
        support_radius=1.5,
        metadata={"test_start": test_start, "test_end": test_end, **metadata},
    )


def params_with(min_group_size: int = 1, **gate) -> FairnessParams:
    base = dict(attributes=("g",), max_difference={}, min_ratio={}, max_ratio_drop={}, fail_when_unjudgeable=True)
    return FairnessParams(
        age_band_edges=(18, 25, 35, 50, 65),
        attributes=("gender",),
        intersections=(),
        min_group_size=min_group_size,
        low_support=5,
        gate=GateParams(**{**base, **gate, "attributes": ("gender",)}),
    )


# Seven held-out placements in two groups, checked by hand below.
#   female: outcome 1 1 1 0, prediction 1 1 0 0 -> selection 2/4, TPR 2/3, FPR 0/1
#   male:   outcome 1 0 0,   prediction 0 1 0   -> selection 1/3, TPR 0/1, FPR 1/2
PLACED = pd.DataFrame(
    {
        "placement_id": [f"P{i}" for i in range(7)],
        "client_id": [f"C{i}" for i in range(7)],
        "gender": ["female"] * 4 + ["male"] * 3,
        "outcome": [1, 1, 1, 0, 1, 0, 0],
        "prediction": [1, 1, 0, 0, 0, 1, 0],
        "probability": [0.9, 0.8, 0.4, 0.3, 0.4, 0.7, 0.2],
        "score": [2.0, 1.0, -0.5, -1.0, -0.5, 0.8, -1.5],
        "low_support": [0, 0, 1, 0, 1, 1, 0],
    }
)


def _value(table: pd.DataFrame, metric: str, group: str, source: str = "model") -> pd.Series:
    row = table[(table["metric"] == metric) & (table["group"] == group) & (table["source"] == source)]
    assert len(row) == 1, (metric, group, source)
    return row.iloc[0]


def test_group_rates_by_hand():
    table = group_metrics({PLACEMENTS: PLACED}, params=params_with())
    f, m = "female", "male"
    assert _value(table, "selection_rate", f)["value"] == pytest.approx(2 / 4)
    assert _value(table, "selection_rate", m)["value"] == pytest.approx(1 / 3)
    assert _value(table, "true_positive_rate", f)["value"] == pytest.approx(2 / 3)
    assert _value(table, "true_positive_rate", m)["value"] == pytest.approx(0.0)
    assert _value(table, "false_positive_rate", f)["value"] == pytest.approx(0.0)
    assert _value(table, "false_positive_rate", m)["value"] == pytest.approx(1 / 2)
    assert _value(table, "success_rate", f)["value"] == pytest.approx(3 / 4)
    assert _value(table, "mean_probability", f)["value"] == pytest.approx(0.6)
    assert _value(table, "calibration_error", f)["value"] == pytest.approx(0.6 - 0.75)
    assert _value(table, "calibration_error", m)["value"] == pytest.approx(1.3 / 3 - 1 / 3)
    assert _value(table, "brier_score", f)["value"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.09) / 4)
    assert _value(table, "brier_score", m)["value"] == pytest.approx((0.36 + 0.49 + 0.04) / 3)
    assert _value(table, "mean_score", m)["value"] == pytest.approx((-0.5 + 0.8 - 1.5) / 3)
    assert _value(table, "low_support_share", m)["value"] == pytest.approx(2 / 3)
    # Denominators: all rows, the sustained ones (TPR), the failed ones (FPR).
    assert _value(table, "selection_rate", f)["n"] == 4 and _value(table, "selection_rate", f)["support"] == 4
    assert _value(table, "true_positive_rate", f)["support"] == 3
    assert _value(table, "false_positive_rate", m)["support"] == 2
    assert _value(table, "selection_rate", f)["se"] == pytest.approx(np.sqrt(0.5 * 0.5 / 4))


def test_gaps_against_the_best_off_group():
    table = group_metrics({PLACEMENTS: PLACED}, params=params_with())
    sel = _value(table, "selection_rate", "male")
    assert sel["reference_group"] == "female"
    assert sel["difference"] == pytest.approx(1 / 3 - 1 / 2)
    assert sel["ratio"] == pytest.approx((1 / 3) / (1 / 2))
    # Lower is better for the Brier score; closest to zero for the calibration error (no ratio).
    assert _value(table, "brier_score", "female")["reference_group"] == "female"
    cal = _value(table, "calibration_error", "female")
    assert cal["reference_group"] == "male" and np.isnan(cal["ratio"])
    assert cal["difference"] == pytest.approx(-0.15 - 0.1)


def test_a_rate_without_denominator_is_empty_not_zero():
    frame = PLACED.assign(outcome=[1, 1, 1, 0, 1, 1, 1])  # no failed tenancy among men
    fpr = metric_by_group(frame, "gender", next(m for m in METRICS if m.name == "false_positive_rate"))
    assert np.isnan(fpr.set_index("group").at["male", "value"])
    assert fpr.set_index("group").at["male", "support"] == 0


def test_gate_fails_with_the_metric_named_and_passes_under_a_looser_threshold():
    table = group_metrics({PLACEMENTS: PLACED}, params=params_with())
    strict = params_with(max_difference={"model.true_positive_rate": 0.1, "model.selection_rate": 0.2})
    result = judge(table, params=strict)
    assert not result.passed
    assert result.failures == [
        "model.true_positive_rate by gender: difference 0.667 between female and male exceeds 0.100"
    ]
    row = result.table.set_index("metric").loc["true_positive_rate"]
    assert row["value"] == pytest.approx(2 / 3) and row["passed"] == False  # noqa: E712
    assert result.table.set_index("metric").loc["selection_rate", "passed"] == True  # noqa: E712 (1/6 <= 0.2)
    loose = judge(table, params=params_with(max_difference={"model.true_positive_rate": 0.7}))
    assert loose.passed and loose.failures == []


def test_gate_never_passes_what_it_cannot_judge():
    params = params_with(min_group_size=4, max_difference={"model.selection_rate": 0.5})
    table = group_metrics({PLACEMENTS: PLACED}, params=params)  # male has 3 < 4
    result = judge(table, params=params)
    assert not result.passed and "cannot judge" in result.failures[0]
    lenient = dataclasses.replace(params, gate=dataclasses.replace(params.gate, fail_when_unjudgeable=False))
    result = judge(table, params=lenient)
    assert result.passed and any("cannot judge" in w for w in result.warnings)
    assert any("gender=male" in w for w in result.warnings)


def _decisions(placed_b: list[int], planned_b: list[int]) -> pd.DataFrame:
    """Eight candidate-meetings: four women (placed 1 of 4, planned 2 of 4) and four men."""
    placed = [1, 0, 0, 0] + placed_b
    planned = [1, 1, 0, 0] + planned_b
    frame = pd.DataFrame(
        {
            "client_id": [f"C{i}" for i in range(8)],
            "gender": ["female"] * 4 + ["male"] * 4,
            "placed": placed,
            "planned": planned,
        }
    )
    frame["p_actual"] = np.where(frame["placed"] == 1, 0.7, np.nan)
    frame["p_plan"] = np.where(frame["planned"] == 1, 0.8, np.nan)
    frame["displaced"] = np.where(frame["placed"] == 1, 1 - frame["planned"], np.nan)
    frame["worse_off"] = frame["displaced"]
    frame["below_best"] = np.where(frame["planned"] == 1, 0.0, np.nan)
    frame["below_best_actual"] = np.where(frame["placed"] == 1, 1.0, np.nan)
    frame["outcome_known"] = frame["placed"]
    frame["outcome"] = np.where(frame["placed"] == 1, 1.0, np.nan)
    return frame


def test_gate_fails_when_the_plan_widens_the_meetings_selection_gap():
    params = params_with(max_ratio_drop={"selection_rate": 0.1})
    # The meeting placed one of four in both groups (ratio 1); the plan two women and no men (ratio 0).
    widened = group_metrics({CANDIDATES: _decisions([1, 0, 0, 0], [0, 0, 0, 0])}, params=params)
    result = judge(widened, params=params)
    assert not result.passed
    assert "plan vs human selection_rate by gender: the plan widens the gap" in result.failures[0]
    assert _value(widened, "selection_rate", "male", "plan")["value"] == 0
    assert _value(widened, "displaced_share", "male", "plan")["value"] == 1
    # The plan selecting both groups equally passes.
    equal = group_metrics({CANDIDATES: _decisions([1, 0, 0, 0], [1, 1, 0, 0])}, params=params)
    assert judge(equal, params=params).passed


def test_candidate_support_counts_distinct_clients():
    frame = _decisions([1, 0, 0, 0], [1, 1, 0, 0])
    frame = pd.concat(
        [frame, frame.assign(placed=0, planned=0)], ignore_index=True
    )  # the same clients at a second meeting
    table = group_metrics({CANDIDATES: frame}, params=params_with())
    row = _value(table, "selection_rate", "female", "human")
    assert row["n"] == 8 and row["support"] == 4 and row["value"] == pytest.approx(1 / 8)


def test_age_bands():
    ages = pd.Series([17, 18, 24, 25, 49, 50, 64, 65, 90])
    assert age_band(ages, (18, 25, 35, 50, 65)).tolist() == [
        "<18",
        "18-24",
        "18-24",
        "25-34",
        "35-49",
        "50-64",
        "50-64",
        "65+",
        "65+",
    ]


def test_attributes_of_the_tiny_dataset(tiny_dir):
    ds = load_dataset(tiny_dir)
    rows = ds.placements[["placement_id", "client_id", "dwelling_id", "meeting_date"]]
    attrs = attribute_frame(ds, rows, params=FAIRNESS).set_index(rows["placement_id"])
    # Born 1980, 1995, 1970; meetings in 2023: ages 43, 28, 53.
    assert attrs["age_band"].tolist() == ["35-49", "25-34", "50-64"]
    assert attrs["household_type"].tolist() == ["single", "multi", "single"]
    assert attrs["district"].tolist() == ["Oost", "West", "West"]
    assert attrs.at["P2", "gender_x_migration_background"] == "male / outside_europe"
    assert "district" not in attribute_frame(ds, rows.drop(columns="dwelling_id"), params=FAIRNESS)


def test_no_client_protected_is_a_clear_error(tmp_path):
    tables = tiny_tables()
    del tables["client_protected"]
    ds = load_dataset(write_dataset(tmp_path / "np", tables))
    with pytest.raises(UserError, match="no client_protected table"):
        attribute_frame(ds, ds.placements, params=FAIRNESS)
    with pytest.raises(UserError, match="no client_protected table"):
        fairness_gate(ds, tiny_bundle(), params=FAIRNESS, config=PARAMS)


def test_unknown_attribute_in_params_is_a_clear_error():
    with pytest.raises(UserError, match="unknown attribute 'religion'"):
        dataclasses.replace(FAIRNESS, attributes=("gender", "religion"))
    with pytest.raises(UserError, match="unknown metric 'model.accuracy'"):
        dataclasses.replace(FAIRNESS, gate=dataclasses.replace(FAIRNESS.gate, max_difference={"model.accuracy": 0.1}))


# ---------------------------------------------------------------------------------------------
# Protected attributes never reach the model or its tracked parameters.


def test_find_protected_catches_protected_names_in_any_spelling():
    # The guard matches names, not just the exact columns (pairs.py asserts those at import).
    assert find_protected(FEATURE_NAMES) == [] and find_protected(tiny_bundle().feature_names) == []
    assert find_protected(["zrm_mean", "Gender_x_income", "age_band", "rent_eur"]) == ["Gender_x_income", "age_band"]


def test_assert_no_protected_on_tracked_params():
    # What the trainer logs: the model's own sections of params.yaml.
    assert_no_protected(
        {k: PARAMS[k] for k in ("features", "labels", "train", "baselines", "eligibility", "assignment")}
    )
    assert_no_protected({"data.path": "/data/x", "average": 1, "coverage": 0.5, "usage": "stage", "label_gain": [0, 1]})
    for bad in (
        {"train": {"features": ["zrm_mean", "gender"]}},
        {"features": {"migration_background_weight": 1.0}},
        {"train.feature_names": "zrm_mean,birth_year"},
        {"mean_age": 40},
        {"x": {"y": "Gender_X_income"}},
    ):
        with pytest.raises(ProtectedAttributeError):
            assert_no_protected(bad)


def test_gate_fails_a_model_with_a_protected_feature(tiny_dir):
    ds = load_dataset(tiny_dir)
    bundle = tiny_bundle()
    bundle.feature_names = ("migration_background", *bundle.feature_names[1:])
    result = fairness_gate(ds, bundle, params=FAIRNESS, config=PARAMS)
    assert not result.passed and "migration_background" in result.failures[0]


def test_gate_fails_when_nothing_can_be_judged(tiny_dir):
    ds = load_dataset(tiny_dir)
    result = fairness_gate(ds, tiny_bundle(test_start="2023-01-01"), params=FAIRNESS, config=PARAMS)
    assert not result.passed  # three placements: every group is far below min_group_size
    assert all("cannot judge" in f for f in result.failures)
    no_period = tiny_bundle()
    no_period.metadata = {}
    result = fairness_gate(ds, no_period, params=FAIRNESS, config=PARAMS)
    assert not result.passed and "test_start" in result.failures[0]
    later = fairness_gate(
        ds, tiny_bundle(test_start="2024-01-01", test_end="2024-06-30"), params=FAIRNESS, config=PARAMS
    )
    assert not later.passed and "no held-out placement with a known outcome" in later.failures[0]


# ---------------------------------------------------------------------------------------------
# The plan counterfactual on the tiny dataset.


def test_candidate_decisions_on_the_tiny_dataset(tiny_dir):
    from fairness.context import held_out_meetings, held_out_period
    from fairness.counterfactual import PlanParams, candidate_decisions

    ds = load_dataset(tiny_dir)
    bundle = tiny_bundle()
    meetings = held_out_meetings(ds, held_out_period(bundle))
    dec, planned = candidate_decisions(
        ds,
        bundle,
        meetings,
        pipeline=pipeline_params(bundle, PARAMS),
        plan_params=PlanParams.from_config(PARAMS),
        tol=0.02,
    )
    dec = dec.set_index([dec["meeting_date"].dt.strftime("%Y-%m-%d"), "client_id"])
    assert len(dec) == 4  # three candidates at the first meeting, one at the second
    assert dec["placed"].to_dict() == {
        ("2023-01-02", "0001"): 1,
        ("2023-01-02", "0002"): 1,
        ("2023-01-02", "0003"): 0,
        ("2023-01-09", "0003"): 1,
    }
    # Client 0002 got D002: 3rd floor without lift in West, the district 0002 must avoid: the rules exclude it.
    assert dec.loc[("2023-01-02", "0002"), "actual_eligible"] == False  # noqa: E712
    assert dec.loc[("2023-01-02", "0001"), "actual_eligible"] == True  # noqa: E712
    assert dec.loc[("2023-01-02", "0002"), "actual_dwelling_id"] == "D002"
    # The plan is one-to-one and only over eligible pairs.
    assert not planned.duplicated(["meeting_date", "dwelling_id"]).any()
    assert not planned.duplicated(["meeting_date", "client_id"]).any()
    placed, in_plan = dec["placed"] == 1, dec["planned"] == 1
    assert (dec.loc[placed, "displaced"] == (~in_plan[placed]).astype(float)).all()
    assert dec.loc[~placed, "worse_off"].isna().all()
    assert (dec.loc[in_plan, "p_plan"] <= dec.loc[in_plan, "p_best"] + 1e-12).all()
    assert (dec.loc[in_plan, "n_eligible"] >= 1).all()
    assert dec.loc[("2023-01-02", "0003"), "outcome_known"] == 0
    assert dec.loc[("2023-01-02", "0002"), "outcome"] == 0  # evicted within the horizon


# ---------------------------------------------------------------------------------------------
# Properties: the gate's statistic is fairlearn's between-groups difference over judgeable groups.


@st.composite
def _placements(draw):
    n = draw(st.integers(min_value=4, max_value=60))
    groups = draw(st.lists(st.sampled_from(["female", "male", "x"]), min_size=n, max_size=n))
    outcome = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    prediction = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    proba = draw(st.lists(st.floats(0.01, 0.99), min_size=n, max_size=n))
    return pd.DataFrame(
        {
            "client_id": [f"C{i}" for i in range(n)],
            "gender": groups,
            "outcome": outcome,
            "prediction": prediction,
            "probability": proba,
            "score": proba,
            "low_support": prediction,
        }
    )


@given(frame=_placements(), min_size=st.integers(1, 10))
@settings(max_examples=25, deadline=None)
def test_gate_difference_is_fairlearns_between_groups_difference(frame, min_size):
    from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate

    params = params_with(
        min_group_size=min_size,
        max_difference={
            "model.selection_rate": 0.5,
            "model.true_positive_rate": 0.5,
            "model.mean_probability": 0.5,
            "model.mean_probability_sustained": 0.5,
        },
    )
    table = group_metrics({PLACEMENTS: frame}, params=params)
    checks = judge(table, params=params).table.set_index("metric")

    def mean_p(y_true, y_pred):
        return float(np.mean(y_pred))

    for metric, func, denominator, y_pred in (
        ("selection_rate", selection_rate, frame, "prediction"),
        ("true_positive_rate", true_positive_rate, frame[frame["outcome"] == 1], "prediction"),
        ("mean_probability", mean_p, frame, "probability"),
        ("mean_probability_sustained", mean_p, frame[frame["outcome"] == 1], "probability"),
    ):
        sizes = denominator.groupby("gender").size()
        judged = sizes[sizes >= min_size].index
        rows = denominator[denominator["gender"].isin(judged)]
        if len(judged) < 2:
            assert np.isnan(checks.at[metric, "value"]) and not checks.at[metric, "passed"]
            continue
        mf = MetricFrame(metrics=func, y_true=rows["outcome"], y_pred=rows[y_pred], sensitive_features=rows["gender"])
        assert checks.at[metric, "value"] == pytest.approx(mf.difference(method="between_groups"))
        part = table[(table["metric"] == metric) & table["judgeable"]]
        assert (part["difference"] <= 1e-12).all() and part["value"].between(0, 1).all()


def test_the_gate_judges_point_estimates_not_confidence_bounds():
    # female mean P among sustained (0.9 + 0.8 + 0.4) / 3 = 0.7, male 0.4: a gap of 0.3 on 3 and 1 tenancies.
    # Its standard error is large, yet the gate fails it: a confidence bound would loosen the fixed threshold.
    table = group_metrics({PLACEMENTS: PLACED}, params=params_with())
    result = judge(table, params=params_with(max_difference={"model.mean_probability_sustained": 0.29}))
    assert not result.passed
    assert result.table.iloc[0]["value"] == pytest.approx(0.3)
    assert judge(table, params=params_with(max_difference={"model.mean_probability_sustained": 0.31})).passed


def test_recorded_decisions_replace_the_unused_success_call_in_params():
    fp = section(PARAMS, "fairness", FairnessParams)
    assert "model.true_positive_rate" not in fp.gate.max_difference
    assert "model.selection_rate" not in fp.gate.max_difference
    replaced = {d.replaces.split(" (")[0] for d in fp.decisions}
    assert {
        "fairness.gate.max_difference model.true_positive_rate",
        "fairness.gate.max_difference model.selection_rate",
        "fairness.worse_off_tolerance",
    } <= replaced
    assert all(d.date == "2026-12-01" and d.reason for d in fp.decisions)
    # thresholds stay: the replacements keep the old numbers
    assert fp.gate.max_difference["model.mean_probability_sustained"] == 0.10
    assert fp.gate.max_difference["model.mean_probability"] == 0.20


def _replay_groups(policy_rates: dict, history_rates: dict, *, small: tuple = ()) -> pd.DataFrame:
    def groups(rates: dict) -> dict:
        return {g: {"placement_rate": r, "judgeable": g not in small} for g, r in rates.items()}

    return replay_table(groups(policy_rates), groups(history_rates), clients=100)


def test_the_over_time_check_compares_the_policy_as_a_queue_with_the_meeting():
    """Recorded decision 2026-12-01: the plan's placements are judged over the held-out weeks, not per meeting."""
    import dataclasses

    from fairness.gate import judge
    from fairness.metrics import LONG_COLUMNS

    base = section(PARAMS, "fairness", FairnessParams)
    gate = dataclasses.replace(base.gate, attributes=("gender",), max_difference={}, max_ratio_drop={})
    params = dataclasses.replace(base, gate=gate)
    assert gate.max_replay_ratio_drop == {"placement_rate": 0.10}
    empty = pd.DataFrame(columns=LONG_COLUMNS).astype({"judgeable": bool, "n": int})

    # the meeting housed 50% of women and 60% of men (ratio 0.833); the policy 0.50 / 0.55 (0.909): no drop
    fair = judge(
        empty, params=params, replay=_replay_groups({"female": 0.5, "male": 0.55}, {"female": 0.5, "male": 0.6})
    )
    assert fair.passed, fair.failures
    row = fair.table.iloc[0]
    assert row["check"] == "max_replay_ratio_drop" and row["value"] == pytest.approx(0.5 / 0.6 - 0.5 / 0.55)

    # 0.40 / 0.60 (0.667): a drop of 0.167 > 0.10 fails, naming the attribute and both ratios
    wide = judge(
        empty, params=params, replay=_replay_groups({"female": 0.4, "male": 0.6}, {"female": 0.5, "male": 0.6})
    )
    assert not wide.passed
    assert "gender" in wide.failures[0] and "0.667" in wide.failures[0] and "0.833" in wide.failures[0]

    # a group too small to judge does not count; with one group left the attribute cannot be judged, and fails
    small = _replay_groups({"female": 0.1, "male": 0.6}, {"female": 0.5, "male": 0.6}, small=("female",))
    unjudged = judge(empty, params=params, replay=small)
    assert not unjudged.passed and "cannot judge" in unjudged.failures[0]
