"""The model card (model_card.md), generated from an audit run and the model's metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader

from fairness.audit import summary
from features.formatting import number, percent, significant
from models.bundle import ModelBundle
from models.deploy import DEPLOYED, EVALUATED, knowledge_date, model_age_days
from models.intervals import SCALE_NORMAL

TEMPLATES = Path(__file__).resolve().parent / "templates"
LANG = "en"  # the model card is written in English (en_GB number formats, features.formatting)


def _missing(value) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and bool(np.isnan(value)))


def _pct(value) -> str:
    return "—" if _missing(value) else percent(float(value), LANG, 1)


def _num(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return number(int(value), LANG)
    if isinstance(value, (float, np.floating)):
        return "—" if _missing(value) else significant(float(value), LANG)
    return str(value)


def _composition(pred: pd.DataFrame, attributes: list[str]) -> list[str]:
    lines = []
    for attr in attributes:
        if attr not in pred:
            continue
        counts = pred[attr].value_counts().sort_index()
        lines.append(f"{attr}: " + ", ".join(f"{g} {n} ({percent(n / len(pred), LANG)})" for g, n in counts.items()))
    return lines


def _life_cycle(meta: dict, as_of: str, max_age_days: int | None) -> dict:
    """The role, both data ranges and the age of the model at the data's latest date (for the card)."""
    life: dict = {"role": meta.get("role") if meta.get("role") in (EVALUATED, DEPLOYED) else None}
    for role in (EVALUATED, DEPLOYED):
        for key in ("first_meeting", "last_meeting", "outcomes_known_to", "n_placements"):
            life[f"{role}_{key}"] = _num(meta.get(f"{role}_{key}", "—"))
    known = knowledge_date(meta)
    life["knowledge_date"] = f"{known:%Y-%m-%d}" if known is not None else None
    life["age_days"] = model_age_days(meta, pd.Timestamp(as_of)) if as_of else None
    life["max_age_days"] = max_age_days
    return life


def _intervals(meta: dict) -> dict | None:
    """The chance ranges' settings and measured coverage from the bundle metadata (None: no ranges)."""
    iv = meta.get("intervals")
    if not isinstance(iv, dict) or not iv.get("resamples") or iv.get("scale") is None:
        return None
    source = str(iv.get("scale_source", "—"))
    return {
        "coverage": _pct(iv.get("coverage")),
        "resamples": _num(int(iv["resamples"])),
        "scale": _num(float(iv["scale"])),
        "scale_source": source,
        "normal": source == SCALE_NORMAL,
        "coverage_truth": _pct(iv["interval_coverage_truth"])
        if iv.get("interval_coverage_truth") is not None
        else None,
        "coverage_calibration": (
            _pct(iv["interval_coverage_calibration"]) if iv.get("interval_coverage_calibration") is not None else None
        ),
        "mean_width": (
            f"{_num(100 * float(iv['interval_mean_width']))} points"
            if iv.get("interval_mean_width") is not None
            else None
        ),
        "measured_on": str(iv.get("coverage_measured_on") or "the held-out weeks"),
    }


def render_model_card(result, *, bundle: ModelBundle, max_age_days: int | None = None) -> str:
    """model_card.md from an `reports.audit.AuditResult` and the bundle it audited.

    `max_age_days` is params `deploy.max_model_age_days` (shown with the model's age), if known.
    """
    fa = result.fairness
    fp = result.fairness_params
    s = summary(result)
    meta = dict(bundle.metadata or {})
    metrics = meta.get("metrics") or {}
    if isinstance(metrics, dict):
        metrics = {k: _num(v) for k, v in metrics.items() if not isinstance(v, dict)}
    placed = fa.predictions["support_count"]
    plan = fa.planned["support_count"] if len(fa.planned) else pd.Series(dtype=float)
    support = {
        "placed_median": _num(float(placed.median())) if len(placed) else "—",
        "placed_low": _pct(float((placed < fp.low_support).mean())) if len(placed) else "—",
        "plan_median": _num(float(plan.median())) if len(plan) else "—",
        "plan_low": _pct(float((plan < fp.low_support).mean())) if len(plan) else "—",
    }
    gate_rows = [
        {k: _num(v) if k in ("value", "threshold", "passed") else v for k, v in r.items()}
        for r in fa.gate.table.to_dict("records")
    ]
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("model_card.md.j2").render(
        model=result.model,
        meta=meta,
        iv=_intervals(meta),
        life=_life_cycle(meta, str(result.data.get("as_of") or ""), max_age_days),
        data=result.data,
        metrics=metrics,
        gate_passed=fa.gate.passed,
        failures=fa.gate.failures,
        warnings=fa.gate.warnings,
        labels=fa.pipeline.labels,
        support=support,
        low_support=fp.low_support,
        n_placements=len(fa.predictions),
        n_meetings=len(fa.meetings),
        n_candidate_meetings=len(fa.decisions),
        composition=_composition(fa.predictions, ["gender", "age_band", "migration_background", "household_type"]),
        gate_attributes=list(fp.gate.attributes),
        min_group_size=fp.min_group_size,
        gate_rows=gate_rows,
        worse_off=_pct(s["worse_off_share"]),
        displaced=_pct(s["displaced_share"]),
        below_best=_pct(s["below_best_share_plan"]),
        proxy_flags=s["proxy_flags"],
        flag_auc=result.audit_params.proxy.flag_auc,
        rules=list(fa.plan_params.eligibility.rules),
        complex_cap=fa.plan_params.assignment.complex_cap,
        pool_factor=fa.plan_params.assignment.pool_factor if fa.plan_params.assignment.policy == "pool_k" else None,
        policy=fa.plan_params.assignment.policy,
        decisions=list(fp.decisions),
    )
