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
from scipy.stats import mannwhitneyu
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
    order = np.argsort(codes, kind="stable")
    frame, codes = frame.iloc[order].reset_index(drop=True), codes[order]
    n_meetings = codes.max() + 1
    rows_of = [np.flatnonzero(codes == m) for m in range(n_meetings)]
    y_fail = 1 - frame["sustained"].astype(int).to_numpy()
    cols = {"model": model_col, **baseline_cols}
    scores = {name: frame[col].to_numpy(dtype=float) for name, col in cols.items()}
    grades = frame["grade"].to_numpy()
    ndcg = {
        (name, k): np.array([ndcg_at_k(scores[name][r], grades[r], k, label_gain) for r in rows_of])
        for name in cols
        for k in (5, 10)
    }

    def values(draw: np.ndarray) -> dict[tuple[str, str], float]:
        rows = np.concatenate([rows_of[m] for m in draw])
        y = y_fail[rows]
        out = {}
        for name in cols:
            s = -scores[name][rows]
            both = 0 < y.sum() < len(y)
            out[name, "roc_auc_failure"] = _roc_auc(y, s) if both else np.nan
            out[name, "pr_auc_failure"] = average_precision_score(y, s) if y.sum() > 0 else np.nan
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


def _roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney U statistic over (positives x negatives), ties counted half.

    Equal to sklearn's roc_auc_score (tested) and about 4x faster on a thousand rows,
    which matters for hundreds of bootstrap resamples.
    """
    pos = y == 1
    u = mannwhitneyu(s[pos], s[~pos], method="asymptotic", use_continuity=False).statistic
    return float(u / (pos.sum() * (~pos).sum()))


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
