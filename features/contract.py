"""The data contract (CONTRACT.md v2) as code: table specs and their pandera schemas.

One spec per table is the single source of truth; the pandera schemas, the type
coercion in `features.load` and the README's table list are all derived from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa

ZRM_DOMAINS: tuple[str, ...] = (
    "zrm_finances",
    "zrm_work_education",
    "zrm_time_use",
    "zrm_housing",
    "zrm_domestic_relations",
    "zrm_mental_health",
    "zrm_physical_health",
    "zrm_addiction",
    "zrm_basic_adl",
    "zrm_instrumental_adl",
    "zrm_social_network",
    "zrm_community_participation",
    "zrm_justice",
)

DWELLING_TYPES = ("house", "gallery_flat", "portico_flat", "apartment", "studio")
COMING_FROM = ("shelter", "sheltered_housing")
GENDERS = ("female", "male", "x")
MIGRATION_BACKGROUNDS = ("netherlands", "europe", "outside_europe")
END_REASONS = ("eviction", "returned_to_care", "voluntary_move", "deceased", "other")
FAILURE_REASONS = ("eviction", "returned_to_care")
SEVERITIES = ("minor", "serious")
PLAN_FOLLOWED, OTHER_CANDIDATE, NO_PLACEMENT, RULE_EXCEPTION = (
    "plan_followed",
    "other_candidate",
    "no_placement",
    "rule_exception",
)
DECISIONS = (PLAN_FOLLOWED, OTHER_CANDIDATE, NO_PLACEMENT, RULE_EXCEPTION)
REASON_OTHER = "other"
DECISION_REASONS = (
    "client_preference",
    "care_provider_advice",
    "landlord_requirement",
    "information_not_in_data",
    "urgency",
    REASON_OTHER,
)

# Column kinds understood by the loader.
STR, INT, FLOAT, BOOL, DATE = "str", "int", "float", "bool", "date"
DATETIME = "datetime"  # ISO 8601 with a time zone; read as UTC


@dataclass(frozen=True)
class Col:
    """One contract column: its kind, allowed values and whether it may be empty."""

    name: str
    kind: str
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    isin: tuple[str, ...] | None = None
    nullable: bool = False
    unique: bool = False
    optional: bool = False  # the column may be absent from the file (the loader then fills its default)

    def expectation(self) -> str:
        """What a valid value looks like, in words, for error messages."""
        words = {
            STR: "text",
            INT: "a whole number",
            FLOAT: "a number",
            BOOL: "true/false or 1/0",
            DATE: "a date YYYY-MM-DD",
            DATETIME: "an ISO 8601 date-time with time zone (e.g. 2024-03-04T10:15:00+01:00)",
        }[self.kind]
        if self.isin:
            words = "one of " + ", ".join(self.isin)
        if self.min is not None and self.max is not None:
            words += f" from {self.min:g} to {self.max:g}"
        elif self.min is not None:
            words += f" {'>' if self.min_exclusive else '≥'} {self.min:g}"
        if self.unique:
            words += ", unique"
        if not self.nullable:
            words += ", not empty"
        return words


@dataclass(frozen=True)
class TableSpec:
    """One contract table: its columns and, optionally, a key that must be unique."""

    name: str
    columns: tuple[Col, ...]
    key: tuple[str, ...] | None = None
    required: bool = True
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _zrm() -> tuple[Col, ...]:
    return tuple(Col(d, INT, min=1, max=5) for d in ZRM_DOMAINS)


# The client profile columns that can change over time (optional table client_profiles). Without a
# history, every meeting sees the profile in clients (intake, or as of the extract).
PROFILE_HISTORY_COLUMNS: tuple[Col, ...] = (
    Col("household_size", INT, min=1),
    Col("monthly_income_eur", FLOAT, min=0),
    Col("support_hours_per_week", FLOAT, min=0),
    *_zrm(),
    Col("needs_ground_floor_or_lift", BOOL),
    Col("needs_quiet_surroundings", BOOL),
    Col("needs_wheelchair_access", BOOL),
)
PROFILE_COLUMNS: tuple[str, ...] = tuple(c.name for c in PROFILE_HISTORY_COLUMNS)

# A meeting is a region on a date. `region` is optional in vacancies and candidates (both or neither);
# without it the whole dataset is one region, filled in by the loader as DEFAULT_REGION.
REGION = "region"
DEFAULT_REGION = ""
MEETING_KEYS = ("meeting_date", REGION)

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "neighbourhoods",
            (
                Col("neighbourhood_id", STR, unique=True),
                Col("name", STR),
                Col("district", STR),
                Col("lat", FLOAT, min=-90, max=90),
                Col("lon", FLOAT, min=-180, max=180),
                Col("liveability_score", FLOAT, min=1, max=9),
                Col("social_housing_share", FLOAT, min=0, max=1),
                Col("vulnerable_household_share", FLOAT, min=0, max=1),
                Col("nuisance_reports_per_1000", FLOAT, min=0),
            ),
            description="one row per buurt",
        ),
        TableSpec(
            "care_providers",
            (
                Col("care_provider", STR, unique=True),
                Col("lat", FLOAT, min=-90, max=90),
                Col("lon", FLOAT, min=-180, max=180),
            ),
            description="one row per provider location",
        ),
        TableSpec(
            "dwellings",
            (
                Col("dwelling_id", STR, unique=True),
                Col("neighbourhood_id", STR),
                Col("complex_id", STR),
                Col("landlord", STR),
                Col("dwelling_type", STR, isin=DWELLING_TYPES),
                Col("floor", INT, min=0),
                Col("has_lift", BOOL),
                Col("rooms", INT, min=1),
                Col("floor_area_m2", FLOAT, min=0, min_exclusive=True),
                Col("rent_eur", FLOAT, min=0, min_exclusive=True),
                Col("shared_entrance", BOOL),
                Col("units_in_complex", INT, min=1),
                Col("construction_year", INT, min=1000, max=2100),
                Col("wheelchair_accessible", BOOL),
            ),
            description="one row per home",
        ),
        TableSpec(
            "clients",
            (
                Col("client_id", STR, unique=True),
                Col("care_provider", STR),
                Col("coming_from", STR, isin=COMING_FROM),
                Col("household_size", INT, min=1),
                Col("monthly_income_eur", FLOAT, min=0),
                Col("support_hours_per_week", FLOAT, min=0),
                *_zrm(),
                Col("needs_ground_floor_or_lift", BOOL),
                Col("needs_quiet_surroundings", BOOL),
                Col("needs_wheelchair_access", BOOL),
                Col("network_district", STR, nullable=True),
                Col("avoid_district", STR, nullable=True),
            ),
            description="one row per housing seeker (pseudonymous)",
        ),
        TableSpec(
            "client_protected",
            (
                Col("client_id", STR, unique=True),
                Col("gender", STR, isin=GENDERS),
                Col("birth_year", INT, min=1900, max=2100),
                Col("migration_background", STR, isin=MIGRATION_BACKGROUNDS),
            ),
            required=False,
            description="audit only; never a model feature",
        ),
        TableSpec(
            "client_profiles",
            (
                Col("client_id", STR),
                Col("valid_from", DATE),
                *PROFILE_HISTORY_COLUMNS,
            ),
            key=("client_id", "valid_from"),
            required=False,
            description="optional effective-dated client profiles: each row holds from valid_from until the next",
        ),
        TableSpec(
            "vacancies",
            (Col("meeting_date", DATE), Col("dwelling_id", STR), Col(REGION, STR, optional=True)),
            key=("meeting_date", "dwelling_id"),
            description="which homes were on the table at which meeting",
        ),
        TableSpec(
            "candidates",
            (Col("meeting_date", DATE), Col("client_id", STR), Col(REGION, STR, optional=True)),
            key=("meeting_date", "client_id"),
            description="which clients were ready to move at which meeting",
        ),
        TableSpec(
            "placements",
            (
                Col("placement_id", STR, unique=True),
                Col("client_id", STR),
                Col("dwelling_id", STR),
                Col("meeting_date", DATE),
                Col("tenancy_start", DATE),
            ),
            description="matches made",
        ),
        TableSpec(
            "tenancy_ends",
            (
                Col("placement_id", STR, unique=True),
                Col("end_date", DATE),
                Col("reason", STR, isin=END_REASONS),
            ),
            description="zero or one row per placement",
        ),
        TableSpec(
            "nuisance_reports",
            (
                Col("report_id", STR, unique=True),
                Col("placement_id", STR),
                Col("report_date", DATE),
                Col("severity", STR, isin=SEVERITIES),
            ),
            description="zero or more rows per placement",
        ),
        TableSpec(
            "decisions",
            (
                Col("decision_id", STR, unique=True),
                Col("meeting_date", DATE),
                Col("dwelling_id", STR),
                Col("client_id", STR, nullable=True),
                Col("decision", STR, isin=DECISIONS),
                Col("reason", STR, isin=DECISION_REASONS, nullable=True),
                Col("note", STR, nullable=True),
                Col("proposed_client_id", STR, nullable=True),
                Col("shown_rank", INT, min=1, nullable=True),
                Col("model_version", STR),
                Col("decided_at", DATETIME),
                Col("decided_by", STR),
                Col("supersedes", STR, nullable=True),
            ),
            required=False,
            description="what the meeting decided, one row per decision record (never edited: a change supersedes)",
        ),
    )
}

# (table, column) -> (referenced table, referenced column)
REFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("dwellings", "neighbourhood_id", "neighbourhoods", "neighbourhood_id"),
    ("clients", "care_provider", "care_providers", "care_provider"),
    ("client_protected", "client_id", "clients", "client_id"),
    ("client_profiles", "client_id", "clients", "client_id"),
    ("vacancies", "dwelling_id", "dwellings", "dwelling_id"),
    ("candidates", "client_id", "clients", "client_id"),
    ("placements", "client_id", "clients", "client_id"),
    ("placements", "dwelling_id", "dwellings", "dwelling_id"),
    ("tenancy_ends", "placement_id", "placements", "placement_id"),
    ("nuisance_reports", "placement_id", "placements", "placement_id"),
    ("decisions", "dwelling_id", "dwellings", "dwelling_id"),
    ("decisions", "client_id", "clients", "client_id"),
    ("decisions", "proposed_client_id", "clients", "client_id"),
    ("decisions", "supersedes", "decisions", "decision_id"),
)

_PANDERA_DTYPES = {
    STR: "string",
    INT: "Int64",
    FLOAT: "Float64",
    BOOL: "boolean",
    DATE: "datetime64[ns]",
    DATETIME: "datetime64[ns, UTC]",
}


def on_distinct(values: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`fn` applied to each distinct value once, spread back over the rows; missing values stay missing.

    A column of a million candidate rows holds a few thousand dates or ids: parsing,
    stripping and matching them once each gives the same result as row by row.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    done = fn(pd.Series(uniques, dtype=values.dtype if len(uniques) else object))
    spread = done.iloc[np.maximum(codes, 0)] if len(done) else done.reindex(range(len(codes)))
    spread = spread.set_axis(values.index)
    return spread.where(pd.Series(codes >= 0, index=values.index))


def _not_blank(values: pd.Series) -> pd.Series:
    return on_distinct(values, lambda u: u.str.strip().str.len() > 0)


def _checks(col: Col) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if col.isin:
        checks.append(pa.Check.isin(list(col.isin)))
    if col.min is not None and col.max is not None:
        checks.append(pa.Check.in_range(col.min, col.max))
    elif col.min is not None:
        checks.append(pa.Check.gt(col.min) if col.min_exclusive else pa.Check.ge(col.min))
    if col.kind == STR and not col.nullable:
        checks.append(pa.Check(_not_blank, element_wise=False, name="not_blank"))
    return checks


def schema_for(spec: TableSpec) -> pa.DataFrameSchema:
    """The pandera schema of one table (typed frame as returned by the loader)."""
    return pa.DataFrameSchema(
        {
            c.name: pa.Column(_PANDERA_DTYPES[c.kind], checks=_checks(c), nullable=c.nullable, unique=c.unique)
            for c in spec.columns
        },
        unique=list(spec.key) if spec.key else None,
        strict=True,
        name=spec.name,
    )


SCHEMAS: dict[str, pa.DataFrameSchema] = {name: schema_for(spec) for name, spec in TABLES.items()}
