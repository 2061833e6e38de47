"""The group metrics the audit computes: who is measured, on which columns, and which value is favourable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fairlearn.metrics import false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import brier_score_loss

PLACEMENTS, CANDIDATES = "placements", "candidates"


MODEL, HUMAN, PLAN = "model", "human", "plan"


HIGH, LOW, ZERO = "high", "low", "zero"  # which value is favourable (the best-off group)


def _mean_true(y_true, y_pred) -> float:
    return float(np.mean(y_true)) if len(y_true) else float("nan")


def _mean_pred(y_true, y_pred) -> float:
    return float(np.mean(y_pred)) if len(y_pred) else float("nan")


def _calibration_error(y_true, y_pred) -> float:
    return float(np.mean(y_pred) - np.mean(y_true)) if len(y_true) else float("nan")


def _brier(y_true, y_pred) -> float:
    return (
        float(brier_score_loss(np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=float), pos_label=1))
        if len(y_true)
        else float("nan")
    )


def _selection_rate(y_true, y_pred) -> float:
    return float(selection_rate(y_true, y_pred, pos_label=1))


def _tpr(y_true, y_pred) -> float:
    return float(true_positive_rate(y_true, y_pred, pos_label=1))


def _fpr(y_true, y_pred) -> float:
    return float(false_positive_rate(y_true, y_pred, pos_label=1))


@dataclass(frozen=True)
class Metric:
    """One group metric: which frame, which columns, which rows, and what it means."""

    name: str
    source: str  # model | human | plan
    population: str  # placements | candidates
    func: Callable
    y_true: str
    y_pred: str
    subset: str | None  # 0/1 column: only rows where it is 1 count
    support: str  # rows | positives | negatives | clients: the independent units in the denominator
    favourable: str  # high | low | zero: the best-off group's value
    binary: bool  # a share of 0/1 values (a standard error is reported)
    meaning: str


METRICS: tuple[Metric, ...] = (
    Metric(
        "selection_rate",
        MODEL,
        PLACEMENTS,
        _selection_rate,
        "outcome",
        "prediction",
        None,
        "rows",
        HIGH,
        True,
        "share of held-out placements the model calls a success (P(sustained) ≥ threshold)",
    ),
    Metric(
        "true_positive_rate",
        MODEL,
        PLACEMENTS,
        _tpr,
        "outcome",
        "prediction",
        None,
        "positives",
        HIGH,
        True,
        "of the tenancies that were sustained, the share the model called a success (equal opportunity)",
    ),
    Metric(
        "false_positive_rate",
        MODEL,
        PLACEMENTS,
        _fpr,
        "outcome",
        "prediction",
        None,
        "negatives",
        HIGH,
        True,
        "of the tenancies that failed, the share the model called a success (benefit of the doubt)",
    ),
    Metric(
        "mean_score",
        MODEL,
        PLACEMENTS,
        _mean_pred,
        "outcome",
        "score",
        None,
        "rows",
        HIGH,
        False,
        "mean raw model score",
    ),
    Metric(
        "mean_probability",
        MODEL,
        PLACEMENTS,
        _mean_pred,
        "outcome",
        "probability",
        None,
        "rows",
        HIGH,
        False,
        "mean calibrated P(sustained)",
    ),
    Metric(
        "success_rate",
        MODEL,
        PLACEMENTS,
        _mean_true,
        "outcome",
        "outcome",
        None,
        "rows",
        HIGH,
        True,
        "observed share sustained",
    ),
    Metric(
        "mean_probability_sustained",
        MODEL,
        PLACEMENTS,
        _mean_pred,
        "outcome",
        "probability",
        "outcome",
        "positives",
        HIGH,
        False,
        "of the tenancies that were sustained, the mean chance the model showed (equal opportunity without a cut-off)",
    ),
    Metric(
        "calibration_error",
        MODEL,
        PLACEMENTS,
        _calibration_error,
        "outcome",
        "probability",
        None,
        "rows",
        ZERO,
        False,
        "mean P(sustained) minus observed share sustained (> 0: the model is too optimistic for the group)",
    ),
    Metric(
        "brier_score",
        MODEL,
        PLACEMENTS,
        _brier,
        "outcome",
        "probability",
        None,
        "rows",
        LOW,
        False,
        "mean squared error of P(sustained) against the outcome",
    ),
    Metric(
        "low_support_share",
        MODEL,
        PLACEMENTS,
        _mean_pred,
        "outcome",
        "low_support",
        None,
        "rows",
        LOW,
        True,
        "share of placements with few similar training placements (selection bias: little support)",
    ),
    Metric(
        "selection_rate",
        HUMAN,
        CANDIDATES,
        _selection_rate,
        "placed",
        "placed",
        None,
        "clients",
        HIGH,
        True,
        "share of candidate-meetings at which the meeting placed the client (historical decision)",
    ),
    Metric(
        "expected_success",
        HUMAN,
        CANDIDATES,
        _mean_pred,
        "placed",
        "p_actual",
        "placed",
        "clients",
        HIGH,
        False,
        "mean model P(sustained) of the homes the meeting gave",
    ),
    Metric(
        "success_rate",
        HUMAN,
        CANDIDATES,
        _mean_true,
        "outcome",
        "outcome",
        "outcome_known",
        "clients",
        HIGH,
        True,
        "observed share sustained of those placements (known outcomes only)",
    ),
    Metric(
        "below_best_share",
        HUMAN,
        CANDIDATES,
        _mean_pred,
        "placed",
        "below_best_actual",
        "placed",
        "clients",
        LOW,
        True,
        "of the clients the meeting placed, the share whose home has a lower P than their best eligible home",
    ),
    Metric(
        "selection_rate",
        PLAN,
        CANDIDATES,
        _selection_rate,
        "planned",
        "planned",
        None,
        "clients",
        HIGH,
        True,
        "share of candidate-meetings at which the model's plan gives the client a home",
    ),
    Metric(
        "expected_success",
        PLAN,
        CANDIDATES,
        _mean_pred,
        "planned",
        "p_plan",
        "planned",
        "clients",
        HIGH,
        False,
        "mean model P(sustained) of the homes the plan gives",
    ),
    Metric(
        "worse_off_share",
        PLAN,
        CANDIDATES,
        _mean_pred,
        "placed",
        "worse_off",
        "placed",
        "clients",
        LOW,
        True,
        "of the clients the meeting placed, the share the plan leaves worse off (no home at that meeting, or a lower P)",
    ),
    Metric(
        "displaced_share",
        PLAN,
        CANDIDATES,
        _mean_pred,
        "placed",
        "displaced",
        "placed",
        "clients",
        LOW,
        True,
        "of the clients the meeting placed, the share the plan gives no home at that meeting",
    ),
    Metric(
        "below_best_share",
        PLAN,
        CANDIDATES,
        _mean_pred,
        "planned",
        "below_best",
        "planned",
        "clients",
        LOW,
        True,
        "of the clients the plan places, the share whose planned home has a lower P than their best eligible home",
    ),
)
