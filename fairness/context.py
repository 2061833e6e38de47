"""What the audit judges: the model's held-out period, the params it was trained with, its held-out predictions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fairness.attributes import attribute_frame
from fairness.params import FairnessParams
from features.config import section
from features.errors import UserError
from features.labels import KNOWN, LabelParams, build_labels
from features.load import Dataset
from features.pairs import FeatureParams, build_pair_features
from features.rules import PassendToewijzen
from models.bundle import ModelBundle

ERR_NO_TEST_START = (
    "the model's metadata has no test_start: the audit needs the held-out period the model was not "
    "trained on (train a model with `matchwijs train`, which records it)"
)


ERR_BAD_DATE = "the model's metadata {key}={value!r} is not a date YYYY-MM-DD"


ERR_NO_HELD_OUT = (
    "no held-out placement with a known outcome: the model's held-out period {start}..{end} holds {n} "
    "placements in this dataset ({known} with a known outcome). Audit the model on the data it was "
    "evaluated on, or on a later extract whose outcomes are known."
)


class CannotJudge(UserError):
    """The audit has nothing to judge: no held-out period recorded, or no held-out placement with a known outcome."""


@dataclass(frozen=True)
class HeldOut:
    """The held-out period of a model (meeting dates, both inclusive)."""

    start: pd.Timestamp
    end: pd.Timestamp | None


def held_out_period(bundle: ModelBundle) -> HeldOut:
    """The bundle's `test_start`..`test_end` (end open if not recorded)."""
    meta = bundle.metadata or {}
    if not meta.get("test_start"):
        raise CannotJudge(ERR_NO_TEST_START)
    dates: dict[str, pd.Timestamp | None] = {}
    for key in ("test_start", "test_end"):
        value = meta.get(key)
        if value in (None, ""):
            dates[key] = None
            continue
        try:
            dates[key] = pd.Timestamp(str(value)[:10])
        except ValueError:
            raise CannotJudge(ERR_BAD_DATE.format(key=key, value=value)) from None
    return HeldOut(dates["test_start"], dates["test_end"])


def held_out_meetings(ds: Dataset, period: HeldOut) -> pd.DatetimeIndex:
    """Meeting dates of the dataset inside the held-out period."""
    dates = pd.DatetimeIndex(sorted(ds.vacancies["meeting_date"].unique()))
    keep = dates >= period.start
    if period.end is not None:
        keep &= dates <= period.end
    return dates[keep]


@dataclass(frozen=True)
class PipelineParams:
    """The feature, label and rule parameters the audit builds its rows with."""

    features: FeatureParams
    labels: LabelParams
    rules: PassendToewijzen
    from_model: bool  # features/labels taken from the model's own metadata (as trained)


def pipeline_params(bundle: ModelBundle, config: Mapping[str, Any]) -> PipelineParams:
    """Feature and label params as the model was trained with (bundle metadata), else from `config`."""
    trained = (bundle.metadata or {}).get("params") or {}
    source = {name: trained.get(name, config.get(name)) for name in ("features", "labels")}
    from_model = all(name in trained for name in ("features", "labels"))
    return PipelineParams(
        features=section(source, "features", FeatureParams),
        labels=section(source, "labels", LabelParams),
        rules=section(dict(config), "passend_toewijzen", PassendToewijzen),
        from_model=from_model,
    )


def audit_predictions(
    ds: Dataset, bundle: ModelBundle, *, params: FairnessParams, pipeline: PipelineParams, period: HeldOut
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Held-out placements with a known outcome: predictions and attributes, and their features.

    Returns (predictions, features), both indexed 0..n-1 in (meeting_date, placement_id) order.
    `prediction` is 1 when the calibrated P(sustained) is at or above `bundle.threshold`;
    `outcome` is 1 for a sustained tenancy.
    """
    labels = build_labels(ds, pipeline.labels)
    in_period = labels["meeting_date"] >= period.start
    if period.end is not None:
        in_period &= labels["meeting_date"] <= period.end
    rows = labels[in_period & (labels["status"] == KNOWN)]
    if rows.empty:
        raise CannotJudge(
            ERR_NO_HELD_OUT.format(
                start=f"{period.start:%Y-%m-%d}",
                end=f"{period.end:%Y-%m-%d}" if period.end is not None else "",
                n=int(in_period.sum()),
                known=0,
            )
        )
    rows = rows.sort_values(["meeting_date", "placement_id"], kind="stable").reset_index(drop=True)
    X = build_pair_features(ds, rows, params=pipeline.features, rules=pipeline.rules)
    logodds = bundle.logodds(X)  # once: the ranking score and the chance both start from it
    scores = bundle.score(X, logodds=logodds)
    proba = bundle.proba(logodds=logodds)
    pred = pd.DataFrame(
        {
            "placement_id": rows["placement_id"].astype(str),
            "client_id": rows["client_id"].astype(str),
            "dwelling_id": rows["dwelling_id"].astype(str),
            "meeting_date": rows["meeting_date"],
            "score": scores,
            "probability": proba,
            "prediction": (proba >= bundle.threshold).astype(int),
            "outcome": rows["sustained"].astype(int).to_numpy(),
        }
    )
    pred["support_count"] = bundle.support_counts(X)
    pred["low_support"] = (pred["support_count"] < params.low_support).astype(int)
    attrs = attribute_frame(ds, pred, params=params)
    return pd.concat([pred, attrs], axis=1), X
