"""Client profiles as of a meeting date.

`clients` holds one profile per client (at intake, or as of the extract). Where a supplier
keeps an effective-dated history (the optional table `client_profiles`), a pair at a meeting
gets the latest history row with `valid_from` ≤ the meeting date; before the first such row,
the profile in `clients`. Homes and neighbourhoods carry no dates: every meeting sees them as
in the extract.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import PROFILE_COLUMNS
from features.load import Dataset
from features.lookup import rows_by_key


def clients_as_of(ds: Dataset, keys: pd.DataFrame) -> pd.DataFrame:
    """The `clients` row of each (client_id, meeting_date) in `keys`, with its profile as of that meeting.

    Args:
        ds: the dataset.
        keys: a frame with `client_id` and `meeting_date` columns.

    Returns:
        A frame with `keys`' index and every `clients` column (client_id included); the columns in
        `PROFILE_COLUMNS` come from the latest `client_profiles` row with valid_from ≤ meeting_date, if any.
    """
    ids = keys["client_id"].to_numpy()
    out = rows_by_key(ds.clients, "client_id", ids, keys.index)  # the clients' id index made once
    history = ds.client_profiles
    if history is None or history.empty or out.empty:
        return out
    query = pd.DataFrame(
        {
            "client_id": pd.array(ids, dtype="string"),
            "meeting_date": keys["meeting_date"].to_numpy(),
            "_pos": np.arange(len(keys)),
        }
    ).sort_values("meeting_date", kind="stable")
    rows = history.sort_values(["valid_from", "client_id"], kind="stable")
    found = pd.merge_asof(
        query, rows, left_on="meeting_date", right_on="valid_from", by="client_id", direction="backward"
    ).sort_values("_pos", kind="stable")
    dated = found["valid_from"].notna().to_numpy()
    for col in PROFILE_COLUMNS:
        newer = pd.Series(found[col].to_numpy(), index=out.index).astype(out[col].dtype)
        out[col] = out[col].mask(dated, newer)
    return out
