"""Replay held-out weeks as a queue, once per priority policy: who would have been housed, and when.

A per-meeting comparison counts a client the plan does not place this week as
displaced, although they are usually placed a week later. The replay follows the
queue instead: at each meeting the real vacancies are offered to the clients
waiting then under the policy's own history:

- a client joins the queue at their first meeting as a candidate (real arrivals);
- a client who historically left without a home (a drop-out) leaves after the
  last meeting they attended, if the policy has not placed them before;
- a client the policy places leaves the queue; one it does not place stays,
  also past the week the historical meeting placed them.

Pairs are scored by a callable (eligibility, features and P(sustained) in the
pipeline; a literal frame in tests), so this module stays free of the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import DEFAULT_REGION, REGION
from features.load import region_of
from planning.assignment import AssignmentParams
from planning.priority import plan_policy

PAIR_KEYS = ["meeting_date", "dwelling_id", "client_id"]


@dataclass(frozen=True)
class QueueHistory:
    """Who arrived when, who left without a home when, and the homes offered at each meeting."""

    arrival: pd.Series  # client_id -> first meeting as a candidate
    last_seen: pd.Series  # client_id -> last meeting as a candidate
    dropout: pd.Series  # client_id -> last meeting attended, for clients who left without a home
    vacancies: Mapping[pd.Timestamp, list]  # meeting -> dwelling_ids offered
    # A meeting is a region on a date: a home is offered to the clients of its own region only.
    home_region: Mapping[tuple, str] | None = None  # (meeting, dwelling_id) -> region; None = one region
    client_region: pd.Series | None = None  # client_id -> region (at their last meeting as a candidate)

    def region_of_home(self, meeting: pd.Timestamp, dwelling) -> str:
        return DEFAULT_REGION if self.home_region is None else self.home_region.get((meeting, dwelling), DEFAULT_REGION)

    def region_of_client(self, client) -> str:
        return DEFAULT_REGION if self.client_region is None else self.client_region.get(client, DEFAULT_REGION)


@dataclass
class Replay:
    """Per policy: the placements it makes (meeting_date, dwelling_id, client_id, p_sustained, waiting_weeks)
    and the clients still waiting after the last meeting (client_id, waiting_weeks)."""

    placements: pd.DataFrame
    waiting: pd.DataFrame


def queue_history(candidates: pd.DataFrame, vacancies: pd.DataFrame, placed_clients) -> QueueHistory:
    """The queue's real events from the candidates and vacancies tables and the clients ever placed."""
    seen = candidates.groupby("client_id")["meeting_date"].agg(["min", "max"])
    last_meeting = candidates["meeting_date"].max()
    left = seen[~seen.index.isin(set(placed_clients)) & (seen["max"] < last_meeting)]
    offered = {pd.Timestamp(m): sorted(g) for m, g in vacancies.groupby("meeting_date")["dwelling_id"]}
    home_region = client_region = None
    if len(set(region_of(vacancies)) | set(region_of(candidates))) > 1:
        home_region = dict(
            zip(
                zip(pd.to_datetime(vacancies["meeting_date"]), vacancies["dwelling_id"], strict=True),
                region_of(vacancies),
                strict=True,
            )
        )
        last = candidates.sort_values("meeting_date", kind="stable").drop_duplicates("client_id", keep="last")
        client_region = pd.Series(region_of(last).to_numpy(), index=last["client_id"].to_numpy())
    return QueueHistory(
        arrival=seen["min"],
        last_seen=seen["max"],
        dropout=left["max"],
        vacancies=offered,
        home_region=home_region,
        client_region=client_region,
    )


def _queue_pairs(history: QueueHistory, meeting: pd.Timestamp, homes: list, queue: list) -> pd.DataFrame:
    """Every (home, queued client) pair of one meeting, homes in order and clients in queue order within each.

    With regions, a home meets only its own region's queue (and the frame has a `region` column).
    """
    home_ids = np.array(homes, dtype=object)
    client_ids = np.array(queue, dtype=object)
    day = pd.Timestamp(meeting).to_datetime64().astype("datetime64[ns]")
    if history.home_region is None:
        return pd.DataFrame(
            {
                "meeting_date": np.full(len(home_ids) * len(client_ids), day),
                "dwelling_id": np.repeat(home_ids, len(client_ids)),
                "client_id": np.tile(client_ids, len(home_ids)),
            },
            columns=PAIR_KEYS,
        )
    where = np.array([history.region_of_client(c) for c in queue], dtype=object)
    by_region = {r: np.flatnonzero(where == r) for r in dict.fromkeys(where.tolist())}
    region_of_home = [history.region_of_home(meeting, h) for h in homes]
    picks = [by_region.get(r, np.zeros(0, dtype=np.int64)) for r in region_of_home]
    sizes = np.array([len(x) for x in picks], dtype=np.int64)
    clients = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    return pd.DataFrame(
        {
            "meeting_date": np.full(len(clients), day),
            "dwelling_id": np.repeat(home_ids, sizes),
            "client_id": client_ids[clients],
            REGION: np.repeat(np.array(region_of_home, dtype=object), sizes),
        },
        columns=[*PAIR_KEYS, REGION],
    )


def _waiting_at(history: QueueHistory, arrival: pd.Series, meeting: pd.Timestamp) -> list:
    """The clients of the queue at `meeting` before any policy's placements: arrived, not gone, in arrival order."""
    arrived = arrival[arrival <= meeting].index
    gone = set(history.dropout[history.dropout < meeting].index)
    return [c for c in arrived if c not in gone]


def _score_ahead(
    history: QueueHistory,
    arrival: pd.Series,
    meetings: list,
    placed: Mapping[str, Mapping],
    score: Callable[[pd.DataFrame], pd.DataFrame],
    batch_weeks: int,
    batch_pairs: int,
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Scored pairs of the next meetings (at least one, up to `batch_weeks` and `batch_pairs` pairs) in one call.

    Each meeting's pairs are its homes with every client who can be in some policy's queue
    then: the waiting clients but those every policy has placed already. The queues of
    the meetings in between only lose clients, so each is within these pairs.
    """
    placed_by_all = set.intersection(*(set(p) for p in placed.values())) if placed else set()
    parts: list[pd.DataFrame] = []
    covered: list[pd.Timestamp] = []  # the meetings these pairs serve, in order
    total = 0
    for meeting in meetings[:batch_weeks]:
        homes = history.vacancies.get(meeting, [])
        clients = sorted(c for c in _waiting_at(history, arrival, meeting) if c not in placed_by_all)
        pairs = _queue_pairs(history, meeting, homes, clients) if homes and clients else None
        if pairs is not None and parts and total + len(pairs) > batch_pairs:
            break
        covered.append(meeting)
        if pairs is not None and len(pairs):
            parts.append(pairs)
            total += len(pairs)
    ahead: dict[pd.Timestamp, pd.DataFrame] = {m: pd.DataFrame() for m in covered}
    if parts:
        scored = score(pd.concat(parts, ignore_index=True))
        for meeting, rows in scored.groupby("meeting_date", sort=False):
            ahead[pd.Timestamp(meeting)] = rows
    return ahead


def replay(
    history: QueueHistory,
    meetings,
    policies: Mapping[str, AssignmentParams],
    score: Callable[[pd.DataFrame], pd.DataFrame],
    *,
    batch_weeks: int = 1,
    batch_pairs: int = 200_000,
) -> dict[str, Replay]:
    """Run every policy over `meetings` (in date order) as a queue; see the module doc.

    `score(pairs)` gets (meeting_date, dwelling_id, client_id) pairs and returns the
    eligible ones with a `p_sustained` column (and `complex_id` when a policy caps
    complexes). Pairs are scored once per meeting for the union of the policies' queues.
    With `batch_weeks` > 1, `score` must judge each pair on its own (as the pipeline's does):
    the pairs of up to `batch_weeks` coming meetings (and `batch_pairs` pairs, unless one
    meeting has more) are then scored in one call, with every client who can still be in a
    queue by then, and each meeting reads its queue's rows from them: the same rows in the
    same order, in fewer, larger calls (most of a call's cost does not grow with its pairs).
    """
    placed: dict[str, dict] = {name: {} for name in policies}  # client -> meeting placed
    rows: dict[str, list] = {name: [] for name in policies}
    meetings = sorted(pd.Timestamp(m) for m in meetings)
    # the queue at the first meeting is the real one: clients placed or gone before it are not in it
    present = history.last_seen[history.last_seen >= meetings[0]].index if meetings else history.last_seen.index[:0]
    arrival = history.arrival.loc[present]
    ahead: dict[pd.Timestamp, pd.DataFrame] = {}
    for i, meeting in enumerate(meetings):
        homes = history.vacancies.get(meeting, [])
        base = _waiting_at(history, arrival, meeting)
        queues = {name: [c for c in base if c not in placed[name]] for name in policies}
        union = sorted(set().union(*queues.values())) if queues else []
        batched = batch_weeks > 1
        if batched and meeting not in ahead:
            ahead = _score_ahead(history, arrival, meetings[i:], placed, score, batch_weeks, batch_pairs)
        if not homes or not union:
            continue
        if batched:
            known = ahead.get(meeting, pd.DataFrame())
            if known.empty:
                continue
            scored = known[known["client_id"].isin(set(union)).to_numpy(bool)].reset_index(drop=True)
        else:
            pairs = _queue_pairs(history, meeting, homes, union)
            if pairs.empty:
                continue
            scored = score(pairs).reset_index(drop=True)
        if scored.empty:
            continue
        waiting = (meeting - scored["client_id"].map(history.arrival)).dt.days / 7.0
        for name, params in policies.items():
            mine = scored["client_id"].isin(set(queues[name])).to_numpy()
            plan = plan_policy(scored[mine], waiting[mine], params, benefit="p_sustained")
            for r in plan.itertuples(index=False):
                placed[name][r.client_id] = meeting
            best = scored[mine].groupby("client_id")["p_sustained"].max()
            rows[name].append(
                plan.assign(
                    waiting_weeks=(meeting - plan["client_id"].map(history.arrival)).dt.days / 7.0,
                    best_p_sustained=plan["client_id"].map(best),
                )
            )
    end = meetings[-1] if meetings else pd.Timestamp("NaT")
    out = {}
    for name in policies:
        done = (
            pd.concat(rows[name], ignore_index=True)
            if rows[name]
            else pd.DataFrame(columns=[*PAIR_KEYS, "p_sustained", "waiting_weeks", "best_p_sustained"])
        )
        arrived = arrival[arrival <= end].index
        still = [
            c
            for c in arrived
            if c not in placed[name] and not (c in history.dropout.index and history.dropout[c] < end)
        ]
        wait = ((end - history.arrival.loc[still]).dt.days / 7.0).rename("waiting_weeks")
        out[name] = Replay(placements=done, waiting=wait.rename_axis("client_id").reset_index())
    return out
