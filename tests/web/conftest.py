"""Fixtures of the meeting app tests: a small random meeting, a stand-in model, one user per role."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # pytest-playwright with live_server (playwright-pytest#29)

N_HOMES, N_CANDIDATES = 4, 12
PASSWORD = "a-long-test-password-1"


@pytest.fixture(scope="session")
def meeting_dir(tmp_path_factory) -> Path:
    """A contract-valid dataset: one meeting of 4 homes and 12 candidates after 6 weeks of history."""
    from synthetic.meeting import synthetic_meeting_tables, write_tables

    tables, _meeting, as_of = synthetic_meeting_tables(
        n_vacancies=N_HOMES, n_candidates=N_CANDIDATES, history_weeks=6, weekly_history=6, seed=3
    )
    return write_tables(tmp_path_factory.mktemp("app") / "meeting", tables, as_of=as_of, name="app-test")


@pytest.fixture(scope="session")
def app_state(meeting_dir):
    """The app's state (dataset, stand-in model, params), loaded once for the whole session."""
    from features.config import load_params
    from features.load import dataset_fingerprint, load_dataset
    from reports.suggestions import RecommendConfig
    from synthetic.stand_in import history_bundle
    from web.state import AppState, model_version, set_state

    params = load_params()
    cfg = RecommendConfig.from_params(params)
    ds = load_dataset(meeting_dir)
    bundle = history_bundle(ds, cfg, n_trees=20)
    state = AppState(ds, bundle, cfg, dataset_fingerprint(meeting_dir), model_version(bundle), params)
    set_state(state)
    for lang in ("en", "nl"):
        state.outputs(state.latest(), lang)
    return state


@pytest.fixture
def meeting(db, app_state):
    """The latest meeting loaded into the app."""
    from web.meetings import load_meeting
    from web.state import set_state

    set_state(app_state)
    return load_meeting(app_state, "latest")


@pytest.fixture
def users(db, app_state):
    """One user per role (the member works for the care provider of the first candidate)."""
    from django.contrib.auth.models import User

    from web.meetings import create_account
    from web.roles import ROLES

    provider = str(app_state.ds.clients["care_provider"].iloc[0])
    made = {}
    for role in ROLES:
        create_account(role, role, care_provider=provider if role == "member" else "", password=PASSWORD)
        made[role] = User.objects.get(username=role)
    return made


def client_for(client, user):
    """A Django test client logged in as `user`."""
    client.force_login(user)
    return client
