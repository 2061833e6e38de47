"""Calibration metrics on literal cases: the reliability curve and ECE (an allowed promotion metric)."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluate import expected_calibration_error, reliability_curve


def test_reliability_curve_equal_count_bins():
    p = np.array([0.4, 0.1, 0.3, 0.2])
    y = np.array([1, 0, 1, 0])
    curve = reliability_curve(p, y, bins=2)
    # Sorted by p: {0.1, 0.2} then {0.3, 0.4}.
    assert curve["mean_predicted"].tolist() == pytest.approx([0.15, 0.35])
    assert curve["observed"].tolist() == [0.0, 1.0] and curve["n"].tolist() == [2, 2]


def test_reliability_curve_has_at_most_one_bin_per_row_and_ties_split_by_order():
    curve = reliability_curve(np.array([0.5, 0.5, 0.5]), np.array([1, 0, 1]), bins=10)
    assert curve["n"].tolist() == [1, 1, 1] and curve["observed"].tolist() == [1.0, 0.0, 1.0]


def test_ece_literal_cases():
    # |0 − 0.15| and |1 − 0.35|, two rows each: (0.15·2 + 0.65·2) / 4 = 0.4.
    assert expected_calibration_error(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 0, 1, 1]), bins=2) == pytest.approx(
        0.4
    )
    # Calibrated on average within the single bin: no error.
    assert expected_calibration_error(np.array([0.5] * 4), np.array([0, 1, 0, 1]), bins=1) == pytest.approx(0.0)
    # Bins weigh by their row count: 5 rows in 2 bins of 3 and 2 rows.
    # |1/3 − 0.2|·3 + |1 − 0.8|·2 = 0.4 + 0.4, over 5 rows = 0.16.
    p = np.array([0.2, 0.8, 0.2, 0.8, 0.2])
    y = np.array([0, 1, 1, 1, 0])
    assert expected_calibration_error(p, y, bins=2) == pytest.approx(0.16)
