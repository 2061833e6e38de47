"""Hardening beyond single bad inputs: concurrent registrations, byte-identical models, typed params, the guard."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from pathlib import Path

import pytest

from fairness.guard import ProtectedAttributeError, assert_no_protected
from features.config import ConfigError, build, load_params, section
from models.ranker import LgbmParams, TrainParams
from reports.reasons import ExplainParams
from tests.helpers import PARAMS


def _register_once(store: str, name: str, barrier) -> None:
    from models import tracking

    mp = tracking.mlflow_params()
    barrier.wait()  # both processes touch the fresh store at the same moment
    run_id, uri = tracking.log_run(Path(store), mp, run_name=name, run_params={}, metrics={}, tags={}, artifacts={})
    tracking.register(Path(store), mp, run_id, uri, promote=True, description=name)


def test_two_processes_registering_at_once_leave_a_consistent_registry(tmp_path):
    from models import tracking

    store = tmp_path / "store"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_register_once, args=(str(store), f"p{i}", barrier)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    mp = tracking.mlflow_params()
    client = tracking._mlflow(store).MlflowClient()
    versions = client.search_model_versions(f"name = '{mp.registered_model}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert len({v.run_id for v in versions}) == 2
    champion = tracking.champion_version(store, mp)
    assert champion is not None and champion.version in {v.version for v in versions}
    assert len(client.search_experiments()) == 2  # Default and ours: created once


def test_the_same_seed_gives_byte_identical_model_files(small_synthetic, tmp_path):
    from features.labels import LabelParams
    from features.load import load_dataset
    from features.pairs import FeatureParams
    from features.rules import PassendToewijzen
    from models.experiment import placement_rows
    from models.ranker import temporal_split, train_bundle

    ds = load_dataset(small_synthetic[0])
    rows = placement_rows(
        ds,
        features=section(PARAMS, "features", FeatureParams),
        labels=section(PARAMS, "labels", LabelParams),
        rules=section(PARAMS, "passend_toewijzen", PassendToewijzen),
    )
    tp = section(PARAMS, "train", TrainParams)
    tp = dataclasses.replace(
        tp, test_weeks=26, calibration_weeks=12, lgbm=dataclasses.replace(tp.lgbm, num_boost_round=30)
    )
    folders = []
    for i in range(2):
        bundle = train_bundle(rows, temporal_split(rows, tp), tp, metadata={"seed": tp.seed})
        folders.append(bundle.save(tmp_path / f"m{i}"))
    names = sorted(p.name for p in folders[0].iterdir())
    assert names == ["booster.txt", "bundle.json", "checksums.json", "support.parquet"]
    for name in names:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name


def test_a_model_folder_saved_and_loaded_is_verified(small_synthetic, tmp_path):
    import numpy as np
    import pandas as pd

    from features.pairs import FEATURE_NAMES
    from models.bundle import ModelBundle
    from synthetic.stand_in import stand_in_bundle

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    folder = stand_in_bundle(X, n_trees=3, num_leaves=4, min_data_in_leaf=5).save(tmp_path / "m")
    loaded = ModelBundle.load(folder)
    assert loaded.feature_names == tuple(FEATURE_NAMES)
    text = (folder / "booster.txt").read_text()
    (folder / "booster.txt").write_text(text.replace("num_leaves=", "num_leaves= ", 1))
    with pytest.raises(Exception, match=r"booster.txt does not match its checksum"):
        ModelBundle.load(folder)


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (
            ExplainParams,
            {"top_reasons": "three"},
            "params: explain.top_reasons must be a whole number ≥ 1, got 'three'",
        ),
        (ExplainParams, {"top_reasons": 2.5}, "params: explain.top_reasons must be a whole number ≥ 1, got 2.5"),
        (ExplainParams, {"min_abs_contribution": "small"}, "params: explain.min_abs_contribution must be a number"),
        (ExplainParams, {"special_category": [1]}, "params: explain.special_category[0] must be text, got 1"),
        (ExplainParams, {"top_reason": 3}, "params: explain: unknown top_reason"),
    ],
)
def test_params_errors_are_named(cls, values, message):
    with pytest.raises(ConfigError) as err:
        build(cls, values, "explain")
    assert str(err.value).startswith(message)


def test_valid_params_keep_their_types():
    tp = section(PARAMS, "train", TrainParams)
    assert isinstance(tp.lgbm, LgbmParams) and isinstance(tp.label_gain, tuple)
    assert all(isinstance(g, float) for g in tp.label_gain)
    explain = build(ExplainParams, {"top_reasons": 2}, "explain")
    assert explain.top_reasons == 2 and explain.special_category == ExplainParams().special_category


def test_every_section_of_the_projects_params_loads():
    from tests.helpers import FEATURE_PARAMS, LABEL_PARAMS, RULES

    assert FEATURE_PARAMS and LABEL_PARAMS and RULES
    assert load_params()["generate"]["as_of"] == "2025-12-31"  # dates stay text


def test_guard_ignores_paths_but_not_names():
    assert_no_protected({"data.path": "/home/x/migration_2025/data", "train.seed": 1})
    with pytest.raises(ProtectedAttributeError, match="migration"):
        assert_no_protected({"features.migration": 1})
    with pytest.raises(ProtectedAttributeError, match="gender"):
        assert_no_protected({"train.prior_weights": {"gender_x_income": 1.0}})


def test_train_accepts_a_dataset_in_a_folder_named_after_a_protected_word(small_synthetic, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from pipelines.cli import app
    from tests.conftest import params_file

    data = tmp_path / "migration_2025"
    os.symlink(small_synthetic[0], data)  # the folder's name is what matters
    monkeypatch.setenv("MATCHWIJS_MLFLOW_DIR", str(tmp_path / "store"))
    params = params_file(
        tmp_path,
        train={
            "test_weeks": 26,
            "calibration_weeks": 12,
            "bootstrap_resamples": 0,
            "refit_on_calibration_weeks": False,
        },
    )
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--params", str(params)])
    assert result.exit_code == 0, result.output[-3000:]
    assert "protected attribute" not in result.output


def test_a_train_that_fails_at_the_end_leaves_registry_and_outputs_as_they_were(small_synthetic, tmp_path, monkeypatch):
    """A failure after the MLflow run and version exist (here: swapping the outputs in) takes them back."""
    from typer.testing import CliRunner

    from features import outputs
    from models import tracking
    from pipelines.cli import app
    from tests.conftest import params_file

    monkeypatch.setenv("MATCHWIJS_MLFLOW_DIR", str(tmp_path / "store"))
    params = params_file(
        tmp_path,
        train={"test_weeks": 26, "calibration_weeks": 12, "bootstrap_resamples": 0},
        fairness={
            "gate": {
                **PARAMS["fairness"]["gate"],
                "max_difference": {},
                "max_ratio_drop": {},
                "max_replay_ratio_drop": {},
                "max_replay_wait_widening": {},
            }
        },
    )
    bundle_out = tmp_path / "model"
    bundle_out.mkdir()
    (bundle_out / "old.txt").write_text("the previous model")
    (tmp_path / "m.json").write_text("old metrics")

    def failing_commit(self):
        raise OSError(28, "No space left on device", str(bundle_out))

    monkeypatch.setattr(outputs.Staging, "commit", failing_commit)
    args = ["train", "--data", str(small_synthetic[0]), "--params", str(params)]
    args += ["--bundle-out", str(bundle_out), "--metrics-out", str(tmp_path / "m.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "No space left on device" in result.output, result.output[-2000:]
    assert "Traceback" not in result.output
    mp = tracking.mlflow_params(params)
    client = tracking._mlflow(tmp_path / "store").MlflowClient()
    assert client.search_model_versions(f"name = '{mp.registered_model}'") == []
    assert tracking.champion_version(tmp_path / "store", mp) is None
    live = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert live == []  # the run was deleted
    assert [p.name for p in bundle_out.iterdir()] == ["old.txt"] and (tmp_path / "m.json").read_text() == "old metrics"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_two_train_runs_at_once_leave_a_consistent_registry(small_synthetic, tmp_path, monkeypatch):
    """Two whole `matchwijs train` processes against one fresh MLflow store at the same time."""
    import json
    import subprocess
    import sys

    from models import tracking
    from tests.conftest import params_file

    store = tmp_path / "store"
    open_gate = {
        **PARAMS["fairness"]["gate"],
        "max_difference": {},
        "max_ratio_drop": {},
        "max_replay_ratio_drop": {},
        "max_replay_wait_widening": {},
        "fail_when_unjudgeable": False,
    }
    params = params_file(
        tmp_path,
        train={"test_weeks": 26, "calibration_weeks": 12, "bootstrap_resamples": 0},
        fairness={"gate": open_gate},
    )
    env = {**os.environ, tracking.ENV_STORE: str(store)}
    cmd = [sys.executable, "-c", "from pipelines.cli import main; main()", "train"]
    cmd += ["--data", str(small_synthetic[0]), "--params", str(params)]
    procs = [
        subprocess.Popen(
            [*cmd, "--metrics-out", str(tmp_path / f"m{i}.json"), "--bundle-out", str(tmp_path / f"model{i}")],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=1200) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    mp = tracking.mlflow_params(params)
    client = tracking._mlflow(store).MlflowClient()
    versions = client.search_model_versions(f"name = '{mp.registered_model}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert len({v.run_id for v in versions}) == 2
    reported = sorted(json.loads((tmp_path / f"m{i}.json").read_text())["model_version"] for i in range(2))
    assert reported == ["1", "2"]  # each run reports the version it registered
    champion = tracking.champion_version(store, mp)
    assert champion is not None and str(champion.version) in {"1", "2"}
    monkeypatch.setenv(tracking.ENV_STORE, str(store))
    assert tracking.resolve_bundle(None, params_path=params).metadata["model_version"].endswith(f"/{champion.version}")


def test_a_failure_moving_the_default_leaves_outputs_and_registry_as_they_were(small_synthetic, tmp_path, monkeypatch):
    """The champion alias moves before the outputs are swapped in: if moving it fails, nothing changed."""
    from typer.testing import CliRunner

    from models import tracking
    from pipelines.cli import app
    from tests.conftest import params_file

    monkeypatch.setenv("MATCHWIJS_MLFLOW_DIR", str(tmp_path / "store"))
    open_gate = {
        **PARAMS["fairness"]["gate"],
        "max_difference": {},
        "max_ratio_drop": {},
        "max_replay_ratio_drop": {},
        "max_replay_wait_widening": {},
    }
    params = params_file(
        tmp_path,
        train={"test_weeks": 26, "calibration_weeks": 12, "bootstrap_resamples": 0},
        fairness={"gate": {**open_gate, "fail_when_unjudgeable": False}},
    )
    bundle_out = tmp_path / "model"
    bundle_out.mkdir()
    (bundle_out / "old.txt").write_text("the previous model")

    def failing_promote(store, mp, version):
        raise OSError(5, "Input/output error", str(store))

    monkeypatch.setattr(tracking, "promote", failing_promote)
    args = ["train", "--data", str(small_synthetic[0]), "--params", str(params), "--bundle-out", str(bundle_out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "Input/output error" in result.output, result.output[-2000:]
    mp = tracking.mlflow_params(params)
    client = tracking._mlflow(tmp_path / "store").MlflowClient()
    assert client.search_model_versions(f"name = '{mp.registered_model}'") == []
    assert tracking.champion_version(tmp_path / "store", mp) is None
    assert [p.name for p in bundle_out.iterdir()] == ["old.txt"]
