"""Year-versioned passend-toewijzen amounts (Woningwet), read from params.yaml.

Shared by the eligibility rules (models/eligibility.py) and the pair features
(rent headroom), so the amounts live in one place: params.yaml `passend_toewijzen`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.errors import UserError


@dataclass(frozen=True)
class YearAmounts:
    """Income thresholds (per year) and rent caps (per month) of one calendar year."""

    income_threshold_single: float
    income_threshold_multi: float
    rent_cap_small: float  # households of 1-2 persons
    rent_cap_large: float  # households of 3 or more
    verified: bool = True


@dataclass(frozen=True)
class PassendToewijzen:
    """The amounts by year; `years` maps a calendar year to its amounts."""

    years: dict[int, YearAmounts]
    large_household_from: int = 3

    def amounts_for(self, year: int) -> YearAmounts:
        """The amounts of `year`; the latest configured earlier year if `year` has none."""
        known = sorted(self.years)
        earlier = [y for y in known if y <= year]
        if not earlier:
            raise UserError(
                f"params: passend_toewijzen has no amounts for {year} or earlier (configured: {', '.join(map(str, known))})"
            )
        return self.years[earlier[-1]]

    def for_rows(self, years: pd.Series, household_size: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """Per row: (yearly income threshold, monthly rent cap) for that year and household size."""
        thresholds = np.empty(len(years))
        caps = np.empty(len(years))
        year_values = years.to_numpy()
        large = household_size.to_numpy() >= self.large_household_from
        single = household_size.to_numpy() <= 1
        for year in np.unique(year_values):
            a = self.amounts_for(int(year))
            at = year_values == year
            thresholds[at] = np.where(single[at], a.income_threshold_single, a.income_threshold_multi)
            caps[at] = np.where(large[at], a.rent_cap_large, a.rent_cap_small)
        return thresholds, caps
