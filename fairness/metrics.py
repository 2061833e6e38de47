"""Group metrics through fairlearn's MetricFrame: the long table of fairness.csv, with gaps to the best-off group."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

from fairness.catalogue import HIGH, LOW, METRICS, PLACEMENTS, ZERO, Metric
from fairness.params import CLIENT_ATTRIBUTES, PLACEMENT_ATTRIBUTES, FairnessParams

LONG_COLUMNS = [
    "attribute",
    "group",
    "metric",
    "value",
    "n",
    "source",
    "population",
    "support",
    "se",
    "judgeable",
    "reference_group",
    "difference",
    "ratio",
    "between_difference",
    "between_ratio",
]


def _support(frame: pd.DataFrame, attribute: str, metric: Metric) -> pd.Series:
    if metric.support == "rows":
        return frame.groupby(attribute).size()
    if metric.support == "positives":
        return frame[frame[metric.y_true] == 1].groupby(attribute).size()
    if metric.support == "negatives":
        return frame[frame[metric.y_true] == 0].groupby(attribute).size()
    return frame.groupby(attribute)["client_id"].nunique()


def metric_by_group(frame: pd.DataFrame, attribute: str, metric: Metric, *, min_group_size: int = 1) -> pd.DataFrame:
    """One metric for every group of `attribute`: group, value, n (rows in the group), support, judgeable.

    The value is empty where the metric's denominator is empty (no positives for a TPR, …).
    A group is judgeable when its metric's denominator (`support`) holds at least
    `min_group_size` independent units: the one definition used by the gate and every table.
    `between_difference` and `between_ratio` (the same on every row) are fairlearn's own
    `MetricFrame.difference()` and `.ratio()` (between groups) over the judgeable groups:
    the statistics the gate judges.
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
    out["se"] = (
        np.sqrt(out["value"] * (1 - out["value"]) / out["support"].where(out["support"] > 0))
        if metric.binary
        else np.nan
    )
    out["judgeable"] = (out["support"] >= min_group_size) & out["value"].notna()
    judged = set(out.loc[out["judgeable"], "group"])
    out["between_difference"], out["between_ratio"] = np.nan, np.nan
    if len(judged) >= 2:
        inside = keyed[attribute].isin(judged).to_numpy()
        mf = MetricFrame(
            metrics=metric.func,
            y_true=rows[metric.y_true].to_numpy(dtype=float)[inside],
            y_pred=rows[metric.y_pred].to_numpy(dtype=float)[inside],
            sensitive_features=keyed[attribute].to_numpy()[inside],
        )
        out["between_difference"] = float(mf.difference(method="between_groups"))
        out["between_ratio"] = float(mf.ratio(method="between_groups"))
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
            part = metric_by_group(frame, attribute, metric, min_group_size=params.min_group_size)
            part.insert(0, "attribute", attribute)
            part.insert(2, "metric", metric.name)
            part["source"] = metric.source
            part["population"] = metric.population
            parts.append(part)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LONG_COLUMNS)
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
    for (source, _pop, _attr, metric), part in table.groupby(
        ["source", "population", "attribute", "metric"], sort=False
    ):
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
