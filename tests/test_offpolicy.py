"""The doubly robust off-policy estimator against hand-computed cases, and the meeting's choice model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.errors import UserError
from models.offpolicy import OpeParams, dr_estimate, dr_terms, fit_choice_model, plan_target

M1, M2 = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")
PARAMS = OpeParams(clip=10.0, l2=0.0, resamples=200, level=0.9, seed=1)


def logged_pairs() -> pd.DataFrame:
    """Three homes: D1 (3 candidates), D2 (2), D3 (1); the target plans b, a and c; the meeting chose b, c, c."""
    return pd.DataFrame(
        {
            "meeting_date": [M1, M1, M1, M1, M1, M2],
            "dwelling_id": ["D1", "D1", "D1", "D2", "D2", "D3"],
            "client_id": ["a", "b", "c", "a", "c", "c"],
            "q": [0.8, 0.5, 0.6, 0.7, 0.4, 0.9],
            "propensity": [0.5, 0.25, 0.25, 0.8, 0.2, 1.0],
            "target": [0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
            "logged": [False, True, False, False, True, True],
            "outcome": [np.nan, 1.0, np.nan, np.nan, 0.0, 0.0],
        }
    )


def test_dr_terms_by_hand():
    homes = dr_terms(logged_pairs(), clip=10.0).set_index("dwelling_id")
    # D1: DM = q(b) = 0.5; w = 1/0.25 = 4; IPS = 4 * 1; DR = 0.5 + 4 * (1 - 0.5) = 2.5
    assert homes.loc["D1", ["dm", "weight", "ips", "dr"]].tolist() == pytest.approx([0.5, 4.0, 4.0, 2.5])
    # D2: the target plans a, the meeting chose c: weight 0, DR = DM = 0.7
    assert homes.loc["D2", ["dm", "weight", "ips", "dr"]].tolist() == pytest.approx([0.7, 0.0, 0.0, 0.7])
    # D3: one candidate, chosen by both: w = 1, DR = 0.9 + (0 - 0.9) = 0 = Y
    assert homes.loc["D3", ["dm", "weight", "ips", "dr"]].tolist() == pytest.approx([0.9, 1.0, 0.0, 0.0])


def test_dr_estimate_totals_by_hand():
    est = dr_estimate(logged_pairs(), PARAMS)
    assert est.dm_total == pytest.approx(2.1)
    assert est.ips_total == pytest.approx(4.0)
    assert est.dr_total == pytest.approx(3.2)
    assert est.placements == 3.0 and est.dr_per_placement == pytest.approx(3.2 / 3)
    assert est.homes == 3 and est.homes_unknown == 0 and est.clipped == 0 and est.max_weight == 4.0
    # bootstrap over the two meetings: totals are 3.2 (M1 once, M2 once), 6.4 (M1 twice) or 0 (M2 twice)
    assert 0.0 <= est.dr_low <= est.dr_total <= est.dr_high <= 6.4
    assert dr_estimate(logged_pairs(), PARAMS) == est  # seeded


def test_clipping_caps_the_weight():
    est = dr_estimate(logged_pairs(), OpeParams(clip=3.0, l2=0.0, resamples=50, level=0.9, seed=1))
    # D1's weight 4 becomes 3: IPS 3, DR 0.5 + 3 * 0.5 = 2.0; total 2.0 + 0.7 + 0 = 2.7
    assert est.clipped == 1 and est.max_weight == 3.0
    assert est.ips_total == pytest.approx(3.0) and est.dr_total == pytest.approx(2.7)


def test_unknown_outcome_and_empty_home_and_no_placement():
    pairs = logged_pairs()
    pairs.loc[5, "outcome"] = np.nan  # D3's tenancy is still within the horizon: D3 leaves every sum
    est = dr_estimate(pairs, PARAMS)
    assert est.homes == 2 and est.homes_unknown == 1
    assert est.dr_total == pytest.approx(3.2) and est.placements == 2.0
    # a home the meeting left empty and the target fills counts its DM part only
    empty = pd.DataFrame(
        {
            "meeting_date": [M2],
            "dwelling_id": ["D4"],
            "client_id": ["d"],
            "q": [0.3],
            "propensity": [1.0],
            "target": [1.0],
            "logged": [False],
            "outcome": [np.nan],
        }
    )
    est = dr_estimate(pd.concat([logged_pairs(), empty], ignore_index=True), PARAMS)
    assert est.dr_total == pytest.approx(3.5) and est.homes == 4 and est.placements == 4.0
    # a target that places nobody: DR = 0 (no DM part, every weight 0)
    nobody = logged_pairs().assign(target=0.0)
    est = dr_estimate(nobody, PARAMS)
    assert est.dr_total == 0.0 and est.placements == 0.0 and np.isnan(est.dr_per_placement)


def test_no_candidates_at_all():
    est = dr_estimate(logged_pairs().iloc[:0], PARAMS)
    assert est.homes == 0 and est.dr_total == 0.0 and np.isnan(est.dr_low)


def test_missing_column_is_a_user_error():
    with pytest.raises(UserError, match="propensity"):
        dr_terms(logged_pairs().drop(columns="propensity"), clip=10.0)


def test_the_logging_policy_itself_gives_the_observed_outcomes():
    """With pi = p (the meeting's own choice probabilities) every weight is 1: IPS is the observed sum exactly."""
    pairs = logged_pairs()
    pairs["target"] = pairs["propensity"]
    est = dr_estimate(pairs, PARAMS)
    observed = pairs.loc[pairs["logged"], "outcome"].sum()
    assert est.ips_total == pytest.approx(observed) and est.max_weight == 1.0
    # DR = observed + sum_h (E_p q - q(A_h)) = 1 + (0.675 - 0.5) + (0.64 - 0.4) + 0 = 1.415
    assert est.dr_total == pytest.approx(1.415)


def test_plan_target_marks_the_planned_pairs():
    pairs = logged_pairs()
    plan = pd.DataFrame({"meeting_date": [M1, M2], "dwelling_id": ["D1", "D3"], "client_id": ["c", "c"]})
    assert plan_target(pairs, plan).tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]


def test_choice_model_recovers_a_known_softmax():
    rng = np.random.default_rng(3)
    rows = []
    for h in range(600):
        n = int(rng.integers(2, 7))  # candidate sets of varying size
        x = rng.normal(size=(n, 2))
        u = 1.5 * x[:, 0] - 1.0 * x[:, 1] + rng.gumbel(size=n)  # Gumbel max = conditional logit
        for i in range(n):
            rows.append((h, x[i, 0], x[i, 1], i == int(np.argmax(u))))
    frame = pd.DataFrame(rows, columns=["home", "wait", "distance", "chosen"])
    model = fit_choice_model(frame[["wait", "distance"]], frame["home"], frame["chosen"], l2=0.0)
    beta = model.coef / model.scale  # back to the raw feature scale
    assert beta == pytest.approx([1.5, -1.0], abs=0.2)
    p = model.propensities(frame[["wait", "distance"]], frame["home"].to_numpy())
    assert np.allclose(frame.assign(p=p).groupby("home")["p"].sum(), 1.0)


def test_choice_model_needs_a_choice():
    frame = pd.DataFrame({"wait": [1.0, 2.0], "home": [0, 0], "chosen": [False, False]})
    with pytest.raises(UserError, match="no home with a logged choice"):
        fit_choice_model(frame[["wait"]], frame["home"], frame["chosen"], l2=0.0)


@st.composite
def random_logs(draw):
    """Homes with 1-4 candidates, a deterministic target, a logged choice, q and propensities."""
    rows = []
    for h in range(draw(st.integers(1, 5))):
        n = draw(st.integers(1, 4))
        weights = [draw(st.floats(0.05, 1.0)) for _ in range(n)]
        chosen, planned = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        for i in range(n):
            rows.append(
                {
                    "meeting_date": M1 if h % 2 else M2,
                    "dwelling_id": f"D{h}",
                    "client_id": f"c{i}",
                    "q": draw(st.floats(0.0, 1.0)),
                    "propensity": weights[i] / sum(weights),
                    "target": float(i == planned),
                    "logged": i == chosen,
                    "outcome": float(draw(st.integers(0, 1))) if i == chosen else np.nan,
                }
            )
    return pd.DataFrame(rows)


@given(random_logs())
@settings(max_examples=25, deadline=None)
def test_dr_reduces_to_dm_and_to_ips(pairs):
    params = OpeParams(clip=1e9, l2=0.0, resamples=10, level=0.9, seed=0)
    # an outcome model exact on the logged pairs leaves nothing to correct: DR = DM
    exact = pairs.copy()
    exact.loc[exact["logged"], "q"] = exact.loc[exact["logged"], "outcome"]
    est = dr_estimate(exact, params)
    assert est.dr_total == pytest.approx(est.dm_total)
    # an outcome model of zeros leaves the weights alone: DR = IPS
    est = dr_estimate(pairs.assign(q=0.0), params)
    assert est.dr_total == pytest.approx(est.ips_total) and est.dm_total == 0.0
