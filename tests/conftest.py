"""Shared fixtures: a tiny literal dataset that follows the contract, written as CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.contract import ZRM_DOMAINS


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Hand-made tables of a minimal valid dataset (two meetings, three placements)."""
    zrm = {d: [3, 2, 4] for d in ZRM_DOMAINS}
    return {
        "neighbourhoods": pd.DataFrame(
            {
                "neighbourhood_id": ["BU03630001", "BU03630002"],
                "name": ["Oost-Noord", "West-Zuid"],
                "district": ["Oost", "West"],
                "lat": [52.36, 52.37],
                "lon": [4.93, 4.85],
                "liveability_score": [6.5, 4.0],
                "social_housing_share": [0.55, 0.70],
                "vulnerable_household_share": [0.08, 0.15],
                "nuisance_reports_per_1000": [12.0, 30.5],
            }
        ),
        "care_providers": pd.DataFrame({"care_provider": ["Kompas Zorg"], "lat": [52.36], "lon": [4.90]}),
        "dwellings": pd.DataFrame(
            {
                "dwelling_id": ["D001", "D002", "D003"],
                "neighbourhood_id": ["BU03630001", "BU03630002", "BU03630002"],
                "complex_id": ["C1", "C2", "C2"],
                "landlord": ["Woonstad", "Woonstad", "Eigen Haard-ish"],
                "dwelling_type": ["gallery_flat", "portico_flat", "studio"],
                "floor": [0, 3, 1],
                "has_lift": ["true", "False", "1"],
                "rooms": [2, 3, 1],
                "floor_area_m2": [45.0, 62.5, 28.0],
                "rent_eur": [610.0, 700.0, 480.0],
                "shared_entrance": ["TRUE", "true", "0"],
                "units_in_complex": [40, 12, 12],
                "construction_year": [1972, 1930, 1930],
                "wheelchair_accessible": ["false", "false", "false"],
            }
        ),
        "clients": pd.DataFrame(
            {
                "client_id": ["0001", "0002", "0003"],
                "care_provider": ["Kompas Zorg"] * 3,
                "coming_from": ["shelter", "sheltered_housing", "shelter"],
                "household_size": [1, 2, 1],
                "monthly_income_eur": [1250.0, 1800.0, 1100.0],
                "support_hours_per_week": [4.0, 8.0, 2.0],
                **zrm,
                "needs_ground_floor_or_lift": ["false", "true", "false"],
                "needs_quiet_surroundings": ["true", "false", "false"],
                "needs_wheelchair_access": ["false", "false", "false"],
                "network_district": ["Oost", "", ""],
                "avoid_district": ["", "West", ""],
            }
        ),
        "client_protected": pd.DataFrame(
            {
                "client_id": ["0001", "0002", "0003"],
                "gender": ["female", "male", "x"],
                "birth_year": [1980, 1995, 1970],
                "migration_background": ["netherlands", "outside_europe", "europe"],
            }
        ),
        "vacancies": pd.DataFrame(
            {"meeting_date": ["2023-01-02", "2023-01-02", "2023-01-09"], "dwelling_id": ["D001", "D002", "D003"]}
        ),
        "candidates": pd.DataFrame(
            {
                "meeting_date": ["2023-01-02", "2023-01-02", "2023-01-02", "2023-01-09"],
                "client_id": ["0001", "0002", "0003", "0003"],
            }
        ),
        "placements": pd.DataFrame(
            {
                "placement_id": ["P1", "P2", "P3"],
                "client_id": ["0001", "0002", "0003"],
                "dwelling_id": ["D001", "D002", "D003"],
                "meeting_date": ["2023-01-02", "2023-01-02", "2023-01-09"],
                "tenancy_start": ["2023-02-01", "2023-02-15", "2023-02-01"],
            }
        ),
        "tenancy_ends": pd.DataFrame({"placement_id": ["P2"], "end_date": ["2023-09-30"], "reason": ["eviction"]}),
        "nuisance_reports": pd.DataFrame(
            {"report_id": ["R1"], "placement_id": ["P1"], "report_date": ["2023-05-01"], "severity": ["minor"]}
        ),
    }


def tiny_decisions() -> pd.DataFrame:
    """A valid decision log for `tiny_tables` (matching its placements P1-P3).

    D002 was first left empty (no_placement, urgency), then changed: DEC3 supersedes DEC2 and
    gives it to 0002 instead of the plan's 0003 (reason other, with a note).
    """
    return pd.DataFrame(
        {
            "decision_id": ["DEC1", "DEC2", "DEC3", "DEC4"],
            "meeting_date": ["2023-01-02", "2023-01-02", "2023-01-02", "2023-01-09"],
            "dwelling_id": ["D001", "D002", "D002", "D003"],
            "client_id": ["0001", "", "0002", "0003"],
            "decision": ["plan_followed", "no_placement", "other_candidate", "plan_followed"],
            "reason": ["", "urgency", "other", ""],
            "note": ["", "", "care plan starts later", ""],
            "proposed_client_id": ["0001", "0003", "0003", "0003"],
            "shown_rank": ["1", "", "2", "1"],
            "model_version": ["3", "3", "3", "3"],
            "decided_at": [
                "2023-01-02T10:00:00+01:00",
                "2023-01-02T10:05:00+01:00",
                "2023-01-02T10:20:00+01:00",
                "2023-01-09T09:30:00Z",
            ],
            "decided_by": ["u-7", "u-7", "u-7", "u-9"],
            "supersedes": ["", "", "DEC2", ""],
        }
    )


def write_dataset(folder: Path, tables: dict[str, pd.DataFrame], as_of: str = "2024-06-30") -> Path:
    """Write tables as CSV plus a dataset.yaml manifest into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.yaml").write_text(f"name: tiny\nas_of: {as_of}\n", encoding="utf-8")
    for name, frame in tables.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    """A valid tiny dataset folder."""
    return write_dataset(tmp_path / "tiny", tiny_tables())


def small_generate_params(**overrides):
    """The project's generator params, shrunk for tests (4 years, about 12 homes a week)."""
    import dataclasses

    from features.config import load_params, section
    from synthetic.generate import GenerateParams

    cfg = section(load_params(), "generate", GenerateParams)
    scale = 12 / cfg.weekly_vacancies
    defaults = dict(
        years=4,
        weekly_vacancies=12,
        weekly_candidates=cfg.weekly_candidates * scale,
        initial_queue=int(cfg.initial_queue * scale),
        truth_weeks=16,
    )
    return dataclasses.replace(cfg, **{**defaults, **overrides})


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> tuple[Path, Path]:
    """A small generated dataset and its truth folder, shared by the slower tests."""
    from synthetic.generate import generate_dataset

    root = tmp_path_factory.mktemp("small")
    generate_dataset(root / "data", small_generate_params(), truth_dir=root / "truth")
    return root / "data", root / "truth"


def params_file(folder: Path, **section_overrides) -> Path:
    """A copy of params.yaml with sections shallow-updated (e.g. a shorter test period), written to `folder`."""
    import yaml

    from features.config import load_params

    params = load_params()
    for name, values in section_overrides.items():
        params[name] = {**params[name], **values}
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path
