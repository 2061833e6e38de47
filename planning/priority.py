"""Who the meeting plan may serve (a priority policy), kept apart from which home (fit).

Two decisions, two owners. *Who* may be placed this week is decided by a named
priority policy the municipality owns (params.yaml `assignment.policy`); *which
home* each of those clients gets is decided by fit (the model's P(sustained)).
A plan that maximises the total chance over *all* candidates would house the most
self-reliant clients first and leave the hardest cases waiting (cream-skimming;
Kube, Das & Fowler 2019).

The policies and what each trades:

- `exact_longest_waiting` (default): exactly as many clients as can be placed this
  week, chosen by waiting time alone. Greedily in waiting order (ties by client_id)
  a client is kept when the kept clients can still all be matched to distinct
  eligible homes. The sets of clients that can be matched together form a
  transversal matroid, so this greedy set places the maximum number of clients and
  never skips a longer-waiting client who could have been placed. The model then
  only chooses which of those clients gets which home (all of them are placed).
  Trades: the model cannot move a better-fitting but shorter-waiting client ahead,
  so the expected number of sustained tenancies can be lower than under `pool_k`.
- `pool_k`: the `pool_factor × homes` longest-waiting eligible clients; the model
  picks who and where among them (maximum total P(sustained)). Trades: more
  expected sustained tenancies for clients passed over by someone who waited less,
  and the model partly decides who is housed.
- `everyone`: every eligible client; the model decides who and where. Trades: the
  most expected sustained tenancies, the least protection for long waiters
  (documented for comparison, not for use).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features.contract import REGION
from features.load import Dataset
from planning.assignment import CLIENT, DWELLING, POLICY_NAMES, AssignmentParams, best_matching, plan_assignment

EXACT, POOL_K, EVERYONE = POLICY_NAMES
POLICIES = POLICY_NAMES
POLICY_TEXT = {
    EXACT: "exactly as many of the longest-waiting clients as can be placed this week; the model only picks the home",
    POOL_K: "the {k} × (homes) longest-waiting eligible clients; the model picks who and where among them",
    EVERYONE: "every eligible client; the model picks who and where",
}


def describe_policy(params: AssignmentParams) -> str:
    """One line for sheets and reports: the policy in force in words."""
    return POLICY_TEXT[params.policy].format(k=params.pool_factor)


def waiting_weeks(ds: Dataset, pairs: pd.DataFrame) -> pd.Series:
    """Weeks each pair's client has been a candidate at its meeting (since the first meeting they appear at)."""
    first = ds.candidates.groupby("client_id")["meeting_date"].min()
    since = pairs["client_id"].map(first)
    dates = pairs["meeting_date"]
    if not pd.api.types.is_datetime64_any_dtype(dates):  # to_datetime inspects already-converted dates slowly
        dates = pd.to_datetime(dates)
    return ((dates - since).dt.days / 7.0).fillna(0.0)


def waiting_order(pairs: pd.DataFrame, waiting: pd.Series) -> pd.DataFrame:
    """One row per client of `pairs`: client_id and waiting, longest-waiting first (ties by client_id)."""
    return (
        pd.DataFrame({CLIENT: pairs[CLIENT].to_numpy(), "waiting": waiting.loc[pairs.index].to_numpy(dtype=float)})
        .drop_duplicates(CLIENT)
        .sort_values(["waiting", CLIENT], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )


def priority_pool(eligible: pd.DataFrame, waiting: pd.Series, pool_factor: float | None) -> pd.DataFrame:
    """The eligible pairs of one meeting whose client is among the longest-waiting `pool_factor × homes` clients.

    Ties in waiting time are broken by client_id, so the pool is deterministic.
    """
    if pool_factor is None or eligible.empty:
        return eligible
    homes = eligible[DWELLING].nunique()
    size = max(1, math.ceil(pool_factor * homes))
    chosen = set(waiting_order(eligible, waiting)[CLIENT].head(size))
    return eligible[eligible[CLIENT].isin(chosen).to_numpy(np.bool_)]


def longest_waiting_matchable(eligible: pd.DataFrame, waiting: pd.Series, *, complex_cap: int | None = None) -> list:
    """The priority-optimal set of clients who can all be placed this week, in waiting order.

    Greedy over the matroid of placeable client sets: in waiting order (ties by
    client_id), keep a client when the kept clients plus this one can still all get
    distinct eligible homes (and, with `complex_cap`, at most that many per complex
    via the `complex_id` column). Placeable sets are the sets a flow network
    (client → home → complex → sink) can route: a transversal matroid, or a gammoid
    with the cap, so the greedy set is priority-optimal. A client is kept when an
    augmenting path from them exists in the residual network of the kept clients' flow.
    """
    if eligible.empty:
        return []
    complex_of: dict = (
        dict(zip(eligible[DWELLING], eligible["complex_id"], strict=True)) if complex_cap is not None else {}
    )
    return _greedy_matchable(
        waiting_order(eligible, waiting)[CLIENT].tolist(),
        eligible[CLIENT].tolist(),
        eligible[DWELLING].tolist(),
        complex_of=complex_of,
        complex_cap=complex_cap,
    )


def _greedy_matchable(
    order: list, clients: list, homes: list, *, complex_of: dict | None = None, complex_cap: int | None = None
) -> list:
    """`longest_waiting_matchable` on plain lists: clients in waiting `order`, the pairs as (clients[i], homes[i])."""
    homes_of: dict = {}  # client -> eligible homes in row order (a plain loop: groupby costs ~25 ms a call)
    for client, home in zip(clients, homes, strict=True):
        homes_of.setdefault(client, []).append(home)
    complex_of = complex_of or {}
    holder: dict = {}  # home -> client placed there
    used: dict = {}  # complex -> homes filled in it

    def augment(client, seen: set) -> bool:
        for home in homes_of[client]:
            if home in seen:
                continue
            seen.add(home)
            if home in holder:
                if augment(holder[home], seen):
                    holder[home] = client
                    return True
            elif complex_cap is None or used.get(complex_of[home], 0) < complex_cap:
                holder[home] = client
                if complex_cap is not None:
                    used[complex_of[home]] = used.get(complex_of[home], 0) + 1
                return True
            elif _free_slot(complex_of[home], seen):
                holder[home] = client
                return True
        return False

    def _free_slot(cx, seen: set) -> bool:
        # The complex is full: move one of its placed clients to another home (outside it or not),
        # freeing a slot in `cx` (the residual path home -> complex -> other home -> ...).
        for home, client in list(holder.items()):
            if complex_of[home] != cx or home in seen:
                continue
            seen.add(home)
            del holder[home]
            if augment(client, seen):
                return True
            holder[home] = client
        return False

    kept: list = []
    n_homes = len(set(homes))  # no placeable set is larger: stop once every home is taken
    for client in order:
        if len(kept) == n_homes:
            break
        if augment(client, set()):
            kept.append(client)
    return kept


def _regions(pairs: pd.DataFrame) -> list[pd.DataFrame] | None:
    """The pairs split by regional meeting, or None when they hold a single region (the usual case)."""
    if REGION not in pairs.columns or pairs[REGION].nunique(dropna=False) <= 1:
        return None
    return [g for _, g in pairs.groupby(REGION, sort=True, dropna=False)]


def policy_clients(eligible: pd.DataFrame, waiting: pd.Series, params: AssignmentParams, *, benefit: str) -> set:
    """The clients of one meeting the policy allows the plan to place (its pool this week).

    A meeting is a region on a date: with several regions in `eligible` (column `region`), each
    regional meeting gets its own pool (for `pool_k`: k × its own homes).
    """
    parts = _regions(eligible)
    if parts is not None:
        return set().union(*(policy_clients(g, waiting, params, benefit=benefit) for g in parts))
    plannable = eligible[eligible[benefit].to_numpy(dtype=float) > params.min_benefit]
    if params.policy == EXACT:
        return set(longest_waiting_matchable(plannable, waiting, complex_cap=params.complex_cap))
    if params.policy == POOL_K:
        return set(priority_pool(plannable, waiting, params.pool_factor)[CLIENT])
    return set(plannable[CLIENT])


def plan_meeting(
    ds: Dataset,
    pairs: pd.DataFrame,
    params: AssignmentParams,
    *,
    benefit: str = "p_sustained",
    waiting=None,
    allowed: set | None = None,
) -> pd.DataFrame:
    """The meeting's one-to-one plan: who by the policy (params.policy), then which home by fit.

    `pairs` are the eligible pairs of one meeting with a `benefit` column (and
    `complex_id` when params.complex_cap is set); `waiting` (aligned with `pairs`)
    saves recomputing waiting weeks for repeated plans, and `allowed` the policy's
    clients (`policy_clients`) for repeated plans over the same plannable pairs.
    """
    waiting = waiting_weeks(ds, pairs) if waiting is None else waiting
    return plan_policy(pairs, waiting, params, benefit=benefit, allowed=allowed)


def plan_policy(
    pairs: pd.DataFrame, waiting: pd.Series, params: AssignmentParams, *, benefit: str, allowed: set | None = None
) -> pd.DataFrame:
    """`plan_meeting` without the dataset: the waiting weeks are given (aligned with `pairs`).

    Pairs of several regional meetings (column `region`) get one plan per region, concatenated.
    `allowed`, when given, is `policy_clients(pairs, waiting, params, benefit=benefit)` computed
    before: it depends on the benefit only through which pairs are above `params.min_benefit`,
    so plans of one meeting with different benefits but the same plannable pairs share it.

    The default policy without a complex cap is planned on numbers (`_exact_rows`): the same
    plan as the frame steps of `_plan_policy_frames`, which serve every other case.
    """
    parts = _regions(pairs)
    if parts is not None:
        plans = pd.concat(
            [plan_policy(g, waiting, params, benefit=benefit, allowed=allowed) for g in parts], ignore_index=True
        )
        return plans.sort_values([DWELLING, CLIENT], kind="stable").reset_index(drop=True)
    rows = _exact_rows(pairs, waiting, params, benefit=benefit, allowed=allowed)
    if rows is None:
        return _plan_policy_frames(pairs, waiting, params, benefit=benefit, allowed=allowed)
    return pairs.iloc[rows].reset_index(drop=True)


def _exact_rows(
    pairs: pd.DataFrame, waiting: pd.Series, params: AssignmentParams, *, benefit: str, allowed: set | None
) -> np.ndarray | None:
    """Positions of the rows `_plan_policy_frames` plans, in its (dwelling_id, client_id) order; None when not this case.

    The default policy without a complex cap, on one meeting's numbers: homes and clients are
    numbered in name order (as `plan_assignment` numbers them), the policy's clients found by the
    same greedy, and the plan is one `best_matching` on the same weights (benefit + the bonus).
    """
    if params.policy != EXACT or params.complex_cap is not None or pairs.empty:
        return None
    b = pairs[benefit].to_numpy(dtype=float)
    wait = waiting.loc[pairs.index].to_numpy(dtype=float) if allowed is None else None
    if np.isnan(b).any() or (wait is not None and np.isnan(wait).any()):
        return None  # plan_assignment names the missing benefit; NaN waits sort as pandas sorts them
    home, _ = pd.factorize(pairs[DWELLING], sort=True)
    client, names = pd.factorize(pairs[CLIENT], sort=True)
    if (home < 0).any() or (client < 0).any():
        return None
    n_clients = len(names)
    if len(np.unique(home.astype(np.int64) * n_clients + client)) < len(pairs):
        return None  # plan_assignment refuses duplicate pairs
    plannable = b > params.min_benefit
    if allowed is None:  # the policy's clients are not given: find them
        assert wait is not None
        at = np.flatnonzero(plannable)
        if len(at) == 0:
            return np.zeros(0, dtype=np.int64)
        # waiting_order: each client's first row, longest waiting first, ties by client_id (codes in name order)
        first = np.unique(client[at], return_index=True)[1]
        firsts = at[np.sort(first)]
        order = firsts[np.lexsort((client[firsts], -wait[firsts]))]
        kept = _greedy_matchable(client[order].tolist(), client[at].tolist(), home[at].tolist())
        in_pool = np.zeros(n_clients, dtype=bool)
        in_pool[kept] = True
        n_allowed = len(kept)
    else:
        in_pool = np.isin(np.asarray(names, dtype=object), list(allowed))
        n_allowed = len(allowed)
    return planned_rows(home, client, b, in_pool[client], n_allowed=n_allowed, params=params)


def planned_rows(
    home: np.ndarray,
    client: np.ndarray,
    benefit: np.ndarray,
    allowed_rows: np.ndarray,
    *,
    n_allowed: int,
    params: AssignmentParams,
) -> np.ndarray:
    """Positions of the pairs the plan places, in (dwelling, client) order, on one meeting's numbers.

    `home` and `client` number the meeting's homes and clients in name order (as `plan_assignment`
    numbers them), `allowed_rows` marks the pairs of the policy's `n_allowed` clients. The plannable
    ones (benefit above `params.min_benefit`) are matched by one `best_matching` on the weights the
    frame steps give them (with the exact policy's bonus of `_plan_policy_frames`): the same plan
    without a frame per plan (the oracle comparison plans every meeting 24 times).
    """
    idx = np.flatnonzero(allowed_rows & (benefit > params.min_benefit))
    if len(idx) == 0:
        return np.zeros(0, dtype=np.int64)
    w = benefit[idx]
    if params.policy == EXACT:  # every allowed client placed: the bonus of _plan_policy_frames
        w = w + (1.0 + 2.0 * n_allowed * float(np.abs(w).max()))
        idx, w = idx[w > 0.0], w[w > 0.0]
        if len(idx) == 0:
            return np.zeros(0, dtype=np.int64)
    d_code = np.unique(home[idx], return_inverse=True)[1]
    c_code = np.unique(client[idx], return_inverse=True)[1]
    chosen = idx[best_matching(d_code, c_code, w)]
    return chosen[np.lexsort((client[chosen], home[chosen]))]


def _plan_policy_frames(
    pairs: pd.DataFrame, waiting: pd.Series, params: AssignmentParams, *, benefit: str, allowed: set | None = None
) -> pd.DataFrame:
    """`plan_policy` for one meeting through the frame steps (every policy, complex caps)."""
    if allowed is None:
        allowed = policy_clients(pairs, waiting, params, benefit=benefit)
    pooled = pairs[pairs[CLIENT].isin(allowed).to_numpy(np.bool_)]
    if params.policy != EXACT or pooled.empty:
        return plan_assignment(
            pooled,
            benefit=benefit,
            complex_cap=params.complex_cap,
            min_benefit=params.min_benefit,
            time_limit_seconds=params.time_limit_seconds,
        )
    # Every allowed client must be placed: a bonus larger than any difference in total benefit
    # makes each extra placement worth more than any choice of homes, so the best plan is the
    # best-fitting one among those that place every allowed client.
    pooled = pooled[pooled[benefit].to_numpy(dtype=float) > params.min_benefit]
    w = pooled[benefit].to_numpy(dtype=float)
    bonus = 1.0 + 2.0 * len(allowed) * float(np.abs(w).max())
    plan = plan_assignment(
        pooled.assign(_objective=w + bonus),
        benefit="_objective",
        complex_cap=params.complex_cap,
        min_benefit=0.0,
        time_limit_seconds=params.time_limit_seconds,
    )
    return plan.drop(columns="_objective")
