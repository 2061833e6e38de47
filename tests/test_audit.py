"""`matchwijs audit` end to end on generated data: the files, recomputing fairness.csv, a biased model, MLflow."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import brier_score_loss
from typer.testing import CliRunner

from fairness.audit import AuditParams, build_audit, fairness_gate
from fairness.params import FairnessParams
from features.config import section
from features.errors import UserError
from features.load import load_dataset
from models.experiment import placement_rows
from models.ranker import TrainParams, temporal_split, train_bundle
from pipelines.cli import app
from tests.conftest import params_file, tiny_tables, write_dataset
from tests.helpers import FEATURE_PARAMS, LABEL_PARAMS, PARAMS, RULES

FAIRNESS = section(PARAMS, "fairness", FairnessParams)
AUDIT = section(PARAMS, "audit", AuditParams)
CONTRACT_FILES = ("audit_predictions.csv", "fairness.csv", "audit.html")


def train_small(data: Path):
    """The project's ranker on a dataset, holding out its last 52 meetings with known outcomes."""
    ds = load_dataset(data)
    rows = placement_rows(ds, features=FEATURE_PARAMS, labels=LABEL_PARAMS, rules=RULES)
    tp = dataclasses.replace(section(PARAMS, "train", TrainParams), test_weeks=52, calibration_weeks=12)
    return train_bundle(
        rows, temporal_split(rows, tp), tp, metadata={"params": {k: PARAMS[k] for k in ("features", "labels", "train")}}
    )


def biased_copy(src: Path, dst: Path, *, group: str = "female", fail_share: float = 0.7, seed: int = 5) -> Path:
    """A copy of a dataset in which one gender's tenancies mostly fail, and a model feature gives that group away.

    Every client of the group gets support_hours_per_week 14.5 (a value no one else has), and
    `fail_share` of the group's tenancies without an end get an eviction 60 days after the start:
    history that is biased against the group, with a proxy a model can learn it from.
    """
    shutil.copytree(src, dst)

    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(dst / f"{name}.csv", dtype=str, keep_default_na=False)

    prot, clients, pl, ends, reports = (
        read(n) for n in ("client_protected", "clients", "placements", "tenancy_ends", "nuisance_reports")
    )
    members = set(prot.loc[prot["gender"] == group, "client_id"])
    clients["support_hours_per_week"] = np.where(
        clients["client_id"].isin(members), "14.5", clients["support_hours_per_week"]
    )
    as_of = load_dataset(src).as_of
    open_ = pl[pl["client_id"].isin(members) & ~pl["placement_id"].isin(ends["placement_id"])]
    end = pd.to_datetime(open_["tenancy_start"]) + pd.Timedelta(days=60)
    draw = np.random.default_rng(seed).random(len(open_)) < fail_share
    evicted = open_[(end <= as_of).to_numpy() & draw]
    new_end = (pd.to_datetime(evicted["tenancy_start"]) + pd.Timedelta(days=60)).dt.strftime("%Y-%m-%d")
    ends = pd.concat(
        [ends, pd.DataFrame({"placement_id": evicted["placement_id"], "end_date": new_end, "reason": "eviction"})]
    )
    cut = reports["placement_id"].map(dict(zip(evicted["placement_id"], new_end, strict=True)))
    reports = reports[~(cut.notna() & (reports["report_date"] > cut.fillna("")))]
    for name, frame in (("clients", clients), ("tenancy_ends", ends), ("nuisance_reports", reports)):
        frame.to_csv(dst / f"{name}.csv", index=False)
    return dst


@pytest.fixture(scope="module")
def audited(small_synthetic, tmp_path_factory):
    """The default model on the small generated data, audited through the command line."""
    data = small_synthetic[0]
    root = tmp_path_factory.mktemp("audit")
    bundle = train_small(data)
    # what `train` stores: the model-vs-baseline comparison, shown on the model card
    bundle.metadata["versus"] = [
        {
            "baseline": "profile_fit",
            "metric": "roc_auc_failure",
            "model": 0.76,
            "baseline_value": 0.75,
            "difference": 0.01,
            "ci_low": -0.01,
            "ci_high": 0.03,
            "share_ahead": 0.8,
        }
    ]
    # what `train --truth` stores about the chance ranges (models/interval_fit.py), shown on the model card
    bundle.metadata["intervals"] = {
        "coverage": 0.9,
        "resamples": 10,
        "scale": 2.04,
        "scale_source": "conformal on the calibration weeks' true chances",
        "interval_coverage_truth": 0.887,
        "interval_coverage_calibration": 0.902,
        "interval_mean_width": 0.153,
        "coverage_measured_on": "the evaluated model's test weeks",
    }
    bundle.save(root / "model")
    out = root / "out"
    result = CliRunner().invoke(app, ["audit", "--data", str(data), "--out", str(out), "--model", str(root / "model")])
    return result, out, root


def test_audit_writes_the_contract_files_and_names_the_failing_metrics(audited):
    result, out, root = audited
    assert result.exit_code in (0, 3), result.output
    for name in CONTRACT_FILES + ("audit_decisions.csv", "fairness_gate.csv", "model_card.md", "audit_summary.json"):
        assert (out / name).is_file(), name
    assert not [p for p in root.iterdir() if p.name.startswith(".out.tmp-")]  # written aside, then moved in
    summary = json.loads((out / "audit_summary.json").read_text())
    gate = pd.read_csv(out / "fairness_gate.csv")
    assert summary["gate_passed"] == bool(gate["passed"].all())
    assert (result.exit_code == 0) == summary["gate_passed"]
    if result.exit_code == 3:  # the failures are named, one line each
        assert "fairness gate FAILED" in result.output
        for failure in summary["failures"]:
            assert failure in result.output
    pred = pd.read_csv(out / "audit_predictions.csv", dtype={"client_id": str, "placement_id": str})
    assert list(pred.columns[:8]) == [
        "placement_id",
        "client_id",
        "score",
        "prediction",
        "outcome",
        "gender",
        "age_band",
        "migration_background",
    ]
    assert pred["placement_id"].is_unique and set(pred["outcome"]) <= {0, 1} and set(pred["prediction"]) <= {0, 1}
    fair = pd.read_csv(out / "fairness.csv")
    assert {"attribute", "group", "metric", "value", "n"} <= set(fair.columns)
    model_metrics = set(fair.loc[fair["source"] == "model", "metric"])
    assert {
        "selection_rate",
        "true_positive_rate",
        "false_positive_rate",
        "mean_score",
        "success_rate",
    } <= model_metrics
    assert {"human", "plan"} <= set(fair["source"])


def test_audit_html_is_self_contained(audited):
    _, out, _ = audited
    html = (out / "audit.html").read_text(encoding="utf-8")
    assert "<style>" in html and html.count('src="data:image/png;base64,') >= 5
    assert not re.search(r'(src|href)\s*=\s*"(?!data:|#)', html)  # no external resource of any kind
    assert "<script" not in html and "<link" not in html
    assert "Who is made worse off" in html and "Proxy analysis" in html and "human baseline" in html.lower()


def test_model_card_covers_what_auditors_ask_for(audited):
    _, out, _ = audited
    card = (out / "model_card.md").read_text(encoding="utf-8")
    for heading in (
        "## Intended use",
        "## Non-uses",
        "## Data and population",
        "## Labels and their known biases",
        "## Evaluation",
        "## Fairness",
        "## Limitations",
        "## Human oversight",
        "## How to stop",
    ):
        assert heading in card
    assert "Never automatic allocation" in card and "Not a blacklist" in card
    assert "neighbours reporting" in card and "Selection bias" in card
    # the default ranks by the expected grade (nuisance head): the card says so, and what that label's bias does
    assert "candidates ordered by expected label gain: chance x nuisance head on 10 terms" in card
    # the model's size and how it was chosen (here as set in params: train_small makes no choice)
    assert "| Capacity (how it was chosen) | 5 boosted trees of 2 leaves after the prior, prior strength C 1" in card
    assert "nuisance head penalty 0.01; as set in params (not chosen on the data) |" in card
    assert "a neighbourhood that reports more is ranked lower for everyone" in card
    # The point-in-time assumption, and that this dataset has no dated client profiles.
    assert "Profiles are not dated" in card and "This dataset has none" in card
    assert "| profile_fit | roc_auc_failure | 0.76 | 0.75 | 0.01 | -0.01 … 0.03 | 0.8 |" in card
    # The chance ranges: what they hold, how they were made, and the coverage measured against the truth.
    assert "## How sure: the chance ranges" in card
    assert "for 90.0% of pairs" in card and "10 bootstrap copies" in card and "a scale of 2.04" in card
    assert "88.7% of the pairs' true chances inside their range (stated 90.0%)" in card
    assert "fitted on, 90.2%; mean width 15.3 points" in card


def test_model_card_says_when_a_model_has_no_ranges_or_unmeasured_ones():
    from models.intervals import SCALE_NORMAL
    from reports.model_card import _intervals

    assert _intervals({}) is None and _intervals({"intervals": {"resamples": 0, "scale": 1.0}}) is None
    iv = _intervals({"intervals": {"coverage": 0.9, "resamples": 10, "scale": 1.645, "scale_source": SCALE_NORMAL}})
    assert iv is not None and iv["normal"] and iv["coverage_truth"] is None


def _metric_rows(frame: pd.DataFrame, attribute: str, y_true, y_pred, func) -> pd.Series:
    mf = MetricFrame(
        metrics=func,
        y_true=np.asarray(y_true, dtype=float),
        y_pred=np.asarray(y_pred, dtype=float),
        sensitive_features=frame[attribute].astype(str).rename(attribute),
    )
    return mf.by_group.astype(float)


def _mean_pred(y_true, y_pred):
    return float(np.mean(y_pred))


def _mean_true(y_true, y_pred):
    return float(np.mean(y_true))


def _recompute(
    pred: pd.DataFrame, dec: pd.DataFrame, source: str, metric: str, attribute: str
) -> tuple[pd.Series, pd.Series]:
    """(value by group, denominator by group), recomputed from the row-level CSVs with fairlearn."""
    if source == "model":
        f = pred
        y, p = f["outcome"], f["prediction"]
        funcs = {
            "selection_rate": (y, p, lambda a, b: selection_rate(a, b, pos_label=1)),
            "true_positive_rate": (y, p, lambda a, b: true_positive_rate(a, b, pos_label=1)),
            "false_positive_rate": (y, p, lambda a, b: false_positive_rate(a, b, pos_label=1)),
            "mean_score": (y, f["score"], _mean_pred),
            "mean_probability": (y, f["probability"], _mean_pred),
            "mean_probability_sustained": (y[y == 1], f.loc[y == 1, "probability"], _mean_pred),
            "success_rate": (y, y, _mean_true),
            "calibration_error": (y, f["probability"], lambda a, b: float(np.mean(b) - np.mean(a))),
            "brier_score": (y, f["probability"], lambda a, b: brier_score_loss(a.astype(int), b)),
            "low_support_share": (y, f["low_support"], _mean_pred),
        }
        yt, yp, func = funcs[metric]
        denominator = {"true_positive_rate": f[y == 1], "false_positive_rate": f[y == 0]}.get(metric, f)
        if metric == "mean_probability_sustained":
            denominator = f[y == 1]
        values = _metric_rows(f.loc[yt.index], attribute, yt, yp, func)
        return values, denominator.groupby(denominator[attribute].astype(str)).size()
    within, column = {
        ("human", "selection_rate"): (None, "placed"),
        ("human", "expected_success"): ("placed", "p_actual"),
        ("human", "success_rate"): ("outcome_known", "outcome"),
        ("human", "below_best_share"): ("placed", "below_best_actual"),
        ("plan", "selection_rate"): (None, "planned"),
        ("plan", "expected_success"): ("planned", "p_plan"),
        ("plan", "worse_off_share"): ("placed", "worse_off"),
        ("plan", "displaced_share"): ("placed", "displaced"),
        ("plan", "below_best_share"): ("planned", "below_best"),
    }[(source, metric)]
    f = dec if within is None else dec[dec[within] == 1]
    values = _metric_rows(f, attribute, f[column], f[column], _mean_pred)
    return values, f.groupby(f[attribute].astype(str))["client_id"].nunique()


def test_every_number_in_fairness_csv_recomputes_from_the_row_level_files(audited):
    _, out, _ = audited
    fair = pd.read_csv(out / "fairness.csv", dtype={"group": str})
    text = dict.fromkeys((*fair["attribute"].unique(), "client_id", "placement_id", "dwelling_id"), str)
    pred = pd.read_csv(out / "audit_predictions.csv", dtype=text)
    dec = pd.read_csv(out / "audit_decisions.csv", dtype=text)
    checked = 0
    for (source, population, metric, attribute), part in fair.groupby(["source", "population", "metric", "attribute"]):
        frame = pred if population == "placements" else dec
        values, denominator = _recompute(pred, dec, source, metric, attribute)
        sizes = frame.groupby(frame[attribute].astype(str)).size()
        for row in part.itertuples():
            expected = values.get(row.group, np.nan) if denominator.get(row.group, 0) > 0 else np.nan
            assert (np.isnan(row.value) and np.isnan(expected)) or row.value == pytest.approx(
                expected, rel=1e-9, abs=1e-12
            ), (source, metric, attribute, row.group, row.value, expected)
            assert row.n == sizes[row.group] and row.support == denominator.get(row.group, 0)
            checked += 1
        # Gaps: against the reference group's value.
        ref = part.dropna(subset=["reference_group"])
        if len(ref):
            best = part.set_index("group").loc[ref["reference_group"].iloc[0], "value"]
            assert np.allclose(ref["difference"], ref["value"] - best, equal_nan=True)
    assert checked == len(fair)


def test_a_biased_model_fails_the_gate_and_its_proxy_is_found(small_synthetic, tmp_path):
    data = small_synthetic[0]
    fair = fairness_gate(load_dataset(data), train_small(data), params=FAIRNESS, config=PARAMS)
    biased_dir = biased_copy(data, tmp_path / "biased")
    ds = load_dataset(biased_dir)
    result = build_audit(ds, train_small(biased_dir), fairness=FAIRNESS, audit=AUDIT, config=PARAMS)
    gate = result.fairness.gate
    assert not gate.passed
    # The checks that judge the chances shown (replacing the unused 0/1 call) catch the planted bias.
    assert any(f.startswith("model.mean_probability by gender: difference") for f in gate.failures), gate.failures
    assert any(f.startswith("model.mean_probability_sustained by gender") for f in gate.failures), gate.failures
    # Who is housed is decided by waiting time (the exact_longest_waiting policy), never by the model: the
    # biased model cannot change the placements over the weeks, so the over-time check does not fire.
    assert not any(f.startswith("policy replay") for f in gate.failures), gate.failures
    assert "max_replay_ratio_drop" in set(gate.table["check"])
    # The same check passes for the model trained on the unbiased history.
    check = fair.table.set_index(["attribute", "check", "metric"]).loc[("gender", "max_difference", "mean_probability")]
    assert bool(check["passed"]) and check["value"] < FAIRNESS.gate.max_difference["model.mean_probability"]
    # The probe finds the proxy, and names the feature that carries it.
    auc = result.proxy_auc.set_index(["attribute", "group"])
    assert auc.loc[("gender", "female"), "flagged"] and auc.loc[("gender", "female"), "auc"] > 0.9
    top = result.proxy_importance.query("attribute == 'gender' and group == 'female'").iloc[0]
    assert top["feature"] in ("support_hours_per_week", "support_x_distance")
    flags = result.shap_flags.query("attribute == 'gender'")
    assert "support_hours_per_week" in set(flags["feature"])


def test_no_client_protected_is_a_clear_error_and_writes_nothing(tmp_path, audited):
    _, _, root = audited
    tables = tiny_tables()
    del tables["client_protected"]
    data = write_dataset(tmp_path / "np", tables)
    result = CliRunner().invoke(
        app, ["audit", "--data", str(data), "--out", str(tmp_path / "out"), "--model", str(root / "model")]
    )
    assert result.exit_code == 1
    assert "no client_protected table" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_model_without_held_out_period_is_a_clear_error(tmp_path, tiny_dir, audited):
    _, _, root = audited
    model = tmp_path / "model"
    shutil.copytree(root / "model", model)
    meta = json.loads((model / "bundle.json").read_text())
    meta["metadata"].pop("test_start")
    (model / "bundle.json").write_text(json.dumps(meta))
    (model / "checksums.json").unlink()  # an older folder, without checksums
    result = CliRunner().invoke(
        app, ["audit", "--data", str(tiny_dir), "--out", str(tmp_path / "out"), "--model", str(model)]
    )
    assert result.exit_code == 1 and "test_start" in result.output
    assert not (tmp_path / "out").exists()


def test_report_is_logged_to_the_models_mlflow_run(audited, tmp_path, monkeypatch):
    from models import tracking
    from models.bundle import ModelBundle
    from pipelines.audit import _log_to_mlflow

    monkeypatch.setenv(tracking.ENV_STORE, str(tmp_path / "store"))
    mp = tracking.mlflow_params()
    store = tracking.store_dir(mp)
    run_id, _ = tracking.log_run(store, mp, run_name="audit-test", run_params={}, metrics={}, tags={}, artifacts={})
    _, out, root = audited
    bundle = ModelBundle.load(root / "model")
    bundle.metadata["mlflow_run_id"] = run_id
    assert _log_to_mlflow(bundle, out, None) is None
    logged = {Path(a.path).name for a in tracking._mlflow(store).MlflowClient().list_artifacts(run_id, "audit")}
    assert {"audit.html", "model_card.md", "fairness.csv", "fairness_gate.csv"} <= logged
    assert "audit_predictions.csv" not in logged  # row-level protected attributes stay out of MLflow
    # Without a store the audit still stands, and says why nothing was logged.
    monkeypatch.setenv(tracking.ENV_STORE, str(tmp_path / "nowhere"))
    assert "no MLflow store" in _log_to_mlflow(bundle, out, None)


def test_publish_replaces_audit_files_and_keeps_others(tmp_path):
    from pipelines.audit import _publish

    out, tmp = tmp_path / "out", tmp_path / ".out.tmp-1"
    out.mkdir()
    tmp.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "shap_flags.csv").write_text("stale")
    (out / "fairness.csv").write_text("old")
    (tmp / "fairness.csv").write_text("new")
    _publish(tmp, out, ("fairness.csv", "shap_flags.csv"))
    assert (out / "fairness.csv").read_text() == "new" and (out / "notes.txt").read_text() == "mine"
    assert not (out / "shap_flags.csv").exists() and not tmp.exists()


# --- the meeting and the plan: a dataset with a decision log ---------------------------------------


def test_audit_with_decisions_adds_the_meeting_section(audited, small_synthetic, tmp_path):
    """The same model on the same data plus a synthetic decision log: the section, its CSV, and its
    numbers recompute from meeting_decisions.csv; the audit without decisions writes no such file."""
    from features.config import section as _section
    from synthetic.decisions import DecisionParams, synthetic_decisions

    _, out_plain, root = audited
    assert not (out_plain / "meeting_decisions.csv").exists()
    data = tmp_path / "data"
    shutil.copytree(small_synthetic[0], data)
    read = {n: pd.read_csv(data / f"{n}.csv", dtype=str) for n in ("vacancies", "candidates", "placements")}
    log = synthetic_decisions(
        read["vacancies"],
        read["candidates"],
        read["placements"],
        _section(PARAMS, "synthetic_decisions", DecisionParams),
        np.random.default_rng(3),
    )
    log.to_csv(data / "decisions.csv", index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["audit", "--data", str(data), "--out", str(out), "--model", str(root / "model")])
    assert result.exit_code in (0, 3), result.output
    rows = pd.read_csv(out / "meeting_decisions.csv", dtype={"client_id": str, "proposed_client_id": str})
    ds = load_dataset(data)
    assert len(rows) == len(ds.vacancies)  # one current decision per home on the table
    assert not {"gender", "age_band", "migration_background"} & set(rows.columns)
    summary = json.loads((out / "audit_summary.json").read_text())["meeting_decisions"]
    assert summary["records"] == len(log) and summary["current"] == len(rows)
    assert (
        summary["by_decision"]
        == rows["decision"].value_counts().reindex(summary["by_decision"]).fillna(0).astype(int).to_dict()
    )
    judged = rows[(rows["held_out"] == 1) & (rows["status"] == "known")]
    followed = judged[judged["decision"] == "plan_followed"]
    got = summary["observed_vs_expected"]["plan_followed"]
    assert got["known"] == len(followed) > 0
    assert got["observed_sustained"] == pytest.approx(followed["sustained"].mean())
    assert got["mean_probability"] == pytest.approx(followed["probability"].mean())
    html = (out / "audit.html").read_text()
    assert "The meeting and the plan" in html and "Selective labels" in html and "not a random" in html
    assert "client_preference" in html


# --- the sign-off page (issue 11 item 7) -------------------------------------------------------

SIGNOFF_SECTIONS = (
    "Intended use",
    "Risk classification and obligations: to be assessed",
    "Accountable owner and validity",
    "The policy in force and its frontier",
    "The gate and its error rates",
)


def _signoff(html: str) -> str:
    """The sign-off page: from the start of the body to the end of its section."""
    start, end = html.index('<section class="signoff"'), html.index("</section>")
    return html[start:end]


def test_the_report_opens_with_the_sign_off_page_leaving_blanks_for_unset_owner_and_date(audited):
    _, out, _ = audited
    html = (out / "audit.html").read_text(encoding="utf-8")
    page = _signoff(html)
    assert html.index('<section class="signoff"') < html.index("<h2>What was audited</h2>")
    for heading in SIGNOFF_SECTIONS:
        assert f"<h2>{heading}</h2>" in page, heading
    for item in ("Annex III point 5(a)", "Art. 14", "Art. 12", "Art. 26", "Art. 27"):
        assert item in page, item
    assert "not legal advice" in page and "to be assessed" in page
    assert page.count("_" * 32) == 3  # owner, validity date, signature: blank lines (params audit: null)
    assert "exact_longest_waiting" in page and "matchwijs policies --data" in page  # no frontier given: how to
    assert "@page { size: A4" in html and "@media print" in html


def test_sign_off_page_shows_owner_date_frontier_and_measured_error_rates(audited, small_synthetic, tmp_path):
    _, _, root = audited
    params = params_file(
        tmp_path,
        audit={"owner": "J. Jansen, head of housing allocation", "valid_until": "2027-06-30"},
    )
    policies = tmp_path / "policies"
    policies.mkdir()
    pd.DataFrame(
        {
            "policy": ["exact_longest_waiting", "everyone", "meeting_history"],
            "placements": [120, 121, 119],
            "expected_sustained_model": [101.5, 104.25, np.nan],
            "placed_waiting_median_weeks": [9.0, 5.5, 8.0],
            "placement_ratio_gender": [0.91, 0.72, 0.93],
        }
    ).to_csv(policies / "policies.csv", index=False)
    rates = tmp_path / "gate.csv"
    pd.DataFrame(
        {
            # a biased-history world also plants no failure effect: the fair-world rate is the neutral one
            "scenario": ["biased_history_8w", "neutral", "planted_failure_1.0", "neutral"],
            "failure_logodds": [0.0, 0.0, 1.0, 0.0],
            "meeting_weeks": [-8.0, 0.0, 0.0, 0.0],
            "pushback_weeks": [0.0, 0.0, 0.0, 0.0],
            "check": ["gate (any check)"] * 3 + ["max_difference calibration_error by gender"],
            "runs": [20, 20, 20, 20],
            "failed": [3, 1, 17, 1],
            "failure_rate": [0.15, 0.05, 0.85, 0.05],
            "ci95_low": [0.032, 0.0013, 0.6211, 0.0013],
            "ci95_high": [0.3789, 0.2487, 0.9679, 0.2487],
        }
    ).to_csv(rates, index=False)
    out = tmp_path / "out"
    args = ["audit", "--data", str(small_synthetic[0]), "--out", str(out), "--model", str(root / "model")]
    result = CliRunner().invoke(
        app, [*args, "--params", str(params), "--policies", str(policies), "--gate-rates", str(rates)]
    )
    assert result.exit_code in (0, 3), result.output
    page = _signoff((out / "audit.html").read_text(encoding="utf-8"))
    assert "J. Jansen, head of housing allocation" in page and "2027-06-30" in page
    assert page.count("_" * 32) == 1  # only the signature line is left blank
    assert "matchwijs policies --data" not in page and "<td>everyone</td>" in page and "0.72" in page
    assert "5% of 20 fair worlds (95% interval 0%-25%)" in page and "planted_failure_1.0" in page
    assert "biased_history_8w" in page and "-8.00" in page
    assert "0.85" in page and "calibration_error by gender" not in page  # the gate as a whole, not per check


def test_sign_off_inputs_that_are_not_what_they_claim_are_clear_errors(tmp_path, audited, small_synthetic):
    _, _, root = audited
    data = str(small_synthetic[0])
    bad = tmp_path / "policies.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["audit", "--data", data, "--out", str(tmp_path / "o"), "--model", str(root / "model"), "--policies", str(bad)],
    )
    assert result.exit_code == 1 and "not a policies.csv written by `matchwijs policies`" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "--data",
            data,
            "--out",
            str(tmp_path / "o"),
            "--model",
            str(root / "model"),
            "--gate-rates",
            str(tmp_path / "missing.csv"),
        ],
    )
    assert result.exit_code == 1 and "--gate-rates" in result.output and not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="audit.valid_until must be a date YYYY-MM-DD"):
        dataclasses.replace(AUDIT, valid_until="30-06-2027")


def test_leaving_out_the_plan_vs_meeting_gives_the_same_verdict(small_synthetic):
    """The gate's benchmark skips the candidates population, which no gate check reads: same checks, same values.

    The full run's queue replay reads the pairs the plan against the meeting scored; the lean run
    scores every pair itself: the same replay, exactly.
    """
    from fairness.audit import run_fairness

    data = small_synthetic[0]
    ds, bundle = load_dataset(data), train_small(data)
    full = run_fairness(ds, bundle, params=FAIRNESS, config=PARAMS)
    lean = run_fairness(ds, bundle, params=FAIRNESS, config=PARAMS, plan_vs_meeting=False)
    assert lean.decisions.empty and len(full.decisions)
    pd.testing.assert_frame_equal(lean.gate.table, full.gate.table)
    assert lean.gate.failures == full.gate.failures
    assert full.replay is not None and len(full.replay)
    pd.testing.assert_frame_equal(full.replay, lean.replay, check_exact=True)


def test_the_replay_reads_the_pairs_the_plan_vs_meeting_scored(small_synthetic):
    """Pairs scored for the plan against the meeting are read, not scored again: the same rows, order and values."""
    from fairness.context import held_out_meetings, held_out_period, pipeline_params
    from fairness.counterfactual import KnownScores, PlanParams, candidate_decisions, score_pairs
    from features.pairs import all_meeting_pairs

    data = small_synthetic[0]
    ds, bundle = load_dataset(data), train_small(data)
    pipeline, plan_params = pipeline_params(bundle, PARAMS), PlanParams.from_config(PARAMS)
    meetings = held_out_meetings(ds, held_out_period(bundle))
    known = KnownScores(ds)
    candidate_decisions(ds, bundle, meetings[:3], pipeline=pipeline, plan_params=plan_params, tol=0.02, keep=known)
    assert len(known.by_date) == 3
    # a replay-like week: the meeting's own pairs, shuffled, plus pairs with clients who were not its candidates
    day = meetings[1]
    own = all_meeting_pairs(ds, [day])[["meeting_date", "dwelling_id", "client_id"]]
    later = ds.candidates.loc[ds.candidates["meeting_date"] == meetings[5], "client_id"].unique()
    others = [c for c in later if c not in set(own["client_id"])][:7]
    homes = own["dwelling_id"].unique()
    extra = pd.DataFrame(
        {"meeting_date": day, "dwelling_id": np.repeat(homes, len(others)), "client_id": np.tile(others, len(homes))}
    )
    pairs = pd.concat([own, extra]).sample(frac=1.0, random_state=3).reset_index(drop=True)
    found = known.lookup(pairs)[0]
    assert found.sum() == len(own) and 0 < (~found).sum()
    # several weeks in one call (the replay scores 4 weeks a call): each date reads its own pairs;
    # a week the plan against the meeting did not score is scored in full
    week2 = all_meeting_pairs(ds, [meetings[2]])[["meeting_date", "dwelling_id", "client_id"]]
    unseen = all_meeting_pairs(ds, [meetings[5]])[["meeting_date", "dwelling_id", "client_id"]]
    several = pd.concat([pairs, week2, unseen]).sample(frac=1.0, random_state=4).reset_index(drop=True)
    found = known.lookup(several)[0]
    assert found.sum() == len(own) + len(week2) and not found[several["meeting_date"].eq(meetings[5]).to_numpy()].any()
    pd.testing.assert_frame_equal(
        score_pairs(ds, bundle, several, pipeline=pipeline, plan_params=plan_params, known=known),
        score_pairs(ds, bundle, several, pipeline=pipeline, plan_params=plan_params),
        check_exact=True,
    )
    direct = score_pairs(ds, bundle, pairs, pipeline=pipeline, plan_params=plan_params)
    shared = score_pairs(ds, bundle, pairs, pipeline=pipeline, plan_params=plan_params, known=known)
    pd.testing.assert_frame_equal(shared, direct, check_exact=True)
    assert len(direct) > 0


def test_plan_vs_meeting_is_the_same_whatever_the_batches_of_dates(small_synthetic):
    """Decisions are built per batch of dates: each meeting reads only its own pairs, plan and placements."""
    from fairness.context import held_out_meetings, held_out_period, pipeline_params
    from fairness.counterfactual import PlanParams, candidate_decisions

    data = small_synthetic[0]
    ds, bundle = load_dataset(data), train_small(data)
    pipeline, plan_params = pipeline_params(bundle, PARAMS), PlanParams.from_config(PARAMS)
    meetings = held_out_meetings(ds, held_out_period(bundle))[:6]

    def tables(chunk: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        return candidate_decisions(
            ds, bundle, meetings, pipeline=pipeline, plan_params=plan_params, tol=0.02, chunk=chunk
        )

    one, six = tables(1), tables(6)
    for a, b in zip(one, six, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    decided, planned = six
    assert decided["planned"].sum() == len(planned) > 0 and decided["placed"].sum() > 0
    # a plan's home and chance are the planned pair's own, at its own meeting
    got = decided[decided["planned"] == 1].merge(
        planned,
        left_on=["meeting_date", "client_id", "planned_dwelling_id"],
        right_on=["meeting_date", "client_id", "dwelling_id"],
    )
    assert len(got) == len(planned) and (got["p_plan"] == got["probability"]).all()
