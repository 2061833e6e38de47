"""A one-to-one plan for one meeting: each home and each client at most once, maximising total benefit.

The benefit of a pair is the calibrated chance of a sustained tenancy (P(sustained)),
so the plan maximises the expected number of sustained tenancies among the eligible
pairs. Without side constraints it is a weighted bipartite matching
(`scipy.optimize.linear_sum_assignment`); with a cap on placements per building
complex it is a small integer program solved by HiGHS (`scipy.optimize.milp`).
Both give the same optimum when no cap is set (a property test checks this).

A plan maximises the *total*; it can leave individual clients worse off than their
own best suggestion (Kube, Das & Fowler 2019). `client_outcomes` reports that per client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp

from features.errors import UserError

DWELLING, CLIENT, COMPLEX, BENEFIT = "dwelling_id", "client_id", "complex_id", "p_sustained"
SOLVERS = ("auto", "milp", "linear_sum_assignment")

ERR_DUPLICATE_PAIRS = "plan_assignment: (dwelling_id, client_id) pairs must be unique; plan one meeting at a time"
ERR_NAN_BENEFIT = "plan_assignment: benefit column {col!r} has missing values"
ERR_NO_COMPLEX = "plan_assignment: complex_cap needs a {col!r} column"
ERR_BAD_CAP = "plan_assignment: complex_cap must be a whole number ≥ 1 or None, got {cap!r}"
ERR_SOLVER = "plan_assignment: solver must be one of {solvers}, got {solver!r}"
ERR_POLICY = "params: assignment.policy {policy!r} is not a known priority policy; known: {known}"
ERR_POOL_FACTOR = "params: assignment.pool_factor must be a number above 0 for policy pool_k, got {value!r}"
ERR_TOLERANCE = "params: assignment.no_real_difference must be in [0, 1), got {value!r}"
POLICY_NAMES = ("exact_longest_waiting", "pool_k", "everyone")  # planning/priority.py documents each
ERR_MILP = "plan_assignment: the integer program did not reach an optimum ({message})"


@dataclass(frozen=True)
class AssignmentParams:
    """params.yaml `assignment`: side constraints of the meeting plan."""

    complex_cap: int | None = None  # at most this many placements per building complex per meeting
    min_benefit: float = 0.0  # pairs with benefit at or below this are never planned
    time_limit_seconds: float = 60.0
    policy: str = "exact_longest_waiting"  # who may be placed this week (planning/priority.py POLICIES)
    pool_factor: float | None = None  # policy pool_k: the pool_factor × homes longest-waiting clients
    no_real_difference: float = 0.02  # two chances closer than this are no real difference (sheet, CSV, audit)
    policy_decided: str = ""  # date the policy in force was chosen (recorded decision)
    policy_reason: str = ""  # why, on which evidence (matchwijs policies)

    def __post_init__(self) -> None:
        if self.policy not in POLICY_NAMES:
            raise UserError(ERR_POLICY.format(policy=self.policy, known=", ".join(POLICY_NAMES)))
        if self.policy == "pool_k" and (self.pool_factor is None or self.pool_factor <= 0):
            raise UserError(ERR_POOL_FACTOR.format(value=self.pool_factor))
        if not 0 <= self.no_real_difference < 1:
            raise UserError(ERR_TOLERANCE.format(value=self.no_real_difference))


def plan_assignment(
    pairs_with_benefit: pd.DataFrame,
    *,
    benefit: str = BENEFIT,
    complex_cap: int | None = None,
    min_benefit: float = 0.0,
    solver: str = "auto",
    time_limit_seconds: float = 60.0,
) -> pd.DataFrame:
    """The one-to-one plan of one meeting that maximises the total benefit.

    Args:
        pairs_with_benefit: the eligible pairs of one meeting, one row per (dwelling_id,
            client_id), with a numeric `benefit` column (and `complex_id` when
            `complex_cap` is set). Other columns are carried along.
        benefit: the column to maximise (default "p_sustained").
        complex_cap: at most this many placements per complex; None = no cap.
        min_benefit: pairs with benefit ≤ this are never planned (a pair that adds
            nothing is left for the meeting to decide).
        solver: "auto" (linear_sum_assignment without a cap, milp with one), or force one;
            linear_sum_assignment cannot take a cap.
        time_limit_seconds: limit for the integer program.

    Returns:
        The planned rows of `pairs_with_benefit` (all its columns), sorted by
        dwelling_id then client_id, with a fresh index. Empty when nothing is planned.
    """
    if solver not in SOLVERS or (solver == "linear_sum_assignment" and complex_cap is not None):
        raise ValueError(ERR_SOLVER.format(solvers=", ".join(SOLVERS), solver=solver))
    if complex_cap is not None and (
        isinstance(complex_cap, bool) or int(complex_cap) != complex_cap or complex_cap < 1
    ):
        raise ValueError(ERR_BAD_CAP.format(cap=complex_cap))
    if complex_cap is not None and COMPLEX not in pairs_with_benefit.columns:
        raise ValueError(ERR_NO_COMPLEX.format(col=COMPLEX))
    if pairs_with_benefit.duplicated([DWELLING, CLIENT]).any():
        raise ValueError(ERR_DUPLICATE_PAIRS)
    values = pairs_with_benefit[benefit].to_numpy(dtype=float)
    if np.isnan(values).any():
        raise ValueError(ERR_NAN_BENEFIT.format(col=benefit))

    candidates = pairs_with_benefit.loc[values > min_benefit]
    if candidates.empty:
        return pairs_with_benefit.iloc[0:0].reset_index(drop=True)
    w = candidates[benefit].to_numpy(dtype=float)
    d_code, _ = pd.factorize(candidates[DWELLING], sort=True)
    c_code, _ = pd.factorize(candidates[CLIENT], sort=True)
    if solver == "linear_sum_assignment" or (solver == "auto" and complex_cap is None):
        chosen = best_matching(d_code, c_code, w)
    else:
        x_code = pd.factorize(candidates[COMPLEX], sort=True)[0] if complex_cap is not None else None
        chosen = _milp(d_code, c_code, x_code, w, complex_cap, time_limit_seconds)
    plan = candidates.iloc[np.flatnonzero(chosen)]
    return plan.sort_values([DWELLING, CLIENT], kind="stable").reset_index(drop=True)


def best_matching(d_code: np.ndarray, c_code: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Which pairs (home code, client code, weight) a maximum-weight matching takes (a bool per pair).

    Codes number the homes and clients from 0 (`plan_assignment` numbers them in name order);
    pairs must be distinct. `plan_assignment` without a cap is this on its candidate pairs.
    """
    # Pairs absent from the frame weigh 0: padding a matching with them adds nothing, so the
    # best full assignment of the zero-padded matrix is a best matching of the real pairs.
    matrix = np.zeros((d_code.max() + 1, c_code.max() + 1))
    edge = np.full(matrix.shape, -1, dtype=np.int64)
    matrix[d_code, c_code] = w
    edge[d_code, c_code] = np.arange(len(w))
    rows, cols = linear_sum_assignment(matrix, maximize=True)
    picked = edge[rows, cols]
    chosen = np.zeros(len(w), dtype=bool)
    chosen[picked[picked >= 0]] = True
    return chosen


def _milp(
    d_code: np.ndarray, c_code: np.ndarray, x_code: np.ndarray | None, w: np.ndarray, cap: int | None, time_limit: float
) -> np.ndarray:
    n = len(w)
    blocks = [_incidence(d_code, n), _incidence(c_code, n)]
    upper = [np.ones(d_code.max() + 1), np.ones(c_code.max() + 1)]
    if x_code is not None and cap is not None:
        blocks.append(_incidence(x_code, n))
        upper.append(np.full(x_code.max() + 1, float(cap)))
    a = sparse.vstack(blocks, format="csr")
    res = milp(
        c=-w,
        constraints=LinearConstraint(a, -np.inf, np.concatenate(upper)),
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-9, "presolve": True},
    )
    if res.status != 0 or res.x is None:
        raise RuntimeError(ERR_MILP.format(message=res.message))
    return res.x > 0.5


def _incidence(codes: np.ndarray, n: int) -> sparse.csr_array:
    return sparse.csr_array((np.ones(n), (codes, np.arange(n))), shape=(codes.max() + 1, n))


def client_outcomes(
    pairs_with_benefit: pd.DataFrame, plan: pd.DataFrame, *, benefit: str = BENEFIT, tolerance: float = 0.0
) -> pd.DataFrame:
    """Per client: their best individual suggestion, what the plan gives them, and the difference.

    The best individual suggestion is the eligible home with the highest benefit for
    that client. `status` is "as_good" (the plan gives a home no more than `tolerance`
    below that one: no real difference, params `assignment.no_real_difference`),
    "worse_off" (a home lower by more than that) or "not_placed" (no home this week:
    reported apart from worse off). A plan can never do better than a client's own
    best, so `change` (planned − best) is ≤ 0.

    Returns:
        One row per client in `pairs_with_benefit`, sorted by client_id: client_id,
        best_dwelling_id, best_benefit, planned_dwelling_id, planned_benefit, change, status.
    """
    ordered = pairs_with_benefit.sort_values([CLIENT, benefit, DWELLING], ascending=[True, False, True], kind="stable")
    best = ordered.drop_duplicates(CLIENT)[[CLIENT, DWELLING, benefit]]
    best.columns = [CLIENT, "best_dwelling_id", "best_benefit"]
    got = plan[[CLIENT, DWELLING, benefit]].rename(
        columns={DWELLING: "planned_dwelling_id", benefit: "planned_benefit"}
    )
    out = best.merge(got, on=CLIENT, how="left", validate="one_to_one")
    out["change"] = out["planned_benefit"] - out["best_benefit"]
    placed = out["planned_dwelling_id"].notna().to_numpy()
    as_good = placed & (out["change"].to_numpy() >= -tolerance - 1e-12)
    out["status"] = np.where(as_good, "as_good", np.where(placed, "worse_off", "not_placed"))
    return out.sort_values(CLIENT, kind="stable").reset_index(drop=True)
