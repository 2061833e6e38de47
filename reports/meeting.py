"""The meeting sheet: one self-contained HTML page per meeting (inline CSS and SVG, prints on A4).

Per vacancy: the home and its neighbourhood in a line, the ranked eligible candidates
with score, chance of a sustained tenancy, support and reasons, a contribution bar
chart per candidate, what separates each candidate from the first, the proposed
plan, and what was excluded and why. Client ids only; no protected attribute is
ever passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from features.formatting import money, number, percent, signed
from models.contributions import differences
from planning.eligibility import RULE_LABELS
from reports.reasons import ExplainParams, check_lang, feature_label

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "meeting.html.j2"
MAX_IDS_PER_RULE = 12  # excluded client ids listed per rule and home on the sheet

TEXT: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Matching meeting {date}: suggestions",
        "notice": "These are suggestions, not decisions. The meeting decides. When the meeting chooses differently "
        "from the plan, record the decision and the reason (override log), so the choice can be explained later.",
        "meta": "Data: {dataset}, extract date {as_of}. Model: {model}. Made {made}.",
        "summary": "{vacancies} homes, {candidates} candidates; {eligible} eligible pairs, {excluded} excluded by the rules. "
        "The plan places {placed} clients. {low} suggestions have low support (fewer than {below} similar past placements).",
        "legend_title": "How to read this sheet",
        "legend": [
            "<b>Score</b>: the model's score for this client in this home. Compare scores only within one home.",
            "<b>Chance</b>: calibrated chance that the tenancy is sustained for a year (no eviction, no return to care).",
            "<b>Support</b>: how many similar past placements the model has learned from. "
            '<span class="low">Low support</span> means the suggestion is an extrapolation: weigh it with extra care.',
            "<b>Reasons</b> and bars: what raised (+) or lowered (−) the score most, in score units. "
            "The bars show each candidate's largest contributions on one scale per home. "
            "<i>Compared with #1</i> names the features whose contributions differ most from the first candidate's (this one minus #1).",
            "<b>Plan</b>: who may be placed this week is decided by the priority policy (waiting time), not by the model; "
            "which home each of them gets is the fit: one home per client and one client per home, maximising the expected number of sustained tenancies. "
            "It can give a client a home that is not their own best; the table at the end shows who.",
        ],
        "legend_interval": "<b>Chance (range)</b>: the range holds the pair's true chance for about {coverage} of pairs "
        "(measured on past weeks the model was not fitted on); a wide range means the model is unsure about this pair.",
        "warnings": "Warnings",
        "plan_title": "Proposed plan",
        "plan_head": [
            "Home",
            "Client",
            "Rank for home",
            "Chance",
            "Client's own best home",
            "Best chance",
            "For the client",
            "Waiting (weeks)",
            "Why this client, not the #1",
        ],
        "plan_none": "No placement is proposed.",
        "clients_title": "Clients in the plan",
        "clients_summary": "{placed} placed: {as_good} in a home as good as their own best suggestion (less than {tol} percentage points lower: "
        "no real difference), {worse} worse off: in a home with a chance lower by more than that (on average {mean_loss} percentage points). "
        "Apart from these: {not_placed} candidates with an eligible home are not placed this week ({not_pool} of them outside the policy's pool: {policy}).",
        "status": {"as_good": "as good as own best", "worse_off": "worse off", "not_placed": "not placed"},
        "home": "Home",
        "neighbourhood": "Neighbourhood",
        "head": ["#", "Client", "Score", "Chance", "Support", "Waiting (weeks)", "Reasons", "Largest contributions"],
        "in_pool": "in pool",
        "not_in_pool": "not in pool",
        "low_support": "low support",
        "more": "{n} more eligible candidates in recommendations.csv.",
        "contrast": "Compared with #1",
        "plan_line": "Plan: client {client} (rank {rank}, chance {chance}): {why}.",
        "plan_line_none": "Plan: no client proposed for this home.",
        "no_eligible": "No eligible candidate for this home: every candidate is excluded by a rule (see below). The meeting must look for other options.",
        "excluded": "Excluded by the rules ({n})",
        "excluded_none": "No candidate excluded.",
        "and_more": "and {n} more",
        "footer": "matchwijs suggests and explains; people decide. Record every decision that differs from the plan with its reason. "
        "Special-category data (health, addiction, justice) is named only where it drives a score, never with its value.",
        "home_line": "{type}, {rooms} rooms, {area} m², {floor}, rent {rent} · complex {complex} ({units} homes), {landlord}",
        "nbh_line": "{name} ({district}) · liveability {live}/9 · {social} social housing · {vulnerable} vulnerable households · {nuisance} nuisance reports per 1000",
        "ground": "ground floor",
        "floor": "floor {n}",
        "lift": "with lift",
        "no_lift": "no lift",
        "wheelchair": "wheelchair accessible",
        "shared": "shared entrance",
        "own_door": "own front door",
        "types": {
            "house": "house",
            "gallery_flat": "gallery flat",
            "portico_flat": "portico flat",
            "apartment": "apartment",
            "studio": "studio",
        },
        "vacancies_title": "Homes",
    },
    "nl": {
        "title": "Matchingsoverleg {date}: suggesties",
        "notice": "Dit zijn suggesties, geen besluiten. Het overleg beslist. Kiest het overleg anders dan het plan, "
        "leg dan het besluit en de reden vast (afwijkingslog), zodat de keuze later uit te leggen is.",
        "meta": "Gegevens: {dataset}, peildatum {as_of}. Model: {model}. Gemaakt {made}.",
        "summary": "{vacancies} woningen, {candidates} kandidaten; {eligible} passende paren, {excluded} uitgesloten door de regels. "
        "Het plan plaatst {placed} cliënten. {low} suggesties hebben weinig steun (minder dan {below} vergelijkbare eerdere plaatsingen).",
        "legend_title": "Zo leest u dit overzicht",
        "legend": [
            "<b>Score</b>: de score van het model voor deze cliënt in deze woning. Vergelijk scores alleen binnen één woning.",
            "<b>Kans</b>: gekalibreerde kans dat de huur een jaar standhoudt (geen ontruiming, geen terugkeer naar zorg).",
            "<b>Steun</b>: hoeveel vergelijkbare eerdere plaatsingen het model heeft gezien. "
            '<span class="low">Weinig steun</span> betekent dat de suggestie een extrapolatie is: weeg haar extra zorgvuldig.',
            "<b>Redenen</b> en balken: wat de score het meest verhoogde (+) of verlaagde (−), in score-eenheden. "
            "De balken tonen per kandidaat de grootste bijdragen, op één schaal per woning. "
            "<i>Vergeleken met #1</i> noemt de kenmerken waarvan de bijdrage het meest verschilt van die van de eerste kandidaat (deze min #1).",
            "<b>Plan</b>: wie deze week geplaatst kan worden, bepaalt het prioriteitsbeleid (wachttijd), niet het model; "
            "welke woning ieder van hen krijgt is de passing: één woning per cliënt en één cliënt per woning, zodat zo veel mogelijk huurperiodes standhouden. "
            "Een cliënt kan een woning krijgen die niet de eigen beste is; de tabel aan het eind laat zien wie.",
        ],
        "legend_interval": "<b>Kans (bandbreedte)</b>: de bandbreedte bevat de werkelijke kans van het paar voor ongeveer {coverage} "
        "van de paren (gemeten op eerdere weken waarop het model niet is getraind); een brede bandbreedte betekent dat het model "
        "over dit paar onzeker is.",
        "warnings": "Waarschuwingen",
        "plan_title": "Voorgesteld plan",
        "plan_head": [
            "Woning",
            "Cliënt",
            "Rang bij woning",
            "Kans",
            "Eigen beste woning",
            "Beste kans",
            "Voor de cliënt",
            "Wachttijd (weken)",
            "Waarom deze cliënt, niet de #1",
        ],
        "plan_none": "Er wordt geen plaatsing voorgesteld.",
        "clients_title": "Cliënten in het plan",
        "clients_summary": "{placed} geplaatst: {as_good} in een woning even goed als hun eigen beste suggestie (minder dan {tol} procentpunt lager: "
        "geen echt verschil), {worse} slechter af: in een woning met een kans die meer dan dat lager is (gemiddeld {mean_loss} procentpunt). "
        "Los daarvan: {not_placed} kandidaten met een passende woning worden deze week niet geplaatst ({not_pool} van hen buiten de pool van het beleid: {policy}).",
        "status": {"as_good": "even goed als eigen beste", "worse_off": "slechter af", "not_placed": "niet geplaatst"},
        "home": "Woning",
        "neighbourhood": "Buurt",
        "head": ["#", "Cliënt", "Score", "Kans", "Steun", "Wachttijd (weken)", "Redenen", "Grootste bijdragen"],
        "in_pool": "in pool",
        "not_in_pool": "niet in pool",
        "low_support": "weinig steun",
        "more": "Nog {n} passende kandidaten in recommendations.csv.",
        "contrast": "Vergeleken met #1",
        "plan_line": "Plan: cliënt {client} (rang {rank}, kans {chance}): {why}.",
        "plan_line_none": "Plan: geen cliënt voorgesteld voor deze woning.",
        "no_eligible": "Geen passende kandidaat voor deze woning: elke kandidaat valt af door een regel (zie hieronder). Het overleg moet andere opties zoeken.",
        "excluded": "Uitgesloten door de regels ({n})",
        "excluded_none": "Geen kandidaat uitgesloten.",
        "and_more": "en nog {n}",
        "footer": "matchwijs doet suggesties en legt ze uit; mensen beslissen. Leg elk besluit dat afwijkt van het plan vast met de reden. "
        "Bijzondere persoonsgegevens (gezondheid, verslaving, justitie) worden alleen genoemd waar ze een score bepalen, nooit met hun waarde.",
        "home_line": "{type}, {rooms} kamers, {area} m², {floor}, huur {rent} · complex {complex} ({units} woningen), {landlord}",
        "nbh_line": "{name} ({district}) · leefbaarheid {live}/9 · {social} sociale huur · {vulnerable} kwetsbare huishoudens · {nuisance} overlastmeldingen per 1000",
        "ground": "begane grond",
        "floor": "{n}e verdieping",
        "lift": "met lift",
        "no_lift": "zonder lift",
        "wheelchair": "rolstoeltoegankelijk",
        "shared": "gedeelde entree",
        "own_door": "eigen voordeur",
        "types": {
            "house": "eengezinswoning",
            "gallery_flat": "galerijflat",
            "portico_flat": "portiekflat",
            "apartment": "appartement",
            "studio": "studio",
        },
        "vacancies_title": "Woningen",
    },
}


@dataclass
class MeetingSheet:
    """Everything the sheet shows; frames use the column names of the output CSVs."""

    meeting_date: pd.Timestamp
    homes: pd.DataFrame  # one row per vacancy: dwelling and neighbourhood attributes
    recommendations: pd.DataFrame  # dwelling_id, client_id, rank, score, p_sustained, support, low_support, reasons
    contributions: pd.DataFrame  # one row per recommendation (same index), one column per model feature
    assignment: (
        pd.DataFrame
    )  # dwelling_id, client_id, rank, p_sustained, best_dwelling_id, best_p_sustained, better_or_worse_off
    client_outcomes: pd.DataFrame  # client_id, status, change (from planning.assignment.client_outcomes)
    excluded: pd.DataFrame  # dwelling_id, client_id, rule, detail
    n_candidates: int
    warnings: list[str] = field(default_factory=list)
    dataset: str = ""
    as_of: pd.Timestamp | None = None
    model: str = ""
    made: str = ""
    no_real_difference: float = 0.0  # params assignment.no_real_difference
    policy: str = ""  # the priority policy in force, in words
    interval_coverage: float | None = None  # stated coverage of chance_low..chance_high (None: the model has none)


def chance_text(p: float, low: float | None = None, high: float | None = None, *, lang: str = "en") -> str:
    """A chance with its interval when known: "72% (65–79%)", else "72%"."""
    text = percent(p, lang)
    if low is None or high is None or not (np.isfinite(low) and np.isfinite(high)):
        return text
    return f"{text} ({percent(low, lang).rstrip('%').rstrip()}–{percent(high, lang)})"


def _bounds(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """chance_low, chance_high of each row (NaN where the frame has none)."""
    if {"chance_low", "chance_high"} <= set(frame.columns):
        return frame["chance_low"].to_numpy(dtype=float), frame["chance_high"].to_numpy(dtype=float)
    nan = np.full(len(frame), np.nan)
    return nan, nan


def contribution_svg(
    items: list[tuple[str, float]], *, scale: float, lang: str = "en", width: int = 310, bar_height: int = 11
) -> str:
    """A horizontal bar chart of contributions as inline SVG (positive right in blue, negative left in orange)."""
    label_w, value_w = 160, 36
    plot_w = width - label_w - value_w
    mid = label_w + plot_w / 2
    scale = scale if scale > 0 else 1.0
    row = bar_height + 3
    height = max(row * len(items), row)
    parts = [f'<svg class="bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    parts.append(f'<line x1="{mid:.1f}" y1="0" x2="{mid:.1f}" y2="{height}" stroke="#888" stroke-width="0.6"/>')
    for i, (label, value) in enumerate(items):
        y = i * row
        w = min(abs(value) / scale, 1.0) * (plot_w / 2)
        x = mid if value >= 0 else mid - w
        cls = "pos" if value >= 0 else "neg"
        short = label if len(label) <= 31 else label[:30] + "…"
        parts.append(
            f"<g><title>{escape(label)}: {escape(signed(value, lang=lang))}</title>"
            f'<text x="{label_w - 4}" y="{y + bar_height - 2}" text-anchor="end">{escape(short)}</text>'
            f'<rect class="{cls}" x="{x:.1f}" y="{y + 1}" width="{max(w, 0.8):.1f}" height="{bar_height - 1}"/>'
            f'<text x="{width - 2}" y="{y + bar_height - 2}" text-anchor="end">{escape(signed(value, lang=lang))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _home_lines(home: dict, t: dict, lang: str) -> tuple[str, str]:
    floor = int(home["floor"])
    where = t["ground"] if floor == 0 else t["floor"].format(n=floor)
    where += " " + (t["lift"] if bool(home["has_lift"]) else t["no_lift"])
    extras = [t["shared"] if bool(home["shared_entrance"]) else t["own_door"]]
    if bool(home["wheelchair_accessible"]):
        extras.append(t["wheelchair"])
    line = (
        t["home_line"].format(
            type=t["types"].get(str(home["dwelling_type"]), str(home["dwelling_type"])),
            rooms=int(home["rooms"]),
            area=number(float(home["floor_area_m2"]), lang),
            floor=where,
            rent=money(float(home["rent_eur"]), lang, 0),
            complex=home["complex_id"],
            units=int(home["units_in_complex"]),
            landlord=home["landlord"],
        )
        + " · "
        + ", ".join(extras)
    )
    nbh = t["nbh_line"].format(
        name=home["neighbourhood"],
        district=home["district"],
        live=number(float(home["liveability_score"]), lang, 1),
        social=percent(float(home["social_housing_share"]), lang),
        vulnerable=percent(float(home["vulnerable_household_share"]), lang),
        nuisance=number(float(home["nuisance_reports_per_1000"]), lang),
    )
    return line, nbh


def _vacancy_views(sheet: MeetingSheet, lang: str, params: ExplainParams) -> list[dict]:
    t = TEXT[lang]
    recs = sheet.recommendations.sort_values(["dwelling_id", "rank"], kind="stable")
    top = recs["rank"] <= params.sheet_candidates
    # the planned client is always shown under their home, also when ranked below the sheet's top
    shown = recs[top | recs["planned"].astype(bool)] if "planned" in recs.columns else recs[top]
    features = list(sheet.contributions.columns)
    labels = [feature_label(f, lang) for f in features]
    contrib = sheet.contributions.loc[shown.index].to_numpy(dtype=float)
    n_eligible = recs["dwelling_id"].value_counts()
    rows_by_home: dict[str, list[int]] = {}
    for pos, did in enumerate(shown["dwelling_id"].to_numpy()):
        rows_by_home.setdefault(did, []).append(pos)
    cols = {
        c: shown[c].to_numpy()
        for c in ("client_id", "rank", "score", "p_sustained", "support", "low_support", "reasons")
    }
    lows, highs = _bounds(shown)
    waits = shown["waiting_weeks"].to_numpy() if "waiting_weeks" in shown.columns else np.full(len(shown), np.nan)
    pooled = shown["in_pool"].to_numpy() if "in_pool" in shown.columns else np.ones(len(shown), dtype=bool)
    planned_flags = shown["planned"].to_numpy() if "planned" in shown.columns else np.zeros(len(shown), dtype=bool)
    excl_by_home = dict(tuple(sheet.excluded.groupby("dwelling_id", sort=False))) if len(sheet.excluded) else {}
    plan = sheet.assignment.set_index("dwelling_id") if len(sheet.assignment) else None
    views = []
    for home in sheet.homes.sort_values("dwelling_id", kind="stable").to_dict("records"):
        did = home["dwelling_id"]
        line, nbh = _home_lines(home, t, lang)
        positions = rows_by_home.get(did, [])
        block = contrib[positions]
        scale = float(np.abs(block).max()) if block.size else 1.0
        rows = []
        for k, pos in enumerate(positions):
            c = block[k]
            top = np.argsort(-np.abs(c), kind="stable")[: params.chart_features]
            items = [(labels[j], float(c[j])) for j in top]
            contrast = ""
            if k > 0:
                contrast = ", ".join(
                    f"{label} ({signed(d, lang=lang)})"
                    for label, d in differences(block[0], c, params.contrast_features, labels)
                )
            rows.append(
                {
                    "rank": int(cols["rank"][pos]),
                    "client_id": cols["client_id"][pos],
                    "score": number(float(cols["score"][pos]), lang, 2),
                    "chance": chance_text(float(cols["p_sustained"][pos]), lows[pos], highs[pos], lang=lang),
                    "support": int(cols["support"][pos]),
                    "low_support": bool(cols["low_support"][pos]),
                    "reasons": cols["reasons"][pos],
                    "planned": bool(planned_flags[pos]),
                    "waiting": "" if np.isnan(float(waits[pos])) else number(float(waits[pos]), lang, 0),
                    "pool": t["in_pool"] if bool(pooled[pos]) else t["not_in_pool"],
                    "svg": contribution_svg(items, scale=scale, lang=lang),
                    "contrast": contrast,
                }
            )
        if plan is not None and did in plan.index:
            p = plan.loc[did]
            plan_line = t["plan_line"].format(
                client=p["client_id"],
                rank=int(p["rank"]),
                chance=chance_text(
                    float(p["p_sustained"]), p.get("chance_low", np.nan), p.get("chance_high", np.nan), lang=lang
                ),
                why=p.get("why", ""),
            )
        else:
            plan_line = t["plan_line_none"]
        excluded = []
        ex = excl_by_home.get(did)
        if ex is not None:
            for rule, group in ex.groupby("rule", sort=False):
                ids = sorted(group["client_id"].tolist())
                listed = ", ".join(ids[:MAX_IDS_PER_RULE])
                if len(ids) > MAX_IDS_PER_RULE:
                    listed += " " + t["and_more"].format(n=len(ids) - MAX_IDS_PER_RULE)
                example = group["detail"].iloc[0] if "detail" in group.columns and len(ids) == 1 else ""
                excluded.append(
                    {
                        "rule": RULE_LABELS.get(rule, {}).get(lang, rule),
                        "n": len(ids),
                        "ids": listed,
                        "example": example,
                    }
                )
        total = int(n_eligible.get(did, 0))
        views.append(
            {
                "dwelling_id": did,
                "line": line,
                "nbh": nbh,
                "rows": rows,
                "n_eligible": total,
                "more": total - len(positions),
                "plan_line": plan_line,
                "excluded": excluded,
                "n_excluded": 0 if ex is None else len(ex),
            }
        )
    return views


def _plan_view(sheet: MeetingSheet, lang: str) -> tuple[list[dict], str]:
    t = TEXT[lang]
    rows = []
    for _, p in sheet.assignment.sort_values("dwelling_id", kind="stable").iterrows():
        rows.append(
            {
                "dwelling_id": p["dwelling_id"],
                "client_id": p["client_id"],
                "rank": int(p["rank"]),
                "chance": chance_text(
                    float(p["p_sustained"]), p.get("chance_low", np.nan), p.get("chance_high", np.nan), lang=lang
                ),
                "best": p["best_dwelling_id"],
                "best_chance": percent(float(p["best_p_sustained"]), lang),
                "status": t["status"][p["better_or_worse_off"]],
                "worse": p["better_or_worse_off"] == "worse_off",
                "waiting": number(float(p["waiting_weeks"]), lang, 0) if "waiting_weeks" in p else "",
                "why": p.get("why", ""),
            }
        )
    co = sheet.client_outcomes
    counts = co["status"].value_counts() if len(co) else pd.Series(dtype=int)
    worse = co.loc[co["status"] == "worse_off", "change"]
    summary = t["clients_summary"].format(
        placed=int(counts.get("as_good", 0) + counts.get("worse_off", 0)),
        as_good=int(counts.get("as_good", 0)),
        worse=int(counts.get("worse_off", 0)),
        mean_loss=number(-100 * float(worse.mean()), lang, 1) if len(worse) else number(0, lang, 1),
        not_placed=int(counts.get("not_placed", 0)),
        not_pool=_not_in_pool(sheet),
        tol=number(100 * sheet.no_real_difference, lang, 0),
        policy=sheet.policy or "-",
    )
    return rows, summary


def _not_in_pool(sheet: MeetingSheet) -> int:
    recs = sheet.recommendations
    if "in_pool" not in recs.columns or recs.empty:
        return 0
    placed = set(sheet.assignment["client_id"]) if len(sheet.assignment) else set()
    per_client = recs.drop_duplicates("client_id")
    return int((~per_client["in_pool"].astype(bool) & ~per_client["client_id"].isin(placed)).sum())


def render_meeting(sheet: MeetingSheet, *, lang: str = "en", params: ExplainParams = ExplainParams()) -> str:
    """The meeting sheet as one self-contained HTML page, in English ("en") or Dutch ("nl")."""
    check_lang(lang)
    t = TEXT[lang]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    date = f"{sheet.meeting_date:%Y-%m-%d}"
    plan_rows, clients_summary = _plan_view(sheet, lang)
    summary = t["summary"].format(
        vacancies=len(sheet.homes),
        candidates=sheet.n_candidates,
        eligible=len(sheet.recommendations),
        excluded=len(sheet.excluded),
        placed=len(sheet.assignment),
        low=int(sheet.recommendations["low_support"].sum()),
        below=params.low_support_below,
    )
    meta = t["meta"].format(
        dataset=sheet.dataset or "-",
        as_of=f"{sheet.as_of:%Y-%m-%d}" if sheet.as_of is not None else "-",
        model=sheet.model or "-",
        made=sheet.made or "-",
    )
    return env.get_template(TEMPLATE).render(
        lang=lang,
        t=t,
        title=t["title"].format(date=date),
        meta=meta,
        summary=summary,
        legend=[Markup(item) for item in t["legend"]]
        + (
            [Markup(t["legend_interval"].format(coverage=percent(sheet.interval_coverage, lang)))]
            if sheet.interval_coverage is not None
            else []
        ),
        warnings=sheet.warnings,
        vacancies=_vacancy_views(sheet, lang, params),
        plan_rows=plan_rows,
        clients_summary=clients_summary,
        svg=Markup,
    )
