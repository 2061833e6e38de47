"""`matchwijs train`: features, labels, training, evaluation, MLflow tracking and promotion."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer

from features.errors import UserError


def _progress(msg: str) -> None:
    typer.echo(f"train: {msg}", err=True)


def data_fingerprint(folder: Path) -> str:
    """SHA-256 over the dataset's file names and bytes (sorted), for the run's data version."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def code_version() -> str:
    """The git commit of the code (with `-dirty` if changed), or `unknown` outside a checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _flatten(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


def train(
    data: Path = typer.Option(..., "--data", help="Dataset folder that follows the data contract."),
    truth: Optional[Path] = typer.Option(None, "--truth", help="Ground-truth folder of a synthetic dataset: adds the comparison with the oracle."),
    compare: bool = typer.Option(False, "--compare", help="Also fit params train.compare_objectives as nested runs and compare them."),
    search: bool = typer.Option(False, "--search", help="First compare the LightGBM variants of params train.search on the calibration weeks (nested runs) and train the best."),
    metrics_out: Optional[Path] = typer.Option(None, "--metrics-out", help="Also write the held-out metrics as JSON here (for DVC)."),
    eval_out: Optional[Path] = typer.Option(None, "--eval-out", help="Also write evaluation tables and figures into this folder."),
    bundle_out: Optional[Path] = typer.Option(None, "--bundle-out", help="Also write the trained model folder here (promoted or not; usable with --model)."),
    params: Optional[Path] = typer.Option(None, "--params", help="params.yaml to use (default: ./params.yaml, else the project's own)."),
) -> None:
    """Build features and labels, train the ranker, evaluate it on the latest meetings, track it in MLflow.

    The new model becomes the default only if it is at least as good as the current
    default on the same held-out placements and passes the fairness gate.
    """
    from features.config import load_params, section
    from features.labels import LabelParams
    from features.load import load_dataset
    from features.pairs import FEATURE_NAMES, FeatureParams
    from features.rules import PassendToewijzen
    from models import tracking
    from models.baselines import BaselineParams
    from models.experiment import placement_rows, run_experiment, score_with
    from models.ranker import TrainParams
    from reports import figures

    started = time.perf_counter()
    cfg = load_params(params)
    fp, lp = section(cfg, "features", FeatureParams), section(cfg, "labels", LabelParams)
    rules = section(cfg, "passend_toewijzen", PassendToewijzen)
    tp, bp = section(cfg, "train", TrainParams), section(cfg, "baselines", BaselineParams)
    mp = section(cfg, "mlflow", tracking.MlflowParams)

    _progress(f"loading {data}")
    ds = load_dataset(data)
    _progress(ds.summary())
    rows = placement_rows(ds, features=fp, labels=lp, rules=rules)
    _progress(f"{len(rows)} placements with a known outcome ({rows['sustained'].mean():.1%} sustained), {len(FEATURE_NAMES)} features")
    searched = None
    if search:
        from models.experiment import grid_search

        searched = grid_search(rows, train=tp, grid=tp.search.grid, metric=tp.search.metric, progress=_progress)
        best = {k: v for k, v in tp.search.grid[int(searched.loc[0, "variant"])].items()}
        _progress(f"search: best variant {best}")
        tp = dataclasses.replace(tp, lgbm=dataclasses.replace(tp.lgbm, **best))
    objectives = tuple(dict.fromkeys((tp.objective, *(tp.compare_objectives if compare else ()))))
    result = run_experiment(rows, train=tp, baselines=bp, objectives=objectives, progress=_progress)
    bundle = result.bundles[tp.objective]
    table = result.metrics

    oracle = None
    if truth is not None:
        from models.oracle import OracleParams, oracle_comparison

        _progress(f"comparing with the oracle on the held-out meetings ({truth})")
        oracle = oracle_comparison(ds, bundle, truth, params=cfg, oracle=section(cfg, "oracle", OracleParams),
                                   baselines=result.baseline_scorers(bp), progress=_progress)
    versus = result.versus
    if oracle is not None and versus is not None:
        from models.oracle import bootstrap_against

        policies = [*result.baseline_scorers(bp), "historical", "random"]
        versus = pd_concat([versus, bootstrap_against(oracle.per_meeting, policies, tp.bootstrap_resamples, tp.seed)])

    gate = None
    try:
        from fairness.audit import fairness_gate
        from fairness.params import FairnessParams
    except ImportError:
        fairness_gate = None
    if fairness_gate is not None and ds.client_protected is not None:
        _progress("checking the fairness gate on the held-out placements")
        gate = fairness_gate(ds, bundle, params=section(cfg, "fairness", FairnessParams), config=cfg)

    data_hash = data_fingerprint(Path(data))
    store = tracking.store_dir(mp)
    champion = tracking.champion_version(store, mp)
    new_metric = float(table.loc[f"ranker_{tp.objective}", mp.promotion_metric])
    champion_metric, comparison_notes = None, []
    if champion is not None:
        try:
            champ_bundle = tracking.resolve_bundle(str(champion.version), params_path=params)
        except UserError as exc:
            champ_bundle = None
            comparison_notes.append(f"the current default (version {champion.version}) cannot be read ({exc}): not compared")
        if champ_bundle is not None and tuple(champ_bundle.feature_names) != tuple(bundle.feature_names):
            comparison_notes.append(f"the current default (version {champion.version}) uses other features (older code): not compared")
        elif champ_bundle is not None:
            champion_metric = float(score_with(champ_bundle, result.test, tp.label_gain)[mp.promotion_metric])
            champ_end = champ_bundle.metadata.get("train_end")
            if champ_end and str(champ_end)[:10] >= f"{result.split.test_start:%Y-%m-%d}":
                comparison_notes.append(
                    f"the current default (version {champion.version}) learned from meetings up to {str(champ_end)[:10]}, inside "
                    f"these held-out weeks (from {result.split.test_start:%Y-%m-%d}): its {mp.promotion_metric} here is optimistic")
    for note in comparison_notes:
        _progress(f"note: {note}")
    better = champion_metric is None or (new_metric >= champion_metric if mp.higher_is_better else new_metric <= champion_metric)
    gate_ok = gate is None or gate.passed
    promote = better and gate_ok

    metrics = {f"{scorer}.{k}": v for scorer, row in table.iterrows() for k, v in row.items()}
    headline = {k: float(v) for k, v in table.loc[f"ranker_{tp.objective}"].items()}
    metrics.update({f"test_{k}": v for k, v in headline.items()})
    if oracle is not None:
        metrics.update({f"oracle.{k}": v for k, v in oracle.summary.items()})
    if versus is not None:
        for _, row in versus.iterrows():
            metrics.update({f"vs_{row['baseline']}.{row['metric']}.{k}": float(row[k]) for k in ("difference", "ci_low", "ci_high", "share_ahead")})
    run_params = _flatten("", {k: cfg[k] for k in ("features", "labels", "train", "baselines") if k in cfg}, {})
    run_params.update({"data.path": str(Path(data).resolve()), "data.sha256": data_hash, "data.as_of": f"{ds.as_of:%Y-%m-%d}"})
    run_params.update({f"train.lgbm.{k}": v for k, v in dataclasses.asdict(tp.lgbm).items()})  # as trained (after --search)
    run_params.pop("train.search.grid", None)  # the variants are logged as nested runs
    from fairness.guard import assert_no_protected

    assert_no_protected(run_params)
    bundle.metadata.update({
        "data_sha256": data_hash,
        "as_of": f"{ds.as_of:%Y-%m-%d}",
        "dataset_name": ds.name,
        "code_version": code_version(),
        "metrics": headline,
        "params": {**{k: cfg[k] for k in ("features", "labels") if k in cfg}, "train": dataclasses.asdict(tp)},
    })
    if oracle is not None:
        bundle.metadata["oracle"] = oracle.summary
    if versus is not None:
        bundle.metadata["versus"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
                                     for row in versus.to_dict("records")]

    with tempfile.TemporaryDirectory(prefix="matchwijs-train-") as tmp:
        tmp = Path(tmp)
        bundle.save(tmp / "bundle")
        ev = tmp / "evaluation"
        ev.mkdir()
        table.to_csv(ev / "metrics.csv")
        importance = pd_series(bundle.booster.feature_importance("gain"), bundle.feature_names)
        importance.sort_values(ascending=False).to_csv(ev / "feature_importance.csv", header=["gain"])
        title = "LightGBM feature importance (gain)" + (" of the trees, on top of the prior" if bundle.prior is not None else "")
        figures.importance_figure(importance, ev / "feature_importance.png", title)
        sample = result.test.head(2000)
        contrib, _ = bundle.contributions(sample)
        figures.shap_summary_figure(contrib, sample, ev / "shap_summary.png")
        contrib.abs().mean().sort_values(ascending=False).to_csv(ev / "shap_global_importance.csv", header=["mean_abs_contribution"])
        figures.reliability_figure({k: v for k, v in result.reliability.items()}, ev / "reliability.png")
        for name, curve in result.reliability.items():
            curve.to_csv(ev / f"reliability_{name}.csv", index=False)
        if oracle is not None:
            oracle.table.to_csv(ev / "oracle_comparison.csv")
            oracle.per_meeting.to_csv(ev / "oracle_per_meeting.csv", index=False)
            figures.gain_figure(oracle.table["plan_true_p_sustained"], ev / "oracle_comparison.png")
        if versus is not None:
            versus.to_csv(ev / "model_vs_baselines.csv", index=False)
        if gate is not None:
            gate.table.to_csv(ev / "fairness_gate.csv", index=False)
        if eval_out is not None:
            _replace_folder(eval_out, lambda folder: shutil.copytree(ev, folder, dirs_exist_ok=True))

        tags = {"data_sha256": data_hash, "as_of": f"{ds.as_of:%Y-%m-%d}", "code_version": bundle.metadata["code_version"],
                "objective": tp.objective, "fairness_gate": "none" if gate is None else ("passed" if gate.passed else "failed")}
        _progress(f"logging to MLflow at {tracking.tracking_uri(store)}")
        parent_id, artifact_uri = tracking.log_run(
            store, mp, run_name=f"train-{tp.objective}", run_params=run_params, metrics=metrics, tags=tags,
            artifacts={"bundle": tmp / "bundle", "evaluation": ev},
        )
        if searched is not None:
            for _, row in searched.iterrows():
                variant = {k: v for k, v in row.items() if pd_notna(v) and not k.startswith("validation_") and k != "variant"}
                tracking.log_run(store, mp, run_name=f"search-{int(row['variant'])}", run_params={**variant, "objective": tp.objective},
                                 metrics={f"validation_{tp.search.metric}": float(row[f"validation_{tp.search.metric}"])},
                                 tags={"search": "lgbm"}, artifacts={}, parent_run_id=parent_id)
        if compare:
            for objective, other in result.bundles.items():
                tracking.log_run(store, mp, run_name=f"objective-{objective}", run_params={"objective": objective},
                                 metrics={k: float(v) for k, v in table.loc[f"ranker_{objective}"].items()},
                                 tags={"objective": objective}, artifacts={}, parent_run_id=parent_id)
        why = []
        if not better:
            why.append(f"{mp.promotion_metric} {new_metric:.4f} is below the current default's {champion_metric:.4f} on the same held-out placements")
        if not gate_ok:
            why.append("the fairness gate failed: " + "; ".join(gate.failures))
        description = ("promoted" if promote else "candidate: " + " and ".join(why)) + "".join(f"; note: {n}" for n in comparison_notes)
        version = tracking.register(store, mp, parent_id, artifact_uri, promote=promote, description=description)

    summary = {"model_version": version, "promoted": promote, "objective": tp.objective, **{f"test_{k}": v for k, v in headline.items()}}
    if oracle is not None:
        summary.update({f"oracle_{k}": v for k, v in oracle.summary.items()})
    if gate is not None:
        summary["fairness_gate_passed"] = gate.passed
    if metrics_out is not None:
        metrics_out.parent.mkdir(parents=True, exist_ok=True)
        metrics_out.write_text(json.dumps(summary, indent=2, sort_keys=True, default=float) + "\n", encoding="utf-8")
    if bundle_out is not None:
        bundle.metadata.update({"model_version": f"{mp.registered_model}/{version}", "mlflow_run_id": parent_id,
                                "promoted": promote})
        _replace_folder(bundle_out, bundle.save)

    typer.echo(table.drop(columns=["n_placements"], errors="ignore").round(4).to_string())
    if oracle is not None:
        typer.echo(oracle.table.round(4).to_string())
    if versus is not None:
        typer.echo(f"model minus baseline, 95% interval over {tp.bootstrap_resamples} resamples of the held-out meetings:")
        typer.echo(versus.round(4).to_string(index=False))
    label = f"{mp.registered_model} version {version}"
    if promote:
        typer.echo(f"{label} is now the default model (held-out {mp.promotion_metric} {new_metric:.4f}"
                   + (f" vs {champion_metric:.4f} before)" if champion_metric is not None else ")"))
    else:
        typer.echo(f"{label} stays a candidate, the default model is unchanged: " + " and ".join(why))
    for note in comparison_notes:
        typer.echo(f"note: {note}")
    _progress(f"done in {time.perf_counter() - started:.1f} s; see `mlflow ui --backend-store-uri {tracking.tracking_uri(store)}`")


def pd_notna(value) -> bool:
    import pandas as pd

    return bool(pd.notna(value))


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def pd_series(values, index):
    import pandas as pd

    return pd.Series(values, index=list(index), dtype=float)


def _replace_folder(folder: Path, write) -> None:
    """Write into a temporary sibling, then swap it in: never a half-written folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
