"""`matchwijs recommend`: ranked, explained suggestions, a one-to-one plan and the meeting sheet for one meeting.

Wiring only: eligibility (models.eligibility), features (features.pairs), scores,
chances, support and TreeSHAP (models.bundle), reasons (models.explain), the plan
(models.assignment) and the sheet (reports.meeting). Everything is computed in
memory, written to a temporary folder next to OUT, and moved into OUT only when
all five files are complete.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from features.errors import UserError

if TYPE_CHECKING:  # heavy imports stay inside the functions, so the CLI starts fast
    import pandas as pd

    from features.load import Dataset
    from features.pairs import FeatureParams
    from features.rules import PassendToewijzen
    from models.assignment import AssignmentParams
    from models.bundle import ModelBundle
    from models.eligibility import EligibilityParams
    from models.explain import ExplainParams

OUTPUT_FILES = ("recommendations.csv", "explanations.csv", "assignment.csv", "excluded.csv", "meeting.html")
RECOMMENDATION_COLUMNS = ["meeting_date", "dwelling_id", "client_id", "rank", "score", "base_value", "reasons",
                          "p_sustained", "support", "low_support", "planned"]
ASSIGNMENT_COLUMNS = ["dwelling_id", "client_id", "score", "p_sustained", "rank", "complex_id", "best_dwelling_id",
                      "best_p_sustained", "p_change", "better_or_worse_off", "meeting_date"]
EXCLUDED_COLUMNS = ["dwelling_id", "client_id", "rule", "failed_rules", "detail", "meeting_date"]

ERR_DATE_FORMAT = "--meeting {value!r} is not a date; expected YYYY-MM-DD"
ERR_NO_MEETING = "no {what} at meeting {date}. {nearest}"
ERR_OUT_IS_FILE = "--out {out} exists and is not a folder"


class Lang(str, enum.Enum):
    """Language of the reasons and the meeting sheet."""

    en = "en"
    nl = "nl"


@dataclass(frozen=True)
class RecommendConfig:
    """The params.yaml sections `recommend` reads."""

    features: FeatureParams
    amounts: PassendToewijzen
    eligibility: EligibilityParams
    assignment: AssignmentParams
    explain: ExplainParams


def load_config(params_path: str | Path | None = None) -> RecommendConfig:
    """Read the params.yaml sections features, passend_toewijzen, eligibility, assignment, explain."""
    from features.config import load_params, section
    from features.pairs import FeatureParams
    from features.rules import PassendToewijzen
    from models.assignment import AssignmentParams
    from models.eligibility import EligibilityParams
    from models.explain import ExplainParams

    params = load_params(params_path)
    return RecommendConfig(
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


def parse_meeting_date(value: str) -> pd.Timestamp:
    """The meeting date from the command line, as a pandas Timestamp."""
    import pandas as pd

    try:
        return pd.Timestamp(dt.date.fromisoformat(value.strip()))
    except ValueError:
        raise UserError(ERR_DATE_FORMAT.format(value=value)) from None


def latest_meeting(ds: Dataset) -> pd.Timestamp:
    """The latest meeting date that has both vacancies and candidates."""
    both = set(ds.vacancies["meeting_date"]) & set(ds.candidates["meeting_date"])
    if not both:
        raise UserError("the dataset has no meeting with both vacancies and candidates")
    return max(both)


def check_meeting(ds: Dataset, meeting_date: pd.Timestamp) -> None:
    """UserError naming the date and the nearest usable meeting dates when the meeting has no vacancies or candidates."""
    import pandas as pd

    vac = pd.DatetimeIndex(ds.vacancies["meeting_date"].unique())
    cand = pd.DatetimeIndex(ds.candidates["meeting_date"].unique())
    has_vac, has_cand = meeting_date in vac, meeting_date in cand
    if has_vac and has_cand:
        return
    what = "vacancies and no candidates" if not (has_vac or has_cand) else ("vacancies" if not has_vac else "candidates")
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
        nearest = (f"Nearest meeting dates with vacancies and candidates: {', '.join(options)} "
                   f"(the dataset has {len(usable)}, from {usable[0]:%Y-%m-%d} to {usable[-1]:%Y-%m-%d}).")
    raise UserError(ERR_NO_MEETING.format(what=what, date=f"{meeting_date:%Y-%m-%d}", nearest=nearest))


def resolve_model(model: str | None, params_path: str | Path | None = None) -> ModelBundle:
    """The ModelBundle to use: a folder or registered version given with --model, else the default (champion) model."""
    from models.tracking import resolve_bundle

    return resolve_bundle(model, params_path=params_path)


def _homes(ds: Dataset, dwelling_ids) -> pd.DataFrame:
    nbh = ds.neighbourhoods.rename(columns={"name": "neighbourhood"})
    homes = ds.dwellings[ds.dwellings["dwelling_id"].isin(dwelling_ids)].merge(nbh, on="neighbourhood_id", how="left")
    return homes.sort_values("dwelling_id", kind="stable").reset_index(drop=True)


def _context(ds: Dataset, pairs: pd.DataFrame) -> pd.DataFrame:
    """Names the reasons mention: the client's care provider and network district, the home's district."""
    import pandas as pd

    homes = ds.dwellings.set_index("dwelling_id")["neighbourhood_id"].map(
        ds.neighbourhoods.set_index("neighbourhood_id")["district"])
    clients = ds.clients.set_index("client_id")
    return pd.DataFrame(
        {
            "care_provider": clients["care_provider"].reindex(pairs["client_id"].to_numpy()).to_numpy(),
            "network_district": clients["network_district"].reindex(pairs["client_id"].to_numpy()).to_numpy(),
            "district": homes.reindex(pairs["dwelling_id"].to_numpy()).to_numpy(),
        },
        index=pairs.index,
    )


def meeting_outputs(ds: Dataset, meeting_date: pd.Timestamp, bundle: ModelBundle, cfg: RecommendConfig, *, lang: str = "en",
                    complex_cap: int | None = None, model_label: str = "") -> MeetingOutputs:
    """Everything `recommend` writes for one meeting, computed in memory.

    Args:
        ds: the validated dataset.
        meeting_date: a meeting with vacancies and candidates (see `check_meeting`).
        bundle: the ModelBundle to score and explain with.
        cfg: params (see `load_config`).
        lang: "en" or "nl" for reasons, exclusion details and the sheet.
        complex_cap: overrides params.yaml assignment.complex_cap when given.
        model_label: how the sheet names the model.
    """
    import numpy as np
    import pandas as pd

    from features.pairs import build_pair_features, meeting_pairs
    from models.assignment import client_outcomes
    from models.priority import plan_meeting
    from models.eligibility import apply_eligibility, unverified_amounts
    from models.explain import explanations_frame, reasons, tree_shap
    from reports.meeting import MeetingSheet, render_meeting

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
        score = bundle.score(X)
        contrib, base = tree_shap(bundle, X)
        support = bundle.support_counts(X)
    else:
        score, base, support = np.zeros(0), np.zeros(0), np.zeros(0, dtype=int)
        contrib = pd.DataFrame(columns=list(bundle.feature_names), dtype=float)
    p = bundle.proba(scores=score)
    lap("score_shap_support")

    recs = eligible[["meeting_date", "dwelling_id", "client_id"]].copy()
    recs["score"], recs["base_value"], recs["p_sustained"] = score, base, p
    recs["support"] = support.astype(int)
    recs["low_support"] = recs["support"] < cfg.explain.low_support_below
    recs = recs.sort_values(["dwelling_id", "score", "client_id"], ascending=[True, False, True], kind="stable")
    recs["rank"] = recs.groupby("dwelling_id", sort=False).cumcount() + 1
    recs["reasons"] = reasons(X.loc[recs.index], contrib.loc[recs.index], context=_context(ds, recs), lang=lang, params=cfg.explain)
    lap("reasons")

    explanations = explanations_frame(recs, X.loc[recs.index], contrib.loc[recs.index])
    lap("explanations")

    cap = cfg.assignment.complex_cap if complex_cap is None else complex_cap
    complexes = ds.dwellings.set_index("dwelling_id")["complex_id"]
    with_complex = recs.assign(complex_id=recs["dwelling_id"].map(complexes).to_numpy())
    plan = plan_meeting(ds, with_complex, dataclasses.replace(cfg.assignment, complex_cap=cap), benefit="p_sustained")
    outcomes = client_outcomes(with_complex, plan, benefit="p_sustained")
    per_client = outcomes.set_index("client_id")
    plan["best_dwelling_id"] = plan["client_id"].map(per_client["best_dwelling_id"])
    plan["best_p_sustained"] = plan["client_id"].map(per_client["best_benefit"])
    plan["p_change"] = plan["client_id"].map(per_client["change"])
    plan["better_or_worse_off"] = plan["client_id"].map(per_client["status"])
    planned = pd.MultiIndex.from_frame(plan[["dwelling_id", "client_id"]])
    recs["planned"] = pd.MultiIndex.from_frame(recs[["dwelling_id", "client_id"]]).isin(planned)
    lap("plan")

    unfilled = sorted(set(ds.vacancies.loc[ds.vacancies["meeting_date"] == meeting_date, "dwelling_id"]) - set(recs["dwelling_id"]))
    if unfilled:
        shown = ", ".join(unfilled[:10]) + (f" and {len(unfilled) - 10} more" if len(unfilled) > 10 else "")
        warnings.append(
            f"{len(unfilled)} home(s) without any eligible candidate: {shown}" if lang == "en"
            else f"{len(unfilled)} woning(en) zonder passende kandidaat: {shown}"
        )
    n_candidates = int((ds.candidates["meeting_date"] == meeting_date).sum())
    sheet = MeetingSheet(
        meeting_date=meeting_date, homes=_homes(ds, pairs["dwelling_id"].unique()), recommendations=recs,
        contributions=contrib.loc[recs.index], assignment=plan, client_outcomes=outcomes, excluded=excluded,
        n_candidates=n_candidates, warnings=warnings, dataset=ds.name or ds.path.name, as_of=ds.as_of,
        model=model_label or _model_label(bundle), made=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
    )
    html = render_meeting(sheet, lang=lang, params=cfg.explain)
    lap("sheet")

    day = f"{meeting_date:%Y-%m-%d}"
    recs = recs.assign(meeting_date=day)[RECOMMENDATION_COLUMNS].reset_index(drop=True)
    plan = plan.assign(meeting_date=day)[ASSIGNMENT_COLUMNS]
    excluded = excluded.assign(meeting_date=day).sort_values(["dwelling_id", "client_id"], kind="stable")[EXCLUDED_COLUMNS]
    placed = len(plan)
    summary = (f"meeting {day}: {len(pairs['dwelling_id'].unique())} homes, {n_candidates} candidates; "
               f"{len(recs)} eligible pairs, {len(excluded)} excluded; plan places {placed}; "
               f"{int(recs['low_support'].sum())} low-support suggestions")
    return MeetingOutputs(meeting_date, recs, explanations, plan, excluded, html, warnings, summary, timings)


def _model_label(bundle: ModelBundle) -> str:
    meta = bundle.metadata or {}
    label = str(meta.get("model_version") or meta.get("name") or f"{bundle.objective} model")
    if meta.get("promoted") is False:
        label += " (a candidate model: not promoted to default, see the training run)"
    return label


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    # pyarrow's writer is several times faster than pandas for the long explanations table
    # and writes floats in shortest round-trip form, so additivity survives the file.
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))


def write_outputs(outputs: MeetingOutputs, out: str | Path) -> Path:
    """Write the five files into a temporary folder beside `out`, then move them into `out` (all or nothing)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(ERR_OUT_IS_FILE.format(out=out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write_csv(outputs.recommendations, tmp / "recommendations.csv")
        _write_csv(outputs.explanations, tmp / "explanations.csv")
        _write_csv(outputs.assignment, tmp / "assignment.csv")
        _write_csv(outputs.excluded, tmp / "excluded.csv")
        (tmp / "meeting.html").write_text(outputs.html, encoding="utf-8")
        if not out.exists():
            os.rename(tmp, out)
        else:
            for name in OUTPUT_FILES:
                os.replace(tmp / name, out / name)
            tmp.rmdir()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def recommend(
    data: Path = typer.Option(..., "--data", help="Dataset folder that follows the data contract (see README)."),
    meeting: str = typer.Option(..., "--meeting", help="Meeting date YYYY-MM-DD with vacancies and candidates in the dataset, or `latest`."),
    out: Path = typer.Option(..., "--out", help="Folder for recommendations.csv, explanations.csv, assignment.csv, excluded.csv, meeting.html."),
    model: Optional[str] = typer.Option(None, "--model", help="Model folder or registered version (default: the registered default model)."),
    lang: Lang = typer.Option(Lang.en, "--lang", help="Language of reasons and the meeting sheet."),
    complex_cap: Optional[int] = typer.Option(None, "--complex-cap", min=1, help="At most this many placements per building complex in the plan (default: params.yaml assignment.complex_cap)."),
    params: Optional[Path] = typer.Option(None, "--params", help="params.yaml to use (default: ./params.yaml, else the project's own)."),
) -> None:
    """Rank the eligible candidates for every home at one meeting, explain each suggestion, propose a one-to-one plan."""
    from features.load import load_dataset

    cfg = load_config(params)
    ds = load_dataset(data)
    meeting_date = latest_meeting(ds) if meeting.strip().lower() == "latest" else parse_meeting_date(meeting)
    check_meeting(ds, meeting_date)
    bundle = resolve_model(model, params)
    outputs = meeting_outputs(ds, meeting_date, bundle, cfg, lang=lang.value, complex_cap=complex_cap)
    for warning in outputs.warnings:
        typer.echo(f"warning: {warning}", err=True)
    write_outputs(outputs, out)
    typer.echo(f"{outputs.summary}; wrote {out}")
