"""Point-in-time pair features: client × home × neighbourhood × history, as of a meeting date.

Every feature of a pair at meeting date `m` uses only what was known before `m`:
static intake profiles of clients and homes, and history events (placements
made at earlier meetings, tenancy ends and nuisance reports dated before `m`).
Protected attributes (client_protected) are never read here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import DWELLING_TYPES, FAILURE_REASONS, PROFILE_COLUMNS, REGION, ZRM_DOMAINS
from features.load import Dataset, region_of
from features.lookup import positions
from features.profiles import clients_as_of
from features.rules import PassendToewijzen

PAIR_KEYS = ["meeting_date", "dwelling_id", "client_id"]
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)


@dataclass(frozen=True)
class FeatureParams:
    """History windows (days) and caps used by the pair features."""

    placement_window_days: int
    failure_window_days: int
    nuisance_window_days: int
    max_rent_to_income: float
    # Domain thresholds of three match terms (a caseworker's rule of thumb, not learned):
    busy_complex_units: float = 100.0  # from this many homes a complex counts as fully busy/anonymous (saturates)
    stairs_from_floor: int = 2  # from this floor up, stairs without a lift are a burden


@dataclass(frozen=True)
class FeatureInfo:
    """How a feature reads in a sentence, in English and Dutch."""

    name: str
    en: str
    nl: str
    group: str  # client | home | neighbourhood | match | history


def _f(name: str, en: str, nl: str, group: str) -> FeatureInfo:
    return FeatureInfo(name, en, nl, group)


_ZRM_WORDS = {
    "zrm_finances": ("finances", "financiën"),
    "zrm_work_education": ("work & education", "werk & opleiding"),
    "zrm_time_use": ("time use", "tijdsbesteding"),
    "zrm_housing": ("housing", "huisvesting"),
    "zrm_domestic_relations": ("domestic relations", "huiselijke relaties"),
    "zrm_mental_health": ("mental health", "geestelijke gezondheid"),
    "zrm_physical_health": ("physical health", "lichamelijke gezondheid"),
    "zrm_addiction": ("addiction", "verslaving"),
    "zrm_basic_adl": ("basic ADL", "ADL"),
    "zrm_instrumental_adl": ("instrumental ADL", "HDL"),
    "zrm_social_network": ("social network", "sociaal netwerk"),
    "zrm_community_participation": ("community participation", "maatschappelijke participatie"),
    "zrm_justice": ("justice", "justitie"),
}

FEATURES: tuple[FeatureInfo, ...] = (
    *(
        _f(d, f"self-reliance on {en} (ZRM)", f"zelfredzaamheid {nl} (ZRM)", "client")
        for d, (en, nl) in _ZRM_WORDS.items()
    ),
    _f("zrm_mean", "overall self-reliance (ZRM mean)", "zelfredzaamheid gemiddeld (ZRM)", "client"),
    _f("zrm_min", "weakest ZRM domain", "zwakste ZRM-domein", "client"),
    _f("household_size", "household size", "huishoudgrootte", "client"),
    _f("monthly_income_eur", "monthly income", "maandinkomen", "client"),
    _f("support_hours_per_week", "support hours a week", "begeleidingsuren per week", "client"),
    _f("from_sheltered_housing", "coming from sheltered housing", "komt uit beschermd wonen", "client"),
    _f("needs_ground_floor_or_lift", "needs ground floor or lift", "heeft begane grond of lift nodig", "client"),
    _f("needs_quiet_surroundings", "needs quiet surroundings", "heeft een rustige omgeving nodig", "client"),
    _f("prior_failed_tenancies", "earlier tenancies that failed", "eerdere huurperiodes die misgingen", "client"),
    *(
        _f(f"type_{t}", f"home is a {t.replace('_', ' ')}", f"woning is een {nl}", "home")
        for t, nl in zip(
            DWELLING_TYPES, ("eengezinswoning", "galerijflat", "portiekflat", "appartement", "studio"), strict=True
        )
    ),
    _f("floor", "floor", "verdieping", "home"),
    _f("has_lift", "lift", "lift", "home"),
    _f("rooms", "rooms", "kamers", "home"),
    _f("floor_area_m2", "floor area", "woonoppervlak", "home"),
    _f("rent_eur", "rent", "huur", "home"),
    _f("shared_entrance", "shared entrance", "gedeelde entree", "home"),
    _f("units_in_complex", "homes in the complex", "woningen in het complex", "home"),
    _f("construction_year", "construction year", "bouwjaar", "home"),
    _f("wheelchair_accessible", "wheelchair accessible", "rolstoeltoegankelijk", "home"),
    _f("liveability_score", "neighbourhood liveability", "leefbaarheid buurt", "neighbourhood"),
    _f(
        "social_housing_share",
        "share of social housing in the neighbourhood",
        "aandeel sociale huur in de buurt",
        "neighbourhood",
    ),
    _f(
        "vulnerable_household_share",
        "share of vulnerable households in the neighbourhood",
        "aandeel kwetsbare huishoudens in de buurt",
        "neighbourhood",
    ),
    _f("nuisance_reports_per_1000", "neighbourhood nuisance reports", "overlastmeldingen in de buurt", "neighbourhood"),
    _f("rent_to_income", "rent as a share of income", "huur als deel van het inkomen", "match"),
    _f("residual_income_eur", "income left after rent", "inkomen na huur", "match"),
    _f(
        "rent_cap_headroom_eur",
        "room under the passend-toewijzen rent cap",
        "ruimte onder de huurgrens (passend toewijzen)",
        "match",
    ),
    _f(
        "rent_burden_x_finances", "rent burden for someone with weak finances", "huurlast bij zwakke financiën", "match"
    ),
    _f("rooms_surplus", "rooms beyond the household's need", "kamers boven behoefte", "match"),
    _f("floors_without_lift", "stairs: floors without a lift", "trappen: verdiepingen zonder lift", "match"),
    _f(
        "stairs_x_physical",
        "stairs for someone with weak physical health",
        "trappen bij zwakke lichamelijke gezondheid",
        "match",
    ),
    _f(
        "quiet_need_x_units",
        "busy complex for someone who needs quiet",
        "druk complex voor iemand die rust nodig heeft",
        "match",
    ),
    _f(
        "quiet_need_x_shared_entrance",
        "shared entrance for someone who needs quiet",
        "gedeelde entree voor iemand die rust nodig heeft",
        "match",
    ),
    _f(
        "quiet_need_x_nuisance",
        "neighbourhood nuisance for someone who needs quiet",
        "buurtoverlast voor iemand die rust nodig heeft",
        "match",
    ),
    _f("distance_to_care_km", "distance to the care provider", "afstand tot de zorgaanbieder", "match"),
    _f(
        "support_x_distance",
        "distance to the care provider given the support hours",
        "afstand tot de zorgaanbieder bij de begeleidingsuren",
        "match",
    ),
    _f("network_in_district", "own network in this district", "eigen netwerk in dit stadsdeel", "match"),
    _f(
        "addiction_x_vulnerable",
        "addiction in a neighbourhood with many vulnerable households",
        "verslaving in een buurt met veel kwetsbare huishoudens",
        "match",
    ),
    _f(
        "quiet_need_x_busy_entrance",
        "busy shared entrance (log homes in the complex) for someone who needs quiet",
        "drukke gedeelde entree (log woningen in het complex) voor iemand die rust nodig heeft",
        "match",
    ),
    _f(
        "isolation_x_complex_size",
        "weak social network in a big complex (log homes)",
        "zwak sociaal netwerk in een groot complex (log woningen)",
        "match",
    ),
    _f(
        "quiet_need_x_crowded_entrance",
        "busy shared entrance (complex size, saturating) for someone who needs quiet",
        "drukke gedeelde entree (grootte van het complex, verzadigend) voor iemand die rust nodig heeft",
        "match",
    ),
    _f(
        "isolation_x_large_complex",
        "weak social network in a big complex (size, saturating)",
        "zwak sociaal netwerk in een groot complex (grootte, verzadigend)",
        "match",
    ),
    _f(
        "upper_floor_stairs_x_physical",
        "stairs to an upper floor without a lift for someone with weak physical health",
        "trappen naar een hogere verdieping zonder lift bij zwakke lichamelijke gezondheid",
        "match",
    ),
    _f(
        "recent_placements_complex",
        "recent placements of clients in this complex",
        "recente plaatsingen van cliënten in dit complex",
        "history",
    ),
    _f(
        "recent_placements_neighbourhood",
        "recent placements of clients in this neighbourhood",
        "recente plaatsingen van cliënten in deze buurt",
        "history",
    ),
    _f(
        "recent_failures_complex",
        "recent failed tenancies in this complex",
        "recent mislukte huurperiodes in dit complex",
        "history",
    ),
    _f(
        "recent_nuisance_complex",
        "recent nuisance reports in this complex",
        "recente overlastmeldingen in dit complex",
        "history",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_INFO: dict[str, FeatureInfo] = {f.name: f for f in FEATURES}
PROTECTED_COLUMNS = ("gender", "birth_year", "age", "age_band", "migration_background")
assert not set(FEATURE_NAMES) & set(PROTECTED_COLUMNS)


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between arrays of WGS84 points."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=float)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def window_count(
    event_key: pd.Series, event_date: pd.Series, query_key: pd.Series, query_date: pd.Series, days: int
) -> np.ndarray:
    """For each query, how many events share its key and fall in [query_date − days, query_date)."""
    return EventDays(event_key, event_date).count(query_key, query_date, days)


class EventDays:
    """Dated events by key, sorted once and counted for many queries (`window_count` without re-sorting the events).

    A missing key matches the events with a missing key; a key no event has matches none.
    """

    _SPAN = np.int64(1 << 24)  # more days than any date range here; keeps keys of different groups apart

    def __init__(self, event_key: pd.Series, event_date: pd.Series) -> None:
        codes, uniques = pd.factorize(event_key.astype("string"))
        self.keys = pd.Index(uniques)
        day = event_date.to_numpy("datetime64[D]").astype(np.int64)
        self.events = np.sort(codes.astype(np.int64) * self._SPAN + day)

    def count(self, query_key: pd.Series, query_date: pd.Series, days: int) -> np.ndarray:
        """For each query, how many events share its key and fall in [query_date − days, query_date)."""
        if len(self.events) == 0:
            return np.zeros(len(query_key), dtype=np.int64)
        key = query_key.astype("string")
        at = self.keys.get_indexer(key)
        code = np.where(key.isna().to_numpy(), -1, np.where(at < 0, len(self.keys), at)).astype(np.int64)
        hi = code * self._SPAN + query_date.to_numpy("datetime64[D]").astype(np.int64)
        lo = hi - days
        return (np.searchsorted(self.events, hi, side="left") - np.searchsorted(self.events, lo, side="left")).astype(
            np.int64
        )


def _history_events(ds: Dataset) -> dict[str, EventDays]:
    """The dated history events the pair features count, by the complex/neighbourhood/client they belong to."""
    homes = ds.dwellings[["dwelling_id", "complex_id", "neighbourhood_id"]]
    pl = ds.placements.merge(homes, on="dwelling_id", how="left")
    ends = ds.tenancy_ends.merge(pl[["placement_id", "client_id", "complex_id"]], on="placement_id", how="left")
    failures = ends[ends["reason"].isin(FAILURE_REASONS)]
    reports = ds.nuisance_reports.merge(pl[["placement_id", "complex_id"]], on="placement_id", how="left")
    return {
        "placements_complex": EventDays(pl["complex_id"], pl["meeting_date"]),
        "placements_neighbourhood": EventDays(pl["neighbourhood_id"], pl["meeting_date"]),
        "failures_complex": EventDays(failures["complex_id"], failures["end_date"]),
        "failures_client": EventDays(failures["client_id"], failures["end_date"]),
        "reports_complex": EventDays(reports["complex_id"], reports["report_date"]),
    }


_JOINED: list[tuple[tuple, tuple]] = []  # the last dataset's joined tables (see _joined_tables)


def _joined_tables(ds: Dataset) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, EventDays]]:
    """Homes with their neighbourhood, clients with their care provider, and the history events of `ds`.

    The same for every batch of pairs of one dataset, so made once: at country scale (300,000
    homes) these joins cost more than the features of a batch. Kept for the last dataset only,
    recognised by its very table objects (a dataset's tables are validated once and never
    changed in place; a new or replaced table is joined afresh).
    """
    tables = (
        ds.dwellings,
        ds.neighbourhoods,
        ds.clients,
        ds.care_providers,
        ds.placements,
        ds.tenancy_ends,
        ds.nuisance_reports,
    )
    if _JOINED and all(a is b for a, b in zip(_JOINED[0][0], tables, strict=True)):
        homes, clients, ev = _JOINED[0][1]
        return homes, clients, ev
    homes = ds.dwellings.merge(ds.neighbourhoods.drop(columns=["name"]), on="neighbourhood_id", how="left")
    homes = homes.rename(columns={"lat": "home_lat", "lon": "home_lon"})
    clients = ds.clients.merge(
        ds.care_providers.rename(columns={"lat": "care_lat", "lon": "care_lon"}), on="care_provider", how="left"
    )
    ev = _history_events(ds)
    _JOINED[:] = [(tables, (homes, clients, ev))]
    return homes, clients, ev


def _with_homes_and_clients(p: pd.DataFrame, homes: pd.DataFrame, clients: pd.DataFrame) -> pd.DataFrame:
    """`p` left-joined with its home's and its client's row (`merge` in value, positional index).

    When every home and client is there once and no column name repeats, the rows are taken by
    position from each table's id index, made once (`features.lookup`): a merge would hash all
    299,000 homes at every call. Otherwise the merge itself, with its checks and its errors.
    """
    at_home = positions(homes, "dwelling_id", p["dwelling_id"])
    at_client = positions(clients, "client_id", p["client_id"])
    home_cols = [c for c in homes.columns if c != "dwelling_id"]
    client_cols = [c for c in clients.columns if c != "client_id"]
    names = [*p.columns, *home_cols, *client_cols]
    if at_home is None or at_client is None or len(set(names)) < len(names):
        return p.merge(homes, on="dwelling_id", how="left", validate="many_to_one").merge(
            clients, on="client_id", how="left", validate="many_to_one"
        )
    parts = [p.reset_index(drop=True), homes.take(at_home)[home_cols], clients.take(at_client)[client_cols]]
    return pd.concat([part.reset_index(drop=True) for part in parts], axis=1)


def build_pair_features(
    ds: Dataset, pairs: pd.DataFrame, *, params: FeatureParams, rules: PassendToewijzen
) -> pd.DataFrame:
    """Model features for (meeting_date, dwelling_id, client_id) pairs, as of each pair's meeting date.

    Returns a frame aligned with `pairs` (same index), holding the pair keys
    followed by `FEATURE_NAMES` as float columns.
    """
    p = pairs[PAIR_KEYS].copy()
    homes, clients, ev = _joined_tables(ds)
    x = _with_homes_and_clients(p, homes, clients)
    x.index = p.index
    profile = clients_as_of(ds, p)  # the client's profile as of each meeting (client_profiles, else clients)
    for col in PROFILE_COLUMNS:
        x[col] = profile[col]
    out = pd.DataFrame(index=p.index)
    for col in PAIR_KEYS:
        out[col] = p[col]

    zrm = x[list(ZRM_DOMAINS)].astype(float)
    for d in ZRM_DOMAINS:
        out[d] = zrm[d]
    out["zrm_mean"] = zrm.mean(axis=1)
    out["zrm_min"] = zrm.min(axis=1)
    for col in (
        "household_size",
        "monthly_income_eur",
        "support_hours_per_week",
        "floor",
        "rooms",
        "floor_area_m2",
        "rent_eur",
        "units_in_complex",
        "construction_year",
        "liveability_score",
        "social_housing_share",
        "vulnerable_household_share",
        "nuisance_reports_per_1000",
    ):
        out[col] = x[col].astype(float)
    for col in (
        "needs_ground_floor_or_lift",
        "needs_quiet_surroundings",
        "has_lift",
        "shared_entrance",
        "wheelchair_accessible",
    ):
        out[col] = x[col].astype(float)
    out["from_sheltered_housing"] = (x["coming_from"] == "sheltered_housing").astype(float)
    for t in DWELLING_TYPES:
        out[f"type_{t}"] = (x["dwelling_type"] == t).astype(float)

    income = out["monthly_income_eur"].to_numpy()
    rent = out["rent_eur"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rti = np.where(income > 0, rent / np.maximum(income, 1e-9), params.max_rent_to_income)
    out["rent_to_income"] = np.minimum(rti, params.max_rent_to_income)
    out["residual_income_eur"] = income - rent
    _, caps = rules.for_rows(p["meeting_date"].dt.year, x["household_size"])
    out["rent_cap_headroom_eur"] = caps - rent
    out["rent_burden_x_finances"] = out["rent_to_income"] * (5 - out["zrm_finances"])
    out["rooms_surplus"] = out["rooms"] - out["household_size"]
    no_lift = 1 - out["has_lift"]
    out["floors_without_lift"] = out["floor"] * no_lift
    out["stairs_x_physical"] = out["floors_without_lift"] * (5 - out["zrm_physical_health"])
    quiet = out["needs_quiet_surroundings"]
    out["quiet_need_x_units"] = quiet * out["units_in_complex"]
    out["quiet_need_x_shared_entrance"] = quiet * out["shared_entrance"]
    out["quiet_need_x_nuisance"] = quiet * out["nuisance_reports_per_1000"]
    dist = haversine_km(x["home_lat"], x["home_lon"], x["care_lat"], x["care_lon"])
    out["distance_to_care_km"] = dist
    out["support_x_distance"] = out["support_hours_per_week"] * dist
    out["network_in_district"] = (x["network_district"].fillna("") == x["district"]).astype(float)
    out["addiction_x_vulnerable"] = (5 - out["zrm_addiction"]) * out["vulnerable_household_share"]
    # Domain terms as their own features (a linear prior or a stump cannot build a product of three or a log):
    # a shared entrance counts more the bigger the complex; a weak social network weighs more in a big, anonymous one.
    log_units = np.log(np.maximum(out["units_in_complex"].to_numpy(dtype=float), 1.0))
    out["quiet_need_x_busy_entrance"] = quiet * out["shared_entrance"] * log_units
    out["isolation_x_complex_size"] = (5 - out["zrm_social_network"]) * log_units
    # The same with the size saturating at `busy_complex_units` homes (0..1: past that, bigger is not busier), and
    # stairs as a threshold (from `stairs_from_floor` up without a lift) instead of a count of floors.
    size = np.minimum(log_units / np.log(max(params.busy_complex_units, 2.0)), 1.0)
    out["quiet_need_x_crowded_entrance"] = quiet * out["shared_entrance"] * size
    out["isolation_x_large_complex"] = (5 - out["zrm_social_network"]) * size
    upper = (out["floor"] >= params.stairs_from_floor).astype(float)
    out["upper_floor_stairs_x_physical"] = upper * no_lift * (5 - out["zrm_physical_health"])

    day = p["meeting_date"]
    out["recent_placements_complex"] = ev["placements_complex"].count(
        x["complex_id"], day, params.placement_window_days
    )
    out["recent_placements_neighbourhood"] = ev["placements_neighbourhood"].count(
        x["neighbourhood_id"], day, params.placement_window_days
    )
    out["recent_failures_complex"] = ev["failures_complex"].count(x["complex_id"], day, params.failure_window_days)
    out["prior_failed_tenancies"] = ev["failures_client"].count(x["client_id"], day, 100 * 366)
    out["recent_nuisance_complex"] = ev["reports_complex"].count(x["complex_id"], day, params.nuisance_window_days)

    out[list(FEATURE_NAMES)] = out[list(FEATURE_NAMES)].astype(float)
    return out[PAIR_KEYS + list(FEATURE_NAMES)]


def all_meeting_pairs(ds: Dataset, meeting_dates) -> pd.DataFrame:
    """Every (vacancy, candidate) pair at each of the given meeting dates, within each regional meeting.

    A meeting is a region on a date: a home is paired only with the candidates of its own region.
    Returns the pair keys and `region` (DEFAULT_REGION when the data have no regions).
    """
    dates = pd.DatetimeIndex(meeting_dates)
    vac = ds.vacancies.loc[ds.vacancies["meeting_date"].isin(dates), ["meeting_date", "dwelling_id"]]
    vac = vac.assign(**{REGION: region_of(ds.vacancies).loc[vac.index]})
    cand = ds.candidates.loc[ds.candidates["meeting_date"].isin(dates), ["meeting_date", "client_id"]]
    cand = cand.assign(**{REGION: region_of(ds.candidates).loc[cand.index]})
    pairs = vac.merge(cand, on=["meeting_date", REGION], how="inner")
    return pairs.sort_values(PAIR_KEYS, kind="stable").reset_index(drop=True)[[*PAIR_KEYS, REGION]]


def meeting_pairs(ds: Dataset, meeting_date: pd.Timestamp) -> pd.DataFrame:
    """Every (vacancy, candidate) pair at one meeting, in a stable order."""
    return all_meeting_pairs(ds, [meeting_date])
