"""A meeting is (region, date) everywhere in models/ and fairness/: query groups, ndcg, bootstraps, the audit."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from features.contract import REGION
from features.load import load_dataset
from features.meetings import date_batches, has_regions, meeting_batches, meeting_codes, meeting_label, with_region
from models.evaluate import mean_ndcg, paired_bootstrap
from models.interval_fit import _resample
from models.ranker import query_groups, sort_for_ranking
from tests.conftest import write_dataset
from tests.test_regions import _regional_tables

D1, D2 = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")
GAIN = (0.0, 1.0)


def _rows(regions: list[str] | None = None) -> pd.DataFrame:
    """Two regional meetings on D1 (A: h1, h2; B: h3, h4) and one on D2 (A: h5)."""
    frame = pd.DataFrame(
        {
            "meeting_date": [D1, D1, D1, D1, D2],
            "dwelling_id": ["h1", "h2", "h3", "h4", "h5"],
            "client_id": ["c1", "c2", "c3", "c4", "c5"],
            "score": [2.0, 1.0, 1.0, 2.0, 1.0],
            "other": [1.0, 2.0, 2.0, 1.0, 1.0],
            "grade": [0, 1, 0, 1, 1],
            "sustained": [0, 1, 0, 1, 1],
        }
    )
    return frame if regions is None else frame.assign(**{REGION: regions})


def test_meeting_codes_number_regional_meetings_in_date_then_region_order():
    rows = _rows(["B", "B", "A", "A", "A"])
    assert meeting_codes(rows).tolist() == [1, 1, 0, 0, 2]
    assert meeting_codes(_rows()).tolist() == [0, 0, 0, 0, 1]  # no region column: one region, by date
    assert meeting_label(rows).tolist() == ["2024-01-01|B"] * 2 + ["2024-01-01|A"] * 2 + ["2024-01-08|A"]
    assert meeting_label(_rows()).tolist() == ["2024-01-01"] * 4 + ["2024-01-08"]
    assert has_regions(rows) and not has_regions(_rows()) and not has_regions(_rows([""] * 5))


def test_query_groups_split_a_date_at_its_region_boundaries():
    rows = _rows(["A", "A", "B", "B", "A"])
    assert query_groups(rows).tolist() == [2, 2, 1]
    assert query_groups(rows["meeting_date"]).tolist() == [4, 1]  # dates alone: one region
    assert query_groups(_rows()).tolist() == [4, 1]
    with pytest.raises(ValueError, match="sorted by meeting date, then region"):
        query_groups(_rows(["A", "B", "A", "B", "A"]))  # region A of D1 would be two queries


def test_sort_for_ranking_makes_regional_meetings_contiguous():
    rows = _rows(["A", "B", "A", "B", "A"])  # h1, h3 in A; h2, h4 in B
    ordered = sort_for_ranking(rows)
    assert ordered["dwelling_id"].tolist() == ["h1", "h3", "h2", "h4", "h5"]
    assert query_groups(ordered).tolist() == [2, 2, 1]
    # without a region column the order is the old one (by date, home, client)
    assert sort_for_ranking(_rows().iloc[::-1])["dwelling_id"].tolist() == ["h1", "h2", "h3", "h4", "h5"]


def test_ndcg_is_per_regional_meeting():
    # D1|A: scores (2, 1), grades (0, 1): ndcg = 1/log2(3); D1|B: scores (1, 2), grades (0, 1): 1; D2|A: 1
    regional, left_out = mean_ndcg(_rows(["A", "A", "B", "B", "A"]), "score", 5, GAIN)
    assert left_out == 0
    assert regional == pytest.approx((1 / np.log2(3) + 1 + 1) / 3)
    # pooled by date, D1 ranks (h1, h4, h2, h3): gains (0, 1, 1, 0), dcg 1/log2(3) + 1/2, ideal 1 + 1/log2(3)
    pooled, _ = mean_ndcg(_rows(), "score", 5, GAIN)
    assert pooled == pytest.approx(((1 / np.log2(3) + 0.5) / (1 + 1 / np.log2(3)) + 1) / 2)


def test_bootstrap_resamples_regional_meetings():
    rows = _rows(["A", "A", "B", "B", "A"])
    table = paired_bootstrap(rows, "score", {"other": "other"}, GAIN, resamples=50, seed=1).set_index("metric")
    assert table.loc["ndcg_at_5", "model"] == pytest.approx((1 / np.log2(3) + 1 + 1) / 3)
    # other: D1|A ranks h2 first (1), D1|B ranks h3 first (1/log2(3)), D2|A 1
    assert table.loc["ndcg_at_5", "baseline_value"] == pytest.approx((1 + 1 / np.log2(3) + 1) / 3)
    # three units: the differences per unit are (1/log2(3) - 1, 1 - 1/log2(3), 0): a draw's mean is one of 10 values
    diffs = np.array([1 / np.log2(3) - 1, 1 - 1 / np.log2(3), 0.0])
    low, high = table.loc["ndcg_at_5", ["ci_low", "ci_high"]]
    assert diffs.min() - 1e-12 <= low <= high <= diffs.max() + 1e-12
    assert low < 0 < high  # by date there would be two units, D1 pooled: never negative on D2


def test_interval_resample_draws_regional_meetings_as_separate_queries():
    rows = sort_for_ranking(_rows(["A", "A", "B", "B", "A"]).assign(outcome_known_on=D2))
    drawn = _resample(rows, np.random.default_rng(3))
    sizes = query_groups(drawn)
    assert sizes.sum() == len(drawn) and len(sizes) == 3  # three regional meetings drawn, each its own query
    for _, query in drawn.groupby(meeting_codes(drawn)):
        assert query[REGION].nunique() == 1
        assert (
            query["dwelling_id"].isin({"h1", "h2"}).all()
            or query["dwelling_id"].isin({"h3", "h4"}).all()
            or (query["dwelling_id"].tolist() == ["h5"])
        )


def test_with_region_reads_the_home_s_region_at_its_meeting(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "d", _regional_tables()))
    pl = ds.placements[["meeting_date", "dwelling_id", "client_id"]]
    got = with_region(ds, pl)
    assert dict(zip(got["dwelling_id"], got[REGION], strict=True)) == {"D001": "Noord", "D002": "Zuid", "D003": "Noord"}
    assert with_region(ds, got) is got  # a frame that has its region keeps it


def test_the_audit_plans_and_reports_each_regional_meeting(tmp_path, tiny_dir):
    from fairness.context import held_out_meetings, held_out_period, pipeline_params
    from fairness.counterfactual import PlanParams, candidate_decisions
    from tests.helpers import PARAMS
    from tests.test_fairness import tiny_bundle

    bundle = tiny_bundle()

    def decisions(ds):
        return candidate_decisions(
            ds,
            bundle,
            held_out_meetings(ds, held_out_period(bundle)),
            pipeline=pipeline_params(bundle, PARAMS),
            plan_params=PlanParams.from_config(PARAMS),
            tol=0.02,
        )

    dec, planned = decisions(load_dataset(write_dataset(tmp_path / "d", _regional_tables())))
    assert REGION in dec.columns and REGION in planned.columns
    keys = list(zip(dec["meeting_date"].dt.strftime("%Y-%m-%d"), dec[REGION], dec["client_id"], strict=True))
    assert keys == [
        ("2023-01-02", "Noord", "0001"),
        ("2023-01-02", "Noord", "0003"),
        ("2023-01-02", "Zuid", "0002"),
        ("2023-01-09", "Noord", "0003"),
    ]
    # each plan stays in its regional meeting: D001/D003 (Noord) only to Noord clients, D002 only to 0002
    region_of_home = {"D001": "Noord", "D002": "Zuid", "D003": "Noord"}
    assert (planned["dwelling_id"].map(region_of_home) == planned[REGION]).all()
    assert set(planned.loc[planned[REGION] == "Zuid", "client_id"]) <= {"0002"}
    # one region: the same table as before, without a region column
    single, _ = decisions(load_dataset(tiny_dir))
    assert REGION not in single.columns and len(single) == 4


def test_meeting_batches_keep_meetings_whole_and_in_order():
    codes = np.array([0, 0, 0, 1, 2, 2, 3])
    got = [b.tolist() for b in meeting_batches(codes, 4)]
    assert got == [[0, 1, 2, 3], [4, 5, 6]]
    assert [b.tolist() for b in meeting_batches(codes, 2)] == [[0, 1, 2], [3], [4, 5], [6]]  # 3 rows > 2: alone
    assert [b.tolist() for b in meeting_batches(codes, 100)] == [list(range(7))]
    assert meeting_batches(np.zeros(0, dtype=int), 5) == []


def test_date_batches_count_pairs_within_regional_meetings(tmp_path):
    ds = load_dataset(write_dataset(tmp_path / "d", _regional_tables()))
    # 2023-01-02: Noord 1 home x 2 clients + Zuid 1 x 1 = 3 pairs (4 if the regions were pooled); 2023-01-09: 1 x 1
    days = [pd.Timestamp("2023-01-02"), pd.Timestamp("2023-01-09")]
    assert date_batches(ds, days, max_dates=13, max_pairs=4) == [days]
    assert date_batches(ds, days, max_dates=13, max_pairs=3) == [days[:1], days[1:]]
    assert date_batches(ds, days, max_dates=1, max_pairs=100) == [days[:1], days[1:]]


def _candidate_metric_frame(*, seed: int, n: int, clients: int, graded: bool) -> tuple[list, pd.DataFrame]:
    """Random rows with every column the candidate-population metrics read (gender f / m / x); y_true 0/1 or 0..1."""
    from fairness.catalogue import CANDIDATES, METRICS

    rng = np.random.default_rng(seed)
    listed = [m for m in METRICS if m.population == CANDIDATES]
    frame = pd.DataFrame(
        {"client_id": rng.integers(0, clients, n).astype(str), "gender": rng.choice(["f", "m", "x"], n)}
    )
    for m in listed:
        frame[m.y_true] = rng.random(n).round(2) if graded else rng.integers(0, 2, n).astype(float)
        frame[m.y_pred] = frame[m.y_pred] if m.y_pred in frame else rng.integers(0, 2, n).astype(float)
        if m.subset:
            frame[m.subset] = rng.integers(0, 2, n)
    return listed, frame


def test_group_metrics_built_once_per_attribute_match_one_metric_at_a_time():
    from fairness.metrics import metrics_by_group

    listed, frame = _candidate_metric_frame(seed=5, n=300, clients=80, graded=False)
    frame.loc[frame["gender"] == "x", sorted({m.subset for m in listed if m.subset})] = 0  # no denominator for x
    together = metrics_by_group(frame, "gender", listed, min_group_size=5)
    for metric, table in zip(listed, together, strict=True):
        alone = metrics_by_group(frame, "gender", [metric], min_group_size=5)[0]
        pd.testing.assert_frame_equal(table, alone)
        assert table["between_difference"].notna().all()  # at least f and m are judgeable


def test_group_metrics_are_each_groups_own_rows_measured_directly():
    """MetricFrame sees one row per group; each value is still the metric of that group's rows, in row order."""
    from fairlearn.metrics import MetricFrame

    from fairness.metrics import metrics_by_group

    listed, frame = _candidate_metric_frame(seed=8, n=500, clients=90, graded=True)
    for metric, table in zip(listed, metrics_by_group(frame, "gender", listed, min_group_size=5), strict=True):
        rows = frame if metric.subset is None else frame[frame[metric.subset] == 1]
        direct = MetricFrame(
            metrics=metric.func,
            y_true=rows[metric.y_true].to_numpy(),
            y_pred=rows[metric.y_pred].to_numpy(),
            sensitive_features=rows["gender"].to_numpy(),
        )
        assert table.set_index("group")["value"].to_dict() == direct.by_group.to_dict()  # exactly
        judged = table.loc[table["judgeable"], "value"]
        assert table["between_difference"].iloc[0] == judged.max() - judged.min()


def test_bench_scale_measures_a_step_and_writes_its_table(tmp_path):
    from pipelines.bench_scale import COLUMNS, markdown, measure

    code, wall, cpu, peak, total = measure(
        [sys.executable, "-c", "x = bytearray(50 * 2**20)"], cwd=tmp_path, env={}, limit_gb=4, log=tmp_path / "a.log"
    )
    assert code == 0 and wall >= 0 and cpu >= 0 and peak > 0.04  # the 50 MB it held
    assert total >= peak  # all its processes hold at least what its largest holds
    failed = measure(
        [sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path, env={}, limit_gb=4, log=tmp_path / "b.log"
    )
    assert failed[0] == 3
    table = pd.DataFrame(
        [
            {
                "case": "regions",
                "scale": 20,
                "step": "train",
                "status": "ok",
                "wall_s": 290.4,
                "cpu_s": 500.0,
                "peak_rss_gb": 3.21,
                "peak_total_gb": 3.65,
                "goal_s": 300.0,
                "goal_gb": 4.0,
            }
        ]
    ).reindex(columns=COLUMNS)
    assert (
        markdown(table).splitlines()[-1] == "| regions | 20× | train | ok | 290 | 500 | 3.65 | 3.21 | ≤ 300 s ≤ 4 GB |"
    )


def test_bench_scale_recommends_with_the_model_train_wrote(tmp_path):
    """`--bundle-out` holds the deployed model itself: recommend must read that folder."""
    from pipelines.bench_scale import steps

    named = dict(steps("meeting", 5, tmp_path))
    train, recommend = named["train"], named["recommend"]
    assert recommend[recommend.index("--model") + 1] == train[train.index("--bundle-out") + 1]
    assert "--weekly-vacancies" in named["generate"] and "recommend" not in dict(steps("regions", 2, tmp_path))
