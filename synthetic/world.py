"""The static synthetic world: neighbourhoods from real CBS data, care providers, dwellings, clients.

Every function is pure given its inputs and a numpy Generator; the simulation of
meetings and outcomes lives in `synthetic.generate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.config import ConfigError
from features.contract import COMING_FROM, DWELLING_TYPES, GENDERS, MIGRATION_BACKGROUNDS, TABLES, ZRM_DOMAINS

CBS_FILE = Path(__file__).resolve().parent / "data" / "amsterdam_buurten_2024.csv"
ERR_PROVIDER_DISTRICT = "params: generate.care_providers: {name} is in district {district!r}, which has no buurten"
CBS_IMPUTED_COLUMNS: tuple[str, ...] = (
    "avg_household_size",
    "avg_property_value_1000eur",
    "pct_unoccupied_homes",
    "pct_rental",
    "avg_income_per_inhabitant_1000eur",
    "pct_low_income_households",
    "pct_below_120pct_social_min",
    "cafes_within_1km",
    "cafeterias_within_1km",
    "restaurants_within_1km",
)


@dataclass(frozen=True)
class NeighbourhoodParams:
    """How the contract's neighbourhood columns are derived from CBS columns (see README)."""

    min_population: int  # buurten below this get no homes and do not set the z-score scale
    corp_share_intercept: float  # corporations' share of rented homes: logistic in these
    corp_share_low_income: float
    corp_share_property_value: float
    social_share_max: float
    live_intercept: float  # liveability 1 + 8 * sigmoid(...)
    live_income: float
    live_property_value: float
    live_low_income: float
    live_unoccupied: float
    vulnerable_scale: float
    vulnerable_weight_social_min: float  # weight of pct_below_120pct_social_min vs pct_low_income_households
    nuisance_base: float
    nuisance_horeca: float
    nuisance_low_income: float
    nuisance_unoccupied: float
    restaurant_weight: float  # a restaurant counts as this many cafes


@dataclass(frozen=True)
class ProviderSpec:
    """A fictional care provider, its district and how often each client group goes there."""

    name: str
    district: str
    shelter_weight: float
    sheltered_housing_weight: float


@dataclass(frozen=True)
class DwellingTypeSpec:
    """How complexes and homes of one dwelling type look."""

    units_median: float
    units_sigma: float
    units_min: int
    units_max: int
    storeys_min: int
    storeys_max: int
    lift_low_rise: float  # lift probability below `lift_storeys`
    lift_high_rise: float
    shared_entrance: float
    rooms_min: int
    rooms_max: int
    area_base: float
    area_per_room: float


@dataclass(frozen=True)
class Era:
    """A construction period and the mix of dwelling types built in it."""

    start: int
    end: int
    type_weights: dict[str, float]


@dataclass(frozen=True)
class DwellingParams:
    """The social rented stock that feeds the meeting."""

    stock_per_weekly_vacancy: float  # homes in the pool per mean weekly vacancy (the stock scales with the meeting)
    pool_share: float  # share of a complex's units that can come up for this target group
    turnover_sigma: float  # lognormal spread of complexes' offer rates
    landlords: dict[str, float]
    types: dict[str, DwellingTypeSpec]
    eras: tuple[Era, ...]
    district_era_weights: dict[str, tuple[float, ...]]  # per district, one weight per era
    lift_storeys: int
    new_build_year: int  # from this year on every building with storeys has a lift
    area_sd: float
    rent_base: float
    rent_per_m2: float
    rent_new_build: float
    rent_sd: float
    rent_min: float
    rent_max: float
    wheelchair_new_build: float
    wheelchair_other: float


@dataclass(frozen=True)
class ZrmParams:
    """ZRM scores: mean - loading * vulnerability + noise, rounded and clipped to 1..5."""

    mean: dict[str, float]
    loading: dict[str, float]
    noise_sd: float
    sheltered_housing_shift: dict[str, float]
    age_physical_per_decade: float  # shift of physical health per decade above 40


@dataclass(frozen=True)
class ClientParams:
    """The population leaving shelter and sheltered housing."""

    shelter_share: float
    gender_weights: dict[str, float]
    migration_weights: dict[str, float]
    age_mean: float
    age_sd: float
    age_min: int
    age_max: int
    multi_person_share: float  # households of 2+ persons, before the multipliers below
    multi_person_female: float
    multi_person_outside_europe: float
    larger_household_weights: tuple[float, ...]  # sizes 2, 3, 4, 5 among multi-person households
    zrm: ZrmParams
    benefit_single: float
    benefit_multi: float
    benefit_sd: float
    benefit_min: float
    work_share: float  # share with earned income, scaled by work/education self-reliance
    work_income_mean: float
    work_income_sd: float
    work_income_min: float
    work_income_max: float
    support_base: float
    support_per_vulnerability: float
    support_sheltered_housing: float
    support_sd: float
    support_min: float
    support_max: float
    ground_floor_intercept: float
    ground_floor_physical: float
    quiet_intercept: float
    quiet_mental_health: float
    wheelchair_low_physical: float  # share needing a wheelchair-accessible home when physical health <= 2
    network_share: float
    network_district_affinity: dict[str, dict[str, float]]  # migration background -> district -> multiplier
    avoid_share: float
    avoid_addiction: float  # extra avoid probability at maximal addiction severity
    avoid_district_weights: dict[str, float]


def _z(values: pd.Series, ref: pd.Series) -> pd.Series:
    sd = ref.std(ddof=0)
    return (values - ref.mean()) / (sd if sd > 0 else 1.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def impute_cbs(cbs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Fill suppressed CBS cells with the wijk median, then the stadsdeel median, then the city median."""
    out = cbs.copy()
    counts: dict[str, int] = {}
    for col in CBS_IMPUTED_COLUMNS:
        values = out[col].replace([np.inf, -np.inf], np.nan)
        counts[col] = int(values.isna().sum())
        for level in ("wijk_code", "stadsdeel"):
            values = values.fillna(values.groupby(out[level]).transform("median"))
        out[col] = values.fillna(values.median())
    return out, counts


def derive_neighbourhoods(cbs: pd.DataFrame, p: NeighbourhoodParams) -> tuple[pd.DataFrame, pd.Series, dict[str, int]]:
    """Contract neighbourhoods from CBS buurten, their social housing stock, and imputation counts."""
    d, imputed = impute_cbs(cbs)
    inhabited = d["population_total"] >= p.min_population
    log_woz = np.log(d["avg_property_value_1000eur"])
    low_income = d["pct_low_income_households"]
    unoccupied = d["pct_unoccupied_homes"]
    horeca = np.log1p(
        d["cafes_within_1km"] + d["cafeterias_within_1km"] + p.restaurant_weight * d["restaurants_within_1km"]
    )
    z = {
        name: _z(series, series[inhabited])
        for name, series in dict(
            woz=log_woz, low=low_income, unocc=unoccupied, horeca=horeca, income=d["avg_income_per_inhabitant_1000eur"]
        ).items()
    }
    corp_share = _sigmoid(
        p.corp_share_intercept + p.corp_share_low_income * z["low"] + p.corp_share_property_value * z["woz"]
    )
    social = np.clip(d["pct_rental"] / 100.0 * corp_share, 0.0, p.social_share_max)
    live = 1.0 + 8.0 * _sigmoid(
        p.live_intercept
        + p.live_income * z["income"]
        + p.live_property_value * z["woz"]
        - p.live_low_income * z["low"]
        - p.live_unoccupied * z["unocc"]
    )
    w = p.vulnerable_weight_social_min
    vulnerable = np.clip(
        p.vulnerable_scale * (w * d["pct_below_120pct_social_min"] + (1 - w) * low_income) / 100.0, 0.0, 1.0
    )
    nuisance = p.nuisance_base * np.exp(
        p.nuisance_horeca * z["horeca"] + p.nuisance_low_income * z["low"] + p.nuisance_unoccupied * z["unocc"]
    )
    hoods = pd.DataFrame(
        {
            "neighbourhood_id": d["buurt_code"],
            "name": d["buurt_name"],
            "district": d["stadsdeel"],
            "lat": d["centroid_lat"].round(6),
            "lon": d["centroid_lon"].round(6),
            "liveability_score": live.round(2),
            "social_housing_share": social.round(4),
            "vulnerable_household_share": vulnerable.round(4),
            "nuisance_reports_per_1000": nuisance.round(1),
        }
    )
    households = d["population_total"] / d["avg_household_size"]
    social_homes = (households * hoods["social_housing_share"]).where(inhabited, 0.0)
    return hoods[TABLES["neighbourhoods"].column_names], social_homes.rename("social_homes"), imputed


def make_care_providers(hoods: pd.DataFrame, population: pd.Series, specs: tuple[ProviderSpec, ...]) -> pd.DataFrame:
    """Providers at the centroid of their district's most populated buurt (the next one for a second provider)."""
    rows = []
    used: dict[str, int] = {}
    ranked = hoods.assign(population=population.to_numpy()).sort_values(
        ["population", "neighbourhood_id"], ascending=[False, True]
    )
    for spec in specs:
        in_district = ranked[ranked["district"] == spec.district]
        if in_district.empty:
            raise ConfigError(ERR_PROVIDER_DISTRICT.format(name=spec.name, district=spec.district))
        k = used.get(spec.district, 0)
        used[spec.district] = k + 1
        hood = in_district.iloc[k % len(in_district)]
        rows.append({"care_provider": spec.name, "lat": hood["lat"], "lon": hood["lon"]})
    return pd.DataFrame(rows)


def _weights(mapping: dict[str, float], keys) -> np.ndarray:
    w = np.array([mapping.get(k, 0.0) for k in keys], dtype=float)
    return w / w.sum()


def make_dwellings(
    rng: np.random.Generator, hoods: pd.DataFrame, social_homes: pd.Series, p: DwellingParams, *, stock: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """`stock` homes in building complexes sited by social housing stock; also each home's relative offer rate."""
    types = list(DWELLING_TYPES)
    spec = [p.types[t] for t in types]
    era_types = np.array([_weights(e.type_weights, types) for e in p.eras])
    n_complex = stock  # every complex adds at least one home to the pool, so this many always suffice
    site_p = social_homes.to_numpy() / social_homes.sum()
    hood_idx = rng.choice(len(hoods), size=n_complex, p=site_p)
    district = hoods["district"].to_numpy()[hood_idx]
    districts = sorted(set(district))
    era = np.empty(n_complex, dtype=int)
    for name in districts:
        mask = district == name
        weights = np.asarray(p.district_era_weights.get(name, p.district_era_weights["default"]), dtype=float)
        era[mask] = rng.choice(len(p.eras), size=int(mask.sum()), p=weights / weights.sum())
    starts = np.array([e.start for e in p.eras])
    ends = np.array([e.end for e in p.eras])
    year = rng.integers(starts[era], ends[era] + 1)
    u = rng.random(n_complex)
    kind = (np.cumsum(era_types[era], axis=1) < u[:, None]).sum(axis=1).clip(0, len(types) - 1)
    median = np.array([s.units_median for s in spec])[kind]
    sigma = np.array([s.units_sigma for s in spec])[kind]
    units = np.exp(np.log(median) + sigma * rng.standard_normal(n_complex)).round()
    units = np.clip(
        units, np.array([s.units_min for s in spec])[kind], np.array([s.units_max for s in spec])[kind]
    ).astype(int)
    storeys = rng.integers(
        np.array([s.storeys_min for s in spec])[kind], np.array([s.storeys_max for s in spec])[kind] + 1
    )
    lift_p = np.where(
        storeys >= p.lift_storeys,
        np.array([s.lift_high_rise for s in spec])[kind],
        np.array([s.lift_low_rise for s in spec])[kind],
    )
    lift_p = np.where((year >= p.new_build_year) & (storeys > 1), 1.0, lift_p)
    lift = rng.random(n_complex) < lift_p
    shared = rng.random(n_complex) < np.array([s.shared_entrance for s in spec])[kind]
    landlord_names = sorted(p.landlords)
    landlord = rng.choice(len(landlord_names), size=n_complex, p=_weights(p.landlords, landlord_names))
    turnover = np.exp(p.turnover_sigma * rng.standard_normal(n_complex))
    pool = np.clip(np.round(units * p.pool_share), 1, units).astype(int)
    n_used = int(np.searchsorted(np.cumsum(pool), stock) + 1)
    pool = pool[:n_used].copy()
    pool[-1] -= int(pool.sum() - stock)

    cx = np.repeat(np.arange(n_used), pool)
    n = len(cx)
    k = kind[cx]
    floor = np.floor(rng.random(n) * storeys[cx]).astype(int)
    rooms = rng.integers(np.array([s.rooms_min for s in spec])[k], np.array([s.rooms_max for s in spec])[k] + 1)
    area = np.array([s.area_base for s in spec])[k] + np.array([s.area_per_room for s in spec])[k] * rooms
    area = np.maximum(area + p.area_sd * rng.standard_normal(n), 15.0).round(1)
    new_build = year[cx] >= p.new_build_year
    rent = p.rent_base + p.rent_per_m2 * area + p.rent_new_build * new_build + p.rent_sd * rng.standard_normal(n)
    rent = np.clip(rent, p.rent_min, p.rent_max).round(2)
    step_free = (floor == 0) | lift[cx]
    wheel = step_free & (rng.random(n) < np.where(new_build, p.wheelchair_new_build, p.wheelchair_other))
    dwellings = pd.DataFrame(
        {
            "dwelling_id": [f"W{i:06d}" for i in range(1, n + 1)],
            "neighbourhood_id": hoods["neighbourhood_id"].to_numpy()[hood_idx[cx]],
            "complex_id": [f"CX{c:05d}" for c in cx + 1],
            "landlord": np.array(landlord_names, dtype=object)[landlord[cx]],
            "dwelling_type": np.array(types, dtype=object)[k],
            "floor": floor,
            "has_lift": lift[cx],
            "rooms": rooms,
            "floor_area_m2": area,
            "rent_eur": rent,
            "shared_entrance": shared[cx],
            "units_in_complex": units[cx],
            "construction_year": year[cx],
            "wheelchair_accessible": wheel,
        }
    )
    return dwellings, turnover[cx]


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) probability matrix."""
    u = rng.random(len(probs))
    return (
        (np.cumsum(probs, axis=1) < u[:, None] * probs.sum(axis=1, keepdims=True))
        .sum(axis=1)
        .clip(0, probs.shape[1] - 1)
    )


def make_clients(
    rng: np.random.Generator,
    arrival: pd.DatetimeIndex,
    providers: tuple[ProviderSpec, ...],
    district_population: pd.Series,
    p: ClientParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clients (housing-needs profiles) and their protected attributes, one per arrival date."""
    n = len(arrival)
    coming = np.where(rng.random(n) < p.shelter_share, COMING_FROM[0], COMING_FROM[1])
    sheltered = coming == COMING_FROM[1]
    genders = list(GENDERS)
    gender = np.array(genders, dtype=object)[rng.choice(len(genders), size=n, p=_weights(p.gender_weights, genders))]
    migrations = list(MIGRATION_BACKGROUNDS)
    migration_code = rng.choice(len(migrations), size=n, p=_weights(p.migration_weights, migrations))
    migration = np.array(migrations, dtype=object)[migration_code]
    age = np.clip(np.round(p.age_mean + p.age_sd * rng.standard_normal(n)), p.age_min, p.age_max).astype(int)
    birth_year = arrival.year.to_numpy() - age

    multi_p = p.multi_person_share * np.where(gender == "female", p.multi_person_female, 1.0)
    multi_p = np.clip(multi_p * np.where(migration == "outside_europe", p.multi_person_outside_europe, 1.0), 0.0, 1.0)
    larger = rng.choice(
        len(p.larger_household_weights),
        size=n,
        p=np.asarray(p.larger_household_weights) / sum(p.larger_household_weights),
    )
    household = np.where(rng.random(n) < multi_p, 2 + larger, 1)

    z = p.zrm
    vulnerability = rng.standard_normal(n)
    decades = (age - 40) / 10.0
    scores = {}
    for domain in ZRM_DOMAINS:
        raw = z.mean[domain] - z.loading[domain] * vulnerability + z.noise_sd * rng.standard_normal(n)
        raw += z.sheltered_housing_shift.get(domain, 0.0) * sheltered
        if domain == "zrm_physical_health":
            raw += z.age_physical_per_decade * decades
        scores[domain] = np.clip(np.round(raw), 1, 5).astype(int)

    benefit = np.where(household >= 2, p.benefit_multi, p.benefit_single) + p.benefit_sd * rng.standard_normal(n)
    work_p = p.work_share * (scores["zrm_work_education"] - 1) / 2.0
    works = rng.random(n) < work_p
    wage = np.clip(p.work_income_mean + p.work_income_sd * rng.standard_normal(n), p.work_income_min, p.work_income_max)
    income = np.where(works, wage, np.maximum(benefit, p.benefit_min)).round(2)
    support = p.support_base + p.support_per_vulnerability * vulnerability + p.support_sheltered_housing * sheltered
    support = np.clip(support + p.support_sd * rng.standard_normal(n), p.support_min, p.support_max)
    support = np.round(support * 2) / 2

    phys_sev = (5 - scores["zrm_physical_health"]) / 4
    mental_sev = (5 - scores["zrm_mental_health"]) / 4
    addiction_sev = (5 - scores["zrm_addiction"]) / 4
    wheelchair = (scores["zrm_physical_health"] <= 2) & (rng.random(n) < p.wheelchair_low_physical)
    ground = wheelchair | (rng.random(n) < _sigmoid(p.ground_floor_intercept + p.ground_floor_physical * phys_sev))
    quiet = rng.random(n) < _sigmoid(p.quiet_intercept + p.quiet_mental_health * mental_sev)

    provider_names = [s.name for s in providers]
    weights = np.array([[s.shelter_weight, s.sheltered_housing_weight] for s in providers], dtype=float)
    probs = np.where(sheltered[:, None], weights[:, 1][None, :], weights[:, 0][None, :])
    provider = np.array(provider_names, dtype=object)[_categorical(rng, probs)]

    districts = list(district_population.index)
    base = district_population.to_numpy(dtype=float)
    affinity = np.array(
        [[p.network_district_affinity.get(m, {}).get(dname, 1.0) for dname in districts] for m in migrations]
    )
    net_probs = (affinity * base[None, :])[migration_code]
    has_network = rng.random(n) < p.network_share
    network = np.where(has_network, np.array(districts, dtype=object)[_categorical(rng, net_probs)], "")
    avoid_p = np.clip(p.avoid_share + p.avoid_addiction * addiction_sev, 0.0, 1.0)
    avoid_w = np.tile(_weights(p.avoid_district_weights, districts), (n, 1))
    avoid = np.where(rng.random(n) < avoid_p, np.array(districts, dtype=object)[_categorical(rng, avoid_w)], "")
    avoid = np.where(avoid == network, "", avoid)

    ids = [f"K{i:06d}" for i in range(1, n + 1)]
    clients = pd.DataFrame(
        {
            "client_id": ids,
            "care_provider": provider,
            "coming_from": coming,
            "household_size": household,
            "monthly_income_eur": income,
            "support_hours_per_week": support,
            **scores,
            "needs_ground_floor_or_lift": ground,
            "needs_quiet_surroundings": quiet,
            "needs_wheelchair_access": wheelchair,
            "network_district": network,
            "avoid_district": avoid,
        }
    )
    protected = pd.DataFrame(
        {"client_id": ids, "gender": gender, "birth_year": birth_year, "migration_background": migration}
    )
    return clients[TABLES["clients"].column_names], protected[TABLES["client_protected"].column_names]
