"""The deployed model: the evaluated model's settings, refitted on every outcome known at `as_of`.

`train` evaluates a model that learned only from outcomes known before its held-out
test weeks (models/ranker.py `temporal_split`). That model is the one judged: its
held-out metrics, the champion comparison and the fairness gate. The model the
meeting uses is then refitted with exactly the same settings (objective, LightGBM
parameters, rounds, seed, prior weights, calibration procedure) on all placements
whose outcome is known at the dataset's `as_of` (features/labels.py: the horizon is
over by then), so no outcome the city already knows is left out.

Calibration of the deployed model follows the evaluated model's own procedure on the
newest weeks: the trees are first fitted on every known week except the latest
`train.calibration_weeks`, Platt scaling is fitted on those latest weeks with these
trees (which never saw them), and then, with `train.refit_on_calibration_weeks`
(the default), the prior and the trees are refitted on all known weeks and keep that
calibration. No test weeks are held out: the deployed model's quality is the
evaluated model's, measured before the refit.

Pure: frames and params in, a bundle out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pandas as pd
from pydantic import Field

from features.config import section
from features.errors import UserError
from models.bundle import ModelBundle
from models.ranker import Split, TrainParams, train_bundle

EVALUATED = "evaluated"
DEPLOYED = "deployed"

ERR_TOO_LITTLE = (
    "too little history for the deployed model: {n} meetings with an outcome known at as_of {as_of}; it "
    "calibrates on the last {weeks} weeks of them and needs at least 10 meetings before that "
    "(params: train.calibration_weeks)"
)


ERR_AGE = (
    "the model learned from what was known on {known:%Y-%m-%d}, {days} days before this meeting "
    "(more than params deploy.max_model_age_days = {limit}): retrain it with `matchwijs train` on a newer extract"
)


@dataclass(frozen=True)
class DeployParams:
    """params.yaml `deploy`: when the model in use is too old for a meeting."""

    max_model_age_days: Annotated[int, Field(ge=1)]


def deploy_params(config: dict[str, Any]) -> DeployParams | None:
    """The `deploy` section, or None when params.yaml has none (no age check)."""
    return section(config, "deploy", DeployParams) if "deploy" in config else None


@dataclass(frozen=True)
class DataRange:
    """What a model learned from: first and last meeting, outcomes known up to, and how many placements."""

    first_meeting: str
    last_meeting: str
    outcomes_known_to: str
    n_placements: int

    def as_metadata(self, prefix: str) -> dict[str, object]:
        return {
            f"{prefix}_first_meeting": self.first_meeting,
            f"{prefix}_last_meeting": self.last_meeting,
            f"{prefix}_outcomes_known_to": self.outcomes_known_to,
            f"{prefix}_n_placements": self.n_placements,
        }


def known_at(rows: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """The placement rows whose outcome is known at `as_of` (outcome_known_on on or before it)."""
    return rows[(rows["outcome_known_on"] <= as_of) & (rows["meeting_date"] <= as_of)]


def deployment_split(rows: pd.DataFrame, as_of: pd.Timestamp, params: TrainParams) -> Split:
    """A split without test weeks: fit on every known week but the latest `calibration_weeks`, calibrate on those.

    `test_start` is the day after `as_of`, so every row known at `as_of` is 'fit' or
    'calibration' and any later one is 'gap' (never learned from).
    """
    known = known_at(rows, as_of)
    dates = pd.DatetimeIndex(sorted(known["meeting_date"].unique()))
    if len(dates) == 0:
        raise UserError(ERR_TOO_LITTLE.format(n=0, as_of=f"{as_of:%Y-%m-%d}", weeks=params.calibration_weeks))
    history_end = dates.max()
    calibration_start = history_end - pd.Timedelta(weeks=params.calibration_weeks) + pd.Timedelta(days=1)
    if (dates < calibration_start).sum() < 10:
        raise UserError(ERR_TOO_LITTLE.format(n=len(dates), as_of=f"{as_of:%Y-%m-%d}", weeks=params.calibration_weeks))
    day_after = as_of + pd.Timedelta(days=1)
    return Split(dates.min(), calibration_start, history_end, day_after, day_after)


def data_range(rows: pd.DataFrame, split: Split) -> DataRange:
    """The data range of a model trained with `split` on `rows` (the rows its trees were fitted on)."""
    part = split.part(rows)
    used = rows[part.isin(["fit", "calibration"])]
    return DataRange(
        first_meeting=f"{used['meeting_date'].min():%Y-%m-%d}",
        last_meeting=f"{used['meeting_date'].max():%Y-%m-%d}",
        outcomes_known_to=f"{used['outcome_known_on'].max():%Y-%m-%d}",
        n_placements=int(len(used)),
    )


def train_deployed(
    rows: pd.DataFrame, *, as_of: pd.Timestamp, params: TrainParams, objective: str | None = None
) -> tuple[ModelBundle, Split]:
    """The evaluated model's settings (`params`, `objective`) refitted on every outcome known at `as_of`."""
    known = known_at(rows, as_of)
    split = deployment_split(known, as_of, params)
    bundle = train_bundle(
        known,
        split,
        params,
        objective,
        metadata={"role": DEPLOYED, "test_start": None, "test_end": None, "as_of": f"{as_of:%Y-%m-%d}"},
    )
    return bundle, split


def knowledge_date(metadata: Mapping[str, Any]) -> pd.Timestamp | None:
    """The date up to which a model learned what was known: as_of for a deployed model, else its test start.

    An evaluated (or older) model learned only from outcomes known before its held-out weeks.
    """
    key = "as_of" if metadata.get("role") == DEPLOYED else ("test_start" if metadata.get("test_start") else "as_of")
    value = metadata.get(key)
    if not value:
        return None
    try:
        return pd.Timestamp(str(value)[:10])
    except ValueError:
        return None


def model_age_days(metadata: Mapping[str, Any], on: pd.Timestamp) -> int | None:
    """Days from the model's knowledge date to `on` (a meeting date), or None when the model does not record it."""
    known = knowledge_date(metadata)
    return None if known is None else int((pd.Timestamp(on) - known).days)


def age_warning(metadata: Mapping[str, Any], on: pd.Timestamp, params: DeployParams | None) -> str | None:
    """A warning when the model is older than params `deploy.max_model_age_days` at meeting `on`, else None."""
    if params is None:
        return None
    days = model_age_days(metadata, on)
    if days is None or days <= params.max_model_age_days:
        return None
    return ERR_AGE.format(known=knowledge_date(metadata), days=days, limit=params.max_model_age_days)
