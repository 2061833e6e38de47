"""Regional meetings: the optional `region` of vacancies and candidates (a meeting is a region on a date)."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract import DEFAULT_REGION, REGION
from features.errors import UserError
from features.load import DataError, load_dataset
from features.pairs import all_meeting_pairs
from planning.assignment import AssignmentParams
from planning.priority import plan_policy, policy_clients
from planning.replay import queue_history, replay
from tests.conftest import small_generate_params, tiny_tables, write_dataset


def _regional_tables() -> dict[str, pd.DataFrame]:
    """The tiny dataset with two regions at the first meeting: D001 and clients 0001/0003 in Noord, D002/0002 in Zuid."""
    t = tiny_tables()
    t["vacancies"] = t["vacancies"].assign(region=["Noord", "Zuid", "Noord"])
    t["candidates"] = t["candidates"].assign(region=["Noord", "Zuid", "Noord", "Noord"])
    # 0003 was a Noord candidate at 2023-01-02 but is placed in D003 at 2023-01-09 (Noord): fine
    return t


def test_without_region_the_dataset_is_one_region(tiny_dir):
    ds = load_dataset(tiny_dir)
    assert ds.regions == [DEFAULT_REGION]
    assert (ds.vacancies[REGION] == DEFAULT_REGION).all()
    assert (ds.candidates[REGION] == DEFAULT_REGION).all()


def test_region_loads_and_pairs_stay_within_their_region(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "d", _regional_tables()))
    assert ds.regions == ["Noord", "Zuid"]
    pairs = all_meeting_pairs(ds, [pd.Timestamp("2023-01-02")])
    got = sorted(zip(pairs["dwelling_id"], pairs["client_id"], pairs[REGION], strict=True))
    assert got == [("D001", "0001", "Noord"), ("D001", "0003", "Noord"), ("D002", "0002", "Zuid")]


def test_region_in_one_table_only_is_a_named_problem(tmp_path):
    t = tiny_tables()
    t["vacancies"] = t["vacancies"].assign(region="Noord")
    with pytest.raises(DataError) as err:
        load_dataset(write_dataset(tmp_path / "d", t))
    message = str(err.value)
    assert "candidates" in message and "region" in message and "in both tables or in neither" in message


def test_blank_region_is_refused_with_its_row(tmp_path):
    t = _regional_tables()
    t["candidates"].loc[1, "region"] = ""
    with pytest.raises(DataError) as err:
        load_dataset(write_dataset(tmp_path / "d", t))
    problem = next(p for p in err.value.problems if p.table == "candidates" and p.column == "region")
    assert problem.rows == (2,)  # the second data row (rows are counted from 1, header not counted)


def test_placement_across_regions_is_refused(tmp_path):
    t = _regional_tables()
    t["vacancies"].loc[0, "region"] = "Zuid"  # D001 now in Zuid, its client 0001 stays a Noord candidate
    with pytest.raises(DataError) as err:
        load_dataset(write_dataset(tmp_path / "d", t))
    problem = next(p for p in err.value.problems if p.table == "placements" and "region" in p.message)
    assert problem.count == 1 and "0001" in problem.values


def test_for_region_keeps_one_regional_meeting(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "d", _regional_tables()))
    noord = ds.for_region("Noord")
    assert set(noord.vacancies["dwelling_id"]) == {"D001", "D003"}
    assert set(noord.candidates["client_id"]) == {"0001", "0003"}
    assert len(noord.placements) == len(ds.placements)  # the history stays whole
    with pytest.raises(UserError, match="region 'Oost' is not in"):
        ds.for_region("Oost")


def _pairs(rows):
    return pd.DataFrame(rows, columns=["meeting_date", "dwelling_id", "client_id", REGION, "p"]).assign(
        meeting_date=pd.Timestamp("2024-01-01")
    )


def test_pool_is_per_regional_meeting():
    # Region A: 2 homes, 3 long waiters; region B: 1 home, 2 short waiters. One pool of 1 x 3 homes over
    # both regions would hold only A's clients; per regional meeting B gets its own pool of one.
    rows = [
        (None, h, c, r, 0.5)
        for r, homes, clients in (("A", ["a1", "a2"], ["x1", "x2", "x3"]), ("B", ["b1"], ["y1", "y2"]))
        for h in homes
        for c in clients
    ]
    pairs = _pairs(rows)
    waiting = pairs["client_id"].map({"x1": 10.0, "x2": 9.0, "x3": 8.0, "y1": 1.0, "y2": 0.0})
    pool_k = AssignmentParams(policy="pool_k", pool_factor=1.0)
    assert policy_clients(pairs, waiting, pool_k, benefit="p") == {"x1", "x2", "y1"}
    one_region = pairs.drop(columns=REGION)
    assert policy_clients(one_region, waiting, pool_k, benefit="p") == {"x1", "x2", "x3"}
    plan = plan_policy(pairs, waiting, pool_k, benefit="p")
    assert sorted(zip(plan["dwelling_id"], plan["client_id"], strict=True)) == [
        ("a1", "x1"),
        ("a2", "x2"),
        ("b1", "y1"),
    ] or (
        sorted(plan["client_id"]) == ["x1", "x2", "y1"]
        and set(plan.loc[plan["dwelling_id"] == "b1", "client_id"]) == {"y1"}
    )
    exact = plan_policy(pairs, waiting, AssignmentParams(), benefit="p")
    assert sorted(exact["client_id"]) == ["x1", "x2", "y1"]
    assert exact.set_index("dwelling_id").loc["b1", "client_id"] == "y1"


def test_replay_offers_a_home_only_to_its_own_region():
    day = pd.Timestamp("2024-01-01")
    candidates = pd.DataFrame({"meeting_date": [day, day], "client_id": ["x1", "y1"], REGION: ["A", "B"]})
    vacancies = pd.DataFrame({"meeting_date": [day], "dwelling_id": ["b1"], REGION: ["B"]})
    history = queue_history(candidates, vacancies, placed_clients=set())

    def score(pairs: pd.DataFrame) -> pd.DataFrame:
        return pairs.assign(p_sustained=pairs["client_id"].map({"x1": 0.9, "y1": 0.1}))

    out = replay(history, [day], {"exact": AssignmentParams()}, score)
    placed = out["exact"].placements
    assert list(zip(placed["dwelling_id"], placed["client_id"], strict=True)) == [("b1", "y1")]


@pytest.fixture(scope="module")
def two_regions(tmp_path_factory):
    from synthetic.regions import generate_regions

    root = tmp_path_factory.mktemp("regions")
    generate_regions(root / "data", small_generate_params(years=2, weekly_vacancies=6), 2, truth_dir=root / "truth")
    return root / "data", root / "truth"


def test_generated_regions_validate_and_never_mix(two_regions):
    data, truth = two_regions
    ds = load_dataset(data)
    assert ds.regions == ["R01", "R02"]
    assert (ds.vacancies["dwelling_id"].str[:4] == ds.vacancies[REGION] + "-").all()
    assert (ds.candidates["client_id"].str[:4] == ds.candidates[REGION] + "-").all()
    t = pd.read_parquet(truth / "truth.parquet")
    assert set(t[REGION]) == {"R01", "R02"}
    assert (t["dwelling_id"].str[:3] == t["client_id"].str[:3]).all()


def test_recommend_plans_each_regional_meeting_and_filters_one(two_regions, tmp_path):
    from pipelines.recommend import load_config
    from synthetic.stand_in import history_bundle
    from tests.test_recommend import run_cli

    data, _ = two_regions
    ds = load_dataset(data)
    model = history_bundle(ds, load_config(), n_trees=20, num_leaves=4).save(tmp_path / "model")
    out = tmp_path / "all"
    done = run_cli("recommend", "--data", str(data), "--meeting", "latest", "--out", str(out), "--model", str(model))
    assert done.returncode == 0, done.stderr
    recs = pd.read_csv(out / "recommendations.csv", dtype=str)
    plan = pd.read_csv(out / "assignment.csv", dtype=str)
    assert set(recs[REGION]) == {"R01", "R02"}
    assert (recs["dwelling_id"].str[:3] == recs[REGION]).all() and (recs["client_id"].str[:3] == recs[REGION]).all()
    assert (plan["dwelling_id"].str[:3] == plan["client_id"].str[:3]).all()
    one = tmp_path / "one"
    done = run_cli(
        "recommend",
        "--data",
        str(data),
        "--meeting",
        "latest",
        "--out",
        str(one),
        "--model",
        str(model),
        "--region",
        "R02",
    )
    assert done.returncode == 0, done.stderr
    only = pd.read_csv(one / "recommendations.csv", dtype=str)
    assert set(only[REGION]) == {"R02"}
    assert set(only["dwelling_id"]) == set(recs.loc[recs[REGION] == "R02", "dwelling_id"])
    bad = run_cli(
        "recommend",
        "--data",
        str(data),
        "--meeting",
        "latest",
        "--out",
        str(tmp_path / "x"),
        "--model",
        str(model),
        "--region",
        "R9",
    )
    assert bad.returncode == 1 and "region 'R9' is not in" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()
