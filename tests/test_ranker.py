"""The ranker: query groups, deterministic training, NDCG by hand, the training pipeline and promotion."""

from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import section
from features.load import dataset_fingerprint
from models.evaluate import ndcg_at_k
from models.experiment import placement_rows
from models.ranker import TrainParams, query_groups, temporal_split, train_bundle
from pipelines.cli import app
from tests.conftest import params_file
from tests.helpers import FEATURE_PARAMS, LABEL_PARAMS, PARAMS, RULES

SHORT_SPLIT = {"test_weeks": 16, "calibration_weeks": 12}


def test_query_groups_are_sizes_of_consecutive_meetings():
    dates = pd.to_datetime(pd.Series(["2024-01-01"] * 3 + ["2024-01-08"] * 1 + ["2024-01-15"] * 2))
    assert query_groups(dates).tolist() == [3, 1, 2]
    with pytest.raises(ValueError):
        query_groups(dates.iloc[::-1].reset_index(drop=True))


def test_ndcg_by_hand():
    gain = (0, 1, 3, 7)
    # ranked by score: grades 0, 3, 1 -> DCG = 0 + 7/log2(3) + 1/2; ideal 7 + 1/log2(3) + 0
    expected = (7 / np.log2(3) + 0.5) / (7 + 1 / np.log2(3))
    assert ndcg_at_k(np.array([3.0, 2.0, 1.0]), np.array([0, 3, 1]), 3, gain) == pytest.approx(expected)
    assert ndcg_at_k(np.array([1.0, 2.0, 3.0]), np.array([0, 3, 1]), 1, gain) == pytest.approx(1 / 7)
    assert np.isnan(ndcg_at_k(np.array([1.0, 2.0]), np.array([0, 0]), 2, gain))  # no relevant item: left out


@pytest.fixture(scope="module")
def small_rows(small_synthetic):
    from features.load import load_dataset

    ds = load_dataset(small_synthetic[0])
    return placement_rows(ds, features=FEATURE_PARAMS, labels=LABEL_PARAMS, rules=RULES)


def test_same_seed_same_model_and_seed_matters(small_rows):
    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), **SHORT_SPLIT)
    split = temporal_split(small_rows, tp)
    shuffled = small_rows.sample(frac=1.0, random_state=3)  # row order must not matter either
    a = train_bundle(small_rows, split, tp)
    b = train_bundle(shuffled, split, tp)
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert a.calibration == b.calibration and a.nuisance == b.nuisance
    c = train_bundle(small_rows, split, dataclasses.replace(tp, seed=tp.seed + 1))
    assert c.booster.model_to_string() != a.booster.model_to_string()


def test_prior_and_refit(small_rows):
    """Trees start from the rule (same relative weights and signs); the refit keeps the held-out calibration."""
    # the rule prior (the default is a learned prior on named terms: test_learned_prior_on_named_terms)
    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), prior_kind="rule", **SHORT_SPLIT)
    assert tp.prior_weights and tp.refit_on_calibration_weeks
    split = temporal_split(small_rows, tp)
    refit = train_bundle(small_rows, split, tp)
    plain = train_bundle(small_rows, split, dataclasses.replace(tp, refit_on_calibration_weeks=False))
    # Platt scaling comes from trees that never saw the calibration weeks, refitted or not.
    assert refit.calibration == plain.calibration
    md = refit.metadata
    assert (
        md["n_trees_fitted_on"] == md["n_fit"] + md["n_calibration"]
        and plain.metadata["n_trees_fitted_on"] == md["n_fit"]
    )
    assert refit.booster.model_to_string() != plain.booster.model_to_string()
    # Platt scaling sees the scores the bundle gives (prior included): on its own rows the mean chance is the observed rate.
    cal = small_rows[split.part(small_rows) == "calibration"]
    assert plain.proba(cal).mean() == pytest.approx(cal["sustained"].mean(), abs=1e-4)
    test = small_rows[split.part(small_rows) == "test"]
    trees = refit.booster.predict(test[list(refit.feature_names)].to_numpy(dtype=float), raw_score=True)
    np.testing.assert_allclose(refit.logodds(test), trees + refit.prior.score(test))
    from features.errors import UserError

    with pytest.raises(
        UserError, match="fewer sustained tenancies"
    ):  # a rule that predicts the wrong way is refused, not flipped
        train_bundle(
            small_rows, split, dataclasses.replace(tp, prior_weights={f: -w for f, w in tp.prior_weights.items()})
        )
    bare = train_bundle(small_rows, split, dataclasses.replace(tp, prior_weights={}))
    assert bare.prior is None and bare.metadata["prior"] == "none"
    np.testing.assert_allclose(
        bare.logodds(test), bare.booster.predict(test[list(bare.feature_names)].to_numpy(dtype=float), raw_score=True)
    )


def test_learned_prior_on_named_terms(small_rows):
    """The default prior: a logistic regression on exactly `prior_terms`, refitted with the trees."""
    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), **SHORT_SPLIT)
    assert tp.prior_kind == "logistic" and tp.prior_terms  # the default this test is about
    bundle = train_bundle(small_rows, temporal_split(small_rows, tp), tp)
    assert bundle.prior is not None and set(bundle.prior.coef) <= set(tp.prior_terms)
    assert "named terms" in bundle.metadata["prior"]
    # the default also has a nuisance head on exactly `nuisance_terms`: candidates ranked by the expected gain
    assert tp.nuisance_terms and bundle.nuisance is not None and set(bundle.nuisance.coef) == set(tp.nuisance_terms)
    assert "nuisance head" in bundle.metadata["ranking"]
    test = small_rows[temporal_split(small_rows, tp).part(small_rows) == "test"]
    np.testing.assert_allclose(bundle.score(test), np.log(bundle.proba(test)) + bundle.nuisance.score(test), atol=1e-9)


def test_test_week_outcomes_never_reach_the_model(small_rows):
    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), **SHORT_SPLIT)
    split = temporal_split(small_rows, tp)
    flipped = small_rows.copy()
    held_out = split.part(flipped).isin(["test", "gap"])
    flipped.loc[held_out, "sustained"] = 1 - flipped.loc[held_out, "sustained"]
    flipped.loc[held_out, "grade"] = 3 - flipped.loc[held_out, "grade"]
    a, b = train_bundle(small_rows, split, tp), train_bundle(flipped, split, tp)
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert a.calibration == b.calibration and a.prior == b.prior and a.nuisance == b.nuisance


def test_unknown_prior_feature_is_a_user_error():
    from features.config import build
    from features.errors import UserError

    with pytest.raises(UserError, match="prior_weights names unknown features: zrm_total"):
        build(TrainParams, {**PARAMS["train"], "prior_weights": {"zrm_total": 1.0}}, "train")


def test_paired_bootstrap_literal_cases():
    from models.evaluate import paired_bootstrap

    meetings = np.repeat(pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"]), 4)
    grade = np.array([3, 0, 2, 1] * 4)
    frame = pd.DataFrame(
        {
            "meeting_date": meetings,
            "grade": grade,
            "sustained": (grade > 0).astype(int),
            "perfect": grade.astype(float),
            "same": grade.astype(float),
            "reversed": -grade.astype(float),
        }
    )
    table = paired_bootstrap(
        frame, "perfect", {"same": "same", "reversed": "reversed"}, (0, 1, 3, 7), resamples=50, seed=1
    )
    same = table[table["baseline"] == "same"]
    assert (same["difference"] == 0).all() and (same["ci_low"] == 0).all() and (same["ci_high"] == 0).all()
    assert (same["share_ahead"] == 0).all()  # a tie is never "ahead"
    rev = table[table["baseline"] == "reversed"].set_index("metric")
    assert rev.loc["roc_auc_failure", "model"] == 1.0 and rev.loc["roc_auc_failure", "baseline_value"] == 0.0
    assert rev.loc["roc_auc_failure", "difference"] == 1.0
    assert (rev["share_ahead"] == 1.0).all() and (rev["ci_low"] > 0).all()


def test_weighted_bootstrap_metrics_equal_sklearn_on_the_repeated_rows():
    """A draw of meetings weighs rows by copies: the same ROC-AUC and average precision as the repeated rows."""
    from scipy.stats import mannwhitneyu
    from sklearn.metrics import average_precision_score, roc_auc_score

    from models.evaluate import _weighted_average_precision, _weighted_roc_auc, _WeightedRanking

    rng = np.random.default_rng(3)
    codes = np.sort(rng.integers(0, 30, 600))
    y = (rng.random(600) < 0.2).astype(int)
    s = np.round(rng.normal(size=600) + y, 1)  # with ties
    ranking = _WeightedRanking(s, y, codes)
    for draw in (np.arange(30), *(rng.integers(0, 30, 30) for _ in range(5))):
        rows = np.concatenate([np.flatnonzero(codes == m) for m in draw])
        pos, neg = ranking.counts(np.bincount(draw, minlength=30).astype(float))
        assert (pos.sum(), neg.sum()) == (y[rows].sum(), len(rows) - y[rows].sum())
        yr, sr = y[rows], s[rows]
        u = mannwhitneyu(sr[yr == 1], sr[yr == 0], method="asymptotic", use_continuity=False).statistic
        assert _weighted_roc_auc(pos, neg) == float(u / (yr.sum() * (1 - yr).sum()))  # exactly
        assert _weighted_roc_auc(pos, neg) == pytest.approx(roc_auc_score(yr, sr), abs=1e-12)
        assert _weighted_average_precision(pos, neg) == average_precision_score(yr, sr)  # exactly


def test_bootstrap_against_by_hand():
    from models.oracle import bootstrap_against

    per = pd.DataFrame(
        {
            "plan_model_total": [9.0, 8.0],
            "plan_model_n": [10, 10],
            "plan_rule_total": [8.0, 8.0],
            "plan_rule_n": [10, 10],
            "plan_oracle_total": [10.0, 9.0],
            "plan_oracle_n": [10, 10],
            "plan_random_total": [7.0, 6.0],
            "plan_random_n": [10, 10],
            "top1_model": [0.9, 0.8],
            "top1_rule": [0.9, 0.7],
        }
    )
    table = bootstrap_against(per, ["rule"], resamples=20, seed=0).set_index("metric")
    # plan shares: model (0.85 - 0.65) / (0.95 - 0.65) = 2/3, rule (0.80 - 0.65) / 0.30 = 1/2
    assert table.loc["plan_captured_gain", "model"] == pytest.approx(2 / 3)
    assert table.loc["plan_captured_gain", "baseline_value"] == pytest.approx(0.5)
    assert table.loc["top1_true_p_sustained", "difference"] == pytest.approx(0.05)
    assert table.loc["top1_true_p_sustained", "ci_low"] >= 0.0 - 1e-12


def test_temporal_split_holds_out_latest_meetings(small_rows):
    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), **SHORT_SPLIT)
    split = temporal_split(small_rows, tp)
    part = split.part(small_rows)
    assert (
        small_rows.loc[part == "fit", "meeting_date"].max()
        < small_rows.loc[part == "calibration", "meeting_date"].min()
    )
    assert (
        small_rows.loc[part == "calibration", "meeting_date"].max()
        < small_rows.loc[part == "test", "meeting_date"].min()
    )
    assert split.test_end == small_rows["meeting_date"].max()
    # Nothing the model learns from had its outcome known on or after the first test meeting.
    learned = part.isin(["fit", "calibration"])
    assert (small_rows.loc[learned, "outcome_known_on"] < split.test_start).all()
    assert (part == "gap").any()


def test_train_tracks_and_promotes_only_when_not_worse(small_synthetic, tmp_path, monkeypatch):
    """First model becomes the default; a clearly worse one stays a candidate; an equal one is promoted."""
    monkeypatch.setenv("MATCHWIJS_MLFLOW_DIR", str(tmp_path / "store"))
    data, truth = small_synthetic
    # The fairness gate is opened wide here: this test is about the metric comparison
    # (the gate's own refusal is tested below and in tests/test_fairness.py).
    open_gate = {
        **PARAMS["fairness"]["gate"],
        "max_difference": {},
        "max_ratio_drop": {},
        "max_replay_ratio_drop": {},
        "max_replay_wait_widening": {},
        "fail_when_unjudgeable": False,
    }
    good = params_file(tmp_path, train=SHORT_SPLIT, fairness={"gate": open_gate})
    runner = CliRunner()
    first = runner.invoke(
        app, ["train", "--data", str(data), "--params", str(good), "--metrics-out", str(tmp_path / "m1.json")]
    )
    assert first.exit_code == 0, first.output
    m1 = json.loads((tmp_path / "m1.json").read_text())
    assert m1["promoted"] is True and m1["model_version"] == "1"

    (tmp_path / "bad").mkdir()
    bad = params_file(
        tmp_path / "bad",
        train={
            **SHORT_SPLIT,
            "prior_weights": {},
            "prior_kind": "none",  # no prior and a single stump: clearly worse
            "prior_choice": [],
            "lgbm": {**PARAMS["train"]["lgbm"], "num_boost_round": 1, "num_leaves": 2},
        },
        fairness={"gate": open_gate},
    )
    second = runner.invoke(
        app, ["train", "--data", str(data), "--params", str(bad), "--metrics-out", str(tmp_path / "m2.json")]
    )
    assert second.exit_code == 0, second.output
    m2 = json.loads((tmp_path / "m2.json").read_text())
    assert m2["promoted"] is False and "stays a candidate" in second.output

    third = runner.invoke(
        app, ["train", "--data", str(data), "--params", str(good), "--metrics-out", str(tmp_path / "m3.json")]
    )
    assert third.exit_code == 0, third.output
    assert json.loads((tmp_path / "m3.json").read_text())["promoted"] is True

    from models.tracking import resolve_bundle

    monkeypatch.chdir(tmp_path)
    champion = resolve_bundle(None, params_path=good)
    assert champion.metadata["model_version"].endswith("/3")
    # The champion records the version of the data it learned from.
    assert champion.metadata["data_sha256"] == dataset_fingerprint(data)


def test_promotion_says_when_the_champion_learned_from_the_new_test_weeks(small_synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("MATCHWIJS_MLFLOW_DIR", str(tmp_path / "store"))
    open_gate = {
        **PARAMS["fairness"]["gate"],
        "max_difference": {},
        "max_ratio_drop": {},
        "max_replay_ratio_drop": {},
        "max_replay_wait_widening": {},
        "fail_when_unjudgeable": False,
    }
    runner = CliRunner()
    first = params_file(
        tmp_path, train={**SHORT_SPLIT, "test_weeks": 4, "bootstrap_resamples": 0}, fairness={"gate": open_gate}
    )
    assert runner.invoke(app, ["train", "--data", str(small_synthetic[0]), "--params", str(first)]).exit_code == 0
    (tmp_path / "long").mkdir()
    longer = params_file(
        tmp_path / "long",
        train={**SHORT_SPLIT, "test_weeks": 70, "bootstrap_resamples": 0},
        fairness={"gate": open_gate},
    )
    second = runner.invoke(app, ["train", "--data", str(small_synthetic[0]), "--params", str(longer)])
    assert second.exit_code == 0, second.output
    assert "inside these held-out weeks" in second.output and "is optimistic" in second.output


def test_failing_fairness_gate_blocks_promotion(small_synthetic, tmp_path, monkeypatch):
    monkeypatch.setenv("MATCHWIJS_MLFLOW_DIR", str(tmp_path / "store"))
    strict = {**PARAMS["fairness"]["gate"], "max_difference": {"model.selection_rate": 0.0}}
    params = params_file(tmp_path, train=SHORT_SPLIT, fairness={"gate": strict})
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(small_synthetic[0]),
            "--params",
            str(params),
            "--metrics-out",
            str(tmp_path / "m.json"),
            "--bundle-out",
            str(tmp_path / "model"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["promoted"] is False and summary["fairness_gate_passed"] is False
    assert "the fairness gate failed" in result.output
    from models.bundle import ModelBundle

    saved = ModelBundle.load(tmp_path / "model")
    assert saved.metadata["promoted"] is False  # written, clearly marked
    versus = pd.DataFrame(saved.metadata["versus"])  # the bootstrap comparison travels with the model (model card)
    assert set(versus["baseline"]) == {"profile_fit", "classifier", "random"}
    assert (versus["ci_low"] <= versus["difference"]).all() and (versus["difference"] <= versus["ci_high"]).all()


def test_train_reports_bad_data_without_traceback(tmp_path, tiny_dir):
    (tiny_dir / "clients.csv").write_text("client_id\n1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "--data", str(tiny_dir)])
    assert result.exit_code == 1
    assert "clients.care_provider: required column is missing" in result.output
    assert "Traceback" not in result.output


def test_grid_search_judges_on_calibration_weeks_only(small_rows):
    from models.experiment import grid_search

    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), **SHORT_SPLIT)
    grid = ({"num_leaves": 2, "num_boost_round": 50}, {"num_leaves": 2, "num_boost_round": 1})
    table = grid_search(small_rows, train=tp, grid=grid, metric="roc_auc_failure")
    assert sorted(table["variant"]) == [0, 1]
    assert table["validation_roc_auc_failure"].is_monotonic_decreasing
    # Changing the test weeks' outcomes cannot change the search: it never looks at them.
    split = temporal_split(small_rows, tp)
    flipped = small_rows.copy()
    test = split.part(flipped) == "test"
    flipped.loc[test, "sustained"] = 1 - flipped.loc[test, "sustained"]
    again = grid_search(flipped, train=tp, grid=grid, metric="roc_auc_failure")
    pd.testing.assert_frame_equal(table, again)
    with pytest.raises(Exception, match="unknown LightGBM settings"):
        grid_search(small_rows, train=tp, grid=({"leaves": 3},), metric="roc_auc_failure")


def test_grid_search_never_refits_on_its_validation_weeks(small_rows, monkeypatch):
    import models.experiment as experiment

    seen = []

    def spy(rows, split, params, *args, **kwargs):
        seen.append(params.refit_on_calibration_weeks)
        return train_bundle(rows, split, params, *args, **kwargs)

    monkeypatch.setattr(experiment, "train_bundle", spy)
    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), refit_on_calibration_weeks=True, **SHORT_SPLIT)
    experiment.grid_search(small_rows, train=tp, grid=({"num_boost_round": 5},), metric="roc_auc_failure")
    assert seen == [False]


def test_log_loss_of_scores_by_hand():
    from models.experiment import log_loss_of_scores

    # log-odds 0 -> p 0.5: loss ln 2 whatever the outcome; log-odds ln 3 -> p 0.75: -ln 0.75 (y=1), -ln 0.25 (y=0)
    s = np.array([0.0, np.log(3.0), np.log(3.0)])
    assert log_loss_of_scores(s, np.array([1, 1, 0])) == pytest.approx((np.log(2) - np.log(0.75) - np.log(0.25)) / 3)
    assert np.isfinite(log_loss_of_scores(np.array([800.0, -800.0]), np.array([0, 1])))  # no overflow


def test_prior_choice_judges_on_calibration_weeks_by_log_loss(small_rows):
    from models.experiment import choose_prior, log_loss_of_scores, prior_table

    candidates = (
        {"prior_kind": "rule"},
        {"prior_kind": "rule_logistic", "prior_C": 0.02, "num_boost_round": 20},
        {"prior_kind": "none", "num_boost_round": 1},
    )
    tp = dataclasses.replace(
        section(PARAMS, "train", TrainParams), prior_choice=candidates, prior_choice_se=0.0, **SHORT_SPLIT
    )
    table = prior_table(small_rows, tp)
    assert sorted(table["candidate"]) == [0, 1, 2]
    assert table["validation_log_loss"].is_monotonic_increasing
    # the number is the log-loss of that candidate, fitted on the fit weeks only, on the calibration weeks
    split = temporal_split(small_rows, tp)
    rule = train_bundle(
        small_rows, split, dataclasses.replace(tp.with_choice(candidates[0]), refit_on_calibration_weeks=False)
    )
    cal = small_rows[split.part(small_rows) == "calibration"]
    loss = log_loss_of_scores(rule.logodds(cal), cal["sustained"].astype(int).to_numpy())
    assert table.set_index("candidate").loc[0, "validation_log_loss"] == pytest.approx(loss)
    # the test weeks' outcomes never change the choice
    flipped = small_rows.copy()
    test = split.part(flipped) == "test"
    flipped.loc[test, "sustained"] = 1 - flipped.loc[test, "sustained"]
    pd.testing.assert_frame_equal(table, prior_table(flipped, tp))
    chosen, _ = choose_prior(small_rows, tp)
    best = candidates[int(table.loc[0, "candidate"])]
    assert chosen.prior_choice == () and chosen.prior_kind == best["prior_kind"]
    assert chosen.lgbm.num_boost_round == best.get("num_boost_round", tp.lgbm.num_boost_round)
    assert choose_prior(small_rows, dataclasses.replace(tp, prior_choice=()))[0] == dataclasses.replace(
        tp, prior_choice=()
    )
    with pytest.raises(Exception, match="prior_choice"):
        dataclasses.replace(tp, prior_choice=({"prior_kind": "forest"},))


def test_prior_terms_name_the_learned_priors_inputs():
    tp = section(PARAMS, "train", TrainParams)
    named = dataclasses.replace(tp, prior_terms=("isolation_x_complex_size", "zrm_finances"))
    assert named.prior_features() == ("zrm_finances", "isolation_x_complex_size")  # FEATURE_NAMES order
    from features.pairs import FEATURES

    by_group = tuple(f.name for f in FEATURES if f.group in tp.prior_groups)  # without terms: whole groups
    assert dataclasses.replace(tp, prior_terms=()).prior_features() == by_group
    with pytest.raises(Exception, match="prior_terms names unknown features: zrm_gender"):
        dataclasses.replace(tp, prior_terms=("zrm_gender",))


def test_oracle_comparison_is_bounded_by_the_oracle(small_synthetic, small_rows):
    """Per meeting, no policy beats the oracle's plan total or its top-1; captured gains are shares."""
    from features.load import load_dataset
    from models.bundle import LinearPrior
    from models.oracle import OracleParams, oracle_comparison

    ds = load_dataset(small_synthetic[0])
    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), **SHORT_SPLIT)
    bundle = train_bundle(small_rows, temporal_split(small_rows, tp), tp)
    zrm = {"zrm": LinearPrior(coef={"zrm_mean": 1.0}, intercept=0.0, mean={"zrm_mean": 0.0})}
    compare = functools.partial(
        oracle_comparison, ds, bundle, small_synthetic[1], params=PARAMS, oracle=OracleParams(random_draws=2, seed=1)
    )
    result = compare(baselines=zrm)
    per = result.per_meeting
    assert len(per) > 0
    for policy in ("model", "random", "zrm"):
        assert (per["plan_oracle_total"] >= per[f"plan_{policy}_total"] - 1e-9).all(), policy
        assert (per["top1_oracle"] >= per[f"top1_{policy}"] - 1e-9).all(), policy
    assert result.table.loc["oracle", "plan_placements"] == result.table.loc["model", "plan_placements"]
    assert result.summary["plan_captured_gain"] <= 1.0 + 1e-9
    # matches, not only clients (#13): shares and correlations in range, for the model and each baseline
    s = result.summary
    assert 0 < s["client_variance_share"] < 1 and 0 < s["client_variance_share_truth"] < 1
    assert 0 < s["within_client_spearman"] <= 1
    # a client-only score orders no client's homes: its within-client correlation is undefined (constant), not 1
    assert np.isnan(s["within_client_spearman_zrm"])
    # streamed in batches of whole meetings (one meeting a batch here): the very same comparison
    small = compare(baselines=zrm, batch_rows=1)
    pd.testing.assert_frame_equal(small.per_meeting, per)
    assert list(small.summary) == list(s)
    for key, value in s.items():  # exactly: per-batch correlations are the per-client ones of all pairs at once
        assert small.summary[key] == value or (np.isnan(value) and np.isnan(small.summary[key])), key


def test_damaged_model_folder_is_a_user_error(tmp_path, small_rows):
    from features.errors import UserError
    from models.bundle import ModelBundle

    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), **SHORT_SPLIT)
    folder = train_bundle(small_rows, temporal_split(small_rows, tp), tp).save(tmp_path / "m")
    meta = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    del meta["prior"]  # a model folder written before priors existed still loads, as trees only
    (folder / "bundle.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(UserError, match="bundle.json does not match its checksum"):
        ModelBundle.load(folder)
    (folder / "checksums.json").unlink()  # folders of that time had no checksums either
    assert ModelBundle.load(folder).prior is None
    (folder / "bundle.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="damaged"):
        ModelBundle.load(folder)
    (folder / "support.parquet").unlink()
    with pytest.raises(UserError, match="missing support.parquet"):
        ModelBundle.load(folder)


def test_unknown_metric_names_in_params_are_user_errors():
    from features.config import build
    from features.errors import UserError
    from models.ranker import SearchParams
    from models.tracking import MlflowParams

    with pytest.raises(UserError, match="train.search.metric"):
        build(SearchParams, {"metric": "auc", "grid": [{"num_leaves": 2}]}, "train.search")
    with pytest.raises(UserError, match="grid is empty"):
        build(SearchParams, {"metric": "roc_auc_failure", "grid": []}, "train.search")
    with pytest.raises(UserError, match="promotion_metric"):
        build(MlflowParams, {**PARAMS["mlflow"], "promotion_metric": "ndcg@10"}, "mlflow")


def test_support_count_equals_sklearns_radius_count_also_on_the_radius():
    """count_within (matrix form, exact near the radius) counts what sklearn's KD tree counted before."""
    from sklearn.neighbors import NearestNeighbors

    from models.bundle import count_within

    rng = np.random.default_rng(5)
    ref = np.round(rng.normal(size=(600, 13)), 1) * 0.7
    q = np.round(rng.normal(size=(150, 13)), 1) * 0.7
    q[:5] = ref[:5]  # duplicates of training rows
    q[5] = ref[7]
    q[5, 0] += 3.0  # exactly at the radius from ref[7]: counted (distance <= radius)
    tree = NearestNeighbors(radius=3.0).fit(ref)
    expected = [len(c) for c in tree.radius_neighbors(q, return_distance=False)]
    assert count_within(ref, q, 3.0, chunk=16).tolist() == expected
    assert count_within(ref, q[:0], 3.0).tolist() == [] and count_within(ref[:0], q, 3.0).tolist() == [0] * 150
    assert count_within(np.zeros((1, 2)), np.array([[3.0, 0.0], [3.0, 1e-6]]), 3.0).tolist() == [1, 0]


def test_match_ranking_numbers_clients_as_the_text_key_did():
    """(meeting, client) as numbers in (date, client) order: the same results as the text key "date|client"."""
    from models.oracle import client_variance_share, match_ranking, within_group_spearman

    rng = np.random.default_rng(9)
    n = 3000
    pairs = pd.DataFrame(
        {
            "meeting_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 5, n) * 7, unit="D"),
            "client_id": np.array(
                [f"R{r:02d}-C{c}" for r, c in zip(rng.integers(1, 3, n), rng.integers(0, 60, n), strict=True)],
                dtype=object,
            ),
            "true_p": rng.random(n).round(2),
            "model_p": rng.random(n).round(2),
        }
    )
    text = pairs["meeting_date"].astype(str) + "|" + pairs["client_id"].astype(str)
    p, t = pairs["model_p"].clip(1e-6, 1 - 1e-6), pairs["true_p"].clip(1e-6, 1 - 1e-6)
    expected = {
        "client_variance_share": client_variance_share(np.log(p / (1 - p)).to_numpy(), text),
        "client_variance_share_truth": client_variance_share(np.log(t / (1 - t)).to_numpy(), text),
        "within_client_spearman": within_group_spearman(pairs["model_p"].to_numpy(), t.to_numpy(), text),
    }
    assert match_ranking(pairs, "model_p") == expected  # exactly
    # clients as whole numbers in id order (what the oracle comparison keeps): the same, exactly
    numbers = pd.Index(np.sort(pairs["client_id"].unique())).get_indexer(pairs["client_id"]).astype(np.int32)
    assert match_ranking(pairs.assign(client_id=numbers), "model_p") == expected


def test_nuisance_head_is_the_mean_gain_of_the_sustained_placements_per_group():
    """A literal case: with one 0/1 term and no penalty the Poisson head is the mean gain of each group.

    Sustained placements: quiet 0 -> grades 3, 3, 2 (gains 7, 7, 3: mean 17/3); quiet 1 -> grades 1, 3
    (gains 1, 7: mean 4). The failed placements (grade 0) are not learned from.
    """
    import dataclasses

    from features.errors import UserError
    from models.ranker import fit_nuisance_head

    quiet = [0, 0, 0, 1, 1, 1, 0]
    grade = [3, 3, 2, 1, 3, 0, 0]
    rows = pd.DataFrame(
        {
            "meeting_date": pd.to_datetime(["2024-01-01"] * 7),
            "dwelling_id": [f"D{i}" for i in range(7)],
            "client_id": [f"C{i}" for i in range(7)],
            "needs_quiet_surroundings": quiet,
            "grade": grade,
            "sustained": [int(g > 0) for g in grade],
        }
    )
    tp = dataclasses.replace(
        section(PARAMS, "train", TrainParams), nuisance_terms=("needs_quiet_surroundings",), nuisance_alpha=0.0
    )
    head = fit_nuisance_head(rows, tp)
    assert head is not None and set(head.coef) == {"needs_quiet_surroundings"}
    np.testing.assert_allclose(
        head.score(pd.DataFrame({"needs_quiet_surroundings": [0.0, 1.0]})), np.log([17 / 3, 4.0]), atol=1e-5
    )
    assert fit_nuisance_head(rows, dataclasses.replace(tp, nuisance_terms=())) is None
    with pytest.raises(UserError, match="nuisance_terms names unknown features: gender"):
        dataclasses.replace(tp, nuisance_terms=("gender",))
