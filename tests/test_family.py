"""The world family: truth knobs on hand-checked numbers, the generator with them, the family benchmark's seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from models.oracle import client_variance_share, within_group_spearman
from synthetic.truth import failure_terms, true_failure_logit, truth_input_columns
from tests.conftest import small_generate_params
from tests.test_synthetic import TOY_PAIR, _toy_coefs, _truth_inputs

PAIR = {**TOY_PAIR, "zrm_social_network": [1], "latent_severity": [1.5]}
# The toy pair of test_synthetic: intercept -2, client term 1.0, match terms summing to 4.2.
CLIENT, MATCH = 1.0, 1.0 + 0.5 + 0.8 + 0.5 + 0.4 - 0.5 + 0.3 + 1.2


def _with(**knobs):
    coefs = _toy_coefs()
    return dataclasses.replace(coefs, failure=dataclasses.replace(coefs.failure, **knobs))


def test_default_knobs_leave_the_formula_as_it_was():
    frame = pd.DataFrame(PAIR)
    assert set(failure_terms(frame, _toy_coefs())) == {
        "client_zrm_finances",
        "quiet_busy_complex",
        "quiet_nuisance",
        "support_distance",
        "concentration",
        "rent_burden_finances",
        "own_network_district",
        "addiction_vulnerable",
        "stairs_physical",
    }
    assert true_failure_logit(frame, _toy_coefs())[0] == pytest.approx(-2.0 + CLIENT + MATCH)
    assert "latent_severity" not in truth_input_columns(_toy_coefs())


def test_match_scale_scales_match_terms_only():
    frame = pd.DataFrame(PAIR)
    assert true_failure_logit(frame, _with(match_scale=0.5))[0] == pytest.approx(-2.0 + CLIENT + 0.5 * MATCH)


def test_hidden_interaction_and_latent_severity_on_a_hand_checked_pair():
    frame = pd.DataFrame(PAIR)
    # social network severity (5-1)/4 = 1; 100 units = the busy reference: size 1; term 2.0 * 1 * (1 - 0.5) = 1.0
    assert true_failure_logit(frame, _with(isolation_big_complex=2.0))[0] == pytest.approx(-2.0 + CLIENT + MATCH + 1.0)
    # the latent term (0.8 * 1.5) is a client term: match_scale does not touch it; the interaction is a match term
    both = _with(isolation_big_complex=2.0, latent_severity_sd=0.8, match_scale=0.5)
    assert true_failure_logit(frame, both)[0] == pytest.approx(-2.0 + CLIENT + 0.5 * (MATCH + 1.0) + 1.2)
    assert {"latent_severity", "zrm_social_network"} <= set(truth_input_columns(both))
    # a client in a 10-unit complex: size log(10)/log(100) = 0.5, so the interaction is 0
    small = frame.assign(units_in_complex=[10])
    assert true_failure_logit(small, _with(isolation_big_complex=2.0))[0] == pytest.approx(
        true_failure_logit(small, _toy_coefs())[0]
    )


def test_client_variance_share_and_within_client_spearman_on_literal_values():
    groups = pd.Series(["a", "a", "b", "b"])
    values = np.array([0.5, 1.5, 2.5, 3.5])
    # mean 2; total (1.5^2 + 0.5^2) * 2 = 5; group means 1 and 3: between 1^2 * 4 = 4
    assert client_variance_share(values, groups) == pytest.approx(0.8)
    g = pd.Series(["x"] * 3 + ["y"] * 3 + ["z"] * 2)
    a = np.array([1, 2, 3, 1, 2, 3, 1, 2])
    b = np.array([10, 20, 30, 30, 20, 10, 1, 2])
    assert within_group_spearman(a, b, g) == pytest.approx(0.0)  # +1 and -1; z is too small
    assert within_group_spearman(a, b, g, min_size=2) == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def latent_world(tmp_path_factory):
    from synthetic.generate import generate_dataset

    root = tmp_path_factory.mktemp("latent")
    base = small_generate_params(years=2, truth_weeks=4)
    knobs = dataclasses.replace(base.truth.failure, latent_severity_sd=1.0, isolation_big_complex=2.0)
    cfg = dataclasses.replace(base, truth=dataclasses.replace(base.truth, failure=knobs))
    generate_dataset(root / "plain", base)
    generate_dataset(root / "data", cfg, truth_dir=root / "truth")
    return root


def test_latent_severity_stays_out_of_the_data_and_drives_the_truth(latent_world):
    from features.load import load_dataset
    from synthetic.generate import TRUTH_LATENT_FILE, TRUTH_PAIRS_FILE, load_truth_coefs
    from synthetic.truth import true_p_sustained

    root = latent_world
    # the clients (drawn before any outcome) are the same as in the world without the knobs
    assert (root / "data" / "clients.csv").read_bytes() == (root / "plain" / "clients.csv").read_bytes()
    assert not any("latent" in (root / "data" / f).read_text() for f in ("clients.csv", "candidates.csv"))
    latent = pd.read_parquet(root / "truth" / TRUTH_LATENT_FILE)
    assert latent["latent_severity"].std() == pytest.approx(1.0, abs=0.15)
    ds, coefs = load_dataset(root / "data"), load_truth_coefs(root / "truth")
    pairs = pd.read_parquet(root / "truth" / TRUTH_PAIRS_FILE).head(3000)
    inputs = _truth_inputs(ds, pairs, coefs).merge(latent, on="client_id", how="left")
    np.testing.assert_allclose(true_p_sustained(inputs, coefs), pairs["p_sustained"], rtol=1e-12)
    without = dataclasses.replace(coefs, failure=dataclasses.replace(coefs.failure, latent_severity_sd=0.0))
    assert np.abs(true_p_sustained(inputs, without) - pairs["p_sustained"]).max() > 0.05


def test_family_world_params_turn_only_their_knobs():
    from features.config import load_params, section
    from synthetic.family import FAMILY_WEEKLY_VACANCIES, WORLDS, world_params
    from synthetic.generate import GenerateParams

    cfg = section(load_params(), "generate", GenerateParams)
    assert len(WORLDS) >= 6
    w = world_params(cfg, "weak_match_latent", seed=3)
    assert (w.seed, w.weekly_vacancies, w.truth.failure.match_scale, w.truth.failure.latent_severity_sd) == (
        3,
        pytest.approx(FAMILY_WEEKLY_VACANCIES),
        0.5,
        1.2,
    )
    assert w.truth.failure.client == cfg.truth.failure.client and w.clients == cfg.clients
    assert world_params(cfg, "small").weekly_vacancies == pytest.approx(0.6 * FAMILY_WEEKLY_VACANCIES)


def test_family_table_is_reproducible_from_a_seed(tmp_path, monkeypatch):
    import synthetic.family as family
    from features.config import load_params
    from pipelines.bench_family import SCORERS, family_table, markdown

    # a tiny family world (3.5 years, 6 homes a week, 8 held-out weeks) so the test runs in seconds
    monkeypatch.setattr(family, "FAMILY_YEARS", 3.5)
    monkeypatch.setattr(family, "FAMILY_WEEKLY_VACANCIES", 6.0)
    monkeypatch.setattr(family, "HELD_OUT_WEEKS", 8)
    params = load_params()
    first = family_table(seed=3, worlds=["weak_match_latent"], params=params, work=tmp_path / "a", say=lambda m: None)
    again = family_table(seed=3, worlds=["weak_match_latent"], params=params, work=tmp_path / "b", say=lambda m: None)
    pd.testing.assert_frame_equal(first, again)
    assert list(first["scorer"]) == list(SCORERS)
    assert first[["ndcg_at_5", "top1_gain", "plan_gain", "ece"]].notna().all().all()
    assert first["ndcg_at_5"].between(0, 1).all() and (first["ece"] >= 0).all()
    parts = first[["ndcg_at_5_sustained", "ndcg_at_5_among_sustained"]]
    assert parts.notna().all().all() and ((parts >= 0) & (parts <= 1)).all().all()
    assert np.isfinite(first.set_index("scorer").loc["project", "top1_gain_sheet"])  # the sheet's #1, judged too
    assert first["plan_gain"].nunique() == 3  # three different scorers, three different plans
    assert "| weak_match_latent |" in markdown(first)
    # the capacity the calibration weeks chose (params train.prior_choice, nuisance_alpha_choice) is in the table too
    project = first.set_index("scorer").loc["project"]
    offered = {(c["prior_C"], c["num_boost_round"]) for c in params["train"]["prior_choice"]}
    assert (float(project["prior"].split("C=")[1]), int(project["lgbm"].split(" x ")[1].split()[0])) in offered
    assert project["nuisance_alpha"] in params["train"]["nuisance_alpha_choice"]

    # the table as an MLflow artifact (#13 item 1): the CSV and its markdown in a run of `matchwijs-family`
    import mlflow

    from models import tracking
    from pipelines.bench_family import log_table

    monkeypatch.setenv(tracking.ENV_STORE, str(tmp_path / "store"))
    csv, md = tmp_path / "family.csv", tmp_path / "family.md"
    first.to_csv(csv, index=False)
    md.write_text(markdown(first), encoding="utf-8")
    run_id = log_table(first, params, files=[csv, md], what={"seed": 3})
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == tracking.FAMILY_EXPERIMENT
    assert sorted(a.path for a in client.list_artifacts(run_id, "bench")) == ["bench/family.csv", "bench/family.md"]
    plan = first.set_index("scorer").loc["project", "plan_gain"]
    assert run.data.metrics["weak_match_latent.project.plan_gain"] == pytest.approx(plan)
    assert run.data.params["seed"] == "3"


def test_learned_prior_matches_its_regression_and_keeps_self_reliance_monotone():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from models.ranker import fit_learned_prior

    rng = np.random.default_rng(0)
    n = 400
    rows = pd.DataFrame(
        {
            "zrm_finances": rng.integers(1, 6, n).astype(float),
            "stairs_x_physical": rng.random(n),
            "rent_to_income": rng.random(n),
        }
    )
    # finances helps, stairs hurts, rent_to_income is noise
    logit = 0.8 * (rows["zrm_finances"] - 3) - 2.0 * rows["stairs_x_physical"] + 1.5
    rows["sustained"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    prior = fit_learned_prior(rows, ("zrm_finances", "stairs_x_physical", "rent_to_income"), C=1.0, seed=0)
    X = rows[["zrm_finances", "stairs_x_physical", "rent_to_income"]].to_numpy(float)
    scaler = StandardScaler().fit(X)
    lr = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(X), rows["sustained"])
    np.testing.assert_allclose(prior.score(rows), lr.decision_function(scaler.transform(X)), rtol=1e-9, atol=1e-9)
    assert prior.coef["zrm_finances"] > 0 > prior.coef["stairs_x_physical"]
    # a self-reliance feature that goes the wrong way in these rows is left out of the prior, not kept negative
    rows["zrm_addiction"] = 6 - rows["zrm_finances"]
    flipped = fit_learned_prior(rows, ("zrm_finances", "zrm_addiction", "stairs_x_physical"), C=1.0, seed=0)
    assert all(flipped.coef.get(f, 0) >= 0 for f in ("zrm_finances", "zrm_addiction"))
    assert "zrm_addiction" not in flipped.coef and flipped.coef["stairs_x_physical"] < 0


def test_rule_logistic_prior_folds_the_rule_back_onto_its_features():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from models.ranker import fit_learned_prior

    rng = np.random.default_rng(1)
    n = 300
    rows = pd.DataFrame({"zrm_finances": rng.integers(1, 6, n).astype(float), "stairs_x_physical": rng.random(n)})
    logit = 0.5 * (rows["zrm_finances"] - 3) - 1.5 * rows["stairs_x_physical"] + 1.5
    rows["sustained"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    rule = {"stairs_x_physical": -1.0}
    prior = fit_learned_prior(rows, ("zrm_finances",), C=0.5, seed=0, rule=rule)
    X = np.column_stack([rows["zrm_finances"], -1.0 * rows["stairs_x_physical"]])
    scaler = StandardScaler().fit(X)
    lr = LogisticRegression(C=0.5, max_iter=5000).fit(scaler.transform(X), rows["sustained"])
    np.testing.assert_allclose(prior.score(rows), lr.decision_function(scaler.transform(X)), rtol=1e-9, atol=1e-9)
    assert set(prior.coef) == {"zrm_finances", "stairs_x_physical"} and "_rule" not in prior.mean
    # exact SHAP of the folded prior still sums to its score
    contrib = prior.contributions(rows).sum(axis=1).to_numpy() + prior.base_value()
    np.testing.assert_allclose(contrib, prior.score(rows), rtol=1e-9, atol=1e-9)


def test_truth_form_scorer_learns_on_the_truths_own_observable_terms(latent_world):
    """bench_family --ceiling: one input per observable truth term (never the latent severity), weights learned."""
    from features.load import load_dataset
    from models.experiment import placement_rows
    from pipelines.bench_family import TruthFormScorer
    from synthetic.generate import load_truth_coefs
    from tests.helpers import FEATURE_PARAMS, LABEL_PARAMS, RULES

    root = latent_world
    ds, coefs = load_dataset(root / "data"), load_truth_coefs(root / "truth")
    rows = placement_rows(ds, features=FEATURE_PARAMS, labels=LABEL_PARAMS, rules=RULES)
    form = TruthFormScorer.fit(ds, root / "truth", rows, seed=0)
    X = form.terms(rows)
    # the world has a latent severity and the hidden interaction: the interaction is an input, the latent is not
    assert coefs.failure.latent_severity_sd > 0
    no_latent = dataclasses.replace(coefs, failure=dataclasses.replace(coefs.failure, latent_severity_sd=0.0))
    inputs = _truth_inputs(ds, rows[["meeting_date", "dwelling_id", "client_id"]].reset_index(drop=True), coefs)
    observable = list(failure_terms(inputs, no_latent))
    assert "isolation_big_complex" in observable and "latent_severity" not in observable
    assert X.shape == (len(rows), len(observable))
    # the inputs are the truth's own terms: with weight 1 each and the truth's intercept they give its failure
    # logit without the latent severity, pair by pair
    np.testing.assert_allclose(
        coefs.failure.intercept + X.sum(axis=1), true_failure_logit(inputs, no_latent), rtol=1e-12, atol=1e-12
    )
    # a chance of a sustained tenancy: the logistic of its score, learned from the placements' outcomes
    score, proba = form.score(rows), form.proba(rows)
    np.testing.assert_allclose(proba, 1 / (1 + np.exp(-score)), rtol=1e-9)
    assert form.model.coef_.shape == (1, len(observable))
    refit = TruthFormScorer.fit(ds, root / "truth", rows, seed=0)
    np.testing.assert_array_equal(refit.score(rows), score)
    # learned from outcomes: more of the truth's failure logit goes with a lower score on average
    assert np.corrcoef(score, true_failure_logit(inputs, no_latent))[0, 1] < 0


def test_ndcg_parts_by_hand():
    """NDCG@5's two parts on one meeting: ranked grades 0, 3, 1 (failed first, then clean, then serious nuisance)."""
    from pipelines.bench_family import ndcg_parts

    test = pd.DataFrame(
        {
            "meeting_date": pd.to_datetime(["2024-01-01"] * 3),
            "score": [3.0, 2.0, 1.0],
            "grade": [0, 3, 1],
            "sustained": [0, 1, 1],
        }
    )
    parts = ndcg_parts(test, "score", (0, 1, 3, 7))
    # who sustains: gains 0, 1, 1 in that order; ideal 1, 1, 0
    assert parts["ndcg_at_5_sustained"] == pytest.approx((1 / np.log2(3) + 1 / 2) / (1 + 1 / np.log2(3)))
    assert parts["ndcg_at_5_among_sustained"] == pytest.approx(1.0)  # clean before serious nuisance: ideal
