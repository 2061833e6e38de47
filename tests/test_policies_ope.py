"""`matchwijs policies` with off-policy estimates and its MLflow run, on the small generated data."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import dataset_fingerprint, load_dataset
from models.oracle import read_truth
from pipelines.cli import app
from pipelines.recommend import load_config
from synthetic.stand_in import history_bundle
from tests.conftest import params_file

HELD_OUT_WEEKS = 4


@pytest.fixture(scope="module")
def policies_run(small_synthetic, tmp_path_factory):
    """A stand-in model holding out the last truth meetings, and one `policies` run logged to a temp store."""
    data, truth = small_synthetic
    root = tmp_path_factory.mktemp("policies")
    ds = load_dataset(data)
    bundle = history_bundle(ds, load_config(), n_trees=30, num_leaves=7)
    dates = sorted(read_truth(truth)["meeting_date"].unique())[-HELD_OUT_WEEKS:]
    bundle.metadata.update(test_start=f"{dates[0]:%Y-%m-%d}", test_end=f"{dates[-1]:%Y-%m-%d}")
    model = bundle.save(root / "model")
    params = params_file(root, ope={"fit_weeks": 8, "resamples": 200})
    store = root / "store"
    args = ["policies", "--data", str(data), "--truth", str(truth), "--model", str(model), "--params", str(params)]
    result = CliRunner().invoke(app, [*args, "--out", str(root / "out")], env={"MATCHWIJS_MLFLOW_DIR": str(store)})
    return result, root, data, store, args


def test_policies_table_has_the_dr_estimates(policies_run):
    result, root, _, _, _ = policies_run
    assert result.exit_code == 0, result.output
    table = pd.read_csv(root / "out" / "policies.csv").set_index("policy")
    policies = ["exact_longest_waiting", "pool_k", "everyone"]
    for name in policies:
        row = table.loc[name]
        assert row["ope_dr_low"] <= row["ope_dr_total"] <= row["ope_dr_high"]
        assert row["ope_homes"] > 0 and row["ope_placements"] > 0
        assert 0 < row["ope_truth_total"] <= row["ope_placements"]  # true chances summed over planned pairs
    # the meeting's own history: the observed number of sustained tenancies, no estimate
    history = table.loc["meeting_history"]
    assert history["ope_dr_total"] <= history["ope_placements"] and pd.isna(history["ope_dr_low"])


def test_policies_logs_one_mlflow_run_with_its_files(policies_run):
    result, root, data, store, _ = policies_run
    assert result.exit_code == 0, result.output
    import mlflow

    from models.tracking import tracking_uri

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(store))
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["matchwijs.command"] == "policies"
    assert run.data.params["data_fingerprint"] == dataset_fingerprint(data)
    assert run.data.params["policies"] == "exact_longest_waiting,pool_k,everyone"
    table = pd.read_csv(root / "out" / "policies.csv").set_index("policy")
    assert run.data.metrics["exact_longest_waiting/ope_dr_total"] == pytest.approx(
        table.at["exact_longest_waiting", "ope_dr_total"]
    )
    assert run.data.metrics["everyone/placements"] == table.at["everyone", "placements"]
    files = sorted(f.path for f in client.list_artifacts(run.info.run_id, "policies"))
    assert files == ["policies/policies.csv", "policies/policies.png", "policies/policies_by_group.csv"]


def test_bad_input_logs_nothing(policies_run, tmp_path):
    _, root, _, _, args = policies_run
    store = tmp_path / "store"
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    result = CliRunner().invoke(app, [*args, "--out", str(not_a_folder)], env={"MATCHWIJS_MLFLOW_DIR": str(store)})
    assert result.exit_code == 1 and "is not a folder" in result.output
    assert not store.exists()  # no run, not even a store


def test_no_mlflow_and_no_ope(policies_run, tmp_path):
    _, _, _, _, args = policies_run
    store = tmp_path / "store"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, [*args, "--out", str(out), "--no-mlflow", "--no-ope"], env={"MATCHWIJS_MLFLOW_DIR": str(store)}
    )
    assert result.exit_code == 0, result.output
    assert not store.exists()
    assert not [c for c in pd.read_csv(out / "policies.csv").columns if c.startswith("ope_")]
