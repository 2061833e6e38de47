"""Who the meeting plan may serve: the queue comes first, the model only decides the fit.

A plan that maximises the total chance of sustained tenancies over *all*
candidates would house the most self-reliant clients first and leave the
hardest cases waiting (cream-skimming; Kube, Das & Fowler 2019). The meeting
goes by waiting time, so the plan does too: it only chooses among the
`pool_factor × vacancies` longest-waiting candidates who are eligible for at
least one of the meeting's homes, and within that pool it finds the best fit.
`pool_factor: null` lets the plan choose among every candidate (documented,
not the default).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from features.load import Dataset
from planning.assignment import plan_assignment


def waiting_weeks(ds: Dataset, pairs: pd.DataFrame) -> pd.Series:
    """Weeks each pair's client has been a candidate at its meeting (since the first meeting they appear at)."""
    first = ds.candidates.groupby("client_id")["meeting_date"].min()
    since = pairs["client_id"].map(first)
    return ((pd.to_datetime(pairs["meeting_date"]) - since).dt.days / 7.0).fillna(0.0)


def priority_pool(eligible: pd.DataFrame, waiting: pd.Series, pool_factor: float | None) -> pd.DataFrame:
    """The eligible pairs of one meeting whose client is among the longest-waiting `pool_factor × homes` clients.

    Ties in waiting time are broken by client_id, so the pool is deterministic.
    """
    if pool_factor is None or eligible.empty:
        return eligible
    homes = eligible["dwelling_id"].nunique()
    size = max(1, math.ceil(pool_factor * homes))
    clients = (
        pd.DataFrame({"client_id": eligible["client_id"], "waiting": waiting.loc[eligible.index]})
        .drop_duplicates("client_id")
        .sort_values(["waiting", "client_id"], ascending=[False, True], kind="stable")
    )
    chosen = set(clients["client_id"].head(size))
    return eligible[eligible["client_id"].isin(chosen).to_numpy(np.bool_)]


def plan_meeting(
    ds: Dataset, pairs: pd.DataFrame, params, *, benefit: str = "p_sustained", waiting: pd.Series | None = None
) -> pd.DataFrame:
    """The meeting's one-to-one plan: the priority pool first (params.pool_factor), then the best fit within it.

    `pairs` are the eligible pairs of one meeting with a `benefit` column (and
    `complex_id` when params.complex_cap is set); `params` is `AssignmentParams`;
    `waiting` (aligned with `pairs`) saves recomputing waiting weeks for repeated plans.
    """
    waiting = waiting_weeks(ds, pairs) if waiting is None else waiting
    pooled = priority_pool(pairs, waiting, params.pool_factor)
    return plan_assignment(
        pooled,
        benefit=benefit,
        complex_cap=params.complex_cap,
        min_benefit=params.min_benefit,
        time_limit_seconds=params.time_limit_seconds,
    )
