"""Off-policy evaluation: a policy's value estimated from the meeting's logged decisions (doubly robust).

On real data there is no oracle. What the logs hold is, per vacant home h of a
past meeting, its eligible candidates, the client the meeting chose (A_h, or
none) and, once the horizon is over, whether that tenancy was sustained (Y_h).
A target policy pi gives each candidate a probability pi(a|h) of getting the
home (a priority policy's plan on that meeting's candidates: 1 for the planned
client, 0 for the rest). Its value per home is estimated doubly robustly

    V_h = sum_a pi(a|h) q(h,a) + w_h (Y_h - q(h,A_h)),   w_h = min(pi(A_h|h) / p(A_h|h), clip)

with q the outcome model (the ranker's calibrated chance; the held-out weeks
were not used to fit it) and p the propensity of the meeting's choice: a
conditional logit (softmax over the home's candidates, of any number) fitted on
the weeks *before* the held-out period (`fit_choice_model`). The first sum is
the direct method (DM), `w_h Y_h` alone is inverse propensity scoring (IPS). The
DR value is unbiased when either q or p is right. Conventions:

- A home the meeting left empty has Y = 0 and q(none) = 0, so only its DM part
  counts. A home whose logged tenancy has no known outcome yet (censored,
  excluded) is left out of every sum and counted in `homes_unknown`.
- Weights above `clip` are set to `clip` (a bias towards the DM part, in
  exchange for variance); the number of clipped homes is reported.
- Totals are sums over the usable homes of the held-out meetings (expected
  sustained tenancies); per placement = total / sum_h sum_a pi(a|h).
- Intervals: percentile bootstrap over *meetings* (homes of one meeting share
  candidates and a plan, so they are resampled together), q and p held fixed
  (both were fitted outside the held-out weeks).

The choice model is a per-home softmax: it ignores that one client cannot get
two homes of the same meeting. A client placed in another home of the same
meeting is therefore taken out of a home's choice set when fitting and when
computing propensities (the meeting's choice of this home given its other
choices). Features exclude protected attributes (the model's pair features and
the waiting weeks; fairness/guard.py checks the names).

Why not EconML or DoWhy: both estimate effects of a treatment drawn from one
fixed set shared by all units (EconML's DRLearner: T in {0..k-1} with a
propensity classifier over those k labels; DoWhy's propensity estimators: a
binary or fixed categorical treatment). Here the "treatment" of a home is which
of *its own* candidates gets it: a different set, of a different size, per
home, with a deterministic target plan. That is a contextual bandit with
per-context action sets, so the estimator is written here (a few lines of numpy)
and tested against hand-computed cases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field
from scipy import optimize

from features.contract import REGION
from features.errors import UserError
from features.labels import LabelParams, build_labels
from features.load import Dataset
from features.meetings import meeting_codes, with_region
from features.pairs import FeatureParams, all_meeting_pairs, build_pair_features
from features.rules import PassendToewijzen
from planning.assignment import AssignmentParams
from planning.eligibility import EligibilityParams, apply_eligibility
from planning.priority import plan_policy, waiting_weeks

HOME_KEYS = ["meeting_date", "dwelling_id"]
PAIR_KEYS = ["meeting_date", "dwelling_id", "client_id"]
WAITING = "waiting_weeks"
HISTORY = "meeting_history"
ERR_NO_CHOICES = (
    "off-policy evaluation: no home with a logged choice among two or more candidates to fit the meeting's choices on"
)
ERR_COLUMNS = "off-policy evaluation: the logged pairs lack column(s) {missing}"
REQUIRED = ("meeting_date", "dwelling_id", "client_id", "q", "propensity", "target", "logged", "outcome")


@dataclass(frozen=True)
class OpeParams:
    """params.yaml `ope`: weight clipping, the choice model's ridge penalty, the bootstrap."""

    clip: Annotated[float, Field(gt=1.0)]  # importance weights pi/p above this are set to it
    l2: Annotated[float, Field(ge=0.0)]  # ridge penalty of the conditional logit (standardised features)
    resamples: Annotated[int, Field(ge=10)]  # bootstrap resamples over meetings
    level: Annotated[float, Field(gt=0.0, lt=1.0)]  # two-sided interval level
    seed: int
    fit_weeks: Annotated[int, Field(ge=1)] = 26  # meetings before the held-out period the choice model learns from


@dataclass(frozen=True)
class ChoiceModel:
    """A conditional logit of the meeting's choice among a home's candidates (standardised linear utility)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray

    def utility(self, X: pd.DataFrame) -> np.ndarray:
        """Linear utility of each candidate (comparable within a home only)."""
        Z = (X[list(self.features)].to_numpy(dtype=float) - self.mean) / self.scale
        return np.nan_to_num(Z, nan=0.0) @ self.coef

    def propensities(self, X: pd.DataFrame, home: np.ndarray) -> np.ndarray:
        """p(a|h): softmax of the utilities within each home (`home` labels rows of X by home)."""
        return _group_softmax(self.utility(X), _codes(home))


def _codes(home) -> np.ndarray:
    return pd.factorize(pd.Series(home).astype(str), sort=False)[0]


def _group_softmax(u: np.ndarray, codes: np.ndarray) -> np.ndarray:
    n = int(codes.max()) + 1 if len(codes) else 0
    top = np.full(n, -np.inf)
    np.maximum.at(top, codes, u)
    e = np.exp(u - top[codes])
    total = np.bincount(codes, weights=e, minlength=n)
    return e / total[codes]


def fit_choice_model(X: pd.DataFrame, home, chosen, *, l2: float) -> ChoiceModel:
    """Fit a conditional logit: per home, P(chosen = a) = softmax over its candidates of X_a · beta.

    Rows are (home, candidate) pairs; `chosen` marks the candidate the meeting
    placed. Homes without a choice, or with one candidate, carry no information
    and are skipped. Features are standardised; `l2` is a ridge penalty on beta.
    """
    chosen = np.asarray(chosen, dtype=bool)
    codes = _codes(home)
    n_homes = int(codes.max()) + 1 if len(codes) else 0
    has_choice = np.bincount(codes, weights=chosen, minlength=n_homes) == 1
    size = np.bincount(codes, minlength=n_homes)
    keep = (has_choice & (size >= 2))[codes] if len(codes) else np.zeros(0, dtype=bool)
    if not keep.any():
        raise UserError(ERR_NO_CHOICES)
    raw = X.to_numpy(dtype=float)
    mean = np.nanmean(raw[keep], axis=0)
    scale = np.nanstd(raw[keep], axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    Z = np.nan_to_num((raw[keep] - mean) / scale, nan=0.0)
    c = pd.factorize(codes[keep])[0]
    y = chosen[keep]
    n_used = int(y.sum())

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        u = Z @ beta
        p = _group_softmax(u, c)
        top = np.full(c.max() + 1, -np.inf)
        np.maximum.at(top, c, u)
        lse = np.log(np.bincount(c, weights=np.exp(u - top[c]))) + top
        nll = -(u[y].sum() - lse.sum()) / n_used + 0.5 * l2 * beta @ beta
        grad = -(Z[y].sum(axis=0) - (p[:, None] * Z).sum(axis=0)) / n_used + l2 * beta
        return float(nll), grad

    res = optimize.minimize(loss, np.zeros(Z.shape[1]), jac=True, method="L-BFGS-B")
    return ChoiceModel(features=tuple(X.columns), mean=mean, scale=scale, coef=res.x)


@dataclass(frozen=True)
class OpeEstimate:
    """A policy's estimated value: totals (DR, DM, IPS), per placement, the interval, and diagnostics."""

    dr_total: float
    dr_low: float
    dr_high: float
    dm_total: float
    ips_total: float
    placements: float
    dr_per_placement: float
    dr_per_placement_low: float
    dr_per_placement_high: float
    homes: int
    homes_unknown: int
    clipped: int
    max_weight: float

    def as_row(self, prefix: str = "ope_") -> dict[str, float]:
        """Flat columns for a table (`ope_dr_total`, ...)."""
        return {f"{prefix}{k}": float(v) for k, v in self.__dict__.items()}


def dr_terms(pairs: pd.DataFrame, *, clip: float) -> pd.DataFrame:
    """Per home: the DM part, the importance weight, the IPS and DR terms, placements under the target.

    `pairs` has one row per (home, candidate): meeting_date, dwelling_id,
    client_id, q (outcome model), propensity p(a|h), target pi(a|h), logged
    (the meeting's choice) and outcome (Y of the logged row; NaN when unknown,
    ignored on other rows). Homes whose logged choice has an unknown outcome are
    dropped (see the module doc).
    """
    missing = [c for c in REQUIRED if c not in pairs.columns]
    if missing:
        raise UserError(ERR_COLUMNS.format(missing=", ".join(missing)))
    frame = pairs[[*REQUIRED, *([REGION] if REGION in pairs.columns else [])]].copy()
    frame["logged"] = frame["logged"].astype(bool)
    frame["dm"] = frame["target"].to_numpy(dtype=float) * frame["q"].to_numpy(dtype=float)
    logged = frame[frame["logged"]].copy()
    ratio = logged["target"].to_numpy(dtype=float) / logged["propensity"].to_numpy(dtype=float)
    logged["weight"] = np.minimum(ratio, clip)
    logged["clipped"] = ratio > clip
    y = logged["outcome"].to_numpy(dtype=float)
    logged["ips"] = logged["weight"] * y
    logged["correction"] = logged["weight"] * (y - logged["q"].to_numpy(dtype=float))
    logged["unknown"] = np.isnan(y)
    regional = {REGION: (REGION, "first")} if REGION in frame.columns else {}
    homes = (
        frame.groupby(HOME_KEYS, sort=True)
        .agg(dm=("dm", "sum"), placements=("target", "sum"), candidates=("client_id", "size"), **regional)
        .reset_index()
    )
    homes = homes.merge(
        logged[[*HOME_KEYS, "client_id", "weight", "clipped", "ips", "correction", "unknown"]].rename(
            columns={"client_id": "logged_client_id"}
        ),
        on=HOME_KEYS,
        how="left",
    )
    homes["unknown"] = homes["unknown"].eq(True)
    homes["clipped"] = homes["clipped"].eq(True)
    for col in ("weight", "ips", "correction"):
        homes[col] = homes[col].fillna(0.0)
    homes["dr"] = homes["dm"] + homes["correction"]
    return homes


def dr_estimate(pairs: pd.DataFrame, params: OpeParams) -> OpeEstimate:
    """The DR value of the target policy in `pairs` (see `dr_terms`), with a bootstrap interval over meetings."""
    homes = dr_terms(pairs, clip=params.clip)
    unknown = int(homes["unknown"].sum())
    usable = homes[~homes["unknown"]]
    per_meeting = usable.groupby(meeting_codes(usable))[["dr", "placements"]].sum()  # per regional meeting
    dr = per_meeting["dr"].to_numpy()
    placed = per_meeting["placements"].to_numpy()
    total, n_placed = float(dr.sum()), float(placed.sum())
    lo = hi = lo_pp = hi_pp = np.nan
    if len(dr):
        rng = np.random.default_rng(params.seed)
        counts = rng.multinomial(len(dr), np.full(len(dr), 1.0 / len(dr)), size=params.resamples)
        totals, placings = counts @ dr, counts @ placed
        alpha = (1.0 - params.level) / 2.0
        lo, hi = np.quantile(totals, [alpha, 1.0 - alpha])
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = np.where(placings > 0, totals / np.where(placings > 0, placings, 1.0), np.nan)
        if np.isfinite(ratios).any():
            lo_pp, hi_pp = np.nanquantile(ratios, [alpha, 1.0 - alpha])
    return OpeEstimate(
        dr_total=total,
        dr_low=float(lo),
        dr_high=float(hi),
        dm_total=float(usable["dm"].sum()),
        ips_total=float(usable["ips"].sum()),
        placements=n_placed,
        dr_per_placement=total / n_placed if n_placed > 0 else float("nan"),
        dr_per_placement_low=float(lo_pp),
        dr_per_placement_high=float(hi_pp),
        homes=len(usable),
        homes_unknown=unknown,
        clipped=int(usable["clipped"].sum()),
        max_weight=float(usable["weight"].max()) if len(usable) else float("nan"),
    )


def plan_target(pairs: pd.DataFrame, plan: pd.DataFrame) -> np.ndarray:
    """pi(a|h) of a deterministic plan: 1.0 for the planned (home, client) pairs of `pairs`, else 0.0."""
    planned = pd.MultiIndex.from_frame(plan[["meeting_date", "dwelling_id", "client_id"]])
    keys = pd.MultiIndex.from_frame(pairs[["meeting_date", "dwelling_id", "client_id"]])
    return keys.isin(planned).astype(float)


@dataclass(frozen=True)
class LoggedConfig:
    """The params sections the logged pairs are built with (the same rules as `recommend` and `train`)."""

    features: FeatureParams
    amounts: PassendToewijzen
    eligibility: EligibilityParams
    labels: LabelParams


@dataclass(frozen=True)
class Logged:
    """The logged decisions of some meetings: one row per (home, candidate) and its choice-model features.

    `pairs`: meeting_date, dwelling_id, client_id, complex_id, eligible, logged
    (the meeting placed this client here), outcome (sustained 0/1 of the logged
    placement, NaN when unknown or not logged), in_choice_set (False for a client
    the meeting placed in another home that week), waiting_weeks. `X`: the pair
    features plus waiting_weeks, aligned with `pairs`.
    """

    pairs: pd.DataFrame
    X: pd.DataFrame


def logged_decisions(ds: Dataset, meetings, config: LoggedConfig) -> Logged:
    """The eligible pairs of `meetings` plus every logged placement, with outcomes and features (see `Logged`)."""
    candidates = all_meeting_pairs(ds, meetings)
    eligible, _ = apply_eligibility(ds, candidates, config.eligibility, config.amounts)
    placed = ds.placements.loc[ds.placements["meeting_date"].isin(pd.DatetimeIndex(meetings)), PAIR_KEYS]
    labels = build_labels(ds, config.labels)
    outcome = placed.merge(labels[[*PAIR_KEYS, "sustained"]], on=PAIR_KEYS, how="left")
    pairs = (
        pd.concat([eligible[PAIR_KEYS].assign(eligible=True), placed.assign(eligible=False)], ignore_index=True)
        .drop_duplicates(PAIR_KEYS, keep="first")
        .sort_values(PAIR_KEYS, kind="stable")
        .reset_index(drop=True)
    )
    pairs = pairs.merge(
        outcome.assign(logged=True, outcome=outcome["sustained"].astype(float)).drop(columns="sustained"),
        on=PAIR_KEYS,
        how="left",
    )
    pairs["logged"] = pairs["logged"].eq(True)
    pairs = with_region(ds, pairs)
    elsewhere = pairs[["meeting_date", "client_id"]].merge(
        placed.rename(columns={"dwelling_id": "placed_home"}), on=["meeting_date", "client_id"], how="left"
    )["placed_home"]
    pairs["in_choice_set"] = elsewhere.isna().to_numpy() | (
        elsewhere.astype(object).fillna("").to_numpy() == pairs["dwelling_id"].astype(object).to_numpy()
    )
    pairs["complex_id"] = pairs["dwelling_id"].map(ds.dwellings.set_index("dwelling_id")["complex_id"]).to_numpy()
    pairs[WAITING] = waiting_weeks(ds, pairs).to_numpy()
    X = build_pair_features(ds, pairs[PAIR_KEYS], params=config.features, rules=config.amounts)
    X = X.drop(columns=PAIR_KEYS).assign(**{WAITING: pairs[WAITING].to_numpy()})
    return Logged(pairs=pairs, X=X)


def meeting_choice_model(fit: Logged, *, l2: float) -> ChoiceModel:
    """The conditional logit of the meeting's choices, fitted on the choice sets of `fit` (see module doc)."""
    keep = fit.pairs["in_choice_set"].to_numpy()
    homes = fit.pairs["meeting_date"].astype(str) + "|" + fit.pairs["dwelling_id"].astype(str)
    return fit_choice_model(fit.X[keep], homes[keep].to_numpy(), fit.pairs["logged"].to_numpy()[keep], l2=l2)


def evaluation_pairs(logged: Logged, choice: ChoiceModel, q: np.ndarray) -> pd.DataFrame:
    """`logged.pairs` with q (outcome model) and propensity (0 outside the home's choice set) for `dr_estimate`."""
    pairs = logged.pairs.copy()
    pairs["q"] = q
    keep = pairs["in_choice_set"].to_numpy()
    homes = (pairs["meeting_date"].astype(str) + "|" + pairs["dwelling_id"].astype(str)).to_numpy()
    propensity = np.zeros(len(pairs))
    if keep.any():
        propensity[keep] = choice.propensities(logged.X[keep], homes[keep])
    pairs["propensity"] = propensity
    return pairs


def policy_plans(pairs: pd.DataFrame, policies: Mapping[str, AssignmentParams]) -> dict[str, pd.DataFrame]:
    """Each policy's plan at each logged meeting, on that meeting's eligible candidates as they were (benefit q)."""
    eligible = pairs[pairs["eligible"].to_numpy(dtype=bool)].rename(columns={"q": "p_sustained"})
    plans: dict[str, list[pd.DataFrame]] = {name: [] for name in policies}
    for _, meeting in eligible.groupby(meeting_codes(eligible), sort=True):
        for name, params in policies.items():
            plans[name].append(plan_policy(meeting, meeting[WAITING], params, benefit="p_sustained")[PAIR_KEYS])
    empty = pd.DataFrame(columns=PAIR_KEYS)
    return {name: pd.concat(parts, ignore_index=True) if parts else empty for name, parts in plans.items()}


def offpolicy_table(
    pairs: pd.DataFrame,
    plans: Mapping[str, pd.DataFrame],
    params: OpeParams,
    *,
    truth: str | None = None,
) -> pd.DataFrame:
    """One row per policy: the DR estimate (`ope_*` columns) of its plans, and the meeting's observed outcomes.

    With `truth` (a column of `pairs` holding the true chance), `ope_truth_total`
    is the true expected number of sustained tenancies of the policy's plans on
    the same usable homes: what the DR total estimates.
    """
    rows = []
    for name, plan in plans.items():
        target = pairs.assign(target=plan_target(pairs, plan))
        row: dict = {"policy": name, **dr_estimate(target, params).as_row()}
        if truth is not None:
            homes = dr_terms(target, clip=params.clip)
            known = homes.loc[~homes["unknown"], HOME_KEYS]
            ok = pd.MultiIndex.from_frame(target[HOME_KEYS]).isin(pd.MultiIndex.from_frame(known))
            planned = ok & (target["target"].to_numpy() > 0)
            true_p = target[truth].to_numpy(dtype=float)[planned]
            row["ope_truth_total"] = float(np.nansum(true_p))
            row["ope_truth_missing"] = float(np.isnan(true_p).sum())
        rows.append(row)
    observed = pairs[pairs["logged"]]
    known = observed["outcome"].notna()
    rows.append(
        {
            "policy": HISTORY,
            "ope_dr_total": float(observed.loc[known, "outcome"].sum()),
            "ope_placements": float(known.sum()),
            "ope_dr_per_placement": float(observed.loc[known, "outcome"].mean()) if known.any() else np.nan,
            "ope_homes_unknown": float((~known).sum()),
        }
    )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class OffPolicy:
    """Per-policy DR estimates (`table`), the evaluation pairs (q, propensity, targets' inputs) and the choice model."""

    table: pd.DataFrame
    pairs: pd.DataFrame
    choice: ChoiceModel


def fit_meetings_before(ds: Dataset, first, weeks: int) -> pd.DatetimeIndex:
    """The last `weeks` meetings of the dataset before `first` (the choice model's training weeks)."""
    dates = pd.DatetimeIndex(sorted(ds.vacancies["meeting_date"].unique()))
    return dates[dates < pd.Timestamp(first)][-weeks:]


def offpolicy_values(
    ds: Dataset,
    *,
    meetings,
    policies: Mapping[str, AssignmentParams],
    proba: Callable[[pd.DataFrame], np.ndarray],
    config: LoggedConfig,
    params: OpeParams,
    truth: pd.Series | None = None,
) -> OffPolicy:
    """DR estimates of each policy's value on the logged decisions of `meetings` (see the module doc).

    The meeting's choices are learned on the `params.fit_weeks` meetings before
    the first of `meetings`; `proba` is the outcome model on pair features (keys +
    FEATURE_NAMES). `truth` (true chance indexed by meeting_date, dwelling_id,
    client_id as strings) adds `ope_truth_total` per policy.
    """
    meetings = pd.DatetimeIndex(sorted(pd.Timestamp(m) for m in meetings))
    before = fit_meetings_before(ds, meetings[0], params.fit_weeks)
    if len(before) == 0:
        raise UserError(
            f"off-policy evaluation: no meeting before {meetings[0]:%Y-%m-%d} to learn the meeting's choices from"
        )
    choice = meeting_choice_model(logged_decisions(ds, before, config), l2=params.l2)
    logged = logged_decisions(ds, meetings, config)
    features = pd.concat([logged.pairs[PAIR_KEYS], logged.X.drop(columns=[WAITING])], axis=1)
    pairs = evaluation_pairs(logged, choice, np.asarray(proba(features), dtype=float))
    column = None
    if truth is not None:
        keys = pd.MultiIndex.from_frame(pairs[PAIR_KEYS].astype({"dwelling_id": str, "client_id": str}))
        pairs["true_p"] = truth.reindex(keys).to_numpy(dtype=float)
        column = "true_p"
    table = offpolicy_table(pairs, policy_plans(pairs, policies), params, truth=column)
    return OffPolicy(table=table, pairs=pairs, choice=choice)
