"""A random, contract-valid meeting of any size after a year of weekly history (benchmarks and tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import ZRM_DOMAINS

DISTRICTS = ("Centrum", "West", "Nieuw-West", "Zuid", "Oost", "Noord", "Zuidoost", "Weesp")


PROVIDERS = (
    "Kompas Zorg",
    "Stichting Dakwaarts",
    "Zorggroep Amstelbrug",
    "De Wendakker Begeleiding",
    "Noorderkade Zorg",
)


TYPES = ("house", "gallery_flat", "portico_flat", "apartment", "studio")


def synthetic_meeting_tables(
    *, n_vacancies: int = 50, n_candidates: int = 400, history_weeks: int = 52, weekly_history: int = 20, seed: int = 0
) -> tuple[dict[str, pd.DataFrame], str, str]:
    """Random contract-valid tables: one meeting with the given vacancies and candidates after a year of weekly history.

    Returns (tables, meeting date, as_of) with dates as YYYY-MM-DD text.
    """
    rng = np.random.default_rng(seed)
    meeting = pd.Timestamp("2025-06-02")
    n_hist = history_weeks * weekly_history
    n_homes, n_clients = n_vacancies + n_hist, n_candidates + n_hist

    n_nbh = 40
    nbh = pd.DataFrame(
        {
            "neighbourhood_id": [f"BU0363{i:04d}" for i in range(n_nbh)],
            "name": [f"Buurt {i}" for i in range(n_nbh)],
            "district": rng.choice(DISTRICTS, n_nbh),
            "lat": rng.uniform(52.30, 52.42, n_nbh),
            "lon": rng.uniform(4.80, 5.00, n_nbh),
            "liveability_score": rng.uniform(3, 8.5, n_nbh).round(1),
            "social_housing_share": rng.uniform(0.2, 0.8, n_nbh).round(2),
            "vulnerable_household_share": rng.uniform(0.03, 0.25, n_nbh).round(3),
            "nuisance_reports_per_1000": rng.uniform(5, 90, n_nbh).round(1),
        }
    )
    providers = pd.DataFrame(
        {
            "care_provider": PROVIDERS,
            "lat": rng.uniform(52.33, 52.40, len(PROVIDERS)),
            "lon": rng.uniform(4.85, 4.95, len(PROVIDERS)),
        }
    )
    n_complex = max(n_homes // 8, 1)
    complex_nbh = rng.integers(0, n_nbh, n_complex)
    home_complex = rng.integers(0, n_complex, n_homes)
    types = rng.choice(TYPES, n_homes)
    rooms = np.where(types == "studio", 1, rng.integers(1, 5, n_homes))
    floor = np.where(types == "house", 0, rng.integers(0, 9, n_homes))
    homes = pd.DataFrame(
        {
            "dwelling_id": [f"W{i:05d}" for i in range(n_homes)],
            "neighbourhood_id": nbh["neighbourhood_id"].to_numpy()[complex_nbh[home_complex]],
            "complex_id": [f"C{c:04d}" for c in home_complex],
            "landlord": rng.choice(
                ["Keizerwaard Wonen", "Lindengracht Woningstichting", "Stadswaard Huisvesting"], n_homes
            ),
            "dwelling_type": types,
            "floor": floor,
            "has_lift": (floor >= 4) | (rng.random(n_homes) < 0.3),
            "rooms": rooms,
            "floor_area_m2": (20 + 15 * rooms + rng.normal(0, 5, n_homes)).round(1),
            "rent_eur": rng.uniform(380, 820, n_homes).round(2),
            "shared_entrance": types != "house",
            "units_in_complex": rng.integers(4, 200, n_complex)[home_complex],
            "construction_year": rng.integers(1900, 2022, n_complex)[home_complex],
            "wheelchair_accessible": rng.random(n_homes) < 0.06,
        }
    )
    size = np.where(rng.random(n_clients) < 0.85, 1, rng.integers(2, 5, n_clients))
    zrm = {d: rng.integers(1, 6, n_clients) for d in ZRM_DOMAINS}
    clients = pd.DataFrame(
        {
            "client_id": [f"K{i:05d}" for i in range(n_clients)],
            "care_provider": rng.choice(PROVIDERS, n_clients),
            "coming_from": rng.choice(["shelter", "sheltered_housing"], n_clients),
            "household_size": size,
            "monthly_income_eur": (rng.uniform(1100, 2600, n_clients) + 300 * (size - 1)).round(2),
            "support_hours_per_week": rng.integers(1, 13, n_clients).astype(float),
            **zrm,
            "needs_ground_floor_or_lift": rng.random(n_clients) < 0.1,
            "needs_quiet_surroundings": rng.random(n_clients) < 0.25,
            "needs_wheelchair_access": rng.random(n_clients) < 0.02,
            "network_district": np.where(rng.random(n_clients) < 0.45, rng.choice(DISTRICTS, n_clients), ""),
            "avoid_district": np.where(rng.random(n_clients) < 0.06, rng.choice(DISTRICTS, n_clients), ""),
        }
    )
    protected = pd.DataFrame(
        {
            "client_id": clients["client_id"],
            "gender": rng.choice(["female", "male", "x"], n_clients),
            "birth_year": rng.integers(1950, 2006, n_clients),
            "migration_background": rng.choice(["netherlands", "europe", "outside_europe"], n_clients),
        }
    )

    weeks = meeting - pd.to_timedelta(7 * np.arange(history_weeks, 0, -1), unit="D")
    hist_meeting = np.repeat(weeks, weekly_history)
    hist_homes = homes["dwelling_id"].to_numpy()[n_vacancies:]
    hist_clients = clients["client_id"].to_numpy()[n_candidates:]
    ymd = lambda d: pd.DatetimeIndex(d).strftime("%Y-%m-%d")  # noqa: E731
    vacancies = pd.DataFrame(
        {
            "meeting_date": np.concatenate([ymd(hist_meeting), [f"{meeting:%Y-%m-%d}"] * n_vacancies]),
            "dwelling_id": np.concatenate([hist_homes, homes["dwelling_id"].to_numpy()[:n_vacancies]]),
        }
    )
    candidates = pd.DataFrame(
        {
            "meeting_date": np.concatenate([ymd(hist_meeting), [f"{meeting:%Y-%m-%d}"] * n_candidates]),
            "client_id": np.concatenate([hist_clients, clients["client_id"].to_numpy()[:n_candidates]]),
        }
    )
    start = pd.DatetimeIndex(hist_meeting) + pd.to_timedelta(rng.integers(7, 35, n_hist), unit="D")
    placements = pd.DataFrame(
        {
            "placement_id": [f"P{i:05d}" for i in range(n_hist)],
            "client_id": hist_clients,
            "dwelling_id": hist_homes,
            "meeting_date": ymd(hist_meeting),
            "tenancy_start": ymd(start),
        }
    )
    as_of = meeting - pd.Timedelta(days=1)
    end = start + pd.to_timedelta(rng.integers(30, 400, n_hist), unit="D")
    ends_at = (rng.random(n_hist) < 0.2) & (end <= as_of)
    ends = pd.DataFrame(
        {
            "placement_id": placements["placement_id"][ends_at],
            "end_date": ymd(end[ends_at]),
            "reason": rng.choice(["eviction", "returned_to_care", "voluntary_move"], int(ends_at.sum())),
        }
    )
    report_at = (
        (rng.random(n_hist) < 0.15)
        & (start + pd.Timedelta(days=20) <= as_of)
        & (~ends_at | (end > start + pd.Timedelta(days=20)))
    )
    reports = pd.DataFrame(
        {
            "report_id": [f"R{i:05d}" for i in range(int(report_at.sum()))],
            "placement_id": placements["placement_id"][report_at],
            "report_date": ymd(start[report_at] + pd.Timedelta(days=20)),
            "severity": rng.choice(["minor", "serious"], int(report_at.sum())),
        }
    )
    tables = {
        "neighbourhoods": nbh,
        "care_providers": providers,
        "dwellings": homes,
        "clients": clients,
        "client_protected": protected,
        "vacancies": vacancies,
        "candidates": candidates,
        "placements": placements,
        "tenancy_ends": ends,
        "nuisance_reports": reports,
    }
    return tables, f"{meeting:%Y-%m-%d}", f"{as_of:%Y-%m-%d}"


def write_tables(folder: Path, tables: dict[str, pd.DataFrame], *, as_of: str, name: str = "bench") -> Path:
    """Write tables as CSV plus dataset.yaml into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.yaml").write_text(f"name: {name}\nas_of: {as_of}\n", encoding="utf-8")
    for table, frame in tables.items():
        frame.to_csv(folder / f"{table}.csv", index=False)
    return folder
