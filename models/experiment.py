"""One training experiment: placement rows → temporal split → ranker(s) and baselines → held-out metrics.

Pure: reads frames and params, returns bundles and tables; the pipeline logs them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import mean_poisson_deviance

from features.errors import UserError
from features.labels import KNOWN, LabelParams, build_labels
from features.load import Dataset
from features.meetings import has_regions, with_region
from features.pairs import FeatureParams, build_pair_features
from features.rules import PassendToewijzen
from models.baselines import BaselineParams, LogisticScorer, RandomScorer, profile_fit
from models.bundle import ModelBundle
from models.evaluate import paired_bootstrap, placement_metrics, reliability_curve
from models.ranker import Split, TrainParams, fit_nuisance_head, sort_for_ranking, temporal_split, train_bundle
from models.scoring import ProbabilityScorer, Scorer


def placement_rows(
    ds: Dataset, *, features: FeatureParams, labels: LabelParams, rules: PassendToewijzen
) -> pd.DataFrame:
    """Placements with a known outcome: pair features as of their meeting, `sustained`, `grade`, and `outcome_known_on`.

    With named regions the rows also carry `region` (a meeting is a region on a date).
    """
    lab = build_labels(ds, labels)
    known = lab[lab["status"] == KNOWN]
    feats = build_pair_features(ds, known[["meeting_date", "dwelling_id", "client_id"]], params=features, rules=rules)
    rows = feats.join(known[["placement_id", "sustained", "grade"]])
    rows["outcome_known_on"] = known["tenancy_start"] + pd.Timedelta(days=labels.horizon_days)
    if has_regions(ds.vacancies):  # a meeting is a region on a date: per-meeting metrics and queries need it
        rows = with_region(ds, rows)
    return sort_for_ranking(rows)


@dataclass
class ExperimentResult:
    """Bundles per objective, the held-out rows with every scorer's columns, and the metric table."""

    split: Split
    bundles: dict[str, ModelBundle]
    test: pd.DataFrame
    metrics: pd.DataFrame  # one row per scorer
    reliability: dict[str, pd.DataFrame] = field(default_factory=dict)
    baselines: dict[str, Scorer] = field(default_factory=dict)  # random, profile_fit, classifier (fitted)
    versus: pd.DataFrame | None = None  # the default objective minus each baseline, bootstrapped over meetings

    def informed_baselines(self) -> dict[str, Scorer]:
        """The baselines that use the pair's features (for the oracle comparison): all but random."""
        return {name: scorer for name, scorer in self.baselines.items() if name != "random"}


def run_experiment(
    rows: pd.DataFrame,
    *,
    train: TrainParams,
    baselines: BaselineParams,
    objectives: tuple[str, ...],
    progress=lambda msg: None,
) -> ExperimentResult:
    """Train each objective, score baselines, evaluate all on the held-out meetings."""
    split = temporal_split(rows, train)
    part = split.part(rows)
    test = rows[part == "test"].copy()
    # The classifier learns from exactly the rows the final trees are fitted on (it needs no calibration weeks).
    fit_rows = rows[part.isin(["fit", "calibration"])] if train.refit_on_calibration_weeks else rows[part == "fit"]
    bundles: dict[str, ModelBundle] = {}
    metrics: dict[str, dict] = {}
    reliability: dict[str, pd.DataFrame] = {}
    for objective in objectives:
        refit = ", then refitting on both" if train.refit_on_calibration_weeks else ""
        progress(
            f"fitting LightGBM ({objective}) on {int((part == 'fit').sum())} placements, calibrating on {int((part == 'calibration').sum())}{refit}"
        )
        bundle = train_bundle(rows, split, train, objective)
        bundles[objective] = bundle
        logodds = bundle.logodds(test)
        test[f"score_{objective}"] = bundle.score(test, logodds=logodds)
        test[f"p_{objective}"] = bundle.proba(logodds=logodds)
        metrics[f"ranker_{objective}"] = ranker_metrics(test, f"score_{objective}", f"p_{objective}", train.label_gain)
        reliability[f"ranker_{objective}"] = reliability_curve(
            test[f"p_{objective}"].to_numpy(), test["sustained"].astype(int).to_numpy()
        )
    progress("scoring baselines: random, profile fit, pointwise classifier")
    scorers: dict[str, Scorer] = {
        "random": RandomScorer(train.seed),
        "profile_fit": profile_fit(baselines),
        "classifier": LogisticScorer.fit(fit_rows, fit_rows["sustained"], C=baselines.logistic_C, seed=train.seed),
    }
    for name, scorer in scorers.items():
        test[f"score_{name}"] = scorer.score(test)
        proba_col = None
        if isinstance(scorer, ProbabilityScorer):
            proba_col = f"p_{name}"
            test[proba_col] = scorer.proba(test)
            reliability[f"baseline_{name}"] = reliability_curve(
                test[proba_col].to_numpy(), test["sustained"].astype(int).to_numpy()
            )
        metrics[f"baseline_{name}"] = placement_metrics(test, f"score_{name}", train.label_gain, proba_col)
    table = pd.DataFrame(metrics).T
    table.index.name = "scorer"
    versus = None
    if train.objective in bundles and train.bootstrap_resamples > 0:
        progress(
            f"bootstrapping the held-out meetings ({train.bootstrap_resamples} resamples): {train.objective} against each baseline"
        )
        versus = versus_baselines(test, train, by_chance=bundles[train.objective].nuisance is not None)
    return ExperimentResult(split, bundles, test, table, reliability, scorers, versus)


FAILURE_METRICS = ("roc_auc_failure", "pr_auc_failure")  # judged on a ranker's chance, not on its ranking score


def ranker_metrics(test: pd.DataFrame, score_col: str, proba_col: str, label_gain: tuple[float, ...]) -> dict:
    """Held-out metrics of a ranker: NDCG of the score that ranks, ROC-AUC and PR-AUC for failure of its chance.

    With a nuisance head (models/bundle.py) the ranking score also counts nuisance, so failure is
    judged on the chance of a sustained tenancy; without one the two orders are the same.
    """
    out = placement_metrics(test, score_col, label_gain, proba_col)
    by_chance = placement_metrics(test, proba_col, label_gain)
    return {**out, **{m: by_chance[m] for m in FAILURE_METRICS}}


def versus_baselines(test: pd.DataFrame, train: TrainParams, *, by_chance: bool = False) -> pd.DataFrame:
    """The default objective minus each baseline on the scored held-out rows, bootstrapped over meetings.

    With `by_chance` (a model with a nuisance head) the failure metrics' rows compare chances (a
    baseline without one: its score), from the same draws of meetings; NDCG compares the scores.
    """
    baselines = ("profile_fit", "classifier", "random")
    table = paired_bootstrap(
        test,
        f"score_{train.objective}",
        {b: f"score_{b}" for b in baselines},
        train.label_gain,
        train.bootstrap_resamples,
        train.seed,
    )
    if not by_chance:
        return table
    failure = paired_bootstrap(
        test,
        f"p_{train.objective}",
        {b: f"p_{b}" if f"p_{b}" in test.columns else f"score_{b}" for b in baselines},
        train.label_gain,
        train.bootstrap_resamples,
        train.seed,
    )
    rows = table["metric"].isin(FAILURE_METRICS).to_numpy()
    table.loc[rows] = failure.loc[rows].to_numpy()
    return table


def score_with(bundle: ModelBundle, test: pd.DataFrame, label_gain: tuple[float, ...]) -> dict:
    """Held-out metrics of another bundle (e.g. the current champion) on the same rows."""
    logodds = bundle.logodds(test)
    scored = test.assign(_s=bundle.score(test, logodds=logodds), _p=bundle.proba(logodds=logodds))
    return ranker_metrics(scored, "_s", "_p", label_gain)


def grid_search(
    rows: pd.DataFrame, *, train: TrainParams, grid: tuple[dict, ...], metric: str, progress=lambda msg: None
) -> pd.DataFrame:
    """Fit each LightGBM variant of `grid` on the fit weeks and score it on the calibration weeks.

    The held-out test weeks are never touched, so choosing the best variant does not
    leak into the reported evaluation. Variants are never refitted on the calibration
    weeks here: those are the validation rows. Returns one row per variant: its overrides
    (as columns) and the validation metric, best first (ties: grid order).
    """
    split = temporal_split(rows, train)
    part = split.part(rows)
    validation = rows[part == "calibration"].copy()
    results = []
    for i, overrides in enumerate(grid):
        unknown = set(overrides) - {f.name for f in dataclasses.fields(train.lgbm)}
        if unknown:
            raise UserError(
                f"params: train.search.grid[{i}] names unknown LightGBM settings: {', '.join(sorted(unknown))}"
            )
        variant = dataclasses.replace(
            train, lgbm=dataclasses.replace(train.lgbm, **overrides), refit_on_calibration_weeks=False
        )
        bundle = train_bundle(rows, split, variant)
        validation["_s"] = bundle.score(validation)
        value = placement_metrics(validation, "_s", train.label_gain)[metric]
        progress(f"search {i + 1}/{len(grid)}: {overrides} -> validation {metric} {value:.4f}")
        results.append({"variant": i, **overrides, f"validation_{metric}": value})
    table = pd.DataFrame(results)
    return table.sort_values([f"validation_{metric}", "variant"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def log_losses(scores: np.ndarray, sustained: np.ndarray) -> np.ndarray:
    """The log-loss of each log-odds score in `scores` for its 0/1 outcome in `sustained` (numerically stable)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(sustained, dtype=float)
    return np.logaddexp(0.0, s) - y * s


def log_loss_of_scores(scores: np.ndarray, sustained: np.ndarray) -> float:
    """Mean log-loss of log-odds `scores` for 0/1 outcomes `sustained` (numerically stable)."""
    return float(np.mean(log_losses(scores, sustained)))


def prior_table(rows: pd.DataFrame, train: TrainParams, progress=lambda msg: None) -> pd.DataFrame:
    """Each candidate of `train.prior_choice` fitted (prior + trees) on the fit weeks, judged on the calibration weeks.

    The judge is the log-loss of the model's log-odds on the calibration placements: a proper
    score, so it rewards a prior that gets the size of every effect right (who and which home),
    where ROC-AUC mostly rewards ordering clients. The test weeks are never touched and nothing
    is refitted on the calibration weeks here. Returns one row per candidate, best first (ties:
    the order given), with `se_minus_best`: the standard error of its log-loss minus the best's
    (paired over the calibration placements), and `chosen`: the first candidate in the order given
    (simplest first) whose log-loss is within `train.prior_choice_se` standard errors of the best
    (0: the best itself).
    """
    split = temporal_split(rows, train)
    part = split.part(rows)
    validation = rows[part == "calibration"]
    y = validation["sustained"].astype(float).to_numpy()
    out: list[dict] = []
    losses: list[np.ndarray] = []
    for i, candidate in enumerate(train.prior_choice):
        variant = dataclasses.replace(train.with_choice(candidate), refit_on_calibration_weeks=False)
        bundle = train_bundle(rows, split, variant)
        losses.append(log_losses(bundle.logodds(validation), y))
        loss = float(np.mean(losses[-1]))
        progress(f"capacity {i + 1}/{len(train.prior_choice)}: {candidate} -> calibration-week log-loss {loss:.4f}")
        out.append(
            {
                "candidate": i,
                "prior_kind": variant.prior_kind,
                "prior_C": variant.prior_C,
                "num_boost_round": variant.lgbm.num_boost_round,
                "validation_log_loss": loss,
            }
        )
    table = pd.DataFrame(out)
    chosen, se = within_standard_errors(losses, train.prior_choice_se)
    table["se_minus_best"] = se
    table["chosen"] = table["candidate"] == chosen
    return table.sort_values(["validation_log_loss", "candidate"], kind="stable").reset_index(drop=True)


def within_standard_errors(losses: list[np.ndarray], k: float) -> tuple[int, list[float]]:
    """The first candidate whose mean loss is within `k` standard errors of the best's, and those standard errors.

    `losses` holds one array of per-placement losses per candidate (the same placements, in the
    order the candidates are listed: simplest first). The standard error is that of the mean of
    the paired differences (candidate minus best; 0 for the best itself). k = 0 chooses the best
    (ties: the first listed); a larger k prefers a simpler candidate the data cannot tell apart
    from the best (the "one standard error" rule for k = 1).
    """
    means = [float(np.mean(loss)) for loss in losses]
    best = int(np.argmin(means))  # the first of equal means
    se = []
    for i, loss in enumerate(losses):
        diff = np.asarray(loss, dtype=float) - np.asarray(losses[best], dtype=float)
        se.append(float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if i != best and len(diff) > 1 else 0.0)
    chosen = next((i for i, (m, e) in enumerate(zip(means, se, strict=True)) if m <= means[best] + k * e), best)
    return chosen, se


def nuisance_table(rows: pd.DataFrame, train: TrainParams) -> pd.DataFrame:
    """Each penalty of `train.nuisance_alpha_choice`: the head fitted on the fit weeks, judged on the calibration weeks.

    The judge is the mean Poisson deviance of the head's expected gain against the label gain of
    the sustained calibration placements (what the head predicts: E[gain | sustained]). The test
    weeks are never touched. One row per penalty, best first (ties: the order given).
    """
    split = temporal_split(rows, train)
    part = split.part(rows)
    validation = rows[(part == "calibration") & (rows["sustained"].astype(int) == 1)]
    gain = np.asarray(train.label_gain, dtype=float)[validation["grade"].astype(int).to_numpy()]
    out = []
    for i, alpha in enumerate(train.nuisance_alpha_choice):
        head = fit_nuisance_head(rows[part == "fit"], dataclasses.replace(train, nuisance_alpha=alpha))
        if head is None or len(validation) == 0:
            return pd.DataFrame()
        deviance = mean_poisson_deviance(gain, np.exp(head.score(validation)))
        out.append({"candidate": i, "nuisance_alpha": float(alpha), "validation_poisson_deviance": float(deviance)})
    table = pd.DataFrame(out)
    return table.sort_values(["validation_poisson_deviance", "candidate"], kind="stable").reset_index(drop=True)


def choose_prior(rows: pd.DataFrame, train: TrainParams, progress=lambda msg: None) -> tuple[TrainParams, pd.DataFrame]:
    """`train` with the chosen candidate of `train.prior_choice` (see prior_table); unchanged without candidates."""
    if not train.prior_choice:
        return train, pd.DataFrame()
    table = prior_table(rows, train, progress)
    row = table.loc[table["chosen"]].iloc[0]
    chosen = dict(train.prior_choice[int(row["candidate"])])
    best = table.iloc[0]
    why = (
        "the best"
        if int(row["candidate"]) == int(best["candidate"])
        else f"the simplest within {train.prior_choice_se:g} standard error(s) ({row['se_minus_best']:.4f}) of the best, "
        f"{best['validation_log_loss']:.4f} ({dict(train.prior_choice[int(best['candidate'])])})"
    )
    progress(f"capacity: chose {chosen}: calibration-week log-loss {row['validation_log_loss']:.4f}, {why}")
    return train.with_choice(chosen), table


def choose_capacity(
    rows: pd.DataFrame, train: TrainParams, progress=lambda msg: None
) -> tuple[TrainParams, dict[str, pd.DataFrame]]:
    """The capacity chosen on the calibration weeks (never the test weeks): the prior's strength and the trees' rounds
    (`train.prior_choice`, prior_table), then the nuisance head's penalty (`train.nuisance_alpha_choice`, nuisance_table).

    Returns `train` with the chosen settings (no choice left in it) and the tables, by name. The
    chosen settings are what `train` fits, logs (MLflow params `train.prior_C`, `train.lgbm.num_boost_round`,
    `train.nuisance_alpha`) and what the deployed refit keeps.
    """
    notes = []
    if train.prior_choice:
        notes.append(
            f"prior strength and trees chosen from {len(train.prior_choice)} candidates by calibration-week log-loss"
            + (
                f" (the simplest within {train.prior_choice_se:g} standard error"
                f"{'' if train.prior_choice_se == 1 else 's'} of the best)"
                if train.prior_choice_se > 0
                else ""
            )
        )
    train, prior = choose_prior(rows, train, progress)
    tables = {"prior_choice": prior} if len(prior) else {}
    if train.nuisance_alpha_choice and train.nuisance_terms:
        head = nuisance_table(rows, train)
        if len(head):
            alpha = float(head.loc[0, "nuisance_alpha"])
            progress(
                "nuisance head: chose penalty "
                f"{alpha:g} (calibration-week Poisson deviance {head.loc[0, 'validation_poisson_deviance']:.4f})"
            )
            train = dataclasses.replace(train, nuisance_alpha=alpha)
            tables["nuisance_alpha_choice"] = head
            notes.append(
                f"head penalty chosen from {len(head)} by the Poisson deviance of the sustained calibration placements"
            )
    note = f"{'; '.join(notes)} (never the test weeks)" if notes else train.capacity_note
    return dataclasses.replace(train, nuisance_alpha_choice=(), capacity_note=note), tables


def choose_lgbm(rows: pd.DataFrame, train: TrainParams, progress=lambda msg: None) -> tuple[TrainParams, pd.DataFrame]:
    """The LightGBM settings to train with: the grid's best on the calibration weeks (never the test weeks).

    With `train.search.by_default` false, `train` as it is and an empty table. Capacity
    (leaves, rounds) is thus chosen by temporal validation inside each dataset.
    """
    if not train.search.by_default:
        return train, pd.DataFrame()
    return search_lgbm(rows, train, progress)


def search_lgbm(rows: pd.DataFrame, train: TrainParams, progress=lambda msg: None) -> tuple[TrainParams, pd.DataFrame]:
    """Run the grid of `train.search` and return `train` with the best variant's settings, and the table."""
    searched = grid_search(rows, train=train, grid=train.search.grid, metric=train.search.metric, progress=progress)
    best = dict(train.search.grid[int(searched.loc[0, "variant"])])
    progress(f"search: best variant {best}")
    return dataclasses.replace(train, lgbm=dataclasses.replace(train.lgbm, **best)), searched
