"""`matchwijs audit`: the fairness audit of a model on its held-out meetings, for auditors.

Writes into OUT (only once everything is complete): the contract's
audit_predictions.csv, fairness.csv and audit.html, plus audit_decisions.csv,
fairness_gate.csv, the SHAP and proxy tables, audit_summary.json and
model_card.md. Exit code 0 = gate passed, 3 = gate failed (the report is
written first), 1 = a problem with the input (nothing written).
"""

from __future__ import annotations

from pathlib import Path

import typer

from features.errors import UserError

EXIT_GATE_FAILED = 3
# Aggregates only go to MLflow: the row-level files carry protected attributes per client.
MLFLOW_FILES = ("audit.html", "model_card.md", "fairness.csv", "fairness_gate.csv", "audit_summary.json")


def _echo_err(text: str) -> None:
    typer.echo(text, err=True)


def _resolve_model(model: str | None, params: Path | None):
    """The evaluated model when `model` resolves to a deployed refit: the audit judges the held-out weeks."""
    from models.tracking import resolve_for_held_out

    bundle, note = resolve_for_held_out(model, params_path=params)
    if note:
        _echo_err(f"audit: {note}")
    return bundle


def _publish(tmp: Path, out: Path, names: tuple[str, ...]) -> None:
    """Swap the finished folder `tmp` in at `out`; stale audit files are dropped, other files in `out` kept."""
    from features.outputs import _remove, publish

    try:
        publish(tmp, out, managed=names)
    finally:
        _remove(tmp)


def _log_to_mlflow(bundle, out: Path, params: Path | None) -> str | None:
    """Add the report and model card to the model's MLflow run; returns a warning or None."""
    run_id = (bundle.metadata or {}).get("mlflow_run_id")
    if not run_id:
        return None
    from models import tracking

    try:
        store = tracking.store_dir(tracking.mlflow_params(params))
        if not (store / tracking.DB_FILE).is_file():
            return f"no MLflow store at {store}: report not logged to run {run_id}"
        for name in MLFLOW_FILES:
            if (out / name).is_file():
                tracking.log_artifacts_to_run(store, run_id, {"audit": out / name})
    except Exception as exc:
        return f"could not log the report to MLflow run {run_id}: {exc}"
    return None


def audit(
    data: Path = typer.Option(
        ..., "--data", help="Dataset folder that follows the data contract, with client_protected."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Folder for the audit files (created; audit files in it are replaced)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Model folder, registered version N or models:/NAME/N (default: the current default model).",
    ),
    params: Path | None = typer.Option(
        None, "--params", help="params.yaml to use (default: ./params.yaml, else the project's own)."
    ),
    policies: Path | None = typer.Option(
        None,
        "--policies",
        help="policies.csv (or its folder) from `matchwijs policies`: the policy frontier on the sign-off page.",
    ),
    gate_rates: Path | None = typer.Option(
        None,
        "--gate-rates",
        help="gate.csv from `python -m pipelines.bench_gate`: the gate's error rates on the sign-off page "
        "(default: the project's bench/gate.csv when it exists).",
    ),
) -> None:
    """Fairness audit of the model on its held-out meetings: group metrics, the human baseline, who is made worse off, SHAP, proxies, the gate.

    The report's first page is a sign-off page (intended use, AI Act items to assess, owner and
    validity from params `audit:`, the policy and its frontier, the gate and its error rates).
    Exit code 3 when the fairness gate fails (after writing the report).
    """
    from fairness.attributes import ERR_NO_PROTECTED
    from fairness.audit import AuditParams, build_audit
    from fairness.params import FairnessParams
    from features.config import load_params, section
    from features.load import load_dataset
    from features.outputs import check_output_folder, publishing
    from reports.audit import GATE_RATES_FILE, OUTPUT_FILES, read_gate_rates, read_policies, write_audit

    check_output_folder(out)
    frontier = read_policies(policies) if policies is not None else None
    if gate_rates is None and GATE_RATES_FILE.is_file():
        gate_rates = GATE_RATES_FILE
    rates = read_gate_rates(gate_rates) if gate_rates is not None else None
    cfg = load_params(params)
    fairness_params = section(cfg, "fairness", FairnessParams)
    audit_params = section(cfg, "audit", AuditParams)
    ds = load_dataset(data)
    if ds.client_protected is None:
        raise UserError(ERR_NO_PROTECTED)
    bundle = _resolve_model(model, params)
    _echo_err(f"audit: {ds.summary()}")

    result = build_audit(
        ds,
        bundle,
        fairness=fairness_params,
        audit=audit_params,
        config=cfg,
        progress=lambda msg: _echo_err(f"audit: {msg}"),
    )
    with publishing(out, managed=OUTPUT_FILES) as tmp:
        write_audit(result, tmp, bundle=bundle, policies=frontier, gate_rates=rates)
    warning = _log_to_mlflow(bundle, out, params)
    if warning:
        _echo_err(f"audit: warning: {warning}")

    gate = result.fairness.gate
    typer.echo(
        f"wrote {out}: {len(result.fairness.predictions)} held-out placements, "
        f"{len(result.fairness.decisions)} candidate-meetings; fairness gate {'PASSED' if gate.passed else 'FAILED'}"
    )
    for text in gate.warnings:
        _echo_err(f"audit: warning: {text}")
    if not gate.passed:
        _echo_err(f"audit: the fairness gate FAILED ({len(gate.failures)} check(s)); see {out / 'audit.html'}:")
        for text in gate.failures:
            _echo_err(f"  - {text}")
        raise typer.Exit(EXIT_GATE_FAILED)
