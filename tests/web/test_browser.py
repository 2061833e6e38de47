"""Browser tests: Debian's Chromium driven by pytest-playwright against the live app."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.web.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
# The README's screenshot is refreshed with MATCHWIJS_SCREENSHOT=docs/meeting-app.png (else a temporary file).
SCREENSHOT_ENV = "MATCHWIJS_SCREENSHOT"

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} is not installed (.ci/run installs it)")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--headless",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
        ],
    }


@pytest.fixture
def live(transactional_db, live_server, app_state):
    from web.meetings import load_meeting
    from web.state import set_state

    set_state(app_state)
    yield live_server.url, load_meeting(app_state, "latest")
    # Django flushes the tables after a transactional test; the append-only log must be emptied first.
    from django.db import connection, transaction

    from web.models import CurrentDecision
    from web.prune import without_log_guard

    with transaction.atomic(), connection.cursor() as cur:
        CurrentDecision.objects.all().delete()
        without_log_guard(cur, "DELETE FROM web_decisionrecord")


def _login(page, base: str, username: str) -> None:
    page.goto(base + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_chair_decides_and_auditor_sees_the_log(page, live, users, app_state, tmp_path):
    base, meeting = live
    out = app_state.outputs(pd.Timestamp(meeting.date), "en")
    homes = list(out.assignment["dwelling_id"])
    _login(page, base, "chair")
    page.click(f"text={meeting.date:%Y-%m-%d}")
    assert "0</strong> decided" in page.content()
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "meeting-app.png")
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 0

    page.click(f"a:text-is('{homes[0]}')")
    page.check("input[value=plan_followed]")
    page.click("text=Record the decision")
    assert "Recorded for" in page.content()

    page.goto(f"{base}/meetings/{meeting.date:%Y-%m-%d}/homes/{homes[1]}/")
    page.check("input[value=no_placement]")
    page.select_option("select[name=reason]", "care_provider_advice")
    page.click("text=Record the decision")
    assert "Recorded for" in page.content()
    page.click("text=Log out")

    _login(page, base, "auditor")
    page.goto(base + "/log/")
    log = page.inner_text("#log")
    assert "plan_followed" in log and "no_placement" in log and "care_provider_advice" in log


def test_member_cannot_decide(page, live, users, app_state):
    base, meeting = live
    home = app_state.outputs(pd.Timestamp(meeting.date), "en").assignment["dwelling_id"].iloc[0]
    _login(page, base, "member")
    page.goto(f"{base}/meetings/{meeting.date:%Y-%m-%d}/homes/{home}/")
    assert page.locator("#decide-form").count() == 0
    status = page.evaluate(
        """async (url) => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const r = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token,
              'Content-Type': 'application/x-www-form-urlencoded'}, body: 'decision=plan_followed&seen_record='});
            return r.status; }""",
        f"{base}/meetings/{meeting.date:%Y-%m-%d}/homes/{home}/decide/",
    )
    assert status == 403
