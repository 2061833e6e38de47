"""The promotion rule (models.promotion) on literal cases: comparison with the champion, then the decision."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from models import promotion
from models.promotion import ChampionComparison, compare_with_champion, decide_promotion

FEATURES = ("a", "b")


def compare(champion, *, new_value=0.70, unreadable=None, higher_is_better=True, metric="ndcg_at_5"):
    return compare_with_champion(
        new_value,
        champion=champion,
        champion_label="version 3",
        unreadable=unreadable,
        feature_names=FEATURES,
        test=pd.DataFrame(),
        test_start=pd.Timestamp("2025-01-06"),
        label_gain=(0.0, 1.0, 3.0),
        metric=metric,
        higher_is_better=higher_is_better,
    )


@pytest.fixture
def champion_scores(monkeypatch):
    """A stand-in champion whose held-out metrics are given literally (scoring itself is tested elsewhere)."""
    monkeypatch.setattr(promotion, "score_with", lambda bundle, test, label_gain: bundle.metrics)

    def make(train_end="2024-06-30", features=FEATURES, **metrics):
        return SimpleNamespace(feature_names=features, metadata={"train_end": train_end}, metrics=metrics)

    return make


def test_no_champion_promotes():
    c = compare(None)
    assert c.champion_value is None and c.better and c.notes == ()
    assert decide_promotion(c, gate_passed=True) == promotion.Promotion(True, ())


def test_unreadable_or_other_features_are_not_compared(champion_scores):
    c = compare(None, unreadable="file missing")
    assert c.better and c.notes == ("the current default (version 3) cannot be read (file missing): not compared",)
    c = compare(champion_scores(features=("a", "c"), ndcg_at_5=0.9))
    assert c.champion_value is None and c.better and "uses other features" in c.notes[0]


def test_higher_is_better_ties_promote_and_worse_stays_a_candidate(champion_scores):
    tie = compare(champion_scores(ndcg_at_5=0.70))
    assert tie.champion_value == 0.70 and tie.better and decide_promotion(tie, gate_passed=True).promote
    worse = decide_promotion(compare(champion_scores(ndcg_at_5=0.75)), gate_passed=True)
    assert not worse.promote
    assert worse.reasons == ("ndcg_at_5 0.7000 is below the current default's 0.7500 on the same held-out placements",)
    assert worse.description().startswith("candidate: ndcg_at_5 0.7000 is below")


def test_lower_is_better_metric(champion_scores):
    better = compare(champion_scores(ece=0.05), new_value=0.03, metric="ece", higher_is_better=False)
    assert better.better and decide_promotion(better, gate_passed=None).promote
    worse = decide_promotion(
        compare(champion_scores(ece=0.02), new_value=0.03, metric="ece", higher_is_better=False), gate_passed=True
    )
    assert worse.reasons == ("ece 0.0300 is above the current default's 0.0200 on the same held-out placements",)


def test_a_failed_gate_blocks_even_a_better_model_and_both_reasons_are_given(champion_scores):
    better = ChampionComparison("ndcg_at_5", 0.8, 0.7, True)
    blocked = decide_promotion(better, gate_passed=False, gate_failures=["selection_rate gap 0.30 > 0.20"])
    assert not blocked.promote and blocked.reasons == ("the fairness gate failed: selection_rate gap 0.30 > 0.20",)
    both = decide_promotion(ChampionComparison("ndcg_at_5", 0.6, 0.7, True), gate_passed=False, gate_failures=["x"])
    assert len(both.reasons) == 2
    assert decide_promotion(better, gate_passed=None).promote  # not judged (no audit data) does not block


def test_a_champion_that_learned_from_the_test_weeks_is_flagged(champion_scores):
    c = compare(champion_scores(train_end="2025-02-03", ndcg_at_5=0.9))
    assert not c.better and "learned from meetings up to 2025-02-03" in c.notes[0] and "optimistic" in c.notes[0]
    assert decide_promotion(c, gate_passed=True).description().endswith(c.notes[0])
    assert compare(champion_scores(train_end="2025-01-05", ndcg_at_5=0.9)).notes == ()
