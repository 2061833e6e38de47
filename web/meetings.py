"""Loading a meeting of the served dataset into the app, and the demo accounts."""

from __future__ import annotations

import datetime as dt
import secrets

import pandas as pd
from django.contrib.auth.models import Group, User

from web.models import Meeting, Profile
from web.roles import ROLES
from web.state import AppState


def load_meeting(state: AppState, date: str = "latest") -> Meeting:
    """Compute the meeting's suggestions (both languages) and register it; an existing meeting is kept as is.

    A meeting is a region on a date: with regional data every region meeting on that date is loaded and
    registered apart (`load_meetings`); this returns the first.
    """
    return load_meetings(state, date)[0]


def load_meetings(state: AppState, date: str = "latest") -> list[Meeting]:
    """Every regional meeting on a date (one when the data have no regions), computed and registered."""
    from features.errors import UserError
    from reports.suggestions import check_meeting

    try:
        day = state.latest() if date == "latest" else pd.Timestamp(dt.date.fromisoformat(date))
    except ValueError:
        raise UserError(f"meeting {date!r} is not a date; expected YYYY-MM-DD or latest") from None
    check_meeting(state.ds, day)
    meetings = []
    for region in state.regions_on(day):
        for lang in ("en", "nl"):
            state.outputs(day, lang, region)
        meeting, _ = Meeting.objects.get_or_create(
            date=pd.Timestamp(day).date(),
            region=region,
            defaults={"data_fingerprint": state.fingerprint, "model_version": state.model_version},
        )
        meetings.append(meeting)
    return meetings


def create_account(username: str, role: str, *, care_provider: str = "", password: str | None = None) -> str:
    """A user in one role group with a random password (returned, never stored in clear)."""
    password = password or secrets.token_urlsafe(12)
    user = User.objects.create_user(username=username, password=password, is_staff=role == "admin")
    user.groups.add(Group.objects.get(name=role))
    Profile.objects.create(user=user, care_provider=care_provider)
    return password


def demo_accounts(state: AppState | None) -> list[tuple[str, str, str]]:
    """One account per role (demo-chair, demo-member, ...); returns (username, role, password) for new ones."""
    provider = ""
    if state is not None and len(state.ds.clients):
        provider = str(state.ds.clients["care_provider"].mode().iloc[0])
    created = []
    for role in ROLES:
        username = f"demo-{role}"
        if User.objects.filter(username=username).exists():
            continue
        password = create_account(username, role, care_provider=provider if role == "member" else "")
        created.append((username, role, password))
    return created
