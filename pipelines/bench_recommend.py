"""Benchmark of `recommend`: one meeting of 50 vacancies × 400 candidates, explanations, plan and sheet included.

    python -m pipelines.bench_recommend [--vacancies 50] [--candidates 400] [--trees 300] [--repeats 3]

`bench_recommend()` returns the numbers as a dict (for pipelines/bench.py). The
dataset is a random, contract-valid meeting with a year of placement history
(`synthetic_meeting_tables`), and the model a stand-in LightGBM of the trainer's
default size (params.yaml train.lgbm) fitted on that history (`stand_in_bundle`),
so the benchmark does not depend on the generator or the trainer.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.contract import ZRM_DOMAINS
from features.pairs import FEATURE_NAMES
from models.bundle import SUPPORT_FEATURES, ModelBundle, standardise, support_scale_of

DISTRICTS = ("Centrum", "West", "Nieuw-West", "Zuid", "Oost", "Noord", "Zuidoost", "Weesp")
PROVIDERS = ("Kompas Zorg", "Stichting Dakwaarts", "Zorggroep Amstelbrug", "De Wendakker Begeleiding", "Noorderkade Zorg")
TYPES = ("house", "gallery_flat", "portico_flat", "apartment", "studio")

# A made-up truth for the stand-in model: weights on standardised features of the log-odds of a sustained tenancy.
TOY_TRUTH = {
    "zrm_mean": 0.6, "zrm_finances": 0.3, "rent_to_income": -0.7, "support_x_distance": -0.5,
    "stairs_x_physical": -0.4, "quiet_need_x_units": -0.4, "network_in_district": 0.35,
    "recent_failures_complex": -0.3, "liveability_score": 0.25, "prior_failed_tenancies": -0.3,
}


def synthetic_meeting_tables(*, n_vacancies: int = 50, n_candidates: int = 400, history_weeks: int = 52,
                             weekly_history: int = 20, seed: int = 0) -> tuple[dict[str, pd.DataFrame], str, str]:
    """Random contract-valid tables: one meeting with the given vacancies and candidates after a year of weekly history.

    Returns (tables, meeting date, as_of) with dates as YYYY-MM-DD text.
    """
    rng = np.random.default_rng(seed)
    meeting = pd.Timestamp("2025-06-02")
    n_hist = history_weeks * weekly_history
    n_homes, n_clients = n_vacancies + n_hist, n_candidates + n_hist

    n_nbh = 40
    nbh = pd.DataFrame({
        "neighbourhood_id": [f"BU0363{i:04d}" for i in range(n_nbh)],
        "name": [f"Buurt {i}" for i in range(n_nbh)],
        "district": rng.choice(DISTRICTS, n_nbh),
        "lat": rng.uniform(52.30, 52.42, n_nbh), "lon": rng.uniform(4.80, 5.00, n_nbh),
        "liveability_score": rng.uniform(3, 8.5, n_nbh).round(1),
        "social_housing_share": rng.uniform(0.2, 0.8, n_nbh).round(2),
        "vulnerable_household_share": rng.uniform(0.03, 0.25, n_nbh).round(3),
        "nuisance_reports_per_1000": rng.uniform(5, 90, n_nbh).round(1),
    })
    providers = pd.DataFrame({"care_provider": PROVIDERS, "lat": rng.uniform(52.33, 52.40, len(PROVIDERS)),
                              "lon": rng.uniform(4.85, 4.95, len(PROVIDERS))})
    n_complex = max(n_homes // 8, 1)
    complex_nbh = rng.integers(0, n_nbh, n_complex)
    home_complex = rng.integers(0, n_complex, n_homes)
    types = rng.choice(TYPES, n_homes)
    rooms = np.where(types == "studio", 1, rng.integers(1, 5, n_homes))
    floor = np.where(types == "house", 0, rng.integers(0, 9, n_homes))
    homes = pd.DataFrame({
        "dwelling_id": [f"W{i:05d}" for i in range(n_homes)],
        "neighbourhood_id": nbh["neighbourhood_id"].to_numpy()[complex_nbh[home_complex]],
        "complex_id": [f"C{c:04d}" for c in home_complex],
        "landlord": rng.choice(["Keizerwaard Wonen", "Lindengracht Woningstichting", "Stadswaard Huisvesting"], n_homes),
        "dwelling_type": types, "floor": floor, "has_lift": (floor >= 4) | (rng.random(n_homes) < 0.3),
        "rooms": rooms, "floor_area_m2": (20 + 15 * rooms + rng.normal(0, 5, n_homes)).round(1),
        "rent_eur": rng.uniform(380, 820, n_homes).round(2), "shared_entrance": types != "house",
        "units_in_complex": rng.integers(4, 200, n_complex)[home_complex],
        "construction_year": rng.integers(1900, 2022, n_complex)[home_complex],
        "wheelchair_accessible": rng.random(n_homes) < 0.06,
    })
    size = np.where(rng.random(n_clients) < 0.85, 1, rng.integers(2, 5, n_clients))
    zrm = {d: rng.integers(1, 6, n_clients) for d in ZRM_DOMAINS}
    clients = pd.DataFrame({
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
    })
    protected = pd.DataFrame({"client_id": clients["client_id"], "gender": rng.choice(["female", "male", "x"], n_clients),
                              "birth_year": rng.integers(1950, 2006, n_clients),
                              "migration_background": rng.choice(["netherlands", "europe", "outside_europe"], n_clients)})

    weeks = meeting - pd.to_timedelta(7 * np.arange(history_weeks, 0, -1), unit="D")
    hist_meeting = np.repeat(weeks, weekly_history)
    hist_homes = homes["dwelling_id"].to_numpy()[n_vacancies:]
    hist_clients = clients["client_id"].to_numpy()[n_candidates:]
    ymd = lambda d: pd.DatetimeIndex(d).strftime("%Y-%m-%d")  # noqa: E731
    vacancies = pd.DataFrame({
        "meeting_date": np.concatenate([ymd(hist_meeting), [f"{meeting:%Y-%m-%d}"] * n_vacancies]),
        "dwelling_id": np.concatenate([hist_homes, homes["dwelling_id"].to_numpy()[:n_vacancies]]),
    })
    candidates = pd.DataFrame({
        "meeting_date": np.concatenate([ymd(hist_meeting), [f"{meeting:%Y-%m-%d}"] * n_candidates]),
        "client_id": np.concatenate([hist_clients, clients["client_id"].to_numpy()[:n_candidates]]),
    })
    start = pd.DatetimeIndex(hist_meeting) + pd.to_timedelta(rng.integers(7, 35, n_hist), unit="D")
    placements = pd.DataFrame({"placement_id": [f"P{i:05d}" for i in range(n_hist)], "client_id": hist_clients,
                               "dwelling_id": hist_homes, "meeting_date": ymd(hist_meeting), "tenancy_start": ymd(start)})
    as_of = meeting - pd.Timedelta(days=1)
    end = start + pd.to_timedelta(rng.integers(30, 400, n_hist), unit="D")
    ends_at = (rng.random(n_hist) < 0.2) & (end <= as_of)
    ends = pd.DataFrame({"placement_id": placements["placement_id"][ends_at], "end_date": ymd(end[ends_at]),
                         "reason": rng.choice(["eviction", "returned_to_care", "voluntary_move"], int(ends_at.sum()))})
    report_at = (rng.random(n_hist) < 0.15) & (start + pd.Timedelta(days=20) <= as_of) & (~ends_at | (end > start + pd.Timedelta(days=20)))
    reports = pd.DataFrame({"report_id": [f"R{i:05d}" for i in range(int(report_at.sum()))],
                            "placement_id": placements["placement_id"][report_at],
                            "report_date": ymd(start[report_at] + pd.Timedelta(days=20)),
                            "severity": rng.choice(["minor", "serious"], int(report_at.sum()))})
    tables = {"neighbourhoods": nbh, "care_providers": providers, "dwellings": homes, "clients": clients,
              "client_protected": protected, "vacancies": vacancies, "candidates": candidates,
              "placements": placements, "tenancy_ends": ends, "nuisance_reports": reports}
    return tables, f"{meeting:%Y-%m-%d}", f"{as_of:%Y-%m-%d}"


def write_tables(folder: Path, tables: dict[str, pd.DataFrame], *, as_of: str, name: str = "bench") -> Path:
    """Write tables as CSV plus dataset.yaml into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.yaml").write_text(f"name: {name}\nas_of: {as_of}\n", encoding="utf-8")
    for table, frame in tables.items():
        frame.to_csv(folder / f"{table}.csv", index=False)
    return folder


def toy_labels(X: pd.DataFrame, *, seed: int = 0) -> np.ndarray:
    """Sustained (1) or failed (0) per row, drawn from TOY_TRUTH on standardised features."""
    rng = np.random.default_rng(seed)
    logit = np.full(len(X), 1.2)
    for f, w in TOY_TRUTH.items():
        v = X[f].to_numpy(dtype=float)
        logit += w * (v - v.mean()) / (v.std() or 1.0)
    return (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(int)


def jittered(X: pd.DataFrame, n_rows: int, *, seed: int = 0) -> pd.DataFrame:
    """`n_rows` rows resampled from X with small noise on every feature (training data for a tiny stand-in model)."""
    rng = np.random.default_rng(seed)
    base = X[list(FEATURE_NAMES)].to_numpy(dtype=float)
    rows = base[rng.integers(0, len(base), n_rows)]
    spread = np.where(base.std(axis=0) > 0, base.std(axis=0), np.maximum(np.abs(base.mean(axis=0)) * 0.1, 0.5))
    return pd.DataFrame(rows + rng.normal(0, 0.5, rows.shape) * spread, columns=list(FEATURE_NAMES))


def stand_in_bundle(X: pd.DataFrame, y: np.ndarray | None = None, *, n_trees: int = 300, num_leaves: int = 15,
                    min_data_in_leaf: int = 20, seed: int = 0, support_radius: float = 2.0) -> ModelBundle:
    """A deterministic binary LightGBM wrapped as a ModelBundle, until the real trainer's model is available.

    `X` holds FEATURE_NAMES columns of training pairs; `y` their outcomes (default: `toy_labels`).
    """
    y = toy_labels(X, seed=seed) if y is None else np.asarray(y)
    params = {"objective": "binary", "num_leaves": num_leaves, "learning_rate": 0.05, "min_data_in_leaf": min_data_in_leaf,
              "min_data_in_bin": 1, "seed": seed, "deterministic": True, "force_row_wise": True, "num_threads": 1,
              "verbosity": -1}
    data = lgb.Dataset(X[list(FEATURE_NAMES)].to_numpy(dtype=float), label=y, feature_name=list(FEATURE_NAMES))
    booster = lgb.train(params, data, num_boost_round=n_trees)
    scale = support_scale_of(X)
    reference = pd.DataFrame(standardise(X, scale), columns=list(SUPPORT_FEATURES))
    return ModelBundle(booster, tuple(FEATURE_NAMES), "binary", {"a": 1.0, "b": 0.0}, 0.5,
                       support_reference=reference, support_scale=scale, support_radius=support_radius,
                       metadata={"name": f"stand-in binary LightGBM ({n_trees} trees, not the trained model)"})


def history_bundle(ds, cfg, *, n_trees: int = 300, num_leaves: int = 15, seed: int = 0) -> ModelBundle:
    """A stand-in bundle fitted on the dataset's placements (features at their meeting, toy labels)."""
    from features.pairs import build_pair_features

    pairs = ds.placements[["meeting_date", "dwelling_id", "client_id"]].reset_index(drop=True)
    X = build_pair_features(ds, pairs, params=cfg.features, rules=cfg.amounts)
    return stand_in_bundle(X, n_trees=n_trees, num_leaves=num_leaves, seed=seed)


def trainer_model_size(params: dict | None = None) -> tuple[int, int]:
    """(trees, leaves) of the trainer's default model (params.yaml train.lgbm), else (300, 15)."""
    from features.config import load_params

    lgbm = ((params if params is not None else load_params()).get("train") or {}).get("lgbm") or {}
    return int(lgbm.get("num_boost_round", 300)), int(lgbm.get("num_leaves", 15))


def bench_recommend(workdir: str | Path | None = None, *, n_vacancies: int = 50, n_candidates: int = 400,
                    n_trees: int | None = None, num_leaves: int | None = None, repeats: int = 3, cli: bool = True,
                    seed: int = 0, lang: str = "en") -> dict:
    """Time `recommend` on a synthetic meeting; return seconds per stage, totals and peak memory.

    Args:
        workdir: folder for the dataset, model and outputs (default: a new temporary folder).
        n_trees, num_leaves: size of the stand-in model (default: the trainer's, params.yaml train.lgbm).
    """
    from features.load import load_dataset
    from pipelines.recommend import load_config, meeting_outputs, parse_meeting_date, write_outputs

    cfg = load_config()
    default_trees, default_leaves = trainer_model_size()
    n_trees = default_trees if n_trees is None else n_trees
    num_leaves = default_leaves if num_leaves is None else num_leaves
    if workdir is None:
        work = Path(tempfile.mkdtemp(prefix="matchwijs-bench-"))
    else:
        work = Path(workdir)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
    tables, meeting, as_of = synthetic_meeting_tables(n_vacancies=n_vacancies, n_candidates=n_candidates, seed=seed)
    data = write_tables(work / "data", tables, as_of=as_of)
    t0 = time.perf_counter()
    ds = load_dataset(data)
    load_s = time.perf_counter() - t0
    bundle = history_bundle(ds, cfg, n_trees=n_trees, num_leaves=num_leaves, seed=seed)
    bundle.save(work / "model")
    bundle = ModelBundle.load(work / "model")
    date = parse_meeting_date(meeting)

    runs, stages = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        outputs = meeting_outputs(ds, date, bundle, cfg, lang=lang)
        t1 = time.perf_counter()
        write_outputs(outputs, work / f"out{i}")
        t2 = time.perf_counter()
        runs.append(t2 - t0)
        stages.append({**outputs.timings, "write": t2 - t1})
    tracemalloc.start()
    outputs = meeting_outputs(ds, date, bundle, cfg, lang=lang)
    write_outputs(outputs, work / "out_mem")
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "vacancies": n_vacancies, "candidates": n_candidates, "pairs": n_vacancies * n_candidates,
        "eligible_pairs": len(outputs.recommendations), "explanation_rows": len(outputs.explanations),
        "trees": n_trees, "num_leaves": num_leaves,
        "load_dataset_s": round(load_s, 3),
        "recommend_s_median": round(statistics.median(runs), 3), "recommend_s_runs": [round(r, 3) for r in runs],
        "stages_s": {k: round(statistics.median(s[k] for s in stages), 3) for k in stages[0]},
        "python_peak_mb_tracemalloc": round(traced_peak / 2**20, 1),
        "bench_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "sheet_kb": round(len(outputs.html.encode()) / 1024, 1),
        "explanations_csv_mb": round((work / "out0" / "explanations.csv").stat().st_size / 2**20, 1),
    }
    if cli:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-c", _CLI_WITH_PEAK, "recommend", "--data", str(data), "--meeting", meeting,
               "--out", str(work / "out_cli"), "--model", str(work / "model"), "--lang", lang]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        result["cli_wall_s"] = round(time.perf_counter() - t0, 3)
        result["cli_exit"] = proc.returncode
        peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("VmHWM")]
        result["cli_peak_rss_mb"] = round(int(peak[0]) / 1024, 1) if peak else None
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _IMPORTS], check=True)
        result["cli_imports_s"] = round(time.perf_counter() - t0, 3)
    result["workdir"] = str(work)
    return result


# The command line as a user runs it, reporting its own peak resident memory (VmHWM is per
# process image, so unlike ru_maxrss of a child it does not include the forking parent's memory).
_CLI_WITH_PEAK = """
import sys
from pipelines.cli import main
try:
    main()
finally:
    with open('/proc/self/status') as status:
        print(next(line for line in status if line.startswith('VmHWM')).strip(), file=sys.stderr)
"""
# What every `recommend` process pays before any work: the libraries it imports.
_IMPORTS = "import pandas, lightgbm, sklearn.neighbors, scipy.optimize, pandera.pandas, jinja2, pyarrow.csv"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vacancies", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=400)
    parser.add_argument("--trees", type=int, default=None, help="default: the trainer's (params.yaml train.lgbm)")
    parser.add_argument("--leaves", type=int, default=None, help="default: the trainer's (params.yaml train.lgbm)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip timing the command line end to end")
    args = parser.parse_args(argv)
    result = bench_recommend(args.workdir, n_vacancies=args.vacancies, n_candidates=args.candidates, n_trees=args.trees,
                             num_leaves=args.leaves, repeats=args.repeats, cli=not args.no_cli)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
