"""`matchwijs policies`: the policy frontier, each priority policy replayed over the held-out weeks as a queue.

Next to the replay (the model's and, with --truth, the truth's expected sustained
tenancies), each policy's value is estimated from the meeting's logged decisions
with the doubly robust estimator of models/offpolicy.py (`ope_*` columns: usable on
real data, where there is no truth). The table, the figure and the run's params
(policies, dataset fingerprint, model) are logged as an MLflow run of the
project's experiment unless --no-mlflow.

Wiring only (fairness/frontier.py, planning/replay.py, models/offpolicy.py,
models/tracking.py); libraries are imported inside the command.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import typer

OUTPUTS = ("policies.csv", "policies_by_group.csv", "policies.png")


def policies(
    data: Path = typer.Option(..., "--data", help="Dataset folder that follows the data contract (see README)."),
    out: Path = typer.Option(..., "--out", help="Folder for policies.csv, policies_by_group.csv and policies.png."),
    truth: Path | None = typer.Option(None, "--truth", help="Truth folder of synthetic data: the truth's chances too."),
    model: str | None = typer.Option(
        None, "--model", help="Model folder or registered version (default: the registered default model)."
    ),
    params: Path | None = typer.Option(None, "--params", help="params.yaml to use (default: ./params.yaml)."),
    ope: bool = typer.Option(
        True, "--ope/--no-ope", help="Also estimate each policy's value from the logged decisions (doubly robust)."
    ),
    mlflow: bool = typer.Option(
        True, "--mlflow/--no-mlflow", help="Log the tables and figure as an MLflow run of the project's experiment."
    ),
) -> None:
    """Replay the held-out weeks once per priority policy and compare them (CSV tables and a figure)."""
    import dataclasses

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from fairness.context import held_out_meetings, held_out_period
    from fairness.frontier import policy_frontier
    from fairness.params import FairnessParams
    from features.config import load_params, section
    from features.errors import UserError
    from features.labels import LabelParams
    from features.load import dataset_fingerprint, load_dataset
    from features.pairs import build_pair_features
    from models import tracking
    from models.offpolicy import LoggedConfig, OpeParams, fit_meetings_before, offpolicy_values
    from models.oracle import read_truth
    from models.tracking import resolve_for_held_out
    from pipelines.recommend import load_config
    from planning.eligibility import apply_eligibility
    from planning.priority import POLICIES

    raw = load_params(params)
    cfg = load_config(params)
    fairness = section(raw, "fairness", FairnessParams)
    ope_params = section(raw, "ope", OpeParams) if ope else None
    labels = section(raw, "labels", LabelParams) if ope else None
    mp = section(raw, "mlflow", tracking.MlflowParams) if mlflow else None
    if mp is not None:
        tracking.check_store(tracking.store_dir(mp))
    ds = load_dataset(data)
    bundle, note = resolve_for_held_out(model, params_path=params)
    if note:
        typer.echo(f"policies: {note}", err=True)
    meetings = held_out_meetings(ds, held_out_period(bundle))
    if len(meetings) == 0:
        raise UserError(f"{data} has no meeting in the model's held-out period")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if ope_params is not None and len(fit_meetings_before(ds, meetings[0], ope_params.fit_weeks)) == 0:
        raise UserError(
            f"{data} has no meeting before the held-out period ({meetings[0]:%Y-%m-%d}) to learn the meeting's"
            " choices from: off-policy estimates need one (or pass --no-ope)"
        )
    truth_p = None
    if truth is not None:
        t = read_truth(truth)
        truth_p = t.set_index(["meeting_date", "dwelling_id", "client_id"])["p_sustained"]
    complexes = ds.dwellings.set_index("dwelling_id")["complex_id"]

    def score(pairs: pd.DataFrame) -> pd.DataFrame:
        eligible, _ = apply_eligibility(ds, pairs, cfg.eligibility, cfg.amounts)
        if eligible.empty:
            return eligible.assign(p_sustained=pd.Series(dtype=float))
        X = build_pair_features(ds, eligible, params=cfg.features, rules=cfg.amounts)
        scored = eligible[["meeting_date", "dwelling_id", "client_id"]].assign(
            p_sustained=bundle.proba(X), complex_id=eligible["dwelling_id"].map(complexes).to_numpy()
        )
        if truth_p is not None:
            keys = pd.MultiIndex.from_frame(
                scored[["meeting_date", "dwelling_id", "client_id"]].astype({"dwelling_id": str, "client_id": str})
            )
            scored["true_p"] = truth_p.reindex(keys).to_numpy()
        return scored

    named = {name: dataclasses.replace(cfg.assignment, policy=name) for name in POLICIES}
    typer.echo(f"policies: replaying {len(meetings)} held-out meetings for {', '.join(named)}", err=True)
    table, by_group, _ = policy_frontier(
        ds, meetings, named, score, fairness=fairness, tolerance=cfg.assignment.no_real_difference
    )
    if ope_params is not None and labels is not None:
        typer.echo("policies: off-policy (doubly robust) estimates from the logged decisions", err=True)
        estimates = offpolicy_values(
            ds,
            meetings=meetings,
            policies=named,
            proba=bundle.proba,
            config=LoggedConfig(features=cfg.features, amounts=cfg.amounts, eligibility=cfg.eligibility, labels=labels),
            params=ope_params,
            truth=truth_p,
        )
        table = table.merge(estimates.table, on="policy", how="left")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "policies.csv", index=False)
    by_group.to_csv(out / "policies_by_group.csv", index=False)
    runs = table[table["policy"] != "meeting_history"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(runs["placed_waiting_median_weeks"], runs["expected_sustained_model"], color="#2b6cb0")
    for r in runs.itertuples():
        ax.annotate(str(r.policy), (r.placed_waiting_median_weeks, r.expected_sustained_model), fontsize=8)
    ax.set_xlabel("median waiting weeks of those placed")
    ax.set_ylabel("expected sustained tenancies (model)")
    ax.set_title(f"Policy frontier over {len(meetings)} held-out meetings", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "policies.png", dpi=120)
    plt.close(fig)
    typer.echo(table.to_string(index=False))
    typer.echo(f"wrote {out}")
    if mp is not None:
        store = tracking.store_dir(mp)
        run_params = {
            "policies": ",".join(named),
            "policy_in_force": cfg.assignment.policy,
            "data": str(data.resolve()),
            "data_fingerprint": dataset_fingerprint(data),
            "model": model or "default",
            "model_version": str((bundle.metadata or {}).get("model_version") or ""),
            "held_out_meetings": len(meetings),
            "truth": str(truth.resolve()) if truth is not None else "",
            **({f"ope.{k}": v for k, v in dataclasses.asdict(ope_params).items()} if ope_params else {}),
        }
        with tempfile.TemporaryDirectory() as tmp:
            for name in OUTPUTS:  # only this command's files, whatever else --out holds
                shutil.copy2(out / name, Path(tmp) / name)
            run_id, _ = tracking.log_policies(
                store, mp, table=table, run_params=run_params, artifacts={"policies": Path(tmp)}
            )
        typer.echo(f"logged MLflow run {run_id} at {tracking.tracking_uri(store)}")
