"""The oracle comparison's prepared plans: the same plan numbers as the planner's own steps (models/oracle.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from models.oracle import _MeetingPlans
from planning.assignment import AssignmentParams

POLICIES = [
    AssignmentParams(),
    AssignmentParams(policy="pool_k", pool_factor=1.5),
    AssignmentParams(policy="everyone"),
    AssignmentParams(min_benefit=0.3),
    AssignmentParams(policy="pool_k", pool_factor=1.0, min_benefit=0.2),
]


def _meeting(seed: int, homes: int, clients: int, density: float) -> tuple[pd.DataFrame, pd.Series]:
    """A random meeting: some eligible (home, client) pairs in shuffled row order, with true chances."""
    rng = np.random.default_rng(seed)
    h, c = np.meshgrid(np.arange(homes), np.arange(clients), indexing="ij")
    keep = rng.random(h.size) < density
    keep[0] = True
    frame = pd.DataFrame(
        {
            "dwelling_id": [f"W{i:03d}" for i in h.ravel()[keep]],
            "client_id": [f"C{j:03d}" for j in c.ravel()[keep]],
            "complex_id": [f"X{i % 3}" for i in h.ravel()[keep]],
            "true_p": rng.random(int(keep.sum())),
        }
    )
    frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
    waits = pd.Series(rng.integers(0, 6, clients).astype(float), index=[f"C{j:03d}" for j in range(clients)])
    return frame, frame["client_id"].map(waits)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    homes=st.integers(1, 7),
    clients=st.integers(1, 12),
    density=st.floats(0.2, 1.0),
    policy=st.sampled_from(range(len(POLICIES))),
    ties=st.booleans(),
)
def test_prepared_plans_give_the_planners_numbers(seed, homes, clients, density, policy, ties):
    """Sum of true chances and placements of each plan equal, bit for bit, those of `plan_meeting`'s rows."""
    m, wait = _meeting(seed, homes, clients, density)
    plans = _MeetingPlans(None, m, POLICIES[policy], wait)  # type: ignore[arg-type]  # waiting given: no dataset read
    rng = np.random.default_rng(seed + 1)
    benefits = [m["true_p"].to_numpy(), rng.random(len(m)), rng.random(len(m)) - 0.2]
    if ties:  # equal benefits: the matching must break ties as the planner does
        benefits.append(np.round(rng.random(len(m)), 1))
    for benefit in benefits:
        plan = plans.plan(benefit)
        total, n = plans.outcome(benefit)
        assert n == len(plan)
        assert total == plan["true_p"].sum()  # the same float: the same rows summed in the same order


def test_a_complex_cap_goes_through_the_planner():
    """With a cap per complex the plan is an integer program: outcome reads plan_meeting's plan."""
    m, wait = _meeting(3, 5, 8, 0.8)
    plans = _MeetingPlans(None, m, AssignmentParams(complex_cap=1), wait)  # type: ignore[arg-type]
    benefit = m["true_p"].to_numpy()
    plan = plans.plan(benefit)
    assert plans.outcome(benefit) == (plan["true_p"].sum(), len(plan))
    assert plan["complex_id"].value_counts().max() == 1
    assert len(plan) == 3  # three complexes, one placement each


def test_within_client_correlations_per_batch_of_meetings_are_those_of_all_pairs():
    """Regional meetings split over batches (a date's regions in two batches): the same mean, bit for bit."""
    from models.oracle import _batch_spearman, match_ranking

    rng = np.random.default_rng(4)
    n = 4000
    region = rng.choice(["A", "B", "C"], n)
    pairs = pd.DataFrame(
        {
            "meeting_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 3, n) * 7, unit="D"),
            "region": region,
            "client_id": [f"{c:03d}-{r}" for r, c in zip(region, rng.integers(0, 40, n), strict=True)],  # not by region
            "true_p": rng.random(n).round(2),
            "model_p": rng.random(n).round(2),
        }
    ).drop_duplicates(["meeting_date", "client_id", "true_p"])
    pairs = pairs.sort_values(["meeting_date", "region"], kind="stable").reset_index(drop=True)
    ids = pd.Index(np.sort(pairs["client_id"].unique()))
    meeting = pairs.groupby(["meeting_date", "region"], sort=True).ngroup().to_numpy()
    parts = []
    for cut in ([0, 2, 5, 9], [0, 9]):  # batches of whole meetings; the first splits dates between regions
        rho = [
            _batch_spearman(b, ["model_p"], ids.get_indexer(b["client_id"]), len(ids) + 1)["model_p"]
            for b in (pairs[(meeting >= lo) & (meeting < hi)] for lo, hi in zip(cut[:-1], cut[1:], strict=True))
        ]
        parts.append(float(pd.concat(rho).sort_index().mean()))
    expected = match_ranking(pairs, "model_p")["within_client_spearman"]
    assert parts == [expected, expected]
