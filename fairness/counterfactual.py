"""What the model's plan would have done at the held-out meetings, next to what the meeting did.

For every held-out meeting, every (vacancy, candidate) pair is scored as of that
meeting; the eligibility rules (`planning.eligibility.apply_eligibility`) and the
one-to-one plan (`planning.priority.plan_meeting`: the priority pool of the
longest-waiting eligible clients, then `planning.assignment.plan_assignment` with
benefit = calibrated P(sustained); params.yaml `eligibility` and `assignment`),
exactly as `recommend` applies them, give the model's proposal. Per candidate-meeting the frame
holds the historical decision (`placed`, the home they got and its P(sustained)
by the model) and the plan's (`planned`, the home it proposes and its P), plus
the client's best single eligible home.

Made worse off (Kube, Das & Fowler 2019: an optimal allocation can leave many
individually worse off), with tolerance `tol` on P(sustained):
- `displaced`: the meeting placed the client, the plan gives them no home at that meeting;
- `lower_chance`: both place the client, the plan's home has P lower by more than `tol`;
- `worse_off` = displaced or lower_chance;
- `below_best`: the home given (by the plan, or by the meeting for `below_best_actual`)
  has P lower by more than `tol` than the client's best eligible home at that meeting.
Expected outcomes are the model's own estimates: the comparison is only as good
as the model's calibration and its support for homes nobody like the client got.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairness.context import PipelineParams
from features.config import section
from features.contract import REGION
from features.labels import KNOWN, build_labels
from features.load import Dataset, region_of
from features.meetings import date_batches, has_regions
from features.pairs import all_meeting_pairs, build_pair_features
from features.rules import PassendToewijzen
from models.bundle import ModelBundle
from planning.assignment import AssignmentParams
from planning.eligibility import EligibilityParams, rule_checks
from planning.priority import plan_policy

DECISION_COLUMNS = [
    "meeting_date",
    "client_id",
    "placed",
    "planned",
    "actual_dwelling_id",
    "planned_dwelling_id",
    "p_actual",
    "p_plan",
    "p_best",
    "n_eligible",
    "actual_eligible",
    "displaced",
    "lower_chance",
    "worse_off",
    "below_best",
    "below_best_actual",
    "outcome_known",
    "outcome",
]
PLANNED_COLUMNS = ["meeting_date", "dwelling_id", "client_id", "probability", "support_count"]


@dataclass(frozen=True)
class PlanParams:
    """The meeting's eligibility rules and plan settings, exactly as `recommend` applies them."""

    eligibility: EligibilityParams
    assignment: AssignmentParams

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PlanParams:
        """params.yaml `eligibility` and `assignment`."""
        return cls(
            section(dict(config), "eligibility", EligibilityParams),
            section(dict(config), "assignment", AssignmentParams),
        )


def _eligible_mask(ds: Dataset, pairs: pd.DataFrame, plan: PlanParams, rules: PassendToewijzen) -> np.ndarray:
    # the pairs apply_eligibility keeps, without writing out why the others are excluded
    return rule_checks(ds, pairs, plan.eligibility, rules).all(axis=1).to_numpy(dtype=bool)


def _scored_pairs(
    ds: Dataset,
    bundle: ModelBundle,
    meetings,
    *,
    pipeline: PipelineParams,
    plan_params: PlanParams,
    placed: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every (vacancy, candidate) pair of `meetings` with its eligibility, and its features and calibrated P.

    With `placed` (meeting_date, dwelling_id, client_id of the placements made), features and P
    are built only for the pairs the decisions read: the eligible ones and the placements made
    (an ineligible placement's chance is reported); the other pairs keep P and features empty.
    """
    pairs = all_meeting_pairs(ds, list(meetings))
    if pairs.empty:
        return pairs.assign(probability=pd.Series(dtype=float), eligible=pd.Series(dtype=bool))
    eligible = _eligible_mask(ds, pairs, plan_params, pipeline.rules)
    read = eligible.copy()
    if placed is not None:
        keys = ["meeting_date", "dwelling_id", "client_id"]
        made = pd.MultiIndex.from_frame(placed[keys].astype({"dwelling_id": str, "client_id": str}))
        read |= pd.MultiIndex.from_frame(pairs[keys].astype({"dwelling_id": str, "client_id": str})).isin(made)
    if read.any():
        X = build_pair_features(ds, pairs.loc[read], params=pipeline.features, rules=pipeline.rules)
        p = bundle.proba(X)
        X = X.reindex(pairs.index)  # rows not read: features and P empty
    else:
        X, p = pairs.copy(), np.zeros(0)
    X[["meeting_date", "dwelling_id", "client_id"]] = pairs[["meeting_date", "dwelling_id", "client_id"]]
    X[REGION] = pairs[REGION].astype(str)  # each regional meeting gets its own plan
    X["probability"] = np.nan
    X.loc[read, "probability"] = p
    X["eligible"] = eligible
    return X


class KnownScores:
    """Pairs already scored as of their meeting (P and eligibility), kept per date in a compact form.

    The plan against the meeting scores every (vacancy, candidate) pair of the held-out
    meetings; the queue replay offers the same weeks' homes to a queue that is mostly the
    same clients. A pair's eligibility and P depend only on the pair and its date, so the
    replay reads the pairs scored before and scores only the others (`score_pairs`).
    Kept per date as sorted numbers (home × client) with P and eligibility: 17 bytes a pair.
    """

    def __init__(self, ds: Dataset) -> None:
        self.homes = pd.Index(ds.dwellings["dwelling_id"].astype(str).unique())
        self.clients = pd.Index(ds.clients["client_id"].astype(str).unique())
        self.by_date: dict[pd.Timestamp, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _keys(self, pairs: pd.DataFrame) -> np.ndarray:
        home = self.homes.get_indexer(pairs["dwelling_id"].astype(str))
        client = self.clients.get_indexer(pairs["client_id"].astype(str))
        keys = home.astype(np.int64) * (len(self.clients) + 1) + client
        return np.where((home < 0) | (client < 0), -1, keys)  # an unknown id is never found

    def add(self, scored: pd.DataFrame) -> None:
        """Keep `scored` (meeting_date, dwelling_id, client_id, probability, eligible) per date."""
        if scored.empty:
            return
        keys = self._keys(scored)
        dates = pd.DatetimeIndex(scored["meeting_date"])
        for day in dates.unique():
            at = np.flatnonzero((dates == day) & (keys >= 0))
            order = at[np.argsort(keys[at], kind="stable")]
            self.by_date[pd.Timestamp(day)] = (
                keys[order],
                scored["probability"].to_numpy(dtype=float)[order],
                scored["eligible"].to_numpy(dtype=bool)[order],
            )

    def lookup(self, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, eligible, P) per row of `pairs` (any dates); rows not found are False, False, NaN."""
        n = len(pairs)
        found, eligible, p = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), np.full(n, np.nan)
        if n == 0 or not self.by_date:
            return found, eligible, p
        keys = self._keys(pairs)
        day_code, days = pd.factorize(pd.DatetimeIndex(pairs["meeting_date"]))
        order = np.argsort(day_code, kind="stable")
        bounds = np.flatnonzero(np.diff(day_code[order])) + 1
        for rows in np.split(order, bounds):  # the rows of one date each
            known = self.by_date.get(pd.Timestamp(days[day_code[rows[0]]]))
            if known is None or len(known[0]) == 0:
                continue
            at = np.minimum(np.searchsorted(known[0], keys[rows]), len(known[0]) - 1)
            hit = (keys[rows] >= 0) & (known[0][at] == keys[rows])
            found[rows[hit]] = True
            eligible[rows[hit]] = known[2][at[hit]]
            p[rows[hit]] = known[1][at[hit]]
        return found, eligible, p


def score_pairs(
    ds: Dataset,
    bundle: ModelBundle,
    pairs: pd.DataFrame,
    *,
    pipeline: PipelineParams,
    plan_params: PlanParams,
    known: KnownScores | None = None,
) -> pd.DataFrame:
    """The eligible ones of `pairs` with what a plan needs: `p_sustained` (the model's, as of each meeting) and `complex_id`.

    With `known`, pairs scored before are read from it, not scored again: the same rows, values and order.
    """
    keys = ["meeting_date", "dwelling_id", "client_id"]
    complexes = ds.dwellings.set_index("dwelling_id")["complex_id"]
    found, was_eligible, p = (
        known.lookup(pairs) if known is not None else (np.zeros(len(pairs), dtype=bool), None, None)
    )
    rest = pairs.loc[~found]
    ok = rule_checks(ds, rest, plan_params.eligibility, pipeline.rules).all(axis=1).to_numpy(bool)
    eligible = rest.loc[ok]
    p_rest = (
        bundle.proba(build_pair_features(ds, eligible, params=pipeline.features, rules=pipeline.rules))
        if len(eligible)
        else np.zeros(0)
    )
    if found.any():  # the known eligible pairs and the newly scored ones, back in the order of `pairs`
        assert was_eligible is not None and p is not None
        keep = was_eligible.copy()
        keep[np.flatnonzero(~found)[ok]] = True
        p[np.flatnonzero(~found)[ok]] = p_rest
        eligible, p_rest = pairs.loc[keep], p[keep]
    if eligible.empty:
        return eligible[keys].assign(p_sustained=pd.Series(dtype=float), complex_id=pd.Series(dtype=object))
    return eligible[keys].assign(p_sustained=p_rest, complex_id=eligible["dwelling_id"].map(complexes).to_numpy())


def _batch_decisions(
    bundle: ModelBundle,
    scored: pd.DataFrame,
    cand: pd.DataFrame,
    placements: pd.DataFrame,
    days: list,
    *,
    plan_params: PlanParams,
    tol: float,
    first_seen: pd.Series,
    complexes: pd.Series,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decisions and planned pairs of every regional meeting of one batch of dates `days`, from its scored pairs.

    `cand` are the batch's candidates (meeting_date, client_id, region as text), `placements` the
    label rows of the placements made at its dates. Each regional meeting is planned on its own
    (`plan_policy`); everything else is looked up for the whole batch at once. Rows come in the
    order of the meetings (date as in `days`, then region) and, within one, by client_id
    (decisions) or in the scored pairs' order (planned pairs).
    """
    day_index = pd.DatetimeIndex(days)
    regions = pd.Index(sorted(set(cand[REGION]) | set(scored[REGION].astype(str))))

    def meeting_of(frame: pd.DataFrame) -> np.ndarray:  # numbered in (date as in `days`, region) order
        day = day_index.get_indexer(pd.DatetimeIndex(frame["meeting_date"]))
        return day.astype(np.int64) * len(regions) + regions.get_indexer(frame[REGION].astype(str))

    out = cand.assign(_meeting=meeting_of(cand))
    out = out.sort_values(["_meeting", "client_id"], kind="stable").reset_index(drop=True)
    out["client_id"] = out["client_id"].astype(str)
    X = scored.assign(
        dwelling_id=scored["dwelling_id"].astype(str),
        client_id=scored["client_id"].astype(str),
        _meeting=meeting_of(scored),
    )
    eligible = X["eligible"].to_numpy(dtype=bool)

    # the plan: per regional meeting, its eligible pairs in the scored order
    planned_at = np.zeros(len(X), dtype=bool)
    if eligible.any():
        at = np.flatnonzero(eligible)
        at = at[np.argsort(X["_meeting"].to_numpy()[at], kind="stable")]
        bounds = np.flatnonzero(np.diff(X["_meeting"].to_numpy()[at])) + 1
        # planning.priority.waiting_weeks, with each client's first meeting looked up once for all meetings
        waiting = ((X["meeting_date"] - X["client_id"].map(first_seen)).dt.days / 7.0).fillna(0.0)
        slim = X[["dwelling_id", "client_id", "probability"]].rename(columns={"probability": "p_sustained"})
        if plan_params.assignment.complex_cap is not None:
            slim["complex_id"] = X["dwelling_id"].map(complexes).to_numpy()
        slim["_row"] = np.arange(len(X))
        for rows in np.split(at, bounds):
            options = slim.iloc[rows]
            plan = plan_policy(options, waiting.iloc[rows], plan_params.assignment, benefit="p_sustained")
            planned_at[plan["_row"].to_numpy(dtype=np.int64)] = True
    keys = ["_meeting", "client_id"]
    plan_rows = X.loc[planned_at, [*keys, "dwelling_id", "probability"]]
    plan_rows = plan_rows.rename(columns={"dwelling_id": "planned_dwelling_id", "probability": "p_plan"})
    best = X.loc[eligible].groupby(keys, sort=False)["probability"].agg(p_best="max", n_eligible="size")
    actual = placements[["meeting_date", "client_id", "dwelling_id", "status", "sustained"]].rename(
        columns={"dwelling_id": "actual_dwelling_id"}
    )
    actual["_placed"] = True
    pair = X[["_meeting", "dwelling_id", "client_id", "probability", "eligible"]].rename(
        columns={"dwelling_id": "actual_dwelling_id", "probability": "p_actual", "eligible": "_eligible"}
    )
    out = out.merge(actual, on=["meeting_date", "client_id"], how="left")
    out = out.merge(pair, on=["_meeting", "actual_dwelling_id", "client_id"], how="left")
    out = out.merge(plan_rows, on=keys, how="left")
    out = out.merge(best, left_on=keys, right_index=True, how="left")

    placed = out["_placed"].notna().to_numpy()
    in_plan = out["planned_dwelling_id"].notna().to_numpy()
    out["placed"] = placed.astype(int)
    out["planned"] = in_plan.astype(int)
    out["n_eligible"] = out["n_eligible"].fillna(0).astype(int)
    eligible_actual = pd.Series(out["_eligible"].to_numpy(dtype=object), index=out.index)
    out["actual_eligible"] = eligible_actual.where(placed).astype("boolean")
    p_plan, p_actual, p_best = (out[c].to_numpy(dtype=float) for c in ("p_plan", "p_actual", "p_best"))
    lower = in_plan & (p_plan < p_actual - tol)
    out["displaced"] = np.where(placed, (~in_plan).astype(float), np.nan)
    out["lower_chance"] = np.where(placed, lower.astype(float), np.nan)
    out["worse_off"] = np.where(placed, ((~in_plan) | lower).astype(float), np.nan)
    out["below_best"] = np.where(in_plan, (p_plan < p_best - tol).astype(float), np.nan)
    out["below_best_actual"] = np.where(placed, (p_actual < p_best - tol).astype(float), np.nan)
    out["outcome_known"] = (placed & out["status"].eq(KNOWN).to_numpy(dtype=bool)).astype(int)
    out["outcome"] = out["sustained"].astype(float).where(out["outcome_known"] == 1)

    planned_rows = X.loc[planned_at]
    planned_rows = planned_rows.iloc[np.argsort(planned_rows["_meeting"].to_numpy(), kind="stable")]
    planned_rows = planned_rows.reset_index(drop=True).assign(**{REGION: planned_rows[REGION].astype(str).to_numpy()})
    planned_rows["support_count"] = bundle.support_counts(planned_rows) if len(planned_rows) else np.zeros(0, dtype=int)
    return out[[*DECISION_COLUMNS, REGION]], planned_rows[[*PLANNED_COLUMNS, REGION]]


def candidate_decisions(
    ds: Dataset,
    bundle: ModelBundle,
    meetings: pd.DatetimeIndex,
    *,
    pipeline: PipelineParams,
    plan_params: PlanParams,
    tol: float,
    progress: Callable[[str], None] | None = None,
    chunk: int = 13,
    max_pairs: int = 200_000,
    keep: KnownScores | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (regional meeting, candidate) at `meetings`: the meeting's decision and the plan's, with expected outcomes.

    A meeting is a region on a date: each regional meeting is planned on its own, and with
    named regions both tables carry a `region` column.

    Returns (decisions, planned pairs with their P and support count). Pairs are
    built, scored and checked up to `chunk` dates at a time (one call each instead of
    one per meeting: most of the cost is per call) and at most `max_pairs` pairs (unless
    one date alone has more), so memory stays bounded whatever the number of regions.
    `keep`, when given, receives every scored pair (for the queue replay of the same weeks).
    """
    labels = build_labels(ds, pipeline.labels)
    placements = labels.assign(client_id=labels["client_id"].astype(str), dwelling_id=labels["dwelling_id"].astype(str))
    candidates = pd.DataFrame(
        {"meeting_date": ds.candidates["meeting_date"], "client_id": ds.candidates["client_id"]}
    ).assign(**{REGION: region_of(ds.candidates).astype(str).to_numpy()})
    meetings = list(meetings)
    held = candidates[candidates["meeting_date"].isin(pd.DatetimeIndex(meetings))]
    first_seen = ds.candidates.groupby("client_id")["meeting_date"].min()  # waiting weeks: looked up once
    complexes = ds.dwellings.set_index("dwelling_id")["complex_id"]  # once, not once per regional meeting
    decisions, plans = [], []
    done = 0
    for batch in date_batches(ds, meetings, max_dates=chunk, max_pairs=max_pairs):
        scored = _scored_pairs(
            ds,
            bundle,
            batch,
            pipeline=pipeline,
            plan_params=plan_params,
            placed=placements[placements["meeting_date"].isin(pd.DatetimeIndex(batch))],
        )
        # what the decisions read (the plan, P, eligibility, support of planned pairs): a narrow frame
        needed = ["meeting_date", "dwelling_id", "client_id", REGION, "probability", "eligible", *bundle.support_scale]
        scored = scored[[c for c in dict.fromkeys(needed) if c in scored.columns]]
        if keep is not None:
            keep.add(scored)
        d, p = _batch_decisions(
            bundle,
            scored,
            held[held["meeting_date"].isin(pd.DatetimeIndex(batch))],
            placements[placements["meeting_date"].isin(pd.DatetimeIndex(batch))],
            list(batch),
            plan_params=plan_params,
            tol=tol,
            first_seen=first_seen,
            complexes=complexes,
        )
        decisions.append(d)
        plans.append(p)
        done += len(batch)
        if progress is not None:
            progress(f"plan vs meeting: {done}/{len(meetings)} meetings")
    if not decisions:
        return pd.DataFrame(columns=DECISION_COLUMNS), pd.DataFrame(columns=PLANNED_COLUMNS)
    decided, planned = pd.concat(decisions, ignore_index=True), pd.concat(plans, ignore_index=True)
    if not has_regions(decided):  # one region: the tables as before, without a region column
        decided, planned = decided.drop(columns=REGION), planned.drop(columns=REGION)
    return decided, planned
