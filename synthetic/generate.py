"""The synthetic-data generator: a weekly matching meeting in Amsterdam, with a documented ground truth.

`generate_dataset(out_dir, cfg)` simulates `cfg.years` of weekly meetings on the
real CBS buurten of Amsterdam: homes fall vacant, clients leaving shelter and
sheltered housing queue, a noisy historical policy places them under the hard
rules, and each tenancy's outcome is drawn from the ground-truth model in
`synthetic.truth`. The dataset follows the data contract; the truth goes
to a separate folder (`truth_dir`), never into the dataset.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml

from features.config import build
from features.contract import TABLES, ZRM_DOMAINS
from features.errors import UserError
from features.outputs import check_output_folder, publishing
from synthetic.decisions import DecisionParams, synthetic_decisions
from synthetic.truth import (
    FORMULA_VERSION,
    HardRules,
    TruthCoefs,
    busy_complex,
    eligible,
    haversine_km,
    severity,
    true_failure_logit,
    true_nuisance_rate,
)
from synthetic.world import (
    CBS_FILE,
    ClientParams,
    DwellingParams,
    NeighbourhoodParams,
    ProviderSpec,
    derive_neighbourhoods,
    make_care_providers,
    make_clients,
    make_dwellings,
)

TRUTH_PAIRS_FILE = "truth.parquet"
TRUTH_PLACEMENTS_FILE = "truth_placements.parquet"
TRUTH_MANIFEST = "truth.yaml"
TRUTH_LATENT_FILE = "truth_latent.parquet"  # only for worlds with an unobserved client severity
NEVER = np.iinfo(np.int64).max // 4  # "never available again", in days
DAYS_PER_YEAR = 365.0
END_NAMES = (
    "failure",
    "voluntary_move",
    "deceased",
    "other",
)  # competing ends; a failure then draws its contract reason
ERR_TRUTH_INSIDE = (
    "the truth folder {truth} must lie outside the dataset folder {out}: the truth never goes into a dataset"
)


@dataclass(frozen=True)
class PolicyParams:
    """The historical meeting: mostly by waiting time, somewhat by fit, with much noise."""

    wait_per_week: float
    quiet_fit: float  # a client needing quiet in a home that is not busy
    network_fit: float  # home in the client's network district
    near_provider: float  # per (support hours / ref) * (km / ref) closer to the care provider
    noise: float  # Gumbel scale


@dataclass(frozen=True)
class EndParams:
    """How and when tenancies end."""

    failure_time_scale_days: float  # failures within the horizon: exponential truncated to the horizon
    later_hazard_factor: float  # failure hazard after the horizon relative to the first year's
    annual_voluntary_move: float
    annual_deceased: float
    annual_other: float
    eviction_intercept: float  # a failure is an eviction (else returned_to_care) with logistic probability
    eviction_finances: float
    eviction_mental_health: float
    relet_days: int  # a home that fell free comes back to the meeting after this many days at the earliest


@dataclass(frozen=True)
class ReportParams:
    """Severity of nuisance reports: serious with logistic probability."""

    serious_intercept: float
    serious_justice: float
    serious_addiction: float


@dataclass(frozen=True)
class GroupEffect:
    """A disparity planted on purpose (for testing the fairness gate); none in the default world.

    The clients whose protected `attribute` (gender or migration_background) equals
    `group` get `failure_logodds` added to the true log-odds that their tenancy fails
    (the truth's p_sustained and the drawn outcomes; the model never sees the attribute),
    and the historical meeting ranks them as if they had waited `meeting_weeks` weeks
    longer (negative: shorter).
    """

    attribute: Literal["gender", "migration_background"]
    group: str
    failure_logodds: float = 0.0
    meeting_weeks: float = 0.0


def group_shifts(protected: pd.DataFrame, effects: tuple[GroupEffect, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per client (rows of `protected`): (added failure log-odds, added meeting weeks) from `effects`."""
    fail, weeks = np.zeros(len(protected)), np.zeros(len(protected))
    for effect in effects:
        member = (protected[effect.attribute].astype(str) == effect.group).to_numpy()
        fail += effect.failure_logodds * member
        weeks += effect.meeting_weeks * member
    return fail, weeks


@dataclass(frozen=True)
class GenerateParams:
    """params.yaml `generate:`; every number the generator uses."""

    seed: int
    name: str
    as_of: str  # extract date (YYYY-MM-DD); the last meeting is the Monday on or before it
    years: float
    weekly_vacancies: float
    weekly_candidates: float
    initial_queue: int
    initial_wait_weeks: float
    weekly_dropout: float
    tenancy_lag_days: tuple[int, int]
    truth_weeks: int
    neighbourhoods: NeighbourhoodParams
    care_providers: tuple[ProviderSpec, ...]
    dwellings: DwellingParams
    clients: ClientParams
    rules: HardRules
    policy: PolicyParams
    truth: TruthCoefs
    ends: EndParams
    nuisance_reports: ReportParams
    group_effects: tuple[GroupEffect, ...] = ()  # planted disparities (GroupEffect); none by default


@dataclass
class _World:
    hoods: pd.DataFrame
    providers: pd.DataFrame
    dwellings: pd.DataFrame
    turnover: np.ndarray
    clients: pd.DataFrame
    protected: pd.DataFrame
    arrival_day: np.ndarray  # days since epoch
    first_meeting: np.ndarray  # index of the first meeting each client attends
    imputed: dict[str, int]
    latent_severity: np.ndarray | None = None  # per client, standard normal; only when the truth uses it


@dataclass
class _History:
    vacancies: list = dataclasses.field(default_factory=list)  # (meeting idx, dwelling idx)
    candidates: list = dataclasses.field(default_factory=list)  # (meeting idx, client idx array)
    placed: list = dataclasses.field(default_factory=list)  # per meeting: dict of arrays
    truth: list = dataclasses.field(default_factory=list)


def meeting_dates(cfg: GenerateParams) -> pd.DatetimeIndex:
    """Weekly Monday meetings over `cfg.years`, the last on or before as_of."""
    as_of = pd.Timestamp(cfg.as_of)
    last = as_of - pd.Timedelta(days=as_of.weekday())
    n = max(1, int(round(cfg.years * 365.25 / 7)))
    return pd.DatetimeIndex(last - pd.to_timedelta(7 * np.arange(n - 1, -1, -1), unit="D"))


def truth_meetings(meetings: pd.DatetimeIndex, cfg: GenerateParams) -> pd.DatetimeIndex:
    """The last `truth_weeks` meetings whose placements' full horizon ends on or before as_of."""
    latest = pd.Timestamp(cfg.as_of) - pd.Timedelta(days=cfg.truth.horizon_days + cfg.tenancy_lag_days[1])
    done = meetings[meetings <= latest]
    return done[-cfg.truth_weeks :] if cfg.truth_weeks > 0 else done[:0]


def _days(dates) -> np.ndarray:
    return pd.DatetimeIndex(dates).to_numpy().astype("datetime64[D]").astype(np.int64)


def _dates(days) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(days, dtype=np.int64).astype("datetime64[D]"))


def _build_world(cfg: GenerateParams, rngs: list[np.random.Generator], meetings: pd.DatetimeIndex) -> _World:
    cbs = pd.read_csv(CBS_FILE, dtype={"buurt_code": str, "wijk_code": str})
    hoods, social_homes, imputed = derive_neighbourhoods(cbs, cfg.neighbourhoods)
    providers = make_care_providers(hoods, cbs["population_total"], cfg.care_providers)
    stock = max(1, int(round(cfg.dwellings.stock_per_weekly_vacancy * cfg.weekly_vacancies)))
    dwellings, turnover = make_dwellings(rngs[0], hoods, social_homes, cfg.dwellings, stock=stock)

    rng = rngs[1]
    meeting_day = _days(meetings)
    initial_wait = np.ceil(rng.exponential(7 * cfg.initial_wait_weeks, size=cfg.initial_queue)).astype(np.int64)
    per_week = rng.poisson(cfg.weekly_candidates, size=len(meetings) - 1)
    first = np.concatenate(
        [np.zeros(cfg.initial_queue, dtype=np.int64), np.repeat(np.arange(1, len(meetings)), per_week)]
    )
    arrival = np.concatenate(
        [
            meeting_day[0] - initial_wait,
            meeting_day[first[cfg.initial_queue :]] - rng.integers(0, 7, size=per_week.sum()),
        ]
    )
    order = np.lexsort((arrival, first))
    first, arrival = first[order], arrival[order]
    population = cbs.groupby("stadsdeel")["population_total"].sum().sort_index()
    clients, protected = make_clients(rng, _dates(arrival), cfg.care_providers, population, cfg.clients)
    return _World(hoods, providers, dwellings, turnover, clients, protected, arrival, first, imputed)


def _arrays(world: _World, cfg: GenerateParams) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Numpy columns of clients and dwellings for the weekly loop, plus the hood x provider distance matrix."""
    hoods, dw, cl = world.hoods, world.dwellings, world.clients
    districts = sorted(hoods["district"].unique())
    code = {d: i for i, d in enumerate(districts)}
    hood_index = pd.Index(hoods["neighbourhood_id"]).get_indexer(dw["neighbourhood_id"])
    D = {
        c: dw[c].to_numpy()
        for c in (
            "rent_eur",
            "floor",
            "has_lift",
            "rooms",
            "shared_entrance",
            "units_in_complex",
            "wheelchair_accessible",
        )
    }
    D["hood"] = hood_index
    D["district"] = hoods["district"].map(code).to_numpy()[hood_index]
    D["nuisance_reports_per_1000"] = hoods["nuisance_reports_per_1000"].to_numpy()[hood_index]
    D["vulnerable_household_share"] = hoods["vulnerable_household_share"].to_numpy()[hood_index]
    D["complex"] = pd.factorize(dw["complex_id"])[0]
    D["busy"] = busy_complex(D, cfg.truth.scales)
    C = {
        c: cl[c].to_numpy()
        for c in (
            *ZRM_DOMAINS,
            "household_size",
            "monthly_income_eur",
            "support_hours_per_week",
            "needs_quiet_surroundings",
            "needs_ground_floor_or_lift",
            "needs_wheelchair_access",
        )
    }
    C["provider"] = pd.Index(world.providers["care_provider"]).get_indexer(cl["care_provider"])
    C["network"] = cl["network_district"].map(code).fillna(-1).to_numpy(dtype=np.int64)
    C["avoid"] = cl["avoid_district"].map(code).fillna(-1).to_numpy(dtype=np.int64)
    distance = haversine_km(
        hoods["lat"].to_numpy()[:, None],
        hoods["lon"].to_numpy()[:, None],
        world.providers["lat"].to_numpy()[None, :],
        world.providers["lon"].to_numpy()[None, :],
    )
    return C, D, distance


def _pairs(C: dict, D: dict, distance: np.ndarray, cand: np.ndarray, vac: np.ndarray) -> dict[str, np.ndarray]:
    """Pair columns for client and dwelling index arrays that broadcast (a grid, or two equal-length lists)."""
    c, v = cand, vac
    frame = {k: C[k][c] for k in C if k not in ("provider", "network", "avoid")}
    frame.update({k: D[k][v] for k in D if k not in ("hood", "district", "complex", "busy")})
    frame["distance_km"] = distance[D["hood"][v], C["provider"][c]]
    frame["own_network_district"] = C["network"][c] == D["district"][v]
    frame["avoid_match"] = C["avoid"][c] == D["district"][v]
    frame["busy"] = D["busy"][v]
    return frame


def _concentration_at(day, complexes, hist_complex, hist_start, window: int) -> np.ndarray:
    """Placements into each complex with tenancy_start in [day - window, day); `day` may be per complex."""
    day = np.broadcast_to(np.asarray(day), np.shape(complexes))
    hit = (
        (hist_complex[None, :] == np.asarray(complexes)[:, None])
        & (hist_start[None, :] < day[:, None])
        & (hist_start[None, :] >= day[:, None] - window)
    )
    return hit.sum(axis=1).astype(float)


def _go_through_vacancies(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The meeting takes the vacancies in order; each goes to the best-scoring eligible (finite) candidate left."""
    taken = np.zeros(score.shape[1], dtype=bool)
    chosen_v, chosen_c = [], []
    for i in range(score.shape[0]):
        row = np.where(taken, -np.inf, score[i])
        j = int(np.argmax(row)) if row.size else 0
        if row.size and np.isfinite(row[j]):
            taken[j] = True
            chosen_v.append(i)
            chosen_c.append(j)
    return np.asarray(chosen_v, dtype=np.int64), np.asarray(chosen_c, dtype=np.int64)


def _truth_rows(
    coefs: TruthCoefs,
    k: int,
    vac: np.ndarray,
    cand: np.ndarray,
    pair: dict,
    ok: np.ndarray,
    conc: np.ndarray,
    cv: np.ndarray,
    cc: np.ndarray,
    shift: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every (vacancy, candidate) pair of meeting k, vacancy-major, with its true outcome probabilities.

    `shift` is each candidate's planted failure log-odds (`GroupEffect`; zeros in the default world).
    """
    frame = dict(pair, concentration_12m=np.broadcast_to(conc[:, None], ok.shape))
    p_sustained = 1.0 / (1.0 + np.exp(true_failure_logit(frame, coefs) + shift[None, :]))
    placed = np.zeros(ok.shape, dtype=bool)
    placed[cv, cc] = True
    return dict(
        meeting=np.full(ok.size, k),
        dwelling=np.repeat(vac, len(cand)),
        client=np.tile(cand, len(vac)),
        eligible=ok.ravel(),
        placed=placed.ravel(),
        p_sustained=np.broadcast_to(p_sustained, ok.shape).ravel(),
        expected_nuisance=np.broadcast_to(true_nuisance_rate(frame, coefs), ok.shape).ravel(),
        concentration_12m=frame["concentration_12m"].ravel(),
        distance_km=np.broadcast_to(pair["distance_km"], ok.shape).ravel(),
    )


def _simulate(
    cfg: GenerateParams,
    world: _World,
    meetings: pd.DatetimeIndex,
    rng: np.random.Generator,
    progress: Callable[[str], None],
) -> tuple[_History, dict]:
    C, D, distance = _arrays(world, cfg)
    if world.latent_severity is not None:
        C["latent_severity"] = world.latent_severity
    p, e, s = cfg.policy, cfg.ends, cfg.truth.scales
    as_of = int(_days([pd.Timestamp(cfg.as_of)])[0])
    meeting_day = _days(meetings)
    truth_idx = set(meetings.get_indexer(truth_meetings(meetings, cfg)).tolist())
    n_clients = len(world.clients)
    state = np.zeros(n_clients, dtype=np.int8)  # 0 not yet arrived, 1 waiting, 2 placed, 3 dropped out
    free_from = np.zeros(len(world.dwellings), dtype=np.int64)
    hist_complex = np.empty(0, dtype=np.int64)
    hist_start = np.empty(0, dtype=np.int64)
    arrived = np.searchsorted(world.first_meeting, np.arange(len(meetings)), side="right")
    years = meetings.year.to_numpy()
    h = _History()
    horizon = cfg.truth.horizon_days
    fail_shift, meeting_weeks = group_shifts(world.protected, cfg.group_effects)
    for k, day in enumerate(meeting_day):
        state[(arrived[k - 1] if k else 0) : arrived[k]] = 1
        cand = np.flatnonzero(state == 1)
        avail = np.flatnonzero(free_from <= day)
        nv = min(int(rng.poisson(cfg.weekly_vacancies)), len(avail))
        w = world.turnover[avail]
        vac = rng.choice(avail, size=nv, replace=False, p=w / w.sum()) if nv else avail[:0]
        free_from[vac] = NEVER
        h.vacancies.append((k, vac))
        h.candidates.append((k, cand))

        pair = _pairs(C, D, distance, cand[None, :], vac[:, None])
        ok = eligible(pair, cfg.rules, years[k])
        wait = (day - world.arrival_day[cand]) / 7.0 + meeting_weeks[cand]
        fit = (
            p.quiet_fit * pair["needs_quiet_surroundings"] * (1.0 - pair["busy"])
            + p.network_fit * pair["own_network_district"]
            - p.near_provider
            * (pair["support_hours_per_week"] / s.support_hours_ref)
            * (pair["distance_km"] / s.distance_km_ref)
        )
        score = p.wait_per_week * wait[None, :] + fit + p.noise * rng.gumbel(size=(len(vac), len(cand)))
        cv, cc = _go_through_vacancies(np.where(ok, score, -np.inf))
        if k in truth_idx and len(vac) and len(cand):
            conc = _concentration_at(day, D["complex"][vac], hist_complex, hist_start, s.concentration_window_days)
            h.truth.append(_truth_rows(cfg.truth, k, vac, cand, pair, ok, conc, cv, cc, fail_shift[cand]))

        pv, pc = vac[cv], cand[cc]
        start = day + rng.integers(cfg.tenancy_lag_days[0], cfg.tenancy_lag_days[1] + 1, size=len(pv))
        recent = hist_start >= day - s.concentration_window_days  # older placements never count again
        hist_complex = np.concatenate([hist_complex[recent], D["complex"][pv]])
        hist_start = np.concatenate([hist_start[recent], start])
        conc = _concentration_at(start, D["complex"][pv], hist_complex, hist_start, s.concentration_window_days)
        frame = dict(_pairs(C, D, distance, pc, pv), concentration_12m=conc)
        logit = true_failure_logit(frame, cfg.truth) + fail_shift[pc]
        p_fail = 1.0 / (1.0 + np.exp(-logit))
        end_day, reason, failed = _draw_ends(rng, p_fail, frame, e, horizon)
        end = start + end_day
        free_from[pv] = np.where(end <= as_of, end + e.relet_days, NEVER)
        state[pc] = 2
        h.placed.append(
            dict(
                meeting=np.full(len(pv), k),
                dwelling=pv,
                client=pc,
                start=start,
                end=end,
                reason=reason,
                failed_within_horizon=failed,
                p_sustained=1.0 - p_fail,
                expected_nuisance=true_nuisance_rate(frame, cfg.truth),
                concentration_12m=conc,
                distance_km=frame["distance_km"],
            )
        )
        waiting = np.flatnonzero(state == 1)
        state[waiting[rng.random(len(waiting)) < cfg.weekly_dropout]] = 3
        if (k + 1) % 52 == 0 or k == len(meetings) - 1:
            progress(
                f"meeting {k + 1}/{len(meetings)} ({meetings[k]:%Y-%m-%d}): {len(cand)} candidates, {len(vac)} vacancies"
            )
    return h, dict(C=C, D=D)


def _draw_ends(rng: np.random.Generator, p_fail: np.ndarray, frame: dict, e: EndParams, horizon: int):
    """Days until the tenancy ends, its contract reason, and the latent failure-within-horizon draw."""
    n = len(p_fail)
    u = rng.random((n, 7))
    failed = u[:, 0] < p_fail
    scale = e.failure_time_scale_days
    first = -scale * np.log1p(-u[:, 1] * (1.0 - np.exp(-horizon / scale)))
    hazard = -np.log1p(-np.minimum(p_fail, 1 - 1e-12)) / horizon * e.later_hazard_factor
    later = horizon - np.log(u[:, 2]) / np.maximum(hazard, 1e-12)
    times = np.column_stack(
        [
            np.where(failed, first, later),
            *(
                -np.log(u[:, 3 + i]) * DAYS_PER_YEAR / -np.log1p(-a)
                for i, a in enumerate((e.annual_voluntary_move, e.annual_deceased, e.annual_other))
            ),
        ]
    )
    which = times.argmin(axis=1)
    days = np.minimum(np.floor(times[np.arange(n), which]), NEVER // 2).astype(np.int64)
    p_evict = 1.0 / (
        1.0
        + np.exp(
            -(
                e.eviction_intercept
                + e.eviction_finances * severity(frame["zrm_finances"])
                + e.eviction_mental_health * severity(frame["zrm_mental_health"])
            )
        )
    )
    failure_reason = np.where(u[:, 6] < p_evict, "eviction", "returned_to_care")
    reason = np.where(which == 0, failure_reason, np.array(END_NAMES, dtype=object)[which])
    return days, reason, failed


def _nuisance_reports(
    rng: np.random.Generator, placements: pd.DataFrame, placed: dict, C: dict, cfg: GenerateParams, as_of: int
) -> pd.DataFrame:
    """Poisson reports at the true rate over the observed part of each tenancy, dates uniform in it."""
    start, end = placed["start"], placed["end"]
    period = np.clip(np.minimum(end, as_of) - start, 0, None)
    observed = start <= as_of
    counts = rng.poisson(np.where(observed, placed["expected_nuisance"] * period / DAYS_PER_YEAR, 0.0))
    row = np.repeat(np.arange(len(start)), counts)
    day = start[row] + np.floor(rng.random(len(row)) * (period[row] + 1)).astype(np.int64)
    day = np.minimum(day, np.minimum(end, as_of)[row])
    r = cfg.nuisance_reports
    client = placed["client"][row]
    p_serious = 1.0 / (
        1.0
        + np.exp(
            -(
                r.serious_intercept
                + r.serious_justice * severity(C["zrm_justice"][client])
                + r.serious_addiction * severity(C["zrm_addiction"][client])
            )
        )
    )
    serious = rng.random(len(row)) < p_serious
    order = np.lexsort((day, row))
    row, day, serious = row[order], day[order], serious[order]
    return pd.DataFrame(
        {
            "report_id": [f"R{i:07d}" for i in range(1, len(row) + 1)],
            "placement_id": placements["placement_id"].to_numpy()[row],
            "report_date": _dates(day),
            "severity": np.where(serious, "serious", "minor"),
        }
    )


def _tables(
    cfg: GenerateParams, world: _World, meetings: pd.DatetimeIndex, h: _History, arrays: dict, rng: np.random.Generator
) -> tuple[dict[str, pd.DataFrame], dict, pd.DataFrame]:
    dw_ids = world.dwellings["dwelling_id"].to_numpy()
    cl_ids = world.clients["client_id"].to_numpy()
    as_of = int(_days([pd.Timestamp(cfg.as_of)])[0])
    vac_k = np.concatenate([np.full(len(v), k) for k, v in h.vacancies])
    vac_d = np.concatenate([v for _, v in h.vacancies])
    cand_k = np.concatenate([np.full(len(c), k) for k, c in h.candidates])
    cand_c = np.concatenate([c for _, c in h.candidates])
    placed = {key: np.concatenate([m[key] for m in h.placed]) for key in h.placed[0]}
    n = len(placed["client"])
    placements = pd.DataFrame(
        {
            "placement_id": [f"P{i:06d}" for i in range(1, n + 1)],
            "client_id": cl_ids[placed["client"]],
            "dwelling_id": dw_ids[placed["dwelling"]],
            "meeting_date": meetings[placed["meeting"]],
            "tenancy_start": _dates(placed["start"]),
        }
    )
    ended = placed["end"] <= as_of
    ends = pd.DataFrame(
        {
            "placement_id": placements["placement_id"].to_numpy()[ended],
            "end_date": _dates(placed["end"][ended]),
            "reason": placed["reason"][ended],
        }
    )
    reports = _nuisance_reports(rng, placements, placed, arrays["C"], cfg, as_of)
    seen = np.zeros(len(cl_ids), dtype=bool)
    seen[cand_c] = True
    tables = {
        "neighbourhoods": world.hoods,
        "care_providers": world.providers,
        "dwellings": world.dwellings,
        "clients": world.clients[seen].reset_index(drop=True),
        "client_protected": world.protected[seen].reset_index(drop=True),
        "vacancies": pd.DataFrame({"meeting_date": meetings[vac_k], "dwelling_id": dw_ids[vac_d]}),
        "candidates": pd.DataFrame({"meeting_date": meetings[cand_k], "client_id": cl_ids[cand_c]}),
        "placements": placements,
        "tenancy_ends": ends,
        "nuisance_reports": reports,
    }
    truth_placements = placements.assign(
        p_sustained=placed["p_sustained"],
        expected_nuisance=placed["expected_nuisance"],
        concentration_12m=placed["concentration_12m"],
        distance_km=placed["distance_km"],
        failed_within_horizon=placed["failed_within_horizon"],
    )
    stats = _base_rates(cfg, placed, tables, as_of)
    return tables, stats, truth_placements


def _base_rates(cfg: GenerateParams, placed: dict, tables: dict, as_of: int) -> dict:
    horizon = cfg.truth.horizon_days
    known = placed["start"] + horizon <= as_of
    failed = np.isin(placed["reason"], ("eviction", "returned_to_care")) & (placed["end"] - placed["start"] < horizon)
    queue = tables["candidates"].groupby("meeting_date").size()
    vac = tables["vacancies"].groupby("meeting_date").size()
    reports = tables["nuisance_reports"]
    return {
        "placements": int(len(placed["start"])),
        "fill_rate": float(len(placed["start"]) / max(len(tables["vacancies"]), 1)),
        "known_outcomes": int(known.sum()),
        "sustained_share": float(1.0 - failed[known].mean()) if known.any() else float("nan"),
        "mean_true_p_sustained": float(placed["p_sustained"].mean()),
        "queue_mean": float(queue.mean()),
        "queue_min": int(queue.min()),
        "queue_max": int(queue.max()),
        "vacancies_per_meeting": float(vac.mean()),
        "nuisance_reports": int(len(reports)),
        "serious_share": float((reports["severity"] == "serious").mean()) if len(reports) else 0.0,
        "placements_with_report": float(
            tables["nuisance_reports"]["placement_id"].nunique() / max(len(placed["start"]), 1)
        ),
    }


def _truth_pairs(cfg: GenerateParams, world: _World, meetings: pd.DatetimeIndex, h: _History) -> pd.DataFrame:
    columns = [
        "meeting_date",
        "dwelling_id",
        "client_id",
        "eligible",
        "placed",
        "p_sustained",
        "expected_nuisance",
        "concentration_12m",
        "distance_km",
    ]
    if not h.truth:
        empty = np.empty(0, dtype=np.int64)
        h = _History(
            truth=[
                dict(
                    meeting=empty,
                    dwelling=empty,
                    client=empty,
                    eligible=empty.astype(bool),
                    placed=empty.astype(bool),
                    **{c: empty.astype(float) for c in columns[5:]},
                )
            ]
        )
    t = {key: np.concatenate([m[key] for m in h.truth]) for key in h.truth[0]}
    return pd.DataFrame(
        {
            "meeting_date": meetings[t["meeting"]],
            "dwelling_id": world.dwellings["dwelling_id"].to_numpy()[t["dwelling"]],
            "client_id": world.clients["client_id"].to_numpy()[t["client"]],
            **{c: t[c] for c in columns[3:]},
        }
    )


def within_client_spread(truth: pd.DataFrame) -> pd.Series:
    """Per (meeting, client) with 2+ eligible homes: best minus worst true p_sustained among them."""
    ok = truth[truth["eligible"].astype(bool).to_numpy()]
    grouped = ok.groupby(["meeting_date", "client_id"])["p_sustained"]
    spread = grouped.max() - grouped.min()
    return spread[grouped.size() >= 2]


def _csv(frame: pd.DataFrame, path: Path) -> None:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_bool_dtype(out[col]):
            out[col] = np.where(out[col], "true", "false")
        elif pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    out.to_csv(path, index=False, lineterminator="\n")


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _write_truth(
    folder: Path,
    cfg: GenerateParams,
    meetings: pd.DatetimeIndex,
    pairs: pd.DataFrame,
    truth_placements: pd.DataFrame,
    spread: pd.Series,
    latent: pd.DataFrame | None = None,
) -> None:
    pairs.to_parquet(folder / TRUTH_PAIRS_FILE, index=False)
    truth_placements.to_parquet(folder / TRUTH_PLACEMENTS_FILE, index=False)
    if latent is not None:
        latent.to_parquet(folder / TRUTH_LATENT_FILE, index=False)
    held_out = sorted(pairs["meeting_date"].unique()) if len(pairs) else []
    files = {
        TRUTH_PAIRS_FILE: "one row per (meeting, vacancy, candidate) at the held-out meetings: meeting_date, dwelling_id, "
        "client_id, eligible (passes every hard rule), placed (the historical policy made this match), p_sustained "
        "(1 - P(failure within horizon)), expected_nuisance (reports per tenancy-year), concentration_12m (as of the "
        "meeting date), distance_km (home to the client's care provider)",
        TRUTH_PLACEMENTS_FILE: "one row per placement: the placements columns plus p_sustained, expected_nuisance, "
        "concentration_12m (as of tenancy_start, among placements decided by that meeting), distance_km, "
        "failed_within_horizon (the latent draw, before competing ends and censoring)",
    }
    if latent is not None:
        files[TRUTH_LATENT_FILE] = (
            "client_id, latent_severity: the unobserved client severity (standard normal; on the failure logit "
            "times truth.failure.latent_severity_sd), never in the dataset"
        )
    manifest = {
        "formula_version": FORMULA_VERSION,
        "seed": cfg.seed,
        "as_of": cfg.as_of,
        "horizon_days": cfg.truth.horizon_days,
        "held_out_meetings": [f"{pd.Timestamp(d):%Y-%m-%d}" for d in held_out],
        "median_within_client_spread": float(spread.median()) if len(spread) else None,
        "files": files,
        "coefficients": dataclasses.asdict(cfg.truth),
    }
    (folder / TRUTH_MANIFEST).write_text(
        yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    (folder / "README.md").write_text(
        f"# Ground truth of a matchwijs synthetic dataset (seed {cfg.seed}, formula {FORMULA_VERSION})\n\n"
        "Kept out of the dataset on purpose: a model never sees it. Evaluation code compares\n"
        "suggestions with the true success probabilities here.\n\n"
        f"- `{TRUTH_PAIRS_FILE}`: {files[TRUTH_PAIRS_FILE]}.\n"
        f"- `{TRUTH_PLACEMENTS_FILE}`: {files[TRUTH_PLACEMENTS_FILE]}.\n"
        f"- `{TRUTH_MANIFEST}`: the formula version, held-out meetings and every coefficient.\n\n"
        "Recompute any pair with `synthetic.truth.truth_pair_inputs` and `true_p_sustained`\n"
        "(coefficients: `synthetic.generate.load_truth_coefs(this folder)`).\n"
        + (
            f"\nPlanted group effects (not in the formula; in `{TRUTH_PAIRS_FILE}` and the outcomes): "
            + "; ".join(str(e) for e in cfg.group_effects)
            + "\n"
            if cfg.group_effects
            else ""
        ),
        encoding="utf-8",
    )


def load_truth_coefs(truth_dir: str | Path) -> TruthCoefs:
    """The truth coefficients a truth folder was generated with (from its truth.yaml)."""
    manifest = yaml.safe_load((Path(truth_dir) / TRUTH_MANIFEST).read_text(encoding="utf-8"))
    return build(TruthCoefs, manifest["coefficients"], "truth.yaml coefficients")


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


def check_outputs(out_dir: str | Path, truth_dir: str | Path | None) -> tuple[Path, Path | None]:
    """The dataset and truth folders as paths, checked before any work: writable, and neither inside the other."""
    out = Path(out_dir)
    truth = Path(truth_dir) if truth_dir is not None else None
    if truth is not None and (_inside(truth, out) or _inside(out, truth)):
        raise UserError(ERR_TRUTH_INSIDE.format(truth=truth, out=out))
    check_output_folder(out)
    if truth is not None:
        check_output_folder(truth, "--truth")
    return out, truth


def generate_dataset(
    out_dir: str | Path,
    cfg: GenerateParams,
    *,
    truth_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    decisions: DecisionParams | None = None,
) -> str:
    """Write a synthetic dataset that follows the contract to `out_dir` (and its truth to `truth_dir`).

    With `decisions` (params.yaml `synthetic_decisions`), a made-up decision log of the
    meetings is added as the optional `decisions` table (`synthetic.decisions`); the other
    tables are the same with or without it.

    Both folders are written next to their destination and renamed into place only
    when complete, so a failure never leaves a half-written dataset.

    Returns:
        A one-line summary: row counts and base rates.
    """
    out, truth = check_outputs(out_dir, truth_dir)
    say = progress or (lambda _msg: None)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4)]
    meetings = meeting_dates(cfg)
    world = _build_world(cfg, rngs, meetings)
    if cfg.truth.failure.latent_severity_sd:
        # its own stream (child 5; decisions use child 4), so the other tables never change with it
        latent_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(6)[5])
        world.latent_severity = latent_rng.standard_normal(len(world.clients))
    say(
        "CBS cells suppressed and imputed (wijk, then stadsdeel, then city median): "
        + ", ".join(f"{col} {n}" for col, n in world.imputed.items() if n)
    )
    say(
        f"world: {len(world.hoods)} neighbourhoods, {len(world.providers)} care providers, "
        f"{len(world.dwellings)} dwellings, {len(world.clients)} clients; {len(meetings)} meetings "
        f"{meetings[0]:%Y-%m-%d}..{meetings[-1]:%Y-%m-%d}"
    )
    history, arrays = _simulate(cfg, world, meetings, rngs[2], say)
    tables, stats, truth_placements = _tables(cfg, world, meetings, history, arrays, rngs[3])
    if decisions is not None:
        rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(5)[4])  # not one the tables use
        tables["decisions"] = synthetic_decisions(
            tables["vacancies"], tables["candidates"], tables["placements"], decisions, rng
        )

    spread = pd.Series(dtype=float)
    with publishing(out) as tmp, publishing(truth, option="--truth") if truth is not None else _nothing() as tmp_truth:
        manifest = {
            "name": cfg.name,
            "description": f"Synthetic matchwijs dataset (seed {cfg.seed}): {len(meetings)} weekly meetings on the real CBS "
            "buurten of Amsterdam; every client, home and outcome is simulated.",
            "as_of": cfg.as_of,
        }
        (tmp / "dataset.yaml").write_text(
            yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        for name, frame in tables.items():
            cols = [c.name for c in TABLES[name].columns if c.name in frame.columns or not c.optional]
            _csv(frame[cols], tmp / f"{name}.csv")
        if tmp_truth is not None:
            pairs = _truth_pairs(cfg, world, meetings, history)
            spread = within_client_spread(pairs)
            latent = (
                None
                if world.latent_severity is None
                else pd.DataFrame(
                    {"client_id": world.clients["client_id"].to_numpy(), "latent_severity": world.latent_severity}
                )
            )
            _write_truth(tmp_truth, cfg, meetings, pairs, truth_placements, spread, latent)
    counts = ", ".join(f"{n} {len(t)}" for n, t in tables.items())
    rates = (
        f"sustained {stats['sustained_share']:.1%} of {stats['known_outcomes']} known outcomes, "
        f"queue {stats['queue_mean']:.0f} ({stats['queue_min']}-{stats['queue_max']}), fill {stats['fill_rate']:.0%}, "
        f"nuisance on {stats['placements_with_report']:.0%} of placements ({stats['serious_share']:.0%} serious)"
    )
    if len(spread):
        rates += f", within-client spread of p_sustained median {spread.median():.3f}"
    return f"wrote {out}: {counts}; {rates}"
