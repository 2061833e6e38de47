"""Publishing output folders all-or-nothing, checking output paths first, and spreadsheet-safe CSV.

Every command writes its outputs through `publishing(target)`: the files go into a
sibling temporary folder, are fsynced, and the folder is swapped in atomically
(Linux `renameat2(RENAME_EXCHANGE)` where the filesystem supports it, else a rename
dance that puts the old folder back on failure). Any failure removes the temporary
folder and leaves the target exactly as it was.

`write_csv` neutralises text cells a spreadsheet would run as a formula (OWASP
"CSV injection": a cell starting with `=`, `+`, `-`, `@`, tab or carriage return
gets a leading apostrophe); numeric columns are written unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

import pandas as pd

from features.errors import UserError

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

ERR_NOT_A_FOLDER = "{option} {path} exists and is not a folder"
ERR_IS_A_FOLDER = "{option} {path} is a folder, expected a file path"
ERR_PARENT_NOT_FOLDER = "{option} {path}: {parent} is a file, not a folder"
ERR_NOT_WRITABLE = "{option} {path}: cannot write in {parent} (permission denied)"
ERR_SYMLINK = "{option} {path} is a symbolic link: give the real folder"


# ---------------------------------------------------------------- checks before acting


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    return probe


def _check_parent(path: Path, option: str) -> None:
    parent = _nearest_existing(path.absolute().parent)
    if not parent.is_dir():
        raise UserError(ERR_PARENT_NOT_FOLDER.format(option=option, path=path, parent=parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(ERR_NOT_WRITABLE.format(option=option, path=path, parent=parent))


def check_output_folder(path: str | Path, option: str = "--out") -> Path:
    """Check that `path` can become an output folder (before any work is done); returns it."""
    path = Path(path)
    if path.is_symlink():
        raise UserError(ERR_SYMLINK.format(option=option, path=path))
    if path.exists() and not path.is_dir():
        raise UserError(ERR_NOT_A_FOLDER.format(option=option, path=path))
    _check_parent(path, option)
    return path


def check_output_file(path: str | Path, option: str) -> Path:
    """Check that `path` can become an output file (before any work is done); returns it."""
    path = Path(path)
    if path.is_dir():
        raise UserError(ERR_IS_A_FOLDER.format(option=option, path=path))
    _check_parent(path, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(ERR_NOT_WRITABLE.format(option=option, path=path, parent=path))
    return path


def check_distinct(**paths: Path | None) -> None:
    """Refuse two options that point at the same place or one inside the other."""
    given = [(k, Path(v).absolute()) for k, v in paths.items() if v is not None]
    for i, (a, pa) in enumerate(given):
        for b, pb in given[i + 1 :]:
            if pa == pb or pa in pb.parents or pb in pa.parents:
                raise UserError(f"{a} {pa} and {b} {pb} overlap: give separate places")


# ---------------------------------------------------------------- the publish helper


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder under `folder` (inclusive)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                _fsync_path(p)
        _fsync_path(Path(root))


_libc: ctypes.CDLL | None = None


def _renameat2(a: Path, b: Path, flags: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn = getattr(_libc, "renameat2", None)
    if fn is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


def exchange(a: Path, b: Path) -> None:
    """Atomically swap two existing paths (Linux renameat2 RENAME_EXCHANGE)."""
    _renameat2(a, b, _RENAME_EXCHANGE)


def _rename_dance(staged: Path, target: Path, backup: Path) -> None:
    """target -> backup, staged -> target; on failure the backup goes back (target never lost)."""
    os.rename(target, backup)
    try:
        os.rename(staged, target)
    except BaseException:
        os.rename(backup, target)
        raise
    os.rename(backup, staged)  # staged now holds the old folder, to be removed by the caller


def swap_in(staged: Path, target: Path) -> None:
    """Put the finished folder `staged` at `target`; afterwards `staged` holds the old target (if any)."""
    if not target.exists():
        os.rename(staged, target)
        return
    try:
        exchange(staged, target)
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            raise
        _rename_dance(staged, target, staged.with_name(staged.name + ".old"))


def _carry_over(old: Path, staged: Path, managed: Collection[str]) -> None:
    """Foreign entries of `old` (not written by this command) into `staged`, as hard links where possible."""
    for entry in old.iterdir():
        if entry.name in managed or (staged / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, staged / entry.name, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, staged / entry.name)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def publishing(target: str | Path, *, managed: Collection[str] | None = None, option: str = "--out") -> Iterator[Path]:
    """Yield an empty sibling folder to write into; on success it replaces `target` atomically.

    `managed`: the names this command owns inside `target`. When given, every other
    entry already in `target` (someone's notes) is carried over unchanged and managed
    files the command no longer writes are dropped. When None, `target` is replaced whole.
    On any failure the temporary folder is removed and `target` is untouched.
    """
    with Staging() as stage:
        yield stage.folder(target, option, managed=managed)
        stage.commit()


def publish(staged: Path, target: Path, *, managed: Collection[str] | None = None) -> None:
    """Swap the finished folder `staged` in at `target` (see `publishing`); `staged` then holds the old folder."""
    if managed is not None and target.is_dir():
        _carry_over(target, staged, managed)
    fsync_tree(staged)
    swap_in(staged, target)
    _fsync_path(target.parent)


def publish_file(target: str | Path, write: Callable[[Path], None], option: str) -> Path:
    """Write one file through a sibling temporary file, fsync, and rename it into place."""
    with Staging() as stage:
        write(stage.file(target, option))
        stage.commit()
    return Path(target)


class Staging:
    """Several outputs published together: all appear, or none changes.

    `folder()` and `file()` check the target and return a sibling temporary place to
    write into; `commit()` swaps everything in (if one swap fails, the ones already
    done are swapped back); leaving the `with` block removes every temporary.
    """

    def __init__(self) -> None:
        self._items: list[tuple[Path, Path, Collection[str] | None, bool]] = []
        self._done: list[tuple[Path, Path, bool]] = []

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        for staged, _target, _managed, _is_file in self._items:
            _remove(staged)
            _remove(staged.with_name(staged.name + ".old"))

    def folder(self, target: str | Path, option: str, *, managed: Collection[str] | None = None) -> Path:
        target = check_output_folder(target, option)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        self._items.append((staged, target, managed, False))
        umask = os.umask(0)
        os.umask(umask)
        staged.chmod(0o777 & ~umask)  # mkdtemp makes it private; outputs get the usual permissions
        return staged

    def file(self, target: str | Path, option: str) -> Path:
        target = check_output_file(target, option)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
        os.close(fd)
        self._items.append((Path(name), target, None, True))
        return Path(name)

    def commit(self) -> None:
        for staged, target, managed, is_file in self._items:
            if managed is not None and target.is_dir():
                _carry_over(target, staged, managed)
            if is_file:
                _fsync_path(staged)
            else:
                fsync_tree(staged)
        try:
            for staged, target, _managed, is_file in self._items:
                existed = target.exists()
                if is_file:
                    if existed:  # keep the old file beside, to put it back if a later swap fails
                        _link_or_copy(target, staged.with_name(staged.name + ".old"))
                    os.replace(staged, target)
                else:
                    swap_in(staged, target)
                self._done.append((staged, target, existed))
                _fsync_path(target.parent)
        except BaseException:
            self._undo()
            raise

    def _undo(self) -> None:
        for staged, target, existed in reversed(self._done):
            with contextlib.suppress(OSError):
                if not existed:
                    _remove(target)
                elif staged.with_name(staged.name + ".old").exists():
                    os.replace(staged.with_name(staged.name + ".old"), target)
                else:
                    swap_in(staged, target)  # staged holds the old folder: swap it back
        self._done.clear()


# ---------------------------------------------------------------- spreadsheet-safe CSV


def neutralise(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, with a leading apostrophe; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every text cell neutralised (a new frame; numeric, bool and date columns untouched)."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series):
            if isinstance(series.dtype, pd.CategoricalDtype):
                continue
            out[col] = series.map(neutralise, na_action="ignore")
    if isinstance(out.columns, pd.Index) and out.columns.dtype == object:
        out.columns = [neutralise(c) for c in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: str | Path, *, fast: bool = False) -> None:
    """Write `frame` (no index) as UTF-8 CSV for people who open it in a spreadsheet.

    Text cells starting with =, +, -, @, tab or CR get a leading apostrophe (OWASP);
    numbers are written unchanged. `fast` uses pyarrow's writer (shortest round-trip
    floats, several times faster for long tables).
    """
    safe = spreadsheet_safe(frame)
    if fast:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        table = pa.Table.from_pandas(safe, preserve_index=False)
        pacsv.write_csv(table, str(path), write_options=pacsv.WriteOptions(quoting_style="needed"))
        return
    # Python's csv writer quotes a cell with a carriage return only when CR is part of the
    # line terminator: use CRLF (RFC 4180) for tables that hold one, so the file reads back.
    has_cr = any(
        safe[c].map(lambda v: isinstance(v, str) and "\r" in v).any()
        for c in safe.columns
        if pd.api.types.is_object_dtype(safe[c]) or pd.api.types.is_string_dtype(safe[c])
    )
    safe.to_csv(path, index=False, lineterminator="\r\n" if has_cr else "\n")


def write_xlsx(sheets: dict[str, pd.DataFrame], path: str | Path) -> None:
    """Write frames as one Excel workbook, every cell as text, for people who open files in Excel.

    Text cells are never formulas (a value starting with `=` stays that text: openpyxl
    would otherwise store it as a formula), numbers are written as they read in the CSV,
    and missing values are empty cells. One sheet per frame, named by its key.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    for name, frame in sheets.items():
        sheet = book.create_sheet(title=name[:31])
        sheet.append([str(c) for c in frame.columns])
        for row in frame.itertuples(index=False):
            cells = []
            for value in row:
                cell = WriteOnlyCell(sheet, value="" if _missing(value) else str(value))
                cell.data_type = "s"  # text, never a formula
                cell.number_format = "@"
                cells.append(cell)
            sheet.append(cells)
    book.save(str(path))


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
