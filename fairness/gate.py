"""The fairness gate: pass/fail checks on the group table, with thresholds fixed in params before use."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fairness.catalogue import HUMAN, METRICS, PLAN
from fairness.frontier import HISTORY
from fairness.params import FairnessParams

REPLAY, QUEUE = "replay", "queue"  # the over-time check: the policy replayed as a queue


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


GATE_COLUMNS = [
    "check",
    "source",
    "population",
    "attribute",
    "metric",
    "statistic",
    "value",
    "threshold",
    "passed",
    "groups_judged",
    "highest_group",
    "lowest_group",
    "note",
]


def _spread(part: pd.DataFrame) -> tuple[float, float, str, str, int]:
    """(difference, ratio, group with max, group with min, judged groups) over judgeable rows.

    The difference and ratio are fairlearn's `MetricFrame.difference()` / `.ratio()`
    between the judgeable groups (fairness/metrics.py, columns `between_difference`,
    `between_ratio`) when the rows judged here are the metric's own judgeable groups;
    when a check narrows them (groups judgeable in both the plan and the meeting),
    the same statistics are taken from the group values.
    """
    judged = part[part["judgeable"]]
    if len(judged) < 2:
        return np.nan, np.nan, "", "", len(judged)
    hi, lo = judged["value"].idxmax(), judged["value"].idxmin()
    vmax, vmin = float(judged.at[hi, "value"]), float(judged.at[lo, "value"])
    if "between_difference" in part.columns and part.attrs.get("narrowed") is not True:
        diff, ratio = float(judged["between_difference"].iloc[0]), float(judged["between_ratio"].iloc[0])
    else:
        diff, ratio = vmax - vmin, (vmin / vmax if vmax > 0 else np.nan)
    return diff, ratio, str(judged.at[hi, "group"]), str(judged.at[lo, "group"]), len(judged)


def _population_of(source: str, metric: str) -> str:
    return next(m.population for m in METRICS if m.source == source and m.name == metric)


class _Checks:
    """The gate's rows, failures and warnings as the checks are run (one runner per statistic below)."""

    def __init__(self, metrics: pd.DataFrame, params: FairnessParams) -> None:
        self.metrics, self.params = metrics, params
        self.rows: list[dict] = []
        self.failures: list[str] = []
        self.warnings: list[str] = []

    def part(self, source: str, metric: str, attribute: str) -> pd.DataFrame:
        m = self.metrics
        return m[(m["source"] == source) & (m["metric"] == metric) & (m["attribute"] == attribute)]

    def record(self, check, source, metric, attribute, statistic, value, threshold, ok, groups, best, worst, note=""):
        population = (
            QUEUE if source == REPLAY else _population_of(source if source != "plan_vs_human" else PLAN, metric)
        )
        self.rows.append(
            dict(
                check=check,
                source=source,
                population=population,
                attribute=attribute,
                metric=metric,
                statistic=statistic,
                value=value,
                threshold=threshold,
                passed=ok,
                groups_judged=groups,
                highest_group=best,
                lowest_group=worst,
                note=note,
            )
        )

    def unjudgeable(self, check, source, metric, attribute, statistic, threshold, groups) -> None:
        note = f"fewer than 2 groups with at least {self.params.min_group_size} in the denominator"
        text = f"{source}.{metric} by {attribute}: cannot judge ({groups} group(s) large enough; {note})"
        ok = not self.params.gate.fail_when_unjudgeable
        (self.warnings if ok else self.failures).append(text)
        self.record(
            check, source, metric, attribute, statistic, np.nan, threshold, ok, groups, "", "", "cannot judge: " + note
        )


def _check_spread(out: _Checks, check: str, key: str, attribute: str, threshold: float) -> None:
    """`max_difference` (largest minus smallest group) or `min_ratio` (smallest over largest) of one metric."""
    source, metric = key.split(".", 1)
    part = out.part(source, metric, attribute)
    if part.empty:
        return
    diff, ratio, best, worst, groups = _spread(part)
    statistic = "difference" if check == "max_difference" else "ratio"
    if groups < 2:
        out.unjudgeable(check, source, metric, attribute, statistic, threshold, groups)
        return
    if check == "max_difference":
        value, ok = diff, bool(diff <= threshold)
        se = part.set_index("group")["se"]
        se_diff = float(np.hypot(se.get(best, np.nan), se.get(worst, np.nan)))
        note = f"standard error of the difference {se_diff:.3f}" if np.isfinite(se_diff) else ""
        failure = f"{source}.{metric} by {attribute}: difference {diff:.3f} between {best} and {worst} exceeds {threshold:.3f}"
    else:
        value, ok, note = ratio, bool(ratio >= threshold), ""
        failure = f"{source}.{metric} by {attribute}: ratio {ratio:.3f} of {worst} to {best} is below {threshold:.3f}"
    out.record(check, source, metric, attribute, statistic, value, threshold, ok, groups, best, worst, note)
    if not ok:
        out.failures.append(failure)


def _check_ratio_drop(out: _Checks, metric: str, attribute: str, threshold: float) -> None:
    """`max_ratio_drop`: per meeting, the plan's ratio against the meeting's, on the groups judgeable in both."""
    plan, human = out.part(PLAN, metric, attribute), out.part(HUMAN, metric, attribute)
    if plan.empty or human.empty:
        return
    # Judge both on the groups large enough in both, so the ratios compare like with like.
    both = set(plan.loc[plan["judgeable"], "group"]) & set(human.loc[human["judgeable"], "group"])
    narrowed_plan = both != set(plan.loc[plan["judgeable"], "group"])
    narrowed_human = both != set(human.loc[human["judgeable"], "group"])
    plan = plan.assign(judgeable=plan["group"].isin(both))
    human = human.assign(judgeable=human["group"].isin(both))
    plan.attrs["narrowed"], human.attrs["narrowed"] = narrowed_plan, narrowed_human
    _, plan_ratio, best, worst, groups = _spread(plan)
    _, human_ratio, hbest, hworst, _ = _spread(human)
    if groups < 2:
        out.unjudgeable("max_ratio_drop", PLAN, metric, attribute, "ratio_drop", threshold, groups)
        return
    drop = human_ratio - plan_ratio
    ok = bool(drop <= threshold)
    note = f"human ratio {human_ratio:.3f} ({hworst} to {hbest}), plan ratio {plan_ratio:.3f} ({worst} to {best})"
    out.record(
        "max_ratio_drop",
        "plan_vs_human",
        metric,
        attribute,
        "ratio_drop",
        drop,
        threshold,
        ok,
        groups,
        best,
        worst,
        note,
    )
    if not ok:
        out.failures.append(
            f"plan vs human {metric} by {attribute}: the plan widens the gap, ratio {plan_ratio:.3f} "
            f"vs human {human_ratio:.3f} (drop {drop:.3f} > {threshold:.3f})"
        )


def _check_replay_drop(out: _Checks, replay: pd.DataFrame, metric: str, attribute: str, threshold: float) -> None:
    """`max_replay_ratio_drop`: over the held-out weeks as a queue, the policy's ratio against the meeting's."""
    part = replay[(replay["attribute"] == attribute) & replay["judgeable"]]
    if part.empty:
        return
    plan = part[part["policy"] != HISTORY].set_index("group")[metric]
    human = part[part["policy"] == HISTORY].set_index("group")[metric]
    both = plan.index.intersection(human.index)
    if len(both) < 2:
        out.unjudgeable("max_replay_ratio_drop", REPLAY, metric, attribute, "ratio_drop", threshold, len(both))
        return
    plan, human = plan.loc[both], human.loc[both]
    plan_ratio = float(plan.min() / plan.max()) if plan.max() > 0 else np.nan
    human_ratio = float(human.min() / human.max()) if human.max() > 0 else np.nan
    drop = human_ratio - plan_ratio
    ok = bool(drop <= threshold)
    note = (
        f"over the held-out weeks as a queue: meeting ratio {human_ratio:.3f} "
        f"({human.idxmin()} to {human.idxmax()}), policy ratio {plan_ratio:.3f}"
    )
    best, worst = str(plan.idxmax()), str(plan.idxmin())
    out.record(
        "max_replay_ratio_drop",
        REPLAY,
        metric,
        attribute,
        "ratio_drop",
        drop,
        threshold,
        ok,
        len(both),
        best,
        worst,
        note,
    )
    if not ok:
        out.failures.append(
            f"policy replay {metric} by {attribute}: over the held-out weeks the policy widens the "
            f"meeting's gap, ratio {plan_ratio:.3f} vs meeting {human_ratio:.3f} "
            f"(drop {drop:.3f} > {threshold:.3f})"
        )


def _check_replay_wait(out: _Checks, replay: pd.DataFrame, metric: str, attribute: str, threshold: float) -> None:
    """`max_replay_wait_widening`: the gap in median wait of those placed, policy against the meeting, in weeks.

    A group is judged when at least `min_group_size` of its clients were placed by the
    policy and by the meeting (the median's own denominator); smaller groups are named.
    """
    part = replay[replay["attribute"] == attribute]
    if part.empty or metric not in part.columns:
        return
    policy, history = part[part["policy"] != HISTORY], part[part["policy"] == HISTORY]
    placed_p = policy.set_index("group")["placed"]
    placed_h = history.set_index("group")["placed"].reindex(placed_p.index).fillna(0)
    large = (placed_p >= out.params.min_group_size) & (placed_h >= out.params.min_group_size)
    both = placed_p.index[large.to_numpy()]
    small = [
        f"{g} ({int(placed_p[g])} placed by the policy, {int(placed_h[g])} by the meeting)"
        for g in placed_p.index[~large.to_numpy()]
    ]
    small_note = f"; not judged (fewer than {out.params.min_group_size} placed): {', '.join(small)}" if small else ""
    if len(both) < 2:
        out.unjudgeable(
            "max_replay_wait_widening", REPLAY, metric, attribute, "gap_widening_weeks", threshold, len(both)
        )
        out.rows[-1]["note"] += small_note
        return
    plan = policy.set_index("group")[metric].loc[both].astype(float)
    human = history.set_index("group")[metric].loc[both].astype(float)
    plan_gap, human_gap = float(plan.max() - plan.min()), float(human.max() - human.min())
    widening = plan_gap - human_gap
    ok = bool(widening <= threshold)
    longest, shortest = str(plan.idxmax()), str(plan.idxmin())
    note = (
        f"median weeks waited by those placed, over the held-out weeks as a queue: policy {plan.max():g} "
        f"({longest}) to {plan.min():g} ({shortest}), gap {plan_gap:g}; meeting {human.max():g} "
        f"({human.idxmax()}) to {human.min():g} ({human.idxmin()}), gap {human_gap:g}" + small_note
    )
    out.record(
        "max_replay_wait_widening",
        REPLAY,
        metric,
        attribute,
        "gap_widening_weeks",
        widening,
        threshold,
        ok,
        len(both),
        longest,
        shortest,
        note,
    )
    if not ok:
        out.failures.append(
            f"policy replay waiting by {attribute}: over the held-out weeks the policy widens the meeting's gap "
            f"in median weeks waited by those placed, {plan_gap:g} weeks ({longest} {plan.max():g} vs {shortest} "
            f"{plan.min():g}) vs the meeting's {human_gap:g} (widening {widening:g} > {threshold:g} weeks)"
        )


def judge(metrics: pd.DataFrame, *, params: FairnessParams, replay: pd.DataFrame | None = None) -> GateResult:
    """Apply the gate thresholds of `params.gate` to the long group table (and to the queue replay's groups).

    `replay` is `fairness.frontier.policy_frontier`'s per-group table for the policy in force
    and the meeting's history over the same weeks.
    """
    gate = params.gate
    out = _Checks(metrics, params)
    for attribute in gate.attributes:
        for key, threshold in gate.max_difference.items():
            _check_spread(out, "max_difference", key, attribute, threshold)
        for key, threshold in gate.min_ratio.items():
            _check_spread(out, "min_ratio", key, attribute, threshold)
        for metric, threshold in gate.max_ratio_drop.items():
            _check_ratio_drop(out, metric, attribute, threshold)
    if replay is not None:
        for metric, threshold in gate.max_replay_ratio_drop.items():
            for attribute in gate.attributes:
                _check_replay_drop(out, replay, metric, attribute, threshold)
        for metric, threshold in gate.max_replay_wait_widening.items():
            for attribute in gate.attributes:
                _check_replay_wait(out, replay, metric, attribute, threshold)
    warnings = out.warnings
    small = metrics[~metrics["judgeable"] & metrics["attribute"].isin(gate.attributes) & (metrics["n"] > 0)]
    if not small.empty:
        names = sorted({f"{a}={g}" for a, g in zip(small["attribute"], small["group"], strict=True)})
        warnings.append(
            f"groups too small to judge on at least one metric (fewer than {params.min_group_size}): "
            + ", ".join(names)
        )
    table = pd.DataFrame(out.rows, columns=GATE_COLUMNS)
    return GateResult(passed=not out.failures, failures=out.failures, table=table, warnings=warnings, metrics=metrics)
