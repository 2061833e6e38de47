"""The fairness audit as files: row-level CSVs, the group table, SHAP and proxy tables, audit.html.

`fairness.audit.build_audit` computes everything (group metrics, gate, SHAP by group, proxy
probes); `write_audit` writes it into a folder.
Nothing here imports MLflow: the command (`pipelines/audit.py`) logs the files.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fairness.audit import AuditResult, summary
from fairness.catalogue import CANDIDATES, HUMAN, METRICS, MODEL, PLACEMENTS, PLAN
from fairness.decisions import MeetingDecisions
from fairness.params import INTERSECTION_SEP
from fairness.proxy import proxy_summary
from features.contract import PLAN_FOLLOWED
from features.errors import UserError
from features.outputs import write_csv
from features.pairs import FEATURE_INFO
from models.bundle import ModelBundle
from planning.priority import describe_policy
from reports.figures import plt
from reports.model_card import render_model_card

TEMPLATES = Path(__file__).resolve().parent / "templates"


# Output files (CONTRACT.md names the first three).
PREDICTIONS_FILE = "audit_predictions.csv"


FAIRNESS_FILE = "fairness.csv"


HTML_FILE = "audit.html"


DECISIONS_FILE = "audit_decisions.csv"


GATE_FILE = "fairness_gate.csv"
REPLAY_FILE = "policy_replay.csv"  # the policy in force replayed as a queue, per group, against the meeting


SHAP_IMPORTANCE_FILE = "shap_importance.csv"


SHAP_GROUPS_FILE = "shap_by_group.csv"


SHAP_FLAGS_FILE = "shap_flags.csv"


PROXY_AUC_FILE = "proxy_auc.csv"


PROXY_IMPORTANCE_FILE = "proxy_importance.csv"


SUMMARY_FILE = "audit_summary.json"


MODEL_CARD_FILE = "model_card.md"


MEETING_DECISIONS_FILE = "meeting_decisions.csv"  # only when the dataset has a decisions table


OUTPUT_FILES = (
    PREDICTIONS_FILE,
    FAIRNESS_FILE,
    HTML_FILE,
    DECISIONS_FILE,
    GATE_FILE,
    REPLAY_FILE,
    SHAP_IMPORTANCE_FILE,
    SHAP_GROUPS_FILE,
    SHAP_FLAGS_FILE,
    PROXY_AUC_FILE,
    PROXY_IMPORTANCE_FILE,
    SUMMARY_FILE,
    MODEL_CARD_FILE,
    MEETING_DECISIONS_FILE,
)


CONTRACT_PREDICTION_COLUMNS = [
    "placement_id",
    "client_id",
    "score",
    "prediction",
    "outcome",
    "gender",
    "age_band",
    "migration_background",
]


def _dates(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    return out


def predictions_frame(result: AuditResult) -> pd.DataFrame:
    """audit_predictions.csv: the contract's columns first, then the rest."""
    pred = result.fairness.predictions
    rest = [c for c in pred.columns if c not in CONTRACT_PREDICTION_COLUMNS]
    return _dates(pred[CONTRACT_PREDICTION_COLUMNS + rest])


# --- the sign-off page (the report's first page) ----------------------------------------------

POLICIES_FILE = "policies.csv"  # written by `matchwijs policies`
GATE_RATES_FILE = Path(__file__).resolve().parents[1] / "bench" / "gate.csv"  # written by pipelines.bench_gate
BLANK = "_" * 32
FRONTIER_COLUMNS = (
    "policy",
    "placements",
    "expected_sustained_model",
    "expected_sustained_truth",
    "placed_waiting_median_weeks",
    "placed_waiting_p90_weeks",
    "still_waiting_median_weeks",
    "worse_off_share",
)
GATE_RATE_COLUMNS = ("scenario", "failure_logodds", "runs", "failed", "failure_rate", "ci95_low", "ci95_high")
GATE_ANY = "gate (any check)"
ERR_POLICIES_FILE = "--policies: {path} is not a policies.csv written by `matchwijs policies` ({problem})"
ERR_GATE_RATES_FILE = "--gate-rates: {path} is not a gate.csv written by `python -m pipelines.bench_gate` ({problem})"

# EU AI Act (Regulation (EU) 2024/1689): what may apply to the deployer, to be assessed (not legal advice).
AI_ACT = (
    {
        "provision": "Annex III point 5(a), Art. 6(2)",
        "what": "high-risk if used by or on behalf of a public authority to evaluate eligibility for essential public "
        "assistance benefits and services, or to grant, reduce, revoke or reclaim them (social housing may count)",
        "in_this_system": "the system suggests which eligible client fits a home and proposes a plan; eligibility "
        "and who may be placed are rules and the priority policy, decided by people",
    },
    {
        "provision": "Art. 14 human oversight",
        "what": "people able to understand, monitor, override and stop the system",
        "in_this_system": "the meeting decides every placement; each suggestion is explained (SHAP reasons); "
        "departures are recorded with a reason; 'How to stop' below; the gate blocks promotion",
    },
    {
        "provision": "Art. 12 record-keeping",
        "what": "automatic logs over the system's lifetime, enough to trace its functioning",
        "in_this_system": "the meeting app's append-only decision log; models, params and audits in MLflow; "
        "this report's files (fairness.csv, fairness_gate.csv, audit_summary.json)",
    },
    {
        "provision": "Art. 26 deployer obligations",
        "what": "use as instructed, competent human oversight, monitor and report incidents, keep logs at "
        "least six months, inform the people affected",
        "in_this_system": "README and model card (instructions, intended use); params app.retention_months; "
        "this audit repeated on each new extract; informing clients is the deployer's",
    },
    {
        "provision": "Art. 27 fundamental rights impact assessment",
        "what": "before first use by a public body: processes, period, people affected, risks of harm, oversight, "
        "measures if risks materialise",
        "in_this_system": "inputs only: the groups, gaps, worse-off shares and the policy frontier in this report; "
        "the assessment itself is the deployer's",
    },
)


def read_policies(path: Path) -> pd.DataFrame:
    """policies.csv of `matchwijs policies` (a file, or the folder holding it); UserError when it is not one."""
    path = Path(path)
    file = path / POLICIES_FILE if path.is_dir() else path
    try:
        frame = pd.read_csv(file)
    except (OSError, ValueError) as exc:
        raise UserError(ERR_POLICIES_FILE.format(path=file, problem=exc)) from None
    missing = [c for c in ("policy", "placements") if c not in frame.columns]
    if missing:
        raise UserError(ERR_POLICIES_FILE.format(path=file, problem="no column " + ", ".join(missing)))
    return frame


def read_gate_rates(path: Path) -> pd.DataFrame:
    """bench/gate.csv of `pipelines.bench_gate`; UserError when it is not one."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise UserError(ERR_GATE_RATES_FILE.format(path=path, problem=exc)) from None
    missing = [c for c in (*GATE_RATE_COLUMNS, "check") if c not in frame.columns]
    if missing:
        raise UserError(ERR_GATE_RATES_FILE.format(path=path, problem="no column " + ", ".join(missing)))
    return frame


def signoff_context(
    result: AuditResult, *, policies: pd.DataFrame | None = None, gate_rates: pd.DataFrame | None = None
) -> dict:
    """What the sign-off page shows: intended use, AI Act items, owner and validity, policy, gate and its error rates."""
    ap = result.audit_params
    assignment = result.fairness.plan_params.assignment
    gate = result.fairness.gate
    frontier = ""
    if policies is not None:
        cols = [c for c in FRONTIER_COLUMNS if c in policies.columns]
        cols += [c for c in policies.columns if c.startswith("placement_ratio_")]
        frontier = _table(policies[cols], digits=2, keys=1)
    rates = ""
    false_alarm = None
    if gate_rates is not None:
        whole = gate_rates[gate_rates["check"] == GATE_ANY]
        planted = [c for c in ("meeting_weeks", "pushback_weeks") if c in whole.columns]  # files after 2026-12-01
        cols = [*GATE_RATE_COLUMNS[:2], *planted, *GATE_RATE_COLUMNS[2:]]
        rates = _table(whole[cols], digits=2)
        neutral = whole[whole["scenario"] == "neutral"]
        if len(neutral):
            r = neutral.iloc[0]
            false_alarm = (
                f"{r.failure_rate:.0%} of {int(r.runs)} fair worlds (95% interval {r.ci95_low:.0%}-{r.ci95_high:.0%})"
            )
    checks = gate.table
    return {
        "owner": ap.owner or BLANK,
        "valid_until": ap.valid_until or BLANK,
        "owner_set": ap.owner is not None,
        "valid_until_set": ap.valid_until is not None,
        "blank": BLANK,
        "ai_act": _table(pd.DataFrame(AI_ACT).assign(status="to be assessed"), keys=1),
        "policy": assignment.policy,
        "policy_text": describe_policy(assignment),
        "policy_decided": assignment.policy_decided or "(no date recorded in params assignment.policy_decided)",
        "policy_reason": assignment.policy_reason or "(no reason recorded in params assignment.policy_reason)",
        "frontier": frontier,
        "gate_passed": gate.passed,
        "checks": len(checks),
        "checks_failed": int((~checks["passed"].astype(bool)).sum()) if len(checks) else 0,
        "rates": rates,
        "false_alarm": false_alarm,
    }


def write_audit(
    result: AuditResult,
    folder: Path,
    *,
    bundle: ModelBundle,
    policies: pd.DataFrame | None = None,
    gate_rates: pd.DataFrame | None = None,
) -> list[Path]:
    """Write every audit file into `folder` (which must exist); returns the paths written.

    `policies` (policies.csv of `matchwijs policies`) and `gate_rates` (bench/gate.csv)
    fill the sign-off page; without them it says how to produce them.
    """
    fa = result.fairness
    folder = Path(folder)
    written = []

    def csv(frame: pd.DataFrame, name: str) -> None:
        path = folder / name
        write_csv(frame, path)
        written.append(path)

    csv(predictions_frame(result), PREDICTIONS_FILE)
    csv(_dates(fa.decisions), DECISIONS_FILE)
    csv(fa.metrics, FAIRNESS_FILE)
    csv(fa.gate.table, GATE_FILE)
    if fa.replay is not None:
        csv(fa.replay, REPLAY_FILE)
    csv(result.shap_importance.rename_axis("feature").reset_index(), SHAP_IMPORTANCE_FILE)
    csv(result.shap_groups, SHAP_GROUPS_FILE)
    csv(result.shap_flags, SHAP_FLAGS_FILE)
    csv(result.proxy_auc, PROXY_AUC_FILE)
    csv(result.proxy_importance, PROXY_IMPORTANCE_FILE)
    if result.meeting is not None:
        csv(meeting_decisions_frame(result.meeting), MEETING_DECISIONS_FILE)
    (folder / SUMMARY_FILE).write_text(json.dumps(summary(result), indent=2, default=str) + "\n", encoding="utf-8")
    written.append(folder / SUMMARY_FILE)
    (folder / HTML_FILE).write_text(render_html(result, policies=policies, gate_rates=gate_rates), encoding="utf-8")
    written.append(folder / HTML_FILE)
    (folder / MODEL_CARD_FILE).write_text(render_model_card(result, bundle=bundle), encoding="utf-8")
    written.append(folder / MODEL_CARD_FILE)
    return written


def _png(fig, *, tight: bool = True) -> str:
    buf = io.BytesIO()
    if tight:
        fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _grid(n: int, width: float = 4.4, height: float = 3.3):
    cols = min(2, max(n, 1))
    rows = int(np.ceil(max(n, 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _part(m: pd.DataFrame, source: str, metric: str, attribute: str) -> pd.DataFrame:
    return m[(m["source"] == source) & (m["metric"] == metric) & (m["attribute"] == attribute)]


def figure_selection(m: pd.DataFrame, attributes: list[str]) -> str | None:
    """Selection rate per group: the meeting (human) next to the model's plan, with ±1 SE."""
    attrs = [a for a in attributes if not _part(m, HUMAN, "selection_rate", a).empty]
    if not attrs:
        return None
    fig, axes = _grid(len(attrs))
    for ax, attr in zip(axes, attrs, strict=False):
        h, p = _part(m, HUMAN, "selection_rate", attr), _part(m, PLAN, "selection_rate", attr)
        x = np.arange(len(h))
        ax.bar(x - 0.2, h["value"], 0.4, yerr=h["se"], label="meeting (human)", color="#999999")
        ax.bar(
            x + 0.2,
            p.set_index("group")["value"].reindex(h["group"]),
            0.4,
            yerr=p.set_index("group")["se"].reindex(h["group"]),
            label="model's plan",
            color="#2b6cb0",
        )
        ax.set_xticks(
            x,
            [f"{g}{'' if j else '*'}" for g, j in zip(h["group"], h["judgeable"], strict=True)],
            rotation=30,
            ha="right",
            fontsize=7,
        )
        ax.set_title(attr, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle("Selection rate per candidate-meeting (* = too small to judge)", fontsize=10)
    return _png(fig)


def figure_model_rates(m: pd.DataFrame, attributes: list[str]) -> str | None:
    """The model's selection rate, TPR and FPR per group on held-out placements, with ±1 SE."""
    attrs = [a for a in attributes if not _part(m, MODEL, "selection_rate", a).empty]
    if not attrs:
        return None
    fig, axes = _grid(len(attrs))
    styles = {
        "selection_rate": ("o", "#2b6cb0"),
        "true_positive_rate": ("s", "#2f855a"),
        "false_positive_rate": ("^", "#c53030"),
    }
    for ax, attr in zip(axes, attrs, strict=False):
        groups = _part(m, MODEL, "selection_rate", attr)["group"].tolist()
        for k, (metric, (marker, color)) in enumerate(styles.items()):
            part = _part(m, MODEL, metric, attr).set_index("group").reindex(groups)
            ax.errorbar(
                np.arange(len(groups)) + (k - 1) * 0.15,
                part["value"],
                yerr=part["se"],
                fmt=marker,
                color=color,
                label=metric.replace("_", " "),
                markersize=4,
                capsize=2,
            )
        ax.set_xticks(np.arange(len(groups)), groups, rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(attr, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle("The model's calls on held-out placements", fontsize=10)
    return _png(fig)


def figure_calibration(m: pd.DataFrame, attributes: list[str]) -> str | None:
    """Mean predicted P vs observed success per group (calibration within groups)."""
    attrs = [a for a in attributes if not _part(m, MODEL, "mean_probability", a).empty]
    if not attrs:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 5))
    for attr in attrs:
        p = _part(m, MODEL, "mean_probability", attr).set_index("group")
        o = _part(m, MODEL, "success_rate", attr).set_index("group").reindex(p.index)
        ax.errorbar(p["value"], o["value"], yerr=o["se"], fmt="o", markersize=4, capsize=2, label=attr)
        for g in p.index:
            ax.annotate(g, (p.at[g, "value"], o.at[g, "value"]), fontsize=6, alpha=0.7)
    shown = m[
        m["metric"].isin(["mean_probability", "success_rate"]) & (m["source"] == MODEL) & m["attribute"].isin(attrs)
    ]["value"]
    lo, hi = max(float(shown.min()) - 0.05, 0.0), min(float(shown.max()) + 0.05, 1.0)
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("mean predicted P(sustained)")
    ax.set_ylabel("observed share sustained (±1 SE)")
    ax.legend(fontsize=7)
    ax.set_title("Calibration within groups", fontsize=10)
    return _png(fig)


def figure_worse_off(m: pd.DataFrame, attributes: list[str]) -> str | None:
    """Share made worse off by the plan, per group."""
    attrs = [a for a in attributes if not _part(m, PLAN, "worse_off_share", a).empty]
    if not attrs:
        return None
    fig, axes = _grid(len(attrs))
    for ax, attr in zip(axes, attrs, strict=False):
        w = _part(m, PLAN, "worse_off_share", attr)
        d = _part(m, PLAN, "displaced_share", attr).set_index("group").reindex(w["group"])
        x = np.arange(len(w))
        ax.bar(x, w["value"], 0.6, color="#dd6b20", label="worse off (displaced or lower P)")
        ax.bar(x, d["value"], 0.3, color="#7b341e", label="of which: no home at that meeting")
        ax.set_xticks(x, w["group"], rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(attr, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle("Of the clients the meeting placed: made worse off by the plan", fontsize=10)
    return _png(fig)


def figure_shap_global(importance: pd.Series, top: int) -> str:
    imp = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(imp) + 1.0))
    ax.barh(imp.index, imp.to_numpy(), color="#2b6cb0")
    ax.set_xlabel("mean |SHAP contribution| (score units)")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Global importance on held-out placements", fontsize=10)
    return _png(fig)


def figure_shap_groups(groups: pd.DataFrame, importance: pd.Series, attributes: list[str], top: int) -> str | None:
    """Heatmaps: mean signed contribution of the top features per group."""
    attrs = [a for a in attributes if a in set(groups["attribute"])]
    if not attrs:
        return None
    feats = list(importance.head(top).index)
    fig, axes = plt.subplots(
        1,
        len(attrs),
        figsize=(
            2.2 + 1.1 * sum(groups.loc[groups["attribute"] == a, "group"].nunique() for a in attrs),
            0.3 * len(feats) + 1.6,
        ),
        squeeze=False,
    )
    shown = groups[groups["feature"].isin(feats) & groups["attribute"].isin(attrs)]
    vmax = float(shown["mean_contribution"].abs().max() or 1.0)
    for k, (ax, attr) in enumerate(zip(axes.flat, attrs, strict=False)):
        table = (
            groups[(groups["attribute"] == attr) & groups["feature"].isin(feats)]
            .pivot(index="feature", columns="group", values="mean_contribution")
            .reindex(feats)
        )
        im = ax.imshow(table.to_numpy(dtype=float), cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
        ax.set_xticks(np.arange(table.shape[1]), table.columns, rotation=30, ha="right", fontsize=7)
        ax.set_yticks(np.arange(len(feats)), feats if k == 0 else [""] * len(feats), fontsize=7)
        ax.set_title(attr, fontsize=9)
    fig.colorbar(im, ax=list(axes.flat), shrink=0.6, label="mean contribution")
    fig.suptitle("Mean SHAP contribution by group (red lowers, blue raises the score)", fontsize=10)
    return _png(fig, tight=False)


def figure_proxy(auc: pd.DataFrame, flag: float) -> str | None:
    judged = auc.dropna(subset=["auc"])
    if judged.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(judged) + 1.2))
    labels = [f"{a} = {g}" for a, g in zip(judged["attribute"], judged["group"], strict=True)]
    ax.barh(
        labels[::-1],
        judged["auc"].to_numpy()[::-1],
        color=["#c53030" if f else "#2b6cb0" for f in judged["flagged"][::-1]],
    )
    ax.axvline(0.5, color="grey", linewidth=1)
    ax.axvline(flag, color="#c53030", linestyle="--", linewidth=1, label=f"flag at {flag:.2f}")
    ax.set_xlim(0.4, 1.0)
    ax.set_xlabel("cross-validated ROC-AUC of a probe predicting the attribute from the model's features")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    return _png(fig)


def figure_support(predictions: pd.DataFrame, planned: pd.DataFrame, low: int) -> str:
    fig, ax = plt.subplots(figsize=(6, 3))
    top = int(
        max(
            predictions["support_count"].max() if len(predictions) else 1,
            planned["support_count"].max() if len(planned) else 1,
            1,
        )
    )
    bins = np.unique(np.linspace(0, top + 1, 30).astype(int)).tolist()
    ax.hist(
        predictions["support_count"],
        bins=bins,
        alpha=0.6,
        label="held-out placements (what the meeting did)",
        color="#999999",
    )
    if len(planned):
        ax.hist(planned["support_count"], bins=bins, alpha=0.6, label="the plan's proposals", color="#2b6cb0")
    ax.axvline(low, color="#c53030", linestyle="--", linewidth=1, label=f"little support (< {low})")
    ax.set_xlabel("similar training placements within the support radius")
    ax.set_ylabel("pairs")
    ax.legend(fontsize=7)
    return _png(fig)


def _key_first(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame[keys + [c for c in frame.columns if c not in keys]]


MAX_COLUMNS = 9  # wider tables are split into parts that fit an A4 page, each repeating the key columns


def _table(frame: pd.DataFrame, digits: int = 3, keys: int = 1) -> str:
    """HTML table(s); a frame wider than MAX_COLUMNS becomes several, each with the first `keys` columns."""

    def fmt(v: float) -> str:
        return f"{v:.{digits}f}"

    if frame.shape[1] <= MAX_COLUMNS:
        return frame.to_html(index=False, classes="t", na_rep="—", border=0, float_format=fmt)
    head, rest = list(frame.columns[:keys]), list(frame.columns[keys:])
    step = MAX_COLUMNS - keys
    parts = [frame[head + rest[i : i + step]] for i in range(0, len(rest), step)]
    return "\n".join(p.to_html(index=False, classes="t", na_rep="—", border=0, float_format=fmt) for p in parts)


def _wide(m: pd.DataFrame, source: str, population: str, attribute: str, metrics: list[str]) -> pd.DataFrame:
    part = m[
        (m["source"] == source)
        & (m["population"] == population)
        & (m["attribute"] == attribute)
        & m["metric"].isin(metrics)
    ]
    if part.empty:
        return part
    values = part.pivot(index="group", columns="metric", values="value").reindex(
        columns=[x for x in metrics if x in set(part["metric"])]
    )
    support = part.pivot(index="group", columns="metric", values="support").max(axis=1)
    n = part.groupby("group")["n"].max()
    # One definition of "large enough to judge", the gate's: per metric, its own denominator
    # (fairness.min_group_size). A group is never marked too small as a whole for one small metric.
    unjudged = part[~part["judgeable"]].groupby("group")["metric"].apply(lambda x: ", ".join(sorted(x)))
    out = values.assign(n=n, largest_denominator=support).reset_index()
    out.columns.name = None
    out["not_judged_too_small"] = out["group"].map(unjudged).fillna("")
    return out


def _comparison(m: pd.DataFrame, attribute: str) -> pd.DataFrame:
    """Human vs plan on the candidates: selection rate, expected success, below-best share, side by side."""
    rows = []
    for metric in ("selection_rate", "expected_success", "below_best_share"):
        h, p = (
            _part(m, HUMAN, metric, attribute).set_index("group"),
            _part(m, PLAN, metric, attribute).set_index("group"),
        )
        if h.empty or p.empty:
            continue
        for g in h.index:
            rows.append(
                {
                    "metric": metric,
                    "group": g,
                    "human": h.at[g, "value"],
                    "plan": p["value"].get(g, np.nan),
                    "human_ratio_to_best": h.at[g, "ratio"],
                    "plan_ratio_to_best": p["ratio"].get(g, np.nan),
                    "clients": int(h.at[g, "support"]),
                    "judgeable": bool(h.at[g, "judgeable"] and p["judgeable"].get(g, False)),
                }
            )
    return pd.DataFrame(rows)


def render_html(
    result: AuditResult, *, policies: pd.DataFrame | None = None, gate_rates: pd.DataFrame | None = None
) -> str:
    """audit.html: self-contained (inline CSS, inline PNG figures, no external resources); the sign-off page first."""
    fa = result.fairness
    m = fa.metrics
    fp, ap = result.fairness_params, result.audit_params
    gated = list(fp.gate.attributes)
    client_attrs = [
        a
        for a in fp.all_attributes(tuple(fa.decisions.columns))
        if a in set(m.loc[m["population"] == CANDIDATES, "attribute"])
    ]
    placement_attrs = list(fp.all_attributes(tuple(fa.predictions.columns)))
    model_metrics = [x.name for x in METRICS if x.source == MODEL]
    sections = []
    for attr in placement_attrs:
        sections.append(
            {
                "attribute": attr,
                "gated": attr in gated,
                "model": _table(_wide(m, MODEL, PLACEMENTS, attr, model_metrics)),
                "comparison": _table(_comparison(m, attr)) if attr in client_attrs else "",
                "worse": _table(
                    _wide(m, PLAN, CANDIDATES, attr, ["worse_off_share", "displaced_share", "below_best_share"])
                )
                if attr in client_attrs
                else "",
            }
        )
    dec = fa.decisions
    s = summary(result)
    proxy = proxy_summary(result.proxy_auc, result.proxy_importance, top=ap.proxy.top_features)
    flags = result.shap_flags.copy()
    flags["reads_as"] = flags["feature"].map(lambda f: FEATURE_INFO[f].en if f in FEATURE_INFO else f)
    support_placed = fa.predictions["support_count"]
    support_plan = fa.planned["support_count"] if len(fa.planned) else pd.Series(dtype=float)
    support = pd.DataFrame(
        [
            {
                "pairs": "held-out placements (meeting's choices)",
                "n": len(support_placed),
                "median_support": float(support_placed.median()) if len(support_placed) else np.nan,
                "share_little_support": float((support_placed < fp.low_support).mean())
                if len(support_placed)
                else np.nan,
            },
            {
                "pairs": "the plan's proposals",
                "n": len(support_plan),
                "median_support": float(support_plan.median()) if len(support_plan) else np.nan,
                "share_little_support": float((support_plan < fp.low_support).mean()) if len(support_plan) else np.nan,
            },
        ]
    )
    figures = {
        "selection": figure_selection(m, [a for a in client_attrs if a in gated] or client_attrs),
        "model_rates": figure_model_rates(m, gated),
        "calibration": figure_calibration(m, [a for a in gated if INTERSECTION_SEP not in a]),
        "worse_off": figure_worse_off(m, [a for a in client_attrs if a in gated] or client_attrs),
        "shap_global": figure_shap_global(result.shap_importance, ap.shap_top_features),
        "shap_groups": figure_shap_groups(
            result.shap_groups, result.shap_importance, list(ap.proxy.attributes), ap.shap_top_features
        ),
        "proxy": figure_proxy(result.proxy_auc, ap.proxy.flag_auc),
        "support": figure_support(fa.predictions, fa.planned, fp.low_support),
    }
    definitions = pd.DataFrame(
        [
            {
                "source": x.source,
                "population": x.population,
                "metric": x.name,
                "meaning": x.meaning,
                "denominator": x.support,
            }
            for x in METRICS
        ]
    )
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("audit.html.j2").render(
        result=result,
        s=s,
        fa=fa,
        fp=fp,
        ap=ap,
        sections=sections,
        figures=figures,
        gate_table=_table(_key_first(fa.gate.table, ["check", "attribute", "metric"]), keys=3),
        proxy_table=_table(proxy.drop(columns=["n"])),
        flags_table=_table(flags),
        importance_table=_table(
            result.shap_importance.head(ap.shap_top_features)
            .rename_axis("feature")
            .reset_index()
            .assign(reads_as=lambda f: f["feature"].map(lambda x: FEATURE_INFO[x].en if x in FEATURE_INFO else x))
        ),
        support_table=_table(support),
        definitions_table=_table(definitions),
        meta=result.model["metadata"],
        n_candidates=len(dec),
        n_clients=int(dec["client_id"].nunique()) if len(dec) else 0,
        meeting=meeting_context(result.meeting),
        signoff=signoff_context(result, policies=policies, gate_rates=gate_rates),
    )


# --- "the meeting and the plan" (fairness.decisions) ------------------------------------------


def meeting_decisions_frame(meeting: MeetingDecisions) -> pd.DataFrame:
    """meeting_decisions.csv: one row per current decision (decided_at as ISO 8601 in UTC)."""
    rows = meeting.rows.copy()
    rows["decided_at"] = rows["decided_at"].map(lambda t: t.isoformat() if pd.notna(t) else "")
    return _dates(rows)


def meeting_context(meeting: MeetingDecisions | None) -> dict | None:
    """What the template's section "the meeting and the plan" shows; None without decisions."""
    if meeting is None:
        return None
    by_decision = meeting.by_decision.set_index("decision")
    followed = int(by_decision.at[PLAN_FOLLOWED, "n"])
    return {
        "n_records": meeting.n_records,
        "n_current": meeting.n_current,
        "n_superseded": meeting.n_records - meeting.n_current,
        "followed": followed,
        "followed_share": followed / meeting.n_current if meeting.n_current else None,
        "departed": meeting.n_current - followed,
        "by_decision": _table(meeting.by_decision),
        "by_reason": _table(meeting.by_reason) if len(meeting.by_reason) else "",
        "outcomes": _table(meeting.outcomes),
        "any_known": bool(meeting.outcomes["known"].sum()),
        "passed_over": _table(meeting.passed_over) if len(meeting.passed_over) else "",
        "caveat": meeting.caveat,
        "notes": meeting.notes,
        "file": MEETING_DECISIONS_FILE,
    }
