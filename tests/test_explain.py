"""Explanations: TreeSHAP equal to LightGBM's pred_contrib and additive to the score; reasons in English and Dutch."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.config import section
from features.load import load_dataset
from features.pairs import FEATURE_NAMES, all_meeting_pairs, build_pair_features
from models.bundle import ModelBundle
from models.contributions import differences, explanations_frame
from reports.reasons import TEMPLATES, ExplainParams, check_lang, reasons, signed
from synthetic.stand_in import jittered, stand_in_bundle
from tests.helpers import FEATURE_PARAMS, PARAMS, RULES

PARAMS_EXPLAIN = ExplainParams()


@pytest.fixture(scope="module")
def tiny_features(tmp_path_factory):
    from tests.conftest import tiny_tables, write_dataset

    ds = load_dataset(write_dataset(tmp_path_factory.mktemp("tiny"), tiny_tables()))
    pairs = all_meeting_pairs(ds, ds.vacancies["meeting_date"].unique())
    return build_pair_features(ds, pairs, params=FEATURE_PARAMS, rules=RULES)


@pytest.fixture(scope="module")
def tiny_bundle(tiny_features):
    return stand_in_bundle(jittered(tiny_features, 400, seed=1), n_trees=25, num_leaves=6, min_data_in_leaf=5)


def test_explanations_are_additive_to_the_score(tiny_bundle, tiny_features):
    X = tiny_features
    contrib, base = tiny_bundle.contributions(X)
    assert (contrib.abs().sum(axis=1) > 0).all(), "the stand-in model should explain something"
    long = explanations_frame(X[["dwelling_id", "client_id"]], X, contrib)
    assert list(long.columns) == ["dwelling_id", "client_id", "feature", "value", "contribution"]
    assert len(long) == len(X) * len(FEATURE_NAMES)
    assert long["feature"].iloc[: len(FEATURE_NAMES)].tolist() == list(FEATURE_NAMES)
    total = long.groupby(["dwelling_id", "client_id"], sort=False)["contribution"].sum().to_numpy()
    np.testing.assert_allclose(base + total, tiny_bundle.score(X), atol=1e-6, rtol=0)
    row = long[
        (long["dwelling_id"] == "D002") & (long["client_id"] == "0002") & (long["feature"] == "floors_without_lift")
    ]
    assert row["value"].item() == 3.0


def test_prior_is_explained_exactly_and_survives_saving(tiny_bundle, tiny_features, tmp_path):
    """With a linear prior, contributions stay additive; the prior's part is coef * (x - mean)."""
    import dataclasses

    from models.bundle import LinearPrior

    X = tiny_features
    prior = LinearPrior(
        coef={"zrm_mean": 0.8, "rent_to_income": -1.5},
        intercept=0.3,
        mean={"zrm_mean": float(X["zrm_mean"].mean()), "rent_to_income": 0.25},
    )
    with_prior = dataclasses.replace(tiny_bundle, prior=prior)
    contrib, base = with_prior.contributions(X)
    np.testing.assert_allclose(base + contrib.sum(axis=1).to_numpy(), with_prior.score(X), atol=1e-6)
    np.testing.assert_allclose(
        with_prior.score(X) - tiny_bundle.score(X), 0.3 + 0.8 * X["zrm_mean"] - 1.5 * X["rent_to_income"], atol=1e-12
    )
    trees_only, _ = tiny_bundle.contributions(X)
    np.testing.assert_allclose(
        contrib["rent_to_income"] - trees_only["rent_to_income"], -1.5 * (X["rent_to_income"] - 0.25), atol=1e-12
    )
    untouched = [f for f in FEATURE_NAMES if f not in prior.coef]
    np.testing.assert_allclose(contrib[untouched].to_numpy(), trees_only[untouched].to_numpy(), atol=1e-12)
    loaded = ModelBundle.load(with_prior.save(tmp_path / "m"))
    assert loaded.prior == prior
    np.testing.assert_allclose(loaded.score(X), with_prior.score(X), atol=1e-12)


def test_nuisance_head_ranks_by_expected_gain_and_is_explained_exactly(tiny_bundle, tiny_features, tmp_path):
    """With a nuisance head: score = log P(sustained) + head, the chance is unchanged, contributions add up."""
    import dataclasses

    from models.bundle import LinearPrior

    X = tiny_features
    head = LinearPrior(coef={"needs_quiet_surroundings": -0.4, "zrm_addiction": 0.1}, intercept=1.2, mean={})
    head = dataclasses.replace(head, mean={f: float(X[f].mean()) for f in head.coef})
    ranked = dataclasses.replace(tiny_bundle, nuisance=head)
    p = tiny_bundle.proba(X)
    np.testing.assert_allclose(ranked.proba(X), p, atol=0)  # the chance (and so the plan) does not move
    expected_gain = p * np.exp(1.2 - 0.4 * X["needs_quiet_surroundings"] + 0.1 * X["zrm_addiction"])
    np.testing.assert_allclose(ranked.score(X), np.log(expected_gain), atol=1e-9)
    np.testing.assert_allclose(
        ranked.score(X, logodds=tiny_bundle.logodds(X)), ranked.score(X), atol=0
    )  # the shortcut gives the same
    contrib, base = ranked.contributions(X)
    np.testing.assert_allclose(base + contrib.sum(axis=1).to_numpy(), ranked.score(X), atol=1e-9)
    # a feature only the trees use keeps its sign and its share of the log-odds change
    trees, trees_base = tiny_bundle.contributions(X)
    z = tiny_bundle.logodds(X)
    ratio = (ranked.log_chance(z) - ranked.log_chance(trees_base)) / (z - trees_base)
    np.testing.assert_allclose(contrib["floors_without_lift"], trees["floors_without_lift"] * ratio, atol=1e-12)
    loaded = ModelBundle.load(ranked.save(tmp_path / "m"))
    assert loaded.nuisance == head
    np.testing.assert_allclose(loaded.score(X), ranked.score(X), atol=1e-12)
    # a folder written before the head existed has no `nuisance`: it loads and ranks by the chance
    old = ModelBundle.load(tiny_bundle.save(tmp_path / "old"))
    assert old.nuisance is None
    np.testing.assert_allclose(old.score(X), tiny_bundle.logodds(X), atol=1e-12)


def _one_pair(**values) -> pd.DataFrame:
    X = pd.DataFrame([dict.fromkeys(FEATURE_NAMES, 0.0)])
    for k, v in values.items():
        X.loc[0, k] = v
    return X


def _contrib(**values) -> pd.DataFrame:
    c = pd.DataFrame([dict.fromkeys(FEATURE_NAMES, 0.0)])
    for k, v in values.items():
        c.loc[0, k] = v
    return c


CONTEXT = pd.DataFrame({"care_provider": ["Kompas Zorg"], "district": ["Oost"], "network_district": ["West"]})


def test_reasons_in_english_and_dutch():
    X = _one_pair(
        distance_to_care_km=3.2,
        support_hours_per_week=8,
        support_x_distance=25.6,
        rent_to_income=0.38,
        zrm_finances=2,
        rent_cap_headroom_eur=-52.4,
        floors_without_lift=3,
    )
    c = _contrib(support_x_distance=-0.4, rent_cap_headroom_eur=0.21, floors_without_lift=-0.15, rent_to_income=0.004)
    en = reasons(X, c, context=CONTEXT, lang="en", params=PARAMS_EXPLAIN).iloc[0]
    assert en == (
        "3.2 km from Kompas Zorg for someone with 8 support hours a week (−0.40); "
        "rent €52 over the passend-toewijzen rent cap (+0.21); 3 floors of stairs without a lift (−0.15)"
    )
    nl = reasons(X, c, context=CONTEXT, lang="nl", params=PARAMS_EXPLAIN).iloc[0]
    assert nl == (
        "3,2 km van Kompas Zorg bij 8 uur begeleiding per week (−0,40); "
        "huur €\u00a052 boven de huurgrens van passend toewijzen (+0,21); 3 verdiepingen traplopen zonder lift (−0,15)"
    )


def test_reasons_respect_count_and_minimum():
    X = _one_pair(rooms=2, rent_eur=610, units_in_complex=40, network_in_district=0)
    c = _contrib(rooms=0.3, rent_eur=-0.2, units_in_complex=0.1, network_in_district=-0.05)
    one = reasons(X, c, context=CONTEXT, params=ExplainParams(top_reasons=1)).iloc[0]
    assert one == "2 rooms (+0.30)"
    four = reasons(X, c, context=CONTEXT, params=ExplainParams(top_reasons=4)).iloc[0]
    assert four.endswith("own network lives in West, not here (−0.05)") and four.count(";") == 3
    tiny = reasons(X, c * 0.001, params=PARAMS_EXPLAIN).iloc[0]
    assert tiny == "no single factor stands out"
    assert reasons(X, c * 0.001, lang="nl", params=PARAMS_EXPLAIN).iloc[0] == "geen factor springt eruit"


def test_special_category_values_are_not_shown():
    X = _one_pair(
        zrm_justice=1,
        zrm_addiction=2,
        addiction_x_vulnerable=0.3,
        vulnerable_household_share=0.1,
        stairs_x_physical=9,
        floors_without_lift=3,
        zrm_physical_health=2,
    )
    c = _contrib(zrm_justice=-0.5, addiction_x_vulnerable=-0.4, stairs_x_physical=-0.3)
    for lang in ("en", "nl"):
        text = reasons(X, c, lang=lang, params=PARAMS_EXPLAIN).iloc[0]
        assert "1/5" not in text and "2/5" not in text
    assert reasons(X, c, params=PARAMS_EXPLAIN).iloc[0] == (
        "justice (ZRM, score not shown) (−0.50); "
        "10% vulnerable households in the neighbourhood, given addiction (ZRM, not shown) (−0.40); "
        "3 floors of stairs without a lift, given physical health (ZRM, not shown) (−0.30)"
    )
    # A feature declared special in params but without its own wording is named without its value.
    special = ExplainParams(special_category=("rent_eur",))
    assert (
        reasons(_one_pair(rent_eur=610), _contrib(rent_eur=0.2), params=special).iloc[0] == "rent (not shown) (+0.20)"
    )


@pytest.mark.parametrize("value", [0.0, 1.0, 3.0])
def test_every_feature_has_wording_in_both_languages(value):
    assert set(TEMPLATES) == set(FEATURE_NAMES)
    X = _one_pair(**dict.fromkeys(FEATURE_NAMES, value))
    for name in FEATURE_NAMES:
        c = _contrib(**{name: 0.5})
        en = reasons(X, c, context=CONTEXT, lang="en", params=ExplainParams(special_category=())).iloc[0]
        nl = reasons(X, c, context=CONTEXT, lang="nl", params=ExplainParams(special_category=())).iloc[0]
        assert en.endswith("(+0.50)") and nl.endswith("(+0,50)"), name
        assert not re.search(r"\bnan\b", en + " " + nl, flags=re.IGNORECASE), name
        assert len(en) > 10 and len(nl) > 10, name


def test_differences_between_two_candidates():
    first = pd.Series({"a": 0.5, "b": -0.1, "c": 0.0})
    other = pd.Series({"a": 0.1, "b": -0.1, "c": 0.2})
    assert differences(first, other, 3) == [("a", pytest.approx(-0.4)), ("c", pytest.approx(0.2))]


def test_signed_and_languages():
    assert signed(-0.404) == "−0.40" and signed(0.2) == "+0.20" and signed(-0.001) == "+0.00"
    assert signed(-1.5, lang="nl") == "−1,50"
    assert check_lang("nl") == "nl"
    with pytest.raises(ValueError, match="en, nl"):
        check_lang("de")


def test_params_section():
    # Every special-category name in params.yaml is a model feature (a typo would silently show a value).
    cfg = section(PARAMS, "explain", ExplainParams)
    assert set(cfg.special_category) <= set(FEATURE_NAMES)
