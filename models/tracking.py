"""MLflow glue: an embedded tracking store, run logging, the model registry and the default model.

The store is a SQLite file with an absolute URI and an explicit artifact folder
beside it (STYLE.md: MLflow's default relative `sqlite:///mlflow.db` and the
deprecated file store are traps). Its folder is params.yaml `mlflow.store`
(relative to the working directory), or $MATCHWIJS_MLFLOW_DIR.

The default model is the registered model version carrying the `champion`
alias. `train` registers every model; it moves the alias only when the new
version is at least as good as the champion *on the same held-out data* and its
fairness gate passed.

This is the only library module that imports MLflow.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.config import load_params, section
from features.errors import UserError
from models.bundle import ModelBundle
from models.ranker import CALIBRATION_METRICS, RANKING_METRICS

ENV_STORE = "MATCHWIJS_MLFLOW_DIR"
CHAMPION = "champion"
DB_FILE = "mlflow.db"
ARTIFACTS = "artifacts"
BUNDLE_ARTIFACT = "bundle"


@dataclass(frozen=True)
class MlflowParams:
    """Where the store lives and what the experiment and registered model are called."""

    store: str
    experiment: str
    registered_model: str
    promotion_metric: str
    higher_is_better: bool

    def __post_init__(self) -> None:
        known = RANKING_METRICS + CALIBRATION_METRICS
        if self.promotion_metric not in known:
            raise UserError(
                f"params: mlflow.promotion_metric {self.promotion_metric!r} is not one of {', '.join(known)}"
            )


def mlflow_params(params_path: str | Path | None = None) -> MlflowParams:
    """The `mlflow` section of params.yaml."""
    return section(load_params(params_path), "mlflow", MlflowParams)


def store_dir(params: MlflowParams) -> Path:
    """Absolute folder of the store: $MATCHWIJS_MLFLOW_DIR, else params `mlflow.store` from the working directory."""
    return Path(os.environ.get(ENV_STORE) or params.store).expanduser().resolve()


def tracking_uri(store: Path) -> str:
    """Absolute SQLite URI of the store."""
    return f"sqlite:///{store / DB_FILE}"


LOCK_FILE = "registry.lock"


@contextlib.contextmanager
def store_lock(store: Path) -> Iterator[None]:
    """An exclusive lock on the store (flock), for first-time setup and registry changes across processes."""
    store.mkdir(parents=True, exist_ok=True)
    with open(store / LOCK_FILE, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_store(store: Path) -> None:
    """Refuse a store folder that cannot be used (a file, or not writable), before any work."""
    probe = store
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"MLflow store {store}: {probe} is a file, not a folder (params mlflow.store or ${ENV_STORE})")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"MLflow store {store}: cannot write in {probe} (permission denied)")
    db = store / DB_FILE
    if db.exists() and not (db.is_file() and os.access(db, os.R_OK | os.W_OK)):
        raise UserError(f"MLflow store {db} is not a readable and writable file")


def _mlflow(store: Path):
    """Import MLflow quietly and point it at the store (created once, under a lock, before any parallel use)."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="mlflow")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(store))
    mlflow.set_registry_uri(tracking_uri(store))
    if not (store / DB_FILE).is_file() or not (store / ARTIFACTS).is_dir():
        with store_lock(store):
            (store / ARTIFACTS).mkdir(exist_ok=True)
            mlflow.MlflowClient().search_experiments(max_results=1)  # creates the schema once
    return mlflow


def experiment_id(store: Path, name: str) -> str:
    """The experiment's id, created with an artifact location inside the store if new."""
    mlflow = _mlflow(store)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    with store_lock(store):
        exp = mlflow.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        return mlflow.create_experiment(name, artifact_location=(store / ARTIFACTS / name).as_uri())


def champion_version(store: Path, params: MlflowParams):
    """The registered version carrying the champion alias, or None."""
    mlflow = _mlflow(store)
    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(params.registered_model, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def register(
    store: Path, params: MlflowParams, run_id: str, artifact_uri: str, *, promote: bool, description: str
) -> str:
    """Register the run's bundle as a new version; give it the champion alias if `promote`. Returns the version."""
    mlflow = _mlflow(store)
    client = mlflow.MlflowClient()
    with store_lock(store):
        try:
            client.get_registered_model(params.registered_model)
        except mlflow.exceptions.MlflowException:
            client.create_registered_model(
                params.registered_model, description="matchwijs ranker: suggestions, never decisions"
            )
        version = client.create_model_version(
            params.registered_model,
            source=f"{artifact_uri}/{BUNDLE_ARTIFACT}",
            run_id=run_id,
            description=description,
        )
        client.set_model_version_tag(params.registered_model, version.version, "promoted", "false")
    if promote:
        promote_version(store, params, str(version.version))
    return str(version.version)


def promote_version(store: Path, params: MlflowParams, version: str) -> None:
    """Give `version` the champion alias (the default model) and tag it promoted."""
    client = _mlflow(store).MlflowClient()
    with store_lock(store):
        client.set_model_version_tag(params.registered_model, version, "promoted", "true")
        client.set_registered_model_alias(params.registered_model, CHAMPION, version)


promote = promote_version


class _Undo:
    """What a failed command must take back from the registry."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.versions: list[str] = []

    def run(self, run_id: str) -> None:
        self.runs.append(run_id)

    def version(self, version: str) -> None:
        self.versions.append(version)


@contextlib.contextmanager
def rollback_on_failure(store: Path, params: MlflowParams) -> Iterator[_Undo]:
    """On any failure inside the block: delete the versions and runs it created, put the champion alias back."""
    undo = _Undo()
    before = champion_version(store, params)
    try:
        yield undo
    except BaseException:
        mlflow = _mlflow(store)
        client = mlflow.MlflowClient()
        with store_lock(store), contextlib.suppress(Exception):
            for version in undo.versions:
                client.delete_model_version(params.registered_model, version)
            if before is None and undo.versions:
                if not client.search_model_versions(f"name = '{params.registered_model}'"):
                    client.delete_registered_model(params.registered_model)
            if before is not None:
                client.set_registered_model_alias(params.registered_model, CHAMPION, before.version)
            for run_id in undo.runs:
                for child in client.search_runs(
                    [client.get_run(run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'"
                ):
                    client.delete_run(child.info.run_id)
                client.delete_run(run_id)
        raise


def log_run(
    store: Path,
    params: MlflowParams,
    *,
    run_name: str,
    run_params: dict,
    metrics: dict,
    tags: dict,
    artifacts: dict[str, Path],
    parent_run_id: str | None = None,
) -> tuple[str, str]:
    """One tracked run: params, metrics (non-finite values skipped), tags, artifact folders/files.

    `artifacts` maps an artifact path inside the run to a local file or folder.
    Returns (run_id, artifact_uri).
    """
    mlflow = _mlflow(store)
    exp = experiment_id(store, params.experiment)
    with mlflow.start_run(
        experiment_id=exp, run_name=run_name, nested=parent_run_id is not None, parent_run_id=parent_run_id
    ) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in run_params.items()})
        mlflow.log_metrics(
            {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        )
        mlflow.set_tags(tags)
        for artifact_path, local in artifacts.items():
            local = Path(local)
            if local.is_dir():
                mlflow.log_artifacts(str(local), artifact_path=artifact_path)
            else:
                mlflow.log_artifact(str(local), artifact_path=artifact_path or None)
        return run.info.run_id, run.info.artifact_uri


def log_artifacts_to_run(store: Path, run_id: str, artifacts: dict[str, Path]) -> None:
    """Add files or folders to an existing run (e.g. the audit report to the model's run)."""
    mlflow = _mlflow(store)
    client = mlflow.MlflowClient()
    for artifact_path, local in artifacts.items():
        local = Path(local)
        if local.is_dir():
            client.log_artifacts(run_id, str(local), artifact_path=artifact_path)
        else:
            client.log_artifact(run_id, str(local), artifact_path=artifact_path or None)


def _load_version(mlflow, name: str, version) -> ModelBundle:
    path = mlflow.artifacts.download_artifacts(artifact_uri=version.source)
    bundle = ModelBundle.load(path)
    bundle.metadata.setdefault("model_version", f"{name}/{version.version}")
    bundle.metadata.setdefault("mlflow_run_id", version.run_id)
    return bundle


def resolve_bundle(model: str | None, *, params_path: str | Path | None = None) -> ModelBundle:
    """The model to use: None = the champion; a folder = that bundle; `N` or `models:/NAME/N` = that registered version."""
    if model and (Path(model).exists() or not _looks_like_version(model)):
        return ModelBundle.load(model)  # a folder, or a path that names what is wrong with it
    params = mlflow_params(params_path)
    store = store_dir(params)
    if not (store / DB_FILE).is_file():
        raise UserError(
            f"no trained model: the MLflow store {store} does not exist yet. Run `matchwijs train --data DIR` first."
        )
    mlflow = _mlflow(store)
    client = mlflow.MlflowClient()
    if model is None:
        version = champion_version(store, params)
        if version is None:
            raise UserError(
                f"no default model: no version of {params.registered_model!r} carries the `{CHAMPION}` alias in {store}. "
                "Run `matchwijs train --data DIR`, or pass --model."
            )
        return _load_version(mlflow, params.registered_model, version)
    number = model.removeprefix(f"models:/{params.registered_model}/")
    if not number.isdigit():
        raise UserError(
            f"--model {model!r} is neither a model folder nor a registered version (a number or models:/{params.registered_model}/N)"
        )
    try:
        version = client.get_model_version(params.registered_model, number)
    except mlflow.exceptions.MlflowException:
        raise UserError(f"registered model {params.registered_model!r} has no version {number} in {store}") from None
    return _load_version(mlflow, params.registered_model, version)


def _looks_like_version(model: str) -> bool:
    """`3` or `models:/NAME/3` (or anything in the models:/ scheme) rather than a path."""
    return model.strip().isdigit() or model.startswith("models:/")


def flatten_params(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested params mapping as MLflow params: `{"train": {"seed": 1}}` -> `{"train.seed": 1}`."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten_params(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = value
    return out


def train_metrics(table, objective: str, *, oracle_summary: dict | None = None, versus=None) -> dict[str, float]:
    """The metrics of a training run: every scorer's, the default objective's as `test_*`, oracle and bootstrap."""
    metrics = {f"{scorer}.{k}": v for scorer, row in table.iterrows() for k, v in row.items()}
    metrics.update({f"test_{k}": float(v) for k, v in table.loc[f"ranker_{objective}"].items()})
    if oracle_summary is not None:
        metrics.update({f"oracle.{k}": v for k, v in oracle_summary.items()})
    if versus is not None:
        for _, row in versus.iterrows():
            for k in ("difference", "ci_low", "ci_high", "share_ahead"):
                metrics[f"vs_{row['baseline']}.{row['metric']}.{k}"] = float(row[k])
    return metrics


POLICIES_RUN = "policies"


def policy_metrics(table) -> dict[str, float]:
    """Every finite number of the policy table as a metric named `<policy>/<column>`."""
    metrics: dict[str, float] = {}
    for row in table.to_dict("records"):
        for column, value in row.items():
            if column != "policy" and isinstance(value, (int, float)) and not isinstance(value, bool):
                if math.isfinite(float(value)):
                    metrics[f"{row['policy']}/{column}"] = float(value)
    return metrics


def log_policies(
    store: Path, params: MlflowParams, *, table, run_params: dict, artifacts: dict[str, Path]
) -> tuple[str, str]:
    """`matchwijs policies` as one run of the project's experiment: params, per-policy metrics, its files.

    Returns (run_id, artifact_uri).
    """
    return log_run(
        store,
        params,
        run_name=POLICIES_RUN,
        run_params=run_params,
        metrics=policy_metrics(table),
        tags={"matchwijs.command": POLICIES_RUN},
        artifacts=artifacts,
    )
