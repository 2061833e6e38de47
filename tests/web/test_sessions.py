"""Sessions and users read with plain SQL (web.sessions, web.auth): the same rules as Django's own engine."""

from __future__ import annotations

import datetime as dt

from django.contrib.sessions.models import Session
from django.utils import timezone

from tests.web.conftest import PASSWORD


def _logged_in(client, user) -> None:
    page = client.get("/login/")
    assert page.status_code == 200
    client.post("/login/", {"username": user.username, "password": PASSWORD})


def test_a_login_session_is_read_back_and_logout_ends_it(client, meeting, users):
    _logged_in(client, users["chair"])
    assert client.get("/meetings/").status_code == 200
    cookie = client.cookies["sessionid"].value
    assert Session.objects.filter(session_key=cookie).exists()
    client.post("/logout/")
    assert not Session.objects.filter(session_key=cookie).exists()
    client.cookies["sessionid"] = cookie  # the old cookie, replayed
    response = client.get("/meetings/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_expired_session_is_refused(client, meeting, users):
    _logged_in(client, users["member"])
    assert client.get("/meetings/").status_code == 200
    key = client.cookies["sessionid"].value
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = client.get("/meetings/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_user_comes_with_their_profile_and_an_inactive_user_is_logged_out(client, meeting, users):
    user = users["member"]
    _logged_in(client, user)
    user.profile.lang = "nl"
    user.profile.save(update_fields=["lang"])
    assert '<html lang="nl">' in client.get("/meetings/").content.decode()  # the profile as stored now
    user.is_active = False
    user.save(update_fields=["is_active"])
    response = client.get("/meetings/")
    assert response.status_code == 302 and "/login/" in response["Location"]
