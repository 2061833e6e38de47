"""The LightGBM ranker: temporal split, query groups by meeting, training, Platt calibration.

Rows are placements with a known outcome; a query is one meeting (the placements
made there), ordered by date so LightGBM's `group` sizes line up with the rows.
The objective is a parameter: `lambdarank` and `rank_xendcg` learn the graded
label (0 failed … 3 sustained clean) within meetings, `binary` learns sustained
vs failed pointwise. Scores are then mapped to a calibrated chance of a sustained
tenancy by Platt scaling on the calibration weeks (the latest training weeks).

Two choices make the most of the little outcome data a city has (a few hundred
placements a year):
- a prior (params `train.prior_weights`): the trees are boosted from a linear
  rule of thumb (by default the profile-fit rule of `baselines`), rescaled to
  log-odds by logistic regression on the training rows, so they learn
  corrections to what caseworkers already know instead of starting from nothing;
- a refit (params `train.refit_on_calibration_weeks`): Platt scaling is fitted on
  the calibration weeks with trees that never saw them, then the trees are
  refitted on fit + calibration weeks with the same settings and keep that
  calibration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.preprocessing import StandardScaler

from features.contract import REGION, ZRM_DOMAINS
from features.errors import UserError
from features.meetings import meeting_codes
from features.pairs import FEATURE_NAMES, FEATURES, PAIR_KEYS
from models.bundle import SUPPORT_FEATURES, LinearPrior, ModelBundle, standardise, support_scale_of
from models.calibration import PlattCalibration

OBJECTIVES = ("lambdarank", "rank_xendcg", "binary")
PRIOR_KINDS = ("rule", "logistic", "rule_logistic", "none")
RULE_INPUT = "_rule"  # the rule's score as one input of a rule_logistic prior
# Held-out metrics every scorer gets (models/evaluate.py placement_metrics); calibrated models add CALIBRATION_METRICS.
RANKING_METRICS = ("roc_auc_failure", "pr_auc_failure", "ndcg_at_5", "ndcg_at_10")
CALIBRATION_METRICS = ("brier", "ece")


@dataclass(frozen=True)
class LgbmParams:
    """LightGBM hyper-parameters (see LightGBM's docs for each)."""

    num_leaves: Annotated[int, Field(ge=2)]
    learning_rate: Annotated[float, Field(gt=0)]
    num_boost_round: Annotated[int, Field(ge=1)]
    min_data_in_leaf: Annotated[int, Field(ge=1)]
    feature_fraction: Annotated[float, Field(gt=0, le=1)]
    bagging_fraction: Annotated[float, Field(gt=0, le=1)]
    bagging_freq: Annotated[int, Field(ge=0)]
    lambda_l2: Annotated[float, Field(ge=0)]
    monotone_self_reliance: bool  # a higher ZRM score never lowers the score (the data cannot argue otherwise)


@dataclass(frozen=True)
class SearchParams:
    """`train --search`: LightGBM variants (overrides of `lgbm`) compared on the calibration weeks."""

    metric: str
    grid: tuple[dict, ...]
    by_default: bool = False  # `train` searches unless `--no-search` (else only with `--search`)

    def __post_init__(self) -> None:
        if self.metric not in RANKING_METRICS:
            raise UserError(f"params: train.search.metric {self.metric!r} is not one of {', '.join(RANKING_METRICS)}")
        if not self.grid:
            raise UserError("params: train.search.grid is empty: list at least one LightGBM variant")


@dataclass(frozen=True)
class TrainParams:
    """What `train` fits and how the meetings are split in time."""

    seed: Annotated[int, Field(ge=0)]
    objective: str
    compare_objectives: tuple[str, ...]
    test_weeks: Annotated[int, Field(ge=1)]
    calibration_weeks: Annotated[int, Field(ge=1)]
    label_gain: tuple[float, ...]
    success_threshold: Annotated[float, Field(ge=0, le=1)]
    support_radius: Annotated[float, Field(gt=0)]
    lgbm: LgbmParams
    search: SearchParams
    # Defaults keep an older params.yaml working as before (trees only, no refit, no bootstrap).
    prior_weights: dict[str, float] = field(default_factory=dict)  # feature -> weight of the linear prior; {} = none
    # "rule": the prior is `prior_weights` rescaled; "logistic": an L2 logistic regression (C = prior_C) on the
    # features of `prior_groups` (features.pairs FEATURES groups), learned on the same rows as the trees;
    # "rule_logistic": the same with the rule's score as one more input (shrinks towards the rule); "none".
    prior_kind: str = "rule"
    prior_groups: tuple[str, ...] = ("client", "match", "history")
    prior_C: Annotated[float, Field(gt=0)] = 0.1
    # The learned prior's inputs by name instead of by group (a few domain terms: less noise than every feature).
    prior_terms: tuple[str, ...] = ()
    # Candidate priors ({prior_kind, prior_C, num_boost_round} overrides), each fitted with the trees on the fit weeks and judged by the
    # log-loss of its chances on the calibration weeks (never the test weeks); the best is trained. () = `prior_kind`.
    prior_choice: tuple[dict, ...] = ()
    # How the candidate is chosen: the first in the order given (list the simplest first) whose calibration-week
    # log-loss is within this many standard errors (paired over the calibration placements) of the best; 0 = the best.
    prior_choice_se: Annotated[float, Field(ge=0)] = 0.0
    refit_on_calibration_weeks: bool = False  # refit the trees on fit + calibration weeks after Platt scaling
    bootstrap_resamples: Annotated[int, Field(ge=0)] = (
        0  # resamples of held-out meetings for the model-vs-baseline intervals (0 = none)
    )
    # The nuisance head (fit_nuisance_head): a log-linear model of the label gain of the sustained placements on these
    # features; candidates are then ranked by the expected label gain. () = ranked by the chance alone (no head).
    nuisance_terms: tuple[str, ...] = ()
    nuisance_alpha: Annotated[float, Field(ge=0)] = 0.01  # its L2 penalty (sklearn PoissonRegressor alpha)
    # Candidate penalties of the head, each fitted on the fit weeks and judged by the Poisson deviance of the sustained
    # calibration placements (never the test weeks); the best replaces nuisance_alpha. () = nuisance_alpha as set.
    nuisance_alpha_choice: tuple[float, ...] = ()
    # Not a setting: what the choice on the calibration weeks picked and by which criterion (written by
    # models/experiment.py choose_capacity; the model folder's metadata `capacity` and the model card show it).
    capacity_note: str = ""

    def __post_init__(self) -> None:
        for obj in (self.objective, *self.compare_objectives):
            if obj not in OBJECTIVES:
                raise UserError(f"params: train.objective {obj!r} is not one of {', '.join(OBJECTIVES)}")
        unknown = sorted(set(self.prior_weights) - set(FEATURE_NAMES))
        if unknown:
            raise UserError(f"params: train.prior_weights names unknown features: {', '.join(unknown)}")
        if self.prior_kind not in PRIOR_KINDS:
            raise UserError(f"params: train.prior_kind {self.prior_kind!r} is not one of {', '.join(PRIOR_KINDS)}")
        for i, candidate in enumerate(self.prior_choice):
            unknown_keys = sorted(set(candidate) - {"prior_kind", "prior_C", "num_boost_round"})
            kind = candidate.get("prior_kind", self.prior_kind)
            C = candidate.get("prior_C", self.prior_C)
            rounds = candidate.get("num_boost_round", 1)
            if (
                unknown_keys
                or kind not in PRIOR_KINDS
                or not (isinstance(C, (int, float)) and C > 0)
                or not (isinstance(rounds, int) and rounds >= 0)
            ):
                raise UserError(
                    f"params: train.prior_choice[{i}] {candidate!r}: give prior_kind (one of {', '.join(PRIOR_KINDS)}), "
                    "prior_C (a number > 0) and/or num_boost_round (the trees' rounds, >= 0; 0 = the prior alone), nothing else"
                )
        if any(not (isinstance(a, (int, float)) and a >= 0) for a in self.nuisance_alpha_choice):
            raise UserError(
                f"params: train.nuisance_alpha_choice {list(self.nuisance_alpha_choice)!r}: give penalties, numbers >= 0"
            )
        unknown_terms = sorted(set(self.prior_terms) - set(FEATURE_NAMES))
        if unknown_terms:
            raise UserError(f"params: train.prior_terms names unknown features: {', '.join(unknown_terms)}")
        unknown_nuisance = sorted(set(self.nuisance_terms) - set(FEATURE_NAMES))
        if unknown_nuisance:
            raise UserError(f"params: train.nuisance_terms names unknown features: {', '.join(unknown_nuisance)}")
        if self.nuisance_terms and (len(self.label_gain) < 2 or min(self.label_gain[1:]) <= 0):
            raise UserError(
                "params: train.nuisance_terms needs a positive train.label_gain for every grade of a sustained "
                f"tenancy (grades 1 and up); got {list(self.label_gain)}"
            )
        groups = {f.group for f in FEATURES}
        if not set(self.prior_groups) <= groups:
            raise UserError(
                f"params: train.prior_groups: unknown group(s) {', '.join(sorted(set(self.prior_groups) - groups))}; "
                f"the feature groups are {', '.join(sorted(groups))}"
            )

    def with_choice(self, candidate: dict) -> TrainParams:
        """These settings with one `prior_choice` candidate applied (and no further choice)."""
        rounds = candidate.get("num_boost_round", self.lgbm.num_boost_round)
        prior = {k: v for k, v in candidate.items() if k in ("prior_kind", "prior_C")}
        lgbm = dataclasses.replace(self.lgbm, num_boost_round=rounds)
        return dataclasses.replace(self, **prior, lgbm=lgbm, prior_choice=())

    def prior_features(self) -> tuple[str, ...]:
        """The features of a learned ("logistic") prior, in FEATURE_NAMES order: `prior_terms`, else `prior_groups`."""
        if self.prior_terms:
            return tuple(f for f in FEATURE_NAMES if f in self.prior_terms)
        return tuple(f.name for f in FEATURES if f.group in self.prior_groups)


@dataclass(frozen=True)
class Split:
    """Meeting-date boundaries of the temporal split (each start inclusive).

    Training and calibration only use placements whose outcome was known before the
    first test meeting (`outcome_known_on < test_start`): a model deployed at
    `test_start` could not have learned from later outcomes. Placements between the
    last such meeting and the test weeks form the `gap` and are not used.
    """

    train_start: pd.Timestamp
    calibration_start: pd.Timestamp
    history_end: pd.Timestamp  # last meeting of the fit/calibration weeks
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def part(self, rows: pd.DataFrame) -> pd.Series:
        """'fit', 'calibration', 'gap' or 'test' for each row (needs meeting_date and outcome_known_on)."""
        dates, known_on = rows["meeting_date"], rows["outcome_known_on"]
        return pd.Series(
            np.select(
                [
                    dates >= self.test_start,
                    (known_on >= self.test_start) | (dates > self.history_end),
                    dates >= self.calibration_start,
                ],
                ["test", "gap", "calibration"],
                "fit",
            ),
            index=rows.index,
        )


def temporal_split(rows: pd.DataFrame, params: TrainParams) -> Split:
    """Hold out the latest `test_weeks` of meetings with known outcomes; learn only from outcomes known before them.

    `rows` needs meeting_date and outcome_known_on (tenancy start + horizon).
    """
    dates = pd.DatetimeIndex(sorted(rows["meeting_date"].unique()))
    if len(dates) == 0:
        raise UserError(
            "no placement has a known outcome yet (all are right-censored or excluded): nothing to train on"
        )
    test_end = dates.max()
    test_start = test_end - pd.Timedelta(weeks=params.test_weeks) + pd.Timedelta(days=1)
    usable = rows.loc[(rows["outcome_known_on"] < test_start) & (rows["meeting_date"] < test_start), "meeting_date"]
    history_end = usable.max() if len(usable) else dates.min() - pd.Timedelta(days=1)
    calibration_start = history_end - pd.Timedelta(weeks=params.calibration_weeks) + pd.Timedelta(days=1)
    fit_meetings = dates[dates < calibration_start]
    if len(fit_meetings) < 10 or (dates >= test_start).sum() < 2:
        raise UserError(
            f"too little history with known outcomes for a temporal split: {len(dates)} meetings from "
            f"{dates.min():%Y-%m-%d} to {test_end:%Y-%m-%d}; the model learns only from outcomes known before the "
            f"{params.test_weeks} test weeks, calibrates on the last {params.calibration_weeks} weeks of those, and needs "
            "at least 10 meetings before that (params: train.test_weeks, train.calibration_weeks)"
        )
    return Split(dates.min(), calibration_start, history_end, test_start, test_end)


def query_groups(rows: pd.DataFrame | pd.Series) -> np.ndarray:
    """LightGBM group sizes, one query per regional meeting, for rows sorted by (meeting_date, region).

    `rows` has `meeting_date` and optionally `region` (a Series of dates is one region).
    """
    frame = rows.to_frame("meeting_date") if isinstance(rows, pd.Series) else rows
    codes = meeting_codes(frame)
    if len(codes) and (codes[1:] < codes[:-1]).any():
        raise ValueError("rows must be sorted by meeting date, then region, before building query groups")
    _, sizes = np.unique(codes, return_counts=True)
    assert sizes.sum() == len(codes)
    return sizes


def sort_for_ranking(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort rows stably by regional meeting, then by pair keys, so training is deterministic."""
    keys = ["meeting_date", REGION, "dwelling_id", "client_id"] if REGION in frame.columns else list(PAIR_KEYS)
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


SELF_RELIANCE = frozenset((*ZRM_DOMAINS, "zrm_mean", "zrm_min"))


def _lgb_params(params: TrainParams, objective: str) -> dict:
    p = params.lgbm
    out = {
        "objective": objective,
        "num_leaves": p.num_leaves,
        "learning_rate": p.learning_rate,
        "min_data_in_leaf": p.min_data_in_leaf,
        "feature_fraction": p.feature_fraction,
        "bagging_fraction": p.bagging_fraction,
        "bagging_freq": p.bagging_freq,
        "lambda_l2": p.lambda_l2,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    if p.monotone_self_reliance:
        out["monotone_constraints"] = [1 if f in SELF_RELIANCE else 0 for f in FEATURE_NAMES]
        out["monotone_constraints_method"] = "advanced"
    if objective != "binary":
        out["label_gain"] = list(params.label_gain)
        out["eval_at"] = [5, 10]
    return out


def fit_prior(rows: pd.DataFrame, weights: dict[str, float]) -> LinearPrior | None:
    """The linear rule `weights` rescaled to log-odds of a sustained tenancy on `rows` (None without weights).

    Only a slope and an intercept are learned (logistic regression of `sustained` on
    the rule's score), so the rule keeps its relative weights and signs; a rule that
    predicts the wrong way on these rows (slope <= 0) is refused rather than flipped.
    """
    if not weights:
        return None
    rule = LinearPrior(coef=dict(weights), intercept=0.0, mean={}).score(rows)
    y = rows["sustained"].astype(int).to_numpy()
    if len(np.unique(y)) < 2:
        raise UserError("the training weeks hold only one outcome class: the prior cannot be scaled")
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(rule.reshape(-1, 1), y)
    slope = float(lr.coef_[0, 0])
    if not slope > 0:
        raise UserError(
            f"params: train.prior_weights: on the {len(rows)} training placements a higher rule score goes with "
            f"fewer sustained tenancies (slope {slope:.3g}); check the weights' signs, or set `prior_weights: {{}}` "
            "to train without a prior"
        )
    return LinearPrior(
        coef={f: slope * w for f, w in weights.items()},
        intercept=float(lr.intercept_[0]),
        mean={f: float(rows[f].mean()) for f in weights},
    )


def fit_learned_prior(
    rows: pd.DataFrame, features: tuple[str, ...], C: float, seed: int, rule: dict[str, float] | None = None
) -> LinearPrior:
    """An L2 logistic regression of `sustained` on `features` (standardised), as a LinearPrior on raw features.

    Learns how much each client, match and history feature moves the log-odds, so the
    trees only add what a linear score cannot (thresholds, interactions no feature names).
    With `rule` (feature -> weight), the rule's score is one more input: one weight carries
    the whole rule, so the L2 penalty shrinks towards the rule rather than towards nothing.
    """
    y = rows["sustained"].astype(int).to_numpy()
    if len(np.unique(y)) < 2:
        raise UserError("the training weeks hold only one outcome class: the prior cannot be learned")
    used = list(features)
    frame = rows
    if rule:
        frame = rows.assign(**{RULE_INPUT: LinearPrior(coef=dict(rule), intercept=0.0, mean={}).score(rows)})
        used.append(RULE_INPUT)
    while True:
        X = frame[used].to_numpy(dtype=float)
        scaler = StandardScaler().fit(X)
        scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        lr = LogisticRegression(C=C, max_iter=5000, random_state=seed).fit((X - scaler.mean_) / scale, y)
        coef = lr.coef_[0] / scale
        # Like the trees (monotone_self_reliance), a higher ZRM score may never lower the chance:
        # a self-reliance feature the regression gives a negative weight (collinearity) is left out.
        wrong = [f for f, c in zip(used, coef, strict=True) if c < 0 and (f in SELF_RELIANCE or f == RULE_INPUT)]
        if not wrong:
            break
        used = [f for f in used if f not in wrong]
    weights = dict(zip(used, coef, strict=True))
    means = dict(zip(used, scaler.mean_, strict=True))
    intercept = float(lr.intercept_[0] - np.sum(coef * scaler.mean_))
    rule_weight = weights.pop(RULE_INPUT, 0.0)
    means.pop(RULE_INPUT, None)
    for f, w in (rule or {}).items():  # the rule's share goes back onto its features
        weights[f] = weights.get(f, 0.0) + rule_weight * w
        means[f] = float(rows[f].mean())
    return LinearPrior(
        coef={f: float(c) for f, c in weights.items()},
        intercept=intercept,
        mean={f: float(m) for f, m in means.items()},
    )


def prior_for(rows: pd.DataFrame, params: TrainParams) -> LinearPrior | None:
    """The prior `params` asks for, fitted on `rows` (see TrainParams.prior_kind)."""
    if params.prior_kind in ("logistic", "rule_logistic"):
        rule = params.prior_weights if params.prior_kind == "rule_logistic" else None
        return fit_learned_prior(rows, params.prior_features(), params.prior_C, params.seed, rule)
    if params.prior_kind == "none":
        return None
    return fit_prior(rows, params.prior_weights)


def fit_nuisance_head(rows: pd.DataFrame, params: TrainParams) -> LinearPrior | None:
    """log E[label gain | sustained] as a linear function of `params.nuisance_terms`, or None without terms.

    Fitted on the sustained placements of `rows` only (a failed tenancy has gain 0 whatever its
    reports): a Poisson GLM (log link, L2 `nuisance_alpha` on standardised terms) of the gain of the
    placement's grade (`label_gain`: serious nuisance < minor nuisance < clean). Its exponent is the
    expected gain given that the tenancy is sustained, so P(sustained) x exp(head) is the expected
    gain NDCG counts, and the head's SHAP values are exact (coef x (x - mean)). Nuisance reports
    depend on neighbours reporting (features/labels.py): the head learns that bias too.
    """
    terms = [f for f in FEATURE_NAMES if f in params.nuisance_terms]
    if not terms:
        return None
    rows = sort_for_ranking(rows)
    kept = rows[rows["sustained"].astype(int) == 1]
    if len(kept) < 2:
        raise UserError(
            f"the nuisance head (train.nuisance_terms) needs sustained placements to learn from; found {len(kept)}"
        )
    gain = np.asarray(params.label_gain, dtype=float)[kept["grade"].astype(int).to_numpy()]
    X = kept[terms].to_numpy(dtype=float)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[std == 0] = 1.0
    glm = PoissonRegressor(alpha=params.nuisance_alpha, max_iter=1000).fit((X - mean) / std, gain)
    coef = glm.coef_ / std
    return LinearPrior(
        coef={f: float(c) for f, c in zip(terms, coef, strict=True)},
        intercept=float(glm.intercept_ - np.dot(coef, mean)),
        mean={f: float(m) for f, m in zip(terms, mean, strict=True)},
    )


def fit_booster(
    rows: pd.DataFrame, params: TrainParams, objective: str, prior: LinearPrior | None = None
) -> lgb.Booster:
    """Fit LightGBM on placement rows (features + `grade` + `sustained`), sorted by meeting, boosted from `prior`."""
    rows = sort_for_ranking(rows)
    X = rows[list(FEATURE_NAMES)].to_numpy(dtype=float)
    init = None if prior is None else prior.score(rows)
    if objective == "binary":
        data = lgb.Dataset(
            X,
            label=rows["sustained"].astype(int).to_numpy(),
            init_score=init,
            feature_name=list(FEATURE_NAMES),
            free_raw_data=False,
        )
    else:
        data = lgb.Dataset(
            X,
            label=rows["grade"].astype(int).to_numpy(),
            group=query_groups(rows),
            init_score=init,
            feature_name=list(FEATURE_NAMES),
            free_raw_data=False,
        )
    settings = _lgb_params(params, objective)
    rounds = params.lgbm.num_boost_round
    if rounds == 0:  # the prior alone: LightGBM needs a round, so one tree that cannot split (its output is 0)
        settings["min_data_in_leaf"], rounds = len(rows) + 1, 1
    return lgb.train(settings, data, num_boost_round=rounds)


def fit_calibrated(
    fit_rows: pd.DataFrame, cal_rows: pd.DataFrame, params: TrainParams, objective: str
) -> tuple[LinearPrior | None, lgb.Booster, PlattCalibration]:
    """The training pipeline: prior and trees on the fit rows, Platt scaling on the calibration rows, then the refit.

    With `params.refit_on_calibration_weeks` the prior and trees are fitted again on both
    (sorted by meeting) and keep the calibration of the trees that never saw the calibration rows.
    `train_bundle` and the intervals' bootstrap copies (models/interval_fit.py) both fit through here.
    """
    prior = prior_for(fit_rows, params)
    booster = fit_booster(fit_rows, params, objective, prior)
    cal_scores = np.asarray(booster.predict(cal_rows[list(FEATURE_NAMES)].to_numpy(dtype=float), raw_score=True))
    if prior is not None:
        cal_scores = cal_scores + prior.score(cal_rows)
    calibration = PlattCalibration.fit(cal_scores, cal_rows["sustained"].astype(int).to_numpy())
    if params.refit_on_calibration_weeks:
        both = sort_for_ranking(pd.concat([fit_rows, cal_rows], ignore_index=True))
        prior = prior_for(both, params)
        booster = fit_booster(both, params, objective, prior)
    return prior, booster, calibration


def train_bundle(
    rows: pd.DataFrame, split: Split, params: TrainParams, objective: str | None = None, metadata: dict | None = None
) -> ModelBundle:
    """Fit on the 'fit' weeks, calibrate on the 'calibration' weeks, optionally refit on both (test weeks untouched)."""
    objective = objective or params.objective
    rows = sort_for_ranking(rows)  # input row order must not change the model or its calibration
    part = split.part(rows)
    fit_rows, cal_rows = rows[part == "fit"], rows[part == "calibration"]
    train_rows = rows[part.isin(["fit", "calibration"])]
    prior, booster, calibration = fit_calibrated(fit_rows, cal_rows, params, objective)
    nuisance = fit_nuisance_head(train_rows if params.refit_on_calibration_weeks else fit_rows, params)
    scale = support_scale_of(train_rows)
    reference = pd.DataFrame(standardise(train_rows, scale), columns=list(SUPPORT_FEATURES))
    meta = {
        "objective": objective,
        "train_start": f"{split.train_start:%Y-%m-%d}",
        "calibration_start": f"{split.calibration_start:%Y-%m-%d}",
        "train_end": f"{split.history_end:%Y-%m-%d}",
        "test_start": f"{split.test_start:%Y-%m-%d}",
        "test_end": f"{split.test_end:%Y-%m-%d}",
        "n_fit": int(len(fit_rows)),
        "n_calibration": int(len(cal_rows)),
        "n_trees_fitted_on": int(len(train_rows) if params.refit_on_calibration_weeks else len(fit_rows)),
        "refit_on_calibration_weeks": bool(params.refit_on_calibration_weeks),
        "prior": _describe_prior(params),
        "capacity": _describe_capacity(params),
        "ranking": (
            f"expected label gain: chance x nuisance head on {len(nuisance.coef)} terms"
            if nuisance is not None
            else "chance of a sustained tenancy"
        ),
        **(metadata or {}),
    }
    return ModelBundle(
        booster=booster,
        feature_names=tuple(FEATURE_NAMES),
        objective=objective,
        calibration=calibration,
        threshold=params.success_threshold,
        support_reference=reference,
        support_scale=scale,
        support_radius=params.support_radius,
        metadata=meta,
        prior=prior,
        nuisance=nuisance,
    )


def _describe_capacity(params: TrainParams) -> str:
    """The model's size in words: trees after the prior, the prior's strength, the head's penalty, and how chosen."""
    rounds = params.lgbm.num_boost_round
    trees = (
        "no trees after the prior (the prior alone)"
        if rounds == 0
        else f"{rounds} boosted trees of {params.lgbm.num_leaves} leaves after the prior"
    )
    parts = [trees]
    if params.prior_kind in ("logistic", "rule_logistic"):
        parts.append(f"prior strength C {params.prior_C:g}")
    if params.nuisance_terms:
        parts.append(f"nuisance head penalty {params.nuisance_alpha:g}")
    how = params.capacity_note or "as set in params (not chosen on the data)"
    return f"{', '.join(parts)}; {how}"


def _describe_prior(params: TrainParams) -> str:
    if params.prior_kind in ("logistic", "rule_logistic"):
        rule = " and the profile-fit rule" if params.prior_kind == "rule_logistic" else ""
        inputs = (
            f"{len(params.prior_terms)} named terms"
            if params.prior_terms
            else f"the {', '.join(params.prior_groups)} features"
        )
        return f"logistic regression (C={params.prior_C:g}) on {inputs}{rule}"
    if params.prior_kind == "none":
        return "none"
    return ", ".join(f"{w:+g} {f}" for f, w in params.prior_weights.items()) or "none"
