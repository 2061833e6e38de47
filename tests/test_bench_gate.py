"""The gate's error-rate benchmark: the planted-disparity knob of the generator and the rate statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.config import build, section
from features.load import load_dataset
from pipelines.bench_gate import GATE, PLANTED_ATTRIBUTE, PLANTED_GROUP, clopper_pearson, summarise, world_params
from synthetic.generate import (
    TRUTH_PAIRS_FILE,
    GenerateParams,
    GroupEffect,
    generate_dataset,
    group_shifts,
    load_truth_coefs,
)
from synthetic.truth import true_p_sustained
from tests.conftest import small_generate_params
from tests.helpers import PARAMS
from tests.test_synthetic import _truth_inputs

BASE = section(PARAMS, "generate", GenerateParams)


def test_group_shifts_add_each_effect_to_its_group_only():
    protected = pd.DataFrame(
        {
            "gender": ["male", "female", "female", "x"],
            "migration_background": ["europe", "europe", "netherlands", "europe"],
        }
    )
    effects = (
        GroupEffect("gender", "female", failure_logodds=0.5),
        GroupEffect("migration_background", "europe", failure_logodds=0.25, meeting_weeks=-2.0),
    )
    fail, weeks = group_shifts(protected, effects)
    assert fail.tolist() == [0.25, 0.75, 0.5, 0.25]
    assert weeks.tolist() == [-2.0, -2.0, 0.0, -2.0]
    assert [a.tolist() for a in group_shifts(protected, ())] == [[0.0] * 4, [0.0] * 4]


def test_the_default_world_plants_nothing_and_params_can_plant_an_effect():
    assert BASE.group_effects == ()
    raw = {**PARAMS["generate"], "group_effects": [{"attribute": "gender", "group": "female", "failure_logodds": 1.0}]}
    cfg = build(GenerateParams, raw, "generate")
    assert cfg.group_effects == (GroupEffect("gender", "female", failure_logodds=1.0),)


def test_a_planted_failure_effect_shifts_only_that_groups_true_chances_by_exactly_its_log_odds(tmp_path):
    """The truth's p_sustained recomputed from the formula (which never reads a protected attribute):
    equal for everyone outside the group, and exactly `failure_logodds` more failure log-odds inside it."""
    cfg = small_generate_params(years=2.2, weekly_vacancies=5, weekly_candidates=6.0, initial_queue=40, truth_weeks=8)
    planted = dataclasses.replace(cfg, group_effects=(GroupEffect("gender", "female", failure_logodds=1.0),))
    generate_dataset(tmp_path / "data", planted, truth_dir=tmp_path / "truth")
    ds = load_dataset(tmp_path / "data")
    coefs = load_truth_coefs(tmp_path / "truth")
    pairs = pd.read_parquet(tmp_path / "truth" / TRUTH_PAIRS_FILE)
    inputs = _truth_inputs(ds, pairs, coefs)
    female = pairs["client_id"].map(ds.client_protected.set_index("client_id")["gender"]).eq("female").to_numpy()
    assert female.any() and (~female).any()
    formula = true_p_sustained(inputs, coefs)
    np.testing.assert_allclose(pairs.loc[~female, "p_sustained"], formula[~female], rtol=1e-12)

    def logit(p):
        return np.log(p / (1 - p))

    np.testing.assert_allclose(logit(formula[female]) - logit(pairs.loc[female, "p_sustained"].to_numpy()), 1.0)
    assert "Planted group effects" in (tmp_path / "truth" / "README.md").read_text()


def test_world_params_are_small_and_neutral_and_plant_the_stated_effect():
    neutral = world_params(BASE, seed=7, years=4, homes=12, failure_logodds=0.0)
    assert (neutral.seed, neutral.years, neutral.weekly_vacancies) == (7, 4, 12)
    assert neutral.weekly_candidates == pytest.approx(BASE.weekly_candidates * 12 / BASE.weekly_vacancies)
    c = neutral.clients
    assert (c.multi_person_female, c.multi_person_outside_europe, c.network_district_affinity) == (1.0, 1.0, {})
    assert c.zrm.age_physical_per_decade == 0.0 and neutral.group_effects == ()
    planted = world_params(BASE, seed=7, years=4, homes=12, failure_logodds=0.5)
    assert planted.group_effects == (GroupEffect(PLANTED_ATTRIBUTE, PLANTED_GROUP, failure_logodds=0.5),)


def test_clopper_pearson_matches_hand_computed_bounds():
    low, high = clopper_pearson(0, 20)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 20))  # 0.168
    low, high = clopper_pearson(20, 20)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 20))
    assert all(np.isnan(clopper_pearson(0, 0)))


def test_summarise_counts_failures_per_check_and_for_the_gate_as_a_whole():
    def run(seed, cal_ok, rep_ok):
        return pd.DataFrame(
            {
                "scenario": "neutral",
                "failure_logodds": 0.0,
                "seed": seed,
                "check": ["max_difference", "max_replay_ratio_drop"],
                "metric": ["calibration_error", "placement_rate"],
                "attribute": ["gender", "gender"],
                "value": [0.05, 0.0],
                "threshold": [0.10, 0.10],
                "passed": [cal_ok, rep_ok],
                "gate_passed": cal_ok and rep_ok,
            }
        )

    runs = pd.concat([run(1, True, True), run(2, False, True), run(3, False, False), run(4, True, True)])
    s = summarise(runs).set_index("check")
    assert s.loc[GATE, ["runs", "failed"]].tolist() == [4, 2]
    assert s.loc["max_difference calibration_error by gender", ["runs", "failed"]].tolist() == [4, 2]
    assert s.loc["max_replay_ratio_drop placement_rate by gender", "failure_rate"] == 0.25
    assert s.loc["max_difference calibration_error by gender", "threshold"] == 0.10
    # per family of checks: a run counts once when any of its checks failed
    assert s.loc["model checks (any)", ["runs", "failed"]].tolist() == [4, 2]
    assert s.loc["replay checks (any)", ["runs", "failed"]].tolist() == [4, 1]


def test_gate_reads_candidates_only_when_a_check_judges_the_plan_or_the_meeting():
    from fairness.audit import gate_reads_candidates
    from fairness.params import FairnessParams

    fairness = section(PARAMS, "fairness", FairnessParams)
    assert not gate_reads_candidates(fairness)  # today's gate: model checks and the replay only
    per_meeting = dataclasses.replace(fairness.gate, max_ratio_drop={"selection_rate": 0.10})
    assert gate_reads_candidates(dataclasses.replace(fairness, gate=per_meeting))
    plan_check = dataclasses.replace(fairness.gate, min_ratio={"plan.selection_rate": 0.8})
    assert gate_reads_candidates(dataclasses.replace(fairness, gate=plan_check))


def test_gate_only_keeps_exactly_the_gated_attributes():
    from fairness.params import FairnessParams
    from pipelines.bench_gate import gate_only

    fairness = section(PARAMS, "fairness", FairnessParams)
    lean = gate_only(fairness)
    assert lean.gate == fairness.gate
    available = ("gender", "age_band", "migration_background", "household_type", "care_provider", "district")
    assert set(lean.all_attributes(available)) == set(fairness.gate.attributes)


def test_pushed_back_ranks_only_the_group_as_if_it_had_waited_less():
    from pipelines.bench_gate import pushed_back

    seen = []

    def plan(pairs, waiting, params, *, benefit):
        seen.append((waiting.to_dict(), benefit))
        return pairs

    pairs = pd.DataFrame({"client_id": ["a", "b", "c"]}, index=[5, 6, 7])
    pushed_back(plan, ["b"], 4.0)(pairs, pd.Series([10.0, 10.0, 3.0], index=[5, 6, 7]), None, benefit="p")
    assert seen == [({5: 10.0, 6: 6.0, 7: 3.0}, "p")]


def test_a_client_pushed_back_in_the_replay_is_housed_later_and_their_wait_is_the_real_one():
    """The replay of tests/test_replay.py: a is housed first at W1 (ties by id); pushed back half a week, a is
    passed over at W1 (b, d waited 0) and W2 (d waited 1) and housed at W3 ahead of c (1.5 vs 1 week),
    with the 2 weeks really waited (not the pushed-back priority)."""
    from unittest import mock

    import planning.replay
    from pipelines.bench_gate import pushed_back
    from planning.assignment import AssignmentParams
    from tests.test_replay import W1, W2, W3, _history, _score

    fit = {"a": 0.5, "b": 0.9, "c": 0.99, "d": 0.6}
    run = planning.replay.replay
    fair = run(_history(), [W1, W2, W3], {"exact": AssignmentParams()}, _score(fit))["exact"].placements
    assert fair["client_id"].tolist() == ["a", "d", "c"]
    with mock.patch.object(planning.replay, "plan_policy", pushed_back(planning.replay.plan_policy, ["a"], 0.5)):
        pushed = run(_history(), [W1, W2, W3], {"exact": AssignmentParams()}, _score(fit))["exact"].placements
    assert pushed["client_id"].tolist() == ["b", "d", "a"]
    assert pushed.set_index("client_id").loc["a", "waiting_weeks"] == 2.0


def test_every_scenario_plants_on_the_stated_group_only_and_neutral_plants_nothing():
    from pipelines.bench_gate import SCENARIOS, Scenario

    assert SCENARIOS["neutral"] == Scenario()
    assert SCENARIOS["pushed_back_8w"] == Scenario(pushback_weeks=8.0)
    biased = world_params(BASE, seed=7, years=4, homes=12, failure_logodds=0.0, meeting_weeks=-8.0)
    assert biased.group_effects == (GroupEffect(PLANTED_ATTRIBUTE, PLANTED_GROUP, meeting_weeks=-8.0),)


def test_the_bench_judges_the_policy_exactly_as_fairness_gate_and_pushed_back_in_the_same_replay(small_synthetic):
    """Lean (gated attributes and metrics only, no plan-vs-meeting) and with the pushed-back policies replayed
    alongside: the policy's gate table equals `fairness_gate`'s; the pushed-back ones share its group table."""
    from fairness.audit import fairness_gate
    from fairness.params import FairnessParams
    from pipelines.bench_gate import judge_world
    from tests.test_audit import train_small

    data = small_synthetic[0]
    ds, bundle = load_dataset(data), train_small(data)
    full = fairness_gate(ds, bundle, params=section(PARAMS, "fairness", FairnessParams), config=PARAMS)
    (gate, metrics, replay), (pushed, pushed_metrics, pushed_replay) = judge_world(
        ds, bundle, PARAMS, pushback_weeks=(0.0, 8.0)
    )
    pd.testing.assert_frame_equal(gate.table, full.table)
    assert gate.failures == full.failures
    assert pushed_metrics is metrics and list(pushed_replay.columns) == list(replay.columns)
    assert set(pushed_replay["policy"]) == set(replay["policy"])
    assert list(pushed.table["check"]) == list(gate.table["check"])


def test_stored_runs_are_judged_again_with_todays_gate_under_their_own_names(tmp_path):
    """--rejudge: a run stored before a check was added is judged with it; dotted scenario names stay apart."""
    from fairness.metrics import LONG_COLUMNS
    from pipelines.bench_gate import _raw_paths, rejudge
    from tests.test_gate_wait import _replay

    empty = pd.DataFrame(columns=LONG_COLUMNS).astype({"judgeable": bool, "n": int})
    a, b = _raw_paths(tmp_path, "planted_failure_0.5", 1000)[0], _raw_paths(tmp_path, "planted_failure_0.5", 1001)[0]
    assert a != b and a.name == "planted_failure_0.5__1000.metrics.parquet"
    for scenario, seed, female in (("neutral", 1000, 10), ("planted_failure_0.5", 1001, 16)):
        metrics_file, replay_file = _raw_paths(tmp_path, scenario, seed)
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
        empty.to_parquet(metrics_file)
        _replay({"female": (female, 80), "male": (10, 90)}, {"female": (10, 70), "male": (10, 95)}).to_parquet(
            replay_file
        )
    runs = rejudge(tmp_path)
    wait = runs[(runs["check"] == "max_replay_wait_widening") & (runs["attribute"] == "gender")]
    assert wait.set_index("scenario")["value"].to_dict() == {"neutral": 0.0, "planted_failure_0.5": 6.0}
    assert wait.set_index("scenario")["passed"].to_dict() == {"neutral": True, "planted_failure_0.5": False}
    assert set(runs["seed"]) == {1000, 1001} and runs["run_s"].isna().all()
