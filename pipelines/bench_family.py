"""`make bench`: the project's model against a peer and the logistic baseline on a family of synthetic worlds.

Each world is the project's generator with a few knobs turned (params.yaml
`generate.truth.failure`: `match_scale`, `latent_severity_sd`,
`isolation_big_complex`; and the size). Per world and scorer: NDCG@5 of the
held-out placements (in the CSV also its two parts: `ndcg_at_5_sustained`, gains 0/1/1/1, and
`ndcg_at_5_among_sustained`, the sustained placements only), the share of the random → oracle gain of the top-1
suggestion and of the meeting-wide plan within the default priority policy
(models/oracle.py), and the expected calibration error. Scorers:

- `project`: exactly what `matchwijs train` fits (the prior's strength and the trees' rounds
  chosen from `train.prior_choice`, the nuisance head's penalty from
  `train.nuisance_alpha_choice` and, when `train.search.by_default`, the search over
  `train.search.grid`, all on the calibration weeks; ranked with its nuisance
  head, planned on its chances);
- `peer`: a plain LightGBM classifier on the raw joined columns (models/peer.py),
  planned by linear assignment on its own chances within the same policy;
- `logistic`: the project's logistic-regression baseline, planned the same way.

- `truth_form` (with `--ceiling`): a logistic regression on exactly the truth's own
  observable terms, learned from the same placements: the ceiling of what the data support.

Nothing is tuned on the test weeks. Same seed, same table. Writes
bench/family.csv (one row per world and scorer) and bench/family.md (the markdown
table, also on stdout), and logs both as a run of the MLflow experiment
`matchwijs-family` (models/tracking.py; `--no-mlflow` to skip).

    python -m pipelines.bench_family [--seed 42] [--worlds base,weak_match] [--out bench/family.csv] [--ceiling]
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
CEILING = "truth_form"  # --ceiling: a logistic regression on exactly the truth's own (observable) terms


SHEET = "project_sheet"  # the project's ranking score: the order of the meeting sheet


class SheetOrder:
    """The project's ranking score alone, without a chance: the oracle's top-1 of it is the sheet's #1 per home.

    With a nuisance head the sheet is ordered by the expected label gain, not by the chance the
    plan and the project's own top-1 column use; this measures what the first suggestion on the sheet is worth.
    """

    def __init__(self, bundle) -> None:
        self.bundle = bundle

    def score(self, X: pd.DataFrame):
        return self.bundle.score(X)


class TruthFormScorer:
    """The ceiling a model could reach from these placements: a logistic regression on the truth's own terms.

    Synthetic data only (it reads the generator's coefficients for the functional form, not
    their values): each observable additive term of the truth's failure logit
    (`synthetic.truth.failure_terms`, without the unobservable latent severity) is one input, and
    the weights are learned from the same training placements as the project's model. The gap
    between this and the oracle is what ~2,000 placements cannot pin down; the gap between the
    project's model and this is signal the model leaves on the table.
    """

    def __init__(self, ds, coefs, model) -> None:
        self.ds, self.coefs, self.model = ds, coefs, model

    @classmethod
    def fit(cls, ds, truth: Path, rows: pd.DataFrame, *, seed: int) -> TruthFormScorer:
        from sklearn.linear_model import LogisticRegression

        from synthetic.generate import load_truth_coefs

        coefs = load_truth_coefs(truth)
        coefs = dataclasses.replace(coefs, failure=dataclasses.replace(coefs.failure, latent_severity_sd=0.0))
        scorer = cls(ds, coefs, None)
        X = scorer.terms(rows)
        scorer.model = LogisticRegression(C=1e4, max_iter=5000, random_state=seed).fit(
            X, rows["sustained"].astype(int).to_numpy()
        )
        return scorer

    def terms(self, X: pd.DataFrame):
        import numpy as np

        from synthetic.truth import failure_terms, truth_pair_inputs

        keys = X[["meeting_date", "dwelling_id", "client_id"]].reset_index(drop=True)
        inputs = truth_pair_inputs(
            keys,
            clients=self.ds.clients,
            dwellings=self.ds.dwellings,
            neighbourhoods=self.ds.neighbourhoods,
            care_providers=self.ds.care_providers,
            placements=self.ds.placements,
            scales=self.coefs.scales,
        )
        terms = failure_terms(inputs, self.coefs)
        return np.column_stack([np.broadcast_to(np.asarray(v, dtype=float), len(keys)) for v in terms.values()])

    def score(self, X: pd.DataFrame):
        return self.model.decision_function(self.terms(X))

    def proba(self, X: pd.DataFrame):
        return self.model.predict_proba(self.terms(X))[:, 1]


def run_world(name: str, *, seed: int, params: dict, folder: Path, say=print, ceiling: bool = False) -> list[dict]:
    """Generate family world `name` into `folder` and compare the three scorers on it (`compare_on`)."""
    from features.config import section
    from synthetic.family import HELD_OUT_WEEKS, world_params
    from synthetic.generate import GenerateParams, generate_dataset

    started = time.perf_counter()
    gen = world_params(section(params, "generate", GenerateParams), name, seed=seed)
    if not (folder / "truth" / "truth.yaml").is_file():  # a kept world (--work) is generated once
        generate_dataset(folder / "data", gen, truth_dir=folder / "truth")
    out = compare_on(
        folder / "data", folder / "truth", params=params, test_weeks=HELD_OUT_WEEKS, world=name, ceiling=ceiling
    )
    gains = ", ".join(f"{r['scorer']} {r['plan_gain']:.3f}" for r in out)
    say(f"{name}: {out[0]['placements']} placements, plan gain {gains}; {time.perf_counter() - started:.0f} s")
    return out


def compare_on(
    data: Path, truth: Path, *, params: dict, test_weeks: int | None, world: str, ceiling: bool = False
) -> list[dict]:
    """Train the project's model (as `train` does), the peer and the logistic baseline; one row per scorer."""
    from features.config import section
    from features.labels import LabelParams
    from features.load import load_dataset
    from features.pairs import FeatureParams
    from features.rules import PassendToewijzen
    from models.baselines import BaselineParams
    from models.evaluate import placement_metrics
    from models.experiment import choose_capacity, choose_lgbm, placement_rows, run_experiment
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
    tp, _ = choose_capacity(rows, tp)
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
    # the sheet's order (the ranking score, nuisance head included) has no chance of its own: the oracle judges
    # its top-1 by the score's rank, i.e. the sheet's #1 per home (`top1_gain_sheet`)
    others: dict = {
        "peer": peer,
        "logistic": result.baselines["classifier"],
        SHEET: SheetOrder(result.bundles[tp.objective]),
    }
    scorers = SCORERS
    if ceiling:
        form = TruthFormScorer.fit(ds, truth, fit_rows, seed=tp.seed)
        test = test.assign(score_form=lambda t: form.score(t), p_form=lambda t: form.proba(t))
        held_out[CEILING] = placement_metrics(test, "score_form", tp.label_gain, "p_form")
        others[CEILING] = form
        scorers = (*SCORERS, CEILING)
    score_cols = {"project": f"score_{tp.objective}", "peer": "score_peer", "logistic": "score_classifier"}
    score_cols[CEILING] = "score_form"
    split_ndcg = {name: ndcg_parts(test, col, tp.label_gain) for name, col in score_cols.items() if col in test}
    oracle = oracle_comparison(
        ds,
        result.bundles[tp.objective],
        truth,
        params=params,
        oracle=section(params, "oracle", OracleParams),
        baselines=others,
    )
    s = oracle.summary
    out = []
    for scorer in scorers:
        suffix = "" if scorer == "project" else f"_{scorer}"
        out.append(
            {
                "world": world,
                "scorer": scorer,
                "ndcg_at_5": float(held_out[scorer]["ndcg_at_5"]),
                "top1_gain": float(s[f"top1_captured_gain{suffix}"]),
                "plan_gain": float(s[f"plan_captured_gain{suffix}"]),
                "ece": float(held_out[scorer]["ece"]),
                **split_ndcg[scorer],
                "top1_gain_sheet": float(s[f"top1_captured_gain_{SHEET}"]) if scorer == "project" else float("nan"),
                "within_client_spearman": float(s[f"within_client_spearman{suffix}"]),
                "client_variance_share": float(s["client_variance_share"]) if scorer == "project" else float("nan"),
                "placements": int(len(rows)),
                "test_placements": int(len(result.test)),
                "held_out_meetings": int(s["meetings"]),
                "lgbm": f"{tp.lgbm.num_leaves} leaves x {tp.lgbm.num_boost_round} rounds"
                if scorer == "project"
                else "",
                "prior": (f"{tp.prior_kind} C={tp.prior_C:g}" if "logistic" in tp.prior_kind else tp.prior_kind)
                if scorer == "project"
                else "",
                "nuisance_alpha": tp.nuisance_alpha if scorer == "project" and tp.nuisance_terms else float("nan"),
            }
        )
    return out


def ndcg_parts(test: pd.DataFrame, score_col: str, label_gain: tuple[float, ...]) -> dict[str, float]:
    """NDCG@5 split in two: who sustains (gains 0 / 1 / 1 / 1) and, among the sustained only, clean before nuisance.

    The first is what a model of P(sustained) is trained for; the second is what the graded
    labels add (serious / minor nuisance / clean), which only a ranking that counts nuisance sees.
    """
    from models.evaluate import mean_ndcg

    sustained_only = test[test["sustained"].astype(int) == 1]
    return {
        "ndcg_at_5_sustained": mean_ndcg(test, score_col, 5, (0.0,) + (1.0,) * (len(label_gain) - 1))[0],
        "ndcg_at_5_among_sustained": mean_ndcg(sustained_only, score_col, 5, label_gain)[0],
    }


def family_table(
    *, seed: int, worlds: list[str], params: dict, work: Path, say=print, ceiling: bool = False
) -> pd.DataFrame:
    """One row per (world, scorer), worlds in the given order."""
    rows = []
    for name in worlds:
        rows += run_world(name, seed=seed, params=params, folder=work / name, say=say, ceiling=ceiling)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """Worlds as rows; project / peer / logistic (/ truth_form with --ceiling) side by side per metric."""
    present = set(table["scorer"])
    shown = tuple(s for s in (*SCORERS, CEILING) if s in present)
    lines = [
        "| world | " + " | ".join(f"{c} {' / '.join(shown)}" for c in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for world, g in table.groupby("world", sort=False):
        by = g.set_index("scorer")
        cells = [" / ".join(f"{by.loc[s, c]:.3f}" for s in shown) for c in COLUMNS]
        lines.append(f"| {world} | " + " | ".join(cells) + " |")
    means = table.groupby("scorer")[list(COLUMNS)].mean()
    worst = table.groupby("scorer")[list(COLUMNS)].min()
    worst["ece"] = table.groupby("scorer")["ece"].max()  # lower is better
    lines.append(
        "| **mean** | " + " | ".join(" / ".join(f"{means.loc[s, c]:.3f}" for s in shown) for c in COLUMNS) + " |"
    )
    lines.append(
        "| **worst** | " + " | ".join(" / ".join(f"{worst.loc[s, c]:.3f}" for s in shown) for c in COLUMNS) + " |"
    )
    return "\n".join(lines)


def write_and_log(table: pd.DataFrame, args, params: dict, what: dict, started: float) -> None:
    """Write the CSV and its markdown next to it, print the table, and log both to MLflow (`matchwijs-family`)."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.4f")
    md = args.out.with_suffix(".md")
    text = markdown(table)
    md.write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"{time.perf_counter() - started:.0f} s; wrote {args.out} and {md}")
    if not args.no_mlflow:
        began = time.time() - (time.perf_counter() - started)  # the run's duration is the bench's
        what = {**what, "train": args.train, "ceiling": args.ceiling}
        log_table(table, params, files=[args.out, md], what=what, start_time=began)


def log_table(
    table: pd.DataFrame, params: dict, *, files: list[Path], what: dict, start_time: float | None = None
) -> str:
    """The family table as one MLflow run (experiment `matchwijs-family`): a metric per cell, `files` under bench/."""
    import shutil

    from features.config import section
    from models import tracking

    mp = section(params, "mlflow", tracking.MlflowParams)
    store = tracking.store_dir(mp)
    tracking.check_store(store)
    run_params = {**what, **tracking.flatten_params({"train": params["train"]})}
    with tempfile.TemporaryDirectory(prefix="matchwijs-family-log-") as tmp:
        for f in files:
            shutil.copy2(f, Path(tmp) / f.name)
        run_id, uri = tracking.log_family(
            store,
            mp,
            table=table,
            run_params=run_params,
            artifacts={"bench": Path(tmp)},
            start_time=time.time() if start_time is None else start_time,
        )
    print(f"logged to MLflow: experiment {tracking.FAMILY_EXPERIMENT}, run {run_id} ({uri})")
    return run_id


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
    parser.add_argument(
        "--ceiling", action="store_true", help=f"also fit `{CEILING}`: logistic regression on the truth's own terms"
    )
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the table to the MLflow store")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    params = load_params()
    for key, value in json.loads(args.train).items():
        params["train"][key] = {**params["train"][key], **value} if isinstance(value, dict) and value else value
    if args.data is not None:
        table = pd.DataFrame(
            compare_on(
                args.data, args.truth, params=params, test_weeks=None, world=args.data.name, ceiling=args.ceiling
            )
        )
        write_and_log(table, args, params, {"data": str(args.data), "truth": str(args.truth)}, started)
        return
    seed = params["generate"]["seed"] if args.seed is None else args.seed
    names = [w for w in args.worlds.split(",") if w]
    unknown = sorted(set(names) - set(WORLDS))
    if unknown:
        raise SystemExit(f"bench_family: unknown world(s) {', '.join(unknown)}; known: {', '.join(WORLDS)}")
    with tempfile.TemporaryDirectory(prefix="matchwijs-family-") as tmp:
        work = Path(tmp) if args.work is None else args.work / f"seed-{seed}"
        table = family_table(seed=seed, worlds=names, params=params, work=work, ceiling=args.ceiling)
    write_and_log(table, args, params, {"seed": seed, "worlds": ",".join(names)}, started)


if __name__ == "__main__":
    main()
