"""`make bench` (gate part): how often the fairness gate fails a fair system, and how often it catches a planted disparity.

Each run generates a small synthetic world (`--years` of weekly meetings, `--homes`
homes a week; otherwise params.yaml `generate:`), trains the model exactly as
`train` does (params `train:`, without baselines and bootstrap) and applies the
gate exactly as `train` and `audit` do (`fairness.audit.fairness_gate`, params
`fairness:` as fixed; only the attributes the gate judges are computed, see
`gate_only`). Library functions are called directly; no MLflow.

Scenarios (`SCENARIOS`):

- `neutral`: no built-in disparity. The protected attributes are drawn
  independently of every need, income and network (household-size multipliers 1,
  no district affinity by migration background, no age effect on physical
  health), and neither the true outcome nor the historical meeting looks at them.
  Every gate failure here is a false alarm.
- `planted_failure_X`: as neutral, plus a disparity the model cannot see: clients
  with a migration background outside Europe have X added to the true log-odds that
  their tenancy fails (`synthetic.generate.GroupEffect`). The model, blind to the
  attribute, over-estimates their chances; the gate should catch that. A failure of
  any check counts as a catch.

Results: bench/gate_runs.csv (one row per run and gate check), bench/gate.csv
(per scenario and check, and for the gate as a whole: runs, failures, rate and its
exact binomial (Clopper-Pearson) 95% interval), and a markdown table on stdout.
Bounded: `--seeds` runs per scenario, and it stops starting new runs after
`--max-minutes` (the summary then says how many runs it has).

    python -m pipelines.bench_gate --seeds 20
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"
RUNS_FILE, SUMMARY_FILE = "gate_runs.csv", "gate.csv"
GATE = "gate (any check)"
PLANTED_ATTRIBUTE, PLANTED_GROUP = "migration_background", "outside_europe"
SCENARIOS = {"neutral": 0.0, "planted_failure_0.5": 0.5, "planted_failure_1.0": 1.0}
SEED_BASE = 1000  # world seeds SEED_BASE + i, the same for every scenario (paired comparison)


def world_params(cfg, *, seed: int, years: float, homes: float, failure_logodds: float):
    """params `generate:` made small and neutral, with a planted failure effect of `failure_logodds` (0: none)."""
    from synthetic.generate import GroupEffect

    scale = homes / cfg.weekly_vacancies
    clients = dataclasses.replace(
        cfg.clients,
        multi_person_female=1.0,
        multi_person_outside_europe=1.0,
        network_district_affinity={},
        zrm=dataclasses.replace(cfg.clients.zrm, age_physical_per_decade=0.0),
    )
    effects = (
        (GroupEffect(PLANTED_ATTRIBUTE, PLANTED_GROUP, failure_logodds=failure_logodds),) if failure_logodds else ()
    )
    return dataclasses.replace(
        cfg,
        seed=seed,
        years=years,
        weekly_vacancies=homes,
        weekly_candidates=cfg.weekly_candidates * scale,
        initial_queue=int(round(cfg.initial_queue * scale)),
        truth_weeks=0,
        clients=clients,
        group_effects=effects,
    )


def run_once(cfg: dict, world, folder: Path) -> pd.DataFrame:
    """Generate `world` into `folder`, train as `train` does, and return the gate's check table."""
    from fairness.audit import run_fairness
    from fairness.params import FairnessParams
    from features.config import section
    from features.labels import LabelParams
    from features.load import load_dataset
    from features.pairs import FeatureParams
    from features.rules import PassendToewijzen
    from models.experiment import placement_rows
    from models.ranker import TrainParams, temporal_split, train_bundle
    from synthetic.generate import generate_dataset

    generate_dataset(folder, world)
    ds = load_dataset(folder)
    tp = section(cfg, "train", TrainParams)
    rows = placement_rows(
        ds,
        features=section(cfg, "features", FeatureParams),
        labels=section(cfg, "labels", LabelParams),
        rules=section(cfg, "passend_toewijzen", PassendToewijzen),
    )
    bundle = train_bundle(rows, temporal_split(rows, tp), tp)
    fairness = gate_only(section(cfg, "fairness", FairnessParams))
    # No gate check reads the plan-vs-meeting candidates (run_fairness checks that): leaving them out
    # gives the same verdict at a fraction of the time.
    gate = run_fairness(ds, bundle, params=fairness, config=cfg, plan_vs_meeting=False).gate
    table = gate.table.copy()
    table["gate_passed"] = gate.passed
    return table


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Exact 95% binomial interval of k successes in n trials."""
    from scipy.stats import binomtest

    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and check (and the gate as a whole): runs, failures, failure rate with its 95% interval."""
    rows = []
    for scenario, part in runs.groupby("scenario", sort=False):
        per_run = part.drop_duplicates("seed")
        n, k = len(per_run), int((~per_run["gate_passed"].astype(bool)).sum())
        checks = [(GATE, per_run.assign(passed=per_run["gate_passed"]))]
        for check, c in part.groupby(["check", "metric", "attribute"], sort=False):
            checks.append((f"{check[0]} {check[1]} by {check[2]}", c))
        for name, c in checks:
            n, k = len(c), int((~c["passed"].astype(bool)).sum())
            low, high = clopper_pearson(k, n)
            rows.append(
                {
                    "scenario": scenario,
                    "failure_logodds": float(part["failure_logodds"].iloc[0]),
                    "check": name,
                    "runs": n,
                    "failed": k,
                    "failure_rate": k / n if n else float("nan"),
                    "ci95_low": low,
                    "ci95_high": high,
                    "median_value": float(pd.to_numeric(c.get("value"), errors="coerce").median())
                    if "value" in c
                    else float("nan"),
                    "threshold": float(pd.to_numeric(c.get("threshold"), errors="coerce").iloc[0])
                    if "threshold" in c and name != GATE
                    else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def markdown(summary: pd.DataFrame, machine: str, minutes: float, years: float, homes: float) -> str:
    """The summary as a markdown table, with what a rate means per scenario."""
    lines = [
        f"Machine: {machine}; {minutes:.1f} minutes; worlds of {years:g} years, {homes:g} homes a week.",
        "",
        "| scenario | check | runs | failed | rate | 95% interval | median value | threshold |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in summary.itertuples():
        thr = "" if pd.isna(r.threshold) else f"{r.threshold:.2f}"
        med = "" if pd.isna(r.median_value) else f"{r.median_value:.3f}"
        lines.append(
            f"| {r.scenario} | {r.check} | {r.runs} | {r.failed} | {r.failure_rate:.2f} | "
            f"{r.ci95_low:.2f}-{r.ci95_high:.2f} | {med} | {thr} |"
        )
    return "\n".join(lines)


def gate_only(fairness):
    """The fairness params with only the gated attributes and the intersections they need.

    The gate judges only `fairness.gate.attributes`; the audit's other attributes
    (household type, care provider, district, gender × age band) are reported, never
    judged, so leaving them out changes no check and halves the group-metric time.
    """
    from fairness.params import intersection_name

    gated = set(fairness.gate.attributes)
    return dataclasses.replace(
        fairness,
        attributes=tuple(a for a in fairness.attributes if a in gated),
        intersections=tuple(c for c in fairness.intersections if intersection_name(c) in gated),
    )


def _task(job: tuple[str, int, float, float]) -> pd.DataFrame:
    """One run (in a worker process): scenario, seed, years, homes."""
    from features.config import load_params, section
    from synthetic.generate import GenerateParams

    name, seed, years, homes = job
    cfg = load_params()
    world = world_params(
        section(cfg, "generate", GenerateParams), seed=seed, years=years, homes=homes, failure_logodds=SCENARIOS[name]
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_gate_") as tmp:
        table = run_once(cfg, world, Path(tmp) / "data")
    table.insert(0, "scenario", name)
    table.insert(1, "failure_logodds", SCENARIOS[name])
    table.insert(2, "seed", seed)
    table["run_s"] = time.perf_counter() - t0
    return table


def main(argv: list[str] | None = None) -> None:
    """Run the scenarios over `--seeds` worlds each; write bench/gate_runs.csv and bench/gate.csv."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="worlds per scenario (default 20)")
    parser.add_argument("--years", type=float, default=4.0, help="years of weekly meetings per world (default 4)")
    parser.add_argument("--homes", type=float, default=8.0, help="homes a week (default 8)")
    parser.add_argument(
        "--scenarios", default="neutral,planted_failure_1.0", help=f"comma-separated, from {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes (default 1)")
    parser.add_argument("--max-minutes", type=float, default=120.0, help="start no new run after this (default 120)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for gate.csv and gate_runs.csv")
    args = parser.parse_args(argv)

    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from pipelines.bench import machine

    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"bench_gate: unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    # seeds outer, scenarios inner: a time-bounded run stays balanced between scenarios
    jobs = [(name, SEED_BASE + i, args.years, args.homes) for i in range(args.seeds) for name in names]
    total = len(jobs)
    started = time.perf_counter()
    tables: list[pd.DataFrame] = []
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        running: set = set()
        while jobs or running:
            while jobs and len(running) < max(1, args.workers):
                if (time.perf_counter() - started) / 60 > args.max_minutes:
                    print(
                        f"bench_gate: {args.max_minutes:g} minutes passed: no new runs ({len(jobs)} left)",
                        file=sys.stderr,
                    )
                    jobs = []
                    break
                running.add(pool.submit(_task, jobs.pop(0)))
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                table = future.result()
                tables.append(table)
                failed = int((~table["passed"].astype(bool)).sum())
                print(
                    f"bench_gate: {len(tables)}/{total} {table['scenario'].iloc[0]} seed {table['seed'].iloc[0]}: gate "
                    f"{'passed' if table['gate_passed'].iloc[0] else 'FAILED'} ({failed} of {len(table)} checks failed) "
                    f"in {table['run_s'].iloc[0]:.0f} s; {(time.perf_counter() - started) / 60:.1f} min so far",
                    file=sys.stderr,
                    flush=True,
                )
                # after every run: an interrupted bench keeps what it measured
                pd.concat(tables, ignore_index=True).to_csv(args.out / RUNS_FILE, index=False)
    if not tables:
        raise SystemExit("bench_gate: no run finished")
    runs = pd.concat(tables, ignore_index=True).sort_values(["scenario", "seed"], kind="stable")
    runs.to_csv(args.out / RUNS_FILE, index=False)
    summary = summarise(runs)
    summary.to_csv(args.out / SUMMARY_FILE, index=False, float_format="%.4f")
    minutes = (time.perf_counter() - started) / 60
    print(markdown(summary, machine(), minutes, args.years, args.homes))


if __name__ == "__main__":
    main()
