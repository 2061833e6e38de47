"""`make bench`: the project's model against a peer and the logistic baseline on a family of synthetic worlds.

Each world is the project's generator with a few knobs turned (params.yaml
`generate.truth.failure`: `match_scale`, `latent_severity_sd`,
`isolation_big_complex`; and the size). Per world and scorer: NDCG@5 of the
held-out placements, the share of the random → oracle gain of the top-1
suggestion and of the meeting-wide plan within the default priority policy
(models/oracle.py), and the expected calibration error. Scorers:

- `project`: exactly what `matchwijs train` fits (the search over
  `train.search.grid` on the calibration weeks when `train.search.default`);
- `peer`: a plain LightGBM classifier on the raw joined columns (models/peer.py),
  planned by linear assignment on its own chances within the same policy;
- `logistic`: the project's logistic-regression baseline, planned the same way.

Nothing is tuned on the test weeks. Same seed, same table. Writes
bench/family.csv (one row per world and scorer) and a markdown table on stdout.

    python -m pipelines.bench_family [--seed 42] [--worlds base,weak_match] [--out bench/family.csv]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "family.csv"

COLUMNS = ("ndcg_at_5", "top1_gain", "plan_gain", "ece")
SCORERS = ("project", "peer", "logistic")


def run_world(name: str, *, seed: int, params: dict, folder: Path, say=print) -> list[dict]:
    """Generate family world `name` into `folder` and compare the three scorers on it (`compare_on`)."""
    from features.config import section
    from synthetic.family import HELD_OUT_WEEKS, world_params
    from synthetic.generate import GenerateParams, generate_dataset

    started = time.perf_counter()
    gen = world_params(section(params, "generate", GenerateParams), name, seed=seed)
    if not (folder / "truth" / "truth.yaml").is_file():  # a kept world (--work) is generated once
        generate_dataset(folder / "data", gen, truth_dir=folder / "truth")
    out = compare_on(folder / "data", folder / "truth", params=params, test_weeks=HELD_OUT_WEEKS, world=name)
    gains = ", ".join(f"{r['scorer']} {r['plan_gain']:.3f}" for r in out)
    say(f"{name}: {out[0]['placements']} placements, plan gain {gains}; {time.perf_counter() - started:.0f} s")
    return out


def compare_on(data: Path, truth: Path, *, params: dict, test_weeks: int | None, world: str) -> list[dict]:
    """Train the project's model (as `train` does), the peer and the logistic baseline; one row per scorer."""
    from features.config import section
    from features.labels import LabelParams
    from features.load import load_dataset
    from features.pairs import FeatureParams
    from features.rules import PassendToewijzen
    from models.baselines import BaselineParams
    from models.evaluate import placement_metrics
    from models.experiment import choose_lgbm, placement_rows, run_experiment
    from models.oracle import OracleParams, oracle_comparison
    from models.peer import PeerClassifier
    from models.ranker import TrainParams

    tp = dataclasses.replace(section(params, "train", TrainParams), bootstrap_resamples=0)
    if test_weeks is not None:
        tp = dataclasses.replace(tp, test_weeks=test_weeks)
    fp, lp = section(params, "features", FeatureParams), section(params, "labels", LabelParams)
    rules = section(params, "passend_toewijzen", PassendToewijzen)
    ds = load_dataset(data)
    rows = placement_rows(ds, features=fp, labels=lp, rules=rules)
    tp, _ = choose_lgbm(rows, tp)
    result = run_experiment(
        rows, train=tp, baselines=section(params, "baselines", BaselineParams), objectives=(tp.objective,)
    )
    part = result.split.part(rows)
    fit_rows = rows[part.isin(["fit", "calibration"])] if tp.refit_on_calibration_weeks else rows[part == "fit"]
    peer = PeerClassifier.fit(fit_rows, seed=tp.seed)
    test = result.test.assign(score_peer=lambda t: peer.score(t), p_peer=lambda t: peer.proba(t))

    held_out = {
        "project": result.metrics.loc[f"ranker_{tp.objective}"].to_dict(),
        "peer": placement_metrics(test, "score_peer", tp.label_gain, "p_peer"),
        "logistic": result.metrics.loc["baseline_classifier"].to_dict(),
    }
    oracle = oracle_comparison(
        ds,
        result.bundles[tp.objective],
        truth,
        params=params,
        oracle=section(params, "oracle", OracleParams),
        baselines={"peer": peer, "logistic": result.baselines["classifier"]},
    )
    s = oracle.summary
    out = []
    for scorer in SCORERS:
        suffix = "" if scorer == "project" else f"_{scorer}"
        out.append(
            {
                "world": world,
                "scorer": scorer,
                "ndcg_at_5": float(held_out[scorer]["ndcg_at_5"]),
                "top1_gain": float(s[f"top1_captured_gain{suffix}"]),
                "plan_gain": float(s[f"plan_captured_gain{suffix}"]),
                "ece": float(held_out[scorer]["ece"]),
                "within_client_spearman": float(s[f"within_client_spearman{suffix}"]),
                "client_variance_share": float(s["client_variance_share"]) if scorer == "project" else float("nan"),
                "placements": int(len(rows)),
                "test_placements": int(len(result.test)),
                "held_out_meetings": int(s["meetings"]),
                "lgbm": f"{tp.lgbm.num_leaves} leaves x {tp.lgbm.num_boost_round} rounds"
                if scorer == "project"
                else "",
            }
        )
    return out


def family_table(*, seed: int, worlds: list[str], params: dict, work: Path, say=print) -> pd.DataFrame:
    """One row per (world, scorer), worlds in the given order."""
    rows = []
    for name in worlds:
        rows += run_world(name, seed=seed, params=params, folder=work / name, say=say)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """Worlds as rows; project / peer / logistic side by side per metric."""
    lines = [
        "| world | " + " | ".join(f"{c} project / peer / logistic" for c in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for world, g in table.groupby("world", sort=False):
        by = g.set_index("scorer")
        cells = [" / ".join(f"{by.loc[s, c]:.3f}" for s in SCORERS) for c in COLUMNS]
        lines.append(f"| {world} | " + " | ".join(cells) + " |")
    means = table.groupby("scorer")[list(COLUMNS)].mean()
    worst = table.groupby("scorer")[list(COLUMNS)].min()
    worst["ece"] = table.groupby("scorer")["ece"].max()  # lower is better
    lines.append(
        "| **mean** | " + " | ".join(" / ".join(f"{means.loc[s, c]:.3f}" for s in SCORERS) for c in COLUMNS) + " |"
    )
    lines.append(
        "| **worst** | " + " | ".join(" / ".join(f"{worst.loc[s, c]:.3f}" for s in SCORERS) for c in COLUMNS) + " |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from features.config import load_params
    from synthetic.family import WORLDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default: params generate.seed)")
    parser.add_argument("--worlds", default=",".join(WORLDS), help="comma-separated world names")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--train", default="{}", help="JSON merged into params `train` (e.g. a variant to compare)")
    parser.add_argument("--work", type=Path, help="keep the generated worlds here and reuse them (default: temporary)")
    parser.add_argument("--data", type=Path, help="compare on this dataset (with --truth) instead of the family")
    parser.add_argument("--truth", type=Path, help="the truth folder of --data")
    args = parser.parse_args(argv)
    params = load_params()
    for key, value in json.loads(args.train).items():
        params["train"][key] = {**params["train"][key], **value} if isinstance(value, dict) and value else value
    if args.data is not None:
        table = pd.DataFrame(compare_on(args.data, args.truth, params=params, test_weeks=None, world=args.data.name))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False, float_format="%.4f")
        print(markdown(table))
        return
    seed = params["generate"]["seed"] if args.seed is None else args.seed
    names = [w for w in args.worlds.split(",") if w]
    unknown = sorted(set(names) - set(WORLDS))
    if unknown:
        raise SystemExit(f"bench_family: unknown world(s) {', '.join(unknown)}; known: {', '.join(WORLDS)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="matchwijs-family-") as tmp:
        work = Path(tmp) if args.work is None else args.work / f"seed-{seed}"
        table = family_table(seed=seed, worlds=names, params=params, work=work)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.4f")
    print(markdown(table))
    print(f"seed {seed}; {time.perf_counter() - started:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
