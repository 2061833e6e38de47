"""Decision records as the data contract's tables: `decisions` (every record) and the `placements` they imply.

`contract_rows` is pure (dicts in, frames out) so the lead can point it at the shared library function later.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

DECISION_COLUMNS = [
    "decision_id",
    "meeting_date",
    "dwelling_id",
    "client_id",
    "decision",
    "reason",
    "note",
    "proposed_client_id",
    "shown_rank",
    "model_version",
    "decided_at",
    "decided_by",
    "supersedes",
]
PLACEMENT_COLUMNS = ["placement_id", "client_id", "dwelling_id", "meeting_date", "tenancy_start"]


def contract_rows(
    records: Iterable[dict], *, tenancy_start_after_days: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The decisions table (all records, in log order) and the placements of the records still in force.

    A record is in force when no later record supersedes it; it implies a placement when it names a client.
    `tenancy_start` is empty, or the meeting date plus `tenancy_start_after_days` when given.
    """
    rows = [{c: r.get(c, "") for c in DECISION_COLUMNS} for r in records]
    decisions = pd.DataFrame(rows, columns=DECISION_COLUMNS)
    decisions["shown_rank"] = pd.array(
        [None if v == "" or pd.isna(v) else int(v) for v in decisions["shown_rank"]], dtype="Int64"
    )
    superseded = set(decisions["supersedes"]) - {""}
    live = decisions[~decisions["decision_id"].isin(superseded) & (decisions["client_id"] != "")]
    placements = pd.DataFrame(
        {
            "placement_id": "PD-" + live["decision_id"].str[:8],
            "client_id": live["client_id"],
            "dwelling_id": live["dwelling_id"],
            "meeting_date": live["meeting_date"],
            "tenancy_start": (
                ""
                if tenancy_start_after_days is None
                else (pd.to_datetime(live["meeting_date"]) + pd.Timedelta(days=tenancy_start_after_days)).dt.strftime(
                    "%Y-%m-%d"
                )
            ),
        },
        columns=PLACEMENT_COLUMNS,
    ).reset_index(drop=True)
    return decisions, placements


def record_dict(record) -> dict:
    """A DecisionRecord as a contract row (dates as text)."""
    return {
        "decision_id": record.decision_id,
        "meeting_date": f"{record.meeting.date:%Y-%m-%d}",
        "dwelling_id": record.dwelling_id,
        "client_id": record.client_id,
        "decision": record.decision,
        "reason": record.reason,
        "note": record.note,
        "proposed_client_id": record.proposed_client_id,
        "shown_rank": record.shown_rank,
        "model_version": record.model_version,
        "decided_at": record.decided_at.isoformat(),
        "decided_by": record.decided_by,
        "supersedes": record.supersedes,
    }


def decision_rows(records) -> pd.DataFrame:
    """The decisions table of a queryset of DecisionRecords."""
    return contract_rows(record_dict(r) for r in records)[0]
