"""Real concurrency: threads with their own database connections against the test database file
(SQLite with WAL and immediate transactions, or PostgreSQL when DATABASE_URL is set).

Two chairs deciding one home at once, a double submit, one client for two homes at once: exactly one
wins, the other gets a clear message, and the log stays consistent. A crash inside a request after the
decision is written never loses it.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from tests.web.conftest import client_for
from web.decisions import DecisionError, home_view, record_decision
from web.models import CurrentDecision, DecisionRecord

ROUNDS = 3


def _race(calls) -> tuple[list, list[str]]:
    """Run the calls at the same moment, each in its own thread and database connection."""
    barrier = threading.Barrier(len(calls))
    won, refused = [], []
    lock = threading.Lock()

    def run(call):
        try:
            barrier.wait(timeout=30)
            result = call()
            with lock:
                won.append(result)
        except DecisionError as exc:
            with lock:
                refused.append(str(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return won, refused


def _log_is_consistent(meeting) -> None:
    """Every current decision points at the newest record of its home; records chain by `supersedes`."""
    for current in CurrentDecision.objects.filter(meeting=meeting).select_related("record"):
        records = list(DecisionRecord.objects.filter(meeting=meeting, dwelling_id=current.dwelling_id))
        assert current.record == records[-1]
        assert current.version == len(records)
        assert [r.supersedes for r in records] == ["", *(r.decision_id for r in records[:-1])]
        assert (current.client_id or "") == current.record.client_id


def _views(meeting, app_state):
    plan = app_state.outputs(meeting_date(meeting), "en").assignment
    return [home_view(app_state, meeting, str(d), "en") for d in plan["dwelling_id"]]


def meeting_date(meeting):
    import pandas as pd

    return pd.Timestamp(meeting.date)


@pytest.fixture
def file_db(transactional_db, meeting):
    """The meeting in a database that threads share (transactions really commit)."""
    if connection.vendor == "sqlite":
        assert "memory" not in str(connection.settings_dict["NAME"]), "the concurrency tests need a file database"
    yield meeting
    from django.db import transaction

    from web.prune import without_log_guard

    with transaction.atomic(), connection.cursor() as cur:  # the append-only log must be emptied by hand
        CurrentDecision.objects.all().delete()
        without_log_guard(cur, "DELETE FROM web_decisionrecord")


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_chairs_deciding_one_home_at_once_exactly_one_wins(file_db, app_state, round_):
    meeting = file_db
    view = _views(meeting, app_state)[0]
    other = str(view.ranked["client_id"].iloc[-1])
    won, refused = _race(
        [
            lambda: record_decision(app_state, meeting, view, decision="plan_followed", decided_by="u-chair-1"),
            lambda: record_decision(
                app_state,
                meeting,
                view,
                decision="other_candidate",
                client_id=other,
                reason="urgency",
                decided_by="u-chair-2",
            ),
        ]
    )
    assert len(won) == 1 and len(refused) == 1
    assert "decided by someone else" in refused[0] and "reload" in refused[0]
    assert DecisionRecord.objects.filter(meeting=meeting).count() == 1
    current = CurrentDecision.objects.get(meeting=meeting, dwelling_id=view.dwelling_id)
    assert current.record.decision_id == won[0].decision_id
    _log_is_consistent(meeting)


def test_double_submit_records_once_and_says_so(file_db, app_state):
    meeting = file_db
    view = _views(meeting, app_state)[0]
    submit = lambda: record_decision(app_state, meeting, view, decision="plan_followed", decided_by="u-chair")  # noqa: E731
    won, refused = _race([submit, submit])
    assert len(won) == 1 and len(refused) == 1
    assert "already recorded" in refused[0]
    assert DecisionRecord.objects.filter(meeting=meeting).count() == 1
    _log_is_consistent(meeting)


def test_one_client_for_two_homes_at_once_exactly_one_wins(file_db, app_state):
    meeting = file_db
    views = _views(meeting, app_state)
    both = [v for v in views if len(v.ranked)]
    shared = set(both[0].ranked["client_id"]).intersection(both[1].ranked["client_id"])
    assert shared, "the test meeting needs a client eligible for two homes"
    client = sorted(shared)[0]
    calls = [
        (
            lambda v=v: record_decision(
                app_state,
                meeting,
                v,
                decision="plan_followed" if v.proposed_client_id == client else "other_candidate",
                client_id=client,
                reason="" if v.proposed_client_id == client else "client_preference",
                decided_by="u-chair",
            )
        )
        for v in both[:2]
    ]
    won, refused = _race(calls)
    assert len(won) == 1 and len(refused) == 1
    assert f"client {client} is already placed in" in refused[0]
    assert CurrentDecision.objects.filter(meeting=meeting, client_id=client).count() == 1
    assert DecisionRecord.objects.filter(meeting=meeting).count() == 1
    _log_is_consistent(meeting)


def test_many_decisions_at_once_keep_the_log_consistent(file_db, app_state):
    """Eight threads change the decisions of two homes back and forth; every write that wins is logged once."""
    meeting = file_db
    views = _views(meeting, app_state)[:2]

    def change(view, i):
        current = CurrentDecision.objects.filter(meeting=meeting, dwelling_id=view.dwelling_id).first()
        return record_decision(
            app_state,
            meeting,
            view,
            decision="no_placement",
            reason="other",
            note=f"attempt {i}",
            seen_record=current.record.decision_id if current else "",
            decided_by=f"u-{i}",
        )

    won, refused = _race([lambda v=v, i=i: change(v, i) for i in range(4) for v in views])
    assert len(won) + len(refused) == 8
    assert DecisionRecord.objects.filter(meeting=meeting).count() == len(won)
    _log_is_consistent(meeting)


def test_a_crash_after_the_decision_is_written_loses_nothing(file_db, app_state, users, client, monkeypatch):
    """An exception later in the request (here: right after the log write) leaves the recorded decision in place."""
    import web.views

    meeting = file_db
    view = _views(meeting, app_state)[0]
    real = web.views.record_decision

    def record_then_crash(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("injected crash after the log write")

    monkeypatch.setattr(web.views, "record_decision", record_then_crash)
    client.raise_request_exception = False
    response = client_for(client, users["chair"]).post(
        f"/meetings/{meeting.date:%Y-%m-%d}/homes/{view.dwelling_id}/decide/", {"decision": "plan_followed"}
    )
    assert response.status_code == 500
    record = DecisionRecord.objects.get(meeting=meeting, dwelling_id=view.dwelling_id)
    assert record.client_id == view.proposed_client_id and record.decided_by == users["chair"].profile.pseudonym
    assert CurrentDecision.objects.get(meeting=meeting, dwelling_id=view.dwelling_id).record == record
    _log_is_consistent(meeting)
