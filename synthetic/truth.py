"""The synthetic world's ground truth: the outcome formula, its pair-level inputs and the hard rules.

The generator draws every outcome from these functions, and evaluation code can
reuse them to score any (meeting, vacancy, candidate) pair of a generated dataset:

    inputs = truth_pair_inputs(pairs, clients=..., dwellings=..., neighbourhoods=...,
                               care_providers=..., placements=..., scales=coefs.scales)
    p = true_p_sustained(inputs, coefs)

The formula functions read only the numeric columns `truth_input_columns(coefs)` of a
mapping of array-likes, so they work on a DataFrame or on a dict of broadcastable numpy
arrays. None of them is a protected attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.config import ConfigError
from features.contract import ZRM_DOMAINS
from features.pairs import haversine_km
from features.rules import YearAmounts as PassendToewijzen  # one year of amounts, shared with the project's rules

FORMULA_VERSION = "matchwijs-truth-1"
ERR_UNKNOWN_DOMAIN = "params: generate.truth.failure.client: unknown ZRM domain(s) {names}; use the zrm_* column names"

# Columns the truth formula reads (besides the ZRM domains named in the coefficients).
MATCH_INPUTS: tuple[str, ...] = (
    "support_hours_per_week",
    "needs_quiet_surroundings",
    "monthly_income_eur",
    "rent_eur",
    "floor",
    "has_lift",
    "shared_entrance",
    "units_in_complex",
    "nuisance_reports_per_1000",
    "vulnerable_household_share",
    "distance_km",
    "concentration_12m",
    "own_network_district",
)
FIXED_ZRM_INPUTS: tuple[str, ...] = ("zrm_finances", "zrm_addiction", "zrm_mental_health", "zrm_physical_health")
TRUTH_INPUTS: tuple[str, ...] = FIXED_ZRM_INPUTS + MATCH_INPUTS

RULES: tuple[str, ...] = ("passend_toewijzen", "rooms", "wheelchair", "ground_floor_or_lift", "avoid_district")


@dataclass(frozen=True)
class TruthScales:
    """Reference values that put the formula's inputs on a common scale."""

    busy_units_ref: float  # a complex this big with a shared entrance counts as fully busy
    nuisance_ref: float  # nuisance reports per 1000 households of an ordinary buurt
    nuisance_cap: float  # nuisance relative to the reference is capped here
    support_hours_ref: float
    distance_km_ref: float
    concentration_window_days: int
    concentration_cap: int
    rent_burden_ref: float  # rent / income of an ordinary placement
    vulnerable_ref: float  # vulnerable household share of an ordinary buurt
    stairs_min_floor: int  # from this floor up, stairs without a lift are a burden


@dataclass(frozen=True)
class FailureCoefs:
    """Logit of failure (eviction or return to care) within the horizon."""

    intercept: float
    client: dict[str, float]  # ZRM domain -> coefficient of its severity (5 - score) / 4
    quiet_busy_complex: float
    quiet_nuisance: float
    support_distance: float
    concentration: float
    rent_burden_finances: float
    own_network_district: float
    addiction_vulnerable: float
    stairs_physical: float
    # World-family knobs (pipelines/bench_family.py); the defaults are the demo world.
    match_scale: float = 1.0  # multiplies every pair (match) term: < 1 weakens the match signal
    latent_severity_sd: float = 0.0  # sd of a per-client latent severity on the logit, never in the data
    isolation_big_complex: float = 0.0  # hidden interaction: weak social network x big complex (no feature names it)


@dataclass(frozen=True)
class NuisanceCoefs:
    """Log of the expected number of nuisance reports per tenancy-year."""

    intercept: float
    addiction: float
    mental_health: float
    quiet_busy_complex: float
    vulnerable_neighbourhood: float
    concentration: float


@dataclass(frozen=True)
class TruthCoefs:
    """Everything the ground truth needs: its horizon, scales and coefficients."""

    horizon_days: int
    scales: TruthScales
    failure: FailureCoefs
    nuisance: NuisanceCoefs

    def __post_init__(self) -> None:
        unknown = sorted(set(self.failure.client) - set(ZRM_DOMAINS))
        if unknown:
            raise ConfigError(ERR_UNKNOWN_DOMAIN.format(names=", ".join(unknown)))


@dataclass(frozen=True)
class HardRules:
    """The meeting's hard eligibility rules (amounts mirror params.yaml `passend_toewijzen`)."""

    large_household_from: int
    min_rooms_by_household_size: tuple[int, ...]  # index = household size - 1; the last entry for larger
    years: dict[int, PassendToewijzen]

    def amounts(self, year: int) -> PassendToewijzen:
        """The amounts of `year`: the latest configured year at or before it, else the earliest."""
        known = sorted(self.years)
        earlier = [y for y in known if y <= year]
        return self.years[earlier[-1] if earlier else known[0]]


def truth_input_columns(coefs: TruthCoefs) -> tuple[str, ...]:
    """Exactly the columns `true_failure_logit` and `true_nuisance_rate` read."""
    f = coefs.failure
    zrm = sorted(set(FIXED_ZRM_INPUTS) | set(f.client) | ({"zrm_social_network"} if f.isolation_big_complex else set()))
    return tuple(zrm) + MATCH_INPUTS + (("latent_severity",) if f.latent_severity_sd else ())


def _col(frame: Mapping, name: str) -> np.ndarray:
    return np.asarray(frame[name], dtype=float)


def severity(score) -> np.ndarray:
    """ZRM score 1..5 as severity 1..0 (1 = acute problems)."""
    return (5.0 - np.asarray(score, dtype=float)) / 4.0


def busy_complex(frame: Mapping, scales: TruthScales) -> np.ndarray:
    """0..1: a shared entrance in a big complex is busy; a private front door is not."""
    units = np.maximum(_col(frame, "units_in_complex"), 1.0)
    size = np.clip(np.log(units) / np.log(scales.busy_units_ref), 0.0, 1.0)
    return _col(frame, "shared_entrance") * size


def _nuisance_level(frame: Mapping, scales: TruthScales) -> np.ndarray:
    return np.clip(_col(frame, "nuisance_reports_per_1000") / scales.nuisance_ref, 0.0, scales.nuisance_cap)


def _vulnerable_level(frame: Mapping, scales: TruthScales) -> np.ndarray:
    return _col(frame, "vulnerable_household_share") / scales.vulnerable_ref - 1.0


def _concentration(frame: Mapping, scales: TruthScales) -> np.ndarray:
    return np.minimum(_col(frame, "concentration_12m"), scales.concentration_cap)


def failure_terms(frame: Mapping, coefs: TruthCoefs) -> dict[str, np.ndarray]:
    """Each additive term of the failure logit (without the intercept), by name.

    Client terms depend on the client alone; every other term is a match term and is
    multiplied by `match_scale`. With `latent_severity_sd > 0` the frame must hold the
    column `latent_severity` (standard normal per client, written only to the truth).
    """
    s, f = coefs.scales, coefs.failure
    quiet = _col(frame, "needs_quiet_surroundings")
    stairs = (_col(frame, "floor") >= s.stairs_min_floor) & (_col(frame, "has_lift") == 0)
    burden = _col(frame, "rent_eur") / np.maximum(_col(frame, "monthly_income_eur"), 1.0)
    terms = {f"client_{d}": c * severity(_col(frame, d)) for d, c in sorted(f.client.items())}
    terms.update(
        quiet_busy_complex=f.quiet_busy_complex * quiet * busy_complex(frame, s),
        quiet_nuisance=f.quiet_nuisance * quiet * (_nuisance_level(frame, s) - 1.0),
        support_distance=f.support_distance
        * (_col(frame, "support_hours_per_week") / s.support_hours_ref)
        * (_col(frame, "distance_km") / s.distance_km_ref),
        concentration=f.concentration * _concentration(frame, s),
        rent_burden_finances=f.rent_burden_finances
        * (burden - s.rent_burden_ref)
        * severity(_col(frame, "zrm_finances")),
        own_network_district=f.own_network_district * _col(frame, "own_network_district"),
        addiction_vulnerable=f.addiction_vulnerable
        * severity(_col(frame, "zrm_addiction"))
        * _vulnerable_level(frame, s),
        stairs_physical=f.stairs_physical * stairs * severity(_col(frame, "zrm_physical_health")),
    )
    if f.isolation_big_complex:
        terms["isolation_big_complex"] = (
            f.isolation_big_complex * severity(_col(frame, "zrm_social_network")) * (_complex_size(frame, s) - 0.5)
        )
    if f.match_scale != 1.0:
        terms.update({k: f.match_scale * v for k, v in terms.items() if not k.startswith("client_")})
    if f.latent_severity_sd:
        terms["latent_severity"] = f.latent_severity_sd * _col(frame, "latent_severity")
    return terms


def _complex_size(frame: Mapping, scales: TruthScales) -> np.ndarray:
    """0..1: log size of the complex relative to `busy_units_ref` (entrance shared or not)."""
    units = np.maximum(_col(frame, "units_in_complex"), 1.0)
    return np.clip(np.log(units) / np.log(scales.busy_units_ref), 0.0, 1.0)


def true_failure_logit(frame: Mapping, coefs: TruthCoefs) -> np.ndarray:
    """Log-odds that the tenancy fails (eviction or returned_to_care) within the horizon."""
    terms = failure_terms(frame, coefs)
    return coefs.failure.intercept + np.sum(np.broadcast_arrays(*terms.values()), axis=0)


def true_p_sustained(frame: Mapping, coefs: TruthCoefs) -> np.ndarray:
    """Probability that the tenancy does not fail within the horizon: 1 - sigmoid(failure logit)."""
    return 1.0 / (1.0 + np.exp(true_failure_logit(frame, coefs)))


def true_nuisance_rate(frame: Mapping, coefs: TruthCoefs) -> np.ndarray:
    """Expected nuisance reports per tenancy-year (= over the horizon if the tenancy lasts it)."""
    s, n = coefs.scales, coefs.nuisance
    log_rate = (
        n.intercept
        + n.addiction * severity(_col(frame, "zrm_addiction"))
        + n.mental_health * severity(_col(frame, "zrm_mental_health"))
        + n.quiet_busy_complex * _col(frame, "needs_quiet_surroundings") * busy_complex(frame, s)
        + n.vulnerable_neighbourhood * _vulnerable_level(frame, s)
        + n.concentration * _concentration(frame, s)
    )
    return np.exp(log_rate)


def complex_concentration(
    complex_ids, dates, placements: pd.DataFrame, *, window_days: int, decided_by=None
) -> np.ndarray:
    """Earlier placements into the same complex with tenancy_start in [date - window, date).

    `placements` needs complex_id, tenancy_start and (when `decided_by` is given)
    meeting_date; with `decided_by`, only placements decided at or before that
    meeting count (what the meeting could know).
    """
    query = pd.DataFrame(
        {"complex_id": np.asarray(complex_ids, dtype=object), "date": pd.to_datetime(np.asarray(dates))}
    )
    query["row"] = np.arange(len(query))
    if decided_by is not None:
        query["decided_by"] = pd.to_datetime(np.asarray(decided_by))
    cols = ["complex_id", "tenancy_start"] + (["meeting_date"] if decided_by is not None else [])
    hist = placements[cols].astype({"complex_id": object})
    hist = hist.assign(complex_id=hist["complex_id"].astype(str))
    query["complex_id"] = query["complex_id"].astype(str)
    joined = query.merge(hist, on="complex_id", how="inner")
    window = pd.Timedelta(days=window_days)
    hit = (joined["tenancy_start"] < joined["date"]) & (joined["tenancy_start"] >= joined["date"] - window)
    if decided_by is not None:
        hit &= joined["meeting_date"] <= joined["decided_by"]
    counts = np.bincount(joined.loc[hit.to_numpy(), "row"].to_numpy(dtype=np.int64), minlength=len(query))
    return counts.astype(float)


def truth_pair_inputs(
    pairs: pd.DataFrame,
    *,
    clients: pd.DataFrame,
    dwellings: pd.DataFrame,
    neighbourhoods: pd.DataFrame,
    care_providers: pd.DataFrame,
    placements: pd.DataFrame,
    scales: TruthScales,
    date_col: str = "meeting_date",
    decided_col: str | None = None,
) -> pd.DataFrame:
    """The truth formula's inputs for (client_id, dwelling_id) pairs, from contract tables.

    Args:
        pairs: needs client_id, dwelling_id and `date_col`, the date concentration is measured at
            (the meeting date for candidate pairs, tenancy_start for actual placements).
        clients, dwellings, neighbourhoods, care_providers, placements: contract tables
            (as written by the generator or as typed by `load_dataset`).
        scales: `TruthCoefs.scales` (the concentration window).
        decided_col: optional column of `pairs`; if given, only placements decided at or
            before that meeting date count towards concentration.

    Returns:
        `pairs` (same index and order) with the client, dwelling and neighbourhood columns
        that `true_failure_logit`, `true_nuisance_rate` and `eligible` read, plus
        home_district, distance_km, concentration_12m, own_network_district and avoid_match.
    """
    client_cols = [
        "care_provider",
        "network_district",
        "avoid_district",
        *ZRM_DOMAINS,
        "household_size",
        "monthly_income_eur",
        "support_hours_per_week",
        "needs_quiet_surroundings",
        "needs_ground_floor_or_lift",
        "needs_wheelchair_access",
    ]
    dwelling_cols = [
        "neighbourhood_id",
        "complex_id",
        "rent_eur",
        "rooms",
        "floor",
        "has_lift",
        "shared_entrance",
        "units_in_complex",
        "wheelchair_accessible",
    ]
    hood_cols = ["district", "lat", "lon", "nuisance_reports_per_1000", "vulnerable_household_share"]
    c = clients.set_index("client_id")[client_cols].reindex(pairs["client_id"].to_numpy())
    d = dwellings.set_index("dwelling_id")[dwelling_cols].reindex(pairs["dwelling_id"].to_numpy())
    h = neighbourhoods.set_index("neighbourhood_id")[hood_cols].reindex(d["neighbourhood_id"].to_numpy())
    p = care_providers.set_index("care_provider")[["lat", "lon"]].reindex(c["care_provider"].to_numpy())
    out = pairs.copy()
    for frame, cols in ((c, client_cols), (d, dwelling_cols), (h, hood_cols[3:])):
        for col in cols:
            values = frame[col].to_numpy()
            out[col] = _plain(values)
    out["home_district"] = h["district"].astype(object).to_numpy()
    out["distance_km"] = haversine_km(h["lat"], h["lon"], p["lat"], p["lon"])
    history = placements.merge(dwellings[["dwelling_id", "complex_id"]], on="dwelling_id", how="left")
    out["concentration_12m"] = complex_concentration(
        d["complex_id"].to_numpy(),
        pairs[date_col].to_numpy(),
        history,
        window_days=scales.concentration_window_days,
        decided_by=None if decided_col is None else pairs[decided_col].to_numpy(),
    )
    home = out["home_district"].astype(str).to_numpy()
    for col, flag in (("network_district", "own_network_district"), ("avoid_district", "avoid_match")):
        wanted = pd.Series(c[col].to_numpy(), dtype=object).fillna("").astype(str).to_numpy()
        out[flag] = (wanted != "") & (wanted == home)
    return out


def _plain(values: np.ndarray) -> np.ndarray:
    """Nullable pandas values (Int64, boolean, Float64) as plain numpy; text stays object."""
    series = pd.Series(values)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(bool).to_numpy()
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype(float).to_numpy()
    return series.astype(object).to_numpy()


def hard_rule_checks(frame: Mapping, rules: HardRules, year) -> dict[str, np.ndarray]:
    """Which pairs pass each hard rule (True = passes), by rule name (see `RULES`).

    `frame` needs monthly_income_eur, household_size, rent_eur, rooms,
    needs_wheelchair_access, wheelchair_accessible, needs_ground_floor_or_lift, floor,
    has_lift, and the booleans avoid_match (home in the client's avoid_district).
    `year` (scalar or array) picks the passend-toewijzen amounts.
    """
    size = _col(frame, "household_size")
    years = np.asarray(year)
    unique, inverse = np.unique(years, return_inverse=True)

    def pick(attr: str) -> np.ndarray:
        values = np.array([getattr(rules.amounts(int(y)), attr) for y in unique], dtype=float)
        return values[inverse].reshape(years.shape)

    threshold = np.where(size >= 2, pick("income_threshold_multi"), pick("income_threshold_single"))
    cap = np.where(size >= rules.large_household_from, pick("rent_cap_large"), pick("rent_cap_small"))
    low_income = 12.0 * _col(frame, "monthly_income_eur") <= threshold
    min_rooms = np.asarray(rules.min_rooms_by_household_size, dtype=float)
    needed = min_rooms[np.clip(size.astype(int) - 1, 0, len(min_rooms) - 1)]
    lift_ok = (_col(frame, "floor") == 0) | (_col(frame, "has_lift") == 1)
    return {
        "passend_toewijzen": ~low_income | (_col(frame, "rent_eur") <= cap),
        "rooms": _col(frame, "rooms") >= needed,
        "wheelchair": (_col(frame, "needs_wheelchair_access") == 0) | (_col(frame, "wheelchair_accessible") == 1),
        "ground_floor_or_lift": (_col(frame, "needs_ground_floor_or_lift") == 0) | lift_ok,
        "avoid_district": _col(frame, "avoid_match") == 0,
    }


def eligible(frame: Mapping, rules: HardRules, year) -> np.ndarray:
    """True where a pair passes every hard rule."""
    checks = hard_rule_checks(frame, rules, year)
    return np.logical_and.reduce(np.broadcast_arrays(*checks.values()))
