"""Priority policies: who may be placed (the policy), which home (fit); literal cases and the exact policy's properties."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.sparse.csgraph import maximum_bipartite_matching

from features.errors import UserError
from planning.assignment import AssignmentParams
from planning.priority import longest_waiting_matchable, plan_policy, policy_clients

EXACT = AssignmentParams(policy="exact_longest_waiting")


def meeting(rows: list[tuple], waits: dict[str, float]) -> tuple[pd.DataFrame, pd.Series]:
    cols = ["dwelling_id", "client_id", "p_sustained", "complex_id"][: len(rows[0])]
    pairs = pd.DataFrame(rows, columns=cols)
    return pairs, pairs["client_id"].map(waits).astype(float)


def placed(plan: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(plan["dwelling_id"], plan["client_id"], strict=True))


def test_exact_skips_only_who_cannot_be_placed_whatever_the_model_says():
    # a (10 weeks) and b (8) both fit only H1; c (5) fits H1 and H2. The model loves b for H1.
    pairs, wait = meeting(
        [("H1", "a", 0.30), ("H1", "b", 0.99), ("H1", "c", 0.50), ("H2", "c", 0.40)], {"a": 10, "b": 8, "c": 5}
    )
    assert longest_waiting_matchable(pairs, wait) == ["a", "c"]
    assert placed(plan_policy(pairs, wait, EXACT, benefit="p_sustained")) == {("H1", "a"), ("H2", "c")}
    # everyone: the model decides who, and b wins H1
    everyone = plan_policy(pairs, wait, AssignmentParams(policy="everyone"), benefit="p_sustained")
    assert placed(everyone) == {("H1", "b"), ("H2", "c")}


def test_exact_reroutes_a_longer_waiter_to_make_room():
    # a (10) fits H1 and H2, b (9) only H1: both can be placed if a takes H2 (augmenting path).
    pairs, wait = meeting([("H1", "a", 0.9), ("H2", "a", 0.1), ("H1", "b", 0.1)], {"a": 10, "b": 9})
    assert longest_waiting_matchable(pairs, wait) == ["a", "b"]
    plan = plan_policy(pairs, wait, EXACT, benefit="p_sustained")
    assert placed(plan) == {("H2", "a"), ("H1", "b")}  # all placed, though a alone at H1 has more total (0.9 > 0.2)
    assert placed(plan_policy(pairs, wait, AssignmentParams(policy="everyone"), benefit="p_sustained")) == {("H1", "a")}


def test_exact_picks_the_best_fit_among_plans_placing_the_same_clients():
    # a (10) and b (9) fit both homes; c (1) is not needed. Fit: a-H2 + b-H1 = 1.6 beats a-H1 + b-H2 = 0.7.
    rows = [("H1", "a", 0.4), ("H2", "a", 0.8), ("H1", "b", 0.8), ("H2", "b", 0.3), ("H1", "c", 0.99)]
    pairs, wait = meeting(rows, {"a": 10, "b": 9, "c": 1})
    plan = plan_policy(pairs, wait, EXACT, benefit="p_sustained")
    assert placed(plan) == {("H2", "a"), ("H1", "b")}
    assert plan["p_sustained"].sum() == pytest.approx(1.6)
    assert list(plan.columns) == list(pairs.columns)


def test_ties_in_waiting_go_by_client_id_and_pairs_at_min_benefit_do_not_count():
    pairs, wait = meeting([("H1", "b", 0.5), ("H1", "a", 0.5)], {"a": 4, "b": 4})
    assert longest_waiting_matchable(pairs, wait) == ["a"]
    pairs, wait = meeting([("H1", "a", 0.0), ("H1", "b", 0.5)], {"a": 9, "b": 4})
    assert policy_clients(pairs, wait, EXACT, benefit="p_sustained") == {"b"}


def test_pool_k_takes_k_times_homes_longest_waiting_and_lets_the_model_choose():
    rows = [("H1", "a", 0.2), ("H1", "b", 0.6), ("H1", "c", 0.9), ("H2", "a", 0.3), ("H2", "d", 0.1)]
    pairs, wait = meeting(rows, {"a": 10, "b": 9, "c": 8, "d": 7})
    params = AssignmentParams(policy="pool_k", pool_factor=1.5)  # ceil(1.5 × 2) = 3 clients: a, b, c
    assert policy_clients(pairs, wait, params, benefit="p_sustained") == {"a", "b", "c"}
    assert placed(plan_policy(pairs, wait, params, benefit="p_sustained")) == {("H1", "c"), ("H2", "a")}


def test_exact_with_a_complex_cap_still_places_the_policy_clients_it_can():
    rows = [("H1", "a", 0.9, "X"), ("H2", "b", 0.9, "X"), ("H3", "a", 0.2, "Y"), ("H3", "b", 0.1, "Y")]
    pairs, wait = meeting(rows, {"a": 5, "b": 4})
    plan = plan_policy(pairs, wait, dataclasses.replace(EXACT, complex_cap=1), benefit="p_sustained")
    assert set(plan["client_id"]) == {"a", "b"} and plan.groupby("complex_id").size().max() == 1
    assert plan["p_sustained"].sum() == pytest.approx(1.1)  # a-H1 + b-H3 (1.0) < b-H2 + a-H3 (1.1)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"policy": "fastest"}, "not a known priority policy"),
        ({"policy": "pool_k", "pool_factor": None}, "pool_factor"),
    ],
)
def test_bad_policy_params_are_user_errors(change, match):
    with pytest.raises(UserError, match=match):
        AssignmentParams(**change)


def _matchable(pairs: pd.DataFrame, clients: list[str]) -> bool:
    part = pairs[pairs["client_id"].isin(clients)]
    if part.empty:
        return not clients
    c, cu = pd.factorize(part["client_id"])
    h, hu = pd.factorize(part["dwelling_id"])
    graph = sparse.csr_array((np.ones(len(part)), (c, h)), shape=(len(cu), len(hu)))
    return int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum()) == len(clients)


@st.composite
def meetings(draw):
    homes = [f"H{i}" for i in range(draw(st.integers(1, 4)))]
    clients = [f"c{i}" for i in range(draw(st.integers(1, 6)))]
    edges = draw(
        st.lists(st.tuples(st.sampled_from(homes), st.sampled_from(clients)), min_size=1, max_size=16, unique=True)
    )
    p = draw(st.lists(st.floats(0.01, 1.0), min_size=len(edges), max_size=len(edges)))
    waits = {c: float(draw(st.integers(0, 5))) for c in clients}
    return meeting([(h, c, v) for (h, c), v in zip(edges, p, strict=True)], waits)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meetings())
def test_exact_places_the_most_possible_never_skips_a_placeable_longer_waiter_and_fits_best(case):
    pairs, wait = case
    plan = plan_policy(pairs, wait, EXACT, benefit="p_sustained")
    assert plan["dwelling_id"].is_unique and plan["client_id"].is_unique
    everyone = sorted(pairs["client_id"].unique())
    # as many placements as any plan could make (the maximum matching of all eligible pairs)
    c, cu = pd.factorize(pairs["client_id"])
    h, hu = pd.factorize(pairs["dwelling_id"])
    graph = sparse.csr_array((np.ones(len(pairs)), (c, h)), shape=(len(cu), len(hu)))
    assert len(plan) == int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())
    # a client left out could not have been placed together with everyone placed ahead of them
    order = sorted(everyone, key=lambda x: (-wait[pairs.index[pairs["client_id"] == x][0]], x))
    chosen = set(plan["client_id"])
    for i, client in enumerate(order):
        if client not in chosen:
            ahead = [x for x in order[:i] if x in chosen]
            assert not _matchable(pairs, [*ahead, client])
    # the best total fit among the plans that place exactly these clients (brute force)
    best = 0.0
    p = {(d, k): v for d, k, v in pairs[["dwelling_id", "client_id", "p_sustained"]].itertuples(index=False)}
    for homes in itertools.permutations(sorted(pairs["dwelling_id"].unique()), len(chosen)):
        combo = list(zip(homes, sorted(chosen), strict=True))
        if all(pair in p for pair in combo):
            best = max(best, sum(p[pair] for pair in combo))
    assert plan["p_sustained"].sum() == pytest.approx(best)


def _placeable_with_cap(pairs: pd.DataFrame, clients: list[str], cap: int) -> bool:
    ok = set(zip(pairs["dwelling_id"], pairs["client_id"], strict=True))
    cx = dict(zip(pairs["dwelling_id"], pairs["complex_id"], strict=True))
    for homes in itertools.permutations(sorted(cx), len(clients)):
        if all((h, c) in ok for h, c in zip(homes, clients, strict=True)):
            if max(pd.Series([cx[h] for h in homes]).value_counts(), default=0) <= cap:
                return True
    return not clients


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meetings(), st.integers(1, 2))
def test_with_a_complex_cap_the_exact_policy_is_still_priority_optimal(case, cap):
    pairs, wait = case
    pairs = pairs.assign(complex_id=pairs["dwelling_id"].map({"H0": "X", "H1": "X", "H2": "Y", "H3": "X"}))
    params = dataclasses.replace(EXACT, complex_cap=cap)
    kept = longest_waiting_matchable(pairs, wait, complex_cap=cap)
    assert _placeable_with_cap(pairs, kept, cap)
    order = sorted(pairs["client_id"].unique(), key=lambda x: (-wait[pairs.index[pairs["client_id"] == x][0]], x))
    for i, client in enumerate(order):
        if client not in kept:
            assert not _placeable_with_cap(pairs, [x for x in order[:i] if x in kept] + [client], cap)
    plan = plan_policy(pairs, wait, params, benefit="p_sustained")
    assert set(plan["client_id"]) == set(kept) and plan.groupby("complex_id").size().max() <= cap


def test_why_this_client_names_the_number_ones_own_home_or_the_policy():
    from reports.suggestions import empty_homes, why_this_client

    # H1's #1 is a (planned at H2); H2's #1 is z, not in the pool; H3's #1 is c itself.
    recs = pd.DataFrame(
        {
            "dwelling_id": ["H1", "H1", "H2", "H2", "H3", "H4"],
            "client_id": ["a", "b", "z", "a", "c", "a"],
            "rank": [1, 2, 1, 2, 1, 1],
            "waiting_weeks": [10.0, 9.0, 1.0, 10.0, 5.0, 10.0],
            "in_pool": [True, True, False, True, True, True],
        }
    )
    plan = pd.DataFrame({"dwelling_id": ["H1", "H2", "H3"], "client_id": ["b", "a", "c"], "rank": [2, 2, 1]})
    assert why_this_client(plan, recs).tolist() == [
        "#2 here; the #1 (a) is planned for H2",
        "#2 here; the #1 (z, waiting 1 weeks) is not in the policy's pool this week",
        "the home's #1",
    ]
    assert why_this_client(plan, recs, lang="nl").iloc[2] == "de #1 voor deze woning"
    # H4 has an eligible candidate (a), planned elsewhere: the sheet says so instead of a bare "no client"
    assert empty_homes(plan, recs) == [
        "H4: no client proposed although 1 eligible; every one of them is planned for another home "
        "or outside the policy's pool"
    ]


def test_no_real_difference_is_one_tolerance_and_not_placed_is_apart_from_worse_off():
    from planning.assignment import client_outcomes

    pairs = pd.DataFrame(
        {
            "dwelling_id": ["H1", "H2", "H1", "H2", "H1"],
            "client_id": ["a", "a", "b", "b", "c"],
            "p_sustained": [0.80, 0.79, 0.70, 0.60, 0.90],
        }
    )
    plan = pairs.iloc[[1, 3]]  # a: 0.79 vs best 0.80 (−0.01); b: 0.60 vs 0.70 (−0.10); c not placed
    strict = client_outcomes(pairs, plan).set_index("client_id")["status"].to_dict()
    assert strict == {"a": "worse_off", "b": "worse_off", "c": "not_placed"}
    tolerant = client_outcomes(pairs, plan, tolerance=AssignmentParams().no_real_difference)
    assert tolerant.set_index("client_id")["status"].to_dict() == {"a": "as_good", "b": "worse_off", "c": "not_placed"}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meetings(), st.sampled_from(["exact_longest_waiting", "pool_k", "everyone"]), st.integers(0, 1000))
def test_a_plan_given_the_policys_clients_is_the_plan_that_finds_them(case, policy, seed):
    """The oracle finds the policy's clients once per meeting and plans many benefits with them: same plans."""
    pairs, wait = case
    params = AssignmentParams(policy=policy, pool_factor=1.0 if policy == "pool_k" else None)
    allowed = policy_clients(pairs, wait, params, benefit="p_sustained")
    other = pairs.assign(p_sustained=np.random.default_rng(seed).random(len(pairs)))  # same plannable pairs
    for frame in (pairs, other):
        expected = plan_policy(frame, wait, params, benefit="p_sustained")
        pd.testing.assert_frame_equal(
            plan_policy(frame, wait, params, benefit="p_sustained", allowed=allowed), expected
        )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meetings(), st.integers(0, 1000), st.sampled_from([0.0, 0.3]), st.booleans())
def test_the_default_policy_planned_on_numbers_is_the_plan_of_the_frame_steps(case, seed, floor, ties):
    """plan_policy's numeric path (default policy, no cap) returns the frame steps' plan: same rows, order, dtypes."""
    from planning.priority import _plan_policy_frames

    pairs, wait = case
    rng = np.random.default_rng(seed)
    if ties:  # equal chances and equal waits: the tie-breaks (client_id, the solver's numbering) must agree
        pairs = pairs.assign(p_sustained=np.round(pairs["p_sustained"].to_numpy(), 1))
    order = rng.permutation(len(pairs))
    pairs, wait = pairs.iloc[order], wait.iloc[order]  # rows in any order, a shuffled index
    params = dataclasses.replace(EXACT, min_benefit=floor)
    expected = _plan_policy_frames(pairs, wait, params, benefit="p_sustained")
    pd.testing.assert_frame_equal(plan_policy(pairs, wait, params, benefit="p_sustained"), expected, check_exact=True)
    allowed = policy_clients(pairs, wait, params, benefit="p_sustained")
    pd.testing.assert_frame_equal(
        plan_policy(pairs, wait, params, benefit="p_sustained", allowed=allowed), expected, check_exact=True
    )
