"""Home pages read what was built at load time: no model or pandas work per request, few queries."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.web.conftest import client_for
from web.pages import CHART_CANDIDATES, PAGE_CANDIDATES, build_pages


def _first_home(app_state, meeting) -> str:
    return str(app_state.outputs(pd.Timestamp(meeting.date), "en").assignment["dwelling_id"].iloc[0])


def test_every_home_of_the_meeting_has_its_page(app_state, meeting):
    index = app_state.index(pd.Timestamp(meeting.date), "en")
    out = index.outputs
    on_table = set(
        app_state.ds.vacancies.loc[app_state.ds.vacancies["meeting_date"] == out.meeting_date, "dwelling_id"]
    )
    assert set(index.pages) == on_table
    for did, page in index.pages.items():
        ranked = out.recommendations[out.recommendations["dwelling_id"] == did].sort_values("rank")
        assert list(page.ranked["client_id"]) == list(ranked["client_id"])
        assert [c["client_id"] for c in page.all_rows] == list(ranked["client_id"])
        assert len(page.excluded) == int((out.excluded["dwelling_id"] == did).sum())
        charts = [c for c in page.top if c["chart"]]
        assert len(charts) == min(CHART_CANDIDATES, len(page.top)) + (
            1 if page.proposal is not None and page.proposal["rank"] > CHART_CANDIDATES else 0
        )
        assert len(page.top) <= PAGE_CANDIDATES + 1


def test_chart_shows_the_pairs_largest_contributions(app_state, meeting):
    """The chart of a candidate comes from that pair's own contributions (largest |contribution| first)."""
    index = app_state.index(pd.Timestamp(meeting.date), "en")
    did, page = next((d, p) for d, p in index.pages.items() if len(p.top) >= 2)
    cand = page.top[1]
    out = index.outputs
    assert out.contributions is not None and len(out.contributions) == len(out.recommendations)
    recs = out.recommendations
    at = recs.index[(recs["dwelling_id"] == did) & (recs["client_id"] == cand["client_id"])][0]
    row = out.contributions.loc[at]
    top = row.abs().sort_values(ascending=False, kind="stable").index[0]
    from reports.reasons import feature_label

    assert feature_label(str(top), "en") in str(cand["chart"])[:600] or feature_label(str(top), "en")[:30] in str(
        cand["chart"]
    )


def test_no_real_difference_marks_candidates_within_the_tolerance(app_state, meeting):
    out = app_state.outputs(pd.Timestamp(meeting.date), "en")
    wide = build_pages(app_state.ds, out, "en", tolerance=0.99)
    none = build_pages(app_state.ds, out, "en", tolerance=0.0)
    for did, page in wide.items():
        reference = page.proposal or (page.all_rows[0] if page.all_rows else None)
        for c in page.all_rows:
            assert c["no_real_difference"] == (c is not reference)
        assert not any(c["no_real_difference"] for c in none[did].all_rows)
    tol = app_state.cfg.assignment.no_real_difference
    for page in app_state.index(pd.Timestamp(meeting.date), "en").pages.values():
        ref = page.proposal
        if ref is None:
            continue
        for c in page.all_rows:
            close = abs(float(c["p_sustained"]) - float(ref["p_sustained"])) < tol
            assert c["no_real_difference"] == (close and c is not ref)


def test_home_page_shows_the_tolerance_from_params(client, meeting, users, app_state, monkeypatch):
    out = app_state.outputs(pd.Timestamp(meeting.date), "en")
    pages = build_pages(app_state.ds, out, "en", tolerance=0.99)
    index = app_state.index(pd.Timestamp(meeting.date), "en")
    monkeypatch.setattr(index, "pages", pages)
    did = next(d for d, p in pages.items() if len(p.all_rows) >= 2)
    html = client_for(client, users["chair"]).get(f"/meetings/{meeting.date:%Y-%m-%d}/homes/{did}/").content.decode()
    assert "no real difference: a chance less than 0.99 from the proposal" in html
    assert "≈ no real difference" in html


def test_a_home_page_does_no_model_work_and_few_queries(
    client, meeting, users, app_state, monkeypatch, django_assert_max_num_queries
):
    """After loading, a request never recomputes suggestions; its queries stay few and do not grow with candidates."""
    import reports.suggestions
    import web.state

    def refuse(*args, **kwargs):
        raise AssertionError("a request recomputed the meeting's suggestions")

    monkeypatch.setattr(web.state, "meeting_outputs", refuse)
    monkeypatch.setattr(reports.suggestions, "meeting_outputs", refuse)
    c = client_for(client, users["chair"])
    url = f"/meetings/{meeting.date:%Y-%m-%d}/homes/{_first_home(app_state, meeting)}/"
    c.get(url)  # the session's first request
    # session, user, profile, permissions (2), groups in the header, dataset switch (at most every 2 s),
    # meeting, history (its newest record is the decision in force), notes
    with django_assert_max_num_queries(10):
        assert c.get(url).status_code == 200
    with django_assert_max_num_queries(10):
        assert c.get(url + "?all=1").status_code == 200
    with django_assert_max_num_queries(12):
        assert c.get(f"/meetings/{meeting.date:%Y-%m-%d}/").status_code == 200


@pytest.mark.parametrize("url", ["/meetings/", "print/"])
def test_meeting_list_and_print_view_queries(client, meeting, users, url, django_assert_max_num_queries):
    c = client_for(client, users["chair"])
    full = url if url.startswith("/") else f"/meetings/{meeting.date:%Y-%m-%d}/{url}"
    c.get(full)
    with django_assert_max_num_queries(10):
        assert c.get(full).status_code == 200


def test_unknown_home_is_404_not_a_crash(client, meeting, users):
    c = client_for(client, users["chair"])
    assert c.get(f"/meetings/{meeting.date:%Y-%m-%d}/homes/NO-SUCH-HOME/").status_code == 404
    assert (
        c.post(
            f"/meetings/{meeting.date:%Y-%m-%d}/homes/NO-SUCH-HOME/decide/", {"decision": "no_placement"}
        ).status_code
        == 404
    )


@pytest.mark.parametrize("lang", ["en", "nl"])
def test_the_default_view_sends_the_html_built_at_load_and_it_equals_a_fresh_render(app_state, meeting, lang):
    from django.utils import translation

    index = app_state.index(pd.Timestamp(meeting.date), lang)
    for page in index.pages.values():
        assert page.candidates_block(set()) is page.candidates_html  # a request renders nothing of it
        with translation.override(lang):
            assert page._render_candidates(set(), False) == page.candidates_html
        assert page.proposal_html.count('<section class="proposal"') == 1
        if page.proposal is not None:
            assert page.proposal["client_id"] in page.proposal_html
        own = {str(page.ranked["client_id"].iloc[0])} if page.n_eligible else set()
        if own:  # a member's own client gets a link: rendered for that view, not the prebuilt HTML
            linked = page.candidates_block(own)
            assert f'<a href="/clients/{next(iter(own))}/">' in linked and linked != page.candidates_html
        everyone = page.candidates_block(set(), show_all=True)
        assert everyone.count("<tr") >= page.n_eligible + 1


def test_a_home_page_reads_user_profile_and_roles_in_two_queries(
    client, meeting, users, app_state, django_assert_max_num_queries
):
    """session, user with profile, permissions with role names, meeting, history, notes (+ the dataset switch
    check at most every 2 s): 7 at most, where Django's ModelBackend needed 10."""
    c = client_for(client, users["chair"])
    url = f"/meetings/{meeting.date:%Y-%m-%d}/homes/{_first_home(app_state, meeting)}/"
    c.get(url)
    with django_assert_max_num_queries(7):
        html = c.get(url).content.decode()
    assert "(chair)" in html and 'id="decide-form"' in html


def test_a_changed_role_counts_from_the_next_request(client, meeting, users, app_state):
    from django.contrib.auth.models import Group

    user = users["chair"]
    c = client_for(client, user)
    url = f"/meetings/{meeting.date:%Y-%m-%d}/homes/{_first_home(app_state, meeting)}/"
    assert 'id="decide-form"' in c.get(url).content.decode()
    user.groups.set([Group.objects.get(name="member")])
    html = c.get(url).content.decode()
    assert 'id="decide-form"' not in html and "(member)" in html
    assert c.post(url + "decide/", {"decision": "plan_followed", "seen_record": ""}).status_code == 403
    user.groups.clear()
    assert c.get(url).status_code == 403


def test_the_apps_wide_contributions_are_the_long_explanations(app_state, meeting):
    """The app skips the long explanations table; its wide contributions hold the same numbers, row for row."""
    from reports.suggestions import meeting_outputs

    day = pd.Timestamp(meeting.date)
    full = meeting_outputs(app_state.ds, day, app_state.bundle, app_state.cfg, sheet=False)
    app = app_state.outputs(day, "en")
    assert app.explanations.empty and len(full.explanations) > 0
    pd.testing.assert_frame_equal(app.recommendations, full.recommendations)
    k = len(full.explanations) // len(full.recommendations)
    assert app.contributions is not None
    assert list(app.contributions.columns) == list(full.explanations["feature"].iloc[:k])
    assert (app.contributions.to_numpy().reshape(-1) == full.explanations["contribution"].to_numpy()).all()
