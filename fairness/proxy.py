"""SHAP for auditors and the proxy analysis: which features stand in for protected attributes.

- Global importance: mean |TreeSHAP contribution| per feature.
- Per group: mean |contribution| and mean signed contribution of each feature by group;
  features whose mean contribution differs most between (judgeable) groups are flagged.
- Proxy probe: for each protected attribute and each of its values (one-vs-rest), a
  small LightGBM classifier predicts the value from the model's features; its
  cross-validated ROC-AUC (folds grouped by client, so one client never sits on both
  sides) says how much of the attribute the features carry (0.5 = nothing), and its
  gain importances say which features carry it.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold


@dataclass(frozen=True)
class ProbeParams:
    """The probe classifier and when its AUC flags a proxy."""

    attributes: tuple[str, ...]
    n_splits: int
    num_leaves: int
    num_boost_round: int
    learning_rate: float
    min_data_in_leaf: int
    seed: int
    flag_auc: float
    top_features: int


def global_importance(contributions: pd.DataFrame) -> pd.Series:
    """Mean |contribution| per feature, largest first."""
    return contributions.abs().mean().sort_values(ascending=False, kind="stable").rename("mean_abs_contribution")


def shap_by_group(contributions: pd.DataFrame, attributes: pd.DataFrame, *, min_group_size: int) -> pd.DataFrame:
    """Per attribute, group and feature: mean |contribution|, mean contribution, n, judgeable."""
    parts = []
    for attribute in attributes.columns:
        key = attributes[attribute].astype(str)
        n = key.value_counts()
        mean_abs = contributions.abs().groupby(key).mean()
        mean = contributions.groupby(key).mean()
        part = (
            mean_abs.stack().rename("mean_abs_contribution").to_frame().join(mean.stack().rename("mean_contribution"))
        )
        part.index.names = ["group", "feature"]
        part = part.reset_index()
        part.insert(0, "attribute", attribute)
        part["n"] = part["group"].map(n).astype(int)
        part["judgeable"] = part["n"] >= min_group_size
        parts.append(part)
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(
            columns=["attribute", "group", "feature", "mean_abs_contribution", "mean_contribution", "n", "judgeable"]
        )
    )


def shap_flags(by_group: pd.DataFrame, *, top: int) -> pd.DataFrame:
    """Per attribute, the `top` features whose mean contribution differs most between judgeable groups.

    `spread` = highest minus lowest group mean contribution (units of the score):
    how differently the feature pushes the scores of the groups.
    """
    judged = by_group[by_group["judgeable"]]
    rows = []
    for (attribute, feature), part in judged.groupby(["attribute", "feature"], sort=False):
        if part["group"].nunique() < 2:
            continue
        hi, lo = part["mean_contribution"].idxmax(), part["mean_contribution"].idxmin()
        rows.append(
            dict(
                attribute=attribute,
                feature=feature,
                spread=float(part.at[hi, "mean_contribution"] - part.at[lo, "mean_contribution"]),
                highest_group=part.at[hi, "group"],
                highest=float(part.at[hi, "mean_contribution"]),
                lowest_group=part.at[lo, "group"],
                lowest=float(part.at[lo, "mean_contribution"]),
            )
        )
    table = pd.DataFrame(
        rows, columns=["attribute", "feature", "spread", "highest_group", "highest", "lowest_group", "lowest"]
    )
    table = table.sort_values(["attribute", "spread", "feature"], ascending=[True, False, True], kind="stable")
    return table.groupby("attribute", sort=False).head(top).reset_index(drop=True)


def _probe_params(params: ProbeParams) -> dict:
    return {
        "objective": "binary",
        "num_leaves": params.num_leaves,
        "learning_rate": params.learning_rate,
        "min_data_in_leaf": params.min_data_in_leaf,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }


def proxy_probe(
    features: pd.DataFrame, attributes: pd.DataFrame, clients: pd.Series, *, params: ProbeParams, min_class_size: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validated one-vs-rest probes of each protected attribute from the model's features.

    Args:
        features: model features, one row per placement.
        attributes: the protected attributes of the same rows (columns named in params.attributes).
        clients: client ids of the rows; folds never split a client.
        params: the probe settings.
        min_class_size: classes with fewer clients than this (or than n_splits) are skipped.

    Returns:
        (auc, importance): `auc` has attribute, group, auc, n_positive, n, flagged (and a
        `note` for skipped classes); `importance` has attribute, group, feature, importance
        (share of the probe's total gain, averaged over folds).
    """
    X = features.to_numpy(dtype=float)
    names = list(features.columns)
    aucs, imps = [], []
    for attribute in params.attributes:
        if attribute not in attributes:
            continue
        values = attributes[attribute].astype(str).to_numpy()
        for group in sorted(np.unique(values)):
            y = (values == group).astype(int)
            n_pos_clients = pd.Series(clients[y == 1]).nunique()
            n_neg_clients = pd.Series(clients[y == 0]).nunique()
            if min(n_pos_clients, n_neg_clients) < max(min_class_size, params.n_splits):
                aucs.append(
                    dict(
                        attribute=attribute,
                        group=group,
                        auc=np.nan,
                        n_positive=int(y.sum()),
                        n=len(y),
                        flagged=False,
                        note=f"skipped: fewer than {max(min_class_size, params.n_splits)} clients on one side",
                    )
                )
                continue
            folds = StratifiedGroupKFold(n_splits=params.n_splits, shuffle=True, random_state=params.seed)
            oof = np.zeros(len(y))
            gain = np.zeros(len(names))
            for train, test in folds.split(X, y, groups=np.asarray(clients)):
                booster = lgb.train(
                    _probe_params(params),
                    lgb.Dataset(X[train], label=y[train], feature_name=names),
                    num_boost_round=params.num_boost_round,
                )
                oof[test] = booster.predict(X[test])
                g = booster.feature_importance("gain")
                gain += g / g.sum() if g.sum() > 0 else g
            auc = float(roc_auc_score(y, oof))
            aucs.append(
                dict(
                    attribute=attribute,
                    group=group,
                    auc=auc,
                    n_positive=int(y.sum()),
                    n=len(y),
                    flagged=bool(auc >= params.flag_auc),
                    note="",
                )
            )
            imps.append(
                pd.DataFrame(
                    {"attribute": attribute, "group": group, "feature": names, "importance": gain / params.n_splits}
                )
            )
    auc_table = pd.DataFrame(aucs, columns=["attribute", "group", "auc", "n_positive", "n", "flagged", "note"])
    importance = (
        pd.concat(imps, ignore_index=True)
        if imps
        else pd.DataFrame(columns=["attribute", "group", "feature", "importance"])
    )
    importance = importance.sort_values(
        ["attribute", "group", "importance"], ascending=[True, True, False], kind="stable"
    )
    return auc_table, importance.reset_index(drop=True)


def proxy_summary(auc: pd.DataFrame, importance: pd.DataFrame, *, top: int) -> pd.DataFrame:
    """Per attribute and group: AUC, flag and the `top` features carrying the signal, in words."""
    rows = []
    for _, r in auc.iterrows():
        imp = importance[(importance["attribute"] == r["attribute"]) & (importance["group"] == r["group"])].head(top)
        carriers = ", ".join(f"{f} ({v:.0%})" for f, v in zip(imp["feature"], imp["importance"], strict=True))
        rows.append({**r.to_dict(), "top_features": carriers})
    return pd.DataFrame(rows, columns=[*auc.columns, "top_features"])
