"""Eligibility: the hard rules a meeting never breaks, applied to (vacancy, candidate) pairs before ranking.

Each rule is named and configured in params.yaml `eligibility`; `rules` lists the
active rules in the order they are checked. A pair that fails several rules is
reported once, under the *first* failing rule in that order (`rule`), with every
failing rule in `failed_rules` (joined by ";") and a plain-language `detail`.

The rules (True = the pair may be suggested):

- `passend_toewijzen`: a household whose yearly income (monthly × 12) is at or under
  the income threshold of its size and the meeting's year gets a home with rent at
  or under the rent cap (rent exactly at the cap is allowed). Amounts come from
  params.yaml `passend_toewijzen` (`features.rules.PassendToewijzen`).
- `rooms`: the home has at least `min_rooms_by_household_size[size - 1]` rooms (the
  last entry for larger households) and, if `max_rooms_surplus` is set, at most
  household size + that surplus.
- `wheelchair`: a client who needs wheelchair access gets a wheelchair-accessible home.
- `ground_floor_or_lift`: a client who needs it gets a ground-floor home or one with a lift.
- `avoid_district`: never a home in the district the client must stay away from.

Everything here is vectorised over a pairs frame and free of I/O, so the evaluation
code can apply the same rules to many meetings at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.config import ConfigError
from features.contract import on_distinct
from features.formatting import money
from features.load import Dataset
from features.lookup import rows_by_key
from features.profiles import clients_as_of
from features.rules import PassendToewijzen

RULE_NAMES: tuple[str, ...] = ("passend_toewijzen", "rooms", "wheelchair", "ground_floor_or_lift", "avoid_district")

RULE_LABELS: dict[str, dict[str, str]] = {
    "passend_toewijzen": {
        "en": "passend toewijzen: rent above the cap for this income",
        "nl": "passend toewijzen: huur boven de huurgrens bij dit inkomen",
    },
    "rooms": {"en": "rooms do not fit the household size", "nl": "aantal kamers past niet bij de huishoudgrootte"},
    "wheelchair": {"en": "needs wheelchair access", "nl": "heeft een rolstoeltoegankelijke woning nodig"},
    "ground_floor_or_lift": {"en": "needs ground floor or lift", "nl": "heeft begane grond of lift nodig"},
    "avoid_district": {"en": "home in the district to avoid", "nl": "woning in het stadsdeel om te vermijden"},
}

EXCLUDED_COLUMNS = ("rule", "failed_rules", "detail")
ERR_UNKNOWN_RULE = "params: eligibility.rules: unknown rule(s) {names}; known rules are {known}"
ERR_DUPLICATE_RULE = "params: eligibility.rules lists {names} more than once"
ERR_MIN_ROOMS = "params: eligibility.min_rooms_by_household_size must list at least one whole number ≥ 1"

# Money and income comparisons are exact up to float noise of values parsed from decimals.
_EPS = 1e-6


@dataclass(frozen=True)
class EligibilityParams:
    """params.yaml `eligibility`: which rules apply (in checking order) and their settings."""

    rules: tuple[str, ...] = RULE_NAMES
    income_months_per_year: float = 12.0
    min_rooms_by_household_size: tuple[int, ...] = (1, 2, 3, 3, 4)
    max_rooms_surplus: int | None = None

    def __post_init__(self) -> None:
        unknown = [r for r in self.rules if r not in RULE_NAMES]
        if unknown:
            raise ConfigError(ERR_UNKNOWN_RULE.format(names=", ".join(unknown), known=", ".join(RULE_NAMES)))
        dupes = sorted({r for r in self.rules if self.rules.count(r) > 1})
        if dupes:
            raise ConfigError(ERR_DUPLICATE_RULE.format(names=", ".join(dupes)))
        if not self.min_rooms_by_household_size or min(self.min_rooms_by_household_size) < 1:
            raise ConfigError(ERR_MIN_ROOMS)


def _pair_attributes(ds: Dataset, pairs: pd.DataFrame) -> dict[str, np.ndarray]:
    """The home, neighbourhood and client attributes the rules need, aligned with `pairs` rows."""
    district = ds.neighbourhoods.set_index("neighbourhood_id")["district"]
    h = rows_by_key(ds.dwellings, "dwelling_id", pairs["dwelling_id"].to_numpy(), pairs.index)  # id index made once
    c = clients_as_of(ds, pairs)  # household size and income as of each pair's meeting

    def num(frame: pd.DataFrame, col: str) -> np.ndarray:
        return frame[col].to_numpy(dtype=float, na_value=np.nan)

    def shown(values: pd.Series) -> pd.Series:  # each distinct value once: a few districts over many pairs
        return on_distinct(values, lambda u: u.astype("string")).astype("string").fillna("")

    def text(values: pd.Series) -> np.ndarray:
        return on_distinct(shown(values), lambda u: u.str.strip().str.casefold()).to_numpy(dtype=object)

    home_district = district.reindex(h["neighbourhood_id"].to_numpy())
    return {
        "year": pairs["meeting_date"].dt.year.to_numpy(),
        "household_size": num(c, "household_size"),
        "monthly_income_eur": num(c, "monthly_income_eur"),
        "needs_wheelchair_access": num(c, "needs_wheelchair_access") == 1,
        "needs_ground_floor_or_lift": num(c, "needs_ground_floor_or_lift") == 1,
        "avoid_district": text(c["avoid_district"]),
        "avoid_district_shown": shown(c["avoid_district"]).to_numpy(dtype=object),
        "rent_eur": num(h, "rent_eur"),
        "rooms": num(h, "rooms"),
        "floor": num(h, "floor"),
        "has_lift": num(h, "has_lift") == 1,
        "wheelchair_accessible": num(h, "wheelchair_accessible") == 1,
        "home_district": text(home_district),
    }


def _checks(a: dict[str, np.ndarray], rules: EligibilityParams, amounts: PassendToewijzen) -> dict[str, np.ndarray]:
    size = a["household_size"]
    thresholds, caps = amounts.for_rows(pd.Series(a["year"]), pd.Series(size))
    a["threshold"], a["cap"] = thresholds, caps
    a["yearly_income"] = a["monthly_income_eur"] * rules.income_months_per_year
    low_income = a["yearly_income"] <= thresholds + _EPS
    min_rooms = np.asarray(rules.min_rooms_by_household_size, dtype=float)
    a["rooms_needed"] = min_rooms[np.clip(size.astype(int) - 1, 0, len(min_rooms) - 1)]
    rooms_ok = a["rooms"] >= a["rooms_needed"]
    if rules.max_rooms_surplus is not None:
        rooms_ok &= a["rooms"] - size <= rules.max_rooms_surplus
    avoid = a["avoid_district"]
    return {
        "passend_toewijzen": ~low_income | (a["rent_eur"] <= caps + _EPS),
        "rooms": rooms_ok,
        "wheelchair": ~a["needs_wheelchair_access"] | a["wheelchair_accessible"],
        "ground_floor_or_lift": ~a["needs_ground_floor_or_lift"] | (a["floor"] == 0) | a["has_lift"],
        "avoid_district": (avoid == "") | (avoid != a["home_district"]),
    }


def rule_checks(ds: Dataset, pairs: pd.DataFrame, rules: EligibilityParams, amounts: PassendToewijzen) -> pd.DataFrame:
    """One boolean column per active rule (True = the pair passes), aligned with `pairs`."""
    checks = _checks(_pair_attributes(ds, pairs), rules, amounts)
    return pd.DataFrame({r: checks[r] for r in rules.rules}, index=pairs.index, dtype=bool)


def apply_eligibility(
    ds: Dataset,
    pairs: pd.DataFrame,
    rules: EligibilityParams,
    amounts: PassendToewijzen,
    *,
    lang: str = "en",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split (meeting_date, dwelling_id, client_id) pairs into eligible and excluded ones.

    Args:
        ds: the dataset the ids refer to (homes, neighbourhoods, clients).
        pairs: at least `meeting_date`, `dwelling_id`, `client_id`; other columns are kept.
        rules: the active rules and their settings (params.yaml `eligibility`).
        amounts: passend-toewijzen amounts by year (params.yaml `passend_toewijzen`).
        lang: language of `detail` ("en" or "nl").

    Returns:
        (eligible, excluded): the rows of `pairs` (index kept) that pass every rule, and
        those that do not, with `rule` (the first failing rule in `rules.rules` order),
        `failed_rules` (all failing rules, ";"-joined) and `detail` (why, in words).
    """
    a = _pair_attributes(ds, pairs)
    checks = _checks(a, rules, amounts)
    names = list(rules.rules)
    passes = np.column_stack([checks[r] for r in names]) if names else np.ones((len(pairs), 0), dtype=bool)
    ok = np.asarray(passes.all(axis=1), dtype=bool)
    eligible = pairs.loc[ok].copy()
    excluded = pairs.loc[~ok].copy()
    if not excluded.empty:
        fails = ~passes[~ok]
        first = fails.argmax(axis=1)
        excluded["rule"] = np.asarray(names, dtype=object)[first]
        patterns, at = np.unique(fails, axis=0, return_inverse=True)  # few distinct combinations of failed rules
        joined = [";".join(n for n, f in zip(names, row, strict=True) if f) for row in patterns]
        excluded["failed_rules"] = [joined[k] for k in at.ravel().tolist()]
        sub = {k: v[~ok] for k, v in a.items()}
        detail = np.empty(len(excluded), dtype=object)
        for i, name in enumerate(names):
            at = first == i
            if at.any():
                detail[at] = _DETAILS[name]({k: v[at] for k, v in sub.items()}, lang)
        excluded["detail"] = detail
    else:
        for col in EXCLUDED_COLUMNS:
            excluded[col] = pd.Series(dtype=object)
    return eligible, excluded


def unverified_amounts(years, amounts: PassendToewijzen, *, lang: str = "en") -> list[str]:
    """Warnings for meeting years whose passend-toewijzen amounts are unverified or borrowed from an earlier year."""
    warnings = []
    for year in sorted({int(y) for y in years}):
        used = max((y for y in amounts.years if y <= year), default=None)
        if used is None:
            continue  # amounts_for raises a clear UserError for this case
        if used != year:
            warnings.append(
                f"passend toewijzen: no amounts configured for {year}; using those of {used}. Configure {year} in params.yaml."
                if lang == "en"
                else f"passend toewijzen: geen bedragen voor {year} ingesteld; die van {used} worden gebruikt. Stel {year} in in params.yaml."
            )
        if not amounts.years[used].verified:
            warnings.append(
                f"passend toewijzen: the {used} amounts are marked verified: false in params.yaml; check the official income thresholds and rent caps before relying on this rule."
                if lang == "en"
                else f"passend toewijzen: de bedragen van {used} staan op verified: false in params.yaml; controleer de officiële inkomensgrenzen en huurgrenzen voordat u op deze regel vertrouwt."
            )
    return warnings


def _each_distinct(values: np.ndarray, text: Callable[[float], str]) -> list[str]:
    """`text` of every value, computed once per distinct value (amounts repeat across a meeting's pairs)."""
    distinct, at = np.unique(np.asarray(values, dtype=float), return_inverse=True)
    texts = [text(v) for v in distinct]
    return [texts[k] for k in at.ravel().tolist()]


def _detail_passend(a: dict, lang: str) -> list[str]:
    out = []
    rents = _each_distinct(a["rent_eur"], lambda v: money(v, lang))
    caps = _each_distinct(a["cap"], lambda v: money(v, lang))
    incomes = _each_distinct(a["yearly_income"], lambda v: money(v, lang, 0))
    thresholds = _each_distinct(a["threshold"], lambda v: money(v, lang, 0))
    for rent, cap, inc, thr, size, year in zip(
        rents, caps, incomes, thresholds, a["household_size"], a["year"], strict=True
    ):
        n = int(size)
        if lang == "nl":
            out.append(
                f"huur {rent} boven de huurgrens {cap} ({year}, huishouden van {n}); "
                f"inkomen {inc} per jaar ≤ grens {thr}"
            )
        else:
            out.append(
                f"rent {rent} above the {year} cap of {cap} (household of {n}); income {inc} a year ≤ threshold {thr}"
            )
    return out


def _detail_rooms(a: dict, lang: str) -> list[str]:
    out = []
    for rooms, size, need in zip(a["rooms"], a["household_size"], a["rooms_needed"], strict=True):
        r, n, k = int(rooms), int(size), int(need)
        if rooms < need:
            out.append(
                f"{r} kamer(s) voor een huishouden van {n} (minstens {k} nodig)"
                if lang == "nl"
                else f"{r} room{'s' if r != 1 else ''} for a household of {n} (at least {k} needed)"
            )
        else:
            out.append(
                f"{r} kamers voor een huishouden van {n} (te groot)"
                if lang == "nl"
                else f"{r} rooms for a household of {n} (too large)"
            )
    return out


def _constant(en: str, nl: str) -> Callable[[dict, str], list[str]]:
    return lambda a, lang: [nl if lang == "nl" else en] * len(a["rooms"])


def _detail_lift(a: dict, lang: str) -> list[str]:
    return [
        f"heeft begane grond of lift nodig; verdieping {int(f)} zonder lift"
        if lang == "nl"
        else f"needs ground floor or lift; floor {int(f)} without a lift"
        for f in a["floor"]
    ]


def _detail_avoid(a: dict, lang: str) -> list[str]:
    return [
        f"woning ligt in {d}, het stadsdeel dat de cliënt moet vermijden"
        if lang == "nl"
        else f"home is in {d}, the district the client must stay away from"
        for d in a["avoid_district_shown"]
    ]


_DETAILS: dict[str, Callable[[dict, str], list[str]]] = {
    "passend_toewijzen": _detail_passend,
    "rooms": _detail_rooms,
    "wheelchair": _constant(
        "needs wheelchair access; the home is not wheelchair accessible",
        "heeft een rolstoeltoegankelijke woning nodig; deze woning is dat niet",
    ),
    "ground_floor_or_lift": _detail_lift,
    "avoid_district": _detail_avoid,
}
