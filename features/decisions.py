"""The meeting's decision records as contract rows: the `decisions` table and the placements they imply.

A decision log (the meeting app's, or any other) holds one record per decision; a
changed decision is a new record that `supersedes` the earlier one, nothing is
edited. `current_decisions` resolves that: the records no other record supersedes.
`decisions_to_contract` turns records into the contract's `decisions.csv` rows
(every record, superseded ones included: the table is the log) and the
`placements.csv` rows implied by the *current* records that give a client a home
(`plan_followed`, `other_candidate`, `rule_exception`), so a retrain learns from them.

The contract requires a `tenancy_start` for every placement, and a meeting does not
know it: the landlord sets it later. The choice made here:

- a record may carry its own `tenancy_start` (when the log learned it); it is used;
- otherwise, with `tenancy_lag_days` given, the start is `meeting_date + lag`
  (an assumption: say so where the rows are used);
- otherwise (the default) no placement row is written for it; the record is listed in
  `pending` with the reason, and a later export, once the start is known, adds it.

`placement_id` is derived from `decision_id` (`PLACEMENT_PREFIX + decision_id`), so the
same log always exports the same ids, and re-exports never duplicate a placement.
Pure: no Django, no files except in `write_export`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.contract import NO_PLACEMENT, TABLES
from features.errors import UserError
from features.load import current_mask

PLACEMENT_PREFIX = "dec-"
DECISION_COLUMNS = TABLES["decisions"].column_names
PLACEMENT_COLUMNS = TABLES["placements"].column_names
PENDING_COLUMNS = ["decision_id", "meeting_date", "dwelling_id", "client_id", "why"]
DECISIONS_FILE = "decisions.csv"
PLACEMENTS_FILE = "placements.csv"

WHY_NO_START = "tenancy_start not known yet (give it in the record, or tenancy_lag_days)"
ERR_RECORD_COLUMNS = "decision records lack the column(s) {missing}: each record needs every decisions column"
ERR_BAD_LAG = "tenancy_lag_days must be a whole number ≥ 0, found {value!r}"
ERR_BAD_START = "tenancy_start of decision {decision_id} is before its meeting_date or not a date: {value!r}"


@dataclass(frozen=True)
class DecisionExport:
    """Contract rows from a decision log: every column as text, ready for CSV.

    `decisions`: one row per record (the contract's decisions table);
    `placements`: one row per current record that gives a client a home and whose tenancy start is known;
    `pending`: the current placing records without a placement row yet, and why.
    """

    decisions: pd.DataFrame
    placements: pd.DataFrame
    pending: pd.DataFrame


def placement_id_for(decision_id: str) -> str:
    """The placement_id a decision's placement gets (deterministic)."""
    return f"{PLACEMENT_PREFIX}{decision_id}"


def current_decisions(decisions: pd.DataFrame) -> pd.DataFrame:
    """The records no other record supersedes: what the meeting decided in the end (same columns)."""
    return decisions[current_mask(decisions)]


def _text(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return str(value).strip()


def _date_text(value: Any) -> str:
    if _text(value) == "":
        return ""
    return f"{pd.Timestamp(value):%Y-%m-%d}"


def _datetime_text(value: Any) -> str:
    if _text(value) == "":
        return ""
    stamp = pd.Timestamp(value)
    return stamp.isoformat() if stamp.tzinfo is not None else str(value)  # naive: left for validation to refuse


def _int_text(value: Any) -> str:
    text = _text(value)
    return text if text == "" else str(int(float(text)))


def _as_frame(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    frame = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    missing = [c for c in DECISION_COLUMNS if c not in frame.columns]
    if missing and len(frame):
        raise UserError(ERR_RECORD_COLUMNS.format(missing=", ".join(missing)))
    for col in DECISION_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype=object)
    return frame.reset_index(drop=True)


def decisions_to_contract(
    records: Iterable[Mapping[str, Any]] | pd.DataFrame,
    *,
    tenancy_lag_days: int | None = None,
) -> DecisionExport:
    """Turn decision records into the contract's decisions rows and the placement rows they imply.

    Args:
        records: one mapping (or DataFrame row) per decision record with every decisions column
            (`decision_id, meeting_date, dwelling_id, client_id, decision, reason, note,
            proposed_client_id, shown_rank, model_version, decided_at, decided_by, supersedes`;
            empty = None or ""), optionally `tenancy_start`. Dates may be `date`/`Timestamp`/ISO text;
            `decided_at` an aware `datetime` or ISO 8601 text with a time zone.
        tenancy_lag_days: when given, a placement without its own `tenancy_start` starts this many
            days after its meeting; when None (default), it is left out and listed in `pending`.

    Returns:
        DecisionExport (text columns in contract order, sorted by meeting, decided_at, decision_id).

    Raises:
        UserError: a record lacks a decisions column, a bad lag, or a tenancy_start before its meeting.

    The rows are not validated here: write them into a dataset and run `load_dataset`
    (or `matchwijs validate`), which checks every rule of the decisions table.
    """
    if tenancy_lag_days is not None and (
        isinstance(tenancy_lag_days, bool) or not isinstance(tenancy_lag_days, int) or tenancy_lag_days < 0
    ):
        raise UserError(ERR_BAD_LAG.format(value=tenancy_lag_days))
    frame = _as_frame(records)
    out = pd.DataFrame(
        {
            col: frame[col].map(
                _date_text
                if col == "meeting_date"
                else _datetime_text
                if col == "decided_at"
                else _int_text
                if col == "shown_rank"
                else _text
            )
            for col in DECISION_COLUMNS
        },
        index=frame.index,
    )
    order = pd.to_datetime(out["decided_at"], utc=True, format="ISO8601", errors="coerce")
    out = (
        out.assign(_at=order)
        .sort_values(["meeting_date", "_at", "decision_id"], kind="stable")
        .drop(columns="_at")
        .reset_index(drop=True)
    )
    starts = frame.set_index(frame["decision_id"].map(_text))["tenancy_start"] if "tenancy_start" in frame else None

    resolved = out.assign(supersedes=out["supersedes"].where(out["supersedes"] != ""))
    current = out[current_mask(resolved).to_numpy()]
    placing = current[(current["decision"] != NO_PLACEMENT) & (current["client_id"] != "")]
    rows, pending = [], []
    for rec in placing.itertuples(index=False):
        given = _text(starts.get(rec.decision_id)) if starts is not None else ""
        meeting = pd.Timestamp(rec.meeting_date)
        if given:
            try:
                start = pd.Timestamp(given)
            except ValueError:
                raise UserError(ERR_BAD_START.format(decision_id=rec.decision_id, value=given)) from None
            if start < meeting:
                raise UserError(ERR_BAD_START.format(decision_id=rec.decision_id, value=given))
        elif tenancy_lag_days is not None:
            start = meeting + pd.Timedelta(days=tenancy_lag_days)
        else:
            pending.append([rec.decision_id, rec.meeting_date, rec.dwelling_id, rec.client_id, WHY_NO_START])
            continue
        rows.append(
            [placement_id_for(rec.decision_id), rec.client_id, rec.dwelling_id, rec.meeting_date, f"{start:%Y-%m-%d}"]
        )
    return DecisionExport(
        decisions=out[DECISION_COLUMNS],
        placements=pd.DataFrame(rows, columns=PLACEMENT_COLUMNS, dtype=object),
        pending=pd.DataFrame(pending, columns=PENDING_COLUMNS, dtype=object),
    )


def merge_placements(existing: pd.DataFrame, implied: pd.DataFrame) -> pd.DataFrame:
    """Existing placement rows plus the implied ones not already there (same placement_id or same
    meeting and client: the extract already knows that placement), existing rows first."""
    key = ["meeting_date", "client_id"]
    old = existing.astype({c: str for c in PLACEMENT_COLUMNS if c in existing.columns})
    if "meeting_date" in existing.columns and pd.api.types.is_datetime64_any_dtype(existing["meeting_date"]):
        old["meeting_date"] = existing["meeting_date"].dt.strftime("%Y-%m-%d")
    known_ids = set(old["placement_id"])
    known_pairs = pd.MultiIndex.from_frame(old[key])
    new = implied[~implied["placement_id"].isin(known_ids) & ~pd.MultiIndex.from_frame(implied[key]).isin(known_pairs)]
    return pd.concat([old, new], ignore_index=True)


def write_export(export: DecisionExport, folder: str | Path) -> list[Path]:
    """Write `decisions.csv` and `placements.csv` (the implied rows only) into `folder`; returns the paths.

    Each file is written next to its destination and renamed into place, so a failure never
    leaves a half-written file (other files in `folder` are kept).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for name, frame in ((DECISIONS_FILE, export.decisions), (PLACEMENTS_FILE, export.placements)):
            tmp = folder / f".{name}.tmp"
            frame.to_csv(tmp, index=False)
            staged.append((tmp, folder / name))
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return [path for _, path in staged]
