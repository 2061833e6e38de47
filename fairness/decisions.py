"""The meeting and the plan: how often and why the meeting departed from the plan, and how it turned out.

Computed from the dataset's optional `decisions` table (the meeting's decision log,
supersession resolved: only the current records count):

- `reasons`: the current decisions by kind (`plan_followed`, `other_candidate`,
  `no_placement`, `rule_exception`) and every departure from the plan by reason code,
  with counts and shares. Over every meeting in the dataset.
- `outcomes`: for the placements the decisions made at the model's held-out meetings
  (those the audited model was not trained on), the observed sustained share among
  those with a known outcome against the model's mean predicted P(sustained) for the
  same pairs, for followed and overridden placements, with counts and the standard
  error of the observed share. For overrides with a proposal, the model's mean P of
  the pair the plan proposed is shown next to it.
- `passed_over`: of the decisions where the plan proposed a client, the share where the
  proposed client did not get the home, by protected-attribute group of that client.
  Protected attributes are read here, inside the audit, and only reported by group.

Selective labels: outcomes exist only for the homes people got. The overridden
placements are the cases the meeting judged differently, on information the model
may not have: not a random sample, so their observed share is no estimate of what
following the plan would have given, and the plan's proposal in those cases has no
outcome at all. The comparison is descriptive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fairness.attributes import attribute_frame
from fairness.context import HeldOut, PipelineParams
from fairness.params import FairnessParams
from features.contract import DECISION_REASONS, DECISIONS, OTHER_CANDIDATE, PLAN_FOLLOWED, RULE_EXCEPTION
from features.decisions import current_decisions
from features.labels import KNOWN, build_labels
from features.load import Dataset
from features.pairs import build_pair_features
from models.bundle import ModelBundle

OVERRIDDEN = "overridden (other candidate or rule exception)"
PLACING = (PLAN_FOLLOWED, OTHER_CANDIDATE, RULE_EXCEPTION)

SELECTIVE_LABELS_CAVEAT = (
    "Outcomes exist only for the homes people got. An overridden placement was chosen by the meeting "
    "on grounds the model may not see (the reason codes above), so the overridden cases are not a random "
    "sample: their observed share says how those placements went, not what following the plan would have "
    "given, and the plan's own proposal in those cases has no outcome at all. Read the comparison with "
    "the model's expected chance as a check of the model on each kind of case, not as a verdict on who "
    "decided better."
)

ROW_COLUMNS = [
    "decision_id",
    "meeting_date",
    "dwelling_id",
    "client_id",
    "decision",
    "reason",
    "proposed_client_id",
    "shown_rank",
    "model_version",
    "decided_at",
    "followed",
    "placement_id",
    "held_out",
    "status",
    "sustained",
    "probability",
    "probability_proposed",
]


@dataclass
class MeetingDecisions:
    """Everything of the audit section "the meeting and the plan"."""

    rows: pd.DataFrame  # meeting_decisions.csv: one row per current decision
    by_decision: pd.DataFrame  # decision, n, share
    by_reason: pd.DataFrame  # reason, per departing decision kind, n, share of departures
    outcomes: pd.DataFrame  # group, placements, known, observed_sustained, se, mean_probability, difference, ...
    passed_over: pd.DataFrame  # attribute, group, proposals, passed_over, share, se, judgeable
    n_records: int
    n_current: int
    caveat: str = SELECTIVE_LABELS_CAVEAT
    notes: list[str] = field(default_factory=list)


def _se(share: float, n: int) -> float:
    return float(np.sqrt(share * (1 - share) / n)) if n else float("nan")


def reason_tables(current: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Current decisions by kind (n, share of all) and the departures from the plan by reason code.

    `by_reason` has one row per reason code that occurs (contract order), the count per
    departing kind (`other_candidate`, `no_placement`, `rule_exception`), `n` and `share`
    of all departures; a last row `(no reason given)` counts departures without one.
    """
    total = len(current)
    counts = current["decision"].value_counts()
    by_decision = pd.DataFrame(
        {
            "decision": list(DECISIONS),
            "n": [int(counts.get(d, 0)) for d in DECISIONS],
        }
    )
    by_decision["share"] = by_decision["n"] / total if total else np.nan
    departing = [d for d in DECISIONS if d != PLAN_FOLLOWED]
    away = current[current["decision"].isin(departing)]
    reason = away["reason"].astype(object).where(away["reason"].notna(), "(no reason given)")
    table = pd.crosstab(reason, away["decision"]).reindex(columns=departing, fill_value=0)
    order = [r for r in (*DECISION_REASONS, "(no reason given)") if r in table.index]
    by_reason = table.reindex(order).rename_axis("reason").reset_index()
    by_reason.columns.name = None
    by_reason["n"] = by_reason[departing].sum(axis=1)
    by_reason["share"] = by_reason["n"] / len(away) if len(away) else np.nan
    return by_decision, by_reason.astype(dict.fromkeys((*departing, "n"), int))


def outcome_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Followed and overridden placements: observed sustained share vs the model's mean P, on known outcomes.

    `rows`: one row per placing decision with `decision`, `status`, `sustained` (0/1 where known),
    `probability` (the model's P for the pair) and `probability_proposed` (for the plan's proposal,
    NaN when none). Groups: `plan_followed`, `other_candidate`, `rule_exception` and `OVERRIDDEN`
    (the last two together). `difference` = observed − mean P; `se` is that of the observed share.
    """
    groups = {
        PLAN_FOLLOWED: rows["decision"] == PLAN_FOLLOWED,
        OTHER_CANDIDATE: rows["decision"] == OTHER_CANDIDATE,
        RULE_EXCEPTION: rows["decision"] == RULE_EXCEPTION,
        OVERRIDDEN: rows["decision"].isin([OTHER_CANDIDATE, RULE_EXCEPTION]),
    }
    out = []
    for name, mask in groups.items():
        part = rows[mask]
        known = part[part["status"] == KNOWN]
        n = len(known)
        observed = float(known["sustained"].astype(float).mean()) if n else np.nan
        mean_p = float(known["probability"].astype(float).mean()) if n else np.nan
        proposed = known["probability_proposed"].astype(float).dropna()
        out.append(
            {
                "group": name,
                "placements": len(part),
                "known": n,
                "observed_sustained": observed,
                "se": _se(observed, n),
                "mean_probability": mean_p,
                "difference": observed - mean_p,
                "with_proposal": len(proposed),
                "mean_probability_proposed": float(proposed.mean()) if len(proposed) else np.nan,
            }
        )
    return pd.DataFrame(out)


def passed_over_table(rows: pd.DataFrame, attrs: pd.DataFrame, *, min_group_size: int) -> pd.DataFrame:
    """Of the decisions with a proposal, the share whose proposed client did not get the home, by group.

    `rows` has `followed` (1 = plan followed); `attrs` the proposed client's attributes (same index).
    A group is judgeable with at least `min_group_size` distinct proposed clients.
    """
    out = []
    for attribute in attrs.columns:
        for group, part in rows.groupby(attrs[attribute], sort=True):
            n = len(part)
            share = float(1 - part["followed"].mean()) if n else np.nan
            out.append(
                {
                    "attribute": attribute,
                    "group": group,
                    "proposals": n,
                    "passed_over": int(n - part["followed"].sum()),
                    "share": share,
                    "se": _se(share, n),
                    "clients": int(part["proposed_client_id"].nunique()),
                    "judgeable": bool(part["proposed_client_id"].nunique() >= min_group_size),
                }
            )
    return pd.DataFrame(
        out, columns=["attribute", "group", "proposals", "passed_over", "share", "se", "clients", "judgeable"]
    )


def _link_placements(current: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Each current decision with its placement (same meeting, home and client) and that placement's label."""
    key = ["meeting_date", "dwelling_id", "client_id"]
    lab = labels[[*key, "placement_id", "status", "sustained"]].drop_duplicates(key)
    return current.merge(lab, on=key, how="left", validate="many_to_one")


def _probabilities(ds: Dataset, bundle: ModelBundle, pairs: pd.DataFrame, pipeline: PipelineParams) -> np.ndarray:
    if pairs.empty:
        return np.zeros(0)
    X = build_pair_features(ds, pairs.reset_index(drop=True), params=pipeline.features, rules=pipeline.rules)
    return np.asarray(bundle.proba(X[list(bundle.feature_names)]), dtype=float)


def meeting_and_plan(
    ds: Dataset,
    bundle: ModelBundle,
    *,
    pipeline: PipelineParams,
    period: HeldOut,
    params: FairnessParams,
) -> MeetingDecisions | None:
    """The section "the meeting and the plan" of the audit; None when the dataset has no decisions."""
    if ds.decisions is None:
        return None
    current = current_decisions(ds.decisions).reset_index(drop=True)
    by_decision, by_reason = reason_tables(current)
    labels = build_labels(ds, pipeline.labels)
    rows = _link_placements(current, labels)
    rows["followed"] = (rows["decision"] == PLAN_FOLLOWED).astype(int)
    held = rows["meeting_date"] >= period.start
    if period.end is not None:
        held &= rows["meeting_date"] <= period.end
    rows["held_out"] = held.astype(int)
    rows["probability"] = np.nan
    rows["probability_proposed"] = np.nan
    notes: list[str] = []

    placing = held & rows["decision"].isin(PLACING) & rows["client_id"].notna()
    pairs = rows.loc[placing, ["meeting_date", "dwelling_id", "client_id"]]
    rows.loc[placing, "probability"] = _probabilities(ds, bundle, pairs, pipeline)
    proposal = placing & (rows["decision"] != PLAN_FOLLOWED) & rows["proposed_client_id"].notna()
    if proposal.any():
        prop = rows.loc[proposal, ["meeting_date", "dwelling_id", "proposed_client_id"]].rename(
            columns={"proposed_client_id": "client_id"}
        )
        rows.loc[proposal, "probability_proposed"] = _probabilities(ds, bundle, prop, pipeline)
    unlinked = int((rows["decision"].isin(PLACING) & rows["placement_id"].isna()).sum())
    if unlinked:
        notes.append(
            f"{unlinked} current decision(s) that give a client a home have no placement in the data "
            "(offer refused, or not exported yet): they count in the reasons, not in the outcomes"
        )
    if not held.any():
        notes.append(
            "no decision falls in the model's held-out period: outcomes are not compared "
            "(the model was trained on those meetings)"
        )
    outcome_rows = rows[placing & rows["placement_id"].notna()]
    outcomes = outcome_table(outcome_rows)

    with_proposal = rows[rows["proposed_client_id"].notna()].copy()
    if len(with_proposal) and ds.client_protected is not None:
        props = with_proposal.assign(client_id=with_proposal["proposed_client_id"])
        attrs = attribute_frame(ds, props, params=params)
        attrs = attrs[[c for c in attrs.columns if c != "district"]]
        passed = passed_over_table(with_proposal, attrs, min_group_size=params.min_group_size)
    else:
        passed = passed_over_table(with_proposal, pd.DataFrame(index=with_proposal.index), min_group_size=1)
    return MeetingDecisions(
        rows=rows.reindex(columns=ROW_COLUMNS),
        by_decision=by_decision,
        by_reason=by_reason,
        outcomes=outcomes,
        passed_over=passed,
        n_records=len(ds.decisions),
        n_current=len(current),
        notes=notes,
    )
