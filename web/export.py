"""The app's decision records as the data contract's tables: `decisions` (every record) and the `placements` they imply."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from features.decisions import DECISION_COLUMNS, PLACEMENT_COLUMNS, decisions_to_contract

__all__ = ["DECISION_COLUMNS", "PLACEMENT_COLUMNS", "contract_rows", "decision_rows", "record_dict"]


def contract_rows(
    records: Iterable[dict], *, tenancy_start_after_days: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The decisions table (every record, in log order) and the placements the records in force imply.

    The rules live in the library (`features.decisions.decisions_to_contract`): a placement row
    needs a tenancy start, here the meeting date plus `tenancy_start_after_days` (params
    `app.tenancy_start_after_days`); with None, placing records wait in `pending` instead.
    """
    export = decisions_to_contract(list(records), tenancy_lag_days=tenancy_start_after_days)
    return export.decisions, export.placements


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
