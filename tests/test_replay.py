"""The queue replay: arrivals join, drop-outs leave when they left, a client not placed stays and is placed later."""

from __future__ import annotations

import pandas as pd

from planning.assignment import AssignmentParams
from planning.replay import queue_history, replay

W1, W2, W3 = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08"), pd.Timestamp("2024-01-15")


def _history():
    # a waits from W1; b arrives at W1 and drops out after W1 (never placed historically); c arrives at W2;
    # d waits from W1 and was placed historically at W1 (so not a drop-out). One home per week.
    candidates = pd.DataFrame(
        {
            "meeting_date": [W1, W1, W1, W2, W2, W3, W3],
            "client_id": ["a", "b", "d", "a", "c", "a", "c"],
        }
    )
    vacancies = pd.DataFrame({"meeting_date": [W1, W2, W3], "dwelling_id": ["H1", "H2", "H3"]})
    return queue_history(candidates, vacancies, placed_clients={"d", "a"})


def _score(fit: dict[str, float]):
    def score(pairs: pd.DataFrame) -> pd.DataFrame:
        return pairs.assign(p_sustained=pairs["client_id"].map(fit))

    return score


def test_queue_history_events():
    h = _history()
    assert h.arrival.to_dict() == {"a": W1, "b": W1, "c": W2, "d": W1}
    assert h.dropout.to_dict() == {"b": W1}  # d was placed; a and c are still there at the last meeting
    assert h.vacancies[W2] == ["H2"]


def test_replay_places_by_waiting_keeps_the_unplaced_and_lets_drop_outs_leave():
    fit = {"a": 0.5, "b": 0.9, "c": 0.99, "d": 0.6}
    out = replay(
        _history(),
        [W1, W2, W3],
        {"exact": AssignmentParams(), "everyone": AssignmentParams(policy="everyone")},
        _score(fit),
    )
    exact = out["exact"].placements
    # W1: a, b, d all waited 0 weeks: ties by client_id, a first. W2: d (b dropped out after W1). W3: c, arrived at W2.
    assert list(zip(exact["meeting_date"], exact["client_id"], strict=True)) == [(W1, "a"), (W2, "d"), (W3, "c")]
    assert exact["waiting_weeks"].tolist() == [0.0, 1.0, 1.0]
    assert out["exact"].waiting.empty
    everyone = out["everyone"].placements
    # the model decides who: b at W1 (0.9), c at W2 (0.99), then d (0.6) over a (0.5) at W3; a still waits.
    assert everyone["client_id"].tolist() == ["b", "c", "d"]
    assert out["everyone"].waiting.set_index("client_id")["waiting_weeks"].to_dict() == {"a": 2.0}


def test_clients_housed_or_gone_before_the_replay_are_not_in_its_queue():
    h = _history()
    # from W2 on: b (gone after W1) and d (last seen at W1: placed then) are not in the queue
    out = replay(h, [W2, W3], {"exact": AssignmentParams()}, _score({"a": 0.5, "b": 0.9, "c": 0.99, "d": 0.6}))
    assert out["exact"].placements["client_id"].tolist() == ["a", "c"]


def test_queue_pairs_are_every_home_with_its_regions_queue_in_order():
    """Each home in order with the queued clients of its own region, in queue order (was a loop over all pairs)."""
    from planning.replay import QueueHistory, _queue_pairs

    none = pd.Series(dtype=object)
    one = QueueHistory(none, none, none, {})
    pairs = _queue_pairs(one, W1, ["H1", "H2"], ["a", "b", "c"])
    assert list(zip(pairs["dwelling_id"], pairs["client_id"], strict=True)) == [
        ("H1", "a"), ("H1", "b"), ("H1", "c"), ("H2", "a"), ("H2", "b"), ("H2", "c"),
    ]  # fmt: skip
    assert (pairs["meeting_date"] == W1).all() and str(pairs["meeting_date"].dtype) == "datetime64[ns]"
    regional = QueueHistory(
        none,
        none,
        none,
        {},
        home_region={(W1, "H1"): "R1", (W1, "H2"): "R2", (W1, "H3"): "R9"},
        client_region=pd.Series({"a": "R2", "b": "R1", "c": "R2"}),
    )
    pairs = _queue_pairs(regional, W1, ["H1", "H2", "H3"], ["a", "b", "c"])
    assert list(pairs.columns) == ["meeting_date", "dwelling_id", "client_id", "region"]
    assert list(pairs[["dwelling_id", "client_id", "region"]].itertuples(index=False, name=None)) == [
        ("H1", "b", "R1"), ("H2", "a", "R2"), ("H2", "c", "R2"),
    ]  # fmt: skip


def test_scoring_weeks_ahead_in_one_call_replays_the_same_queue():
    """Scoring several weeks' pairs per call (batch_weeks) gives the replay week by week, row for row."""
    import numpy as np

    rng = np.random.default_rng(5)
    weeks = list(pd.date_range("2024-01-01", periods=9, freq="7D"))
    rows = []
    for c in range(40):  # clients arrive over the weeks and attend a few meetings each
        start = int(rng.integers(0, 7))
        for w in weeks[start : start + int(rng.integers(1, 6))]:
            rows.append((w, f"c{c:02d}", "N" if c % 3 else "Z"))
    candidates = pd.DataFrame(rows, columns=["meeting_date", "client_id", "region"])
    homes = [(w, f"h{w:%m%d}{k}", "N" if k % 2 else "Z") for w in weeks for k in range(int(rng.integers(1, 4)))]
    vacancies = pd.DataFrame(homes, columns=["meeting_date", "dwelling_id", "region"])
    placed = set(candidates["client_id"].drop_duplicates().sample(15, random_state=1))
    calls: list[int] = []

    def score(pairs: pd.DataFrame) -> pd.DataFrame:  # pair by pair: some pairs ineligible, P from the ids
        calls.append(len(pairs))
        key = (pairs["dwelling_id"] + pairs["client_id"]).map(lambda t: sum(map(ord, t)) % 97)
        keep = (key % 5 != 0).to_numpy()
        return pairs.loc[keep].assign(p_sustained=(key[keep] + 1) / 100.0, complex_id="x")

    policies = {"exact": AssignmentParams(), "pool": AssignmentParams(policy="pool_k", pool_factor=1.5)}
    for regional in (False, True):
        cand = candidates if regional else candidates.drop(columns="region")
        vac = vacancies if regional else vacancies.drop(columns="region")
        history = queue_history(cand, vac, placed)
        calls.clear()
        weekly = replay(history, weeks, policies, score)
        one_by_one = len(calls)
        for batch_weeks, batch_pairs in ((3, 200_000), (9, 200_000), (4, 10)):
            calls.clear()
            batched = replay(history, weeks, policies, score, batch_weeks=batch_weeks, batch_pairs=batch_pairs)
            assert len(calls) < one_by_one or batch_pairs == 10
            for name in policies:
                assert len(weekly[name].placements) > 0
                pd.testing.assert_frame_equal(batched[name].placements, weekly[name].placements, check_exact=True)
                pd.testing.assert_frame_equal(batched[name].waiting, weekly[name].waiting, check_exact=True)
