"""The data contract: every rule rejected with the right message, valid data accepted."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from features.contract import INT, PROFILE_COLUMNS, TABLES
from features.load import DataError, dataset_fingerprint, load_dataset
from pipelines.cli import app
from tests.conftest import tiny_decisions, tiny_tables, write_dataset


def _problems(folder) -> list:
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    return info.value.problems


def _broken(tmp_path, change, as_of="2024-06-30"):
    tables = tiny_tables()
    change(tables)
    return write_dataset(tmp_path / "broken", tables, as_of=as_of)


def test_valid_tiny_dataset_loads_with_types(tiny_dir):
    ds = load_dataset(tiny_dir)
    assert ds.as_of == pd.Timestamp("2024-06-30")
    assert ds.clients["client_id"].tolist() == ["0001", "0002", "0003"]  # leading zeros kept
    assert ds.dwellings["has_lift"].tolist() == [True, False, True]  # true/False/1
    assert ds.dwellings["shared_entrance"].tolist() == [True, True, False]
    assert str(ds.placements["tenancy_start"].dtype) == "datetime64[ns]"
    assert ds.clients["zrm_finances"].dtype.name == "Int64"
    assert "tiny" in ds.summary() and "as_of 2024-06-30" in ds.summary()


def test_parquet_reads_like_csv(tmp_path):
    tables = tiny_tables()
    folder = write_dataset(tmp_path / "pq", tables)
    csv_ds = load_dataset(folder)
    for name in ("dwellings", "placements"):
        (folder / f"{name}.csv").unlink()
        typed = csv_ds.table(name)
        typed.astype({c: "object" for c in typed.columns if str(typed[c].dtype) == "boolean"}).to_parquet(
            folder / f"{name}.parquet"
        )
    pq_ds = load_dataset(folder)
    pd.testing.assert_frame_equal(pq_ds.dwellings, csv_ds.dwellings)
    pd.testing.assert_frame_equal(pq_ds.placements, csv_ds.placements)


def test_extra_columns_are_ignored(tmp_path):
    folder = _broken(tmp_path, lambda t: t["clients"].insert(0, "gender", ["a", "b", "c"]))
    # Dropped on reading: an extra column (here one named like a protected attribute)
    # can never reach the model through a typed frame.
    assert "gender" not in load_dataset(folder).clients.columns


def test_missing_column(tmp_path):
    (p,) = _problems(_broken(tmp_path, lambda t: t["dwellings"].drop(columns="rent_eur", inplace=True)))
    assert (p.table, p.column) == ("dwellings", "rent_eur") and "missing" in p.message


def test_missing_table_and_manifest(tmp_path):
    folder = write_dataset(tmp_path / "x", tiny_tables())
    (folder / "vacancies.csv").unlink()
    (folder / "dataset.yaml").unlink()
    tables = {p.table for p in _problems(folder)}
    assert tables == {"vacancies", "dataset.yaml"}


def test_client_protected_is_optional(tmp_path):
    folder = _broken(tmp_path, lambda t: t.pop("client_protected"))
    assert load_dataset(folder).client_protected is None


def test_duplicate_id(tmp_path):
    def dup(t):
        t["dwellings"].loc[2, "dwelling_id"] = "D001"
        t["vacancies"].loc[2, "dwelling_id"] = "D002"
        t["placements"].loc[2, "dwelling_id"] = "D002"

    problems = _problems(_broken(tmp_path, dup))
    p = next(p for p in problems if p.table == "dwellings")
    assert p.column == "dwelling_id" and "unique" in p.message and p.count == 2 and p.rows == (1, 3)


def test_duplicate_key_pair(tmp_path):
    def dup(t):
        t["candidates"] = pd.concat([t["candidates"], t["candidates"].iloc[[0]]], ignore_index=True)

    (p,) = _problems(_broken(tmp_path, dup))
    assert p.table == "candidates" and "duplicate (meeting_date, client_id)" in p.message


def test_dangling_reference(tmp_path):
    (p,) = _problems(
        _broken(tmp_path, lambda t: t["dwellings"].__setitem__("neighbourhood_id", ["BU03630001", "BU9", "BU03630002"]))
    )
    assert (p.table, p.column, p.rows, p.values) == ("dwellings", "neighbourhood_id", (2,), ("BU9",))
    assert "not in neighbourhoods" in p.message


@pytest.mark.parametrize(
    ("table", "column", "value", "words"),
    [
        ("clients", "zrm_addiction", "7", "from 1 to 5"),
        ("clients", "zrm_addiction", "2.5", "a whole number"),
        ("clients", "coming_from", "street", "one of shelter, sheltered_housing"),
        ("dwellings", "rent_eur", "0", "> 0"),
        ("dwellings", "has_lift", "yes", "true/false"),
        ("dwellings", "floor", "-1", "≥ 0"),
        ("neighbourhoods", "social_housing_share", "1.2", "from 0 to 1"),
        ("placements", "tenancy_start", "01-02-2023", "YYYY-MM-DD"),
        ("tenancy_ends", "reason", "moved", "one of eviction"),
        ("clients", "care_provider", "", "empty"),
    ],
)
def test_bad_value(tmp_path, table, column, value, words):
    def change(t):
        t[table][column] = t[table][column].astype(object)
        t[table].loc[0, column] = value

    problems = _problems(_broken(tmp_path, change))
    p = next(p for p in problems if (p.table, p.column) == (table, column))
    assert words in p.message and p.rows == (1,)


def test_empty_allowed_columns(tiny_dir):
    ds = load_dataset(tiny_dir)
    assert ds.clients["avoid_district"].isna().sum() == 2


def test_tenancy_start_before_meeting(tmp_path):
    (p,) = _problems(
        _broken(
            tmp_path, lambda t: t["placements"].__setitem__("tenancy_start", ["2022-12-01", "2023-02-15", "2023-02-01"])
        )
    )
    assert (p.table, p.column, p.rows) == ("placements", "tenancy_start", (1,))


def test_end_before_start_and_after_as_of(tmp_path):
    (p,) = _problems(_broken(tmp_path, lambda t: t["tenancy_ends"].__setitem__("end_date", ["2023-01-30"])))
    assert (p.table, p.column) == ("tenancy_ends", "end_date") and "before" in p.message
    (p,) = _problems(_broken(tmp_path, lambda t: None, as_of="2023-08-01"))
    assert (p.table, p.column) == ("tenancy_ends", "end_date") and "after as_of" in p.message


def test_report_outside_tenancy(tmp_path):
    def change(t):
        t["nuisance_reports"] = pd.DataFrame(
            {
                "report_id": ["R1", "R2"],
                "placement_id": ["P1", "P2"],
                "report_date": ["2023-01-15", "2023-10-15"],
                "severity": ["minor", "serious"],
            }
        )

    (p,) = _problems(_broken(tmp_path, change))
    assert (p.table, p.column, p.count) == ("nuisance_reports", "report_date", 2)


def test_placement_must_be_vacancy_and_candidate(tmp_path):
    def change(t):
        t["placements"].loc[2, "meeting_date"] = "2023-01-02"  # D003 was on the table on 01-09 only

    problems = _problems(_broken(tmp_path, change))
    assert {(p.table, p.column) for p in problems} == {("placements", "dwelling_id")}
    assert "not a vacancy" in problems[0].message


def test_all_four_problems_listed_and_validate_exits_1(tmp_path):
    """The issue's example: missing column, duplicate id, dangling reference, end before start."""

    def change(t):
        t["dwellings"].drop(columns="rooms", inplace=True)
        t["clients"].loc[2, "client_id"] = "0001"
        t["placements"].loc[0, "dwelling_id"] = "D999"
        t["tenancy_ends"].loc[0, "end_date"] = "2023-01-01"

    folder = _broken(tmp_path, change)
    before = sorted(p.name for p in folder.iterdir())
    result = CliRunner().invoke(app, ["validate", "--data", str(folder)])
    assert result.exit_code == 1
    out = result.output
    assert "dwellings.rooms: required column is missing" in out
    assert "clients.client_id: duplicate values" in out
    assert "placements.dwelling_id: refers to a dwelling_id that is not in dwellings" in out
    assert "tenancy_ends.end_date: end_date is before" in out
    assert "Traceback" not in out
    assert sorted(p.name for p in folder.iterdir()) == before  # writes nothing


def test_validate_ok(tiny_dir):
    result = CliRunner().invoke(app, ["validate", "--data", str(tiny_dir)])
    assert result.exit_code == 0 and result.output.startswith("OK ")


# --- property: random corruptions are always reported, never crash --------------------------

_CORRUPTIONS = ("blank", "garbage", "drop_column", "dangling", "duplicate_row")


@st.composite
def corruption(draw):
    table = draw(st.sampled_from(sorted(TABLES)))
    spec = TABLES[table]
    col = draw(st.sampled_from(spec.columns))
    kind = draw(st.sampled_from(_CORRUPTIONS))
    junk = draw(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
            min_size=1,
            max_size=6,
        ).filter(lambda s: s.strip() != "" and not _parses(s, col.kind))
    )
    return table, col, kind, junk


def _parses(text: str, kind: str) -> bool:
    if kind == INT or kind == "float":
        return pd.to_numeric(pd.Series([text]), errors="coerce").notna().all()
    if kind == "bool":
        return text.strip().lower() in {"true", "false", "0", "1", "0.0", "1.0"}
    if kind == "date":
        return pd.to_datetime(pd.Series([text.strip()]), format="%Y-%m-%d", errors="coerce").notna().all()
    if kind == "datetime":
        from features.load import _coerce_column

        return bool(_coerce_column(pd.Series([text]), kind).notna().all())
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corruption())
def test_random_corruption_is_reported_never_crashes(tmp_path_factory, case):
    table, col, kind, junk = case
    tables = {**_with_profiles(), "decisions": tiny_decisions()}  # optional tables too, so they are corrupted as well
    frame = tables[table].astype(object)
    if kind == "blank" and not col.nullable:
        frame.loc[0, col.name] = ""
    elif kind == "garbage" and col.kind != "str":
        frame.loc[0, col.name] = junk
    elif kind == "drop_column":
        frame = frame.drop(columns=col.name)
    elif kind == "dangling" and any(
        r[:2] == (table, col.name) for r in __import__("features.contract", fromlist=["REFERENCES"]).REFERENCES
    ):
        frame.loc[0, col.name] = "NO-SUCH-" + junk
    elif kind == "duplicate_row" and (col.unique or TABLES[table].key):
        frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    else:
        return  # this corruption does not apply to this column; nothing to check
    tables[table] = frame
    folder = write_dataset(tmp_path_factory.mktemp("corrupt"), tables)
    with pytest.raises(DataError) as info:
        load_dataset(folder)
    assert any(p.table == table for p in info.value.problems), [str(p) for p in info.value.problems]


# --- the data version: dataset_fingerprint --------------------------------------------------------


def test_fingerprint_follows_content_and_names_not_mtime_or_write_order(tmp_path):
    tables = tiny_tables()
    a = dataset_fingerprint(write_dataset(tmp_path / "a", tables))
    # The same files written in the opposite order, then touched: the same data version.
    reversed_dir = write_dataset(tmp_path / "b", dict(reversed(list(tables.items()))))
    for file in reversed_dir.iterdir():
        os.utime(file, (1_000_000_000, 1_000_000_000))
    assert dataset_fingerprint(reversed_dir) == a
    # One changed value is another version.
    changed = tiny_tables()
    changed["dwellings"].loc[0, "rent_eur"] = 611.0
    assert dataset_fingerprint(write_dataset(tmp_path / "c", changed)) != a
    # The same bytes under another file name are another version too.
    renamed = write_dataset(tmp_path / "d", tables)
    (renamed / "nuisance_reports.csv").rename(renamed / "nuisance_reports_old.csv")
    assert dataset_fingerprint(renamed) != a
    assert len(a) == 64 and int(a, 16) >= 0


# --- optional effective-dated client profiles ---------------------------------------------------------


def _with_profiles(**changes) -> dict[str, pd.DataFrame]:
    tables = tiny_tables()
    row = {c: tables["clients"].loc[0, c] for c in PROFILE_COLUMNS}
    tables["client_profiles"] = pd.DataFrame([{"client_id": "0001", "valid_from": "2023-03-01", **row, **changes}])
    return tables


def test_client_profiles_are_optional_and_validated(tmp_path):
    assert load_dataset(write_dataset(tmp_path / "none", tiny_tables())).client_profiles is None
    ds = load_dataset(write_dataset(tmp_path / "ok", _with_profiles(household_size=2)))
    assert ds.client_profiles["household_size"].tolist() == [2]
    assert ds.client_profiles["valid_from"].tolist() == [pd.Timestamp("2023-03-01")]
    problems = _problems(
        write_dataset(tmp_path / "bad", _with_profiles(client_id="9999", household_size=0, valid_from="2030-01-01"))
    )
    found = {(p.table, p.column) for p in problems}
    assert found == {
        ("client_profiles", "client_id"),
        ("client_profiles", "household_size"),
        ("client_profiles", "valid_from"),
    }, [str(p) for p in problems]
    assert any("after as_of 2024-06-30" in p.message for p in problems)


_CELLS = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "1", " 2 ", "1.5", "1e3", "inf", "-inf", "nan", "true", " FALSE", "0.0", "abc"]),
    st.sampled_from(["2024-01-01", " 2024-02-29 ", "2023-02-29", "2024-01-01T10:00:00Z", "2024-01-01 10:00+01:00"]),
    st.text(max_size=4),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_CELLS, max_size=12), st.sampled_from(["str", INT, "float", "bool", "date", "datetime"]))
def test_a_column_is_coerced_as_its_values_one_by_one(cells, kind):
    """The loader parses each distinct value once (a million rows hold few distinct dates and ids):
    the column it returns must equal the values coerced one at a time, repeats and blanks included."""
    from features.load import _coerce_column

    raw = pd.Series(cells + cells[:3], dtype=object)  # repeats on purpose
    whole = _coerce_column(raw, kind)
    alone = [_coerce_column(pd.Series([v], dtype=object), kind).iloc[0] for v in raw]
    assert len(whole) == len(raw) and whole.index.equals(raw.index)
    for got, want in zip(whole.tolist(), alone, strict=True):
        assert (pd.isna(got) and pd.isna(want)) or got == want
