"""`matchwijs recommend` end to end: the five contract files, additivity from the files, bad input, all-or-nothing writes."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import UserError
from features.load import load_dataset
from features.pairs import FEATURE_NAMES, all_meeting_pairs, build_pair_features
from pipelines import recommend as rec
from pipelines.recommend import OUTPUT_FILES, load_config, resolve_model, write_outputs
from planning.assignment import plan_assignment
from reports.suggestions import check_meeting, meeting_outputs
from synthetic.meeting import synthetic_meeting_tables, write_tables
from synthetic.stand_in import history_bundle, jittered, stand_in_bundle
from tests.conftest import tiny_tables, write_dataset

CONTRACT = {
    "recommendations.csv": ["meeting_date", "dwelling_id", "client_id", "rank", "score", "base_value", "reasons"],
    "explanations.csv": ["dwelling_id", "client_id", "feature", "value", "contribution"],
    "assignment.csv": ["dwelling_id", "client_id", "score"],
    "excluded.csv": ["dwelling_id", "client_id", "rule"],
}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed command line, as a user runs it (UserError handling included)."""
    return subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype={"dwelling_id": str, "client_id": str})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny dataset folder and a stand-in model folder."""
    root = tmp_path_factory.mktemp("rec")
    data = write_dataset(root / "tiny", tiny_tables())
    ds = load_dataset(data)
    cfg = load_config()
    X = build_pair_features(
        ds, all_meeting_pairs(ds, ds.vacancies["meeting_date"].unique()), params=cfg.features, rules=cfg.amounts
    )
    bundle = stand_in_bundle(jittered(X, 400, seed=1), n_trees=25, num_leaves=6, min_data_in_leaf=5)
    return data, bundle.save(root / "model"), ds, cfg, bundle


def test_cli_writes_an_excel_workbook_on_request(tiny, tmp_path):
    from openpyxl import load_workbook

    data, model, *_ = tiny
    out = tmp_path / "out"
    proc = run_cli(
        "recommend", "--data", str(data), "--meeting", "2023-01-02", "--out", str(out), "--model", str(model), "--xlsx"
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUT_FILES, "meeting.xlsx"])
    book = load_workbook(out / "meeting.xlsx")
    assert book.sheetnames == ["recommendations", "assignment", "excluded"]
    recs = read(out, "recommendations.csv")
    assert book["recommendations"].max_row == len(recs) + 1
    header = [c.value for c in next(book["recommendations"].iter_rows())]
    assert header == list(recs.columns)


def test_cli_end_to_end_on_the_tiny_dataset(tiny, tmp_path):
    data, model, *_ = tiny
    out = tmp_path / "out"
    proc = run_cli(
        "recommend", "--data", str(data), "--meeting", "2023-01-02", "--out", str(out), "--model", str(model)
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert "warning: passend toewijzen: the 2023 amounts are marked verified: false" in proc.stderr
    assert "1 home(s) without any eligible candidate: D002" in proc.stderr
    assert "plan places 1" in proc.stdout
    frames = {name: read(out, name) for name in CONTRACT}
    for name, cols in CONTRACT.items():
        assert list(frames[name].columns[: len(cols)]) == cols, name

    recs, expl = frames["recommendations.csv"], frames["explanations.csv"]
    assert recs["client_id"].tolist() and set(recs["client_id"]) <= {"0001", "0002", "0003"}  # leading zeros kept
    assert (recs["dwelling_id"] == "D001").all() and sorted(recs["rank"]) == [1, 2, 3]
    assert recs.sort_values("rank")["score"].is_monotonic_decreasing
    assert recs["reasons"].str.len().gt(0).all()
    # every model feature for every recommendation, additive to the score, read back from the files
    assert len(expl) == len(recs) * len(FEATURE_NAMES)
    total = expl.groupby(["dwelling_id", "client_id"])["contribution"].sum()
    keyed = recs.set_index(["dwelling_id", "client_id"])
    np.testing.assert_allclose(keyed["base_value"] + total.reindex(keyed.index), keyed["score"], atol=1e-6, rtol=0)

    plan = frames["assignment.csv"]
    assert plan["dwelling_id"].is_unique and plan["client_id"].is_unique and len(plan) == 1
    # The plan chooses within the priority pool: 2 × 1 home = the two longest-waiting clients (all
    # wait 0 weeks at the first meeting, so ties go by client id: 0001 and 0002), the better of them.
    pool = recs[recs["client_id"].isin(["0001", "0002"])]
    assert plan.iloc[0]["client_id"] == pool.loc[pool["score"].idxmax(), "client_id"]
    excluded = frames["excluded.csv"]
    assert sorted(excluded["client_id"]) == ["0001", "0002", "0003"] and set(excluded["rule"]) == {"passend_toewijzen"}
    html = (out / "meeting.html").read_text(encoding="utf-8")
    assert "Home D001" in html and "Home D002" in html


def test_cli_in_dutch_with_a_complex_cap(tiny, tmp_path):
    data, model, *_ = tiny
    out = tmp_path / "nl"
    proc = run_cli(
        "recommend",
        "--data",
        str(data),
        "--meeting",
        "2023-01-09",
        "--out",
        str(out),
        "--model",
        str(model),
        "--lang",
        "nl",
        "--complex-cap",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "Matchingsoverleg 2023-01-09" in (out / "meeting.html").read_text(encoding="utf-8")
    reasons = read(out, "recommendations.csv")["reasons"]
    assert reasons.str.contains(r"\([+−]\d+,\d\d\)").all()  # Dutch decimal comma in every contribution


@pytest.mark.parametrize(
    "date, expected",
    [
        (
            "2023-01-05",
            "no vacancies and no candidates at meeting 2023-01-05. Nearest meeting dates with vacancies and candidates: "
            "2023-01-02 (before), 2023-01-09 (after)",
        ),
        ("2022-12-01", "Nearest meeting dates with vacancies and candidates: 2023-01-02 (after) (the dataset has 2,"),
        ("2023-13-01", "--meeting '2023-13-01' is not a date; expected YYYY-MM-DD"),
    ],
)
def test_bad_meeting_date_exits_1_without_traceback_and_writes_nothing(tiny, tmp_path, date, expected):
    data, model, *_ = tiny
    out = tmp_path / "never"
    proc = run_cli("recommend", "--data", str(data), "--meeting", date, "--out", str(out), "--model", str(model))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert expected in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_date_with_vacancies_but_no_candidates(tiny, tmp_path):
    t = tiny_tables()
    t["vacancies"] = pd.concat(
        [t["vacancies"], pd.DataFrame({"meeting_date": ["2023-01-16"], "dwelling_id": ["D001"]})]
    )
    ds = load_dataset(write_dataset(tmp_path / "d", t))
    with pytest.raises(UserError, match=r"no candidates at meeting 2023-01-16\. .*2023-01-09 \(before\)"):
        check_meeting(ds, pd.Timestamp("2023-01-16"))


def test_bad_data_exits_1_without_traceback(tmp_path, tiny):
    _, model, *_ = tiny
    t = tiny_tables()
    t["dwellings"]["rooms"] = ["two", "3", "1"]
    data = write_dataset(tmp_path / "bad", t)
    proc = run_cli(
        "recommend",
        "--data",
        str(data),
        "--meeting",
        "2023-01-02",
        "--out",
        str(tmp_path / "out"),
        "--model",
        str(model),
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "dwellings.rooms" in proc.stderr and not (tmp_path / "out").exists()


def test_outputs_are_all_or_nothing(tiny, tmp_path, monkeypatch):
    _, _, ds, cfg, bundle = tiny
    outputs = meeting_outputs(ds, pd.Timestamp("2023-01-02"), bundle, cfg)
    out = tmp_path / "out"
    out.mkdir()
    (out / "recommendations.csv").write_text("old\n")
    (out / "notes.txt").write_text("mine\n")
    real = rec._write_csv

    def failing(frame, path):
        if path.name == "assignment.csv":
            raise OSError("disk full")
        real(frame, path)

    monkeypatch.setattr(rec, "_write_csv", failing)
    with pytest.raises(OSError):
        write_outputs(outputs, out)
    assert (out / "recommendations.csv").read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out"
    ]
    monkeypatch.setattr(rec, "_write_csv", real)
    write_outputs(outputs, out)
    assert sorted(p.name for p in out.iterdir()) == sorted([*OUTPUT_FILES, "notes.txt"])
    assert (out / "notes.txt").read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        write_outputs(outputs, tmp_path / "file")


def test_protected_attributes_are_never_read(tiny):
    _, _, ds, cfg, bundle = tiny

    class Trap:
        def __getattr__(self, name):
            raise AssertionError("client_protected was read")

        def __getitem__(self, key):
            raise AssertionError("client_protected was read")

    trapped = dataclasses.replace(ds, client_protected=Trap())
    outputs = meeting_outputs(trapped, pd.Timestamp("2023-01-02"), bundle, cfg)
    assert len(outputs.recommendations) == 3


def test_model_resolution(tiny, tmp_path, monkeypatch):
    _, model, *_ = tiny
    assert resolve_model(str(model)).feature_names == tuple(FEATURE_NAMES)
    monkeypatch.setenv("MATCHWIJS_MLFLOW_DIR", str(tmp_path / "no-store"))
    with pytest.raises(UserError, match="no trained model"):
        resolve_model(None)
    with pytest.raises(UserError, match="no trained model"):
        resolve_model("3")
    with pytest.raises(UserError, match="/nowhere/model: no such model folder"):  # the path, not the store
        resolve_model("/nowhere/model")


def test_bigger_meeting_plan_is_optimal_and_ranks_are_consistent(tmp_path):
    tables, meeting, as_of = synthetic_meeting_tables(
        n_vacancies=12, n_candidates=60, history_weeks=20, weekly_history=10, seed=3
    )
    ds = load_dataset(write_tables(tmp_path / "d", tables, as_of=as_of))
    cfg = load_config()
    bundle = history_bundle(ds, cfg, n_trees=40, num_leaves=7)
    capped = dataclasses.replace(cfg, assignment=dataclasses.replace(cfg.assignment, complex_cap=1))
    outputs = meeting_outputs(ds, pd.Timestamp(meeting), bundle, capped)
    recs, plan, excluded = outputs.recommendations, outputs.assignment, outputs.excluded
    assert len(recs) + len(excluded) == 12 * 60
    assert (recs.groupby("dwelling_id")["rank"].apply(lambda r: sorted(r) == list(range(1, len(r) + 1)))).all()
    assert plan["dwelling_id"].is_unique and plan["client_id"].is_unique
    assert plan.groupby("complex_id").size().max() <= 1
    # who: the policy's clients (all placed); which home: the integer program's best fit placing them all
    from planning.priority import policy_clients, waiting_weeks

    complexes = ds.dwellings.set_index("dwelling_id")["complex_id"]
    pairs = recs.assign(complex_id=recs["dwelling_id"].map(complexes))
    allowed = policy_clients(pairs, waiting_weeks(ds, pairs), capped.assignment, benefit="p_sustained")
    assert set(plan["client_id"]) == allowed and recs.loc[recs["in_pool"], "client_id"].nunique() == len(allowed)
    pool = pairs[pairs["client_id"].isin(allowed)]
    best = plan_assignment(
        pool.assign(bonus=pool["p_sustained"] + 100.0), benefit="bonus", complex_cap=1, solver="milp"
    )
    assert len(best) == len(plan)
    assert plan["p_sustained"].sum() == pytest.approx(best["p_sustained"].sum(), abs=1e-9)
    assert set(plan["why"]) and plan["waiting_weeks"].notna().all()
    assert set(plan["better_or_worse_off"]) <= {"as_good", "worse_off"}
    assert (plan["p_change"] <= 1e-12).all()
    assert recs["planned"].sum() == len(plan)


def test_meeting_where_every_pair_is_excluded(tiny, tmp_path):
    _, _, ds, cfg, bundle = tiny
    strict = dataclasses.replace(
        cfg, eligibility=dataclasses.replace(cfg.eligibility, min_rooms_by_household_size=(9,))
    )
    outputs = meeting_outputs(ds, pd.Timestamp("2023-01-02"), bundle, strict)
    assert outputs.recommendations.empty and outputs.explanations.empty and outputs.assignment.empty
    assert len(outputs.excluded) == 6 and set(outputs.excluded["rule"]) == {"rooms", "passend_toewijzen"}
    assert "2 home(s) without any eligible candidate: D001, D002" in outputs.warnings
    out = write_outputs(outputs, tmp_path / "out")
    for name, cols in CONTRACT.items():
        assert list(pd.read_csv(out / name).columns[: len(cols)]) == cols, name


def test_shuffled_input_rows_give_identical_output_files(tmp_path):
    """The same meeting, with every input table's rows in another order, writes byte-identical files."""
    tables, meeting, as_of = synthetic_meeting_tables(
        n_vacancies=8, n_candidates=30, history_weeks=12, weekly_history=8, seed=5
    )
    shuffled = {name: frame.sample(frac=1, random_state=11).reset_index(drop=True) for name, frame in tables.items()}
    assert any(not shuffled[n].equals(tables[n]) for n in tables)
    ds = load_dataset(write_tables(tmp_path / "a" / "data", tables, as_of=as_of))
    ds_shuffled = load_dataset(write_tables(tmp_path / "b" / "data", shuffled, as_of=as_of))
    cfg = load_config()
    bundle = history_bundle(ds, cfg, n_trees=30, num_leaves=7)
    for name, data in (("a", ds), ("b", ds_shuffled)):
        write_outputs(meeting_outputs(data, pd.Timestamp(meeting), bundle, cfg, lang="nl"), tmp_path / name / "out")
    for name in OUTPUT_FILES:
        first, second = ((tmp_path / d / "out" / name).read_text(encoding="utf-8") for d in ("a", "b"))
        if name == "meeting.html":  # the sheet says when it was made, to the minute
            first, second = (re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d", "", t) for t in (first, second))
        assert first == second, name
