"""A plausible decision log for the synthetic meetings (`matchwijs generate --decisions`; off by default).

The synthetic history has no model plan, so the log is made up around what the
meeting did: for each placement, the plan is taken to have proposed the placed client
(`plan_followed`) with probability `followed_share`; otherwise the plan proposed another
candidate of that meeting and the meeting chose the placed client anyway
(`other_candidate`), with a reason code drawn from `reason_shares` (a note for `other`).
Each vacancy left unfilled gets a `no_placement` record with a reason and the plan's
proposal (a candidate of that meeting) when there is one. A share `changed_share` of
the decisions was first recorded differently and then superseded, as the meeting app
does. Outcomes are not touched: they come from the generator's truth, whatever the
log says. Deterministic for a seed; the other tables do not change with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import DECISION_REASONS, NO_PLACEMENT, OTHER_CANDIDATE, PLAN_FOLLOWED, REASON_OTHER, TABLES
from features.errors import UserError

ERR_SHARES = "params: synthetic_decisions.{key} must map reason codes ({known}) to shares ≥ 0 summing to 1"
NOTES = (
    "discussed with the care provider in the meeting",
    "family situation changed this week",
    "landlord asked for a different household size",
)


@dataclass(frozen=True)
class DecisionParams:
    """params.yaml `synthetic_decisions:` (see its comments)."""

    followed_share: float
    reason_shares: dict[str, float]
    no_placement_reason_shares: dict[str, float]
    changed_share: float
    chairs: int
    model_version: str
    meeting_hour: int
    time_zone: str

    def __post_init__(self) -> None:
        for key in ("reason_shares", "no_placement_reason_shares"):
            shares = getattr(self, key)
            if (
                not set(shares) <= set(DECISION_REASONS)
                or any(v < 0 for v in shares.values())
                or not np.isclose(sum(shares.values()), 1.0)
            ):
                raise UserError(ERR_SHARES.format(key=key, known=", ".join(DECISION_REASONS)))
        if not (0 <= self.followed_share <= 1 and 0 <= self.changed_share <= 1 and self.chairs >= 1):
            raise UserError("params: synthetic_decisions shares must lie in 0..1 and chairs be ≥ 1")


def _draw(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    keys = list(shares)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=[shares[k] for k in keys])]


def synthetic_decisions(
    vacancies: pd.DataFrame,
    candidates: pd.DataFrame,
    placements: pd.DataFrame,
    params: DecisionParams,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """The decisions table (contract columns, text) for the generator's meetings."""
    vac = vacancies.assign(meeting_date=pd.to_datetime(vacancies["meeting_date"]))
    cand = candidates.assign(meeting_date=pd.to_datetime(candidates["meeting_date"]))
    pl = placements.assign(meeting_date=pd.to_datetime(placements["meeting_date"]))
    pool = {d: g["client_id"].to_numpy() for d, g in cand.groupby("meeting_date")}
    placed_at = {d: set(g["client_id"]) for d, g in pl.groupby("meeting_date")}
    homes = vac.merge(pl[["meeting_date", "dwelling_id", "client_id"]], on=["meeting_date", "dwelling_id"], how="left")
    homes = homes.sort_values(["meeting_date", "dwelling_id"], kind="stable").reset_index(drop=True)

    rows: list[dict] = []
    n = len(homes)
    u_follow, u_change, u_pick = rng.random(n), rng.random(n), rng.random(n)
    reasons = _draw(rng, params.reason_shares, n)
    empty_reasons = _draw(rng, params.no_placement_reason_shares, n)
    notes = rng.integers(0, len(NOTES), size=n)
    chairs = rng.integers(1, params.chairs + 1, size=n)
    ranks = rng.integers(2, 6, size=n)
    slot = homes.groupby("meeting_date").cumcount().to_numpy()
    for i, h in enumerate(homes.itertuples(index=False)):
        when = h.meeting_date + pd.Timedelta(hours=params.meeting_hour, minutes=4 * int(slot[i]))
        stamp = when.tz_localize(params.time_zone)
        others = [c for c in pool.get(h.meeting_date, ()) if c != h.client_id]
        proposal = others[int(u_pick[i] * len(others))] if others else None
        base = {
            "meeting_date": f"{h.meeting_date:%Y-%m-%d}",
            "dwelling_id": h.dwelling_id,
            "model_version": params.model_version,
            "decided_by": f"chair-{int(chairs[i])}",
            "note": "",
            "supersedes": "",
        }
        if pd.notna(h.client_id):
            if u_follow[i] < params.followed_share or proposal is None:
                final = dict(client_id=h.client_id, decision=PLAN_FOLLOWED, reason="", proposed_client_id=h.client_id)
                final["shown_rank"] = "1"
            else:
                final = dict(
                    client_id=h.client_id,
                    decision=OTHER_CANDIDATE,
                    reason=reasons[i],
                    proposed_client_id=proposal,
                    shown_rank=str(int(ranks[i])),
                )
        else:
            final = dict(
                client_id="",
                decision=NO_PLACEMENT,
                reason=empty_reasons[i],
                proposed_client_id=proposal if proposal not in placed_at.get(h.meeting_date, set()) else "",
                shown_rank="",
            )
        if final["reason"] == REASON_OTHER:
            final["note"] = NOTES[int(notes[i])]
        first_id = f"S{h.meeting_date:%Y%m%d}-{h.dwelling_id}"
        if u_change[i] < params.changed_share:
            # First recorded as no placement for now, then changed: the log keeps both.
            rows.append(
                {
                    **base,
                    "decision_id": first_id + "-1",
                    "client_id": "",
                    "decision": NO_PLACEMENT,
                    "reason": "information_not_in_data",
                    "proposed_client_id": final["proposed_client_id"],
                    "shown_rank": "",
                    "decided_at": stamp.isoformat(),
                }
            )
            rows.append(
                {
                    **base,
                    **final,
                    "decision_id": first_id + "-2",
                    "supersedes": first_id + "-1",
                    "decided_at": (stamp + pd.Timedelta(minutes=2)).isoformat(),
                }
            )
        else:
            rows.append({**base, **final, "decision_id": first_id + "-1", "decided_at": stamp.isoformat()})
    return pd.DataFrame(rows, columns=TABLES["decisions"].column_names)
