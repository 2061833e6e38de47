"""Comparison with the oracle on synthetic data: how much of the achievable gain do suggestions capture?

On the held-out meetings for which the generator wrote its ground truth, every
policy is judged by the *true* chance of a sustained tenancy of what it chooses:

- top-1 per vacancy: the model's first suggestion, the oracle's best eligible
  candidate, a random eligible candidate (its expectation: the mean over the
  eligible candidates), and the client the historical meeting actually placed;
- the meeting-wide plan: the one-to-one plan on the model's calibrated chances,
  the oracle's plan on the true chances, random plans (mean of `random_draws`
  seeded draws), each under the same priority policy (planning/priority.py,
  params `assignment.policy`): with `exact_longest_waiting` the policy alone
  decides who is placed, so model, oracle and random plans place the very same
  clients and differ only in which home each gets (the gain *within* the
  policy); and the historical placements (the meeting chose freely).

`captured_gain = (model − random) / (oracle − random)`, over all held-out meetings.
Only eligible pairs are considered (the same rules as `recommend`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.config import section
from features.contract import DEFAULT_REGION, REGION
from features.errors import UserError
from features.load import Dataset
from features.meetings import meeting_batches, meeting_codes, with_region
from features.pairs import FeatureParams, build_pair_features
from features.rules import PassendToewijzen
from models.bundle import ModelBundle
from models.evaluate import bootstrap_differences
from models.scoring import ProbabilityScorer, Scorer
from planning.assignment import AssignmentParams
from planning.eligibility import EligibilityParams, rule_checks
from planning.priority import plan_meeting, planned_rows, policy_clients

TRUTH_FILE = "truth.parquet"
KEYS = ["meeting_date", "dwelling_id", "client_id"]
BATCH_ROWS = 200_000  # truth pairs scored at once (whole meetings): bounds the features' memory


@dataclass(frozen=True)
class OracleParams:
    """How random policies are drawn for the comparison."""

    random_draws: int
    seed: int


@dataclass
class OracleComparison:
    """Per-policy table (rows: policies), per-meeting detail and a flat summary for MLflow."""

    table: pd.DataFrame
    per_meeting: pd.DataFrame
    summary: dict


def read_truth(truth_dir: str | Path) -> pd.DataFrame:
    """The generator's pair-level truth (meeting_date, dwelling_id, client_id, placed, p_sustained, ...)."""
    return _truth_frame(pq.read_table(_truth_file(truth_dir)))


def _truth_file(truth_dir: str | Path) -> Path:
    file = Path(truth_dir) / TRUTH_FILE
    if not file.is_file():
        raise UserError(f"{file} does not exist: pass the folder `matchwijs generate --truth` wrote")
    return file


def _truth_table(truth_dir: str | Path) -> pa.Table:
    """The columns of the truth the oracle comparison reads, as an Arrow table."""
    file = _truth_file(truth_dir)
    names = set(pq.read_schema(file).names)
    # ids dictionary-encoded: a number per pair and each id once (millions of pairs at country scale)
    return pq.read_table(
        file,
        columns=[c for c in (*KEYS, REGION, "p_sustained", "placed") if c in names],
        read_dictionary=[c for c in ("dwelling_id", "client_id", REGION) if c in names],
    )


def _truth_frame(table: pa.Table) -> pd.DataFrame:
    """Truth rows as pandas, typed as `read_truth` gives them."""
    truth = table.to_pandas()
    truth["meeting_date"] = pd.to_datetime(truth["meeting_date"])
    for col in ("dwelling_id", "client_id"):
        truth[col] = truth[col].astype(str)
    return truth


def oracle_comparison(
    ds: Dataset,
    bundle: ModelBundle,
    truth_dir: str | Path,
    *,
    params: dict,
    oracle: OracleParams,
    baselines: dict[str, Scorer] | None = None,
    progress=lambda msg: None,
    batch_rows: int = BATCH_ROWS,
) -> OracleComparison:
    """Judge model, oracle, random, historical and baseline choices by the true sustain probability (see module doc).

    `baselines` maps a name to a scorer of pair features (higher = better); the plan of
    a scorer with `proba` maximises its chances (like the model's), the plan of any
    other scorer its scores turned into within-meeting ranks (any scale works).
    Whole regional meetings are scored and planned `batch_rows` truth pairs at a time, so
    memory grows with the largest batch, never with all held-out pairs at once.
    """
    fp = section(params, "features", FeatureParams)
    rules = section(params, "passend_toewijzen", PassendToewijzen)
    elig = section(params, "eligibility", EligibilityParams)
    assignment = section(params, "assignment", AssignmentParams)
    test_start = pd.Timestamp(bundle.metadata["test_start"])
    test_end = pd.Timestamp(bundle.metadata["test_end"])
    table = _truth_table(truth_dir)  # Arrow: compact strings; pandas rows are made one batch at a time
    dates = pd.to_datetime(table.column("meeting_date").to_pandas())
    held = np.flatnonzero(((dates >= test_start) & (dates <= test_end)).to_numpy())
    if len(held) == 0:
        raise UserError(
            f"the truth in {truth_dir} has no meeting in the held-out period {test_start:%Y-%m-%d}..{test_end:%Y-%m-%d}"
        )
    keys = pd.DataFrame({"meeting_date": dates.iloc[held].to_numpy()})
    if REGION in table.column_names:
        keys[REGION] = table.column(REGION).take(pa.array(held)).to_pandas().astype(str).to_numpy()
    else:
        keys["dwelling_id"] = table.column("dwelling_id").take(pa.array(held)).to_pandas().astype(str).to_numpy()
        keys = with_region(ds, keys)
    codes = meeting_codes(keys)  # a meeting is a region on a date
    order = np.argsort(codes, kind="stable")
    held, codes, regions = held[order], codes[order], keys[REGION].to_numpy()[order]
    del keys, dates
    baselines = baselines or {}
    rng = np.random.default_rng(oracle.seed)
    regional = bool((regions != DEFAULT_REGION).any())
    batches = meeting_batches(codes, batch_rows)
    progress(
        f"{codes.max() + 1} held-out meetings, {len(held)} pairs: eligibility, features and plans "
        f"in {len(batches)} batches of whole meetings"
    )
    rows: list[dict] = []
    # the match ranking: per batch the within-client correlations, and for the variance shares the
    # model's and true chances with clients as numbers in id order (no string per pair)
    kept: list[pd.DataFrame] = []
    spearman: dict[str, list[pd.Series]] = {}
    client_ids = pd.Index(np.sort(ds.clients["client_id"].astype(str).unique()))
    scores = ["model_p", *(f"{n}_score" for n in baselines)]
    lookup = _Lookups(ds)
    for i, batch in enumerate(batches, start=1):
        if len(batches) > 1:
            progress(f"oracle: batch {i}/{len(batches)}")
        part = _truth_frame(table.take(pa.array(held[batch]))).assign(**{REGION: regions[batch]})
        pairs = _scored_truth(ds, bundle, part, baselines, fp=fp, rules=rules, elig=elig, lookup=lookup)
        rows += _meeting_rows(ds, pairs, baselines, assignment, oracle, rng, regional=regional, lookup=lookup)
        client = client_ids.get_indexer(pairs["client_id"].astype(str))
        if (client < 0).any():
            unknown = pairs["client_id"].to_numpy()[client < 0][0]
            raise UserError(f"the truth in {truth_dir} names client {unknown!r}, who is not in the dataset's clients")
        for col, rho in _batch_spearman(pairs, scores, client, len(client_ids) + 1).items():
            spearman.setdefault(col, []).append(rho)
        kept.append(pairs[["meeting_date", "true_p", "model_p"]].assign(client_id=client.astype(np.int32)))
        del pairs
    del table
    pairs = pd.concat(kept, ignore_index=True)
    del kept
    per = pd.DataFrame(rows)
    policies = ["model", "oracle", "random", "historical", *baselines]
    table = pd.DataFrame(index=policies)
    table["top1_true_p_sustained"] = [per[f"top1_{p}"].mean() for p in policies]
    table["plan_true_p_sustained"] = [per[f"plan_{p}_total"].sum() / per[f"plan_{p}_n"].sum() for p in policies]
    table["plan_placements"] = [per[f"plan_{p}_n"].sum() for p in policies]
    table.index.name = "policy"

    def captured(col: str) -> float:
        span = table.loc["oracle", col] - table.loc["random", col]
        return float((table.loc["model", col] - table.loc["random", col]) / span) if span > 0 else float("nan")

    summary = {
        "meetings": int(len(per)),
        "top1_captured_gain": captured("top1_true_p_sustained"),
        "plan_captured_gain": captured("plan_true_p_sustained"),
        **{
            f"{c}_{p}": float(table.loc[p, c])
            for p in policies
            for c in ("top1_true_p_sustained", "plan_true_p_sustained")
        },
    }
    for name in baselines:
        top_span = table.loc["oracle", "top1_true_p_sustained"] - table.loc["random", "top1_true_p_sustained"]
        summary[f"top1_captured_gain_{name}"] = (
            float((table.loc[name, "top1_true_p_sustained"] - table.loc["random", "top1_true_p_sustained"]) / top_span)
            if top_span > 0
            else float("nan")
        )
        span = table.loc["oracle", "plan_true_p_sustained"] - table.loc["random", "plan_true_p_sustained"]
        summary[f"plan_captured_gain_{name}"] = (
            float((table.loc[name, "plan_true_p_sustained"] - table.loc["random", "plan_true_p_sustained"]) / span)
            if span > 0
            else float("nan")
        )
    summary.update(_variance_shares(pairs, "model_p", _client_numbers(pairs)))
    for col in scores:
        rho = pd.concat(spearman[col]).sort_index() if spearman.get(col) else pd.Series(dtype=float)
        name = "within_client_spearman" + ("" if col == "model_p" else f"_{col.removesuffix('_score')}")
        summary[name] = float(rho.mean()) if len(rho) else float("nan")
    hist_span = table.loc["oracle", "plan_true_p_sustained"] - table.loc["historical", "plan_true_p_sustained"]
    summary["plan_beats_historical"] = float(
        table.loc["model", "plan_true_p_sustained"] > table.loc["historical", "plan_true_p_sustained"]
    )
    summary["plan_captured_gain_over_historical"] = (
        float(
            (table.loc["model", "plan_true_p_sustained"] - table.loc["historical", "plan_true_p_sustained"]) / hist_span
        )
        if hist_span > 0
        else float("nan")
    )
    return OracleComparison(table, per, summary)


def bootstrap_against(per: pd.DataFrame, baselines: list[str], resamples: int, seed: int) -> pd.DataFrame:
    """The model's plan and top suggestion against each baseline policy, bootstrapped over held-out meetings.

    Metrics: `plan_captured_gain` (share of the random → oracle gain of the plan,
    from totals over the drawn meetings) and `top1_true_p_sustained`. Same row format
    as `models.evaluate.paired_bootstrap`.
    """
    policies = ["model", *baselines]

    def values(draw: np.ndarray) -> dict[tuple[str, str], float]:
        d = per.iloc[draw]
        plan = {p: d[f"plan_{p}_total"].sum() / d[f"plan_{p}_n"].sum() for p in [*policies, "oracle", "random"]}
        span = plan["oracle"] - plan["random"]
        out = {}
        for p in policies:
            out[p, "plan_captured_gain"] = (plan[p] - plan["random"]) / span if span > 0 else np.nan
            out[p, "top1_true_p_sustained"] = d[f"top1_{p}"].mean()
        return out

    return bootstrap_differences(
        values, len(per), baselines, ("plan_captured_gain", "top1_true_p_sustained"), resamples, seed
    )


def client_variance_share(values: np.ndarray, groups: pd.Series) -> float:
    """Between-group variance / total variance of `values` (1 = the group alone explains every difference)."""
    v = pd.Series(np.asarray(values, dtype=float), index=groups.index)
    total = float(((v - v.mean()) ** 2).sum())
    if total == 0:
        return float("nan")
    means = v.groupby(groups).transform("mean")
    return float(((means - v.mean()) ** 2).sum() / total)


def within_group_spearman(a: np.ndarray, b: np.ndarray, groups: pd.Series, *, min_size: int = 3) -> float:
    """Mean Spearman correlation of `a` and `b` within each group of at least `min_size` rows.

    Groups in which either column is constant have no correlation and are left out.
    """
    rho = group_spearman(a, b, groups, min_size=min_size)
    return float(rho.mean()) if len(rho) else float("nan")


def group_spearman(a: np.ndarray, b: np.ndarray, groups: pd.Series, *, min_size: int = 3) -> pd.Series:
    """The Spearman correlation of `a` and `b` in each group of `within_group_spearman`, by group (sorted).

    Each group's value reads only its own rows, so groups computed apart (batches of whole
    meetings) give the same values; their mean in group order is `within_group_spearman`.
    """
    frame = pd.DataFrame({"a": np.asarray(a, dtype=float), "b": np.asarray(b, dtype=float), "g": groups.to_numpy()})
    by = frame.groupby("g", sort=False)
    frame["ra"], frame["rb"] = by["a"].rank(), by["b"].rank()
    frame["n"] = by["a"].transform("size")
    frame = frame[frame["n"] >= min_size]
    if frame.empty:
        return pd.Series(dtype=float)
    by = frame.groupby("g", sort=False)
    da = frame["ra"] - by["ra"].transform("mean")
    db = frame["rb"] - by["rb"].transform("mean")
    stats = pd.DataFrame({"ab": da * db, "aa": da * da, "bb": db * db, "g": frame["g"]}).groupby("g").sum()
    ok = (stats["aa"] > 0) & (stats["bb"] > 0)
    return stats.loc[ok, "ab"] / np.sqrt(stats.loc[ok, "aa"] * stats.loc[ok, "bb"])


def match_ranking(pairs: pd.DataFrame, score_col: str) -> dict:
    """Does a scorer rank matches or only clients? (issue #13 item 2), on eligible held-out pairs.

    - `client_variance_share`: share of the variance of the scorer's log-odds that the client
      (per meeting) alone explains; `client_variance_share_truth`: the same for the true chance.
    - `within_client_spearman`: mean Spearman correlation between the scorer and the true chance
      across the homes each client was an eligible candidate for (clients with 3+ homes): 1 = it
      orders every client's options as the truth does, 0 = no better than chance.
    """
    # one number per (meeting, client), numbered in (date, client) order: the order the text key
    # "date|client" sorted in, without a string per pair (3 million pairs at 5x one meeting).
    # `client_id` holds the ids, or whole numbers that order the clients as their ids do.
    client = _client_numbers(pairs)
    t = np.clip(pairs["true_p"].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    return {
        **_variance_shares(pairs, score_col, client),
        "within_client_spearman": within_group_spearman(pairs[score_col].to_numpy(), t, client),
    }


def _client_numbers(pairs: pd.DataFrame) -> pd.Series:
    """One number per (meeting, client) of `pairs`, in (date, client) order (`client_id`: ids, or numbers in id order)."""
    ids = pairs["client_id"]
    key = ids if pd.api.types.is_integer_dtype(ids) else ids.astype(str)
    return pd.Series(pairs.groupby(["meeting_date", key], sort=True).ngroup().to_numpy(), index=pairs.index)


def _variance_shares(pairs: pd.DataFrame, score_col: str, client: pd.Series) -> dict:
    """`client_variance_share` and `client_variance_share_truth` of `match_ranking`."""
    p = np.clip(pairs[score_col].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    t = np.clip(pairs["true_p"].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    return {
        "client_variance_share": client_variance_share(np.log(p / (1 - p)), client),
        "client_variance_share_truth": client_variance_share(np.log(t / (1 - t)), client),
    }


def _batch_spearman(pairs: pd.DataFrame, columns: list[str], client: np.ndarray, stride: int) -> dict[str, pd.Series]:
    """`group_spearman` of each score column against the true chance on one batch, by (day, client) number.

    A (meeting date, client) lies in one batch (batches hold whole meetings; a client is in
    one region at a date), so the groups of all batches, put in (date, client) order, are the
    groups `match_ranking` makes of all pairs at once.
    """
    day = pairs["meeting_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    groups = pd.Series(day * stride + client, index=pairs.index)  # stride: more than the client numbers
    t = np.clip(pairs["true_p"].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    return {c: group_spearman(pairs[c].to_numpy(), t, groups) for c in columns}


class _Lookups:
    """Each home's complex and each client's first meeting, indexed once for every batch (not a join per batch).

    A join or a map against every home and client costs in proportion to the tables (299,000
    homes at 20 regions), whatever the size of the batch; an index built once does not.
    """

    def __init__(self, ds: Dataset) -> None:
        self.homes = pd.Index(ds.dwellings["dwelling_id"])
        self.complex_of = ds.dwellings["complex_id"].to_numpy(dtype=object)
        first = ds.candidates.groupby("client_id")["meeting_date"].min()
        self.clients = pd.Index(first.index)
        self.first_seen = first.to_numpy()

    def complexes(self, dwellings: pd.Series) -> np.ndarray:
        """The complex of each home (NaN for a home not in the dataset, as a left join gives)."""
        at = self.homes.get_indexer(dwellings)
        return np.where(at >= 0, self.complex_of[np.maximum(at, 0)], np.nan)

    def waiting_weeks(self, pairs: pd.DataFrame) -> pd.Series:
        """`planning.priority.waiting_weeks` of each pair: weeks since the client's first meeting (0 if never seen)."""
        at = self.clients.get_indexer(pairs["client_id"])
        since = pd.Series(self.first_seen[np.maximum(at, 0)], index=pairs.index).where(at >= 0)
        return ((pairs["meeting_date"] - since).dt.days / 7.0).fillna(0.0)


def _scored_truth(
    ds: Dataset,
    bundle: ModelBundle,
    truth: pd.DataFrame,
    baselines: dict[str, Scorer],
    *,
    fp: FeatureParams,
    rules: PassendToewijzen,
    elig: EligibilityParams,
    lookup: _Lookups,
) -> pd.DataFrame:
    """The eligible pairs of some whole regional meetings of the truth, with true_p, model_p and baseline scores."""
    keys = truth[KEYS]
    # the pairs apply_eligibility keeps, without writing out why the others are excluded
    eligible = keys.loc[rule_checks(ds, keys, elig, rules).all(axis=1).to_numpy(dtype=bool)]
    # the truth's own rows of the eligible pairs (its keys are unique): what a merge on the keys gives
    pairs = (
        truth.loc[eligible.index, [*KEYS, REGION, "p_sustained", "placed"]]
        .reset_index(drop=True)
        .rename(columns={"p_sustained": "true_p"})
    )
    meeting = meeting_codes(pairs)
    feats = build_pair_features(ds, pairs[KEYS], params=fp, rules=rules)
    pairs["model_p"] = bundle.proba(feats)
    for name, scorer in baselines.items():
        if isinstance(scorer, ProbabilityScorer):  # its own chances, like the model's plan
            pairs[f"{name}_score"] = np.asarray(scorer.proba(feats), dtype=float)
        else:  # ranks within the meeting, in (0, 1]: positive benefits on a common scale for the planner
            pairs[f"{name}_score"] = pd.Series(scorer.score(feats), index=pairs.index).groupby(meeting).rank(pct=True)
    return pairs.assign(complex_id=lookup.complexes(pairs["dwelling_id"]))


class _MeetingPlans:
    """Plans of one meeting for many benefits (model, oracle, baselines, random draws), each as `plan_meeting` makes it.

    The policy's clients depend on the benefit only through which pairs are plannable, so they
    are found once per such set. Without a complex cap a plan is one `linear_sum_assignment` on
    the meeting's prepared numbers: the homes and clients are numbered once (in name order, as
    `plan_assignment` numbers them), and each benefit only fills the matrix of the pairs the policy
    plans. It builds the same matrix `plan_meeting` builds, so it finds the same plan; a complex
    cap, a missing benefit or a duplicate pair go through `plan_meeting` itself.
    """

    def __init__(self, ds: Dataset, m: pd.DataFrame, assignment: AssignmentParams, wait: pd.Series) -> None:
        self.ds, self.assignment, self.wait = ds, assignment, wait
        self.slim = m[["dwelling_id", "client_id", "complex_id", "true_p"]]
        self.pools: dict[bytes, set] = {}
        self.allowed_rows: dict[bytes, np.ndarray] = {}
        self.home = pd.factorize(self.slim["dwelling_id"], sort=True)[0]
        self.client, self.client_names = pd.factorize(self.slim["client_id"], sort=True)
        self.true_p = self.slim["true_p"].to_numpy(dtype=float)
        self.fast = (
            assignment.complex_cap is None
            and not pd.Series(self.home * (self.client.max() + 1) + self.client).duplicated().any()
        )

    def _allowed(self, benefit: np.ndarray) -> tuple[set, np.ndarray]:
        key = (benefit > self.assignment.min_benefit).tobytes()
        if key not in self.pools:
            frame = self.slim.assign(_benefit=benefit)
            self.pools[key] = allowed = policy_clients(frame, self.wait, self.assignment, benefit="_benefit")
            self.allowed_rows[key] = (
                np.isin(self.client_names, list(allowed))[self.client]
                if allowed
                else np.zeros(len(benefit), dtype=bool)
            )
        return self.pools[key], self.allowed_rows[key]

    def plan(self, benefit: np.ndarray) -> pd.DataFrame:
        """The plan's rows of the meeting (dwelling_id, client_id, complex_id, true_p), as `plan_meeting` returns them."""
        allowed, _ = self._allowed(benefit)
        frame = self.slim.assign(_benefit=benefit)
        return plan_meeting(self.ds, frame, self.assignment, benefit="_benefit", waiting=self.wait, allowed=allowed)

    def outcome(self, benefit: np.ndarray) -> tuple[float, int]:
        """(sum of the true chances, placements) of the plan for `benefit`: the numbers `plan` gives, in its order."""
        if not self.fast or np.isnan(benefit).any():
            plan = self.plan(benefit)
            return plan["true_p"].sum(), len(plan)
        allowed, rows = self._allowed(benefit)
        chosen = planned_rows(self.home, self.client, benefit, rows, n_allowed=len(allowed), params=self.assignment)
        return self.true_p[chosen].sum(), len(chosen)


def _meeting_rows(
    ds: Dataset,
    pairs: pd.DataFrame,
    baselines: dict[str, Scorer],
    assignment: AssignmentParams,
    oracle: OracleParams,
    rng: np.random.Generator,
    *,
    regional: bool,
    lookup: _Lookups,
) -> list[dict]:
    """One row per regional meeting of `pairs`: each policy's top-1 and plan, judged by the true chance."""
    waits = lookup.waiting_weeks(pairs)  # the batch's pairs at once, not a lookup per meeting
    rows = []
    for _, m in pairs.groupby(meeting_codes(pairs), sort=True):
        by_home = m.groupby("dwelling_id")
        top_model = m.loc[by_home["model_p"].idxmax(), "true_p"].mean()
        top_oracle = by_home["true_p"].max().mean()
        top_random = by_home["true_p"].mean().mean()
        top_baselines = {
            f"top1_{name}": m.loc[by_home[f"{name}_score"].idxmax(), "true_p"].mean() for name in baselines
        }
        hist = m[m["placed"].astype(bool)]
        top_hist = hist["true_p"].mean() if len(hist) else np.nan
        # Plans choose within the priority pool (longest waiting); the historical meeting chose freely.
        wait = waits.loc[m.index]
        outcome = _MeetingPlans(ds, m, assignment, wait).outcome
        plans = {
            "model": outcome(m["model_p"].to_numpy(dtype=float)),
            "oracle": outcome(m["true_p"].to_numpy(dtype=float)),
            **{name: outcome(m[f"{name}_score"].to_numpy(dtype=float)) for name in baselines},
        }
        random_totals = [outcome(rng.random(len(m))) for _ in range(oracle.random_draws)]
        rows.append(
            {
                "meeting_date": m["meeting_date"].iloc[0],
                **({REGION: m[REGION].iloc[0]} if regional else {}),
                "vacancies_with_candidates": by_home.ngroups,
                "historical_placements": len(hist),
                "top1_model": top_model,
                "top1_oracle": top_oracle,
                "top1_random": top_random,
                "top1_historical": top_hist,
                **top_baselines,
                **{f"plan_{name}_total": total for name, (total, _) in plans.items()},
                **{f"plan_{name}_n": n for name, (_, n) in plans.items()},
                "plan_random_total": float(np.mean([t for t, _ in random_totals])),
                "plan_random_n": float(np.mean([n for _, n in random_totals])),
                "plan_historical_total": hist["true_p"].sum(),
                "plan_historical_n": len(hist),
            }
        )
    return rows
