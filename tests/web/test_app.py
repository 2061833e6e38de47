"""The meeting app: roles, decisions and their constraints, the append-only log, export to contract tables."""

from __future__ import annotations

import pandas as pd
import pytest
from django.db import IntegrityError, connection, transaction

from tests.web.conftest import PASSWORD, client_for
from web.decisions import DecisionError, home_view, record_decision
from web.models import CurrentDecision, DecisionRecord


def _url(meeting, *parts: str) -> str:
    base = f"/meetings/{meeting.date:%Y-%m-%d}/"
    return base + "".join(f"{p}/" for p in parts)


def _homes(app_state, meeting, lang="en"):
    out = app_state.outputs(pd.Timestamp(meeting.date), lang)
    plan = out.assignment
    return list(plan["dwelling_id"]), out


def test_home_without_login_redirects_to_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_every_page_needs_a_login(client, meeting):
    for url in ["/meetings/", _url(meeting), "/log/", "/model/", "/audit/", "/log/decisions.csv"]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_login_page_and_lockout_after_repeated_failures(client, users):
    assert client.post("/login/", {"username": "chair", "password": PASSWORD}).status_code == 302
    client.logout()
    for _ in range(5):
        client.post("/login/", {"username": "member", "password": "wrong"})
    locked = client.post("/login/", {"username": "member", "password": PASSWORD})
    assert locked.status_code == 429


def test_security_headers(client, users):
    response = client_for(client, users["chair"]).get("/meetings/")
    assert response["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"


ALLOWED = {
    # url key: roles that get 200
    "meetings": {"chair", "member", "analyst", "auditor"},
    "meeting": {"chair", "member", "analyst", "auditor"},
    "home": {"chair", "member", "analyst", "auditor"},
    "print": {"chair", "member", "analyst", "auditor"},
    "log": {"chair", "auditor"},
    "export": {"chair", "auditor"},
    "model": {"analyst", "auditor"},
    "audit": {"auditor"},
}


@pytest.mark.parametrize("role", ["chair", "member", "analyst", "auditor", "admin"])
def test_each_role_sees_only_its_pages(client, meeting, users, app_state, role):
    dwelling = _homes(app_state, meeting)[0][0]
    urls = {
        "meetings": "/meetings/",
        "meeting": _url(meeting),
        "home": _url(meeting, "homes", dwelling),
        "print": _url(meeting, "print"),
        "log": "/log/",
        "export": "/log/decisions.csv",
        "model": "/model/",
        "audit": "/audit/",
    }
    c = client_for(client, users[role])
    for key, url in urls.items():
        expected = 200 if role in ALLOWED[key] else 403
        assert c.get(url).status_code == expected, (role, key)


@pytest.mark.parametrize("role", ["member", "analyst", "auditor", "admin"])
def test_only_the_chair_decides(client, meeting, users, app_state, role):
    dwelling = _homes(app_state, meeting)[0][0]
    response = client_for(client, users[role]).post(
        _url(meeting, "homes", dwelling, "decide"), {"decision": "plan_followed", "seen_record": ""}
    )
    assert response.status_code == 403
    assert DecisionRecord.objects.count() == 0


def test_member_adds_a_note_auditor_cannot(client, meeting, users, app_state):
    dwelling = _homes(app_state, meeting)[0][0]
    url = _url(meeting, "homes", dwelling, "note")
    ok = client_for(client, users["member"]).post(url, {"text": "visited the home"}, HTTP_HX_REQUEST="true")
    assert ok.status_code == 200 and b"visited the home" in ok.content
    assert client_for(client, users["auditor"]).post(url, {"text": "x"}).status_code == 403


def test_full_profile_only_for_own_care_provider(client, meeting, users, app_state):
    clients = app_state.ds.clients
    provider = users["member"].profile.care_provider
    own = clients.loc[clients["care_provider"] == provider, "client_id"].iloc[0]
    other = clients.loc[clients["care_provider"] != provider, "client_id"].iloc[0]
    member = client_for(client, users["member"])
    page = member.get(f"/clients/{own}/")
    assert page.status_code == 200 and b"zrm_finances" in page.content
    assert member.get(f"/clients/{other}/").status_code == 403
    assert client_for(client, users["chair"]).get(f"/clients/{own}/").status_code == 403


def test_home_page_shows_the_proposal_first(client, meeting, users, app_state):
    dwelling = _homes(app_state, meeting)[0][0]
    html = client_for(client, users["chair"]).get(_url(meeting, "homes", dwelling)).content.decode()
    assert html.index("The plan proposes") < html.index("Eligible candidates, ranked")
    assert "<svg" in html and "Excluded candidates" in html


def test_reasons_follow_the_users_language(client, meeting, users, app_state):
    dwelling = _homes(app_state, meeting)[0][0]
    c = client_for(client, users["member"])
    c.post("/lang/", {"lang": "nl", "next": "/"})
    html = c.get(_url(meeting, "homes", dwelling)).content.decode()
    nl = app_state.outputs(pd.Timestamp(meeting.date), "nl").recommendations
    first = nl.loc[nl["dwelling_id"] == dwelling, "reasons"].iloc[0]
    assert first.split(";")[0][:20] in html


def _chair_post(client, users, meeting, dwelling, **data):
    data.setdefault("seen_record", "")
    return client_for(client, users["chair"]).post(_url(meeting, "homes", dwelling, "decide"), data, follow=True)


def test_chair_follows_the_plan_and_overrides_with_a_reason(client, meeting, users, app_state):
    homes, out = _homes(app_state, meeting)
    _chair_post(client, users, meeting, homes[0], decision="plan_followed")
    recs = out.recommendations
    second = homes[1]
    proposed = out.assignment.set_index("dwelling_id").loc[second, "client_id"]
    others = recs.loc[(recs["dwelling_id"] == second) & (recs["client_id"] != proposed)]
    other = others[~others["client_id"].isin(out.assignment["client_id"])]["client_id"].iloc[0]
    refused = _chair_post(client, users, meeting, second, decision="other_candidate", client_id=other)
    assert b"needs a reason" in refused.content
    no_note = _chair_post(client, users, meeting, second, decision="other_candidate", client_id=other, reason="other")
    assert b"needs a note" in no_note.content
    _chair_post(client, users, meeting, second, decision="other_candidate", client_id=other, reason="urgency")
    records = list(DecisionRecord.objects.order_by("id"))
    assert [r.decision for r in records] == ["plan_followed", "other_candidate"]
    first = records[0]
    assert first.client_id == first.proposed_client_id != ""
    assert first.decided_by.startswith("u-") and first.decided_by != "chair"
    assert first.model_version == app_state.model_version and first.data_fingerprint == app_state.fingerprint
    assert first.shown and first.shown[0]["rank"] == 1
    assert records[1].reason == "urgency" and records[1].proposed_client_id == proposed


def test_changed_decision_appends_a_superseding_record(meeting, app_state):
    dwelling = _homes(app_state, meeting)[0][0]
    view = home_view(app_state, meeting, dwelling, "en")
    first = record_decision(app_state, meeting, view, decision="plan_followed", decided_by="u-1")
    second = record_decision(
        app_state,
        meeting,
        view,
        decision="no_placement",
        reason="landlord_requirement",
        seen_record=first.decision_id,
        decided_by="u-1",
    )
    assert second.supersedes == first.decision_id
    current = CurrentDecision.objects.get(meeting=meeting, dwelling_id=dwelling)
    assert current.record_id == second.id and current.client_id is None
    assert DecisionRecord.objects.count() == 2


def test_stale_page_and_second_chair_get_a_message(meeting, app_state):
    dwelling = _homes(app_state, meeting)[0][0]
    view = home_view(app_state, meeting, dwelling, "en")
    record_decision(app_state, meeting, view, decision="plan_followed", decided_by="u-1")
    # a second chair who opened the page before the first decision (saw no decision)
    with pytest.raises(DecisionError, match="decided by someone else"):
        record_decision(app_state, meeting, view, decision="no_placement", reason="urgency", decided_by="u-2")
    assert DecisionRecord.objects.count() == 1


def test_a_client_gets_at_most_one_home(meeting, app_state):
    homes, out = _homes(app_state, meeting)
    recs = out.recommendations
    shared = recs.groupby("client_id")["dwelling_id"].nunique()
    client_id = shared[shared > 1].index[0]
    a, b = recs.loc[recs["client_id"] == client_id, "dwelling_id"].iloc[:2]
    record_decision(
        app_state, meeting, home_view(app_state, meeting, a, "en"),
        decision="other_candidate", client_id=client_id, reason="urgency", decided_by="u-1",
    )  # fmt: skip
    with pytest.raises(DecisionError, match="already placed"):
        record_decision(
            app_state, meeting, home_view(app_state, meeting, b, "en"),
            decision="other_candidate", client_id=client_id, reason="urgency", decided_by="u-2",
        )  # fmt: skip
    assert DecisionRecord.objects.count() == 1


def test_database_refuses_two_current_decisions_for_a_home_or_a_client(meeting):
    def record(n):
        return DecisionRecord.objects.create(
            meeting=meeting, dwelling_id=f"H{n}", client_id="K1", decision="plan_followed",
            model_version="m", data_fingerprint="f", decided_at="2025-06-02T10:00:00Z", decided_by="u",
        )  # fmt: skip

    CurrentDecision.objects.create(meeting=meeting, dwelling_id="H1", client_id="K1", record=record(1))
    with pytest.raises(IntegrityError), transaction.atomic():
        CurrentDecision.objects.create(meeting=meeting, dwelling_id="H1", client_id="K2", record=record(2))
    with pytest.raises(IntegrityError), transaction.atomic():
        CurrentDecision.objects.create(meeting=meeting, dwelling_id="H3", client_id="K1", record=record(3))
    CurrentDecision.objects.create(meeting=meeting, dwelling_id="H4", client_id=None, record=record(4))
    CurrentDecision.objects.create(meeting=meeting, dwelling_id="H5", client_id=None, record=record(5))
    assert CurrentDecision.objects.count() == 3


def test_rule_exception_needs_an_excluded_candidate_and_a_note(meeting, app_state):
    out = app_state.outputs(pd.Timestamp(meeting.date), "en")
    row = out.excluded.iloc[0]
    view = home_view(app_state, meeting, row["dwelling_id"], "en")
    with pytest.raises(DecisionError, match="needs a note"):
        record_decision(
            app_state,
            meeting,
            view,
            decision="rule_exception",
            client_id=row["client_id"],
            reason="urgency",
            decided_by="u",
        )
    eligible = view.ranked["client_id"].iloc[0] if len(view.ranked) else "nobody"
    with pytest.raises(DecisionError, match="not an excluded candidate"):
        record_decision(
            app_state,
            meeting,
            view,
            decision="rule_exception",
            client_id=eligible,
            reason="urgency",
            note="n",
            decided_by="u",
        )
    rec = record_decision(
        app_state, meeting, view, decision="rule_exception", client_id=row["client_id"], reason="urgency",
        note="the rule's income data are out of date", decided_by="u",
    )  # fmt: skip
    assert rec.decision == "rule_exception"


def test_closed_meeting_takes_no_decisions(client, meeting, users, app_state):
    dwelling = _homes(app_state, meeting)[0][0]
    c = client_for(client, users["chair"])
    c.post(_url(meeting, "closed"), {"closed": "1"})
    page = c.post(
        _url(meeting, "homes", dwelling, "decide"), {"decision": "plan_followed", "seen_record": ""}, follow=True
    )
    assert DecisionRecord.objects.count() == 0
    assert b"closed" in page.content


def _one_record(meeting, app_state):
    dwelling = _homes(app_state, meeting)[0][0]
    return record_decision(
        app_state, meeting, home_view(app_state, meeting, dwelling, "en"), decision="plan_followed", decided_by="u"
    )


def test_database_refuses_update_and_delete_of_log_rows(meeting, app_state):
    rec = _one_record(meeting, app_state)
    for sql in (
        "UPDATE web_decisionrecord SET decision = 'no_placement' WHERE id = %s",
        "DELETE FROM web_decisionrecord WHERE id = %s",
    ):
        with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql, [rec.id])
    rec.refresh_from_db()
    assert rec.decision == "plan_followed"


def test_admin_screens_cannot_change_or_delete_the_log(client, meeting, users, app_state):
    from django.contrib.auth.models import User

    rec = _one_record(meeting, app_state)
    superuser = User.objects.create_superuser("root", password=PASSWORD)
    c = client_for(client, superuser)
    page = c.get(f"/admin/web/decisionrecord/{rec.id}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert c.post(f"/admin/web/decisionrecord/{rec.id}/delete/", {"post": "yes"}).status_code == 403
    assert DecisionRecord.objects.filter(id=rec.id).exists()


def test_prune_refuses_records_within_retention(meeting, app_state):
    import datetime as dt

    from web.prune import PruneRefused, prune_decisions

    _one_record(meeting, app_state)
    with pytest.raises(PruneRefused, match="kept 6 months"):
        prune_decisions((dt.date.today() - dt.timedelta(days=30)).isoformat())
    assert prune_decisions("2020-01-01") == 0
    assert (
        prune_decisions(
            (dt.date.today() + dt.timedelta(days=1)).isoformat(), today=dt.date.today() + dt.timedelta(days=400)
        )
        == 1
    )
    assert DecisionRecord.objects.count() == 0
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        rec = _one_record(meeting, app_state)
        cur.execute("DELETE FROM web_decisionrecord WHERE id = %s", [rec.id])


def test_export_csv_and_parquet(client, meeting, users, app_state):
    import io

    _one_record(meeting, app_state)
    c = client_for(client, users["auditor"])
    csv = pd.read_csv(io.BytesIO(c.get("/log/decisions.csv").content))
    parquet = pd.read_parquet(io.BytesIO(c.get("/log/decisions.parquet").content))
    from web.export import DECISION_COLUMNS

    assert list(csv.columns) == DECISION_COLUMNS == list(parquet.columns)
    assert len(csv) == len(parquet) == 1 and csv["decision"].iloc[0] == "plan_followed"


def test_export_to_contract_placements_validates(meeting, app_state, meeting_dir, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from pipelines.cli import app

    homes, out = _homes(app_state, meeting)
    view = home_view(app_state, meeting, homes[0], "en")
    first = record_decision(app_state, meeting, view, decision="plan_followed", decided_by="u")
    record_decision(
        app_state,
        meeting,
        view,
        decision="no_placement",
        reason="urgency",
        seen_record=first.decision_id,
        decided_by="u",
    )
    record_decision(
        app_state, meeting, home_view(app_state, meeting, homes[1], "en"), decision="plan_followed", decided_by="u"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["decisions", "export", "--out", str(tmp_path / "export")])
    assert result.exit_code == 0, result.output
    decisions = pd.read_csv(tmp_path / "export" / "decisions.csv", dtype=str, keep_default_na=False)
    placements = pd.read_csv(tmp_path / "export" / "placements.csv", dtype=str, keep_default_na=False)
    assert len(decisions) == 3 and decisions["supersedes"].iloc[1] == first.decision_id
    assert list(placements["dwelling_id"]) == [homes[1]]  # the first home's plan was replaced by no placement

    data = tmp_path / "data"
    shutil.copytree(meeting_dir, data)
    meeting_day = pd.Timestamp(meeting.date)
    # a later extract: after the meeting's tenancies started and after the decisions were recorded (today)
    as_of = max(meeting_day + pd.Timedelta(days=60), pd.Timestamp.now().normalize())
    (data / "dataset.yaml").write_text(f"name: later\nas_of: {as_of:%Y-%m-%d}\n")
    old = pd.read_csv(data / "placements.csv", dtype=str)
    pd.concat([old, placements]).to_csv(data / "placements.csv", index=False)
    shutil.copy(tmp_path / "export" / "decisions.csv", data / "decisions.csv")  # the optional contract table
    validated = runner.invoke(app, ["validate", "--data", str(data)])
    assert validated.exit_code == 0, validated.output


def test_serve_refuses_a_bad_dataset_with_the_named_problems(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.setenv("MATCHWIJS_DATA", "")  # serve sets it; restored after the test

    from pipelines.cli import app

    result = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "missing"), "--prepare-only"])
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_meeting_list_counts_decided_and_open(client, meeting, users, app_state):
    _one_record(meeting, app_state)
    html = client_for(client, users["chair"]).get("/meetings/").content.decode()
    row = html[html.index(f"{meeting.date:%Y-%m-%d}</a>") :]
    assert "<td>4</td><td>1</td><td>3</td>" in row
