"""Whether a newly trained model may become the default model.

Two conditions, both decided here and nowhere else: the new model is at least as
good as the current default (the champion) on the *same* held-out placements, by
params `mlflow.promotion_metric`, and it passed the fairness gate. A champion that
cannot be read, or that uses other features (older code), is not compared; notes
say why, and a champion that learned from the new held-out weeks is flagged as
optimistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.bundle import ModelBundle
from models.experiment import score_with


@dataclass(frozen=True)
class ChampionComparison:
    """The promotion metric of the new model and of the current default on the same held-out rows."""

    metric: str
    new_value: float
    champion_value: float | None  # None: there is no default, or it could not be compared
    higher_is_better: bool
    notes: tuple[str, ...] = ()

    @property
    def better(self) -> bool:
        """True when there is nothing comparable to beat, or the new model is at least as good."""
        if self.champion_value is None:
            return True
        if self.higher_is_better:
            return self.new_value >= self.champion_value
        return self.new_value <= self.champion_value


def compare_with_champion(
    new_value: float,
    *,
    champion: ModelBundle | None,
    champion_label: str,
    unreadable: str | None,
    feature_names: tuple[str, ...],
    test: pd.DataFrame,
    test_start: pd.Timestamp,
    label_gain: tuple[float, ...],
    metric: str,
    higher_is_better: bool,
) -> ChampionComparison:
    """Score the champion on the new model's held-out rows (see module docstring).

    Args:
        new_value: the new model's value of `metric` on `test`.
        champion: the current default model, or None (none, or unreadable).
        champion_label: how notes name the champion (e.g. "version 3").
        unreadable: why the champion could not be read, if so.
    """
    notes: list[str] = []
    value = None
    if unreadable is not None:
        notes.append(f"the current default ({champion_label}) cannot be read ({unreadable}): not compared")
    elif champion is not None and tuple(champion.feature_names) != tuple(feature_names):
        notes.append(f"the current default ({champion_label}) uses other features (older code): not compared")
    elif champion is not None:
        value = float(score_with(champion, test, label_gain)[metric])
        champ_end = champion.metadata.get("train_end")
        if champ_end and str(champ_end)[:10] >= f"{test_start:%Y-%m-%d}":
            notes.append(
                f"the current default ({champion_label}) learned from meetings up to {str(champ_end)[:10]}, inside "
                f"these held-out weeks (from {test_start:%Y-%m-%d}): its {metric} here is optimistic"
            )
    return ChampionComparison(metric, float(new_value), value, higher_is_better, tuple(notes))


@dataclass(frozen=True)
class Promotion:
    """The decision and, when the model stays a candidate, why."""

    promote: bool
    reasons: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def description(self) -> str:
        """The registry description of the new version."""
        head = "promoted" if self.promote else "candidate: " + " and ".join(self.reasons)
        return head + "".join(f"; note: {n}" for n in self.notes)


def decide_promotion(comparison: ChampionComparison, *, gate_passed: bool | None, gate_failures=()) -> Promotion:
    """Promote only when the new model is not worse than the champion and the gate passed (None = not judged)."""
    reasons = []
    if not comparison.better:
        reasons.append(
            f"{comparison.metric} {comparison.new_value:.4f} is {'below' if comparison.higher_is_better else 'above'} "
            f"the current default's "
            f"{comparison.champion_value:.4f} on the same held-out placements"
        )
    if gate_passed is False:
        reasons.append("the fairness gate failed: " + "; ".join(gate_failures))
    return Promotion(not reasons, tuple(reasons), comparison.notes)
