"""MLflow glue: an embedded tracking store, run logging, the model registry and the default model.

The store is a SQLite file with an absolute URI and an explicit artifact folder
beside it (STYLE.md: MLflow's default relative `sqlite:///mlflow.db` and the
deprecated file store are traps). Its folder is params.yaml `mlflow.store`
(relative to the working directory), or $MATCHWIJS_MLFLOW_DIR.

The default model is the registered model version carrying the `champion`
alias. `train` registers every model; it moves the alias only when the new
version is at least as good as the champion *on the same held-out data* and its
fairness gate passed.

Each `train` run logs two models (README "The model's life cycle"): the
*evaluated* bundle (learned only from outcomes known before its held-out test
weeks; the run's metrics, the champion comparison and the fairness gate are
about it) as the run artifact `evaluated/bundle`, and the *deployed* bundle (the
same settings refitted on every outcome known at `as_of`) as an MLflow pyfunc
model, which is what the registered version points at: so
`mlflow.pyfunc.load_model("models:/matchwijs-ranker/N")` gives the calibrated
chance, and `resolve_bundle` unwraps it to the bundle (for SHAP). The bundle
folder inside the MLflow model keeps the project's own format and checksums.
Older versions registered as a plain bundle folder still load.

This is the only library module that imports MLflow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.config import load_params, section
from features.errors import UserError
from models.bundle import ModelBundle
from models.deploy import DEPLOYED, EVALUATED
from models.ranker import CALIBRATION_METRICS, RANKING_METRICS

ENV_STORE = "MATCHWIJS_MLFLOW_DIR"
CHAMPION = "champion"
DB_FILE = "mlflow.db"
ARTIFACTS = "artifacts"
BUNDLE_ARTIFACT = "bundle"  # older versions: the registered source is this plain bundle folder
MODEL_ARTIFACT = "model"  # the logged pyfunc model (MLmodel + artifacts/bundle)
EVALUATED_ARTIFACT = "evaluated/bundle"  # the evaluated bundle, in the same run
PYFUNC_BUNDLE = "bundle"  # the name of the bundle folder among the pyfunc model's artifacts
PYFUNC_CODE = Path(__file__).resolve().parent / "pyfunc_model.py"
OUTPUT_COLUMN = "p_sustained"
# The MLflow UI opens an experiment with this tag in its model-training view (not the GenAI overview).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
# Registered-model tag: the version `train` last gave the champion alias (to notice moves by hand).
TRAIN_SET_TAG = "matchwijs.champion_set_by_train"
REGISTERED_DESCRIPTION = (
    "matchwijs ranker: the chance that a placement of a client in a home is sustained, for the matching "
    "meeting's suggestions (never decisions). Input: one row per (home, client) pair with the pair features "
    "of features/pairs.py as of the meeting date (see each version's signature). Output: column p_sustained, "
    "the calibrated P(sustained tenancy). Each version is the deployed model (refitted on every outcome known "
    "at its as_of); the evaluated model and its held-out metrics are in the same run (artifact evaluated/bundle). "
    "The `champion` alias is the default model, moved by `matchwijs train` only after the champion comparison "
    "and the fairness gate; moving it by hand in this UI bypasses both."
)


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
            mlflow.MlflowClient().search_experiments(max_results=1)  # creates the schema once
            # last: a process that finds both the database and this folder skips the lock, so the
            # folder must not appear before the schema (and its Default experiment) is complete
            (store / ARTIFACTS).mkdir(exist_ok=True)
    return mlflow


def experiment_id(store: Path, name: str) -> str:
    """The experiment's id, created with an artifact location inside the store if new."""
    mlflow = _mlflow(store)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None and exp.tags.get(EXPERIMENT_KIND_TAG):
        return exp.experiment_id
    with store_lock(store):
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            return mlflow.create_experiment(
                name,
                artifact_location=(store / ARTIFACTS / name).as_uri(),
                tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING},
            )
        if not exp.tags.get(EXPERIMENT_KIND_TAG):  # an experiment created before the tag existed
            mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return exp.experiment_id


def champion_version(store: Path, params: MlflowParams):
    """The registered version carrying the champion alias, or None."""
    mlflow = _mlflow(store)
    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(params.registered_model, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


@dataclass(frozen=True)
class LoggedModel:
    """A pyfunc model logged in a run: its `models:/<model_id>` URI and id."""

    model_uri: str
    model_id: str


def register(
    store: Path,
    params: MlflowParams,
    run_id: str,
    artifact_uri: str,
    *,
    promote: bool,
    description: str,
    model: LoggedModel | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Register a new version; give it the champion alias if `promote`. Returns the version.

    The version's source is the logged pyfunc `model` when given (what `train` does), else
    the run's plain bundle folder (older runs). `tags` are set on the version.
    """
    mlflow = _mlflow(store)
    client = mlflow.MlflowClient()
    with store_lock(store):
        try:
            client.get_registered_model(params.registered_model)
        except mlflow.exceptions.MlflowException:
            client.create_registered_model(params.registered_model, description=REGISTERED_DESCRIPTION)
        if model is not None:
            version = client.create_model_version(
                params.registered_model,
                source=model.model_uri,
                run_id=run_id,
                description=description,
                model_id=model.model_id,
            )
        else:
            version = client.create_model_version(
                params.registered_model,
                source=f"{artifact_uri}/{BUNDLE_ARTIFACT}",
                run_id=run_id,
                description=description,
            )
        client.set_model_version_tag(params.registered_model, version.version, "promoted", "false")
        for key, value in (tags or {}).items():
            client.set_model_version_tag(params.registered_model, version.version, key, str(value))
    if promote:
        promote_version(store, params, str(version.version))
    return str(version.version)


def promote_version(store: Path, params: MlflowParams, version: str) -> None:
    """Give `version` the champion alias (the default model), tag it promoted, and record that train set it."""
    client = _mlflow(store).MlflowClient()
    with store_lock(store):
        client.set_model_version_tag(params.registered_model, version, "promoted", "true")
        client.set_registered_model_alias(params.registered_model, CHAMPION, version)
        client.set_registered_model_tag(params.registered_model, TRAIN_SET_TAG, str(version))


def champion_set_elsewhere(store: Path, params: MlflowParams) -> str | None:
    """A message when the champion alias points at a version other than the one `train` last gave it, else None."""
    mlflow = _mlflow(store)
    client = mlflow.MlflowClient()
    try:
        registered = client.get_registered_model(params.registered_model)
    except mlflow.exceptions.MlflowException:
        return None
    current = registered.aliases.get(CHAMPION) if registered.aliases else None
    by_train = (registered.tags or {}).get(TRAIN_SET_TAG)
    if current is None and by_train is None:
        return None
    if by_train is None:  # a store from before the tag: train tags every version it promotes
        tags = client.get_model_version(params.registered_model, str(current)).tags or {}
        if tags.get("promoted") == "true":
            return None
    if str(current) == str(by_train):
        return None
    if current is None:
        return (
            f"the `{CHAMPION}` alias of {params.registered_model!r} was removed outside `matchwijs train` "
            f"(train last gave it to version {by_train}): there is no default model until train promotes one"
        )
    last = f"version {by_train}" if by_train else "no version (train never promoted one)"
    return (
        f"the default model ({params.registered_model!r} alias `{CHAMPION}`) is version {current}, set outside "
        f"`matchwijs train` (train last gave it to {last}): that move skipped the champion comparison and the "
        "fairness gate"
    )


promote = promote_version


class _Undo:
    """What a failed command must take back from the registry."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.versions: list[str] = []
        self.models: list[str] = []

    def run(self, run_id: str) -> None:
        self.runs.append(run_id)

    def version(self, version: str) -> None:
        self.versions.append(version)

    def model(self, model: LoggedModel) -> None:
        self.models.append(model.model_id)


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
            for model_id in undo.models:
                client.delete_logged_model(model_id)
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
    start_time: float | None = None,
) -> tuple[str, str]:
    """One tracked run: params, metrics (non-finite values skipped), tags, artifact folders/files.

    `artifacts` maps an artifact path inside the run to a local file or folder.
    `start_time` (seconds since the epoch, e.g. when training began) makes the run's
    duration the real one; the run ends when this returns.
    Returns (run_id, artifact_uri).
    """
    mlflow = _mlflow(store)
    exp = experiment_id(store, params.experiment)
    client = mlflow.MlflowClient()
    run_tags = {"mlflow.runName": run_name}
    if parent_run_id is not None:
        run_tags["mlflow.parentRunId"] = parent_run_id
    created = client.create_run(
        exp,
        start_time=None if start_time is None else int(start_time * 1000),
        tags=run_tags,
        run_name=run_name,
    )
    with mlflow.start_run(run_id=created.info.run_id) as run:
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


def log_bundle_model(store: Path, run_id: str, bundle_dir: Path, example) -> LoggedModel:
    """Log a bundle folder as an MLflow pyfunc model in the run `run_id` (reopened, then ended again).

    The model is logged from code (models/pyfunc_model.py, no pickle); its artifact is the
    bundle folder unchanged. `example` is a small frame of pair features: the input
    example, and with the model's own output the signature.
    """
    _mlflow(store)
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    bundle = ModelBundle.load(bundle_dir)
    example = example[list(bundle.feature_names)].astype(float).reset_index(drop=True)
    signature = infer_signature(example, pd.DataFrame({OUTPUT_COLUMN: bundle.proba(example)}))
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(PYFUNC_CODE),
            artifacts={PYFUNC_BUNDLE: str(bundle_dir)},
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(),
        )
    return LoggedModel(model_uri=info.model_uri, model_id=info.model_id)


def _requirements() -> list[str]:
    """The packages a pyfunc model needs, pinned to what is installed (no slow inference of requirements).

    Serving it elsewhere also needs the matchwijs package itself (models/, features/) on the path.
    """
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("mlflow", "lightgbm", "pandas", "numpy", "scikit-learn", "pyarrow", "pydantic"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


def _bundle_model_class():
    """The pyfunc PythonModel around a bundle (built on first use: MLflow is imported only when needed)."""
    global _BUNDLE_MODEL_CLASS
    if _BUNDLE_MODEL_CLASS is not None:
        return _BUNDLE_MODEL_CLASS
    import mlflow.pyfunc

    class BundleModel(mlflow.pyfunc.PythonModel):
        """A matchwijs bundle as an MLflow model: pair features in, calibrated P(sustained) out."""

        bundle: ModelBundle

        def load_context(self, context) -> None:
            self.bundle = ModelBundle.load(context.artifacts[PYFUNC_BUNDLE])  # verifies the checksums

        def predict(self, context, model_input: pd.DataFrame, params=None):  # a frame: the signature has columns
            frame = pd.DataFrame(model_input)
            return pd.DataFrame({OUTPUT_COLUMN: self.bundle.proba(frame)}, index=frame.index)

    _BUNDLE_MODEL_CLASS = BundleModel
    return BundleModel


_BUNDLE_MODEL_CLASS = None


def set_bundle_model() -> None:
    """Called by models/pyfunc_model.py when MLflow loads the model from code."""
    import mlflow.models

    mlflow.models.set_model(_bundle_model_class()())


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
    """The bundle of a registered version: through pyfunc for a logged MLflow model, else the plain folder."""
    if getattr(version, "model_id", None) or str(version.source).startswith("models:/"):
        import mlflow.pyfunc

        try:
            with warnings.catch_warnings():  # MLflow's advice to add type hints to predict: the signature is logged
                warnings.simplefilter("ignore", UserWarning)
                loaded = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
        except mlflow.exceptions.MlflowException as exc:
            raise UserError(
                f"registered model {name!r} version {version.version} cannot be loaded as an MLflow model: "
                f"{str(exc)[:300]}"
            ) from None
        bundle = loaded.unwrap_python_model().bundle
    else:
        path = mlflow.artifacts.download_artifacts(artifact_uri=version.source)
        bundle = ModelBundle.load(path)
    bundle.metadata.setdefault("model_version", f"{name}/{version.version}")
    bundle.metadata.setdefault("mlflow_run_id", version.run_id)
    return bundle


def evaluated_bundle(store: Path, params: MlflowParams, version: str) -> ModelBundle | None:
    """The evaluated bundle logged beside registered `version` (artifact evaluated/bundle), or None for older runs."""
    mlflow = _mlflow(store)
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version(params.registered_model, version)
        if not mv.run_id:
            return None
        names = {Path(a.path).name for a in client.list_artifacts(mv.run_id, "evaluated")}
        if "bundle" not in names:
            return None
        path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=EVALUATED_ARTIFACT)
    except mlflow.exceptions.MlflowException as exc:
        raise UserError(f"the evaluated model of version {version} cannot be read: {str(exc)[:300]}") from None
    bundle = ModelBundle.load(path)
    bundle.metadata.setdefault("model_version", f"{params.registered_model}/{mv.version} (evaluated)")
    bundle.metadata.setdefault("mlflow_run_id", mv.run_id)
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


def resolve_for_held_out(model: str | None, *, params_path: str | Path | None = None) -> tuple[ModelBundle, str]:
    """The model to judge the held-out weeks with, and a note saying which one it is.

    The deployed model (the default) was refitted on every known outcome, the held-out weeks
    included: judged on them it would look better than it is. So when `model` resolves to a
    deployed refit, its evaluated model is used instead (the one train's gate judged): the
    `evaluated` folder beside a model folder, or the evaluated bundle logged in the version's run.
    """
    bundle = resolve_bundle(model, params_path=params_path)
    if bundle.metadata.get("role") != DEPLOYED:
        return bundle, ""
    if model and Path(model).exists():
        folder = Path(model) / EVALUATED
        if folder.is_dir():
            return ModelBundle.load(folder), f"judging the held-out weeks with the evaluated model in {folder}"
        return bundle, (
            f"{model} is a deployed refit that learned from the held-out weeks and has no evaluated model beside it: "
            "the held-out figures are optimistic"
        )
    params = mlflow_params(params_path)
    store = store_dir(params)
    if model is None:
        mv = champion_version(store, params)
        number = str(mv.version) if mv is not None else ""
    else:
        number = model.removeprefix(f"models:/{params.registered_model}/").strip()
    evaluated = evaluated_bundle(store, params, number) if number else None
    if evaluated is None:
        return bundle, "the deployed model learned from the held-out weeks and no evaluated model was found: optimistic"
    return (
        evaluated,
        f"judging the held-out weeks with the evaluated model of version {number} (the deployed one learned from them)",
    )


def _looks_like_version(model: str) -> bool:
    """`3` or `models:/NAME/3` (or anything in the models:/ scheme) rather than a path."""
    return model.strip().isdigit() or model.startswith("models:/")


def _metric_key(*parts: str) -> str:
    """An MLflow metric name: letters, digits and `_ - . /` only (`@` and friends become `_`)."""
    return ".".join(re.sub(r"[^A-Za-z0-9_\-/]", "_", str(p)) for p in parts if str(p))


def gate_metrics(table, passed: bool) -> dict[str, float]:
    """The fairness gate as run metrics: each check's gap (value), its pass (1/0), the result and checks failed."""
    out: dict[str, float] = {
        "fairness.gate_passed": float(bool(passed)),
        "fairness.checks": float(len(table)),
        "fairness.checks_failed": float((~table["passed"].astype(bool)).sum()) if len(table) else 0.0,
    }
    for row in table.to_dict("records"):
        key = _metric_key("fairness", row["check"], row["source"], row["metric"], row["attribute"])
        out[f"{key}.{row['statistic']}"] = float(row["value"])
        out[f"{key}.passed"] = float(bool(row["passed"]))
    return out


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


FAMILY_EXPERIMENT = "matchwijs-family"  # bench_family's runs, apart from the trained models' experiment
FAMILY_RUN = "family"


def family_metrics(table) -> dict[str, float]:
    """Every finite number of the family table as a metric named `<world>.<scorer>.<column>`."""
    metrics: dict[str, float] = {}
    for row in table.to_dict("records"):
        for column, value in row.items():
            if column in ("world", "scorer") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(float(value)):
                metrics[_metric_key(str(row["world"]), str(row["scorer"]), column)] = float(value)
    return metrics


def log_family(
    store: Path,
    params: MlflowParams,
    *,
    table,
    run_params: dict,
    artifacts: dict[str, Path],
    start_time: float | None = None,
) -> tuple[str, str]:
    """`pipelines/bench_family.py` as one run of experiment FAMILY_EXPERIMENT: its table as metrics and files.

    Returns (run_id, artifact_uri).
    """
    return log_run(
        store,
        dataclasses.replace(params, experiment=FAMILY_EXPERIMENT),
        run_name=FAMILY_RUN,
        run_params=run_params,
        metrics=family_metrics(table),
        tags={"matchwijs.command": "bench_family"},
        artifacts=artifacts,
        start_time=start_time,
    )
