"""The meeting sheet: every vacancy, self-contained, both languages, low support shown; and in a real browser."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import tempfile

import pandas as pd
import pytest

from features.load import load_dataset
from features.pairs import all_meeting_pairs, build_pair_features
from pipelines.recommend import load_config
from reports.meeting import contribution_svg
from reports.suggestions import meeting_outputs
from synthetic.stand_in import jittered, stand_in_bundle
from tests.conftest import tiny_tables, write_dataset

MEETING = pd.Timestamp("2023-01-02")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    ds = load_dataset(write_dataset(tmp_path_factory.mktemp("tiny"), tiny_tables()))
    cfg = load_config()
    X = build_pair_features(
        ds, all_meeting_pairs(ds, ds.vacancies["meeting_date"].unique()), params=cfg.features, rules=cfg.amounts
    )
    bundle = stand_in_bundle(jittered(X, 400, seed=1), n_trees=25, num_leaves=6, min_data_in_leaf=5)
    return ds, cfg, bundle


def sheet(setup, lang="en", **explain) -> str:
    ds, cfg, bundle = setup
    if explain:
        cfg = dataclasses.replace(cfg, explain=dataclasses.replace(cfg.explain, **explain))
    return meeting_outputs(ds, MEETING, bundle, cfg, lang=lang).html


def test_every_vacancy_is_on_the_sheet(setup):
    html = sheet(setup)
    assert re.findall(r'<section class="vacancy" id="home-(\w+)">', html) == ["D001", "D002"]
    # D002 has no eligible candidate: reported with why, not dropped.
    d002 = html.split('id="home-D002"')[1]
    assert "No eligible candidate for this home" in d002
    assert "passend toewijzen: rent above the cap for this income (3): 0001, 0002, 0003" in d002
    assert "1 home(s) without any eligible candidate: D002" in html
    d001 = html.split('id="home-D001"')[1].split("</section>")[0]
    assert d001.count('<tr class="planned">') == 1 and d001.count("<svg") == 3
    assert "Plan: client" in d001 and "Compared with #1: " in d001


def test_sheet_is_self_contained_and_prints(setup):
    html = sheet(setup)
    for forbidden in ("<script", "<link", "src=", "@import", "url(", "http://", "https://"):
        assert forbidden not in html, forbidden
    assert "@media print" in html and "size: A4" in html
    assert "These are suggestions, not decisions" in html and "record the decision and the reason" in html


def test_sheet_in_dutch(setup):
    html = sheet(setup, lang="nl")
    assert '<html lang="nl">' in html
    assert "Dit zijn suggesties, geen besluiten" in html and "Woning D001" in html
    assert "Geen passende kandidaat voor deze woning" in html
    assert "huurgrens" in html and "These are suggestions" not in html


def test_low_support_is_shown(setup):
    ds, cfg, bundle = setup
    html = sheet(setup, low_support_below=10_000)
    assert html.count('<span class="low">low support</span>') == 3  # the three suggestions for D001
    assert '<span class="low">low support</span>' not in sheet(setup, low_support_below=0)


def test_sheet_shows_the_first_candidates_and_counts_the_rest(setup):
    html = sheet(setup, sheet_candidates=1)
    d001 = html.split('id="home-D001"')[1].split("</section>")[0]
    # the #1, and the planned client (ranked #2 for D001: the policy placed the #1 elsewhere) is shown too
    assert d001.count("<svg") == 2 and "1 more eligible candidates in recommendations.csv" in d001
    assert 'class="planned"' in d001


def test_no_protected_attribute_reaches_the_sheet(setup):
    html = sheet(setup)
    for word in ("gender", "birth", "migration", "outside_europe", "female"):
        assert word not in html.lower()


def test_contribution_svg():
    svg = contribution_svg([("rent", 0.3), ("distance to the care provider given the support hours", -0.15)], scale=0.3)
    assert svg.count('class="pos"') == 1 and svg.count('class="neg"') == 1
    assert (
        "−0.15" in svg
        and "…" in svg
        and "<title>distance to the care provider given the support hours: −0.15</title>" in svg
    )
    # Bar length is proportional to the contribution; positive bars start at the axis, negative bars end there.
    bars = [dict(re.findall(r'(\w+)="([^"]*)"', rect)) for rect in re.findall(r"<rect [^>]*>", svg)]
    pos, neg = (next(b for b in bars if b["class"] == kind) for kind in ("pos", "neg"))
    assert float(pos["width"]) == pytest.approx(2 * float(neg["width"]))
    assert float(neg["x"]) + float(neg["width"]) == pytest.approx(float(pos["x"]))
    # A contribution beyond the scale is capped at the full half-width, never drawn past the plot.
    capped = contribution_svg([("a", 0.3), ("b", 3.0)], scale=0.3)
    widths = [float(w) for w in re.findall(r'<rect class="pos" x="[^"]*" y="[^"]*" width="([^"]*)"', capped)]
    assert widths[0] == pytest.approx(widths[1])


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed")
def test_sheet_renders_in_headless_chromium(setup, tmp_path):
    page = tmp_path / "meeting.html"
    page.write_text(sheet(setup), encoding="utf-8")
    shot = tmp_path / "meeting.png"
    profile = tempfile.mkdtemp()
    try:
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                "--window-size=1280,1400",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.is_file() and shot.stat().st_size > 20_000  # a blank page compresses to a few kB
    with shot.open("rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
