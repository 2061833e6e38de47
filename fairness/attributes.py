"""Protected attributes of audited rows: read here from client_protected, and nowhere else."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from fairness.params import GROUP_SEP, FairnessParams, intersection_name
from features.errors import UserError
from features.load import Dataset
from features.profiles import clients_as_of

ERR_NO_PROTECTED = (
    "the dataset has no client_protected table: the fairness audit needs gender, birth_year and "
    "migration_background per client (client_protected.csv, audit only, never a model feature)"
)


def age_band(age: pd.Series, edges: tuple[int, ...]) -> pd.Series:
    """Age band labels from ascending edges: `<18`, `18-24`, …, `65+` for edges (18, 25, …, 65)."""
    edges = tuple(int(e) for e in edges)
    labels = [f"<{edges[0]}"] + [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(edges)] + [f"{edges[-1]}+"]
    idx = np.digitize(age.to_numpy(dtype=float), edges, right=False)
    return pd.Series(np.array(labels, dtype=object)[idx], index=age.index)


def attribute_frame(ds: Dataset, rows: pd.DataFrame, *, params: FairnessParams) -> pd.DataFrame:
    """Audit attributes of each row (`client_id`, `meeting_date`, optionally `dwelling_id`).

    Age is the meeting year minus the birth year (exact to a year: only the birth
    year is known). Household type is `single` (household_size 1 as of the meeting) or `multi`.
    District is that of the home and exists only for rows with a `dwelling_id`.
    """
    if ds.client_protected is None:
        raise UserError(ERR_NO_PROTECTED)
    prot = ds.client_protected.set_index("client_id")
    clients = ds.clients.set_index("client_id")
    cid = rows["client_id"]
    out = pd.DataFrame(index=rows.index)
    out["gender"] = cid.map(prot["gender"]).astype(object)
    age = rows["meeting_date"].dt.year - cid.map(prot["birth_year"]).astype(float)
    out["age_band"] = age_band(age, params.age_band_edges)
    out["migration_background"] = cid.map(prot["migration_background"]).astype(object)
    size = clients_as_of(ds, rows)["household_size"].astype(float)  # as of the meeting
    out["household_type"] = np.where(size <= 1, "single", "multi")
    out["care_provider"] = cid.map(clients["care_provider"]).astype(object)
    if "dwelling_id" in rows:
        hood = rows["dwelling_id"].map(ds.dwellings.set_index("dwelling_id")["neighbourhood_id"])
        out["district"] = hood.map(ds.neighbourhoods.set_index("neighbourhood_id")["district"]).astype(object)
    missing = out[[c for c in ("gender", "migration_background") if c in out]].isna().any(axis=1)
    if missing.any():
        ids = ", ".join(sorted(set(cid[missing].astype(str)))[:5])
        raise UserError(
            f"client_protected has no row for {int(cid[missing].nunique())} audited client(s) (e.g. {ids}): "
            "the audit needs gender, birth_year and migration_background for every client"
        )
    available = tuple(out.columns)
    for combo in params.intersections:
        if all(a in available for a in combo):
            joined = out[combo[0]].astype(str)  # a row-wise join of the texts, column by column (no per-row call)
            for attribute in combo[1:]:
                joined = joined + GROUP_SEP + out[attribute].astype(str)
            out[intersection_name(combo)] = joined
    keep = params.all_attributes(available)
    return out[list(keep)]
