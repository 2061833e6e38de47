"""Group metrics through fairlearn's MetricFrame: the long table of fairness.csv, with gaps to the best-off group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
    return metrics_by_group(frame, attribute, [metric], min_group_size=min_group_size)[0]


def _on_groups(frame: pd.DataFrame, metric: Metric, rows_of: list[np.ndarray]):
    """`metric.func` as a function of group numbers: the rows of `frame` in those groups (row order, own subset).

    MetricFrame gets one row per group and hands each function the group numbers it slices:
    fairlearn copies every value it passes element by element (np.stack), so passing the
    row positions themselves cost time in proportion to rows × metrics × groupings.
    """
    y_true = frame[metric.y_true].to_numpy(dtype=float)
    y_pred = frame[metric.y_pred].to_numpy(dtype=float)
    keep = None if metric.subset is None else (frame[metric.subset] == 1).to_numpy()

    def func(group_numbers, _same) -> float:
        numbers = np.unique(np.asarray(group_numbers, dtype=np.int64))
        numbers = numbers[(numbers >= 0) & (numbers < len(rows_of))]
        # the rows in those groups, in row order (as np.isin over every row finds them)
        rows = (
            rows_of[numbers[0]] if len(numbers) == 1 else np.sort(np.concatenate([rows_of[g] for g in numbers] or [[]]))
        )
        rows = rows.astype(np.int64)
        if keep is not None:
            rows = rows[keep[rows]]
        return metric.func(y_true[rows], y_pred[rows]) if len(rows) else np.nan

    return func


def _rows_of_groups(codes: np.ndarray) -> list[np.ndarray]:
    """The row positions of each group number (0, 1, …, max code), in row order: found once, not per call."""
    if len(codes) == 0:
        return []
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(int(codes.max()) + 2))
    return [order[bounds[g] : bounds[g + 1]] for g in range(int(codes.max()) + 1)]


def metrics_by_group(
    frame: pd.DataFrame, attribute: str, metrics: Sequence[Metric], *, min_group_size: int = 1
) -> list[pd.DataFrame]:
    """`metric_by_group` for several metrics of one population, built once for the attribute.

    One fairlearn MetricFrame holds every metric by group (each metric reads its own
    columns and rows through the group numbers it is given, `_on_groups`), and one more per
    distinct set of judgeable groups gives the between-group statistics: the same values as
    one MetricFrame per metric over the rows, computed on the same rows in the same order.
    """
    keys = frame[attribute].astype(str)
    groups = pd.Index(sorted(keys.unique()), name="group")
    n = frame.groupby(keys).size().reindex(groups, fill_value=0)
    keyed = frame.assign(**{attribute: keys})
    codes = groups.get_indexer(keys)  # each row's group number
    numbers = np.arange(len(groups), dtype=float)  # MetricFrame's rows: one per group
    names = groups.to_numpy(dtype=object)
    rows_of = _rows_of_groups(codes)  # once for the attribute, not per metric or per call
    funcs = {str(i): _on_groups(frame, m, rows_of) for i, m in enumerate(metrics)}
    by_group = (
        MetricFrame(
            metrics=funcs, y_true=numbers, y_pred=numbers, sensitive_features=pd.Series(names, name=attribute)
        ).by_group
        if len(frame)
        else None
    )
    outs = []
    for i, metric in enumerate(metrics):
        if by_group is not None:
            values = by_group[str(i)].astype(float).reindex(groups)
        else:
            values = pd.Series(np.nan, index=groups)
        rows = keyed if metric.subset is None else keyed[keyed[metric.subset] == 1]
        support = _support(rows, attribute, metric).reindex(groups, fill_value=0)
        values[support.to_numpy() == 0] = np.nan
        out = pd.DataFrame(
            {"group": groups, "value": values.to_numpy(), "n": n.to_numpy(), "support": support.to_numpy()}
        )
        out["se"] = (
            np.sqrt(out["value"] * (1 - out["value"]) / out["support"].where(out["support"] > 0))
            if metric.binary
            else np.nan
        )
        out["judgeable"] = (out["support"] >= min_group_size) & out["value"].notna()
        out["between_difference"], out["between_ratio"] = np.nan, np.nan
        outs.append(out)
    judged_sets: dict[frozenset, list[int]] = {}
    for i, out in enumerate(outs):
        judged = frozenset(out.loc[out["judgeable"], "group"])
        if len(judged) >= 2:
            judged_sets.setdefault(judged, []).append(i)
    for judged, members in judged_sets.items():
        inside = groups.isin(judged)
        mf = MetricFrame(
            metrics={str(i): funcs[str(i)] for i in members},
            y_true=numbers[inside],
            y_pred=numbers[inside],
            sensitive_features=names[inside],
        )
        difference, ratio = mf.difference(method="between_groups"), mf.ratio(method="between_groups")
        for i in members:
            outs[i]["between_difference"] = float(difference[str(i)])
            outs[i]["between_ratio"] = float(ratio[str(i)])
    return outs


def group_metrics(frames: Mapping[str, pd.DataFrame], *, params: FairnessParams) -> pd.DataFrame:
    """The long table of fairness.csv: every metric by every attribute and group, with gaps to the best-off group.

    `frames` maps a population (`placements`, `candidates`) to its row-level frame;
    a population that is absent is skipped. Each (population, attribute) is grouped once
    for all its metrics (`metrics_by_group`).
    """
    computed: dict[tuple[int, str], pd.DataFrame] = {}
    for population, frame in frames.items():
        listed = [(i, m) for i, m in enumerate(METRICS) if m.population == population]
        if not listed:
            continue
        available = PLACEMENT_ATTRIBUTES if population == PLACEMENTS else CLIENT_ATTRIBUTES
        for attribute in params.all_attributes(tuple(a for a in available if a in frame.columns)):
            outs = metrics_by_group(frame, attribute, [m for _, m in listed], min_group_size=params.min_group_size)
            for (i, _), out in zip(listed, outs, strict=True):
                computed[i, attribute] = out
    parts = []
    for i, metric in enumerate(METRICS):
        frame = frames.get(metric.population)
        if frame is None:
            continue
        available = PLACEMENT_ATTRIBUTES if metric.population == PLACEMENTS else CLIENT_ATTRIBUTES
        for attribute in params.all_attributes(tuple(a for a in available if a in frame.columns)):
            part = computed[i, attribute].copy()
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
