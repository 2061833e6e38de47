"""`matchwijs train`: features, labels, training, evaluation, MLflow tracking and promotion."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from features.errors import UserError

_STARTED = [time.perf_counter()]  # when the running `train` started (reset by `train`)


def _progress(msg: str) -> None:
    """One progress line on stderr, with the wall time since `train` started (which stage takes how long)."""
    seconds = int(time.perf_counter() - _STARTED[0])
    typer.echo(f"train: [{seconds // 60}:{seconds % 60:02d}] {msg}", err=True)


def code_version() -> str:
    """The git commit of the code (with `-dirty` if changed), or `unknown` outside a checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


SIDE_PROCESS_MIN_ROWS = 20_000  # placements from which the oracle and the deployed model run beside the gate (SideJobs)


def _fit_deployed(rows, as_of, params, intervals, truth: Path | None, started: float) -> tuple[Any, Any, float]:
    """The deployed model (the evaluated settings refitted on every outcome known at `as_of`), with its intervals.

    Returns (bundle, split, the peak memory in GB of the process that fitted it: a side process's own).
    """
    import resource

    from models.deploy import known_at, train_deployed
    from models.interval_fit import fit_intervals, read_true_chances

    _STARTED[0] = started  # the progress lines of a side process count from the same start
    _progress(f"refitting the deployed model with the same settings on every outcome known at {as_of:%Y-%m-%d}")
    deployed, split = train_deployed(rows, as_of=as_of, params=params, objective=params.objective)
    if intervals is not None:
        # The deployed model gets its own bootstrap copies and width, fitted the same way on its own weeks;
        # the coverage measured on the test weeks (evaluated model) is the evidence for both.
        _progress("intervals of the deployed model")
        deployed.intervals = fit_intervals(
            known_at(rows, as_of),
            split,
            deployed,
            train=params,
            params=intervals,
            true_p=read_true_chances(truth) if truth is not None else None,
        )
    return deployed, split, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class SideJobs:
    """Work that needs neither the fairness gate nor each other, inline or in one side process (`side`).

    The oracle comparison and the fairness gate each use one core; the deployed model needs
    neither. With `side` they are started at once in one fresh worker process (loky, as the
    interval copies: LightGBM's OpenMP threads do not survive a fork), one after another, while
    `train` runs the gate on the other core; without it each runs inline when its result is
    asked for. The same results either way (seeded; tested). An error in the side process (a
    UserError too) is raised by `get`; a side process that dies (killed for memory, say) is a
    UserError saying so, instead of leaving `train` waiting.
    """

    def __init__(self, side: bool) -> None:
        self.side = side
        self.executor = None
        if side:
            from joblib.externals.loky.process_executor import ProcessPoolExecutor

            self.executor = ProcessPoolExecutor(max_workers=1)

    def submit(self, fn, *args) -> Any:
        """A handle whose `get()` gives `fn(*args)`."""
        if self.executor is not None:
            return _Pending(self.executor.submit(fn, *args))
        return _Inline(fn, args)

    def close(self) -> None:
        """Stop the side process (at once if its results are no longer wanted)."""
        if self.executor is not None:
            self.executor.shutdown(wait=False, kill_workers=True)
            self.executor = None


class _Pending:
    def __init__(self, future) -> None:
        self.future = future

    def get(self) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self.future.result()
        except BrokenProcessPool as error:  # loky's TerminatedWorkerError too: the process died, not the work
            raise UserError(
                f"train's side process (oracle comparison, deployed model) stopped unexpectedly: {error} "
                "Was it killed for lack of memory? Nothing was registered; run train again."
            ) from error


class _Inline:
    def __init__(self, fn, args) -> None:
        self.fn, self.args = fn, args

    def get(self) -> Any:
        return self.fn(*self.args)


def _oracle(ds, data: Path, bundle, truth: Path, cfg: dict, baselines: dict, started: float):
    """The oracle comparison of `bundle` (the dataset loaded again from `data` when `ds` is None: a side process)."""
    from features.config import section
    from features.load import load_dataset
    from models.oracle import OracleParams, oracle_comparison

    _STARTED[0] = started  # the progress lines of a side process count from the same start
    if ds is None:
        _progress(f"comparing with the oracle on the held-out meetings ({truth}), in a side process meanwhile")
        ds = load_dataset(data)
    else:
        _progress(f"comparing with the oracle on the held-out meetings ({truth})")
    return oracle_comparison(
        ds,
        bundle,
        truth,
        params=cfg,
        oracle=section(cfg, "oracle", OracleParams),
        baselines=baselines,
        progress=_progress,
    )


def _gate(ds, bundle, cfg: dict):
    """The fairness gate on the held-out placements (None without client_protected)."""
    from fairness.audit import fairness_gate
    from fairness.params import FairnessParams
    from features.config import section

    if ds.client_protected is None:
        return None
    _progress("checking the fairness gate on the held-out placements")
    return fairness_gate(
        ds,
        bundle,
        params=section(cfg, "fairness", FairnessParams),
        config=cfg,
        progress=lambda m: _progress(f"gate: {m}"),
    )


def _side_process_wanted(ds, rows) -> bool:
    """At scale, with regional meetings and a second core: see README "Country scale".

    One big meeting is left in one process: its oracle comparison and gate each hold a whole
    meeting's pairs at once, and a second process doing the same would double that memory.
    """
    from features.load import region_of

    regional = region_of(ds.vacancies).nunique() > 1
    return len(rows) >= SIDE_PROCESS_MIN_ROWS and regional and (os.cpu_count() or 1) > 1


def train(
    data: Path = typer.Option(..., "--data", help="Dataset folder that follows the data contract."),
    truth: Path | None = typer.Option(
        None, "--truth", help="Ground-truth folder of a synthetic dataset: adds the comparison with the oracle."
    ),
    compare: bool = typer.Option(
        False, "--compare", help="Also fit params train.compare_objectives as nested runs and compare them."
    ),
    search: bool | None = typer.Option(
        None,
        "--search/--no-search",
        help="First compare the LightGBM variants of params train.search on the calibration weeks (nested runs) and "
        "train the best. Default: params train.search.by_default.",
    ),
    metrics_out: Path | None = typer.Option(
        None, "--metrics-out", help="Also write the held-out metrics as JSON here (for DVC)."
    ),
    eval_out: Path | None = typer.Option(
        None, "--eval-out", help="Also write evaluation tables and figures into this folder."
    ),
    bundle_out: Path | None = typer.Option(
        None, "--bundle-out", help="Also write the trained model folder here (promoted or not; usable with --model)."
    ),
    params: Path | None = typer.Option(
        None, "--params", help="params.yaml to use (default: ./params.yaml, else the project's own)."
    ),
) -> None:
    """Build features and labels, train the ranker, evaluate it on the latest meetings, track it in MLflow.

    The evaluated model learns only from outcomes known before its held-out weeks; the
    model registered for use (deployed) is its refit with the same settings on every
    outcome known at the data's as_of. The new model becomes the default only if the
    evaluated model is at least as good as the current default's evaluated model on the
    same held-out placements and passes the fairness gate.
    """
    import pandas as pd

    from fairness.guard import assert_no_protected
    from features.config import load_params, section
    from features.labels import LabelParams
    from features.load import dataset_fingerprint, load_dataset
    from features.outputs import Staging, check_distinct, check_output_file, check_output_folder
    from features.pairs import FEATURE_NAMES, FeatureParams
    from features.rules import PassendToewijzen
    from models import tracking
    from models.baselines import BaselineParams
    from models.deploy import DEPLOYED, EVALUATED, data_range, known_at
    from models.experiment import choose_capacity, placement_rows, run_experiment, search_lgbm
    from models.interval_fit import add_intervals
    from models.intervals import IntervalParams
    from models.oracle import bootstrap_against
    from models.promotion import decide_promotion
    from models.ranker import TrainParams
    from reports.evaluation import write_evaluation

    started = _STARTED[0] = time.perf_counter()
    started_at = time.time()  # the MLflow run's start: its duration is the whole training
    # Check before acting: every output place, then params, data and the store, before any work.
    if eval_out is not None:
        check_output_folder(eval_out, "--eval-out")
    if bundle_out is not None:
        check_output_folder(bundle_out, "--bundle-out")
    if metrics_out is not None:
        check_output_file(metrics_out, "--metrics-out")
    check_distinct(**{"--data": data, "--eval-out": eval_out, "--bundle-out": bundle_out, "--metrics-out": metrics_out})
    cfg = load_params(params)
    fp, lp = section(cfg, "features", FeatureParams), section(cfg, "labels", LabelParams)
    rules = section(cfg, "passend_toewijzen", PassendToewijzen)
    tp, bp = section(cfg, "train", TrainParams), section(cfg, "baselines", BaselineParams)
    mp = section(cfg, "mlflow", tracking.MlflowParams)
    tracking.check_store(tracking.store_dir(mp))

    _progress(f"loading {data}")
    ds = load_dataset(data)
    _progress(ds.summary())
    rows = placement_rows(ds, features=fp, labels=lp, rules=rules)
    _progress(
        f"{len(rows)} placements with a known outcome ({rows['sustained'].mean():.1%} sustained), {len(FEATURE_NAMES)} features"
    )
    tp, _ = choose_capacity(rows, tp, progress=_progress)  # train.prior_choice etc.: on the calibration weeks
    searched = None
    if tp.search.by_default if search is None else search:
        tp, searched = search_lgbm(rows, tp, progress=_progress)
    objectives = tuple(dict.fromkeys((tp.objective, *(tp.compare_objectives if compare else ()))))
    result = run_experiment(rows, train=tp, baselines=bp, objectives=objectives, progress=_progress)
    bundle = result.bundles[tp.objective]
    table = result.metrics
    # How sure each chance is (models/intervals.py): bootstrap copies, width calibrated on the calibration weeks.
    interval_params = section(cfg, "intervals", IntervalParams) if "intervals" in cfg else IntervalParams(resamples=0)
    interval_metrics = add_intervals(
        bundle,
        rows,
        result.split,
        result.test,
        train=tp,
        params=interval_params,
        truth_dir=truth,
        progress=_progress,
    )

    # The oracle comparison and the deployed model (with its intervals) need nothing of the gate nor of each other:
    # at scale they run in a side process while the gate runs (each uses one core); the same results either way.
    jobs = SideJobs(_side_process_wanted(ds, rows))
    try:
        oracle_job = None
        if truth is not None:
            args = (None if jobs.side else ds, data, bundle, truth, cfg, result.informed_baselines(), started)
            oracle_job = jobs.submit(_oracle, *args)
        deployed_intervals = None if bundle.intervals is None else interval_params
        if deployed_intervals is not None and jobs.side:  # the side process has one core: its copies one by one
            deployed_intervals = dataclasses.replace(deployed_intervals, workers=1)
        deployed_job = jobs.submit(_fit_deployed, rows, ds.as_of, tp, deployed_intervals, truth, started)
        oracle = oracle_job.get() if oracle_job is not None and not jobs.side else None  # inline: in the old order
        gate = _gate(ds, bundle, cfg)
        if oracle_job is not None and jobs.side:
            _progress("waiting for the oracle comparison (side process)")
            oracle = oracle_job.get()
        versus = result.versus
        if oracle is not None and versus is not None:
            policies = [*result.informed_baselines(), "historical", "random"]
            against = bootstrap_against(oracle.per_meeting, policies, tp.bootstrap_resamples, tp.seed)
            versus = pd.concat([versus, against], ignore_index=True)
        if jobs.side:
            _progress("waiting for the deployed model (side process)")
        deployed, deployed_split, peak_gb = deployed_job.get()
        if jobs.side:
            _progress(f"the side process is done (its peak memory {peak_gb:.2f} GB)")
    finally:
        jobs.close()
    if bundle.intervals is not None:
        deployed.metadata["intervals"] = {
            **bundle.metadata.get("intervals", {}),
            "scale": round(deployed.intervals.scale, 4) if deployed.intervals is not None else None,
            "coverage_measured_on": "the evaluated model's test weeks",
        }
    ranges = {
        **data_range(rows, result.split).as_metadata(EVALUATED),
        **data_range(known_at(rows, ds.as_of), deployed_split).as_metadata(DEPLOYED),
    }
    data_hash = dataset_fingerprint(data)
    store = tracking.store_dir(mp)
    moved_by_hand = tracking.champion_set_elsewhere(store, mp)
    if moved_by_hand:
        _progress(f"warning: {moved_by_hand}")
    comparison = _compare_with_champion(tracking, store, mp, params, bundle, result, tp)
    for note in comparison.notes:
        _progress(f"note: {note}")
    promotion = decide_promotion(
        comparison, gate_passed=None if gate is None else gate.passed, gate_failures=gate.failures if gate else ()
    )

    metrics = tracking.train_metrics(
        table, tp.objective, oracle_summary=oracle.summary if oracle is not None else None, versus=versus
    )
    metrics.update(interval_metrics)
    headline = {k: float(v) for k, v in table.loc[f"ranker_{tp.objective}"].items()}
    run_params = tracking.flatten_params({k: cfg[k] for k in ("features", "labels", "train", "baselines") if k in cfg})
    run_params.update(
        {"data.path": str(Path(data).resolve()), "data.sha256": data_hash, "data.as_of": f"{ds.as_of:%Y-%m-%d}"}
    )
    # the LightGBM settings as trained (after --search); the searched variants are logged as nested runs
    run_params.update({f"train.lgbm.{k}": v for k, v in dataclasses.asdict(tp.lgbm).items()})
    run_params.update(
        {"train.prior_kind": tp.prior_kind, "train.prior_C": tp.prior_C, "train.nuisance_alpha": tp.nuisance_alpha}
    )  # as chosen
    run_params.pop("train.search.grid", None)
    assert_no_protected(run_params)
    shared = {
        "data_sha256": data_hash,
        "as_of": f"{ds.as_of:%Y-%m-%d}",
        "dataset_name": ds.name,
        "code_version": code_version(),
        "metrics": headline,  # always the evaluated model's held-out metrics
        "metrics_of": EVALUATED,
        "fairness_gate": "none" if gate is None else ("passed" if gate.passed else "failed"),
        "fairness_gate_judged": EVALUATED,
        "params": {**{k: cfg[k] for k in ("features", "labels") if k in cfg}, "train": dataclasses.asdict(tp)},
        **ranges,
    }
    if oracle is not None:
        shared["oracle"] = oracle.summary
    if versus is not None:
        shared["versus"] = [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            for row in versus.to_dict("records")
        ]
    bundle.metadata.update({**shared, "role": EVALUATED})
    # The deployed model has no held-out weeks of its own: it carries the evaluated model's, so an
    # audit of it runs and says its numbers are optimistic (it learned from those weeks).
    deployed.metadata.update(
        {
            **shared,
            "role": DEPLOYED,
            "test_start": bundle.metadata["test_start"],
            "test_end": bundle.metadata["test_end"],
            "evaluated_train_end": bundle.metadata["train_end"],
        }
    )

    tags = {
        "data_sha256": data_hash,
        "as_of": f"{ds.as_of:%Y-%m-%d}",
        "code_version": bundle.metadata["code_version"],
        "objective": tp.objective,
        "fairness_gate": "none" if gate is None else ("passed" if gate.passed else "failed"),
        "fairness_gate_judged": EVALUATED,
        **{k: str(v) for k, v in ranges.items()},
    }
    if moved_by_hand:
        tags["champion_moved_outside_train"] = moved_by_hand[:5000]
    if gate is not None:
        metrics.update(tracking.gate_metrics(gate.table, gate.passed))
    summary = {
        "promoted": promotion.promote,
        "objective": tp.objective,
        **{f"test_{k}": v for k, v in headline.items()},
    }
    if oracle is not None:
        summary.update({f"oracle_{k}": v for k, v in oracle.summary.items()})
    if gate is not None:
        summary["fairness_gate_passed"] = gate.passed
    summary.update(ranges)
    summary.update(interval_metrics)

    # Side effects, in order: every output is written and fsynced beside its place; then the
    # MLflow run and the new (not yet default) version; then the outputs are swapped in; the
    # champion alias moves last. A failure anywhere undoes the registry entries and leaves
    # every output as it was.
    with tempfile.TemporaryDirectory(prefix="matchwijs-train-") as tmp_name, Staging() as stage:
        tmp = Path(tmp_name)
        bundle.save(tmp / "bundle")
        deployed.save(tmp / "deployed")
        ev = tmp / "evaluation"
        ev.mkdir()
        write_evaluation(ev, result=result, bundle=bundle, oracle=oracle, versus=versus, gate=gate)
        if eval_out is not None:
            shutil.copytree(ev, stage.folder(eval_out, "--eval-out"), dirs_exist_ok=True)
        staged_bundle = stage.folder(bundle_out, "--bundle-out") if bundle_out is not None else None
        staged_metrics = stage.file(metrics_out, "--metrics-out") if metrics_out is not None else None

        _progress(f"logging to MLflow at {tracking.tracking_uri(store)}")
        with tracking.rollback_on_failure(store, mp) as undo:
            parent_id, artifact_uri = tracking.log_run(
                store,
                mp,
                run_name=f"train-{tp.objective}",
                run_params=run_params,
                metrics=metrics,
                tags=tags,
                artifacts={tracking.EVALUATED_ARTIFACT: tmp / "bundle", "evaluation": ev},
                start_time=started_at,
            )
            undo.run(parent_id)
            # The input example is per-feature quantiles of the training rows: an aggregate, never a client's row.
            example = rows[list(deployed.feature_names)].astype(float).quantile([0.1, 0.5, 0.9])
            logged = tracking.log_bundle_model(store, parent_id, tmp / "deployed", example)
            undo.model(logged)
            if searched is not None:
                _log_search(tracking, store, mp, searched, tp, parent_id)
            if compare:
                for objective in result.bundles:
                    tracking.log_run(
                        store,
                        mp,
                        run_name=f"objective-{objective}",
                        run_params={"objective": objective},
                        metrics={k: float(v) for k, v in table.loc[f"ranker_{objective}"].items()},
                        tags={"objective": objective},
                        artifacts={},
                        parent_run_id=parent_id,
                    )
            version = tracking.register(
                store,
                mp,
                parent_id,
                artifact_uri,
                promote=False,
                description=_version_description(promotion, ranges, deployed),
                model=logged,
                tags={"role": DEPLOYED, **{k: str(v) for k, v in ranges.items()}},
            )
            undo.version(version)
            summary["model_version"] = version
            if staged_metrics is not None:
                staged_metrics.write_text(
                    json.dumps(summary, indent=2, sort_keys=True, default=float) + "\n", encoding="utf-8"
                )
            if staged_bundle is not None:
                registry = {
                    "model_version": f"{mp.registered_model}/{version}",
                    "mlflow_run_id": parent_id,
                    "promoted": promotion.promote,
                }
                deployed.metadata.update(registry)
                bundle.metadata.update({**registry, "model_version": f"{mp.registered_model}/{version} (evaluated)"})
                deployed.save(staged_bundle)
                bundle.save(staged_bundle / EVALUATED)
            # The alias moves before the outputs are swapped in: if either fails, the rollback puts the
            # alias back and deletes the version, and the outputs are never swapped.
            if promotion.promote:
                tracking.promote(store, mp, version)
            stage.commit()

    typer.echo(table.drop(columns=["n_placements"], errors="ignore").round(4).to_string())
    if oracle is not None:
        typer.echo(oracle.table.round(4).to_string())
    if versus is not None:
        typer.echo(
            f"model minus baseline, 95% interval over {tp.bootstrap_resamples} resamples of the held-out meetings:"
        )
        typer.echo(versus.round(4).to_string(index=False))
    label = f"{mp.registered_model} version {version}"
    if promotion.promote:
        typer.echo(
            f"{label} is now the default model (held-out {mp.promotion_metric} {comparison.new_value:.4f}"
            + (f" vs {comparison.champion_value:.4f} before)" if comparison.champion_value is not None else ")")
        )
    else:
        typer.echo(f"{label} stays a candidate, the default model is unchanged: " + " and ".join(promotion.reasons))
    for note in comparison.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        f"evaluated model: meetings {ranges['evaluated_first_meeting']} to {ranges['evaluated_last_meeting']}, "
        f"outcomes known to {ranges['evaluated_outcomes_known_to']} ({ranges['evaluated_n_placements']} placements); "
        f"deployed model ({label}): meetings {ranges['deployed_first_meeting']} to {ranges['deployed_last_meeting']}, "
        f"outcomes known to {ranges['deployed_outcomes_known_to']} ({ranges['deployed_n_placements']} placements)"
    )
    if moved_by_hand:
        typer.echo(f"warning: {moved_by_hand}")
    _progress(
        f"done in {time.perf_counter() - started:.1f} s; see `mlflow ui --backend-store-uri {tracking.tracking_uri(store)}`"
    )


def _version_description(promotion, ranges: dict, deployed) -> str:
    """The registry description of a new version: the promotion decision, both data ranges, the schema."""
    return (
        f"{promotion.description()}. Deployed model: refitted with the evaluated model's settings on every outcome "
        f"known at {ranges['deployed_outcomes_known_to']} (meetings {ranges['deployed_first_meeting']} to "
        f"{ranges['deployed_last_meeting']}, {ranges['deployed_n_placements']} placements). The metrics, the "
        f"champion comparison and the fairness gate are the evaluated model's (meetings "
        f"{ranges['evaluated_first_meeting']} to {ranges['evaluated_last_meeting']}; run artifact evaluated/bundle). "
        f"Input: {len(deployed.feature_names)} pair features (float); output: p_sustained."
    )


def _compare_with_champion(tracking, store, mp, params, bundle, result, tp):
    """The new evaluated model against the current default's evaluated model on the same held-out rows.

    The default's deployed model learned from these held-out weeks; its evaluated model is
    compared when the registry has it (older versions: the registered bundle itself).
    """
    from models.promotion import compare_with_champion

    champion = tracking.champion_version(store, mp)
    champ_bundle, unreadable = None, None
    if champion is not None:
        try:
            champ_bundle = tracking.evaluated_bundle(store, mp, str(champion.version))
            if champ_bundle is None:
                champ_bundle = tracking.resolve_bundle(str(champion.version), params_path=params)
        except UserError as exc:
            unreadable = str(exc)
    return compare_with_champion(
        float(result.metrics.loc[f"ranker_{tp.objective}", mp.promotion_metric]),
        champion=champ_bundle,
        champion_label=f"version {champion.version}" if champion is not None else "",
        unreadable=unreadable,
        feature_names=bundle.feature_names,
        test=result.test,
        test_start=result.split.test_start,
        label_gain=tp.label_gain,
        metric=mp.promotion_metric,
        higher_is_better=mp.higher_is_better,
    )


def _log_search(tracking, store, mp, searched, tp, parent_id) -> None:
    """One nested run per searched LightGBM variant, with its validation metric."""
    import pandas as pd

    for _, row in searched.iterrows():
        variant = {k: v for k, v in row.items() if pd.notna(v) and not k.startswith("validation_") and k != "variant"}
        tracking.log_run(
            store,
            mp,
            run_name=f"search-{int(row['variant'])}",
            run_params={**variant, "objective": tp.objective},
            metrics={f"validation_{tp.search.metric}": float(row[f"validation_{tp.search.metric}"])},
            tags={"search": "lgbm"},
            artifacts={},
            parent_run_id=parent_id,
        )
