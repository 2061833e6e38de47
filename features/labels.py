"""Outcome labels of placements: a graded relevance and the binary sustained outcome.

The rules (params.yaml `labels`) are:
- A placement *fails* when it ends by eviction or returned_to_care within
  `horizon_days` after tenancy_start (CONTRACT.md).
- Right-censoring: a placement whose horizon is not over at `as_of` has status
  `censored` and no label, even if it already failed. Keeping early failures
  while dropping not-yet-finished successes would bias the labels toward failure.
- Ends for other reasons within the horizon follow `other_ends` per reason:
  `sustained` (the tenancy counts as sustained, e.g. a voluntary move on) or
  `exclude` (status `excluded`, no label: the outcome the model predicts was not
  observed, e.g. after death).
- Grades among known outcomes: `grade_failed` for a failure; otherwise
  `grade_serious_nuisance` with at least one serious report within the horizon,
  `grade_minor_nuisance` with at least `minor_reports_threshold` minor reports,
  else `grade_clean`. Nuisance labels depend on neighbours reporting: a biased
  label (see the model card).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from features.contract import END_REASONS, FAILURE_REASONS
from features.errors import UserError
from features.load import Dataset

KNOWN, CENSORED, EXCLUDED = "known", "censored", "excluded"


@dataclass(frozen=True)
class LabelParams:
    """How outcomes become labels (see module docstring)."""

    horizon_days: Annotated[int, Field(ge=1)]
    other_ends: dict[str, str]
    minor_reports_threshold: Annotated[int, Field(ge=0)]
    grade_failed: int
    grade_serious_nuisance: int
    grade_minor_nuisance: int
    grade_clean: int

    def __post_init__(self) -> None:
        other = set(END_REASONS) - set(FAILURE_REASONS)
        if set(self.other_ends) != other or not set(self.other_ends.values()) <= {"sustained", "exclude"}:
            raise UserError(
                f"params: labels.other_ends must map each of {', '.join(sorted(other))} to `sustained` or `exclude`"
            )


def build_labels(ds: Dataset, params: LabelParams) -> pd.DataFrame:
    """One row per placement: status, sustained (0/1), grade, and the outcome facts behind them.

    `sustained` and `grade` are NA unless status is `known`.
    """
    pl = ds.placements[["placement_id", "client_id", "dwelling_id", "meeting_date", "tenancy_start"]].copy()
    horizon_end = pl["tenancy_start"] + pd.Timedelta(days=params.horizon_days)
    ends = ds.tenancy_ends.set_index("placement_id")
    end_date = pl["placement_id"].map(ends["end_date"])
    reason = pl["placement_id"].map(ends["reason"])
    within = end_date.notna() & (end_date <= horizon_end)
    failed = within & reason.isin(FAILURE_REASONS)
    other_end = within & ~reason.isin(FAILURE_REASONS)
    other_rule = reason.map(params.other_ends)

    status = pd.Series(KNOWN, index=pl.index)
    status[other_end & (other_rule == "exclude")] = EXCLUDED
    status[horizon_end > ds.as_of] = CENSORED

    reports = ds.nuisance_reports.merge(pl[["placement_id", "tenancy_start"]], on="placement_id")
    in_horizon = reports["report_date"] <= reports["tenancy_start"] + pd.Timedelta(days=params.horizon_days)
    reports = reports[in_horizon]
    counts = reports.groupby(["placement_id", "severity"]).size().unstack(fill_value=0)
    n_serious = (
        pl["placement_id"]
        .map(counts["serious"] if "serious" in counts else pd.Series(dtype=float))
        .fillna(0)
        .astype(int)
    )
    n_minor = (
        pl["placement_id"].map(counts["minor"] if "minor" in counts else pd.Series(dtype=float)).fillna(0).astype(int)
    )

    grade = np.select(
        [failed, n_serious > 0, n_minor >= params.minor_reports_threshold],
        [params.grade_failed, params.grade_serious_nuisance, params.grade_minor_nuisance],
        default=params.grade_clean,
    )
    known = status == KNOWN
    pl["status"] = status
    pl["sustained"] = pd.Series((~failed).astype(int).to_numpy(), index=pl.index, dtype="Int64").where(known)
    pl["grade"] = pd.Series(grade, index=pl.index, dtype="Int64").where(known)
    pl["end_date"] = end_date
    pl["end_reason"] = reason
    pl["n_minor_reports"] = n_minor
    pl["n_serious_reports"] = n_serious
    return pl
