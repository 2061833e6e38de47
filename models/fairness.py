"""Group fairness of a model on held-out meetings, with the historical decisions measured the same way.

Two populations, both limited to the held-out meetings (meeting_date from the
bundle's `test_start` to `test_end`, which the model was not trained on):

- `placements`: every placement made at a held-out meeting whose outcome is known
  (label status `known`), with its features built as of its meeting. Source `model`:
  the model's 0/1 call of success (calibrated P(sustained) ≥ `bundle.threshold`)
  against the observed outcome: selection rate, true and false positive rates,
  calibration within groups (mean P vs observed, Brier), mean score, success rate.
- `candidates`: every (meeting, candidate) at the held-out meetings. Source `human`:
  the client was placed at that meeting (the historical decision). Source `plan`:
  the model's one-to-one plan for that meeting (eligibility rules, then the plan
  over every vacancy and candidate there) gives the client a home. Both are
  measured with the same selection rate and expected outcome, so an auditor sees
  whether the model narrows or widens each gap; `plan` also carries the shares
  made worse off (see `models.counterfactual`).

Protected attributes are read here, from `client_protected`, and nowhere else.
All numbers of the long table (`fairness.csv`) are computed with fairlearn's
`MetricFrame` from the row-level frames written next to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import brier_score_loss

from features.config import section
from features.errors import UserError
from features.labels import KNOWN, LabelParams, build_labels
from features.load import Dataset
from features.pairs import FEATURE_NAMES, PROTECTED_COLUMNS, FeatureParams, build_pair_features
from features.rules import PassendToewijzen
from models.bundle import ModelBundle

ERR_NO_PROTECTED = (
    "the dataset has no client_protected table: the fairness audit needs gender, birth_year and "
    "migration_background per client (client_protected.csv, audit only, never a model feature)"
)
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
ERR_UNKNOWN_ATTRIBUTE = "params: fairness.{where} names unknown attribute {name!r}; known: {known}"
ERR_UNKNOWN_CHECK = "params: fairness.gate.{where} names unknown metric {name!r}; known: {known}"
ERR_PROTECTED_FEATURE = "the model uses protected attribute(s) as features: {names}"

# Attributes of a client at a meeting (candidates and placements) and of a placement only.
CLIENT_ATTRIBUTES = ("gender", "age_band", "migration_background", "household_type", "care_provider")
PLACEMENT_ATTRIBUTES = (*CLIENT_ATTRIBUTES, "district")
INTERSECTION_SEP = "_x_"
GROUP_SEP = " / "

PLACEMENTS, CANDIDATES = "placements", "candidates"
MODEL, HUMAN, PLAN = "model", "human", "plan"
HIGH, LOW, ZERO = "high", "low", "zero"  # which value is favourable (the best-off group)

# Words that must never name a model feature or a tracked parameter (see `find_protected`).
SENSITIVE_WORDS = ("gender", "sex", "age", "birth", "migration", "nationality", "ethnicity", "religion")


@dataclass(frozen=True)
class GateParams:
    """Pass/fail thresholds, fixed before use.

    Keys of `max_difference` and `min_ratio` are `source.metric` (e.g.
    `model.true_positive_rate`); the statistic is taken over the judgeable groups
    (largest minus smallest value; smallest over largest value). `max_ratio_drop`
    compares the plan with the human decisions on the candidates: the plan's
    ratio may be at most this much lower than the human ratio.
    """

    attributes: tuple[str, ...]
    max_difference: dict[str, float]
    min_ratio: dict[str, float]
    max_ratio_drop: dict[str, float]
    fail_when_unjudgeable: bool


@dataclass(frozen=True)
class FairnessParams:
    """params.yaml `fairness:` (see its comments)."""

    age_band_edges: tuple[int, ...]
    attributes: tuple[str, ...]
    intersections: tuple[tuple[str, ...], ...]
    min_group_size: int
    worse_off_tolerance: float
    low_support: int
    gate: GateParams

    def __post_init__(self) -> None:
        known = self.all_attributes(PLACEMENT_ATTRIBUTES)
        for name in self.attributes:
            if name not in PLACEMENT_ATTRIBUTES:
                raise UserError(ERR_UNKNOWN_ATTRIBUTE.format(where="attributes", name=name, known=", ".join(PLACEMENT_ATTRIBUTES)))
        for combo in self.intersections:
            for name in combo:
                if name not in PLACEMENT_ATTRIBUTES:
                    raise UserError(ERR_UNKNOWN_ATTRIBUTE.format(where="intersections", name=name, known=", ".join(PLACEMENT_ATTRIBUTES)))
        for name in self.gate.attributes:
            if name not in known:
                raise UserError(ERR_UNKNOWN_ATTRIBUTE.format(where="gate.attributes", name=name, known=", ".join(known)))
        names = {f"{m.source}.{m.name}" for m in METRICS}
        for where, mapping in (("max_difference", self.gate.max_difference), ("min_ratio", self.gate.min_ratio)):
            for key in mapping:
                if key not in names:
                    raise UserError(ERR_UNKNOWN_CHECK.format(where=where, name=key, known=", ".join(sorted(names))))
        plan_human = {m.name for m in METRICS if m.source == PLAN} & {m.name for m in METRICS if m.source == HUMAN}
        for key in self.gate.max_ratio_drop:
            if key not in plan_human:
                raise UserError(ERR_UNKNOWN_CHECK.format(where="max_ratio_drop", name=key, known=", ".join(sorted(plan_human))))

    def all_attributes(self, available: tuple[str, ...]) -> tuple[str, ...]:
        """The single attributes and intersections that can be formed from `available` columns."""
        single = tuple(a for a in self.attributes if a in available)
        combos = tuple(intersection_name(c) for c in self.intersections if all(a in available for a in c))
        return single + combos


def intersection_name(attributes: tuple[str, ...]) -> str:
    """Column name of an intersection, e.g. `gender_x_migration_background`."""
    return INTERSECTION_SEP.join(attributes)


# ---------------------------------------------------------------------------------------------
# Protected attributes: read here and nowhere else.


def age_band(age: pd.Series, edges: tuple[int, ...]) -> pd.Series:
    """Age band labels from ascending edges: `<18`, `18-24`, …, `65+` for edges (18, 25, …, 65)."""
    edges = tuple(int(e) for e in edges)
    labels = [f"<{edges[0]}"] + [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])] + [f"{edges[-1]}+"]
    idx = np.digitize(age.to_numpy(dtype=float), edges, right=False)
    return pd.Series(np.array(labels, dtype=object)[idx], index=age.index)


def attribute_frame(ds: Dataset, rows: pd.DataFrame, *, params: FairnessParams) -> pd.DataFrame:
    """Audit attributes of each row (`client_id`, `meeting_date`, optionally `dwelling_id`).

    Age is the meeting year minus the birth year (exact to a year: only the birth
    year is known). Household type is `single` (household_size 1) or `multi`.
    District is that of the home and exists only for rows with a `dwelling_id`.
    """
    if ds.client_protected is None:
        raise UserError(ERR_NO_PROTECTED)
    prot = ds.client_protected.set_index("client_id")
    clients = ds.clients.set_index("client_id")
    cid = rows["client_id"]
    out = pd.DataFrame(index=rows.index)
    out["gender"] = cid.map(prot["gender"]).astype(object)
    age = rows["meeting_date"].dt.year - cid.map(prot["birth_year"]).astype(float)
    out["age_band"] = age_band(age, params.age_band_edges)
    out["migration_background"] = cid.map(prot["migration_background"]).astype(object)
    size = cid.map(clients["household_size"]).astype(float)
    out["household_type"] = np.where(size <= 1, "single", "multi")
    out["care_provider"] = cid.map(clients["care_provider"]).astype(object)
    if "dwelling_id" in rows:
        hood = rows["dwelling_id"].map(ds.dwellings.set_index("dwelling_id")["neighbourhood_id"])
        out["district"] = hood.map(ds.neighbourhoods.set_index("neighbourhood_id")["district"]).astype(object)
    missing = out[[c for c in ("gender", "migration_background") if c in out]].isna().any(axis=1)
    if missing.any():
        ids = ", ".join(sorted(set(cid[missing].astype(str)))[:5])
        raise UserError(
            f"client_protected has no row for {int(cid[missing].nunique())} audited client(s) (e.g. {ids}): "
            "the audit needs gender, birth_year and migration_background for every client"
        )
    available = tuple(out.columns)
    for combo in params.intersections:
        if all(a in available for a in combo):
            out[intersection_name(combo)] = out[list(combo)].astype(str).agg(GROUP_SEP.join, axis=1)
    keep = params.all_attributes(available)
    return out[list(keep)]


# ---------------------------------------------------------------------------------------------
# Protected names among features and tracked parameters.


class CannotJudge(UserError):
    """The audit has nothing to judge: no held-out period recorded, or no held-out placement with a known outcome."""


class ProtectedAttributeError(UserError):
    """A protected attribute shows up where it must not (model features, tracked parameters)."""


def _identifiers(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:_[a-z0-9]+)*", text.lower())


def find_protected(names) -> list[str]:
    """The names (features, parameter keys or values) that name a protected attribute.

    A name is protected when one of its identifiers is a protected column
    (`features.pairs.PROTECTED_COLUMNS`) or contains a sensitive word as one of its
    `_`-separated parts (`gender_x_income`, `mean_age`), never by mere substring
    (`average`, `coverage` are fine).
    """
    hits = []
    for name in names:
        for ident in _identifiers(str(name)):
            parts = ident.split("_")
            if ident in PROTECTED_COLUMNS or any(c in ident for c in PROTECTED_COLUMNS if "_" in c) or set(parts) & set(SENSITIVE_WORDS):
                hits.append(str(name))
                break
    return hits


def _flatten(prefix: str, value: Any, out: list[str]) -> list[str]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.append(key)
            _flatten(key, v, out)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            _flatten(prefix, v, out)
    elif isinstance(value, str):
        out.append(value)
    return out


def assert_no_protected(params: Mapping[str, Any]) -> None:
    """Raise ProtectedAttributeError if any key or text value of `params` (nested) names a protected attribute.

    Meant for the parameters the trainer logs to MLflow (and any other metadata
    that travels with a model).
    """
    hits = find_protected(_flatten("", params, []))
    if hits:
        raise ProtectedAttributeError("protected attribute in tracked parameters: " + ", ".join(sorted(set(hits))))


def assert_no_protected_features(bundle: ModelBundle) -> None:
    """Raise ProtectedAttributeError if the model's features include a protected attribute."""
    hits = find_protected(bundle.feature_names)
    if hits:
        raise ProtectedAttributeError(ERR_PROTECTED_FEATURE.format(names=", ".join(hits)))


# ---------------------------------------------------------------------------------------------
# The held-out placements and their predictions.


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
    dates = {}
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


def audit_predictions(ds: Dataset, bundle: ModelBundle, *, params: FairnessParams, pipeline: PipelineParams,
                      period: HeldOut) -> tuple[pd.DataFrame, pd.DataFrame]:
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
        raise CannotJudge(ERR_NO_HELD_OUT.format(
            start=f"{period.start:%Y-%m-%d}", end=f"{period.end:%Y-%m-%d}" if period.end is not None else "",
            n=int(in_period.sum()), known=0))
    rows = rows.sort_values(["meeting_date", "placement_id"], kind="stable").reset_index(drop=True)
    X = build_pair_features(ds, rows, params=pipeline.features, rules=pipeline.rules)
    scores = bundle.score(X)
    proba = bundle.proba(scores=scores)
    pred = pd.DataFrame({
        "placement_id": rows["placement_id"].astype(str),
        "client_id": rows["client_id"].astype(str),
        "dwelling_id": rows["dwelling_id"].astype(str),
        "meeting_date": rows["meeting_date"],
        "score": scores,
        "probability": proba,
        "prediction": (proba >= bundle.threshold).astype(int),
        "outcome": rows["sustained"].astype(int).to_numpy(),
    })
    pred["support_count"] = bundle.support_counts(X)
    pred["low_support"] = (pred["support_count"] < params.low_support).astype(int)
    attrs = attribute_frame(ds, pred, params=params)
    return pd.concat([pred, attrs], axis=1), X


# ---------------------------------------------------------------------------------------------
# Group metrics, all through fairlearn's MetricFrame.


def _mean_true(y_true, y_pred) -> float:
    return float(np.mean(y_true)) if len(y_true) else float("nan")


def _mean_pred(y_true, y_pred) -> float:
    return float(np.mean(y_pred)) if len(y_pred) else float("nan")


def _calibration_error(y_true, y_pred) -> float:
    return float(np.mean(y_pred) - np.mean(y_true)) if len(y_true) else float("nan")


def _brier(y_true, y_pred) -> float:
    return float(brier_score_loss(np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=float), pos_label=1)) if len(y_true) else float("nan")


def _selection_rate(y_true, y_pred) -> float:
    return float(selection_rate(y_true, y_pred, pos_label=1))


def _tpr(y_true, y_pred) -> float:
    return float(true_positive_rate(y_true, y_pred, pos_label=1))


def _fpr(y_true, y_pred) -> float:
    return float(false_positive_rate(y_true, y_pred, pos_label=1))


@dataclass(frozen=True)
class Metric:
    """One group metric: which frame, which columns, which rows, and what it means."""

    name: str
    source: str  # model | human | plan
    population: str  # placements | candidates
    func: Callable
    y_true: str
    y_pred: str
    subset: str | None  # 0/1 column: only rows where it is 1 count
    support: str  # rows | positives | negatives | clients: the independent units in the denominator
    favourable: str  # high | low | zero: the best-off group's value
    binary: bool  # a share of 0/1 values (a standard error is reported)
    meaning: str


METRICS: tuple[Metric, ...] = (
    Metric("selection_rate", MODEL, PLACEMENTS, _selection_rate, "outcome", "prediction", None, "rows", HIGH, True,
           "share of held-out placements the model calls a success (P(sustained) ≥ threshold)"),
    Metric("true_positive_rate", MODEL, PLACEMENTS, _tpr, "outcome", "prediction", None, "positives", HIGH, True,
           "of the tenancies that were sustained, the share the model called a success (equal opportunity)"),
    Metric("false_positive_rate", MODEL, PLACEMENTS, _fpr, "outcome", "prediction", None, "negatives", HIGH, True,
           "of the tenancies that failed, the share the model called a success (benefit of the doubt)"),
    Metric("mean_score", MODEL, PLACEMENTS, _mean_pred, "outcome", "score", None, "rows", HIGH, False,
           "mean raw model score"),
    Metric("mean_probability", MODEL, PLACEMENTS, _mean_pred, "outcome", "probability", None, "rows", HIGH, False,
           "mean calibrated P(sustained)"),
    Metric("success_rate", MODEL, PLACEMENTS, _mean_true, "outcome", "outcome", None, "rows", HIGH, True,
           "observed share sustained"),
    Metric("calibration_error", MODEL, PLACEMENTS, _calibration_error, "outcome", "probability", None, "rows", ZERO, False,
           "mean P(sustained) minus observed share sustained (> 0: the model is too optimistic for the group)"),
    Metric("brier_score", MODEL, PLACEMENTS, _brier, "outcome", "probability", None, "rows", LOW, False,
           "mean squared error of P(sustained) against the outcome"),
    Metric("low_support_share", MODEL, PLACEMENTS, _mean_pred, "outcome", "low_support", None, "rows", LOW, True,
           "share of placements with few similar training placements (selection bias: little support)"),
    Metric("selection_rate", HUMAN, CANDIDATES, _selection_rate, "placed", "placed", None, "clients", HIGH, True,
           "share of candidate-meetings at which the meeting placed the client (historical decision)"),
    Metric("expected_success", HUMAN, CANDIDATES, _mean_pred, "placed", "p_actual", "placed", "clients", HIGH, False,
           "mean model P(sustained) of the homes the meeting gave"),
    Metric("success_rate", HUMAN, CANDIDATES, _mean_true, "outcome", "outcome", "outcome_known", "clients", HIGH, True,
           "observed share sustained of those placements (known outcomes only)"),
    Metric("below_best_share", HUMAN, CANDIDATES, _mean_pred, "placed", "below_best_actual", "placed", "clients", LOW, True,
           "of the clients the meeting placed, the share whose home has a lower P than their best eligible home"),
    Metric("selection_rate", PLAN, CANDIDATES, _selection_rate, "planned", "planned", None, "clients", HIGH, True,
           "share of candidate-meetings at which the model's plan gives the client a home"),
    Metric("expected_success", PLAN, CANDIDATES, _mean_pred, "planned", "p_plan", "planned", "clients", HIGH, False,
           "mean model P(sustained) of the homes the plan gives"),
    Metric("worse_off_share", PLAN, CANDIDATES, _mean_pred, "placed", "worse_off", "placed", "clients", LOW, True,
           "of the clients the meeting placed, the share the plan leaves worse off (no home at that meeting, or a lower P)"),
    Metric("displaced_share", PLAN, CANDIDATES, _mean_pred, "placed", "displaced", "placed", "clients", LOW, True,
           "of the clients the meeting placed, the share the plan gives no home at that meeting"),
    Metric("below_best_share", PLAN, CANDIDATES, _mean_pred, "planned", "below_best", "planned", "clients", LOW, True,
           "of the clients the plan places, the share whose planned home has a lower P than their best eligible home"),
)

LONG_COLUMNS = ["attribute", "group", "metric", "value", "n", "source", "population", "support", "se",
                "judgeable", "reference_group", "difference", "ratio"]


def _support(frame: pd.DataFrame, attribute: str, metric: Metric) -> pd.Series:
    if metric.support == "rows":
        return frame.groupby(attribute).size()
    if metric.support == "positives":
        return frame[frame[metric.y_true] == 1].groupby(attribute).size()
    if metric.support == "negatives":
        return frame[frame[metric.y_true] == 0].groupby(attribute).size()
    return frame.groupby(attribute)["client_id"].nunique()


def metric_by_group(frame: pd.DataFrame, attribute: str, metric: Metric) -> pd.DataFrame:
    """One metric for every group of `attribute`: group, value, n (rows in the group), support.

    The value is empty where the metric's denominator is empty (no positives for a TPR, …).
    """
    groups = pd.Index(sorted(frame[attribute].astype(str).unique()), name="group")
    n = frame.groupby(frame[attribute].astype(str)).size().reindex(groups, fill_value=0)
    rows = frame if metric.subset is None else frame[frame[metric.subset] == 1]
    keyed = rows.assign(**{attribute: rows[attribute].astype(str)})
    if len(rows):
        mf = MetricFrame(
            metrics={metric.name: metric.func},
            y_true=rows[metric.y_true].to_numpy(dtype=float),
            y_pred=rows[metric.y_pred].to_numpy(dtype=float),
            sensitive_features=keyed[attribute].rename(attribute),
        )
        values = mf.by_group[metric.name].astype(float).reindex(groups)
    else:
        values = pd.Series(np.nan, index=groups)
    support = _support(keyed, attribute, metric).reindex(groups, fill_value=0)
    values[support.to_numpy() == 0] = np.nan
    out = pd.DataFrame({"group": groups, "value": values.to_numpy(), "n": n.to_numpy(), "support": support.to_numpy()})
    out["se"] = np.sqrt(out["value"] * (1 - out["value"]) / out["support"].where(out["support"] > 0)) if metric.binary else np.nan
    return out


def group_metrics(frames: Mapping[str, pd.DataFrame], *, params: FairnessParams) -> pd.DataFrame:
    """The long table of fairness.csv: every metric by every attribute and group, with gaps to the best-off group.

    `frames` maps a population (`placements`, `candidates`) to its row-level frame;
    a population that is absent is skipped.
    """
    parts = []
    for metric in METRICS:
        frame = frames.get(metric.population)
        if frame is None:
            continue
        available = PLACEMENT_ATTRIBUTES if metric.population == PLACEMENTS else CLIENT_ATTRIBUTES
        for attribute in params.all_attributes(tuple(a for a in available if a in frame.columns)):
            part = metric_by_group(frame, attribute, metric)
            part.insert(0, "attribute", attribute)
            part.insert(2, "metric", metric.name)
            part["source"] = metric.source
            part["population"] = metric.population
            parts.append(part)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LONG_COLUMNS)
    table["judgeable"] = (table["support"] >= params.min_group_size) & table["value"].notna()
    return add_gaps(table)


def _favourable(metric: str, source: str) -> str:
    return next(m.favourable for m in METRICS if m.name == metric and m.source == source)


def add_gaps(table: pd.DataFrame) -> pd.DataFrame:
    """Add the best-off judgeable group of each (source, population, attribute, metric) and each group's gap to it.

    `difference` = value − best value; `ratio` = value / best value (only for rates
    and probabilities, and only when the best value is above 0). The best-off group has the most favourable value: highest for
    rates of being selected or succeeding, lowest for errors and worse-off shares,
    closest to zero for the calibration error.
    """
    table = table.copy()
    table["reference_group"] = None
    table["difference"] = np.nan
    table["ratio"] = np.nan
    for (source, _pop, _attr, metric), part in table.groupby(["source", "population", "attribute", "metric"], sort=False):
        judged = part[part["judgeable"]]
        if judged.empty:
            continue
        fav = _favourable(metric, source)
        values = judged["value"]
        best = values.idxmax() if fav == HIGH else values.idxmin() if fav == LOW else values.abs().idxmin()
        ref = float(table.at[best, "value"])
        table.loc[part.index, "reference_group"] = table.at[best, "group"]
        table.loc[part.index, "difference"] = part["value"] - ref
        if fav != ZERO and metric != "mean_score" and ref > 0:  # ratios only of non-negative rates and means
            table.loc[part.index, "ratio"] = part["value"] / ref
    return table[LONG_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# The gate.


@dataclass
class GateResult:
    """Outcome of the fairness gate.

    `table` has one row per check (statistic, value, threshold, passed, groups);
    `metrics` is the long group table the checks were computed from.
    """

    passed: bool
    failures: list[str]
    table: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    metrics: pd.DataFrame | None = None


GATE_COLUMNS = ["check", "source", "population", "attribute", "metric", "statistic", "value", "threshold", "passed",
                "groups_judged", "highest_group", "lowest_group", "note"]


def _spread(part: pd.DataFrame) -> tuple[float, float, str, str, int]:
    """(max − min, min / max, group with max, group with min, judged groups) over judgeable rows."""
    judged = part[part["judgeable"]]
    if len(judged) < 2:
        return np.nan, np.nan, "", "", len(judged)
    hi, lo = judged["value"].idxmax(), judged["value"].idxmin()
    vmax, vmin = float(judged.at[hi, "value"]), float(judged.at[lo, "value"])
    return vmax - vmin, (vmin / vmax if vmax > 0 else np.nan), str(judged.at[hi, "group"]), str(judged.at[lo, "group"]), len(judged)


def _population_of(source: str, metric: str) -> str:
    return next(m.population for m in METRICS if m.source == source and m.name == metric)


def judge(metrics: pd.DataFrame, *, params: FairnessParams) -> GateResult:
    """Apply the gate thresholds of `params.gate` to the long group table."""
    gate = params.gate
    rows, failures, warnings = [], [], []

    def record(check, source, metric, attribute, statistic, value, threshold, ok, groups, best, worst, note=""):
        rows.append(dict(check=check, source=source, population=_population_of(source if source != "plan_vs_human" else PLAN, metric),
                         attribute=attribute, metric=metric, statistic=statistic, value=value, threshold=threshold,
                         passed=ok, groups_judged=groups, highest_group=best, lowest_group=worst, note=note))

    def part_of(source, metric, attribute):
        m = metrics
        return m[(m["source"] == source) & (m["metric"] == metric) & (m["attribute"] == attribute)]

    def unjudgeable(check, source, metric, attribute, statistic, threshold, groups):
        note = f"fewer than 2 groups with at least {params.min_group_size} in the denominator"
        text = f"{source}.{metric} by {attribute}: cannot judge ({groups} group(s) large enough; {note})"
        ok = not gate.fail_when_unjudgeable
        (warnings if ok else failures).append(text)
        record(check, source, metric, attribute, statistic, np.nan, threshold, ok, groups, "", "", "cannot judge: " + note)

    for attribute in gate.attributes:
        for key, threshold in gate.max_difference.items():
            source, metric = key.split(".", 1)
            part = part_of(source, metric, attribute)
            if part.empty:
                continue
            diff, _, best, worst, groups = _spread(part)
            if groups < 2:
                unjudgeable("max_difference", source, metric, attribute, "difference", threshold, groups)
                continue
            ok = bool(diff <= threshold)
            se = part.set_index("group")["se"]
            se_diff = float(np.hypot(se.get(best, np.nan), se.get(worst, np.nan)))
            note = f"standard error of the difference {se_diff:.3f}" if np.isfinite(se_diff) else ""
            record("max_difference", source, metric, attribute, "difference", diff, threshold, ok, groups, best, worst, note)
            if not ok:
                failures.append(f"{source}.{metric} by {attribute}: difference {diff:.3f} between {best} and {worst} exceeds {threshold:.3f}")
        for key, threshold in gate.min_ratio.items():
            source, metric = key.split(".", 1)
            part = part_of(source, metric, attribute)
            if part.empty:
                continue
            _, ratio, best, worst, groups = _spread(part)
            if groups < 2:
                unjudgeable("min_ratio", source, metric, attribute, "ratio", threshold, groups)
                continue
            ok = bool(ratio >= threshold)
            record("min_ratio", source, metric, attribute, "ratio", ratio, threshold, ok, groups, best, worst)
            if not ok:
                failures.append(f"{source}.{metric} by {attribute}: ratio {ratio:.3f} of {worst} to {best} is below {threshold:.3f}")
        for metric, threshold in gate.max_ratio_drop.items():
            plan, human = part_of(PLAN, metric, attribute), part_of(HUMAN, metric, attribute)
            if plan.empty or human.empty:
                continue
            # Judge both on the groups large enough in both, so the ratios compare like with like.
            both = set(plan.loc[plan["judgeable"], "group"]) & set(human.loc[human["judgeable"], "group"])
            plan = plan.assign(judgeable=plan["group"].isin(both))
            human = human.assign(judgeable=human["group"].isin(both))
            _, plan_ratio, best, worst, groups = _spread(plan)
            _, human_ratio, hbest, hworst, _ = _spread(human)
            if groups < 2:
                unjudgeable("max_ratio_drop", PLAN, metric, attribute, "ratio_drop", threshold, groups)
                continue
            drop = human_ratio - plan_ratio
            ok = bool(drop <= threshold)
            note = f"human ratio {human_ratio:.3f} ({hworst} to {hbest}), plan ratio {plan_ratio:.3f} ({worst} to {best})"
            record("max_ratio_drop", "plan_vs_human", metric, attribute, "ratio_drop", drop, threshold, ok, groups, best, worst, note)
            if not ok:
                failures.append(f"plan vs human {metric} by {attribute}: the plan widens the gap, ratio {plan_ratio:.3f} "
                                f"vs human {human_ratio:.3f} (drop {drop:.3f} > {threshold:.3f})")
    small = metrics[~metrics["judgeable"] & metrics["attribute"].isin(gate.attributes) & (metrics["n"] > 0)]
    if not small.empty:
        names = sorted({f"{a}={g}" for a, g in zip(small["attribute"], small["group"])})
        warnings.append(f"groups too small to judge on at least one metric (fewer than {params.min_group_size}): " + ", ".join(names))
    table = pd.DataFrame(rows, columns=GATE_COLUMNS)
    return GateResult(passed=not failures, failures=failures, table=table, warnings=warnings, metrics=metrics)


# ---------------------------------------------------------------------------------------------
# Orchestration: what `audit` and the trainer's gate both compute.


@dataclass
class FairnessAudit:
    """Row-level frames and group results of one audit run (see module docstring)."""

    period: HeldOut
    meetings: pd.DatetimeIndex
    predictions: pd.DataFrame  # audit_predictions.csv: one row per held-out placement with a known outcome
    features: pd.DataFrame  # the model features of those rows (same index)
    decisions: pd.DataFrame  # audit_decisions.csv: one row per held-out (meeting, candidate)
    planned: pd.DataFrame  # the plan's pairs with P and support count
    metrics: pd.DataFrame  # fairness.csv
    gate: GateResult
    plan_params: Any  # models.counterfactual.PlanParams: the eligibility rules and plan settings used
    pipeline: PipelineParams
    warnings: list[str]


def run_fairness(ds: Dataset, bundle: ModelBundle, *, params: FairnessParams, config: Mapping[str, Any],
                 progress: Callable[[str], None] | None = None) -> FairnessAudit:
    """Build the held-out frames, compute the group metrics and judge them against the gate."""
    from models.counterfactual import PlanParams, candidate_decisions

    say = progress or (lambda _msg: None)
    assert_no_protected_features(bundle)
    if ds.client_protected is None:
        raise UserError(ERR_NO_PROTECTED)
    period = held_out_period(bundle)
    pipeline = pipeline_params(bundle, config)
    warnings: list[str] = []
    if not pipeline.from_model:
        warnings.append("the model's metadata does not record its feature and label params: the audit used the current params.yaml")
    train_end = (bundle.metadata or {}).get("train_end")
    if train_end and pd.Timestamp(str(train_end)[:10]) >= period.start:
        warnings.append(f"the model was trained on meetings up to {str(train_end)[:10]}, inside the audited period "
                        f"from {period.start:%Y-%m-%d}: the numbers are optimistic")
    say("held-out placements: features, predictions, attributes")
    predictions, features = audit_predictions(ds, bundle, params=params, pipeline=pipeline, period=period)
    meetings = held_out_meetings(ds, period)
    plan_params = PlanParams.from_config(config)
    say(f"plan vs meeting at {len(meetings)} held-out meetings")
    decisions, planned = candidate_decisions(ds, bundle, meetings, pipeline=pipeline, plan_params=plan_params,
                                             tol=params.worse_off_tolerance, progress=say)
    if len(decisions):
        decisions = pd.concat([decisions, attribute_frame(ds, decisions, params=params)], axis=1)
    say("group metrics")
    frames = {PLACEMENTS: predictions}
    if len(decisions):
        frames[CANDIDATES] = decisions
    metrics = group_metrics(frames, params=params)
    gate = judge(metrics, params=params)
    gate.warnings = warnings + gate.warnings
    return FairnessAudit(period, meetings, predictions, features, decisions, planned, metrics, gate,
                         plan_params, pipeline, warnings)


def fairness_gate(ds: Dataset, bundle: ModelBundle, *, params: FairnessParams, config: Mapping[str, Any],
                  progress: Callable[[str], None] | None = None) -> GateResult:
    """The fairness gate the trainer applies before promoting a model (same computation as `audit`).

    Args:
        ds: the dataset the model was trained and evaluated on (with client_protected).
        bundle: the model; its metadata must hold `test_start` (and `test_end`).
        params: params.yaml `fairness:` (thresholds fixed before use).
        config: the whole params.yaml mapping (features, labels, passend_toewijzen, and
            the eligibility/assignment sections the plan uses).

    Returns:
        GateResult: `.passed`, `.failures` (human-readable, empty when passed),
        `.table` (one row per check), `.warnings`, `.metrics` (the long group table).

    A model that cannot be judged (no held-out period in its metadata, no held-out
    placement with a known outcome) or that uses a protected attribute as a feature
    fails the gate: it returns `passed=False` with the reason, it does not raise.

    Raises:
        UserError: the dataset has no client_protected table (nothing can be audited).
    """
    protected = find_protected(bundle.feature_names)
    if protected:
        text = ERR_PROTECTED_FEATURE.format(names=", ".join(protected))
        row = dict(check="no_protected_features", source=MODEL, population="", attribute=", ".join(protected),
                   metric="feature_names", statistic="count", value=float(len(protected)), threshold=0.0, passed=False,
                   groups_judged=0, highest_group="", lowest_group="", note=text)
        return GateResult(passed=False, failures=[text], table=pd.DataFrame([row], columns=GATE_COLUMNS))
    try:
        return run_fairness(ds, bundle, params=params, config=config, progress=progress).gate
    except CannotJudge as exc:
        row = dict(check="can_judge", source=MODEL, population=PLACEMENTS, attribute="", metric="", statistic="",
                   value=np.nan, threshold=np.nan, passed=False, groups_judged=0, highest_group="", lowest_group="", note=str(exc))
        return GateResult(passed=False, failures=[f"cannot judge: {exc}"], table=pd.DataFrame([row], columns=GATE_COLUMNS))
