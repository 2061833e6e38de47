"""A meeting is a region on a date: the one key every per-meeting groupby uses.

Rows of pairs or placements carry `meeting_date` and, with regional data, `region`
(contract.REGION). A frame without `region` is one region (DEFAULT_REGION), so
single-region data group exactly as they did by date alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import DEFAULT_REGION, REGION
from features.load import Dataset, region_of

MEETING = ["meeting_date", REGION]  # sort and group by these, in this order


def meeting_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The (meeting_date, region) of each row, aligned with `frame` (region DEFAULT_REGION when absent)."""
    return pd.DataFrame(
        {"meeting_date": frame["meeting_date"], REGION: region_of(frame).astype(str)},
        index=frame.index,
    )


def meeting_codes(frame: pd.DataFrame) -> np.ndarray:
    """Integer code of each row's regional meeting, numbered in (meeting_date, region) order."""
    if len(frame) == 0:
        return np.zeros(0, dtype=np.int64)
    return meeting_frame(frame).groupby(MEETING, sort=True).ngroup().to_numpy(dtype=np.int64)


def meeting_label(frame: pd.DataFrame) -> pd.Series:
    """A string naming each row's regional meeting ("2024-01-01", or "2024-01-01|R01" with regions)."""
    keys = meeting_frame(frame)
    day = keys["meeting_date"].dt.strftime("%Y-%m-%d")
    named = keys[REGION] != DEFAULT_REGION
    return day.where(~named, day + "|" + keys[REGION])


def has_regions(frame: pd.DataFrame) -> bool:
    """Whether `frame` names any region other than the default (then outputs show a `region` column)."""
    return REGION in frame.columns and bool((frame[REGION].astype(str) != DEFAULT_REGION).any())


def with_region(ds: Dataset, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (meeting_date, dwelling_id, ...) with the `region` of each row's home at that meeting (vacancies)."""
    if REGION in frame.columns:
        return frame
    vac = ds.vacancies
    index = pd.MultiIndex.from_frame(vac[["meeting_date", "dwelling_id"]])
    lookup = pd.Series(region_of(vac).astype(str).to_numpy(), index=index)
    lookup = lookup[~lookup.index.duplicated(keep="first")]
    idx = pd.MultiIndex.from_frame(frame[["meeting_date", "dwelling_id"]])
    region = lookup.reindex(idx).fillna(DEFAULT_REGION).to_numpy(dtype=object)
    return frame.assign(**{REGION: region})


def meeting_batches(codes: np.ndarray, max_rows: int) -> list[np.ndarray]:
    """Row positions of whole regional meetings, in order, batched up to `max_rows` rows (a meeting is never split).

    `codes` are the rows' meeting codes (`meeting_codes`), sorted. A meeting larger than
    `max_rows` is a batch of its own.
    """
    if len(codes) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    batches, first = [], 0
    for i in range(1, len(starts) + 1):
        if i == len(starts) or ends[i] - starts[first] > max_rows:
            batches.append(np.arange(starts[first], ends[i - 1]))
            first = i
    return batches


def date_batches(ds: Dataset, dates, *, max_dates: int, max_pairs: int) -> list[list]:
    """`dates` in order, batched up to `max_dates` dates and `max_pairs` (vacancy, candidate) pairs a batch.

    Pairs are counted within each regional meeting (homes × candidates of its region); a
    date with more than `max_pairs` pairs is a batch of its own.
    """
    homes = meeting_frame(ds.vacancies).value_counts()
    clients = meeting_frame(ds.candidates).value_counts()
    per_meeting = (homes * clients.reindex(homes.index).fillna(0)).groupby(level="meeting_date").sum()
    batches: list[list] = []
    current: list = []
    size = 0.0
    for day in dates:
        n = float(per_meeting.get(pd.Timestamp(day), 0.0))
        if current and (len(current) >= max_dates or size + n > max_pairs):
            batches.append(current)
            current, size = [], 0.0
        current.append(day)
        size += n
    if current:
        batches.append(current)
    return batches
