"""The deployed model: the evaluated model's settings refitted on everything known at as_of; its age."""

from __future__ import annotations

import dataclasses
import re

import pandas as pd
import pytest

from features.config import section
from features.errors import UserError
from models.deploy import (
    DEPLOYED,
    EVALUATED,
    DeployParams,
    age_warning,
    data_range,
    deployment_split,
    known_at,
    model_age_days,
    train_deployed,
)
from models.experiment import placement_rows
from models.ranker import TrainParams, temporal_split, train_bundle
from tests.helpers import FEATURE_PARAMS, LABEL_PARAMS, PARAMS, RULES

SHORT_SPLIT = {"test_weeks": 16, "calibration_weeks": 12}


@pytest.fixture(scope="module")
def small(small_synthetic):
    from features.load import load_dataset

    ds = load_dataset(small_synthetic[0])
    rows = placement_rows(ds, features=FEATURE_PARAMS, labels=LABEL_PARAMS, rules=RULES)
    return ds, rows


@pytest.fixture(scope="module")
def tp():
    return dataclasses.replace(section(PARAMS, "train", TrainParams), **SHORT_SPLIT)


def _settings(model_string: str) -> str:
    """The `parameters:` block LightGBM writes into a model file (objective, leaves, rate, seed, ...)."""
    return model_string[model_string.index("parameters:") : model_string.index("end of parameters")]


def test_refit_keeps_the_evaluated_models_settings(small, tp):
    ds, rows = small
    tuned = dataclasses.replace(tp, lgbm=dataclasses.replace(tp.lgbm, num_boost_round=37, learning_rate=0.07))
    evaluated = train_bundle(rows, temporal_split(rows, tuned), tuned)
    deployed, split = train_deployed(rows, as_of=ds.as_of, params=tuned)
    a, b = evaluated.booster.model_to_string(), deployed.booster.model_to_string()
    assert _settings(a) == _settings(b)  # every LightGBM setting, as written into the model files
    assert "[learning_rate: 0.07]" in _settings(b)
    assert evaluated.booster.num_trees() == deployed.booster.num_trees() == 37
    assert deployed.objective == evaluated.objective == tuned.objective
    assert a != b  # ... but learned from more outcomes
    # The prior keeps its kind, strength and inputs (only its weights are refitted on the new rows) ...
    assert deployed.metadata["prior"] == evaluated.metadata["prior"]
    assert set(deployed.prior.coef) <= set(tuned.prior_terms)
    # The nuisance head keeps its inputs and the ranking it describes (its weights are refitted too)
    assert set(deployed.nuisance.coef) == set(evaluated.nuisance.coef) == set(tuned.nuisance_terms)
    assert deployed.metadata["ranking"] == evaluated.metadata["ranking"]
    assert deployed.nuisance != evaluated.nuisance
    # ... and a rule prior keeps the rule's relative weights (only its scale is refitted).
    by_rule, _ = train_deployed(rows, as_of=ds.as_of, params=dataclasses.replace(tuned, prior_kind="rule"))
    ratios = {f: by_rule.prior.coef[f] / w for f, w in tuned.prior_weights.items()}
    assert max(ratios.values()) == pytest.approx(min(ratios.values()))
    md = deployed.metadata
    assert md["role"] == DEPLOYED and md["test_start"] is None
    assert md["n_trees_fitted_on"] == len(known_at(rows, ds.as_of)) > evaluated.metadata["n_trees_fitted_on"]
    assert md["refit_on_calibration_weeks"] is True and md["n_calibration"] > 0
    assert pd.Timestamp(md["train_end"]) == rows.loc[rows["outcome_known_on"] <= ds.as_of, "meeting_date"].max()
    assert pd.Timestamp(md["train_end"]) > pd.Timestamp(evaluated.metadata["test_start"])


@pytest.mark.parametrize("rounds", [0, 20])
def test_refit_keeps_the_capacity_chosen_on_the_calibration_weeks(small, tp, rounds):
    """The rounds, the prior's strength and the head's penalty the choice picked reach the deployed model too."""
    from models.experiment import choose_capacity

    ds, rows = small
    offered = dataclasses.replace(
        tp,
        prior_choice=({"prior_kind": "logistic", "prior_C": 0.3, "num_boost_round": rounds},),
        nuisance_alpha_choice=(0.05,),
    )
    chosen, _ = choose_capacity(rows, offered)
    assert (chosen.lgbm.num_boost_round, chosen.prior_C, chosen.nuisance_alpha) == (rounds, 0.3, 0.05)
    evaluated = train_bundle(rows, temporal_split(rows, chosen), chosen)
    deployed, _ = train_deployed(rows, as_of=ds.as_of, params=chosen)
    for bundle in (evaluated, deployed):
        trees = bundle.booster.dump_model()["tree_info"]
        assert len(trees) == max(rounds, 1) and (rounds > 0 or trees[0]["num_leaves"] == 1)
    assert deployed.metadata["capacity"] == evaluated.metadata["capacity"]
    assert "prior strength C 0.3" in deployed.metadata["capacity"]
    assert "nuisance head penalty 0.05" in deployed.metadata["capacity"]
    assert "chosen from 1 candidates by calibration-week log-loss" in deployed.metadata["capacity"]


def test_deployment_split_learns_from_every_known_week_and_calibrates_on_the_latest(small, tp):
    ds, rows = small
    split = deployment_split(rows, ds.as_of, tp)
    part = split.part(rows)
    known = (rows["outcome_known_on"] <= ds.as_of) & (rows["meeting_date"] <= ds.as_of)
    assert part[known].isin(["fit", "calibration"]).all() and not (part == "test").any()
    cal = rows.loc[part == "calibration", "meeting_date"]
    assert cal.min() >= split.history_end - pd.Timedelta(weeks=tp.calibration_weeks)
    assert (rows.loc[part == "fit", "meeting_date"] < cal.min()).all()
    used = data_range(rows, split)
    assert used.n_placements == int(known.sum()) and used.outcomes_known_to <= f"{ds.as_of:%Y-%m-%d}"
    with pytest.raises(UserError, match="too little history for the deployed model"):
        deployment_split(rows, rows["meeting_date"].min() + pd.Timedelta(days=400), tp)


def test_deployed_model_is_point_in_time(small, tp):
    """What is not known at as_of (later outcomes, later meetings) cannot change the deployed model."""
    ds, rows = small
    as_of = ds.as_of - pd.Timedelta(days=300)
    a, _ = train_deployed(rows, as_of=as_of, params=tp)
    changed = rows.copy()
    later = (changed["outcome_known_on"] > as_of) | (changed["meeting_date"] > as_of)
    assert later.sum() > 50  # the test must change something
    changed.loc[later, "sustained"] = 1 - changed.loc[later, "sustained"]
    changed.loc[later, "grade"] = 3 - changed.loc[later, "grade"]
    changed.loc[later, "zrm_mean"] = changed.loc[later, "zrm_mean"] + 1.0
    b, _ = train_deployed(changed.sample(frac=1.0, random_state=5), as_of=as_of, params=tp)
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert a.calibration == b.calibration and a.prior == b.prior
    pd.testing.assert_frame_equal(a.support_reference, b.support_reference)
    # ... while a change in what was known does change it
    known = changed.index[~later]
    flipped = rows.copy()
    flipped.loc[known[:40], "sustained"] = 1 - flipped.loc[known[:40], "sustained"]
    c, _ = train_deployed(flipped, as_of=as_of, params=tp)
    assert c.booster.model_to_string() != a.booster.model_to_string()


def test_deployed_model_is_deterministic_from_its_seed(small, tp):
    ds, rows = small
    a, _ = train_deployed(rows, as_of=ds.as_of, params=tp)
    b, _ = train_deployed(rows.sample(frac=1.0, random_state=9), as_of=ds.as_of, params=tp)
    assert a.booster.model_to_string() == b.booster.model_to_string() and a.calibration == b.calibration
    c, _ = train_deployed(rows, as_of=ds.as_of, params=dataclasses.replace(tp, seed=tp.seed + 1))
    assert c.booster.model_to_string() != a.booster.model_to_string()


def test_model_age_and_the_warning():
    deployed = {"role": DEPLOYED, "as_of": "2025-01-01", "test_start": "2024-01-01"}
    evaluated = {"role": EVALUATED, "as_of": "2025-01-01", "test_start": "2024-01-01"}
    limit = DeployParams(max_model_age_days=180)
    assert model_age_days(deployed, pd.Timestamp("2025-06-30")) == 180
    assert model_age_days(evaluated, pd.Timestamp("2025-06-30")) == 546  # learned only up to its test weeks
    assert age_warning(deployed, pd.Timestamp("2025-06-30"), limit) is None
    text = age_warning(deployed, pd.Timestamp("2025-07-01"), limit)
    assert text is not None and re.search(r"2025-01-01, 181 days before.*max_model_age_days = 180", text)
    assert age_warning(deployed, pd.Timestamp("2030-01-01"), None) is None  # no `deploy` section: no check
    assert model_age_days({}, pd.Timestamp("2025-01-01")) is None


def test_recommend_warns_when_the_model_is_older_than_the_threshold(tmp_path):
    import subprocess
    import sys

    from features.load import load_dataset
    from features.pairs import all_meeting_pairs, build_pair_features
    from pipelines.recommend import load_config
    from synthetic.stand_in import jittered, stand_in_bundle
    from tests.conftest import tiny_tables, write_dataset

    data = write_dataset(tmp_path / "tiny", tiny_tables())
    ds = load_dataset(data)
    cfg = load_config()
    X = build_pair_features(
        ds, all_meeting_pairs(ds, ds.vacancies["meeting_date"].unique()), params=cfg.features, rules=cfg.amounts
    )
    bundle = stand_in_bundle(jittered(X, 200, seed=1), n_trees=5, num_leaves=4, min_data_in_leaf=5)
    bundle.metadata.update({"role": DEPLOYED, "as_of": "2022-01-01"})
    bundle.save(tmp_path / "model")
    args = ["recommend", "--data", str(data), "--meeting", "2023-01-02", "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", *args, "--model", str(tmp_path / "model")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    limit = PARAMS["deploy"]["max_model_age_days"]
    expected = f"warning: the model learned from what was known on 2022-01-01, 366 days before this meeting (more than params deploy.max_model_age_days = {limit})"
    assert expected in proc.stderr
