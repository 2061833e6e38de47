"""Reading a dataset folder into typed, validated frames.

`load_dataset(path)` reads every table (CSV or Parquet), coerces each column to
its contract type, runs the pandera schemas and the cross-table rules, and
either returns a `Dataset` or raises `DataError` listing *every* problem found.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import yaml

from features.config import TextLoader, shorten
from features.contract import (
    BOOL,
    DATE,
    DATETIME,
    DEFAULT_REGION,
    FLOAT,
    INT,
    NO_PLACEMENT,
    PLAN_FOLLOWED,
    REASON_OTHER,
    REFERENCES,
    REGION,
    STR,
    TABLES,
    TableSpec,
    on_distinct,
    schema_for,
)
from features.errors import UserError

MANIFEST = "dataset.yaml"
MAX_ROWS_SHOWN = 5
MAX_VALUE_SHOWN = 60  # characters of an offending value echoed in a message
MAX_TABLE_BYTES = 2 * 1024**3  # a table file larger than this is refused (2 GiB)
MAX_MANIFEST_BYTES = 1024**2

ERR_NO_FOLDER = "dataset folder {path} does not exist or is not a folder"
ERR_NO_TABLE = "table file missing: expected {name}.csv or {name}.parquet"
ERR_TWO_FILES = "both {name}.csv and {name}.parquet exist: keep one"
ERR_UNREADABLE = "cannot read {file}: {error}"
ERR_MISSING_COLUMN = "required column is missing"
ERR_NO_MANIFEST = "dataset.yaml is missing: it must hold at least `as_of: YYYY-MM-DD`"
ERR_BAD_MANIFEST = "dataset.yaml must be a mapping with `as_of: YYYY-MM-DD`; {detail}"
ERR_SYMLINK_OUTSIDE = "{file} is a symbolic link to {target}, outside the dataset folder: copy the file in instead"
ERR_TOO_LARGE = "{file} is {size:,} bytes, more than the {limit:,} allowed for one table"
ERR_NOT_UTF8 = "{file} is not UTF-8 text: byte {byte} at position {pos}; save it as UTF-8"
ERR_NOT_A_FILE = "{file} is not a regular file"
ERR_NOT_FINITE = "infinite or NaN values, expected {expected}"

# ISO 8601 date-time that names its time zone (Z or an offset); a bare local time is ambiguous.
_ISO_DATETIME_TZ = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$"

_TRUE = {"true", "1", "1.0"}
_FALSE = {"false", "0", "0.0"}


@dataclass(frozen=True)
class Problem:
    """One contract violation: where it is, which rows, and what was expected."""

    table: str
    column: str | None
    message: str
    rows: tuple[int, ...] = ()
    count: int = 0
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = self.table + (f".{self.column}" if self.column else "")
        text = f"{where}: {self.message}"
        if self.count:
            shown = ", ".join(str(r) for r in self.rows)
            more = f" and {self.count - len(self.rows)} more" if self.count > len(self.rows) else ""
            text += f" — {self.count} row{'s' if self.count != 1 else ''} (row {shown}{more})"
        if self.values:
            text += "; found " + ", ".join(shorten(v, MAX_VALUE_SHOWN) for v in self.values)
        return text


class DataError(UserError):
    """A dataset breaks the contract; `problems` lists every violation found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def region_of(frame: pd.DataFrame) -> pd.Series:
    """The `region` of each row (vacancies, candidates, pairs); DEFAULT_REGION where a frame has none."""
    if REGION in frame.columns:
        return frame[REGION].astype(object)
    return pd.Series(DEFAULT_REGION, index=frame.index, dtype=object)


@dataclass(frozen=True)
class Dataset:
    """A validated dataset: one typed frame per table plus the manifest."""

    path: Path
    as_of: pd.Timestamp
    name: str
    description: str
    neighbourhoods: pd.DataFrame
    care_providers: pd.DataFrame
    dwellings: pd.DataFrame
    clients: pd.DataFrame
    client_protected: pd.DataFrame | None
    vacancies: pd.DataFrame
    candidates: pd.DataFrame
    placements: pd.DataFrame
    tenancy_ends: pd.DataFrame
    nuisance_reports: pd.DataFrame
    client_profiles: pd.DataFrame | None = None  # optional effective-dated profile history
    decisions: pd.DataFrame | None = None  # optional: the meeting's decision records (decided_at in UTC)

    def table(self, name: str) -> pd.DataFrame | None:
        return getattr(self, name)

    @property
    def regions(self) -> list[str]:
        """The regional meetings in the data, sorted ([DEFAULT_REGION] when the data have no regions)."""
        return sorted(set(region_of(self.vacancies)) | set(region_of(self.candidates)))

    def for_region(self, region: str) -> Dataset:
        """The same data with only one region's vacancies and candidates (history tables stay whole)."""
        if region not in self.regions:
            known = ", ".join(r or "(none)" for r in self.regions)
            raise UserError(f"region {region!r} is not in {self.path}: expected one of {known}")
        return dataclasses.replace(
            self,
            vacancies=self.vacancies[(region_of(self.vacancies) == region).to_numpy()].reset_index(drop=True),
            candidates=self.candidates[(region_of(self.candidates) == region).to_numpy()].reset_index(drop=True),
        )

    def summary(self) -> str:
        """One line: row counts, meeting date range and as_of."""
        counts = ", ".join(f"{n} {len(t)}" for n in TABLES if (t := self.table(n)) is not None)
        meetings = self.vacancies["meeting_date"]
        span = f"meetings {meetings.min():%Y-%m-%d}..{meetings.max():%Y-%m-%d}" if len(meetings) else "no meetings"
        return f"{self.name or self.path.name}: {counts}; {span}; as_of {self.as_of:%Y-%m-%d}"


def _row_numbers(mask: pd.Series) -> tuple[tuple[int, ...], int]:
    """1-based data-row numbers (row 1 = the first row under the header) of True entries."""
    idx = np.flatnonzero(mask.to_numpy())
    return tuple(int(i) + 1 for i in idx[:MAX_ROWS_SHOWN]), int(idx.size)


def _sample_values(values: pd.Series) -> tuple[str, ...]:
    return tuple(str(v) for v in pd.unique(values.astype(str))[:MAX_ROWS_SHOWN])


def _read_manifest(folder: Path, problems: list[Problem]) -> dict:
    file = folder / MANIFEST
    if not file.is_file():
        problems.append(Problem("dataset.yaml", None, ERR_NO_MANIFEST))
        return {}
    reason = _file_problem(folder, file, MAX_MANIFEST_BYTES)
    if reason:
        problems.append(Problem("dataset.yaml", None, reason))
        return {}
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = repr(raw[exc.start : exc.start + 1])
        problems.append(Problem("dataset.yaml", None, ERR_NOT_UTF8.format(file=MANIFEST, byte=byte, pos=exc.start)))
        return {}
    try:
        # dates stay text (PyYAML would turn 2024-02-30 into an exception, 2024-02-03 into a date)
        manifest = yaml.load(text, Loader=TextLoader)
    except yaml.YAMLError as exc:
        detail = f"it is not valid YAML ({str(exc)[:300]})"
        problems.append(Problem("dataset.yaml", None, ERR_BAD_MANIFEST.format(detail=detail)))
        return {}
    if not isinstance(manifest, dict):
        problems.append(Problem("dataset.yaml", None, ERR_BAD_MANIFEST.format(detail="found something else")))
        return {}
    as_of = manifest.get("as_of")
    try:
        manifest["as_of"] = pd.Timestamp(dt.date.fromisoformat(str(as_of).strip()))
    except (TypeError, ValueError):
        detail = f"found as_of={shorten(as_of, MAX_VALUE_SHOWN)}, not a real date"
        problems.append(Problem("dataset.yaml", "as_of", ERR_BAD_MANIFEST.format(detail=detail)))
        manifest["as_of"] = None
    return manifest


def _file_problem(folder: Path, file: Path, limit: int) -> str | None:
    """Why a table or manifest file must not be read (symlink out of the folder, not a file, too large), or None."""
    try:
        real, root = file.resolve(strict=True), folder.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        return ERR_UNREADABLE.format(file=file.name, error=getattr(exc, "strerror", None) or exc)
    if file.is_symlink() and root not in real.parents:
        return ERR_SYMLINK_OUTSIDE.format(file=file.name, target=real)
    if not real.is_file():
        return ERR_NOT_A_FILE.format(file=file.name)
    size = real.stat().st_size
    if size > limit:
        return ERR_TOO_LARGE.format(file=file.name, size=size, limit=limit)
    return None


def _csv_text_problem(file: Path) -> str | None:
    """A CSV that is not UTF-8 (checked in chunks, so a large file is never held twice), or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    pos = 0
    try:
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    at = pos + exc.start
                    return ERR_NOT_UTF8.format(file=file.name, byte=repr(chunk[exc.start : exc.start + 1]), pos=at)
                pos += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return ERR_NOT_UTF8.format(file=file.name, byte="(cut off)", pos=pos)
    except OSError as exc:
        return ERR_UNREADABLE.format(file=file.name, error=exc.strerror or exc)
    return None


def _present(path: Path) -> bool:
    return path.exists() or path.is_symlink()  # a dangling link is there, and unreadable


def _read_raw(folder: Path, spec: TableSpec, problems: list[Problem]) -> pd.DataFrame | None:
    csv, parquet = folder / f"{spec.name}.csv", folder / f"{spec.name}.parquet"
    if _present(csv) and _present(parquet):
        problems.append(Problem(spec.name, None, ERR_TWO_FILES.format(name=spec.name)))
        return None
    file = csv if _present(csv) else parquet if _present(parquet) else None
    if file is None:
        if spec.required:
            problems.append(Problem(spec.name, None, ERR_NO_TABLE.format(name=spec.name)))
        return None
    reason = _file_problem(folder, file, MAX_TABLE_BYTES)
    if reason is None and file.suffix == ".csv":
        reason = _csv_text_problem(file)
    if reason:
        problems.append(Problem(spec.name, None, reason))
        return None
    try:
        if file.suffix == ".csv":
            # Everything as text first: ids keep leading zeros, and each column is
            # then coerced by its contract type with precise error messages.
            return pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8")
        return pd.read_parquet(file)
    except Exception as exc:
        error = shorten(str(exc), 200)[1:-1] if len(str(exc)) > 200 else str(exc)
        problems.append(Problem(spec.name, None, ERR_UNREADABLE.format(file=file.name, error=error)))
        return None


def _parse_numbers(raw: pd.Series) -> pd.Series:
    """Numbers as floats (NaN where a value is not a number; infinities kept so they can be named)."""
    return on_distinct(raw, lambda u: pd.to_numeric(u, errors="coerce").astype(float))


def _coerce_column(raw: pd.Series, kind: str, numbers: pd.Series | None = None) -> pd.Series:
    """Coerce one raw column to its contract type; unparseable values become NA.

    `numbers`: `_parse_numbers(raw)` when the caller has it already (INT, FLOAT).
    """
    if kind == STR:
        if pd.api.types.is_float_dtype(raw):  # parquet ids stored as numbers
            raw = raw.map(lambda v: v if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v)))
        out = raw.astype("string")
        empty = out.to_numpy(dtype=object, na_value=None) == ""
        return out.where(~np.asarray(empty, dtype=bool))
    if kind == BOOL:
        if pd.api.types.is_bool_dtype(raw):
            return raw.astype("boolean")

        def as_bool(u: pd.Series) -> pd.Series:
            text = u.astype("string").str.strip().str.lower()
            out = pd.Series(pd.NA, index=u.index, dtype="boolean")
            out[text.isin(_TRUE).fillna(False).to_numpy(bool)] = True
            out[text.isin(_FALSE).fillna(False).to_numpy(bool)] = False
            return out

        return on_distinct(raw, as_bool).astype("boolean")
    if kind in (INT, FLOAT):
        num = (_parse_numbers(raw) if numbers is None else numbers).astype("Float64")
        if kind == FLOAT:
            return num
        whole = (num.round() == num) & ~num.isin([np.inf, -np.inf])
        return num.where(whole.fillna(False)).round().astype("Int64")
    if kind == DATE:
        if pd.api.types.is_datetime64_any_dtype(raw):
            return pd.to_datetime(raw).dt.tz_localize(None).astype("datetime64[ns]")
        return on_distinct(
            raw,
            lambda u: pd.to_datetime(u.astype("string").str.strip(), format="%Y-%m-%d", errors="coerce").astype(
                "datetime64[ns]"
            ),
        ).astype("datetime64[ns]")
    if kind == DATETIME:
        if pd.api.types.is_datetime64_any_dtype(raw):
            stamps = pd.to_datetime(raw)
            if stamps.dt.tz is None:  # a time without a zone is not a point in time
                return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
            return stamps.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")

        def as_stamp(u: pd.Series) -> pd.Series:
            text = u.astype("string").str.strip()
            text = text.where(text.str.match(_ISO_DATETIME_TZ).fillna(False).astype(bool))
            return pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce").astype("datetime64[ns, UTC]")

        return on_distinct(raw, as_stamp).astype("datetime64[ns, UTC]")
    raise ValueError(f"unknown column kind {kind}")


def _typed_table(raw: pd.DataFrame, spec: TableSpec, problems: list[Problem]) -> pd.DataFrame:
    """Coerce columns to their types, then check the pandera schema; record problems.

    Returns the typed frame of the columns that are present (extra columns dropped),
    so cross-table rules can still be checked when a column is missing.
    """
    present = [c for c in spec.columns if c.name in raw.columns]
    for col in spec.columns:
        if col.name not in raw.columns and not col.optional:
            problems.append(Problem(spec.name, col.name, f"{ERR_MISSING_COLUMN} (expected {col.expectation()})"))
    raw = raw.reset_index(drop=True)
    typed = pd.DataFrame(index=raw.index)
    unparsed: dict[str, pd.Series] = {}
    for col in present:
        numbers = _parse_numbers(raw[col.name]) if col.kind in (INT, FLOAT) else None
        series = _coerce_column(raw[col.name], col.kind, numbers)
        bad = series.isna() & raw[col.name].notna() if col.kind != STR else pd.Series(False, index=raw.index)
        infinite = pd.Series(False, index=raw.index)
        if numbers is not None:
            infinite = pd.Series(np.isinf(numbers.to_numpy(dtype=float, na_value=np.nan)), index=raw.index)
            bad &= ~infinite
            series = series.where(~infinite)
        if bad.any():
            rows, count = _row_numbers(bad)
            problems.append(
                Problem(
                    spec.name,
                    col.name,
                    f"expected {col.expectation()}",
                    rows,
                    count,
                    _sample_values(raw[col.name][bad]),
                )
            )
        if infinite.any():
            rows, count = _row_numbers(infinite)
            problems.append(
                Problem(
                    spec.name,
                    col.name,
                    ERR_NOT_FINITE.format(expected=col.expectation()),
                    rows,
                    count,
                    _sample_values(raw[col.name][infinite]),
                )
            )
            bad |= infinite
        unparsed[col.name] = bad
        typed[col.name] = series
    key = spec.key if spec.key and all(k in typed.columns for k in spec.key) else None
    schema = schema_for(TableSpec(spec.name, tuple(present), key=key))
    try:
        schema.validate(typed, lazy=True)
    except pa.errors.SchemaErrors as exc:
        problems.extend(_schema_problems(exc.failure_cases, typed, spec, unparsed))
    return typed


def _schema_problems(cases: pd.DataFrame, typed: pd.DataFrame, spec: TableSpec, unparsed: dict) -> list[Problem]:
    """Turn pandera failure cases into one Problem per (column, check)."""
    found: list[Problem] = []
    cols = {c.name: c for c in spec.columns}
    key_rows = pd.Series(False, index=typed.index)
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        idx = pd.to_numeric(group["index"], errors="coerce").dropna().astype(int).unique()
        mask = pd.Series(False, index=typed.index)
        mask.iloc[idx] = True
        if check == "multiple_fields_uniqueness":
            key_rows |= mask
            continue
        if column not in cols:
            continue
        mask &= ~unparsed[column]  # already reported as unparseable
        if not mask.any():
            continue
        if check == "field_uniqueness":
            message = "duplicate values, expected unique"
        elif check == "not_nullable":
            message = f"empty values, expected {cols[column].expectation()}"
        else:
            message = f"expected {cols[column].expectation()}"
        rows, count = _row_numbers(mask)
        found.append(Problem(spec.name, column, message, rows, count, _sample_values(typed.loc[mask, column].dropna())))
    if key_rows.any():
        rows, count = _row_numbers(key_rows)
        found.append(
            Problem(
                spec.name,
                None,
                f"duplicate ({', '.join(spec.key or ())}) pairs, expected each at most once",
                rows,
                count,
            )
        )
    return found


def _has(tables: dict[str, pd.DataFrame], table: str, *columns: str) -> bool:
    return table in tables and all(c in tables[table].columns for c in columns)


def _check_references(tables: dict[str, pd.DataFrame], problems: list[Problem]) -> None:
    for table, column, ref_table, ref_column in REFERENCES:
        if not (_has(tables, table, column) and _has(tables, ref_table, ref_column)):
            continue
        values = tables[table][column]
        bad = values.notna() & ~values.isin(tables[ref_table][ref_column].dropna())
        if bad.any():
            rows, count = _row_numbers(bad)
            problems.append(
                Problem(
                    table,
                    column,
                    f"refers to a {ref_column} that is not in {ref_table}",
                    rows,
                    count,
                    _sample_values(values[bad]),
                )
            )


def _flag(problems: list[Problem], table: str, column: str, mask: pd.Series, message: str, values: pd.Series) -> None:
    mask = mask.fillna(False).astype(bool)
    if mask.any():
        rows, count = _row_numbers(mask)
        shown = values[mask]
        if pd.api.types.is_datetime64_dtype(shown):  # a date (no zone): shown as the file writes it
            shown = shown.dt.strftime("%Y-%m-%d")
        problems.append(Problem(table, column, message, rows, count, _sample_values(shown)))


def _lookup(frame: pd.DataFrame, key: str, value: str) -> pd.Series:
    """key -> value mapping that tolerates duplicated keys (already reported elsewhere)."""
    return frame.dropna(subset=[key]).drop_duplicates(key).set_index(key)[value]


def _check_dates(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp | None, problems: list[Problem]) -> None:
    if _has(tables, "placements", "meeting_date", "tenancy_start"):
        pl = tables["placements"]
        _flag(
            problems,
            "placements",
            "tenancy_start",
            pl["tenancy_start"] < pl["meeting_date"],
            "tenancy_start is before meeting_date, expected tenancy_start ≥ meeting_date",
            pl["tenancy_start"],
        )
    if _has(tables, "placements", "meeting_date") and as_of is not None:
        pl = tables["placements"]
        _flag(
            problems,
            "placements",
            "meeting_date",
            pl["meeting_date"] > as_of,
            f"meeting_date is after as_of {as_of:%Y-%m-%d}, expected nothing after the extract date",
            pl["meeting_date"],
        )
    for other, key, what in (("vacancies", "dwelling_id", "vacancy"), ("candidates", "client_id", "candidate")):
        if _has(tables, "placements", "meeting_date", key) and _has(tables, other, "meeting_date", key):
            pl = tables["placements"]
            known = pd.MultiIndex.from_frame(tables[other][["meeting_date", key]])
            here = pd.MultiIndex.from_frame(pl[["meeting_date", key]])
            _flag(
                problems,
                "placements",
                key,
                pd.Series(~here.isin(known), index=pl.index),
                f"(meeting_date, {key}) is not a {what} at that meeting, expected a row in {other}",
                pl[key],
            )
        if _has(tables, "placements", "meeting_date", key):
            pl = tables["placements"]
            _flag(
                problems,
                "placements",
                key,
                pl.duplicated(["meeting_date", key], keep=False),
                f"the same {key} is placed twice at one meeting, expected at most once",
                pl[key],
            )
    if not _has(tables, "placements", "placement_id", "tenancy_start"):
        return
    starts = _lookup(tables["placements"], "placement_id", "tenancy_start")
    ends = None
    if _has(tables, "tenancy_ends", "placement_id", "end_date"):
        te = tables["tenancy_ends"]
        _flag(
            problems,
            "tenancy_ends",
            "end_date",
            te["end_date"] < te["placement_id"].map(starts),
            "end_date is before the placement's tenancy_start, expected end_date ≥ tenancy_start",
            te["end_date"],
        )
        if as_of is not None:
            _flag(
                problems,
                "tenancy_ends",
                "end_date",
                te["end_date"] > as_of,
                f"end_date is after as_of {as_of:%Y-%m-%d}, expected end_date ≤ as_of",
                te["end_date"],
            )
        ends = _lookup(te, "placement_id", "end_date")
    if _has(tables, "nuisance_reports", "placement_id", "report_date"):
        nr = tables["nuisance_reports"]
        end = nr["placement_id"].map(ends) if ends is not None else pd.Series(pd.NaT, index=nr.index)
        outside = (nr["report_date"] < nr["placement_id"].map(starts)) | (end.notna() & (nr["report_date"] > end))
        _flag(
            problems,
            "nuisance_reports",
            "report_date",
            outside,
            "report_date is outside the tenancy, expected tenancy_start ≤ report_date ≤ end_date",
            nr["report_date"],
        )
        if as_of is not None:
            _flag(
                problems,
                "nuisance_reports",
                "report_date",
                nr["report_date"] > as_of,
                f"report_date is after as_of {as_of:%Y-%m-%d}, expected report_date ≤ as_of",
                nr["report_date"],
            )


def _check_profile_dates(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp | None, problems: list[Problem]) -> None:
    if as_of is not None and _has(tables, "client_profiles", "valid_from"):
        cp = tables["client_profiles"]
        _flag(
            problems,
            "client_profiles",
            "valid_from",
            cp["valid_from"] > as_of,
            f"valid_from is after as_of {as_of:%Y-%m-%d}, expected nothing after the extract date",
            cp["valid_from"],
        )


ERR_DECISION_NO_CLIENT = "client_id is empty, expected a client for every decision but no_placement"
ERR_DECISION_CLIENT_NO_PLACEMENT = "client_id is given for a no_placement decision, expected it empty"
ERR_DECISION_NO_REASON = "reason is empty, expected a reason code for every decision but plan_followed"
ERR_DECISION_NO_NOTE = "note is empty while reason is other, expected a note saying why"
ERR_DECISION_NOT_PROPOSED = "plan_followed names another client than proposed_client_id, expected the plan's proposal"
ERR_DECISION_NOT_VACANCY = "(meeting_date, dwelling_id) is not a vacancy at that meeting, expected a row in vacancies"
ERR_DECISION_NOT_CANDIDATE = (
    "(meeting_date, client_id) is not a candidate at that meeting, expected a row in candidates"
)
ERR_DECISION_TWO_PER_HOME = (
    "more than one current (not superseded) decision for one home at one meeting, expected at most one: "
    "a changed decision must supersede the earlier one"
)
ERR_DECISION_TWO_PER_CLIENT = (
    "one client has more than one current (not superseded) decision with a home at one meeting, expected at most one"
)
ERR_DECISION_AFTER_AS_OF = "decided_at is after as_of {as_of}, expected nothing after the extract date"
ERR_DECISION_SUPERSEDES_ITSELF = "supersedes names the record itself, expected an earlier decision_id or empty"
ERR_DECISION_SUPERSEDED_TWICE = "the same decision_id is superseded by more than one record, expected at most one"
ERR_DECISION_CYCLE = "supersedes forms a cycle, expected each chain to start at a first decision"
ERR_DECISION_OTHER_MEETING = "supersedes a decision of another meeting, expected the same meeting_date"
ERR_DECISION_BEFORE_SUPERSEDED = "decided_at is before that of the record it supersedes, expected later or equal"


def current_mask(decisions: pd.DataFrame) -> pd.Series:
    """True for decision records that no other record supersedes (the meeting's standing decisions)."""
    superseded = decisions["supersedes"].dropna()
    superseded = superseded[superseded != decisions.loc[superseded.index, "decision_id"]]
    return ~decisions["decision_id"].isin(superseded)


def _cycle_mask(decisions: pd.DataFrame) -> pd.Series:
    """True for records on a supersedes cycle (self-references excluded: reported on their own)."""
    parent = {
        d: s
        for d, s in zip(decisions["decision_id"], decisions["supersedes"], strict=True)
        if pd.notna(d) and pd.notna(s) and d != s
    }
    on_cycle: set[str] = set()
    for start in parent:
        seen: list[str] = []
        node: str | None = start
        while node is not None and node not in seen and node not in on_cycle:
            seen.append(node)
            node = parent.get(node)
        if node is not None and node in seen:
            on_cycle.update(seen[seen.index(node) :])
    return decisions["decision_id"].isin(on_cycle)


def _check_decisions(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp | None, problems: list[Problem]) -> None:
    """The decisions table's own rules and its links to vacancies and candidates."""
    if "decisions" not in tables:
        return
    dec = tables["decisions"]
    T = "decisions"
    if _has(tables, T, "decision", "client_id"):
        placing = dec["decision"].notna() & (dec["decision"] != NO_PLACEMENT)
        _flag(problems, T, "client_id", placing & dec["client_id"].isna(), ERR_DECISION_NO_CLIENT, dec["decision"])
        _flag(
            problems,
            T,
            "client_id",
            (dec["decision"] == NO_PLACEMENT) & dec["client_id"].notna(),
            ERR_DECISION_CLIENT_NO_PLACEMENT,
            dec["client_id"],
        )
    if _has(tables, T, "decision", "reason"):
        needs = dec["decision"].notna() & (dec["decision"] != PLAN_FOLLOWED)
        _flag(problems, T, "reason", needs & dec["reason"].isna(), ERR_DECISION_NO_REASON, dec["decision"])
    if _has(tables, T, "reason", "note"):
        blank = dec["note"].isna() | (dec["note"].str.strip().str.len() == 0)
        _flag(problems, T, "note", (dec["reason"] == REASON_OTHER) & blank, ERR_DECISION_NO_NOTE, dec["reason"])
    if _has(tables, T, "decision", "client_id", "proposed_client_id"):
        differs = (dec["decision"] == PLAN_FOLLOWED) & dec["proposed_client_id"].notna()
        differs &= dec["client_id"].notna() & (dec["client_id"] != dec["proposed_client_id"])
        _flag(problems, T, "client_id", differs, ERR_DECISION_NOT_PROPOSED, dec["client_id"])
    for other, key, message in (
        ("vacancies", "dwelling_id", ERR_DECISION_NOT_VACANCY),
        ("candidates", "client_id", ERR_DECISION_NOT_CANDIDATE),
    ):
        if _has(tables, T, "meeting_date", key) and _has(tables, other, "meeting_date", key):
            known = pd.MultiIndex.from_frame(tables[other][["meeting_date", key]])
            here = pd.MultiIndex.from_frame(dec[["meeting_date", key]])
            given = dec["meeting_date"].notna() & dec[key].notna()
            _flag(problems, T, key, given & ~here.isin(known), message, dec[key])
    if _has(tables, T, "decided_at") and as_of is not None:
        after = dec["decided_at"] >= (as_of + pd.Timedelta(days=1)).tz_localize("UTC")
        _flag(
            problems,
            T,
            "decided_at",
            after,
            ERR_DECISION_AFTER_AS_OF.format(as_of=f"{as_of:%Y-%m-%d}"),
            dec["decided_at"].astype(str),
        )
    if not _has(tables, T, "decision_id", "supersedes"):
        return
    sup = dec["supersedes"]
    _flag(problems, T, "supersedes", sup.notna() & (sup == dec["decision_id"]), ERR_DECISION_SUPERSEDES_ITSELF, sup)
    _flag(problems, T, "supersedes", sup.notna() & sup.duplicated(keep=False), ERR_DECISION_SUPERSEDED_TWICE, sup)
    _flag(problems, T, "supersedes", _cycle_mask(dec), ERR_DECISION_CYCLE, sup)
    for column, message in (
        ("meeting_date", ERR_DECISION_OTHER_MEETING),
        ("decided_at", ERR_DECISION_BEFORE_SUPERSEDED),
    ):
        if column in dec.columns:
            earlier = sup.map(_lookup(dec, "decision_id", column))
            wrong = earlier.notna() & (dec[column] != earlier if column == "meeting_date" else dec[column] < earlier)
            _flag(problems, T, "supersedes", wrong, message, sup)
    current = dec[current_mask(dec)]
    if _has(tables, T, "meeting_date", "dwelling_id"):
        twice = current.duplicated(["meeting_date", "dwelling_id"], keep=False)
        mask = pd.Series(False, index=dec.index)
        mask[current.index[twice.to_numpy()]] = True
        _flag(problems, T, "dwelling_id", mask, ERR_DECISION_TWO_PER_HOME, dec["dwelling_id"])
    if _has(tables, T, "meeting_date", "client_id"):
        placed = current[current["client_id"].notna()]
        twice = placed.duplicated(["meeting_date", "client_id"], keep=False)
        mask = pd.Series(False, index=dec.index)
        mask[placed.index[twice.to_numpy()]] = True
        _flag(problems, T, "client_id", mask, ERR_DECISION_TWO_PER_CLIENT, dec["client_id"])


ERR_REGION_ONE_TABLE = "{has} has a region column but {lacks} has none, expected region in both tables or in neither"
ERR_REGION_MISMATCH = (
    "the home's region at that meeting (vacancies) differs from the client's (candidates), "
    "expected a placement within one regional meeting"
)


def _check_regions(tables: dict[str, pd.DataFrame], problems: list[Problem]) -> None:
    """`region` (optional) is in both vacancies and candidates or in neither; a placement stays in one region."""
    has = {t: _has(tables, t, REGION) for t in ("vacancies", "candidates")}
    if has["vacancies"] != has["candidates"]:
        with_it, without = ("vacancies", "candidates") if has["vacancies"] else ("candidates", "vacancies")
        problems.append(Problem(without, REGION, ERR_REGION_ONE_TABLE.format(has=with_it, lacks=without)))
        return
    if not has["vacancies"] or not _has(tables, "placements", "meeting_date", "dwelling_id", "client_id"):
        return
    pl = tables["placements"]
    sides = []
    for table, key in (("vacancies", "dwelling_id"), ("candidates", "client_id")):
        t = tables[table]
        if not _has(tables, table, "meeting_date", key):
            return
        lookup = t.drop_duplicates(["meeting_date", key]).set_index(["meeting_date", key])[REGION]
        sides.append(pd.Series(lookup.reindex(pd.MultiIndex.from_frame(pl[["meeting_date", key]])).to_numpy()))
    home, client = (side.astype(object).where(side.notna(), None).to_numpy() for side in sides)
    differs = pd.Series(
        [h is not None and c is not None and h != c for h, c in zip(home, client, strict=True)], index=pl.index
    )
    _flag(problems, "placements", "client_id", differs, ERR_REGION_MISMATCH, pl["client_id"])


def load_dataset(path: str | Path) -> Dataset:
    """Read and validate a dataset folder.

    Raises:
        DataError: listing every contract violation found (never a partial dataset).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataError([Problem("dataset", None, ERR_NO_FOLDER.format(path=folder))])
    problems: list[Problem] = []
    manifest = _read_manifest(folder, problems)
    tables: dict[str, pd.DataFrame] = {}
    for spec in TABLES.values():
        raw = _read_raw(folder, spec, problems)
        if raw is None:
            continue
        tables[spec.name] = _typed_table(raw, spec, problems)
    _check_references(tables, problems)
    _check_dates(tables, manifest.get("as_of"), problems)
    _check_profile_dates(tables, manifest.get("as_of"), problems)
    _check_decisions(tables, manifest.get("as_of"), problems)
    _check_regions(tables, problems)
    if problems:
        raise DataError(problems)
    for name in ("vacancies", "candidates"):
        if REGION not in tables[name].columns:
            tables[name][REGION] = pd.Series(DEFAULT_REGION, index=tables[name].index, dtype="string")
    return Dataset(
        path=folder,
        as_of=manifest["as_of"],
        name=str(manifest.get("name") or ""),
        description=str(manifest.get("description") or ""),
        **{n: tables[n] if TABLES[n].required else tables.get(n) for n in TABLES},
    )


def dataset_fingerprint(folder: str | Path) -> str:
    """SHA-256 over the dataset folder's file names and bytes (sorted): the data version of a run."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
