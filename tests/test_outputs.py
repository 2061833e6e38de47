"""The publish helper (all or nothing, failure injected at each step) and spreadsheet-safe CSV."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path

import pandas as pd
import pytest

from features import outputs
from features.errors import UserError
from features.outputs import Staging, check_output_file, check_output_folder, publishing, write_csv


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def old(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.csv").write_text("old a")
    (out / "b.csv").write_text("old b")
    (out / "notes.txt").write_text("mine")
    return out


def _write_new(folder: Path) -> None:
    (folder / "a.csv").write_text("new a")


def test_publish_replaces_whole_folder(old):
    with publishing(old) as tmp:
        _write_new(tmp)
    assert _tree(old) == {"a.csv": "new a"}
    assert sorted(p.name for p in old.parent.iterdir()) == ["out"]


def test_publish_keeps_foreign_files_and_drops_stale_managed_ones(old):
    with publishing(old, managed=("a.csv", "b.csv")) as tmp:
        _write_new(tmp)
    assert _tree(old) == {"a.csv": "new a", "notes.txt": "mine"}
    assert sorted(p.name for p in old.parent.iterdir()) == ["out"]


def test_publish_creates_missing_parents(tmp_path):
    with publishing(tmp_path / "x" / "y" / "out") as tmp:
        _write_new(tmp)
    assert _tree(tmp_path / "x" / "y" / "out") == {"a.csv": "new a"}


def _boom(*_a, **_k):
    raise OSError(errno.EIO, "injected failure")


@pytest.mark.parametrize(
    "step",
    ["mkdtemp", "write", "carry_over", "fsync_tree", "exchange", "rename_dance_second_rename", "parent_fsync"],
)
def test_a_failure_at_any_step_leaves_the_target_as_it_was(old, monkeypatch, step):
    before = _tree(old)
    real_rename = os.rename
    if step == "mkdtemp":
        monkeypatch.setattr(outputs.tempfile, "mkdtemp", _boom)
    elif step == "carry_over":
        monkeypatch.setattr(outputs, "_carry_over", _boom)
    elif step == "fsync_tree":
        monkeypatch.setattr(outputs, "fsync_tree", _boom)
    elif step == "exchange":
        monkeypatch.setattr(outputs, "exchange", _boom)
    elif step == "rename_dance_second_rename":
        # no renameat2 on this filesystem: the dance runs, and its second rename fails
        monkeypatch.setattr(outputs, "exchange", lambda a, b: _raise(OSError(errno.EINVAL, "unsupported")))
        calls = []

        def rename(src, dst):
            calls.append((src, dst))
            if len(calls) == 2:
                raise OSError(errno.EIO, "injected failure")
            real_rename(src, dst)

        monkeypatch.setattr(outputs.os, "rename", rename)
    elif step == "parent_fsync":
        real = outputs._fsync_path
        monkeypatch.setattr(outputs, "_fsync_path", lambda p: _boom() if p == old.parent else real(p))
    with pytest.raises(OSError, match="injected"):
        with publishing(old, managed=("a.csv", "b.csv")) as tmp:
            if step == "write":
                raise OSError(errno.ENOSPC, "injected failure: disk full")
            _write_new(tmp)
    monkeypatch.setattr(outputs.os, "rename", real_rename)
    if step == "parent_fsync":  # the swap itself happened, then the commit was undone
        assert _tree(old) == before
    assert _tree(old) == before
    assert sorted(p.name for p in old.parent.iterdir()) == ["out"]  # no temporary left behind


def _raise(exc):
    raise exc


def test_rename_dance_when_renameat2_is_unsupported(old, monkeypatch):
    monkeypatch.setattr(outputs, "exchange", lambda a, b: _raise(OSError(errno.EINVAL, "unsupported")))
    with publishing(old) as tmp:
        _write_new(tmp)
    assert _tree(old) == {"a.csv": "new a"}
    assert sorted(p.name for p in old.parent.iterdir()) == ["out"]


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("A")
    (b / "f").write_text("B")
    try:
        outputs.exchange(a, b)
    except OSError as exc:  # a filesystem without RENAME_EXCHANGE: the dance is tested above
        pytest.skip(f"renameat2 unsupported here: {exc}")
    assert (a / "f").read_text() == "B" and (b / "f").read_text() == "A"


def test_staging_undoes_earlier_swaps_when_a_later_one_fails(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second.json"
    first.mkdir()
    (first / "x").write_text("old x")
    second.write_text("old json")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == second:
            raise OSError(errno.EIO, "injected failure")
        real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)
    with pytest.raises(OSError, match="injected"), Staging() as stage:
        (stage.folder(first, "--eval-out") / "x").write_text("new x")
        stage.file(second, "--metrics-out").write_text("new json")
        stage.commit()
    monkeypatch.setattr(outputs.os, "replace", real_replace)
    assert _tree(first) == {"x": "old x"} and second.read_text() == "old json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "second.json"]


def test_staging_publishes_files_and_folders_together(tmp_path):
    with Staging() as stage:
        (stage.folder(tmp_path / "f", "--eval-out") / "x").write_text("x")
        stage.file(tmp_path / "m.json", "--metrics-out").write_text("{}")
        stage.commit()
    assert (tmp_path / "f" / "x").read_text() == "x" and (tmp_path / "m.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "m.json"]


def test_output_paths_are_checked(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"--out .*file exists and is not a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(UserError, match=r"is a file, not a folder"):
        check_output_folder(tmp_path / "file" / "sub")
    with pytest.raises(UserError, match=r"--metrics-out .* is a folder"):
        check_output_file(tmp_path, "--metrics-out")
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(UserError, match="permission denied"):
            check_output_folder(ro / "out")


# ---------------------------------------------------------------- spreadsheet-safe CSV

DANGEROUS = ['=HYPERLINK("http://x")', "+31 6", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@pytest.mark.parametrize("fast", [False, True])
def test_write_csv_neutralises_formulas_and_leaves_numbers(tmp_path, fast):
    frame = pd.DataFrame(
        {
            "text": [*DANGEROUS, "plain", None],
            "number": [-1.5, 2.0, -3.25, 0.1 + 0.2, -0.0, 1e-300, 7.0, float("nan")],
            "count": [-1, 2, 3, 4, 5, 6, 7, 8],
        }
    )
    path = tmp_path / "t.csv"
    write_csv(frame, path, fast=fast)
    back = pd.read_csv(path, dtype={"text": str}, keep_default_na=False, na_values=[""])
    assert list(back["text"][:6]) == ["'" + v for v in DANGEROUS]
    assert back["text"][6] == "plain" and pd.isna(back["text"][7])
    pd.testing.assert_series_equal(back["number"], frame["number"])  # exact floats, negatives untouched
    pd.testing.assert_series_equal(back["count"], frame["count"])
    assert frame["text"][0] == DANGEROUS[0]  # the caller's frame is not changed


def test_write_csv_neutralises_column_names(tmp_path):
    write_csv(pd.DataFrame({"=cmd": [1]}), tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "'=cmd"


def test_spreadsheet_safe_keeps_safe_text_identical():
    frame = pd.DataFrame({"id": ["0001", "D-1", "a=b"], "x": [1, 2, 3]})
    buf = io.StringIO()
    outputs.spreadsheet_safe(frame).to_csv(buf, index=False)
    assert buf.getvalue() == "id,x\n0001,1\nD-1,2\na=b,3\n"


def test_xlsx_cells_are_text_never_formulas(tmp_path):
    from openpyxl import load_workbook

    frame = pd.DataFrame(
        {
            "client_id": ["0001", '=HYPERLINK("http://x")', "@SUM(A1)"],
            "score": [0.5, -1.25, None],
            "planned": [True, False, True],
        }
    )
    path = tmp_path / "m.xlsx"
    outputs.write_xlsx({"recommendations": frame, "excluded": frame.head(0)}, path)
    book = load_workbook(path)
    assert book.sheetnames == ["recommendations", "excluded"]
    rows = list(book["recommendations"].iter_rows(values_only=False))
    assert [c.value for c in rows[0]] == ["client_id", "score", "planned"]
    cells = [c for row in rows[1:] for c in row]
    assert all(c.data_type == "s" for c in cells if c.value is not None)  # text, never "f" (formula)
    assert [c.value for c in rows[2]] == ['=HYPERLINK("http://x")', "-1.25", "False"]
    assert rows[1][0].value == "0001"  # leading zeros kept
    assert rows[3][1].value in (None, "")  # a missing number is an empty cell
    assert [c.value for c in next(book["excluded"].iter_rows())] == ["client_id", "score", "planned"]
