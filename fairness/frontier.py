"""The policy frontier: each priority policy replayed over the held-out weeks as a queue, side by side.

Per policy: expected sustained tenancies (the model's P; the truth's where the
generator wrote it), placements, waiting weeks of those placed and of those still
waiting (median, 90th percentile), the worse-off share (a home more than
`no_real_difference` below the client's best that week), and per protected group
the share of queued clients placed, how many were placed (`placed`: the
denominator of their median wait) and their median wait against the meeting's
own history over the same weeks (audit-only data, read here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from fairness.attributes import attribute_frame
from fairness.params import FairnessParams
from features.load import Dataset
from planning.assignment import AssignmentParams
from planning.replay import Replay, queue_history, replay

HISTORY = "meeting_history"


def policy_frontier(
    ds: Dataset,
    meetings,
    policies: Mapping[str, AssignmentParams],
    score: Callable[[pd.DataFrame], pd.DataFrame],
    *,
    fairness: FairnessParams,
    tolerance: float,
    batch_weeks: int = 1,
    batch_pairs: int = 200_000,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Replay]]:
    """(summary table, per-group table, replays) for `policies` over `meetings` (see module doc).

    `score` returns the eligible pairs with `p_sustained` (and optionally `true_p`); with
    `batch_weeks` > 1 it must judge each pair on its own (`planning.replay.replay`, also `batch_pairs`).
    """
    meetings = sorted(pd.Timestamp(m) for m in meetings)
    history = queue_history(ds.candidates, ds.vacancies, set(ds.placements["client_id"]))
    runs = replay(history, meetings, policies, score, batch_weeks=batch_weeks, batch_pairs=batch_pairs)
    start, end = meetings[0], meetings[-1]
    queued = ds.candidates[(ds.candidates["meeting_date"] >= start) & (ds.candidates["meeting_date"] <= end)]
    clients = pd.DataFrame({"client_id": sorted(queued["client_id"].unique())})
    clients["meeting_date"] = end
    attrs = attribute_frame(ds, clients, params=fairness)
    hist = ds.placements[(ds.placements["meeting_date"] >= start) & (ds.placements["meeting_date"] <= end)]
    hist_wait = (hist["meeting_date"] - hist["client_id"].map(history.arrival)).dt.days / 7.0
    rows, groups = [], []
    placed_sets = {name: run.placements for name, run in runs.items()}
    placed_sets[HISTORY] = hist.assign(waiting_weeks=hist_wait.to_numpy())
    for name, done in placed_sets.items():
        run = runs.get(name)
        row: dict = {"policy": name, "placements": len(done)}
        if run is not None:
            row["expected_sustained_model"] = float(done["p_sustained"].sum())
            if "true_p" in done.columns:
                row["expected_sustained_truth"] = float(done["true_p"].sum())
                row["truth_coverage"] = float(done["true_p"].notna().mean()) if len(done) else np.nan
            worse = done["p_sustained"] < done["best_p_sustained"] - tolerance
            row["worse_off_share"] = float(worse.mean()) if len(done) else np.nan
            still = run.waiting["waiting_weeks"]
            row["still_waiting"] = len(still)
            row["still_waiting_median_weeks"] = float(still.median()) if len(still) else np.nan
            row["still_waiting_p90_weeks"] = float(still.quantile(0.9)) if len(still) else np.nan
        row["placed_waiting_median_weeks"] = float(done["waiting_weeks"].median()) if len(done) else np.nan
        row["placed_waiting_p90_weeks"] = float(done["waiting_weeks"].quantile(0.9)) if len(done) else np.nan
        rows.append(row)
        placed_ids = set(done["client_id"])
        waits = done.drop_duplicates("client_id").set_index("client_id")["waiting_weeks"]
        for attribute in fairness.gate.attributes:
            if attribute not in attrs.columns:
                continue
            frame = pd.DataFrame(
                {
                    "group": attrs[attribute].astype(str).to_numpy(),
                    "placed": clients["client_id"].isin(placed_ids).to_numpy(),
                    "wait": clients["client_id"].map(waits).to_numpy(dtype=float),
                }
            )
            for group, g in frame.groupby("group"):
                groups.append(
                    {
                        "policy": name,
                        "attribute": attribute,
                        "group": group,
                        "clients": len(g),
                        "judgeable": len(g) >= fairness.min_group_size,
                        "placement_rate": float(g["placed"].mean()),
                        "placed": int(g["placed"].sum()),
                        "placed_waiting_median_weeks": float(g["wait"].median()) if g["wait"].notna().any() else np.nan,
                    }
                )
    table = pd.DataFrame(rows)
    by_group = pd.DataFrame(groups)
    if len(by_group):
        ref = by_group[by_group["policy"] == HISTORY].set_index(["attribute", "group"])["placement_rate"]
        keys = pd.MultiIndex.from_frame(by_group[["attribute", "group"]])
        by_group["history_placement_rate"] = ref.reindex(keys).to_numpy()
        ratios = []
        for (policy, attribute), part in by_group.groupby(["policy", "attribute"], sort=False):
            judged = part[part["judgeable"]]
            top = judged["placement_rate"].max() if len(judged) >= 2 else 0.0
            r = judged["placement_rate"].min() / top if top > 0 else np.nan
            ratios.append({"policy": policy, "attribute": attribute, "placement_ratio": r})
        ratio = pd.DataFrame(ratios).pivot(index="policy", columns="attribute", values="placement_ratio")
        ratio.columns = [f"placement_ratio_{c}" for c in ratio.columns]
        table = table.merge(ratio, left_on="policy", right_index=True, how="left")
    return table, by_group, runs
