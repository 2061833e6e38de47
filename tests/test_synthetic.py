"""The synthetic generator: contract-valid, deterministic, plausible base rates, and a truth where the match matters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import load_params, section
from features.contract import TABLES
from features.errors import UserError
from features.load import load_dataset
from pipelines.cli import app
from synthetic.generate import (
    TRUTH_PAIRS_FILE,
    TRUTH_PLACEMENTS_FILE,
    GenerateParams,
    generate_dataset,
    load_truth_coefs,
    meeting_dates,
    truth_meetings,
    within_client_spread,
)
from synthetic.truth import (
    FailureCoefs,
    HardRules,
    NuisanceCoefs,
    PassendToewijzen,
    TruthCoefs,
    TruthScales,
    eligible,
    true_failure_logit,
    true_nuisance_rate,
    true_p_sustained,
    truth_input_columns,
    truth_pair_inputs,
)
from synthetic.world import CBS_FILE, derive_neighbourhoods, impute_cbs

PROTECTED = ("gender", "birth_year", "migration_background")


def _params() -> GenerateParams:
    return section(load_params(), "generate", GenerateParams)


def small_params(**overrides) -> GenerateParams:
    """Two years (so some meetings have a full outcome horizon), a small stock and a short queue."""
    cfg = _params()
    cfg = dataclasses.replace(
        cfg,
        years=2,
        weekly_vacancies=10,
        weekly_candidates=10.3,
        initial_queue=90,
        truth_weeks=12,
    )
    return dataclasses.replace(cfg, **overrides)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("small")
    summary = generate_dataset(root / "data", small_params(), truth_dir=root / "truth")
    return root / "data", root / "truth", summary


def _truth_inputs(ds, pairs: pd.DataFrame, coefs: TruthCoefs, **kw) -> pd.DataFrame:
    return truth_pair_inputs(
        pairs,
        clients=ds.clients,
        dwellings=ds.dwellings,
        neighbourhoods=ds.neighbourhoods,
        care_providers=ds.care_providers,
        placements=ds.placements,
        scales=coefs.scales,
        **kw,
    )


def _sustained_share(ds) -> float:
    horizon = pd.Timedelta(days=365)
    known = ds.placements[ds.placements["tenancy_start"] + horizon <= ds.as_of]
    ends = known.merge(ds.tenancy_ends, on="placement_id", how="left")
    failed = ends["reason"].isin(["eviction", "returned_to_care"]) & (
        ends["end_date"] - ends["tenancy_start"] < horizon
    )
    return 1.0 - failed.mean()


# --- the dataset follows the contract -------------------------------------------------------------


def test_generated_folder_passes_the_contract(small):
    data, _, summary = small
    ds = load_dataset(data)
    written = [n for n, spec in TABLES.items() if spec.required or n == "client_protected"]
    assert sorted(p.name for p in data.iterdir()) == sorted(["dataset.yaml", *(f"{n}.csv" for n in written)])
    assert len(ds.neighbourhoods) == 517
    assert ds.as_of == pd.Timestamp("2025-12-31")
    assert ds.vacancies["meeting_date"].dt.dayofweek.eq(0).all()  # Mondays
    assert (ds.placements["tenancy_start"] >= ds.placements["meeting_date"]).all()
    assert "sustained" in summary and "queue" in summary


def test_a_dwelling_comes_back_only_after_its_tenancy_ended(small):
    ds = load_dataset(small[0])
    repeats = ds.vacancies[ds.vacancies.duplicated("dwelling_id", keep="first")]
    ends = ds.placements.merge(ds.tenancy_ends, on="placement_id")
    for _, row in repeats.iterrows():
        earlier = ends[(ends["dwelling_id"] == row["dwelling_id"]) & (ends["end_date"] < row["meeting_date"])]
        assert len(earlier) >= 1


def test_homes_only_in_inhabited_buurten_and_names_are_fictional(small):
    ds = load_dataset(small[0])
    cbs = pd.read_csv(CBS_FILE, dtype=str)
    population = cbs.set_index("buurt_code")["population_total"].astype(float)
    assert population.reindex(ds.dwellings["neighbourhood_id"]).min() >= _params().neighbourhoods.min_population
    real = (
        "querido",
        "leger des heils",
        "hvo",
        "ymere",
        "eigen haard",
        "stadgenoot",
        "de alliantie",
        "rochdale",
        "de key",
        "cordaan",
        "arkin",
    )
    names = " ".join([*ds.care_providers["care_provider"], *ds.dwellings["landlord"].unique()]).lower()
    assert not [r for r in real if r in names]
    districts = set(ds.neighbourhoods["district"])
    assert set(ds.clients["network_district"].dropna()) <= districts
    assert set(ds.clients["avoid_district"].dropna()) <= districts


def test_every_placement_passes_the_hard_rules(small):
    data, truth, _ = small
    ds = load_dataset(data)
    cfg = _params()
    inputs = _truth_inputs(ds, ds.placements, load_truth_coefs(truth))
    ok = eligible(inputs, cfg.rules, ds.placements["meeting_date"].dt.year.to_numpy())
    assert ok.all()


# --- determinism ------------------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path, small):
    data, _, _ = small
    again = tmp_path / "again"
    generate_dataset(again, small_params())
    for file in sorted(data.iterdir()):
        assert (again / file.name).read_bytes() == file.read_bytes(), file.name
    other = tmp_path / "other"
    generate_dataset(other, small_params(seed=small_params().seed + 1))
    assert (other / "placements.csv").read_bytes() != (data / "placements.csv").read_bytes()
    assert (other / "clients.csv").read_bytes() != (data / "clients.csv").read_bytes()
    assert (other / "neighbourhoods.csv").read_bytes() == (
        data / "neighbourhoods.csv"
    ).read_bytes()  # derived, not drawn


# --- base rates -------------------------------------------------------------------------------------


def test_base_rates_are_plausible(small):
    ds = load_dataset(small[0])
    assert 0.75 <= _sustained_share(ds) <= 0.90
    reports = ds.nuisance_reports
    assert len(reports) > 0
    assert 0.05 < (reports["severity"] == "serious").mean() < 0.5
    assert 0.05 < reports["placement_id"].nunique() / len(ds.placements) < 0.6
    queue = ds.candidates.groupby("meeting_date").size()
    assert 40 <= queue.mean() <= 250
    filled = len(ds.placements) / len(ds.vacancies)
    assert 0.85 <= filled <= 1.0
    assert ds.clients["household_size"].eq(1).mean() > 0.7
    assert set(ds.tenancy_ends["reason"]) >= {"eviction", "returned_to_care", "voluntary_move"}


def test_recent_placements_are_right_censored(small):
    ds = load_dataset(small[0])
    recent = ds.placements[ds.placements["tenancy_start"] > ds.as_of - pd.Timedelta(days=365)]
    ends = ds.tenancy_ends.merge(ds.placements, on="placement_id")
    assert len(recent) > 0
    assert (ends["end_date"] <= ds.as_of).all()
    assert ds.nuisance_reports["report_date"].max() <= ds.as_of


# --- the truth --------------------------------------------------------------------------------------


def test_truth_stays_out_of_the_dataset(small, tmp_path):
    data, truth, _ = small
    assert {p.name for p in truth.iterdir()} >= {TRUTH_PAIRS_FILE, TRUTH_PLACEMENTS_FILE, "truth.yaml", "README.md"}
    for file in data.glob("*.csv"):
        header = file.read_text(encoding="utf-8").split("\n", 1)[0].split(",")
        assert not {"p_sustained", "expected_nuisance", "eligible", "failed_within_horizon"} & set(header), file.name
    with pytest.raises(UserError, match="outside the dataset folder"):
        generate_dataset(tmp_path / "d", small_params(), truth_dir=tmp_path / "d" / "truth")
    assert not (tmp_path / "d").exists()


def test_truth_covers_the_held_out_meetings_with_full_horizon(small):
    data, truth, _ = small
    pairs = pd.read_parquet(truth / TRUTH_PAIRS_FILE)
    cfg = small_params()
    held_out = truth_meetings(meeting_dates(cfg), cfg)
    assert list(pd.DatetimeIndex(sorted(pairs["meeting_date"].unique()))) == list(held_out)
    assert (held_out + pd.Timedelta(days=365 + cfg.tenancy_lag_days[1]) <= pd.Timestamp(cfg.as_of)).all()
    ds = load_dataset(data)
    at = ds.vacancies[ds.vacancies["meeting_date"].isin(held_out)].groupby("meeting_date").size()
    cands = ds.candidates[ds.candidates["meeting_date"].isin(held_out)].groupby("meeting_date").size()
    assert len(pairs) == int((at * cands).sum())  # every (vacancy, candidate) pair
    placed = pairs[pairs["placed"]].merge(ds.placements, on=["meeting_date", "dwelling_id", "client_id"])
    assert len(placed) == pairs["placed"].sum() == ds.placements["meeting_date"].isin(held_out).sum()


def test_truth_recomputes_from_the_dataset_with_the_public_helpers(small):
    data, truth, _ = small
    ds, coefs, cfg = load_dataset(data), load_truth_coefs(truth), _params()
    pairs = pd.read_parquet(truth / TRUTH_PAIRS_FILE)
    inputs = _truth_inputs(ds, pairs, coefs)
    np.testing.assert_allclose(true_p_sustained(inputs, coefs), pairs["p_sustained"], rtol=1e-12)
    np.testing.assert_allclose(true_nuisance_rate(inputs, coefs), pairs["expected_nuisance"], rtol=1e-12)
    assert (eligible(inputs, cfg.rules, pairs["meeting_date"].dt.year.to_numpy()) == pairs["eligible"]).all()
    placed = pd.read_parquet(truth / TRUTH_PLACEMENTS_FILE)
    p_inputs = _truth_inputs(ds, placed, coefs, date_col="tenancy_start", decided_col="meeting_date")
    np.testing.assert_allclose(p_inputs["concentration_12m"], placed["concentration_12m"])
    np.testing.assert_allclose(true_p_sustained(p_inputs, coefs), placed["p_sustained"], rtol=1e-12)


def test_the_match_matters_in_the_truth(small):
    pairs = pd.read_parquet(small[1] / TRUTH_PAIRS_FILE)
    spread = within_client_spread(pairs)
    assert len(spread) > 100
    assert spread.median() > 0.08


def test_no_protected_attribute_enters_the_truth(small):
    data, truth, _ = small
    ds, coefs = load_dataset(data), load_truth_coefs(truth)
    assert not set(truth_input_columns(coefs)) & set(PROTECTED)
    pairs = pd.read_parquet(truth / TRUTH_PAIRS_FILE).head(5000)
    inputs = _truth_inputs(ds, pairs, coefs)
    exact = inputs[list(truth_input_columns(coefs))]  # the formula needs nothing else
    np.testing.assert_array_equal(true_p_sustained(exact, coefs), pairs["p_sustained"])
    protected = ds.client_protected
    shuffled = protected.assign(**{c: protected[c].sample(frac=1, random_state=1).to_numpy() for c in PROTECTED})
    with_real = inputs.merge(protected, on="client_id", how="left")
    with_shuffled = inputs.merge(shuffled, on="client_id", how="left")
    assert not with_real[list(PROTECTED)].equals(with_shuffled[list(PROTECTED)])
    np.testing.assert_array_equal(true_p_sustained(with_real, coefs), true_p_sustained(with_shuffled, coefs))
    np.testing.assert_array_equal(true_nuisance_rate(with_real, coefs), true_nuisance_rate(with_shuffled, coefs))


# --- the formula and rules on hand-checked numbers ----------------------------------------------------


def _toy_coefs() -> TruthCoefs:
    scales = TruthScales(
        busy_units_ref=100,
        nuisance_ref=50,
        nuisance_cap=3,
        support_hours_ref=4,
        distance_km_ref=5,
        concentration_window_days=365,
        concentration_cap=5,
        rent_burden_ref=0.4,
        vulnerable_ref=0.1,
        stairs_min_floor=2,
    )
    failure = FailureCoefs(
        intercept=-2.0,
        client={"zrm_finances": 1.0},
        quiet_busy_complex=1.0,
        quiet_nuisance=0.5,
        support_distance=0.2,
        concentration=0.1,
        rent_burden_finances=2.0,
        own_network_district=-0.5,
        addiction_vulnerable=0.6,
        stairs_physical=1.2,
    )
    nuisance = NuisanceCoefs(
        intercept=-1.0,
        addiction=1.0,
        mental_health=0.5,
        quiet_busy_complex=0.5,
        vulnerable_neighbourhood=0.4,
        concentration=0.1,
    )
    return TruthCoefs(horizon_days=365, scales=scales, failure=failure, nuisance=nuisance)


# A hand-checked pair for the truth functions (also used by tests/test_family.py).
TOY_PAIR = {
    "zrm_finances": [1],
    "zrm_addiction": [3],
    "zrm_mental_health": [5],
    "zrm_physical_health": [1],
    "support_hours_per_week": [8.0],
    "needs_quiet_surroundings": [True],
    "monthly_income_eur": [1000.0],
    "rent_eur": [600.0],
    "floor": [3],
    "has_lift": [False],
    "shared_entrance": [True],
    "units_in_complex": [100],
    "nuisance_reports_per_1000": [100.0],
    "vulnerable_household_share": [0.2],
    "distance_km": [10.0],
    "concentration_12m": [7],
    "own_network_district": [True],
}


def test_failure_logit_on_a_hand_checked_pair():
    pair = pd.DataFrame(TOY_PAIR)
    # finances 1.0*1 + busy 1.0*1 + nuisance 0.5*(2-1) + distance 0.2*2*2 + concentration 0.1*5 (capped)
    # + burden 2.0*(0.6-0.4)*1 + network -0.5 + addiction 0.6*0.5*(2-1) + stairs 1.2*1
    expected = -2.0 + 1.0 + 1.0 + 0.5 + 0.8 + 0.5 + 0.4 - 0.5 + 0.3 + 1.2
    assert true_failure_logit(pair, _toy_coefs())[0] == pytest.approx(expected)
    assert true_p_sustained(pair, _toy_coefs())[0] == pytest.approx(1 / (1 + np.exp(expected)))
    # nuisance: -1 + addiction 1.0*0.5 + mental 0 + busy 0.5 + vulnerable 0.4*1 + concentration 0.1*5
    assert true_nuisance_rate(pair, _toy_coefs())[0] == pytest.approx(np.exp(-1 + 0.5 + 0.5 + 0.4 + 0.5))


def test_hard_rules_on_hand_checked_pairs():
    rules = HardRules(
        large_household_from=3,
        min_rooms_by_household_size=(1, 2, 3),
        years={
            2024: PassendToewijzen(27725, 37625, 650.43, 697.07),
            2025: PassendToewijzen(28375, 38500, 682.96, 731.93),
        },
    )
    pairs = pd.DataFrame(
        {
            "monthly_income_eur": [1300, 1300, 2500, 1300, 1300, 1300],
            "household_size": [1, 1, 1, 4, 1, 1],
            "rent_eur": [660.0, 660.0, 800.0, 690.0, 500.0, 500.0],
            "rooms": [2, 2, 2, 3, 1, 1],
            "needs_wheelchair_access": [False] * 6,
            "wheelchair_accessible": [False] * 6,
            "needs_ground_floor_or_lift": [False, False, False, False, True, False],
            "floor": [0, 0, 0, 0, 2, 0],
            "has_lift": [False] * 6,
            "avoid_match": [False, False, False, False, False, True],
        }
    )
    years = np.array([2024, 2025, 2024, 2023, 2024, 2024])  # 2023 falls back to the earliest year
    assert eligible(pairs, rules, years).tolist() == [False, True, True, True, False, False]


def test_imputation_uses_wijk_then_stadsdeel_then_city_median():
    cbs = pd.read_csv(CBS_FILE, dtype={"buurt_code": str})
    columns = ["avg_property_value_1000eur"]
    toy = cbs.head(6).copy()
    toy["wijk_code"] = ["W1", "W1", "W1", "W2", "W2", "W3"]
    toy["stadsdeel"] = ["A", "A", "A", "A", "A", "B"]
    toy[columns[0]] = [100.0, 300.0, np.nan, np.nan, np.nan, np.nan]
    out, counts = impute_cbs(toy)
    assert out[columns[0]].tolist() == [100.0, 300.0, 200.0, 200.0, 200.0, 200.0]
    assert counts[columns[0]] == 4
    hoods, social_homes, _ = derive_neighbourhoods(cbs, _params().neighbourhoods)
    assert hoods.notna().all().all()
    assert hoods["liveability_score"].between(1, 9).all()
    assert social_homes[cbs["population_total"] < _params().neighbourhoods.min_population].eq(0).all()


def test_generate_rules_mirror_the_project_rules():
    """The simulated meeting applies the same amounts and room rule as the project's eligibility step."""
    params = load_params()
    project = params.get("passend_toewijzen", {}).get("years", {})
    rules = _params().rules
    for year, amounts in rules.years.items():
        if year in project:
            mine = dataclasses.asdict(amounts)
            assert {k: mine[k] for k in project[year] if k in mine} == {
                k: v for k, v in project[year].items() if k in mine
            }, year
    if "large_household_from" in params.get("passend_toewijzen", {}):
        assert rules.large_household_from == params["passend_toewijzen"]["large_household_from"]
    if "min_rooms_by_household_size" in params.get("eligibility", {}):
        assert list(rules.min_rooms_by_household_size) == list(params["eligibility"]["min_rooms_by_household_size"])


def test_a_failed_run_leaves_no_half_written_dataset(tmp_path, monkeypatch):
    import synthetic.generate as synthetic

    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("previous dataset", encoding="utf-8")
    calls = {"n": 0}
    real_csv = synthetic._csv

    def failing_csv(frame, path):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full")
        real_csv(frame, path)

    monkeypatch.setattr(synthetic, "_csv", failing_csv)
    with pytest.raises(OSError, match="disk full"):
        generate_dataset(out, small_params(years=1))
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary folder left behind
    assert [p.name for p in out.iterdir()] == ["keep.txt"]  # the previous dataset is untouched


def test_a_provider_in_an_unknown_district_is_a_user_error():
    cfg = small_params()
    bad = (dataclasses.replace(cfg.care_providers[0], district="Atlantis"), *cfg.care_providers[1:])
    with pytest.raises(UserError, match="Atlantis"):
        generate_dataset("/nonexistent/never-written", dataclasses.replace(cfg, care_providers=bad))


# --- end to end -------------------------------------------------------------------------------------


def test_cli_generate_then_validate(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app, ["generate", "--out", str(out), "--years", "1", "--weekly-vacancies", "8", "--weekly-candidates", "8"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout
    assert runner.invoke(app, ["validate", "--data", str(out)]).exit_code == 0


def test_default_size_run_has_the_documented_base_rates(tmp_path):
    """The default world (~5 years, ~1,200 placements a year); a few seconds."""
    cfg = _params()
    generate_dataset(tmp_path / "data", cfg, truth_dir=tmp_path / "truth")
    ds = load_dataset(tmp_path / "data")
    per_year = ds.placements.groupby(ds.placements["meeting_date"].dt.year).size()
    assert per_year.between(1000, 1400).all()
    assert 0.80 <= _sustained_share(ds) <= 0.88
    assert 150 <= ds.candidates.groupby("meeting_date").size().mean() <= 300
    spread = within_client_spread(pd.read_parquet(tmp_path / "truth" / TRUTH_PAIRS_FILE))
    assert 0.10 <= spread.median() <= 0.25


def test_generate_with_decisions_validates_and_leaves_the_rest_alone(tmp_path):
    from features.config import load_params, section
    from features.decisions import current_decisions
    from synthetic.decisions import DecisionParams
    from synthetic.generate import generate_dataset
    from tests.conftest import small_generate_params

    cfg = small_generate_params(years=1)
    dp = section(load_params(), "synthetic_decisions", DecisionParams)
    generate_dataset(tmp_path / "with", cfg, decisions=dp)
    generate_dataset(tmp_path / "without", cfg)
    written = sorted(p.name for p in (tmp_path / "without").iterdir())
    assert sorted(p.name for p in (tmp_path / "with").iterdir()) == sorted([*written, "decisions.csv"])
    for name in written:  # every table but decisions, byte for byte
        assert (tmp_path / "with" / name).read_bytes() == (tmp_path / "without" / name).read_bytes(), name
    ds = load_dataset(tmp_path / "with")
    current = current_decisions(ds.decisions)
    assert len(current) == len(ds.vacancies)
    placing = current[current["decision"] != "no_placement"]
    assert len(placing) == len(ds.placements)
    assert 0.6 < (placing["decision"] == "plan_followed").mean() < 0.95  # followed_share 0.8
    assert set(placing.loc[placing["decision"] == "other_candidate", "reason"]) >= {"client_preference", "urgency"}
    assert len(ds.decisions) > len(current)  # some decisions were changed and superseded
