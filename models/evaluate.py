"""Honest evaluation on held-out meetings: classification, calibration and ranking metrics.

Metrics are small flat functions computed per query (meeting) and then averaged.
NDCG convention: gains from the same `label_gain` the ranker trains with; a
meeting whose placements all have grade 0 (no relevant item) has an undefined
NDCG and is left out of the average (LightGBM would count it as 1, sklearn as 0;
we count neither and report how many were left out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.meetings import meeting_codes


def dcg_at_k(gains_in_rank_order: np.ndarray, k: int) -> float:
    """Discounted cumulative gain of the first k items (log2 discount)."""
    g = np.asarray(gains_in_rank_order, dtype=float)[:k]
    return float(np.sum(g / np.log2(np.arange(2, g.size + 2))))


def ndcg_at_k(scores: np.ndarray, grades: np.ndarray, k: int, label_gain: tuple[float, ...]) -> float:
    """NDCG@k of one query; NaN when no item has a positive gain. Ties broken by input order."""
    gains = np.asarray(label_gain, dtype=float)[np.asarray(grades, dtype=int)]
    ideal = dcg_at_k(np.sort(gains)[::-1], k)
    if ideal == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    return dcg_at_k(gains[order], k) / ideal


def mean_ndcg(frame: pd.DataFrame, score_col: str, k: int, label_gain: tuple[float, ...]) -> tuple[float, int]:
    """Mean NDCG@k over regional meetings (meeting_date, region), and how many had no relevant item (left out)."""
    values = [
        ndcg_at_k(g[score_col].to_numpy(), g["grade"].to_numpy(), k, label_gain)
        for _, g in frame.groupby(meeting_codes(frame), sort=True)
    ]
    arr = np.array(values, dtype=float)
    return (float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")), int(np.isnan(arr).sum())


def reliability_curve(p: np.ndarray, y: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Observed rate vs mean predicted probability in equal-count bins."""
    frame = pd.DataFrame({"p": p, "y": y})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=min(bins, len(frame)), labels=False)
    return (
        frame.groupby("bin")
        .agg(mean_predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size"))
        .reset_index(drop=True)
    )


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Count-weighted mean |observed − predicted| over the reliability bins."""
    curve = reliability_curve(p, y, bins)
    return float(np.average((curve["observed"] - curve["mean_predicted"]).abs(), weights=curve["n"]))


def placement_metrics(
    frame: pd.DataFrame, score_col: str, label_gain: tuple[float, ...], proba_col: str | None = None
) -> dict:
    """Metrics of one scorer on held-out placements (`sustained`, `grade`, `meeting_date`, optional `region`).

    Failure is the positive class for ROC-AUC and PR-AUC (score is negated):
    failures are the minority the meeting most needs to see.
    """
    y_fail = 1 - frame["sustained"].astype(int).to_numpy()
    s = frame[score_col].to_numpy(dtype=float)
    out = {
        "n_placements": int(len(frame)),
        "failure_rate": float(y_fail.mean()),
        "roc_auc_failure": float(roc_auc_score(y_fail, -s)) if 0 < y_fail.sum() < len(y_fail) else float("nan"),
        "pr_auc_failure": float(average_precision_score(y_fail, -s)) if y_fail.sum() > 0 else float("nan"),
    }
    for k in (5, 10):
        out[f"ndcg_at_{k}"], out["meetings_without_relevant"] = mean_ndcg(frame, score_col, k, label_gain)
    if proba_col is not None:
        p = frame[proba_col].to_numpy(dtype=float)
        y = frame["sustained"].astype(int).to_numpy()
        out["brier"] = float(brier_score_loss(y, p))
        out["ece"] = expected_calibration_error(p, y)
        out["mean_predicted_sustained"] = float(p.mean())
    return out


def paired_bootstrap(
    frame: pd.DataFrame,
    model_col: str,
    baseline_cols: dict[str, str],
    label_gain: tuple[float, ...],
    resamples: int,
    seed: int,
) -> pd.DataFrame:
    """Model minus each baseline on the ranking metrics, with a bootstrap over regional meetings.

    Regional meetings (meeting_date, region; not placements) are drawn with replacement, the same draw for the model
    and the baseline (paired), so the interval reflects which meetings happened to be
    held out. Returns one row per (baseline, metric): model value, baseline value,
    difference, its 2.5% and 97.5% bootstrap quantiles and the share of resamples in
    which the model is ahead (higher is better for every metric here).
    """
    codes = meeting_codes(frame)  # a meeting is a region on a date
    n_meetings = int(codes.max()) + 1
    rows_of = _rows_of(codes, n_meetings)
    y_fail = 1 - frame["sustained"].astype(int).to_numpy()
    cols = {"model": model_col, **baseline_cols}
    scores = {name: frame[col].to_numpy(dtype=float) for name, col in cols.items()}
    grades = frame["grade"].to_numpy()
    ndcg = {
        (name, k): np.array([ndcg_at_k(scores[name][r], grades[r], k, label_gain) for r in rows_of])
        for name in cols
        for k in (5, 10)
    }
    # Each scorer's rows are sorted once; a draw only weighs every row by how often its meeting was drawn.
    ranked = {name: _WeightedRanking(-scores[name], y_fail, codes) for name in cols}

    def values(draw: np.ndarray) -> dict[tuple[str, str], float]:
        times = np.bincount(draw, minlength=n_meetings).astype(float)  # copies of each meeting in the draw
        out = {}
        for name in cols:
            pos, neg = ranked[name].counts(times)
            n_pos, n_neg = pos.sum(), neg.sum()
            out[name, "roc_auc_failure"] = _weighted_roc_auc(pos, neg) if n_pos > 0 and n_neg > 0 else np.nan
            out[name, "pr_auc_failure"] = _weighted_average_precision(pos, neg) if n_pos > 0 else np.nan
            for k in (5, 10):
                v = ndcg[name, k][draw]
                out[name, f"ndcg_at_{k}"] = np.nanmean(v) if np.isfinite(v).any() else np.nan
        return out

    return bootstrap_differences(
        values,
        n_meetings,
        list(baseline_cols),
        ("roc_auc_failure", "pr_auc_failure", "ndcg_at_5", "ndcg_at_10"),
        resamples,
        seed,
    )


def bootstrap_differences(
    values, n_units: int, baselines: list[str], metrics: tuple[str, ...], resamples: int, seed: int
) -> pd.DataFrame:
    """Model minus each baseline per metric, observed and over `resamples` draws of the units with replacement.

    `values(draw)` maps an array of unit indices (meetings) to {(scorer, metric): value}
    with "model" among the scorers. One row per (baseline, metric), see `difference_row`.
    """
    observed = values(np.arange(n_units))
    rng = np.random.default_rng(seed)
    draws = [values(rng.integers(0, n_units, n_units)) for _ in range(resamples)]
    table = []
    for name in baselines:
        for metric in metrics:
            diffs = np.array([d["model", metric] - d[name, metric] for d in draws], dtype=float)
            table.append(difference_row(name, metric, observed["model", metric], observed[name, metric], diffs))
    return pd.DataFrame(table)


def _rows_of(codes: np.ndarray, n: int) -> list[np.ndarray]:
    """Row positions of each meeting code 0..n-1, in row order."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n + 1))
    return [order[bounds[m] : bounds[m + 1]] for m in range(n)]


class _WeightedRanking:
    """Rows sorted once by a score, with ties grouped: positives and negatives per distinct score for weighted rows.

    A bootstrap draw repeats whole meetings; weighing each row by its meeting's copies gives
    the very counts the repeated rows would give, without concatenating and re-sorting them.
    """

    def __init__(self, s: np.ndarray, y: np.ndarray, codes: np.ndarray) -> None:
        order = np.argsort(s, kind="stable")
        ordered = s[order]
        self.group = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1  # distinct scores, ascending
        self.n_groups = int(self.group[-1]) + 1 if len(s) else 0
        self.codes = codes[order]
        self.y = y[order].astype(float)

    def counts(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weighted positives and negatives per distinct score (ascending), rows weighted by `times[meeting]`."""
        w = times[self.codes]
        pos = np.bincount(self.group, weights=w * self.y, minlength=self.n_groups)
        return pos, np.bincount(self.group, weights=w, minlength=self.n_groups) - pos


def _weighted_roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC (positives scored higher; ties half) from counts per distinct score, ascending.

    Whole counts: the same number as the Mann-Whitney U / (positives x negatives) of the repeated rows
    (U is a sum of halves, exact in floating point).
    """
    below = np.cumsum(neg) - neg
    u = float(np.sum(pos * (below + 0.5 * neg)))
    return float(u / (pos.sum() * neg.sum()))


def _weighted_average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    """sklearn's average_precision_score from counts per distinct score (ascending), step for step.

    Thresholds are the distinct scores present (count above 0), highest first; true and false
    positives are whole numbers, so precision and recall are the very numbers sklearn computes.
    """
    present = (pos + neg)[::-1] > 0
    tps = np.cumsum(pos[::-1])[present]
    fps = np.cumsum(neg[::-1])[present]
    precision = np.r_[(tps / (tps + fps))[::-1], 1.0]
    recall = np.r_[(tps / tps[-1])[::-1], 0.0]
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def difference_row(baseline: str, metric: str, model_value: float, baseline_value: float, diffs: np.ndarray) -> dict:
    """One row of a model-vs-baseline table from the observed values and bootstrap differences."""
    diffs = diffs[np.isfinite(diffs)]
    return {
        "baseline": baseline,
        "metric": metric,
        "model": float(model_value),
        "baseline_value": float(baseline_value),
        "difference": float(model_value - baseline_value),
        "ci_low": float(np.quantile(diffs, 0.025)) if diffs.size else float("nan"),
        "ci_high": float(np.quantile(diffs, 0.975)) if diffs.size else float("nan"),
        "share_ahead": float((diffs > 0).mean()) if diffs.size else float("nan"),
    }
