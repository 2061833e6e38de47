"""The decisions table: contract rules (one literal case per rule), supersession, export to contract rows."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from features.decisions import (
    PENDING_COLUMNS,
    WHY_NO_START,
    current_decisions,
    decisions_to_contract,
    merge_placements,
    placement_id_for,
    write_export,
)
from features.errors import UserError
from features.load import (
    ERR_DECISION_AFTER_AS_OF,
    ERR_DECISION_BEFORE_SUPERSEDED,
    ERR_DECISION_CLIENT_NO_PLACEMENT,
    ERR_DECISION_CYCLE,
    ERR_DECISION_NO_CLIENT,
    ERR_DECISION_NO_NOTE,
    ERR_DECISION_NO_REASON,
    ERR_DECISION_NOT_CANDIDATE,
    ERR_DECISION_NOT_PROPOSED,
    ERR_DECISION_NOT_VACANCY,
    ERR_DECISION_OTHER_MEETING,
    ERR_DECISION_SUPERSEDED_TWICE,
    ERR_DECISION_SUPERSEDES_ITSELF,
    ERR_DECISION_TWO_PER_CLIENT,
    ERR_DECISION_TWO_PER_HOME,
    DataError,
    load_dataset,
)
from pipelines.cli import app
from tests.conftest import tiny_decisions, tiny_tables, write_dataset


def _load(tmp_path: Path, decisions: pd.DataFrame, as_of: str = "2024-06-30"):
    return load_dataset(write_dataset(tmp_path / "d", {**tiny_tables(), "decisions": decisions}, as_of=as_of))


def _problems(tmp_path: Path, decisions: pd.DataFrame, **kw) -> list:
    with pytest.raises(DataError) as info:
        _load(tmp_path, decisions, **kw)
    return info.value.problems


def _one(problems: list, column: str, message: str):
    found = [p for p in problems if p.table == "decisions" and p.column == column and p.message.startswith(message)]
    assert len(found) == 1, [str(p) for p in problems]
    return found[0]


# --- a valid log loads -----------------------------------------------------------------------


def test_valid_decisions_load_typed(tmp_path):
    ds = _load(tmp_path, tiny_decisions())
    dec = ds.decisions
    assert dec is not None and len(dec) == 4
    assert str(dec["decided_at"].dtype) == "datetime64[ns, UTC]"
    assert dec.loc[0, "decided_at"] == pd.Timestamp("2023-01-02T09:00:00Z")  # +01:00 read as UTC
    assert dec["shown_rank"].tolist()[:3] == [1, pd.NA, 2]
    assert dec.loc[0, "reason"] is pd.NA and dec.loc[1, "client_id"] is pd.NA
    assert "decisions 4" in ds.summary()


def test_decisions_are_optional(tiny_dir):
    assert load_dataset(tiny_dir).decisions is None


def test_extra_columns_are_dropped(tmp_path):
    ds = _load(tmp_path, tiny_decisions().assign(gender="female"))
    assert "gender" not in ds.decisions.columns


def test_validate_reports_decisions(tmp_path):
    folder = write_dataset(tmp_path / "d", {**tiny_tables(), "decisions": tiny_decisions()})
    ok = CliRunner().invoke(app, ["validate", "--data", str(folder)])
    assert ok.exit_code == 0 and "decisions 4" in ok.output
    bad = tiny_decisions()
    bad.loc[0, "decision"] = "ignored_the_plan"
    bad.to_csv(folder / "decisions.csv", index=False)
    result = CliRunner().invoke(app, ["validate", "--data", str(folder)])
    assert result.exit_code == 1
    assert "decisions.decision: expected one of plan_followed" in result.output
    assert "'ignored_the_plan'" in result.output


def test_current_decisions_resolve_supersession(tmp_path):
    ds = _load(tmp_path, tiny_decisions())
    assert current_decisions(ds.decisions)["decision_id"].tolist() == ["DEC1", "DEC3", "DEC4"]


# --- column types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2023-01-02T10:00:00", "2023-01-02", "yesterday", "2023-13-02T10:00:00Z"],
)
def test_decided_at_needs_a_datetime_with_time_zone(tmp_path, value):
    dec = tiny_decisions()
    dec.loc[1, "decided_at"] = value
    p = _one(_problems(tmp_path, dec), "decided_at", "expected an ISO 8601 date-time with time zone")
    assert p.rows == (2,) and p.values == (value,)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("decision", "ignored", "expected one of plan_followed, other_candidate, no_placement, rule_exception"),
        ("reason", "gut_feeling", "expected one of client_preference"),
        ("shown_rank", "0", "expected a whole number ≥ 1"),
        ("shown_rank", "first", "expected a whole number ≥ 1"),
        ("meeting_date", "02-01-2023", "expected a date YYYY-MM-DD"),
    ],
)
def test_bad_values_are_named(tmp_path, column, value, message):
    dec = tiny_decisions()
    dec.loc[0, column] = value
    assert _one(_problems(tmp_path, dec), column, message).rows == (1,)


@pytest.mark.parametrize("column", ["decision_id", "model_version", "decided_by", "dwelling_id", "decision"])
def test_required_columns_may_not_be_empty(tmp_path, column):
    dec = tiny_decisions()
    dec.loc[2, column] = ""
    problems = _problems(tmp_path, dec)
    assert any(p.table == "decisions" and p.column == column and 3 in p.rows for p in problems), problems


def test_decision_id_is_unique(tmp_path):
    dec = tiny_decisions()
    dec.loc[3, "decision_id"] = "DEC1"
    assert _one(_problems(tmp_path, dec), "decision_id", "duplicate values").rows == (1, 4)


def test_missing_column_is_named(tmp_path):
    problems = _problems(tmp_path, tiny_decisions().drop(columns="decided_by"))
    _one(problems, "decided_by", "required column is missing")


# --- references ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "target"),
    [
        ("dwelling_id", "D999", "dwellings"),
        ("client_id", "9999", "clients"),
        ("proposed_client_id", "9999", "clients"),
        ("supersedes", "DEC0", "decisions"),
    ],
)
def test_references_resolve(tmp_path, column, value, target):
    dec = tiny_decisions()
    dec.loc[2, column] = value
    p = _one(_problems(tmp_path, dec), column, "refers to a")
    assert target in p.message and p.values == (value,)


# --- conditional emptiness ----------------------------------------------------------------------


def test_client_required_unless_no_placement(tmp_path):
    dec = tiny_decisions()
    dec.loc[0, "client_id"] = ""
    _one(_problems(tmp_path, dec), "client_id", ERR_DECISION_NO_CLIENT)


def test_no_placement_has_no_client(tmp_path):
    dec = tiny_decisions()
    dec.loc[1, "client_id"] = "0003"
    assert _one(_problems(tmp_path, dec), "client_id", ERR_DECISION_CLIENT_NO_PLACEMENT).rows == (2,)


@pytest.mark.parametrize("decision", ["other_candidate", "no_placement", "rule_exception"])
def test_reason_required_unless_plan_followed(tmp_path, decision):
    dec = tiny_decisions()
    dec.loc[2, ["decision", "reason"]] = [decision, ""]
    if decision == "no_placement":
        dec.loc[2, "client_id"] = ""
    assert _one(_problems(tmp_path, dec), "reason", ERR_DECISION_NO_REASON).rows == (3,)


@pytest.mark.parametrize("note", ["", "   "])
def test_note_required_for_reason_other(tmp_path, note):
    dec = tiny_decisions()
    dec.loc[2, "note"] = note
    assert _one(_problems(tmp_path, dec), "note", ERR_DECISION_NO_NOTE).rows == (3,)


def test_plan_followed_is_the_proposal(tmp_path):
    dec = tiny_decisions()
    dec.loc[0, "proposed_client_id"] = "0002"
    _one(_problems(tmp_path, dec), "client_id", ERR_DECISION_NOT_PROPOSED)


def test_empty_optionals_are_fine(tmp_path):
    dec = tiny_decisions()
    dec["proposed_client_id"] = ""
    dec["shown_rank"] = ""
    dec.loc[2, "note"] = "x"
    assert len(_load(tmp_path, dec).decisions) == 4


# --- links to the meeting -------------------------------------------------------------------------


def test_home_must_be_a_vacancy_at_that_meeting(tmp_path):
    dec = tiny_decisions()
    dec.loc[3, "dwelling_id"] = "D001"  # D001 was on the table on 2023-01-02, not 2023-01-09
    p = _one(_problems(tmp_path, dec), "dwelling_id", ERR_DECISION_NOT_VACANCY)
    assert p.rows == (4,) and p.values == ("D001",)


@pytest.mark.parametrize("decision", ["other_candidate", "rule_exception"])
def test_client_must_be_a_candidate_at_that_meeting(tmp_path, decision):
    dec = tiny_decisions()
    dec.loc[3, ["client_id", "decision", "reason"]] = ["0001", decision, "urgency"]
    p = _one(_problems(tmp_path, dec), "client_id", ERR_DECISION_NOT_CANDIDATE)
    assert p.rows == (4,)


def test_decided_at_not_after_as_of(tmp_path):
    dec = tiny_decisions()
    dec.loc[3, "decided_at"] = "2024-07-01T00:30:00+02:00"  # 2024-06-30 22:30 UTC: still on the as_of day
    assert len(_load(tmp_path, dec).decisions) == 4
    dec.loc[3, "decided_at"] = "2024-07-01T00:00:00Z"
    p = _one(_problems(tmp_path, dec), "decided_at", ERR_DECISION_AFTER_AS_OF.format(as_of="2024-06-30"))
    assert p.rows == (4,)


# --- one home, one client per meeting, among current records ----------------------------------


def test_two_current_decisions_for_one_home(tmp_path):
    dec = tiny_decisions()
    dec.loc[2, "supersedes"] = ""  # DEC2 and DEC3 both stand for D002
    p = _one(_problems(tmp_path, dec), "dwelling_id", ERR_DECISION_TWO_PER_HOME)
    assert p.rows == (2, 3)


def test_superseded_records_do_not_count(tmp_path):
    dec = tiny_decisions()  # DEC2 and DEC3 both for D002, but DEC3 supersedes DEC2
    assert len(_load(tmp_path, dec).decisions) == 4


def test_one_client_two_homes_at_one_meeting(tmp_path):
    dec = tiny_decisions()
    dec.loc[2, "client_id"] = "0001"  # DEC1 already gives 0001 the home D001
    p = _one(_problems(tmp_path, dec), "client_id", ERR_DECISION_TWO_PER_CLIENT)
    assert p.rows == (1, 3)


def test_same_client_superseded_is_fine(tmp_path):
    dec = tiny_decisions()
    extra = dec.iloc[[0]].assign(
        decision_id="DEC5",
        decision="other_candidate",
        client_id="0001",
        reason="client_preference",
        supersedes="DEC1",
        decided_at="2023-01-02T11:00:00+01:00",
    )
    assert len(_load(tmp_path, pd.concat([dec, extra], ignore_index=True)).decisions) == 5


# --- supersession chains ------------------------------------------------------------------------------


def test_supersedes_itself(tmp_path):
    dec = tiny_decisions()
    dec.loc[0, "supersedes"] = "DEC1"
    assert _one(_problems(tmp_path, dec), "supersedes", ERR_DECISION_SUPERSEDES_ITSELF).rows == (1,)


def test_supersedes_cycle(tmp_path):
    dec = tiny_decisions()
    dec.loc[1, "supersedes"] = "DEC3"  # DEC3 -> DEC2 -> DEC3
    p = _one(_problems(tmp_path, dec), "supersedes", ERR_DECISION_CYCLE)
    assert p.rows == (2, 3)


def test_superseded_twice(tmp_path):
    dec = tiny_decisions()
    extra = dec.iloc[[2]].assign(decision_id="DEC5", decided_at="2023-01-02T10:30:00+01:00")
    p = _one(
        _problems(tmp_path, pd.concat([dec, extra], ignore_index=True)), "supersedes", ERR_DECISION_SUPERSEDED_TWICE
    )
    assert p.rows == (3, 5)


def test_supersedes_another_meeting(tmp_path):
    dec = tiny_decisions()
    dec.loc[3, "supersedes"] = "DEC1"
    _one(_problems(tmp_path, dec), "supersedes", ERR_DECISION_OTHER_MEETING)


def test_supersedes_a_later_record(tmp_path):
    dec = tiny_decisions()
    dec.loc[2, "decided_at"] = "2023-01-02T10:01:00+01:00"  # before DEC2 at 10:05
    _one(_problems(tmp_path, dec), "supersedes", ERR_DECISION_BEFORE_SUPERSEDED)


def test_every_problem_at_once(tmp_path):
    dec = tiny_decisions()
    dec.loc[0, "client_id"] = ""
    dec.loc[2, "note"] = ""
    dec.loc[3, "dwelling_id"] = "D001"
    dec.loc[3, "decided_at"] = "2030-01-01T00:00:00Z"
    problems = _problems(tmp_path, dec)
    assert {p.column for p in problems if p.table == "decisions"} >= {"client_id", "note", "dwelling_id", "decided_at"}


def test_parquet_decided_at_with_and_without_zone(tmp_path):
    folder = write_dataset(tmp_path / "d", tiny_tables())
    dec = tiny_decisions()
    dec["decided_at"] = pd.to_datetime(dec["decided_at"], utc=True, format="ISO8601")
    dec["shown_rank"] = pd.to_numeric(dec["shown_rank"]).astype("Int64")
    dec.replace("", None).to_parquet(folder / "decisions.parquet")
    assert load_dataset(folder).decisions["decided_at"].iloc[0] == pd.Timestamp("2023-01-02T09:00:00Z")
    dec["decided_at"] = dec["decided_at"].dt.tz_localize(None)
    dec.replace("", None).to_parquet(folder / "decisions.parquet")
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    _one(info.value.problems, "decided_at", "expected an ISO 8601 date-time with time zone")


# --- export: decision records -> contract rows -------------------------------------------------------


def _records() -> list[dict]:
    """The tiny log as the app would hand it over: Python values, None for empty."""
    rows = tiny_decisions().replace("", None).to_dict("records")
    for r in rows:
        r["meeting_date"] = dt.date.fromisoformat(r["meeting_date"])
        r["decided_at"] = dt.datetime.fromisoformat(r["decided_at"].replace("Z", "+00:00"))
        r["shown_rank"] = int(r["shown_rank"]) if r["shown_rank"] else None
    return rows


def test_export_rows_and_pending_without_start():
    export = decisions_to_contract(_records())
    assert export.decisions["decision_id"].tolist() == ["DEC1", "DEC2", "DEC3", "DEC4"]
    assert export.decisions.loc[0, "decided_at"] == "2023-01-02T10:00:00+01:00"
    assert export.decisions.loc[1, "client_id"] == "" and export.decisions.loc[2, "shown_rank"] == "2"
    assert export.placements.empty
    assert export.pending["decision_id"].tolist() == ["DEC1", "DEC3", "DEC4"]  # DEC2 superseded
    assert list(export.pending.columns) == PENDING_COLUMNS and set(export.pending["why"]) == {WHY_NO_START}


def test_export_with_lag_and_given_start():
    records = _records()
    records[0]["tenancy_start"] = dt.date(2023, 3, 1)
    export = decisions_to_contract(records, tenancy_lag_days=14)
    assert export.placements.to_dict("records") == [
        {
            "placement_id": "dec-DEC1",
            "client_id": "0001",
            "dwelling_id": "D001",
            "meeting_date": "2023-01-02",
            "tenancy_start": "2023-03-01",
        },
        {
            "placement_id": "dec-DEC3",
            "client_id": "0002",
            "dwelling_id": "D002",
            "meeting_date": "2023-01-02",
            "tenancy_start": "2023-01-16",
        },
        {
            "placement_id": "dec-DEC4",
            "client_id": "0003",
            "dwelling_id": "D003",
            "meeting_date": "2023-01-09",
            "tenancy_start": "2023-01-23",
        },
    ]
    assert export.pending.empty
    assert placement_id_for("DEC1") == "dec-DEC1"


def test_export_is_deterministic_and_order_free():
    a = decisions_to_contract(_records(), tenancy_lag_days=7)
    b = decisions_to_contract(list(reversed(_records())), tenancy_lag_days=7)
    pd.testing.assert_frame_equal(a.decisions, b.decisions)
    pd.testing.assert_frame_equal(a.placements, b.placements)


@pytest.mark.parametrize("lag", [-1, 1.5, True])
def test_export_refuses_a_bad_lag(lag):
    with pytest.raises(UserError, match="tenancy_lag_days"):
        decisions_to_contract(_records(), tenancy_lag_days=lag)


def test_export_refuses_a_start_before_the_meeting():
    records = _records()
    records[0]["tenancy_start"] = "2022-12-01"
    with pytest.raises(UserError, match="DEC1"):
        decisions_to_contract(records)


def test_export_refuses_records_without_columns():
    with pytest.raises(UserError, match="decided_by"):
        decisions_to_contract([{k: v for k, v in r.items() if k != "decided_by"} for r in _records()])


def test_export_of_nothing():
    export = decisions_to_contract([])
    assert export.decisions.empty and export.placements.empty and export.pending.empty


def test_export_into_a_dataset_validates(tmp_path):
    """A dataset whose placements are not yet in the extract: the export fills them in, and it validates."""
    tables = tiny_tables()
    tables["placements"] = tables["placements"].iloc[[]]
    tables["tenancy_ends"] = tables["tenancy_ends"].iloc[[]]
    tables["nuisance_reports"] = tables["nuisance_reports"].iloc[[]]
    folder = write_dataset(tmp_path / "d", tables)
    export = decisions_to_contract(_records(), tenancy_lag_days=21)
    written = write_export(export, tmp_path / "export")
    assert sorted(p.name for p in written) == ["decisions.csv", "placements.csv"]
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    shutil.copy(tmp_path / "export" / "decisions.csv", copy / "decisions.csv")
    merged = merge_placements(pd.read_csv(copy / "placements.csv", dtype=str), export.placements)
    merged.to_csv(copy / "placements.csv", index=False)
    ds = load_dataset(copy)
    assert sorted(ds.placements["placement_id"]) == ["dec-DEC1", "dec-DEC3", "dec-DEC4"]
    assert ds.decisions["decision_id"].tolist() == ["DEC1", "DEC2", "DEC3", "DEC4"]


def test_merge_keeps_placements_the_extract_already_has(tmp_path):
    """The tiny extract already holds P1-P3 for the same (meeting, client): nothing is doubled."""
    tables = tiny_tables()
    export = decisions_to_contract(_records(), tenancy_lag_days=21)
    merged = merge_placements(tables["placements"], export.placements)
    assert merged["placement_id"].tolist() == ["P1", "P2", "P3"]
    tables["placements"] = merged
    tables["decisions"] = pd.read_csv(write_export(export, tmp_path / "x")[0], dtype=str, keep_default_na=False)
    assert len(load_dataset(write_dataset(tmp_path / "d", tables)).placements) == 3


# --- property: any log the app could write exports to rows that validate ----------------------------

_HOMES, _CLIENTS = ("D001", "D002"), ("0001", "0002", "0003")  # the tiny meeting of 2023-01-02


@st.composite
def app_logs(draw):
    """A sequence of decisions as the meeting app records them: each change supersedes the home's
    current record; a client holds at most one home; reasons and notes as the rules ask."""
    steps = draw(st.lists(st.tuples(st.sampled_from(_HOMES), st.integers(0, 3), st.integers(0, 2)), max_size=8))
    current: dict[str, dict] = {}
    records = []
    for k, (home, kind, pick) in enumerate(steps):
        held = {r["client_id"] for h, r in current.items() if h != home and r["client_id"]}
        free = [c for c in _CLIENTS if c not in held]
        decision = ("plan_followed", "other_candidate", "no_placement", "rule_exception")[kind]
        client = None if decision == "no_placement" else (free[pick % len(free)] if free else None)
        if decision != "no_placement" and client is None:
            continue
        reason = None if decision == "plan_followed" else ("other", "urgency")[pick % 2]
        record = {
            "decision_id": f"R{k}",
            "meeting_date": dt.date(2023, 1, 2),
            "dwelling_id": home,
            "client_id": client,
            "decision": decision,
            "reason": reason,
            "note": "why" if reason == "other" else None,
            "proposed_client_id": client if decision == "plan_followed" else None,
            "shown_rank": pick + 1,
            "model_version": "3",
            "decided_at": dt.datetime(2023, 1, 2, 10, k, tzinfo=dt.UTC),
            "decided_by": "u-1",
            "supersedes": current[home]["decision_id"] if home in current else None,
        }
        current[home] = record
        records.append(record)
    return records, current


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(app_logs())
def test_any_app_log_exports_to_a_valid_dataset(tmp_path_factory, case):
    records, current = case
    tables = tiny_tables()
    for name in ("placements", "tenancy_ends", "nuisance_reports"):
        tables[name] = tables[name].iloc[[]]
    export = decisions_to_contract(records, tenancy_lag_days=14)
    tables["decisions"] = export.decisions
    tables["placements"] = merge_placements(tables["placements"], export.placements)
    ds = load_dataset(write_dataset(tmp_path_factory.mktemp("log"), tables))
    if ds.decisions is not None and len(ds.decisions):
        assert set(current_decisions(ds.decisions)["decision_id"]) == {r["decision_id"] for r in current.values()}
    placed = {r["client_id"] for r in current.values() if r["client_id"]}
    assert set(ds.placements["client_id"]) == placed
