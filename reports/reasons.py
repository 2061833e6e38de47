"""Reasons in words: a suggestion's largest TreeSHAP contributions (`models.contributions`) as plain sentences.

Reasons name the feature in words a caseworker uses (English or Dutch), its value
for this pair, and the contribution in score units, e.g.
"3.2 km from Kompas Zorg with 8 support hours a week (−0.40)". Special-category
data (health, addiction, justice ZRM domains and features built from them) is
named without its value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from features.contract import ZRM_DOMAINS
from features.formatting import money, number, percent, signed
from features.pairs import FEATURE_INFO
from models.contributions import top_features

LANGS = ("en", "nl")


NO_REASON = {"en": "no single factor stands out", "nl": "geen factor springt eruit"}


ERR_LANG = "language must be one of en, nl; got {lang!r}"


@dataclass(frozen=True)
class ExplainParams:
    """params.yaml `explain`: how many reasons, what counts as low support, what the sheet shows."""

    top_reasons: Annotated[int, Field(ge=1)] = 3
    min_abs_contribution: float = 0.01  # smaller contributions are never a reason
    low_support_below: int = 5  # fewer similar past placements than this = an extrapolation
    special_category: tuple[str, ...] = (
        "zrm_mental_health",
        "zrm_physical_health",
        "zrm_addiction",
        "zrm_justice",
        "stairs_x_physical",
        "addiction_x_vulnerable",
    )
    sheet_candidates: int = 10  # candidates shown per home on the meeting sheet (all are in the CSVs)
    chart_features: int = 6  # bars per candidate in the sheet's contribution chart
    contrast_features: int = 3  # features named when comparing a candidate with the first


def check_lang(lang: str) -> str:
    """`lang` if it is a supported language, else ValueError."""
    if lang not in LANGS:
        raise ValueError(ERR_LANG.format(lang=lang))
    return lang


def reasons(
    X: pd.DataFrame,
    contributions: pd.DataFrame,
    *,
    context: pd.DataFrame | None = None,
    lang: str = "en",
    params: ExplainParams = ExplainParams(),
) -> pd.Series:
    """Short plain-language reasons per pair: its largest contributions as sentences, "; "-joined.

    Args:
        X: feature values per pair.
        contributions: TreeSHAP contributions per pair (columns = model features).
        context: optional names per pair (same index): care_provider, district,
            neighbourhood, network_district; used to say "far from Kompas Zorg".
        lang: "en" or "nl".
        params: how many reasons and the minimum |contribution| of a reason.
    """
    check_lang(lang)
    order, keep = top_features(contributions, params.top_reasons, params.min_abs_contribution)
    features = list(contributions.columns)
    cols = _Columns(X, context, len(contributions))
    contrib = contributions.to_numpy(dtype=float)
    special = frozenset(params.special_category)
    parts: list[list[str]] = [[] for _ in range(len(contributions))]
    for j in range(order.shape[1]):
        for f_pos in np.unique(order[:, j]):
            rows = np.flatnonzero((order[:, j] == f_pos) & keep[:, j])
            if not len(rows):
                continue
            name = features[f_pos]
            texts = phrases(name, rows, cols, lang=lang, special=name in special)
            # Each distinct contribution is formatted once (a model's contributions repeat across pairs).
            values, at = np.unique(contrib[rows, f_pos], return_inverse=True)
            shown = [signed(v, lang=lang) for v in values]
            for r, text, k in zip(rows, texts, at.ravel().tolist(), strict=True):
                parts[r].append(f"{text} ({shown[k]})")
    return pd.Series(["; ".join(p) if p else NO_REASON[lang] for p in parts], index=contributions.index, dtype=object)


def feature_label(name: str, lang: str) -> str:
    """The feature's short name in words (FEATURE_INFO)."""
    info = FEATURE_INFO.get(name)
    if info is None:
        return name
    return info.nl if lang == "nl" else info.en


class _Columns:
    """Column access by name for a subset of rows: feature values from X, names from context."""

    def __init__(self, X: pd.DataFrame, context: pd.DataFrame | None, n: int):
        self._X, self._ctx, self._n = X, context, n
        self._cache: dict[str, np.ndarray] = {}

    def num(self, name: str, rows: np.ndarray | slice) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = (
                self._X[name].to_numpy(dtype=float) if name in self._X.columns else np.full(self._n, np.nan)
            )
        return self._cache[name][rows]

    def at(self, name: str, row: int) -> float:
        return float(self.num(name, slice(None))[row]) if name not in self._cache else float(self._cache[name][row])

    def text_at(self, name: str, row: int) -> str:
        return self.text(name, slice(None))[row]

    def text(self, name: str, rows: np.ndarray | slice) -> np.ndarray:
        key = "ctx:" + name
        if key not in self._cache:
            if self._ctx is not None and name in self._ctx.columns:
                self._cache[key] = self._ctx[name].astype("string").fillna("").to_numpy(dtype=object)
            else:
                self._cache[key] = np.full(self._n, "", dtype=object)
        return self._cache[key][rows]


# Row-dependent reasons format the same shares thousands of times per meeting: each (share, language) once.
_percent = functools.lru_cache(maxsize=2**16)(percent)


def _whole_euros(v: float, lang: str) -> str:
    return money(v, lang, 0)


def _plural(n: float, one: str, many: str) -> str:
    return one if round(n) == 1 else many


# Each template maps (value, row, columns, lang) to a sentence fragment.
Template = Callable[[float, int, _Columns, str], str]

# Templates whose text depends on the value only (not on the row's other columns): `phrases` writes
# each distinct value once.
_VALUE_ONLY: set[Template] = set()


def _value_only(template: Template) -> Template:
    _VALUE_ONLY.add(template)
    return template


def _bool(en_yes: str, en_no: str, nl_yes: str, nl_no: str) -> Template:
    return _value_only(
        lambda v, r, c, lang: (nl_yes if v >= 0.5 else nl_no) if lang == "nl" else (en_yes if v >= 0.5 else en_no)
    )


def _fmt(en: str, nl: str, fmt: Callable[[float, str], str] = number) -> Template:
    return _value_only(lambda v, r, c, lang: (nl if lang == "nl" else en).format(v=fmt(v, lang)))


def _count(en_one: str, en_many: str, nl_one: str, nl_many: str) -> Template:
    """A count with singular/plural wording; `{v}` is the number."""

    def template(v: float, r: int, c: _Columns, lang: str) -> str:
        one = round(v) == 1
        text = (nl_one if one else nl_many) if lang == "nl" else (en_one if one else en_many)
        return text.format(v=number(v, lang))

    return _value_only(template)


def _zrm(name: str) -> Template:
    # "self-reliance on finances (ZRM)" -> "self-reliance on finances 2/5 (ZRM)"
    en, nl = (text.removesuffix(" (ZRM)") for text in (FEATURE_INFO[name].en, FEATURE_INFO[name].nl))
    return _value_only(lambda v, r, c, lang: f"{nl if lang == 'nl' else en} {number(v, lang)}/5 (ZRM)")


def _care(v: float, r: int, c: _Columns, lang: str) -> str:
    provider = c.text_at("care_provider", r) or ("de zorgaanbieder" if lang == "nl" else "the care provider")
    return f"{number(v, lang, 1)} km van {provider}" if lang == "nl" else f"{number(v, lang, 1)} km from {provider}"


def _support_distance(v: float, r: int, c: _Columns, lang: str) -> str:
    hours = c.at("support_hours_per_week", r)
    dist = c.at("distance_to_care_km", r)
    provider = c.text_at("care_provider", r) or ("de zorgaanbieder" if lang == "nl" else "the care provider")
    if np.isnan(hours) or np.isnan(dist):
        return feature_label("support_x_distance", lang)
    if lang == "nl":
        return f"{number(dist, lang, 1)} km van {provider} bij {number(hours, lang)} uur begeleiding per week"
    return f"{number(dist, lang, 1)} km from {provider} for someone with {number(hours, lang)} support {_plural(hours, 'hour', 'hours')} a week"


@_value_only
def _headroom(v: float, r: int, c: _Columns, lang: str) -> str:
    if lang == "nl":
        return f"huur {money(abs(v), lang, 0)} {'onder' if v >= 0 else 'boven'} de huurgrens van passend toewijzen"
    return f"rent {money(abs(v), lang, 0)} {'under' if v >= 0 else 'over'} the passend-toewijzen rent cap"


def _rent_burden(v: float, r: int, c: _Columns, lang: str) -> str:
    rti, fin = c.at("rent_to_income", r), c.at("zrm_finances", r)
    if np.isnan(rti) or np.isnan(fin):
        return feature_label("rent_burden_x_finances", lang)
    if lang == "nl":
        return f"huur {_percent(rti, lang)} van het inkomen bij zelfredzaamheid financiën {number(fin, lang)}/5"
    return f"rent {_percent(rti, lang)} of income with self-reliance on finances {number(fin, lang)}/5"


@_value_only
def _rooms_surplus(v: float, r: int, c: _Columns, lang: str) -> str:
    n = abs(v)
    if lang == "nl":
        if v == 0:
            return "aantal kamers past precies bij het huishouden"
        return f"{number(n, lang)} {_plural(n, 'kamer', 'kamers')} {'meer' if v > 0 else 'minder'} dan het huishouden groot is"
    if v == 0:
        return "as many rooms as persons in the household"
    return (
        f"{number(n, lang)} {_plural(n, 'room', 'rooms')} {'more' if v > 0 else 'fewer'} than persons in the household"
    )


@_value_only
def _stairs(v: float, r: int, c: _Columns, lang: str) -> str:
    if v == 0:
        return "geen trap: begane grond of lift" if lang == "nl" else "no stairs: ground floor or lift"
    return (
        f"{number(v, lang)} {_plural(v, 'verdieping', 'verdiepingen')} traplopen zonder lift"
        if lang == "nl"
        else f"{number(v, lang)} {_plural(v, 'floor', 'floors')} of stairs without a lift"
    )


@_value_only
def _floor(v: float, r: int, c: _Columns, lang: str) -> str:
    if v == 0:
        return "begane grond" if lang == "nl" else "ground floor"
    return f"{number(v, lang)}e verdieping" if lang == "nl" else f"floor {number(v, lang)}"


def _quiet(detail_en: Callable[[int, _Columns], str], detail_nl: Callable[[int, _Columns], str]) -> Template:
    def template(v: float, r: int, c: _Columns, lang: str) -> str:
        needs = c.at("needs_quiet_surroundings", r)
        if not needs >= 0.5:
            return "heeft geen rustige omgeving nodig" if lang == "nl" else "does not need quiet surroundings"
        return detail_nl(r, c) if lang == "nl" else detail_en(r, c)

    return template


def _val(c: _Columns, name: str, r: int) -> float:
    return c.at(name, r)


def _network(v: float, r: int, c: _Columns, lang: str) -> str:
    district, network = c.text_at("district", r), c.text_at("network_district", r)
    if v >= 0.5:
        return (
            f"eigen netwerk woont in {district or 'dit stadsdeel'}"
            if lang == "nl"
            else f"own network lives in {district or 'this district'}"
        )
    if network:
        return (
            f"eigen netwerk woont in {network}, niet hier"
            if lang == "nl"
            else f"own network lives in {network}, not here"
        )
    return "geen eigen netwerk bekend in dit stadsdeel" if lang == "nl" else "no known own network in this district"


def _special(en: str, nl: str) -> Template:
    return _value_only(lambda v, r, c, lang: nl if lang == "nl" else en)


def _stairs_physical(v: float, r: int, c: _Columns, lang: str) -> str:
    stairs = _stairs(_val(c, "floors_without_lift", r), r, c, lang)
    return (
        f"{stairs}, gezien de lichamelijke gezondheid (ZRM, niet getoond)"
        if lang == "nl"
        else f"{stairs}, given physical health (ZRM, not shown)"
    )


def _addiction_vulnerable(v: float, r: int, c: _Columns, lang: str) -> str:
    share = _percent(_val(c, "vulnerable_household_share", r), lang)
    return (
        f"{share} kwetsbare huishoudens in de buurt, gezien verslaving (ZRM, niet getoond)"
        if lang == "nl"
        else f"{share} vulnerable households in the neighbourhood, given addiction (ZRM, not shown)"
    )


def _isolation_complex(v: float, r: int, c: _Columns, lang: str) -> str:
    score, units = number(_val(c, "zrm_social_network", r), lang), number(_val(c, "units_in_complex", r), lang)
    return (
        f"sociaal netwerk {score}/5 (ZRM) in een complex van {units} woningen"
        if lang == "nl"
        else f"social network {score}/5 (ZRM) in a complex of {units} homes"
    )


_DWELLING_TYPE_WORDS = {
    "house": ("a house", "een eengezinswoning"),
    "gallery_flat": ("a gallery flat", "een galerijflat"),
    "portico_flat": ("a portico flat", "een portiekflat"),
    "apartment": ("an apartment", "een appartement"),
    "studio": ("a studio", "een studio"),
}


_ZRM_SPECIAL = {  # special-category data: named, never with its score (the sheet's footer says why)
    "zrm_mental_health": ("mental health (ZRM, score not shown)", "geestelijke gezondheid (ZRM, score niet getoond)"),
    "zrm_physical_health": (
        "physical health (ZRM, score not shown)",
        "lichamelijke gezondheid (ZRM, score niet getoond)",
    ),
    "zrm_addiction": ("addiction (ZRM, score not shown)", "verslaving (ZRM, score niet getoond)"),
    "zrm_justice": ("justice (ZRM, score not shown)", "justitie (ZRM, score niet getoond)"),
}


def _templates() -> dict[str, Template]:
    t: dict[str, Template] = {name: _zrm(name) for name in ZRM_DOMAINS}
    t.update(
        {
            "zrm_mean": _fmt(
                "overall self-reliance {v}/5 (ZRM mean)",
                "zelfredzaamheid gemiddeld {v}/5 (ZRM)",
                lambda v, lang: number(v, lang, 1),
            ),
            "zrm_min": _fmt("weakest ZRM domain at {v}/5", "zwakste ZRM-domein op {v}/5"),
            "household_size": _count(
                "one-person household", "household of {v}", "eenpersoonshuishouden", "huishouden van {v} personen"
            ),
            "monthly_income_eur": _fmt("income {v} a month", "inkomen {v} per maand", _whole_euros),
            "support_hours_per_week": _count(
                "1 support hour a week",
                "{v} support hours a week",
                "1 uur begeleiding per week",
                "{v} uur begeleiding per week",
            ),
            "from_sheltered_housing": _bool(
                "coming from sheltered housing",
                "coming from a shelter",
                "komt uit beschermd wonen",
                "komt uit de maatschappelijke opvang",
            ),
            "needs_ground_floor_or_lift": _bool(
                "needs ground floor or lift",
                "no need for ground floor or lift",
                "heeft begane grond of lift nodig",
                "geen begane grond of lift nodig",
            ),
            "needs_quiet_surroundings": _bool(
                "needs quiet surroundings",
                "does not need quiet surroundings",
                "heeft een rustige omgeving nodig",
                "heeft geen rustige omgeving nodig",
            ),
            "prior_failed_tenancies": _count(
                "1 earlier tenancy that failed",
                "{v} earlier tenancies that failed",
                "1 eerdere huurperiode die misging",
                "{v} eerdere huurperiodes die misgingen",
            ),
            "floor": _floor,
            "has_lift": _bool(
                "lift in the building", "no lift in the building", "lift in het gebouw", "geen lift in het gebouw"
            ),
            "rooms": _count("1 room", "{v} rooms", "1 kamer", "{v} kamers"),
            "floor_area_m2": _fmt("{v} m² floor area", "{v} m² woonoppervlak"),
            "rent_eur": _fmt("rent {v} a month", "huur {v} per maand", _whole_euros),
            "shared_entrance": _bool("shared entrance", "own front door", "gedeelde entree", "eigen voordeur"),
            "units_in_complex": _fmt("{v} homes in the complex", "{v} woningen in het complex"),
            "construction_year": _fmt("built in {v}", "bouwjaar {v}", lambda v, lang: str(round(v))),
            "wheelchair_accessible": _bool(
                "wheelchair accessible",
                "not wheelchair accessible",
                "rolstoeltoegankelijk",
                "niet rolstoeltoegankelijk",
            ),
            "liveability_score": _fmt(
                "neighbourhood liveability {v}/9", "leefbaarheid buurt {v}/9", lambda v, lang: number(v, lang, 1)
            ),
            "social_housing_share": _fmt(
                "{v} social housing in the neighbourhood", "{v} sociale huur in de buurt", percent
            ),
            "vulnerable_household_share": _fmt(
                "{v} vulnerable households in the neighbourhood", "{v} kwetsbare huishoudens in de buurt", percent
            ),
            "nuisance_reports_per_1000": _fmt(
                "{v} nuisance reports per 1000 households in the neighbourhood",
                "{v} overlastmeldingen per 1000 huishoudens in de buurt",
            ),
            "rent_to_income": _fmt("rent is {v} of income", "huur is {v} van het inkomen", percent),
            "residual_income_eur": _fmt("{v} a month left after rent", "{v} per maand over na de huur", _whole_euros),
            "rent_cap_headroom_eur": _headroom,
            "rent_burden_x_finances": _rent_burden,
            "rooms_surplus": _rooms_surplus,
            "floors_without_lift": _stairs,
            "stairs_x_physical": _stairs_physical,
            "quiet_need_x_units": _quiet(
                lambda r, c: (
                    f"{number(_val(c, 'units_in_complex', r), 'en')} homes in the complex for someone who needs quiet"
                ),
                lambda r, c: (
                    f"{number(_val(c, 'units_in_complex', r), 'nl')} woningen in het complex voor iemand die rust nodig heeft"
                ),
            ),
            "quiet_need_x_shared_entrance": _quiet(
                lambda r, c: (
                    "shared entrance for someone who needs quiet"
                    if _val(c, "shared_entrance", r) >= 0.5
                    else "own front door for someone who needs quiet"
                ),
                lambda r, c: (
                    "gedeelde entree voor iemand die rust nodig heeft"
                    if _val(c, "shared_entrance", r) >= 0.5
                    else "eigen voordeur voor iemand die rust nodig heeft"
                ),
            ),
            "quiet_need_x_nuisance": _quiet(
                lambda r, c: (
                    f"{number(_val(c, 'nuisance_reports_per_1000', r), 'en')} nuisance reports per 1000 households nearby for someone who needs quiet"
                ),
                lambda r, c: (
                    f"{number(_val(c, 'nuisance_reports_per_1000', r), 'nl')} overlastmeldingen per 1000 huishoudens in de buurt voor iemand die rust nodig heeft"
                ),
            ),
            "quiet_need_x_busy_entrance": _quiet(
                lambda r, c: (
                    f"shared entrance to {number(_val(c, 'units_in_complex', r), 'en')} homes for someone who needs quiet"
                    if _val(c, "shared_entrance", r) >= 0.5
                    else "own front door for someone who needs quiet"
                ),
                lambda r, c: (
                    f"gedeelde entree met {number(_val(c, 'units_in_complex', r), 'nl')} woningen voor iemand die rust nodig heeft"
                    if _val(c, "shared_entrance", r) >= 0.5
                    else "eigen voordeur voor iemand die rust nodig heeft"
                ),
            ),
            "isolation_x_complex_size": _isolation_complex,
            "isolation_x_large_complex": _isolation_complex,
            "upper_floor_stairs_x_physical": _stairs_physical,
            "distance_to_care_km": _care,
            "support_x_distance": _support_distance,
            "network_in_district": _network,
            "addiction_x_vulnerable": _addiction_vulnerable,
            "recent_placements_complex": _count(
                "1 recent placement of a client in this complex",
                "{v} recent placements of clients in this complex",
                "1 recente plaatsing van een cliënt in dit complex",
                "{v} recente plaatsingen van cliënten in dit complex",
            ),
            "recent_placements_neighbourhood": _count(
                "1 recent placement of a client in this neighbourhood",
                "{v} recent placements of clients in this neighbourhood",
                "1 recente plaatsing van een cliënt in deze buurt",
                "{v} recente plaatsingen van cliënten in deze buurt",
            ),
            "recent_failures_complex": _count(
                "1 recent failed tenancy in this complex",
                "{v} recent failed tenancies in this complex",
                "1 recent mislukte huurperiode in dit complex",
                "{v} recent mislukte huurperiodes in dit complex",
            ),
            "recent_nuisance_complex": _count(
                "1 recent nuisance report in this complex",
                "{v} recent nuisance reports in this complex",
                "1 recente overlastmelding in dit complex",
                "{v} recente overlastmeldingen in dit complex",
            ),
        }
    )
    for kind, (en, nl) in _DWELLING_TYPE_WORDS.items():
        t[f"type_{kind}"] = _bool(
            f"home is {en}", f"home is not {en}", f"woning is {nl}", f"woning is geen {nl.removeprefix('een ')}"
        )
    for name, (en, nl) in _ZRM_SPECIAL.items():
        t[name] = _special(en, nl)
    t["quiet_need_x_crowded_entrance"] = t["quiet_need_x_busy_entrance"]  # the same words; only the scale differs
    return t


TEMPLATES: dict[str, Template] = _templates()


def phrases(name: str, rows: np.ndarray, cols: _Columns, *, lang: str, special: bool = False) -> list[str]:
    """The sentence fragment for feature `name` at each of `rows` (without the contribution)."""
    template = TEMPLATES.get(name)
    values = cols.num(name, rows)
    if special and name not in TEMPLATES_SAFE_FOR_SPECIAL:
        label = feature_label(name, lang)
        hidden = "niet getoond" if lang == "nl" else "not shown"
        return [f"{label} ({hidden})"] * len(rows)
    if template is None:
        return [f"{feature_label(name, lang)}: {number(v, lang, 2)}" for v in values]
    if template in _VALUE_ONLY:
        distinct, at = np.unique(values, return_inverse=True)
        texts = [template(v, -1, cols, lang) for v in distinct]
        return [texts[k] for k in at.ravel().tolist()]
    return [template(v, r, cols, lang) for v, r in zip(values, rows, strict=True)]


# Templates that already hide the special-category value themselves.
TEMPLATES_SAFE_FOR_SPECIAL = frozenset({*_ZRM_SPECIAL, "stairs_x_physical", "addiction_x_vulnerable"})
