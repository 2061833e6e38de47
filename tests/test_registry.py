"""The registry: a real MLflow pyfunc model, evaluated and deployed kept apart, analysts' view, hand moves noticed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from tests.conftest import params_file
from tests.helpers import PARAMS

# Every difference check is computed (and logged) but cannot fail: this file is about the registry.
OPEN_GATE = {
    **PARAMS["fairness"]["gate"],
    "max_difference": dict.fromkeys(PARAMS["fairness"]["gate"]["max_difference"], 1.0),
    "max_ratio_drop": {},
    "max_replay_ratio_drop": {},
    "max_replay_wait_widening": {},
    "fail_when_unjudgeable": False,
}


def test_gate_metrics_by_hand():
    from models.tracking import gate_metrics

    table = pd.DataFrame(
        {
            "check": ["max_difference", "max_difference"],
            "source": ["model", "model"],
            "metric": ["mean_probability", "calibration_error"],
            "attribute": ["gender", "gender_x_migration_background"],
            "statistic": ["difference", "difference"],
            "value": [0.05, 0.12],
            "passed": [True, False],
        }
    )
    m = gate_metrics(table, passed=False)
    assert m["fairness.gate_passed"] == 0.0 and m["fairness.checks"] == 2 and m["fairness.checks_failed"] == 1
    assert m["fairness.max_difference.model.mean_probability.gender.difference"] == 0.05
    assert m["fairness.max_difference.model.calibration_error.gender_x_migration_background.passed"] == 0.0
    assert all("@" not in k for k in m)


@pytest.fixture(scope="module")
def trained(small_synthetic, tmp_path_factory):
    """One `train` into a fresh store, with the outputs it wrote."""
    import os

    root = tmp_path_factory.mktemp("registry")
    store = root / "store"
    params = params_file(
        root,
        train={"test_weeks": 26, "calibration_weeks": 12, "bootstrap_resamples": 0},
        fairness={"gate": OPEN_GATE},
    )
    old = os.environ.get("MATCHWIJS_MLFLOW_DIR")
    os.environ["MATCHWIJS_MLFLOW_DIR"] = str(store)
    try:
        args = ["train", "--data", str(small_synthetic[0]), "--params", str(params)]
        args += ["--bundle-out", str(root / "model"), "--metrics-out", str(root / "m.json")]
        result = CliRunner().invoke(app, args)
    finally:
        if old is None:
            os.environ.pop("MATCHWIJS_MLFLOW_DIR")
        else:
            os.environ["MATCHWIJS_MLFLOW_DIR"] = old
    assert result.exit_code == 0, result.output[-3000:]
    return root, store, params, result.output


def test_registered_version_is_a_pyfunc_model_of_the_deployed_bundle(trained, monkeypatch):
    from models import tracking
    from models.bundle import ModelBundle

    root, store, params, output = trained
    monkeypatch.setenv(tracking.ENV_STORE, str(store))
    mp = tracking.mlflow_params(params)
    tracking._mlflow(store)
    import mlflow.pyfunc

    deployed = ModelBundle.load(root / "model")
    evaluated = ModelBundle.load(root / "model" / "evaluated")
    assert deployed.metadata["role"] == "deployed" and evaluated.metadata["role"] == "evaluated"
    assert deployed.metadata["metrics"] == evaluated.metadata["metrics"]  # the evaluated model's, on both
    assert deployed.metadata["deployed_last_meeting"] > evaluated.metadata["train_end"]
    summary = json.loads((root / "m.json").read_text())
    assert summary["deployed_n_placements"] > summary["evaluated_n_placements"]
    assert "deployed model (matchwijs-ranker version 1)" in output

    model = mlflow.pyfunc.load_model(f"models:/{mp.registered_model}/1")
    example = pd.DataFrame(
        np.random.default_rng(0).normal(size=(7, len(deployed.feature_names))), columns=list(deployed.feature_names)
    )
    got = model.predict(example)
    np.testing.assert_allclose(got["p_sustained"].to_numpy(), deployed.proba(example))
    inputs = model.metadata.get_input_schema().input_names()
    assert inputs == list(deployed.feature_names)
    assert model.metadata.get_output_schema().input_names() == ["p_sustained"]

    # recommend / the app: the default model is the deployed bundle, unwrapped from the MLflow model
    monkeypatch.chdir(root)
    champion = tracking.resolve_bundle(None, params_path=params)
    assert champion.booster.model_to_string() == deployed.booster.model_to_string()
    assert champion.metadata["model_version"] == f"{mp.registered_model}/1"
    # the registry keeps the evaluated one beside it, and its metrics in the run
    kept = tracking.evaluated_bundle(store, mp, "1")
    assert kept is not None and kept.booster.model_to_string() == evaluated.booster.model_to_string()


def test_registry_entries_for_analysts(trained):
    from models import tracking

    root, store, params, _ = trained
    mp = tracking.mlflow_params(params)
    client = tracking._mlflow(store).MlflowClient()
    exp = client.get_experiment_by_name(mp.experiment)
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.MODEL_TRAINING
    version = client.get_model_version(mp.registered_model, "1")
    assert version.tags["role"] == "deployed" and "deployed_outcomes_known_to" in version.tags
    assert "Deployed model" in version.description and "p_sustained" in version.description
    registered = client.get_registered_model(mp.registered_model)
    assert "bypasses" in registered.description and registered.tags[tracking.TRAIN_SET_TAG] == "1"
    run = client.get_run(version.run_id)
    assert run.info.end_time - run.info.start_time > 2000  # the run lasts as long as training did (ms)
    assert run.data.metrics["fairness.gate_passed"] in (0.0, 1.0) and "fairness.checks_failed" in run.data.metrics
    assert any(k.startswith("fairness.max_difference.model.") for k in run.data.metrics)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "evaluated")} == {"evaluated/bundle"}


def test_train_reports_a_default_moved_outside_train(trained, tmp_path, monkeypatch, small_synthetic):
    import shutil

    from models import tracking

    root, store, params, _ = trained
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    monkeypatch.setenv(tracking.ENV_STORE, str(copy))
    mp = tracking.mlflow_params(params)
    client = tracking._mlflow(copy).MlflowClient()
    assert tracking.champion_set_elsewhere(copy, mp) is None
    client.delete_registered_model_alias(mp.registered_model, tracking.CHAMPION)  # by hand, as in the UI
    assert "removed outside `matchwijs train`" in tracking.champion_set_elsewhere(copy, mp)
    result = CliRunner().invoke(app, ["train", "--data", str(small_synthetic[0]), "--params", str(params)])
    assert result.exit_code == 0, result.output[-3000:]
    assert "warning: the `champion` alias" in result.output
    run = client.get_run(client.get_model_version(mp.registered_model, "2").run_id)
    assert "removed outside" in run.data.tags["champion_moved_outside_train"]
    assert tracking.champion_set_elsewhere(copy, mp) is None  # train promoted version 2 itself


def test_model_card_states_both_data_ranges_the_age_and_what_the_gate_judged(trained, small_synthetic):
    from models.bundle import ModelBundle

    root, _, params, _ = trained
    out = root / "audit"
    args = ["audit", "--data", str(small_synthetic[0]), "--model", str(root / "model" / "evaluated")]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--params", str(params)])
    assert result.exit_code in (0, 3), result.output[-3000:]
    card = (out / "model_card.md").read_text(encoding="utf-8")
    md = ModelBundle.load(root / "model").metadata
    assert "This card describes the **evaluated** model" in card
    assert "the fairness gate in `train` judged the evaluated model" in card
    for role in ("evaluated", "deployed"):
        row = f"{md[f'{role}_first_meeting']} to {md[f'{role}_last_meeting']} | {md[f'{role}_outcomes_known_to']} |"
        assert row in card
    # the evaluated model knew what was known at its test start; the data's latest date is as_of
    age = (pd.Timestamp(md["as_of"]) - pd.Timestamp(md["test_start"])).days
    assert f"learned from what was known on {md['test_start']}, **{age} days** before" in card
