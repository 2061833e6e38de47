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
- `pushed_back_Xw`: the neutral world, but the policy in force is replayed (in the gate's
  queue replay only) with the same group ranked as if they had waited X weeks less: a
  disparity in WHO is housed and WHEN (bench-only wrapper `pushed_back`; no params policy
  or CLI option can do this). The replay checks should catch it.
- `biased_history_Xw`: the historical meeting ranked the same group as if they had waited
  X weeks less (`GroupEffect.meeting_weeks` = -X): the HISTORY is unfair, the policy is
  not. The replay checks should pass (the policy may narrow a historical gap).

Scenarios that need the same world (neutral and the pushed-back ones) share one generated
world and model per seed. Each run's group table and replay table are kept in
bench/gate_raw/ (parquet), so `--rejudge` judges the same runs again with today's
params.yaml `fairness.gate` (for a check added after the worlds were run) without new
worlds; each run asserts that what it stored judges to the same table.

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
FAMILIES = {"model checks (any)": "max_difference", "replay checks (any)": "max_replay"}
PLANTED_ATTRIBUTE, PLANTED_GROUP = "migration_background", "outside_europe"
SEED_BASE = 1000  # world seeds SEED_BASE + i, the same for every scenario (paired comparison)
RAW = "gate_raw"  # per run: the group table and the replay table the gate judged (to judge again)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """What a world plants, all on clients with a migration background outside Europe (none: neutral).

    `failure_logodds`: added to their true log-odds of failure (unseen by the model).
    `meeting_weeks`: the HISTORICAL meeting ranks them as if they had waited this many weeks longer
    (negative: shorter; the history is unfair, the policy replayed is not).
    `pushback_weeks`: the policy replayed in the gate ranks them as if they had waited this many weeks
    less (bench only: a wrapper around the replay's `plan_policy`, never a params policy or CLI option).
    """

    failure_logodds: float = 0.0
    meeting_weeks: float = 0.0
    pushback_weeks: float = 0.0


SCENARIOS = {
    "neutral": Scenario(),
    "planted_failure_0.5": Scenario(failure_logodds=0.5),
    "planted_failure_1.0": Scenario(failure_logodds=1.0),
    "pushed_back_4w": Scenario(pushback_weeks=4.0),
    "pushed_back_8w": Scenario(pushback_weeks=8.0),
    "biased_history_8w": Scenario(meeting_weeks=-8.0),
}


def world_params(cfg, *, seed: int, years: float, homes: float, failure_logodds: float, meeting_weeks: float = 0.0):
    """params `generate:` made small and neutral, with a planted failure effect of `failure_logodds` (0: none)
    and a historical meeting that ranks the planted group `meeting_weeks` longer-waiting (0: none)."""
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
        (GroupEffect(PLANTED_ATTRIBUTE, PLANTED_GROUP, failure_logodds=failure_logodds, meeting_weeks=meeting_weeks),)
        if failure_logodds or meeting_weeks
        else ()
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


def pushed_back(plan_policy, clients, weeks: float):
    """`plan_policy` with `clients` ranked as if they had waited `weeks` less (bench-only wrapper)."""
    members = set(clients)

    def plan(pairs, waiting, params, *, benefit):
        member = pairs["client_id"].isin(members).to_numpy()
        return plan_policy(pairs, waiting - weeks * member, params, benefit=benefit)

    return plan


def gated_metrics(fairness) -> tuple:
    """The catalogue entries some gate check reads: `source.metric` keys of the gate (and the plan and meeting
    metrics of a per-meeting `max_ratio_drop`); the others are reported by the audit, never judged."""
    from fairness.catalogue import HUMAN, METRICS, PLAN

    gate = fairness.gate
    keys = {*gate.max_difference, *gate.min_ratio}
    return tuple(
        m
        for m in METRICS
        if f"{m.source}.{m.name}" in keys or (m.source in (PLAN, HUMAN) and m.name in gate.max_ratio_drop)
    )


def world_model(cfg: dict, world, folder: Path):
    """Generate `world` into `folder` and train as `train` does: (dataset, model)."""
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
    return ds, train_bundle(rows, temporal_split(rows, tp), tp)


def judge_world(ds, bundle, cfg: dict, *, pushback_weeks: tuple[float, ...] = (0.0,)) -> list:
    """Apply the gate as `train` and `audit` do, once per entry of `pushback_weeks`: (gate, metrics, replay).

    0 is the policy as it is. X > 0 is the same policy replayed with the planted group pushed back X weeks
    (`pushed_back`), in the same replay run (one queue replay scores the union of the policies' queues),
    and judged with the same group table. Left out, because no gate check reads them: the plan-vs-meeting
    candidates (`run_fairness(plan_vs_meeting=False)`), the ungated attributes (`gate_only`) and the
    ungated metrics (`gated_metrics`). tests/test_bench_gate.py checks the policy's gate table equals
    `fairness_gate`'s.
    """
    from unittest import mock

    import fairness.audit
    import fairness.metrics
    import planning.replay
    from fairness.frontier import HISTORY
    from fairness.gate import judge
    from fairness.params import FairnessParams
    from features.config import section

    fairness_params = gate_only(section(cfg, "fairness", FairnessParams))
    protected = ds.client_protected
    members = protected.loc[protected[PLANTED_ATTRIBUTE].astype(str) == PLANTED_GROUP, "client_id"]
    extra = [w for w in pushback_weeks if w]
    real_frontier, real_plan = fairness.audit.policy_frontier, planning.replay.plan_policy
    joint: dict = {}

    def frontier(ds, meetings, policies, score, **kw):
        ((name, params),) = policies.items()
        copies = {w: dataclasses.replace(params) for w in extra}  # distinct objects: the planner tells them apart
        planners = {id(c): pushed_back(real_plan, members, w) for w, c in copies.items()}

        def plan(pairs, waiting, p, *, benefit):
            return planners.get(id(p), real_plan)(pairs, waiting, p, benefit=benefit)

        names = {w: f"{name} pushed back {w:g} weeks" for w in extra}
        with mock.patch.object(planning.replay, "plan_policy", plan):
            table, groups, runs = real_frontier(
                ds, meetings, {name: params, **{names[w]: copies[w] for w in extra}}, score, **kw
            )
        for w in extra:
            mine = groups[groups["policy"].isin([names[w], HISTORY])].reset_index(drop=True)
            joint[w] = mine.assign(policy=mine["policy"].replace(names[w], name))
        own = groups[groups["policy"].isin([name, HISTORY])].reset_index(drop=True)
        return table[table["policy"].isin([name, HISTORY])].reset_index(drop=True), own, {name: runs[name]}

    with (
        mock.patch.object(fairness.metrics, "METRICS", gated_metrics(fairness_params)),
        mock.patch.object(fairness.audit, "policy_frontier", frontier),
    ):
        fa = fairness.audit.run_fairness(ds, bundle, params=fairness_params, config=cfg, plan_vs_meeting=False)
    results = []
    for w in pushback_weeks:
        if not w:
            results.append((fa.gate, fa.metrics, fa.replay))
        else:
            results.append((judge(fa.metrics, params=fairness_params, replay=joint[w]), fa.metrics, joint[w]))
    return results


def run_once(cfg: dict, world, folder: Path, *, pushback_weeks: tuple[float, ...] = (0.0,)) -> list:
    """Generate `world`, train, and judge it (`judge_world`): one (gate, metrics, replay) per pushback."""
    ds, bundle = world_model(cfg, world, folder)
    return judge_world(ds, bundle, cfg, pushback_weeks=pushback_weeks)


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
        for family, prefix in FAMILIES.items():  # the model's checks, the replay's checks: any failure in a run
            rows_of = part[part["check"].astype(str).str.startswith(prefix)]
            if len(rows_of):
                ok = rows_of.groupby("seed", sort=False)["passed"].agg(lambda v: bool(v.astype(bool).all()))
                checks.append((family, pd.DataFrame({"passed": ok.to_numpy()})))
        for check, c in part.groupby(["check", "metric", "attribute"], sort=False):
            checks.append((f"{check[0]} {check[1]} by {check[2]}", c))
        for name, c in checks:
            n, k = len(c), int((~c["passed"].astype(bool)).sum())
            low, high = clopper_pearson(k, n)
            rows.append(
                {
                    "scenario": scenario,
                    "failure_logodds": float(part["failure_logodds"].iloc[0]),
                    "meeting_weeks": float(part["meeting_weeks"].iloc[0]) if "meeting_weeks" in part else 0.0,
                    "pushback_weeks": float(part["pushback_weeks"].iloc[0]) if "pushback_weeks" in part else 0.0,
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


def _raw_paths(out: Path, scenario: str, seed: int) -> tuple[Path, Path]:
    stem = f"{scenario}__{seed}"  # scenario names hold dots (planted_failure_0.5): no with_suffix
    return out / RAW / f"{stem}.metrics.parquet", out / RAW / f"{stem}.replay.parquet"


def _label(table: pd.DataFrame, gate_passed: bool, scenario: str, seed: int) -> pd.DataFrame:
    spec = SCENARIOS[scenario]
    table = table.copy()
    table["gate_passed"] = gate_passed
    table.insert(0, "scenario", scenario)
    table.insert(1, "failure_logodds", spec.failure_logodds)
    table.insert(2, "meeting_weeks", spec.meeting_weeks)
    table.insert(3, "pushback_weeks", spec.pushback_weeks)
    table.insert(4, "seed", seed)
    return table


def _task(job: tuple[tuple[str, ...], int, float, float, str]) -> list[pd.DataFrame]:
    """One world (in a worker process) and the scenarios judged on it: scenarios, seed, years, homes, output folder."""
    from fairness.gate import judge
    from fairness.params import FairnessParams
    from features.config import load_params, section
    from synthetic.generate import GenerateParams

    names, seed, years, homes, out = job
    spec = SCENARIOS[names[0]]
    cfg = load_params()
    world = world_params(
        section(cfg, "generate", GenerateParams),
        seed=seed,
        years=years,
        homes=homes,
        failure_logodds=spec.failure_logodds,
        meeting_weeks=spec.meeting_weeks,
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_gate_") as tmp:
        results = run_once(
            cfg, world, Path(tmp) / "data", pushback_weeks=tuple(SCENARIOS[n].pushback_weeks for n in names)
        )
    seconds = (time.perf_counter() - t0) / len(names)
    tables = []
    for name, (gate, metrics, replay) in zip(names, results, strict=True):
        metrics_file, replay_file = _raw_paths(Path(out), name, seed)
        metrics_file.parent.mkdir(parents=True, exist_ok=True)
        metrics.to_parquet(metrics_file)
        if replay is not None:
            replay.to_parquet(replay_file)
        # what is stored judges exactly as the run did (so `--rejudge` reproduces this table)
        again = judge(
            pd.read_parquet(metrics_file),
            params=gate_only(section(cfg, "fairness", FairnessParams)),
            replay=pd.read_parquet(replay_file) if replay is not None else None,
        )
        pd.testing.assert_frame_equal(again.table, gate.table)
        table = _label(gate.table, gate.passed, name, seed)
        table["run_s"] = seconds  # the world's time, shared by the scenarios judged on it
        metrics_file.with_name(metrics_file.name.replace(".metrics.parquet", ".seconds")).write_text(f"{seconds:.1f}")
        tables.append(table)
    return tables


def worlds(names: list[str]) -> list[tuple[str, ...]]:
    """The scenarios grouped by the world they need (same generator effects): one world, several replays."""
    groups: dict[tuple[float, float], list[str]] = {}
    for name in names:
        spec = SCENARIOS[name]
        groups.setdefault((spec.failure_logodds, spec.meeting_weeks), []).append(name)
    return [tuple(g) for g in groups.values()]


def rejudge(out: Path) -> pd.DataFrame:
    """The stored runs of `out/gate_raw` judged again with today's params `fairness.gate` (no new worlds)."""
    from fairness.gate import judge
    from fairness.params import FairnessParams
    from features.config import load_params, section

    fairness = gate_only(section(load_params(), "fairness", FairnessParams))
    tables = []
    for metrics_file in sorted((out / RAW).glob("*.metrics.parquet")):
        scenario, seed = metrics_file.name.removesuffix(".metrics.parquet").split("__")
        if scenario not in SCENARIOS:
            continue
        replay_file = metrics_file.with_name(metrics_file.name.replace(".metrics.", ".replay."))
        replay = pd.read_parquet(replay_file) if replay_file.exists() else None
        gate = judge(pd.read_parquet(metrics_file), params=fairness, replay=replay)
        table = _label(gate.table, gate.passed, scenario, int(seed))
        took = metrics_file.with_name(metrics_file.name.replace(".metrics.parquet", ".seconds"))
        table["run_s"] = float(took.read_text()) if took.exists() else float("nan")
        tables.append(table)
    if not tables:
        raise SystemExit(f"bench_gate: no stored runs in {out / RAW}")
    return pd.concat(tables, ignore_index=True)


def main(argv: list[str] | None = None) -> None:
    """Run the scenarios over `--seeds` worlds each; write bench/gate_runs.csv and bench/gate.csv."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="worlds per scenario (default 20)")
    parser.add_argument("--years", type=float, default=4.0, help="years of weekly meetings per world (default 4)")
    parser.add_argument("--homes", type=float, default=8.0, help="homes a week (default 8)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {', '.join(SCENARIOS)} (default all)"
    )
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes (default 1)")
    parser.add_argument("--max-minutes", type=float, default=120.0, help="start no new run after this (default 120)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for gate.csv and gate_runs.csv")
    parser.add_argument(
        "--skip-stored", action="store_true", help="skip the worlds whose runs are already in OUT/gate_raw"
    )
    parser.add_argument(
        "--rejudge",
        action="store_true",
        help="judge the runs stored in OUT/gate_raw again with today's params fairness.gate (no new worlds)",
    )
    args = parser.parse_args(argv)
    if args.rejudge:
        from pipelines.bench import machine

        runs = rejudge(args.out).sort_values(["scenario", "seed"], kind="stable")
        runs.to_csv(args.out / RUNS_FILE, index=False)
        summary = summarise(runs)
        summary.to_csv(args.out / SUMMARY_FILE, index=False, float_format="%.4f")
        print(markdown(summary, machine() + " (judged again from stored runs)", 0.0, args.years, args.homes))
        return

    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from pipelines.bench import machine

    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"bench_gate: unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    # seeds outer, scenarios inner: a time-bounded run stays balanced between scenarios
    jobs = [
        (group, SEED_BASE + i, args.years, args.homes, str(args.out))
        for i in range(args.seeds)
        for group in worlds(names)
    ]
    if args.skip_stored:
        jobs = [j for j in jobs if not all(_raw_paths(args.out, name, j[1])[0].exists() for name in j[0])]
    total, finished = len(jobs), 0
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
                finished += 1
                for table in future.result():
                    tables.append(table)
                    failed = int((~table["passed"].astype(bool)).sum())
                    print(
                        f"bench_gate: world {finished}/{total} {table['scenario'].iloc[0]} seed {table['seed'].iloc[0]}: "
                        f"gate {'passed' if table['gate_passed'].iloc[0] else 'FAILED'} ({failed} of {len(table)} "
                        f"checks failed); {table['run_s'].iloc[0]:.0f} s per scenario; "
                        f"{(time.perf_counter() - started) / 60:.1f} min so far",
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
