"""Eligibility rules on literal homes and clients: each rule, its boundaries, the reported rule per excluded pair."""

from __future__ import annotations

import pandas as pd
import pytest

from features.config import ConfigError, section
from features.contract import ZRM_DOMAINS
from features.load import load_dataset
from features.rules import PassendToewijzen, YearAmounts
from planning.eligibility import RULE_NAMES, EligibilityParams, apply_eligibility, rule_checks, unverified_amounts
from tests.conftest import tiny_tables, write_dataset
from tests.helpers import RULES

# Literal amounts, so every boundary below can be checked by hand.
AMOUNTS = PassendToewijzen(
    years={
        2023: YearAmounts(
            income_threshold_single=24000, income_threshold_multi=36000, rent_cap_small=600.0, rent_cap_large=650.0
        ),
        2024: YearAmounts(
            income_threshold_single=24000,
            income_threshold_multi=36000,
            rent_cap_small=620.0,
            rent_cap_large=670.0,
            verified=False,
        ),
    },
    large_household_from=3,
)
ALL = EligibilityParams()
MEETING = "2023-03-06"

HOME_DEFAULTS = dict(
    neighbourhood_id="BU03630001",
    complex_id="C1",
    landlord="L",
    dwelling_type="apartment",
    floor=0,
    has_lift="false",
    rooms=3,
    floor_area_m2=60.0,
    rent_eur=500.0,
    shared_entrance="true",
    units_in_complex=20,
    construction_year=1990,
    wheelchair_accessible="false",
)
CLIENT_DEFAULTS = dict(
    care_provider="Kompas Zorg",
    coming_from="shelter",
    household_size=1,
    monthly_income_eur=1500.0,
    support_hours_per_week=4.0,
    **dict.fromkeys(ZRM_DOMAINS, 3),
    needs_ground_floor_or_lift="false",
    needs_quiet_surroundings="false",
    needs_wheelchair_access="false",
    network_district="",
    avoid_district="",
)


def make_dataset(tmp_path, homes: dict[str, dict], clients: dict[str, dict]):
    """A valid dataset with the given homes and clients (overrides of the defaults), all at one meeting."""
    base = tiny_tables()
    t = {k: base[k] for k in ("neighbourhoods", "care_providers")}
    t["dwellings"] = pd.DataFrame([{**HOME_DEFAULTS, "dwelling_id": i, **v} for i, v in homes.items()])
    t["clients"] = pd.DataFrame([{**CLIENT_DEFAULTS, "client_id": i, **v} for i, v in clients.items()])
    t["client_protected"] = pd.DataFrame(
        {"client_id": list(clients), "gender": "x", "birth_year": 1980, "migration_background": "europe"}
    )
    t["vacancies"] = pd.DataFrame({"meeting_date": MEETING, "dwelling_id": list(homes)})
    t["candidates"] = pd.DataFrame({"meeting_date": MEETING, "client_id": list(clients)})
    t["placements"] = pd.DataFrame(
        columns=["placement_id", "client_id", "dwelling_id", "meeting_date", "tenancy_start"]
    )
    t["tenancy_ends"] = pd.DataFrame(columns=["placement_id", "end_date", "reason"])
    t["nuisance_reports"] = pd.DataFrame(columns=["report_id", "placement_id", "report_date", "severity"])
    return load_dataset(write_dataset(tmp_path / "ds", t))


def all_pairs(ds, date: str = MEETING) -> pd.DataFrame:
    pairs = ds.dwellings[["dwelling_id"]].merge(ds.clients[["client_id"]], how="cross")
    pairs.insert(0, "meeting_date", pd.Timestamp(date))
    return pairs


def verdicts(ds, rules=ALL, amounts=AMOUNTS, date: str = MEETING) -> dict[tuple[str, str], str]:
    """(dwelling, client) -> "ok" or the rule that excluded the pair."""
    eligible, excluded = apply_eligibility(ds, all_pairs(ds, date), rules, amounts)
    out = dict.fromkeys(zip(eligible["dwelling_id"], eligible["client_id"], strict=True), "ok")
    out.update(
        {(d, c): r for d, c, r in zip(excluded["dwelling_id"], excluded["client_id"], excluded["rule"], strict=True)}
    )
    return out


ONLY = {name: EligibilityParams(rules=(name,)) for name in RULE_NAMES}


def test_rent_cap_boundaries(tmp_path):
    ds = make_dataset(
        tmp_path,
        homes={
            "AT_SMALL": {"rent_eur": 600.00},
            "OVER_SMALL": {"rent_eur": 600.01},
            "AT_LARGE": {"rent_eur": 650.00},
            "OVER_LARGE": {"rent_eur": 650.01},
        },
        clients={
            "single_at_threshold": {"monthly_income_eur": 2000.00},  # 24,000 a year = threshold: the cap applies
            "single_over_threshold": {"monthly_income_eur": 2000.01},  # 24,000.12 > threshold: no cap
            "two_at_threshold": {
                "household_size": 2,
                "monthly_income_eur": 3000.00,
            },  # 36,000 = multi threshold, cap for 1-2
            "three_at_threshold": {"household_size": 3, "monthly_income_eur": 3000.00},  # cap for 3+
            "three_over_threshold": {"household_size": 3, "monthly_income_eur": 3000.01},
        },
    )
    v = verdicts(ds, ONLY["passend_toewijzen"])
    expected = {
        "single_at_threshold": ["ok", "passend_toewijzen", "passend_toewijzen", "passend_toewijzen"],
        "single_over_threshold": ["ok", "ok", "ok", "ok"],
        "two_at_threshold": ["ok", "passend_toewijzen", "passend_toewijzen", "passend_toewijzen"],
        "three_at_threshold": ["ok", "ok", "ok", "passend_toewijzen"],
        "three_over_threshold": ["ok", "ok", "ok", "ok"],
    }
    homes = ["AT_SMALL", "OVER_SMALL", "AT_LARGE", "OVER_LARGE"]
    assert {c: [v[(h, c)] for h in homes] for c in expected} == expected


def test_amounts_follow_the_meeting_year(tmp_path):
    ds = make_dataset(tmp_path, homes={"H610": {"rent_eur": 610.0}}, clients={"low": {"monthly_income_eur": 1500.0}})
    assert verdicts(ds, ONLY["passend_toewijzen"], date="2023-06-05")[("H610", "low")] == "passend_toewijzen"  # cap 600
    assert verdicts(ds, ONLY["passend_toewijzen"], date="2024-06-03")[("H610", "low")] == "ok"  # cap 620
    assert (
        verdicts(ds, ONLY["passend_toewijzen"], date="2030-01-07")[("H610", "low")] == "ok"
    )  # latest earlier year: 2024


def test_rooms_by_household_size(tmp_path):
    ds = make_dataset(
        tmp_path,
        homes={f"R{r}": {"rooms": r} for r in (1, 2, 3, 4)},
        clients={f"size{n}": {"household_size": n, "monthly_income_eur": 4000.0} for n in (1, 2, 3, 5)},
    )
    v = verdicts(ds, ONLY["rooms"])  # min rooms [1, 2, 3, 3, 4]
    ok = {c: [r for r in (1, 2, 3, 4) if v[(f"R{r}", c)] == "ok"] for c in ("size1", "size2", "size3", "size5")}
    assert ok == {"size1": [1, 2, 3, 4], "size2": [2, 3, 4], "size3": [3, 4], "size5": [4]}
    capped = verdicts(ds, EligibilityParams(rules=("rooms",), max_rooms_surplus=2))
    assert capped[("R4", "size1")] == "rooms" and capped[("R3", "size1")] == "ok"


def test_wheelchair_access(tmp_path):
    ds = make_dataset(
        tmp_path,
        homes={"WA": {"wheelchair_accessible": "true"}, "NO": {}},
        clients={"needs": {"needs_wheelchair_access": "true"}, "walks": {}},
    )
    v = verdicts(ds, ONLY["wheelchair"])
    assert v == {("WA", "needs"): "ok", ("NO", "needs"): "wheelchair", ("WA", "walks"): "ok", ("NO", "walks"): "ok"}


def test_ground_floor_or_lift(tmp_path):
    ds = make_dataset(
        tmp_path,
        homes={
            "GROUND": {"floor": 0},
            "LIFT": {"floor": 4, "has_lift": "true"},
            "STAIRS": {"floor": 2, "has_lift": "false"},
        },
        clients={"needs": {"needs_ground_floor_or_lift": "true"}, "climbs": {}},
    )
    v = verdicts(ds, ONLY["ground_floor_or_lift"])
    assert [v[(h, "needs")] for h in ("GROUND", "LIFT", "STAIRS")] == ["ok", "ok", "ground_floor_or_lift"]
    assert [v[(h, "climbs")] for h in ("GROUND", "LIFT", "STAIRS")] == ["ok", "ok", "ok"]


def test_avoid_district_ignores_case_and_blanks(tmp_path):
    # BU03630001 is in Oost, BU03630002 in West (tiny fixture).
    ds = make_dataset(
        tmp_path,
        homes={"EAST": {"neighbourhood_id": "BU03630001"}, "WEST": {"neighbourhood_id": "BU03630002"}},
        clients={"avoids_west": {"avoid_district": " west "}, "avoids_none": {"avoid_district": ""}},
    )
    v = verdicts(ds, ONLY["avoid_district"])
    assert v == {
        ("EAST", "avoids_west"): "ok",
        ("WEST", "avoids_west"): "avoid_district",
        ("EAST", "avoids_none"): "ok",
        ("WEST", "avoids_none"): "ok",
    }


def test_first_failing_rule_in_configured_order_and_all_rules_listed(tmp_path):
    ds = make_dataset(
        tmp_path,
        homes={"BAD": {"rent_eur": 700.0, "floor": 3, "rooms": 1, "neighbourhood_id": "BU03630002"}},
        clients={
            "c": {
                "household_size": 2,
                "monthly_income_eur": 1500.0,
                "needs_ground_floor_or_lift": "true",
                "avoid_district": "West",
            }
        },
    )
    _, excluded = apply_eligibility(ds, all_pairs(ds), ALL, AMOUNTS)
    row = excluded.iloc[0]
    assert row["rule"] == "passend_toewijzen"
    assert row["failed_rules"] == "passend_toewijzen;rooms;ground_floor_or_lift;avoid_district"
    assert row["detail"] == (
        "rent €700.00 above the 2023 cap of €600.00 (household of 2); income €18,000 a year ≤ threshold €36,000"
    )
    reordered = EligibilityParams(
        rules=("avoid_district", "rooms", "passend_toewijzen", "ground_floor_or_lift", "wheelchair")
    )
    _, excluded = apply_eligibility(ds, all_pairs(ds), reordered, AMOUNTS, lang="nl")
    assert excluded.iloc[0]["rule"] == "avoid_district"
    assert excluded.iloc[0]["failed_rules"] == "avoid_district;rooms;passend_toewijzen;ground_floor_or_lift"
    assert excluded.iloc[0]["detail"] == "woning ligt in West, het stadsdeel dat de cliënt moet vermijden"


def test_every_pair_is_eligible_or_excluded_exactly_once(tiny_dir):
    ds = load_dataset(tiny_dir)
    pairs = all_pairs(ds).assign(extra=range(9))
    pairs.index = pairs.index + 100  # the caller's index is kept
    eligible, excluded = apply_eligibility(ds, pairs, ALL, RULES)
    assert sorted([*eligible.index, *excluded.index]) == list(pairs.index)
    assert "extra" in eligible.columns and "extra" in excluded.columns
    assert excluded["rule"].notna().all() and excluded["detail"].str.len().gt(0).all()


def test_tiny_dataset_verdicts(tiny_dir):
    """D002: rent 700 over the 2023 cap 647.19 for every (low-income) client; client 0002 also needs a lift and avoids West."""
    ds = load_dataset(tiny_dir)
    pairs = all_pairs(ds, "2023-01-02")
    pairs = pairs[pairs["dwelling_id"].isin(["D001", "D002"])]
    eligible, excluded = apply_eligibility(ds, pairs, ALL, RULES)
    assert sorted(eligible["dwelling_id"] + "/" + eligible["client_id"]) == ["D001/0001", "D001/0002", "D001/0003"]
    assert excluded.set_index("client_id")["rule"].to_dict() == {
        "0001": "passend_toewijzen",
        "0002": "passend_toewijzen",
        "0003": "passend_toewijzen",
    }
    assert (
        excluded.set_index("client_id").loc["0002", "failed_rules"]
        == "passend_toewijzen;ground_floor_or_lift;avoid_district"
    )
    checks = rule_checks(ds, pairs, ALL, RULES)
    assert list(checks.columns) == list(RULE_NAMES) and checks.dtypes.eq(bool).all()


def test_no_rules_means_everything_eligible(tiny_dir):
    ds = load_dataset(tiny_dir)
    eligible, excluded = apply_eligibility(ds, all_pairs(ds), EligibilityParams(rules=()), RULES)
    assert len(eligible) == 9 and excluded.empty and list(excluded.columns[-3:]) == ["rule", "failed_rules", "detail"]


def test_params_section_drives_the_rules_and_bad_rule_names(tmp_path):
    """A params.yaml section with only the rooms rule and a stricter room table excludes by rooms alone."""
    cfg = section(
        {"eligibility": {"rules": ["rooms"], "min_rooms_by_household_size": [2], "income_months_per_year": 12}},
        "eligibility",
        EligibilityParams,
    )
    ds = make_dataset(
        tmp_path,
        homes={"ONE_ROOM": {"rooms": 1, "rent_eur": 900.0}, "TWO_ROOMS": {"rooms": 2, "rent_eur": 900.0}},
        clients={"single_low_income": {"household_size": 1, "monthly_income_eur": 1000.0}},
    )
    eligible, excluded = apply_eligibility(ds, all_pairs(ds), cfg, AMOUNTS)
    assert eligible["dwelling_id"].tolist() == ["TWO_ROOMS"]  # over the rent cap, but that rule is off
    assert excluded[["dwelling_id", "rule"]].values.tolist() == [["ONE_ROOM", "rooms"]]
    with pytest.raises(ConfigError, match="unknown rule.*income_cap"):
        EligibilityParams(rules=("passend_toewijzen", "income_cap"))
    with pytest.raises(ConfigError, match="more than once"):
        EligibilityParams(rules=("rooms", "rooms"))


def test_unverified_amounts_warn():
    assert unverified_amounts([2023], AMOUNTS) == []
    (warning,) = unverified_amounts([2024], AMOUNTS)
    assert "2024" in warning and "verified: false" in warning
    borrowed = unverified_amounts([2026], AMOUNTS)
    assert len(borrowed) == 2 and "no amounts configured for 2026" in borrowed[0]
    # The project's own params: 2026 rent caps are not verified, 2025 are.
    assert unverified_amounts([2025], RULES) == [] and len(unverified_amounts([2026], RULES)) == 1
    assert "verified: false" in unverified_amounts([2026], RULES, lang="nl")[0]
