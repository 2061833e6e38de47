"""The fairness audit of a model on its held-out meetings, with the historical decisions measured the same way.

`run_fairness` builds the row-level frames and the group table and judges them
(`fairness_gate` is the same computation, as the trainer applies it); `build_audit`
adds SHAP by group and the proxy probes. Files are written by `reports.audit`.

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
  made worse off (see `fairness.counterfactual`).

Protected attributes are read here, from `client_protected`, and nowhere else.
All numbers of the long table (`fairness.csv`) are computed with fairlearn's
`MetricFrame` from the row-level frames written next to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairness.attributes import ERR_NO_PROTECTED, attribute_frame
from fairness.catalogue import CANDIDATES, HUMAN, MODEL, PLACEMENTS, PLAN
from fairness.context import (
    CannotJudge,
    HeldOut,
    PipelineParams,
    audit_predictions,
    held_out_meetings,
    held_out_period,
    pipeline_params,
)
from fairness.counterfactual import KnownScores, PlanParams, candidate_decisions, score_pairs
from fairness.decisions import MeetingDecisions, meeting_and_plan
from fairness.frontier import policy_frontier
from fairness.gate import GATE_COLUMNS, GateResult, judge
from fairness.guard import ERR_PROTECTED_FEATURE, assert_no_protected_features, find_protected
from fairness.metrics import group_metrics
from fairness.params import FairnessParams
from fairness.proxy import ProbeParams, global_importance, proxy_probe, shap_by_group, shap_flags
from features.errors import UserError
from features.labels import build_labels
from features.load import Dataset
from features.pairs import build_pair_features
from models.bundle import ModelBundle


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
    plan_params: Any  # fairness.counterfactual.PlanParams: the eligibility rules and plan settings used
    pipeline: PipelineParams
    warnings: list[str]
    replay: pd.DataFrame | None = None  # policy_replay.csv: the policy in force as a queue, per group, against history


REPLAY_BATCH_WEEKS = 4  # the replay scores 4 weeks' pairs a call: a call costs mostly the same whatever its pairs
# and up to this many pairs a call: most are read from the plan against the meeting (KnownScores), only the
# rest (about a quarter) get features, so 20 regions' 4 weeks (~460,000 pairs) are one call, not four
REPLAY_BATCH_PAIRS = 1_000_000


def run_fairness(
    ds: Dataset,
    bundle: ModelBundle,
    *,
    params: FairnessParams,
    config: Mapping[str, Any],
    progress: Callable[[str], None] | None = None,
    plan_vs_meeting: bool = True,
) -> FairnessAudit:
    """Build the held-out frames, compute the group metrics and judge them against the gate.

    `plan_vs_meeting=False` leaves out the candidates population (the plan against the
    meeting at each held-out meeting): for a gate none of whose checks reads it
    (`gate_reads_candidates`), the verdict is the same and much cheaper (the gate's
    error-rate benchmark); the audit report always includes it.
    """
    say = progress or (lambda _msg: None)
    assert_no_protected_features(bundle)
    if ds.client_protected is None:
        raise UserError(ERR_NO_PROTECTED)
    period = held_out_period(bundle)
    pipeline = pipeline_params(bundle, config)
    warnings: list[str] = []
    if not pipeline.from_model:
        warnings.append(
            "the model's metadata does not record its feature and label params: the audit used the current params.yaml"
        )
    train_end = (bundle.metadata or {}).get("train_end")
    if train_end and pd.Timestamp(str(train_end)[:10]) >= period.start:
        warnings.append(
            f"the model was trained on meetings up to {str(train_end)[:10]}, inside the audited period "
            f"from {period.start:%Y-%m-%d}: the numbers are optimistic"
        )
    say("held-out placements: features, predictions, attributes")
    predictions, features = audit_predictions(ds, bundle, params=params, pipeline=pipeline, period=period)
    meetings = held_out_meetings(ds, period)
    plan_params = PlanParams.from_config(config)
    replays = bool(params.gate.max_replay_ratio_drop or params.gate.max_replay_wait_widening) and len(meetings) > 0
    known = KnownScores(ds) if replays else None  # the replay reads the pairs the plan vs meeting scored
    if plan_vs_meeting or gate_reads_candidates(params):
        say(f"plan vs meeting at {len(meetings)} held-out meetings")
        decisions, planned = candidate_decisions(
            ds,
            bundle,
            meetings,
            pipeline=pipeline,
            plan_params=plan_params,
            tol=plan_params.assignment.no_real_difference,
            progress=say,
            keep=known,
        )
    else:
        decisions, planned = pd.DataFrame(), pd.DataFrame()
    if len(decisions):
        decisions = pd.concat([decisions, attribute_frame(ds, decisions, params=params)], axis=1)
    say("group metrics")
    frames = {PLACEMENTS: predictions}
    if len(decisions):
        frames[CANDIDATES] = decisions
    metrics = group_metrics(frames, params=params)
    replay_groups = None
    if replays:
        policy = plan_params.assignment.policy
        say(f"the {policy} policy replayed as a queue over the {len(meetings)} held-out weeks")
        _, replay_groups, _ = policy_frontier(
            ds,
            meetings,
            {policy: plan_params.assignment},
            lambda pairs: score_pairs(ds, bundle, pairs, pipeline=pipeline, plan_params=plan_params, known=known),
            fairness=params,
            tolerance=plan_params.assignment.no_real_difference,
            batch_weeks=REPLAY_BATCH_WEEKS,
            batch_pairs=REPLAY_BATCH_PAIRS,
        )
    gate = judge(metrics, params=params, replay=replay_groups)
    gate.warnings = warnings + gate.warnings
    return FairnessAudit(
        period,
        meetings,
        predictions,
        features,
        decisions,
        planned,
        metrics,
        gate,
        plan_params,
        pipeline,
        warnings,
        replay_groups,
    )


def gate_reads_candidates(params: FairnessParams) -> bool:
    """Whether a gate check judges the candidates population (the plan or the meeting, per meeting)."""
    gate = params.gate
    keys = [*gate.max_difference, *gate.min_ratio]
    return bool(gate.max_ratio_drop) or any(_source(k) in (PLAN, HUMAN) for k in keys)


def _source(key: str) -> str:
    return key.split(".", 1)[0]


def fairness_gate(
    ds: Dataset,
    bundle: ModelBundle,
    *,
    params: FairnessParams,
    config: Mapping[str, Any],
    progress: Callable[[str], None] | None = None,
) -> GateResult:
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
        row = dict(
            check="no_protected_features",
            source=MODEL,
            population="",
            attribute=", ".join(protected),
            metric="feature_names",
            statistic="count",
            value=float(len(protected)),
            threshold=0.0,
            passed=False,
            groups_judged=0,
            highest_group="",
            lowest_group="",
            note=text,
        )
        return GateResult(passed=False, failures=[text], table=pd.DataFrame([row], columns=GATE_COLUMNS))
    try:
        return run_fairness(ds, bundle, params=params, config=config, progress=progress).gate
    except CannotJudge as exc:
        row = dict(
            check="can_judge",
            source=MODEL,
            population=PLACEMENTS,
            attribute="",
            metric="",
            statistic="",
            value=np.nan,
            threshold=np.nan,
            passed=False,
            groups_judged=0,
            highest_group="",
            lowest_group="",
            note=str(exc),
        )
        return GateResult(
            passed=False, failures=[f"cannot judge: {exc}"], table=pd.DataFrame([row], columns=GATE_COLUMNS)
        )


ERR_VALID_UNTIL = (
    "params: audit.valid_until must be a date YYYY-MM-DD (or null for a blank line to fill in), got {value!r}"
)


@dataclass(frozen=True)
class AuditParams:
    """params.yaml `audit:`.

    `owner` and `valid_until` fill the sign-off page (the report's first page): the
    accountable owner at the deployer and the date until which the sign-off holds;
    unset, the page leaves blank lines to fill in by hand.
    """

    shap_top_features: int
    shap_flag_top: int
    proxy: ProbeParams
    owner: str | None = None
    valid_until: str | None = None

    def __post_init__(self) -> None:
        if self.valid_until is not None:
            try:
                ok = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.valid_until)) and pd.notna(
                    pd.Timestamp(self.valid_until)
                )
            except ValueError:
                ok = False
            if not ok:
                raise UserError(ERR_VALID_UNTIL.format(value=self.valid_until))


@dataclass
class AuditResult:
    """Everything the audit files are written from."""

    fairness: FairnessAudit
    shap_importance: pd.Series
    shap_groups: pd.DataFrame
    shap_flags: pd.DataFrame
    proxy_auc: pd.DataFrame
    proxy_importance: pd.DataFrame
    proxy_rows: int
    model: dict  # what identifies the model: version, run, period, threshold, objective, metrics
    data: dict  # what identifies the data: name, as_of, summary
    fairness_params: FairnessParams
    audit_params: AuditParams
    meeting: MeetingDecisions | None = None  # "the meeting and the plan": only when the dataset has decisions

    @property
    def passed(self) -> bool:
        return self.fairness.gate.passed


def _model_info(bundle: ModelBundle) -> dict:
    meta = dict(bundle.metadata or {})
    return {
        "version": meta.get("model_version") or meta.get("mlflow_run_id") or "(unregistered bundle)",
        "mlflow_run_id": meta.get("mlflow_run_id"),
        "objective": bundle.objective,
        "threshold": float(bundle.threshold),
        "n_features": len(bundle.feature_names),
        "metadata": meta,
    }


def build_audit(
    ds: Dataset,
    bundle: ModelBundle,
    *,
    fairness: FairnessParams,
    audit: AuditParams,
    config: Mapping[str, Any],
    progress: Callable[[str], None] | None = None,
) -> AuditResult:
    """Run the whole audit in memory: group metrics and gate, SHAP by group, proxy probes."""
    say = progress or (lambda _msg: None)
    fa = run_fairness(ds, bundle, params=fairness, config=config, progress=say)
    say("SHAP contributions of the held-out placements")
    contrib, _ = bundle.contributions(fa.features)
    attrs = fa.predictions[[c for c in fairness.all_attributes(tuple(fa.predictions.columns)) if c in fa.predictions]]
    importance = global_importance(contrib)
    groups = shap_by_group(contrib, attrs, min_group_size=fairness.min_group_size)
    flags = shap_flags(groups, top=audit.shap_flag_top)

    say("proxy probes: can the model's features predict the protected attributes?")
    labels = build_labels(ds, fa.pipeline.labels)
    rows = (
        labels[["meeting_date", "dwelling_id", "client_id"]]
        .sort_values(["meeting_date", "client_id"], kind="stable")
        .reset_index(drop=True)
    )
    X_all = build_pair_features(ds, rows, params=fa.pipeline.features, rules=fa.pipeline.rules)
    prot = attribute_frame(ds, rows, params=fairness)
    auc, imp = proxy_probe(
        X_all[list(bundle.feature_names)],
        prot,
        rows["client_id"].astype(str).to_numpy(),
        params=audit.proxy,
        min_class_size=fairness.min_group_size,
    )
    if len(flags) and len(imp):
        best = imp.groupby(["attribute", "feature"])["importance"].max().rename("proxy_importance")
        flags = flags.join(best, on=["attribute", "feature"])
    data = {
        "name": ds.name or ds.path.name,
        "path": str(ds.path),
        "as_of": f"{ds.as_of:%Y-%m-%d}",
        "summary": ds.summary(),
        "profile_history": ds.client_profiles is not None,
    }
    meeting = None
    if ds.decisions is not None:
        say("the meeting and the plan: decisions, reasons and outcomes")
        meeting = meeting_and_plan(ds, bundle, pipeline=fa.pipeline, period=fa.period, params=fairness)
    return AuditResult(
        fa, importance, groups, flags, auc, imp, len(rows), _model_info(bundle), data, fairness, audit, meeting
    )


def summary(result: AuditResult) -> dict:
    """audit_summary.json: verdict, failures, warnings, sizes, model and data identity."""
    fa = result.fairness
    dec = fa.decisions
    return {
        "gate_passed": fa.gate.passed,
        "failures": fa.gate.failures,
        "warnings": fa.gate.warnings,
        "held_out_start": f"{fa.period.start:%Y-%m-%d}",
        "held_out_end": f"{fa.period.end:%Y-%m-%d}" if fa.period.end is not None else None,
        "held_out_meetings": len(fa.meetings),
        "held_out_placements": len(fa.predictions),
        "candidate_meetings": len(dec),
        "placed_by_meeting": int(dec["placed"].sum()) if len(dec) else 0,
        "placed_by_plan": int(dec["planned"].sum()) if len(dec) else 0,
        "worse_off_share": _share(dec, "worse_off", "placed"),
        "displaced_share": _share(dec, "displaced", "placed"),
        "below_best_share_plan": _share(dec, "below_best", "planned"),
        "below_best_share_meeting": _share(dec, "below_best_actual", "placed"),
        "eligibility_rules": list(fa.plan_params.eligibility.rules),
        "complex_cap": fa.plan_params.assignment.complex_cap,
        "pool_factor": fa.plan_params.assignment.pool_factor if fa.plan_params.assignment.policy == "pool_k" else None,
        "policy": fa.plan_params.assignment.policy,
        "no_real_difference": fa.plan_params.assignment.no_real_difference,
        "proxy_flags": [
            f"{r.attribute}={r.group} (AUC {r.auc:.2f})" for r in result.proxy_auc.itertuples() if r.flagged
        ],
        "model_version": result.model["version"],
        "mlflow_run_id": result.model["mlflow_run_id"],
        "data": result.data,
        "meeting_decisions": _meeting_summary(result.meeting),
    }


def _meeting_summary(meeting: MeetingDecisions | None) -> dict | None:
    if meeting is None:
        return None
    by = meeting.by_decision.set_index("decision")["n"]
    out = meeting.outcomes.set_index("group")
    return {
        "records": meeting.n_records,
        "current": meeting.n_current,
        "by_decision": {str(k): int(v) for k, v in by.items()},
        "observed_vs_expected": {
            str(g): {
                "known": int(r["known"]),
                "observed_sustained": None if pd.isna(r["observed_sustained"]) else float(r["observed_sustained"]),
                "mean_probability": None if pd.isna(r["mean_probability"]) else float(r["mean_probability"]),
            }
            for g, r in out.iterrows()
        },
    }


def _share(frame: pd.DataFrame, column: str, within: str) -> float | None:
    rows = frame[frame[within] == 1] if len(frame) else frame
    return float(rows[column].mean()) if len(rows) else None
