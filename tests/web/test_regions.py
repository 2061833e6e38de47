"""Regional meetings in the app: a meeting is a region on a date, listed, shown and decided apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.web.conftest import client_for

REGIONS = ("noord", "zuid")


@pytest.fixture(scope="module")
def regional_state(tmp_path_factory, app_state):
    """Two regions on one date: every other vacancy and candidate row (a history placement's home and client
    share a row number, so they share a region)."""
    from features.load import dataset_fingerprint, load_dataset
    from synthetic.meeting import synthetic_meeting_tables, write_tables
    from web.state import AppState

    tables, _meeting, as_of = synthetic_meeting_tables(
        n_vacancies=4, n_candidates=12, history_weeks=6, weekly_history=6, seed=3
    )
    for name in ("vacancies", "candidates"):
        frame = tables[name]
        frame["region"] = np.where(np.arange(len(frame)) % 2 == 0, *REGIONS)
    folder = write_tables(tmp_path_factory.mktemp("regions") / "meeting", tables, as_of=as_of, name="regions")
    ds = load_dataset(folder)
    assert ds.regions == list(REGIONS)
    s = app_state
    return AppState(ds, s.bundle, s.cfg, dataset_fingerprint(folder), s.model_version, s.params)


@pytest.fixture
def regional(db, regional_state, app_state):
    from web.meetings import load_meetings
    from web.state import set_state

    set_state(regional_state)
    yield regional_state, load_meetings(regional_state, "latest")
    set_state(app_state)


def _region_clients(state, region: str) -> set[str]:
    cand = state.ds.candidates
    return set(cand.loc[cand["region"] == region, "client_id"])


def test_two_regional_meetings_on_one_date_are_listed_apart(client, users, regional):
    state, meetings = regional
    assert [m.region for m in meetings] == list(REGIONS)
    assert len({m.date for m in meetings}) == 1
    day = f"{meetings[0].date:%Y-%m-%d}"
    html = client_for(client, users["chair"]).get("/meetings/").content.decode()
    for region in REGIONS:
        assert f'href="/meetings/{day}~{region}/"' in html and f"<td>{region}</td>" in html
    vac = state.ds.vacancies
    for m in meetings:
        page = client_for(client, users["chair"]).get(f"/meetings/{m.key}/").content.decode()
        on_table = vac.loc[(vac["meeting_date"] == pd.Timestamp(m.date)) & (vac["region"] == m.region), "dwelling_id"]
        elsewhere = vac.loc[(vac["meeting_date"] == pd.Timestamp(m.date)) & (vac["region"] != m.region), "dwelling_id"]
        assert len(on_table) == 2
        assert all(f"/homes/{d}/" in page for d in on_table)
        assert not any(f"/homes/{d}/" in page for d in elsewhere)


def test_a_client_of_one_region_is_never_offered_in_the_other(client, users, regional):
    state, meetings = regional
    for m in meetings:
        out = state.outputs(pd.Timestamp(m.date), "en", m.region)
        offered = set(out.recommendations["client_id"]) | set(out.excluded["client_id"])
        other = next(r for r in REGIONS if r != m.region)
        assert offered and offered <= _region_clients(state, m.region)
        assert not offered & _region_clients(state, other)
        assert set(out.assignment["client_id"]) <= _region_clients(state, m.region)


def test_decisions_key_on_the_regional_meeting(client, users, regional):
    from web.models import CurrentDecision, DecisionRecord

    state, (noord, zuid) = regional
    chair = client_for(client, users["chair"])
    home = state.index(pd.Timestamp(noord.date), "en", "noord").pages
    did = next(d for d, p in home.items() if p.proposed_client_id)
    stranger = sorted(_region_clients(state, "zuid"))[0]
    html = chair.post(
        f"/meetings/{noord.key}/homes/{did}/decide/",
        {"decision": "other_candidate", "client_id": stranger, "reason": "urgency", "seen_record": ""},
        follow=True,
    ).content.decode()
    assert "is not an eligible candidate" in html
    assert DecisionRecord.objects.count() == 0
    chair.post(f"/meetings/{noord.key}/homes/{did}/decide/", {"decision": "plan_followed", "seen_record": ""})
    assert list(CurrentDecision.objects.values_list("meeting__region", "dwelling_id")) == [("noord", did)]
    # a noord home is not on zuid's table
    assert chair.get(f"/meetings/{zuid.key}/homes/{did}/").status_code == 404
