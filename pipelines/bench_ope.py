"""`make bench`: does the doubly robust estimate land on the truth? Coverage of its intervals over seeds.

Per seed: a small synthetic world (sizes below), the ranker trained as `train`
does (no baselines, no bootstrap), then models/offpolicy.py on the held-out
meetings that have a truth: the DR estimate (with its bootstrap interval) of each
priority policy's expected sustained tenancies against the truth's value of the
very same plans, and the sanity check that the DR estimate of the meeting's own
(fitted) choice policy lands on the observed number of sustained tenancies.
Writes bench/ope.csv (one row per seed × policy) and prints a summary.

    python -m pipelines.bench_ope [--seeds 5] [--first-seed 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"
YEARS = 4
WEEKLY_VACANCIES = 12
TRUTH_WEEKS = 26


def run_seed(seed: int, folder: Path) -> list[dict]:
    """The DR estimates against the truth for one generator seed (one row per policy, plus the meeting's own)."""
    import pandas as pd

    from features.config import load_params, section
    from features.labels import LabelParams
    from features.load import load_dataset
    from features.pairs import FeatureParams
    from features.rules import PassendToewijzen
    from models.experiment import placement_rows
    from models.offpolicy import LoggedConfig, OpeParams, dr_estimate, offpolicy_values
    from models.oracle import read_truth
    from models.ranker import TrainParams, temporal_split, train_bundle
    from planning.assignment import AssignmentParams
    from planning.eligibility import EligibilityParams
    from planning.priority import POLICIES
    from synthetic.generate import GenerateParams, generate_dataset

    cfg = load_params()
    gen = section(cfg, "generate", GenerateParams)
    scale = WEEKLY_VACANCIES / gen.weekly_vacancies
    gen = dataclasses.replace(
        gen,
        seed=seed,
        years=YEARS,
        weekly_vacancies=WEEKLY_VACANCIES,
        weekly_candidates=gen.weekly_candidates * scale,
        initial_queue=int(gen.initial_queue * scale),
        truth_weeks=TRUTH_WEEKS,
    )
    t0 = time.perf_counter()
    generate_dataset(folder / "data", gen, truth_dir=folder / "truth")
    ds = load_dataset(folder / "data")
    fp, lp = section(cfg, "features", FeatureParams), section(cfg, "labels", LabelParams)
    rules = section(cfg, "passend_toewijzen", PassendToewijzen)
    tp = dataclasses.replace(section(cfg, "train", TrainParams), bootstrap_resamples=0)
    rows = placement_rows(ds, features=fp, labels=lp, rules=rules)
    split = temporal_split(rows, tp)
    bundle = train_bundle(rows, split, tp, tp.objective)
    truth = read_truth(folder / "truth")
    truth_dates = set(truth["meeting_date"].unique())
    dates = pd.DatetimeIndex(sorted(ds.vacancies["meeting_date"].unique()))
    meetings = dates[(dates >= split.test_start) & dates.isin(truth_dates)]
    if split.test_end is not None:
        meetings = meetings[meetings <= split.test_end]
    params = section(cfg, "ope", OpeParams)
    assignment = section(cfg, "assignment", AssignmentParams)
    result = offpolicy_values(
        ds,
        meetings=meetings,
        policies={name: dataclasses.replace(assignment, policy=name) for name in POLICIES},
        proba=bundle.proba,
        config=LoggedConfig(
            features=fp, amounts=rules, eligibility=section(cfg, "eligibility", EligibilityParams), labels=lp
        ),
        params=params,
        truth=truth.set_index(["meeting_date", "dwelling_id", "client_id"])["p_sustained"],
    )
    seconds = time.perf_counter() - t0
    size = {
        "seed": seed,
        "years": YEARS,
        "weekly_vacancies": WEEKLY_VACANCIES,
        "meetings": len(meetings),
        "homes": int(result.pairs.groupby(["meeting_date", "dwelling_id"]).ngroups),
        "pairs": len(result.pairs),
        "seconds": round(seconds, 1),
    }
    out = []
    for row in result.table.to_dict("records"):
        if row["policy"] == "meeting_history":
            continue
        covered = row["ope_dr_low"] <= row["ope_truth_total"] <= row["ope_dr_high"]
        out.append({**size, **row, "covered": bool(covered), "error": row["ope_dr_total"] - row["ope_truth_total"]})
    # the meeting's own (fitted) choice policy: every weight is 1, so DR should land on what was observed
    own = dr_estimate(result.pairs.assign(target=result.pairs["propensity"]), params)
    logged = result.pairs[result.pairs["logged"] & result.pairs["outcome"].notna()]
    observed = float(logged["outcome"].sum())
    out.append(
        {
            **size,
            "policy": "meeting_choice_model",
            **own.as_row(),
            "observed_total": observed,
            "covered": bool(own.dr_low <= observed <= own.dr_high),
            "error": own.dr_total - observed,
        }
    )
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the seeds and write bench/ope.csv."""
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1)
    args = parser.parse_args(argv)
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        with TemporaryDirectory() as tmp:
            rows.extend(run_seed(seed, Path(tmp)))
        print(f"seed {seed} done", flush=True)
    table = pd.DataFrame(rows)
    OUT.mkdir(exist_ok=True)
    table.to_csv(OUT / "ope.csv", index=False)
    summary = table.groupby("policy").agg(
        seeds=("seed", "size"),
        coverage=("covered", "mean"),
        mean_error=("error", "mean"),
        mean_abs_error=("error", lambda e: e.abs().mean()),
        mean_truth=("ope_truth_total", "mean"),
        mean_dr=("ope_dr_total", "mean"),
        mean_width=("ope_dr_high", "mean"),
        mean_observed=("observed_total", "mean"),
        mean_seconds=("seconds", "mean"),
    )
    summary["mean_width"] = (table["ope_dr_high"] - table["ope_dr_low"]).groupby(table["policy"]).mean()
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(summary.to_string())
    print(f"wrote {OUT / 'ope.csv'}")


if __name__ == "__main__":
    main()
