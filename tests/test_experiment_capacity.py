"""Capacity chosen on the calibration weeks: the prior's strength, the trees' rounds and the nuisance head's penalty."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.config import section
from features.errors import UserError
from models.bundle import ModelBundle
from models.experiment import (
    choose_capacity,
    log_loss_of_scores,
    nuisance_table,
    placement_rows,
    prior_table,
    within_standard_errors,
)
from models.ranker import TrainParams, temporal_split, train_bundle
from tests.helpers import FEATURE_PARAMS, LABEL_PARAMS, PARAMS, RULES

SHORT_SPLIT = {"test_weeks": 16, "calibration_weeks": 12}
GRID = tuple({"prior_kind": "logistic", "prior_C": C, "num_boost_round": r} for r in (0, 5, 20) for C in (0.1, 10.0))


@pytest.fixture(scope="module")
def small_rows(small_synthetic):
    from features.load import load_dataset

    ds = load_dataset(small_synthetic[0])
    return placement_rows(ds, features=FEATURE_PARAMS, labels=LABEL_PARAMS, rules=RULES)


@pytest.fixture(scope="module")
def tp():
    return dataclasses.replace(
        section(PARAMS, "train", TrainParams), prior_choice=GRID, prior_choice_se=0.0, **SHORT_SPLIT
    )


def test_within_standard_errors_by_hand():
    simple = np.array([1.0, 1.0, 1.0, 1.0])  # mean 1.00
    better = np.array([0.9, 1.0, 0.9, 1.0])  # mean 0.95: the best
    # paired differences simple - best: 0.1, 0, 0.1, 0 -> sd 0.0577, standard error 0.0289; the margin is 0.05
    chosen, se = within_standard_errors([simple, better], 1.0)
    assert se == pytest.approx([np.std([0.1, 0, 0.1, 0], ddof=1) / 2, 0.0])
    assert se[0] == pytest.approx(0.028868, abs=1e-6)
    assert chosen == 1  # 0.05 > 1 x 0.0289: the best
    assert within_standard_errors([simple, better], 2.0)[0] == 0  # 0.05 <= 2 x 0.0289: the simpler one
    assert within_standard_errors([simple, better], 0.0)[0] == 1
    assert within_standard_errors([better, better.copy()], 0.0)[0] == 0  # a tie: the first listed


def test_capacity_is_chosen_on_the_calibration_weeks_only(small_rows, tp):
    """Flipping the test weeks' outcomes changes which candidate the test weeks would pick, never the choice."""
    table = prior_table(small_rows, tp)
    assert sorted(table["candidate"]) == list(range(len(GRID))) and table["chosen"].sum() == 1
    split = temporal_split(small_rows, tp)
    part = split.part(small_rows)
    flipped = small_rows.copy()
    flipped.loc[part == "test", "sustained"] = 1 - flipped.loc[part == "test", "sustained"]
    pd.testing.assert_frame_equal(table, prior_table(flipped, tp))
    assert choose_capacity(flipped, tp)[0] == choose_capacity(small_rows, tp)[0]

    # what the test weeks would choose (each candidate as the choice fits it: fit weeks only)
    def test_week_loss(rows: pd.DataFrame, candidate: dict) -> float:
        variant = dataclasses.replace(tp.with_choice(candidate), refit_on_calibration_weeks=False)
        bundle = train_bundle(rows, split, variant)
        test = rows[part == "test"]
        return log_loss_of_scores(bundle.logodds(test), test["sustained"].astype(int).to_numpy())

    by_test = [test_week_loss(flipped, c) for c in GRID]
    chosen = int(table.loc[table["chosen"], "candidate"].iloc[0])
    assert int(np.argmin(by_test)) != chosen  # the flipped test weeks would pick another candidate
    # and the chosen one is the calibration weeks' best (prior_choice_se 0)
    assert chosen == int(table.loc[0, "candidate"])


def test_one_standard_error_rule_picks_the_simplest_candidate_near_the_best(small_rows, tp):
    wide = dataclasses.replace(tp, prior_choice_se=1e6)  # every candidate is "near": the first listed
    table = prior_table(small_rows, wide)
    assert int(table.loc[table["chosen"], "candidate"].iloc[0]) == 0
    chosen, _ = choose_capacity(small_rows, wide)
    assert chosen.lgbm.num_boost_round == 0 and chosen.prior_C == 0.1
    one_se = prior_table(small_rows, dataclasses.replace(tp, prior_choice_se=1.0))
    best = one_se.loc[0]
    pick = one_se.loc[one_se["chosen"]].iloc[0]
    assert pick["candidate"] <= best["candidate"]
    assert pick["validation_log_loss"] <= best["validation_log_loss"] + pick["se_minus_best"] + 1e-12
    earlier = one_se[one_se["candidate"] < pick["candidate"]]
    assert (earlier["validation_log_loss"] > best["validation_log_loss"] + earlier["se_minus_best"]).all()


@pytest.mark.parametrize("rounds", [0, 3])
def test_the_chosen_rounds_reach_the_booster(small_rows, tp, rounds, tmp_path):
    chosen = tp.with_choice({"prior_kind": "logistic", "prior_C": 1.0, "num_boost_round": rounds})
    bundle = train_bundle(small_rows, temporal_split(small_rows, chosen), chosen)
    trees = bundle.booster.dump_model()["tree_info"]
    if rounds == 0:  # the prior alone: one tree that never splits and adds nothing
        assert len(trees) == 1 and trees[0]["num_leaves"] == 1
        X = small_rows.head(50)
        assert bundle.logodds(X) == pytest.approx(bundle.prior.score(X))
        contrib, base = bundle.contributions(X)
        assert base + contrib.sum(axis=1).to_numpy() == pytest.approx(bundle.score(X))
        assert bundle.metadata["capacity"].startswith("no trees after the prior (the prior alone), prior strength C 1")
        loaded = ModelBundle.load(bundle.save(tmp_path / "model"))  # the model folder keeps it
        assert loaded.logodds(X) == pytest.approx(bundle.logodds(X))
    else:
        assert bundle.booster.num_trees() == rounds
        assert all(t["num_leaves"] == 2 for t in trees)
        assert bundle.metadata["capacity"].startswith("3 boosted trees of 2 leaves after the prior")


def test_nuisance_penalty_is_chosen_by_calibration_week_deviance(small_rows, tp):
    choice = dataclasses.replace(tp, prior_choice=(), nuisance_alpha_choice=(0.001, 0.1, 10.0))
    table = nuisance_table(small_rows, choice)
    assert list(table["candidate"]) != [] and table["validation_poisson_deviance"].is_monotonic_increasing
    split = temporal_split(small_rows, choice)
    part = split.part(small_rows)
    flipped = small_rows.copy()  # the test weeks' grades never change the choice
    test = (part == "test").to_numpy()
    flipped.loc[test, "grade"] = np.where(flipped.loc[test, "grade"] == 3, 1, 3)
    pd.testing.assert_frame_equal(table, nuisance_table(flipped, choice))
    chosen, tables = choose_capacity(small_rows, choice)
    assert chosen.nuisance_alpha == table.loc[0, "nuisance_alpha"] and chosen.nuisance_alpha_choice == ()
    assert set(tables) == {"nuisance_alpha_choice"}
    assert "head penalty chosen from 3" in chosen.capacity_note and "never the test weeks" in chosen.capacity_note
    bundle = train_bundle(small_rows, split, chosen)
    assert f"nuisance head penalty {chosen.nuisance_alpha:g}" in bundle.metadata["capacity"]
    # by hand: the mean Poisson deviance of the fit-week head on the sustained calibration placements
    from models.ranker import fit_nuisance_head

    head = fit_nuisance_head(small_rows[part == "fit"], dataclasses.replace(choice, nuisance_alpha=0.1))
    cal = small_rows[(part == "calibration") & (small_rows["sustained"].astype(int) == 1)]
    y = np.asarray(choice.label_gain)[cal["grade"].astype(int).to_numpy()]
    mu = np.exp(head.score(cal))
    expected = np.mean(2 * (y * np.log(y / mu) - (y - mu)))
    got = table.set_index("nuisance_alpha").loc[0.1, "validation_poisson_deviance"]
    assert got == pytest.approx(expected)


def test_capacity_choice_params_are_checked():
    base = section(PARAMS, "train", TrainParams)
    with pytest.raises(UserError, match="nuisance_alpha_choice"):
        dataclasses.replace(base, nuisance_alpha_choice=(-1.0,))
    with pytest.raises(UserError, match=">= 0; 0 = the prior alone"):
        dataclasses.replace(base, prior_choice=({"num_boost_round": -1},))
    dataclasses.replace(base, prior_choice=({"num_boost_round": 0},))  # the prior alone is a candidate
