"""Suggestions for one meeting, in memory: eligibility, features, scores, TreeSHAP, reasons, the plan, the sheet.

Used by `matchwijs recommend` (which writes the files) and the meeting app (which shows them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.config import section
from features.contract import DEFAULT_REGION, REGION
from features.errors import UserError
from features.load import Dataset, region_of
from features.pairs import FeatureParams, build_pair_features, meeting_pairs
from features.rules import PassendToewijzen
from models.bundle import ModelBundle
from models.contributions import explanations_frame
from planning.assignment import AssignmentParams, client_outcomes
from planning.eligibility import EligibilityParams, apply_eligibility, unverified_amounts
from planning.priority import describe_policy, plan_policy, policy_clients, waiting_weeks
from reports.meeting import MeetingSheet, render_meeting
from reports.reasons import ExplainParams, reasons

RECOMMENDATION_COLUMNS = [
    "meeting_date",
    "dwelling_id",
    "client_id",
    "rank",
    "score",
    "base_value",
    "reasons",
    "p_sustained",
    "support",
    "low_support",
    "planned",
    "waiting_weeks",
    "in_pool",
]


ASSIGNMENT_COLUMNS = [
    "dwelling_id",
    "client_id",
    "score",
    "p_sustained",
    "rank",
    "complex_id",
    "best_dwelling_id",
    "best_p_sustained",
    "p_change",
    "better_or_worse_off",
    "meeting_date",
    "waiting_weeks",
    "why",
]


# Added after p_sustained (recommendations.csv) and p_sustained (assignment.csv) when the model has intervals
# (models/intervals.py): the range that holds the pair's true chance for params intervals.coverage of pairs.
INTERVAL_COLUMNS = ["chance_low", "chance_high"]


def with_intervals(columns: list[str], frame: pd.DataFrame) -> list[str]:
    """`columns` with chance_low, chance_high right after p_sustained when `frame` has them."""
    if not set(INTERVAL_COLUMNS) <= set(frame.columns):
        return columns
    at = columns.index("p_sustained") + 1
    return [*columns[:at], *INTERVAL_COLUMNS, *columns[at:]]


EXCLUDED_COLUMNS = ["dwelling_id", "client_id", "rule", "failed_rules", "detail", "meeting_date"]


ERR_NO_MEETING = "no {what} at meeting {date}. {nearest}"


@dataclass(frozen=True)
class RecommendConfig:
    """The params.yaml sections `recommend` reads."""

    features: FeatureParams
    amounts: PassendToewijzen
    eligibility: EligibilityParams
    assignment: AssignmentParams
    explain: ExplainParams

    @classmethod
    def from_params(cls, params: dict) -> RecommendConfig:
        """The sections features, passend_toewijzen, eligibility, assignment and explain of a loaded params.yaml."""
        return cls(
            features=section(params, "features", FeatureParams),
            amounts=section(params, "passend_toewijzen", PassendToewijzen),
            eligibility=section(params, "eligibility", EligibilityParams),
            assignment=section(params, "assignment", AssignmentParams),
            explain=section(params, "explain", ExplainParams),
        )


@dataclass
class MeetingOutputs:
    """The five outputs of one meeting, in memory, plus warnings, a summary line and stage timings."""

    meeting_date: pd.Timestamp
    recommendations: pd.DataFrame
    explanations: pd.DataFrame
    assignment: pd.DataFrame
    excluded: pd.DataFrame
    html: str
    warnings: list[str] = field(default_factory=list)
    summary: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    contributions: pd.DataFrame | None = None  # TreeSHAP per recommendation row (wide, in recommendations' order)


def latest_meeting(ds: Dataset) -> pd.Timestamp:
    """The latest meeting date that has both vacancies and candidates."""
    both = set(ds.vacancies["meeting_date"]) & set(ds.candidates["meeting_date"])
    if not both:
        raise UserError("the dataset has no meeting with both vacancies and candidates")
    return max(both)


def check_meeting(ds: Dataset, meeting_date: pd.Timestamp) -> None:
    """UserError naming the date and the nearest usable meeting dates when the meeting has no vacancies or candidates."""

    vac = pd.DatetimeIndex(ds.vacancies["meeting_date"].unique())
    cand = pd.DatetimeIndex(ds.candidates["meeting_date"].unique())
    has_vac, has_cand = meeting_date in vac, meeting_date in cand
    if has_vac and has_cand:
        return
    what = (
        "vacancies and no candidates" if not (has_vac or has_cand) else ("vacancies" if not has_vac else "candidates")
    )
    usable = vac.intersection(cand).sort_values()
    if len(usable) == 0:
        nearest = "The dataset has no meeting with both vacancies and candidates."
    else:
        before, after = usable[usable < meeting_date], usable[usable > meeting_date]
        options = []
        if len(before):
            options.append(f"{before[-1]:%Y-%m-%d} (before)")
        if len(after):
            options.append(f"{after[0]:%Y-%m-%d} (after)")
        nearest = (
            f"Nearest meeting dates with vacancies and candidates: {', '.join(options)} "
            f"(the dataset has {len(usable)}, from {usable[0]:%Y-%m-%d} to {usable[-1]:%Y-%m-%d})."
        )
    raise UserError(ERR_NO_MEETING.format(what=what, date=f"{meeting_date:%Y-%m-%d}", nearest=nearest))


def _homes(ds: Dataset, dwelling_ids) -> pd.DataFrame:
    nbh = ds.neighbourhoods.rename(columns={"name": "neighbourhood"})
    homes = ds.dwellings[ds.dwellings["dwelling_id"].isin(dwelling_ids)].merge(nbh, on="neighbourhood_id", how="left")
    return homes.sort_values("dwelling_id", kind="stable").reset_index(drop=True)


def _context(ds: Dataset, pairs: pd.DataFrame) -> pd.DataFrame:
    """Names the reasons mention: the client's care provider and network district, the home's district."""

    homes = ds.dwellings.set_index("dwelling_id")["neighbourhood_id"].map(
        ds.neighbourhoods.set_index("neighbourhood_id")["district"]
    )
    clients = ds.clients.set_index("client_id")
    return pd.DataFrame(
        {
            "care_provider": clients["care_provider"].reindex(pairs["client_id"].to_numpy()).to_numpy(),
            "network_district": clients["network_district"].reindex(pairs["client_id"].to_numpy()).to_numpy(),
            "district": homes.reindex(pairs["dwelling_id"].to_numpy()).to_numpy(),
        },
        index=pairs.index,
    )


def meeting_outputs(
    ds: Dataset,
    meeting_date: pd.Timestamp,
    bundle: ModelBundle,
    cfg: RecommendConfig,
    *,
    lang: str = "en",
    complex_cap: int | None = None,
    model_label: str = "",
    sheet: bool = True,
    explain_long: bool = True,
) -> MeetingOutputs:
    """Everything `recommend` writes for one meeting, computed in memory.

    Args:
        ds: the validated dataset.
        meeting_date: a meeting with vacancies and candidates (see `check_meeting`).
        bundle: the ModelBundle to score and explain with.
        cfg: params (see `load_config`).
        lang: "en" or "nl" for reasons, exclusion details and the sheet.
        complex_cap: overrides params.yaml assignment.complex_cap when given.
        model_label: how the sheet names the model.
        sheet: render the meeting sheet's HTML (False: `html` is "", for the meeting app, which has its own pages).
        explain_long: build `explanations`, the long table of explanations.csv (False: an empty table, for
            the meeting app, which reads the wide `contributions`).
    """

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    check_meeting(ds, meeting_date)
    warnings = unverified_amounts([meeting_date.year], cfg.amounts, lang=lang)
    pairs = meeting_pairs(ds, meeting_date)
    eligible, excluded = apply_eligibility(ds, pairs, cfg.eligibility, cfg.amounts, lang=lang)
    eligible = eligible.reset_index(drop=True)
    lap("eligibility")

    X = build_pair_features(ds, eligible, params=cfg.features, rules=cfg.amounts)
    lap("features")
    if len(X):
        logodds = bundle.logodds(X)
        score = bundle.score(X, logodds=logodds)  # what ranks the candidates (models/bundle.py)
        contrib, base = bundle.contributions(X)
        support = bundle.support_counts(X)
    else:
        logodds, score, base, support = np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)
        contrib = pd.DataFrame(columns=list(bundle.feature_names), dtype=float)
    p = bundle.proba(logodds=logodds)
    bounds = bundle.chance_intervals(X, p) if len(X) else None
    lap("score_shap_support")

    recs = eligible[["meeting_date", "dwelling_id", "client_id"]].copy()
    recs[REGION] = region_of(eligible).to_numpy()  # a meeting is a region on a date: one plan per region
    recs["score"], recs["base_value"], recs["p_sustained"] = score, base, p
    if bundle.intervals is not None:
        recs["chance_low"], recs["chance_high"] = bounds if bounds is not None else (np.zeros(0), np.zeros(0))
    recs["support"] = support.astype(int)
    recs["low_support"] = recs["support"] < cfg.explain.low_support_below
    recs = recs.sort_values(["dwelling_id", "score", "client_id"], ascending=[True, False, True], kind="stable")
    recs["rank"] = recs.groupby("dwelling_id", sort=False).cumcount() + 1
    X_ranked, contrib_ranked = X.loc[recs.index], contrib.loc[recs.index]  # rows in recommendation order, once
    recs["reasons"] = reasons(X_ranked, contrib_ranked, context=_context(ds, recs), lang=lang, params=cfg.explain)
    lap("reasons")

    rows = slice(None) if explain_long else slice(0)  # the app reads the wide contributions instead
    explanations = explanations_frame(recs.iloc[rows], X_ranked.iloc[rows], contrib_ranked.iloc[rows])
    lap("explanations")

    cap = cfg.assignment.complex_cap if complex_cap is None else complex_cap
    complexes = ds.dwellings.set_index("dwelling_id")["complex_id"]
    with_complex = recs.assign(complex_id=recs["dwelling_id"].map(complexes).to_numpy())
    policy = dataclasses.replace(cfg.assignment, complex_cap=cap)
    waiting = waiting_weeks(ds, with_complex)
    pool = policy_clients(with_complex, waiting, policy, benefit="p_sustained")
    plan = plan_policy(with_complex, waiting, policy, benefit="p_sustained")
    outcomes = client_outcomes(with_complex, plan, benefit="p_sustained", tolerance=cfg.assignment.no_real_difference)
    recs["waiting_weeks"] = waiting.round(1)
    recs["in_pool"] = recs["client_id"].isin(pool).to_numpy(np.bool_)
    per_client = outcomes.set_index("client_id")
    plan["best_dwelling_id"] = plan["client_id"].map(per_client["best_dwelling_id"])
    plan["best_p_sustained"] = plan["client_id"].map(per_client["best_benefit"])
    plan["p_change"] = plan["client_id"].map(per_client["change"])
    plan["better_or_worse_off"] = plan["client_id"].map(per_client["status"])
    planned = pd.MultiIndex.from_frame(plan[["dwelling_id", "client_id"]])
    recs["planned"] = pd.MultiIndex.from_frame(recs[["dwelling_id", "client_id"]]).isin(planned)
    if "chance_low" in recs.columns:
        keyed = recs.set_index(["dwelling_id", "client_id"])
        at = pd.MultiIndex.from_frame(plan[["dwelling_id", "client_id"]])
        for col in INTERVAL_COLUMNS:
            plan[col] = keyed[col].reindex(at).to_numpy()
    plan["waiting_weeks"] = plan["client_id"].map(
        recs.drop_duplicates("client_id").set_index("client_id")["waiting_weeks"]
    )
    plan["why"] = why_this_client(plan, recs, lang=lang)
    warnings.extend(empty_homes(plan, recs, lang=lang))
    lap("plan")

    unfilled = sorted(
        set(ds.vacancies.loc[ds.vacancies["meeting_date"] == meeting_date, "dwelling_id"]) - set(recs["dwelling_id"])
    )
    if unfilled:
        shown = ", ".join(unfilled[:10]) + (f" and {len(unfilled) - 10} more" if len(unfilled) > 10 else "")
        warnings.append(
            f"{len(unfilled)} home(s) without any eligible candidate: {shown}"
            if lang == "en"
            else f"{len(unfilled)} woning(en) zonder passende kandidaat: {shown}"
        )
    n_candidates = int((ds.candidates["meeting_date"] == meeting_date).sum())
    meeting_sheet = MeetingSheet(
        meeting_date=meeting_date,
        homes=_homes(ds, pairs["dwelling_id"].unique()),
        recommendations=recs,
        contributions=contrib_ranked,
        assignment=plan,
        client_outcomes=outcomes,
        excluded=excluded,
        n_candidates=n_candidates,
        warnings=warnings,
        dataset=ds.name or ds.path.name,
        as_of=ds.as_of,
        model=model_label or _model_label(bundle),
        made=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        no_real_difference=cfg.assignment.no_real_difference,
        policy=describe_policy(policy),
        interval_coverage=None if bundle.intervals is None else bundle.intervals.coverage,
    )
    html = render_meeting(meeting_sheet, lang=lang, params=cfg.explain) if sheet else ""
    lap("sheet")

    day = f"{meeting_date:%Y-%m-%d}"
    regional = [REGION] if ds.regions != [DEFAULT_REGION] else []  # data with named regions: a region column
    recs = recs.assign(meeting_date=day)[with_intervals(RECOMMENDATION_COLUMNS, recs) + regional].reset_index(drop=True)
    plan = plan.assign(meeting_date=day)[with_intervals(ASSIGNMENT_COLUMNS, plan) + regional]
    excluded = excluded.assign(meeting_date=day).sort_values(["dwelling_id", "client_id"], kind="stable")[
        EXCLUDED_COLUMNS
    ]
    placed = len(plan)
    summary = (
        f"meeting {day}: {len(pairs['dwelling_id'].unique())} homes, {n_candidates} candidates; "
        f"{len(recs)} eligible pairs, {len(excluded)} excluded; plan places {placed}; "
        f"{int(recs['low_support'].sum())} low-support suggestions"
    )
    contributions = contrib_ranked.reset_index(drop=True)
    return MeetingOutputs(
        meeting_date, recs, explanations, plan, excluded, html, warnings, summary, timings, contributions
    )


WHY = {
    "en": {
        "first": "the home's #1",
        "elsewhere": "#{rank} here; the #1 ({client}) is planned for {home}",
        "not_pool": "#{rank} here; the #1 ({client}, waiting {wait} weeks) is not in the policy's pool this week",
        "in_pool": "#{rank} here; the #1 ({client}) is in the pool, but the plan places more sustained tenancies in total without them",
    },
    "nl": {
        "first": "de #1 voor deze woning",
        "elsewhere": "#{rank} hier; de #1 ({client}) is gepland voor {home}",
        "not_pool": "#{rank} hier; de #1 ({client}, {wait} weken wachtend) zit deze week niet in de pool van het beleid",
        "in_pool": "#{rank} hier; de #1 ({client}) zit in de pool, maar het plan geeft zonder hen meer duurzame huurcontracten",
    },
}


EMPTY_HOME = {
    "en": "{home}: no client proposed although {n} eligible; every one of them is planned for another home or outside the policy's pool",
    "nl": "{home}: geen klant voorgesteld hoewel {n} passend; ieder van hen is gepland voor een andere woning of zit niet in de pool van het beleid",
}


def why_this_client(plan: pd.DataFrame, recs: pd.DataFrame, *, lang: str = "en") -> pd.Series:
    """Per planned pair, why this client and not the home's #1: the #1's own planned home, or the policy.

    `recs` needs dwelling_id, client_id, rank, waiting_weeks and in_pool; `plan` dwelling_id, client_id, rank.
    """
    t = WHY[lang]
    first = recs[recs["rank"] == 1].set_index("dwelling_id")
    planned_home = plan.set_index("client_id")["dwelling_id"]
    out = []
    for did, cid, rank in plan[["dwelling_id", "client_id", "rank"]].itertuples(index=False):
        top = first.loc[did]
        if top["client_id"] == cid:
            out.append(t["first"])
        elif top["client_id"] in planned_home.index:
            out.append(
                t["elsewhere"].format(rank=int(rank), client=top["client_id"], home=planned_home[top["client_id"]])
            )
        elif not bool(top["in_pool"]):
            wait = f"{float(top['waiting_weeks']):.0f}"
            out.append(t["not_pool"].format(rank=int(rank), client=top["client_id"], wait=wait))
        else:
            out.append(t["in_pool"].format(rank=int(rank), client=top["client_id"]))
    return pd.Series(out, index=plan.index, dtype=object)


def empty_homes(plan: pd.DataFrame, recs: pd.DataFrame, *, lang: str = "en") -> list[str]:
    """One line per home that has eligible candidates but no planned client, saying why."""
    eligible = recs.groupby("dwelling_id")["client_id"].nunique()
    empty = sorted(set(eligible.index) - set(plan["dwelling_id"]))
    return [EMPTY_HOME[lang].format(home=d, n=int(eligible[d])) for d in empty]


def _model_label(bundle: ModelBundle) -> str:
    meta = bundle.metadata or {}
    label = str(meta.get("model_version") or meta.get("name") or f"{bundle.objective} model")
    if meta.get("promoted") is False:
        label += " (a candidate model: not promoted to default, see the training run)"
    return label
