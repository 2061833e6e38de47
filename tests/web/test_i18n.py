"""Screen labels in the user's language (Django i18n: web/locale/nl, compiled with compilemessages)."""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pandas as pd

from tests.web.conftest import client_for

LOCALE = Path(__file__).resolve().parents[2] / "web" / "locale"


def _set_lang(user, lang: str) -> None:
    user.profile.lang = lang
    user.profile.save(update_fields=["lang"])


def _home_url(app_state, meeting) -> str:
    plan = app_state.outputs(pd.Timestamp(meeting.date), "en").assignment
    return f"/meetings/{meeting.date:%Y-%m-%d}/homes/{plan['dwelling_id'].iloc[0]}/"


def test_a_dutch_user_sees_dutch_labels(client, meeting, users, app_state):
    _set_lang(users["chair"], "nl")
    c = client_for(client, users["chair"])
    html = c.get(_home_url(app_state, meeting)).content.decode()
    for label in ["Het plan stelt voor", "Besluit vastleggen", "Passende kandidaten, op volgorde", "Uitloggen"]:
        assert label in html
    assert "Record the decision" not in html and "The plan proposes" not in html
    assert '<html lang="nl">' in html
    assert ">voorkeur van de cliënt<" in html  # reason codes' labels
    meeting_html = c.get(f"/meetings/{meeting.date:%Y-%m-%d}/").content.decode()
    assert "besloten" in meeting_html and "Het overleg sluiten" in meeting_html


def test_an_english_user_sees_english_labels_and_the_switch_takes_effect(client, meeting, users, app_state):
    c = client_for(client, users["member"])
    url = _home_url(app_state, meeting)
    html = c.get(url).content.decode()
    assert "The plan proposes" in html and "Het plan stelt voor" not in html
    c.post("/lang/", {"lang": "nl", "next": url})
    assert "Het plan stelt voor" in c.get(url).content.decode()


def test_a_decision_message_is_in_the_users_language(client, meeting, users, app_state):
    _set_lang(users["chair"], "nl")
    c = client_for(client, users["chair"])
    url = _home_url(app_state, meeting)
    html = c.post(url + "decide/", {"decision": "plan_followed"}, follow=True).content.decode()
    assert "Vastgelegd voor" in html and "het plan volgen" in html


def test_every_label_has_a_dutch_translation_and_the_mo_matches_the_po():
    po = (LOCALE / "nl" / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    entries = re.findall(r'\nmsgid "(.+)"\nmsgstr "(.*)"', po)
    assert len(entries) > 100
    assert all(msgstr for _msgid, msgstr in entries), [m for m, s in entries if not s]
    mo = gettext.GNUTranslations(open(LOCALE / "nl" / "LC_MESSAGES" / "django.mo", "rb"))
    for msgid, msgstr in entries:
        unescaped = msgid.replace('\\"', '"')
        assert mo.gettext(unescaped) == msgstr.replace('\\"', '"'), f"{msgid}: run compilemessages"


def test_refused_decisions_are_explained_in_dutch(client, meeting, users, app_state):
    from web.models import DecisionRecord

    _set_lang(users["chair"], "nl")
    c = client_for(client, users["chair"])
    url = _home_url(app_state, meeting) + "decide/"
    html = c.post(url, {"decision": "no_placement", "seen_record": ""}, follow=True).content.decode()
    assert "een ander besluit dan het plan volgen heeft een reden nodig" in html
    html = c.post(url, {"decision": "no_placement", "reason": "other", "seen_record": ""}, follow=True).content.decode()
    assert "reden &#x27;anders&#x27; heeft een toelichting nodig" in html
    assert DecisionRecord.objects.count() == 0
    c.post(url, {"decision": "plan_followed", "seen_record": ""})
    html = c.post(url, {"decision": "plan_followed", "seen_record": ""}, follow=True).content.decode()
    assert "twee keer verstuurd?" in html and "sent twice" not in html
    assert DecisionRecord.objects.count() == 1


def test_a_refused_role_is_told_in_dutch(client, meeting, users, app_state):
    _set_lang(users["member"], "nl")
    response = client_for(client, users["member"]).post(
        _home_url(app_state, meeting) + "decide/", {"decision": "plan_followed"}
    )
    assert response.status_code == 403
    html = response.content.decode()
    assert "Alleen de voorzitter legt besluiten vast" in html and "Only the chair" not in html
