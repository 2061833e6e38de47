"""Judging held-out weeks (audit, policies) never uses a deployed refit that learned from them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.pairs import FEATURE_NAMES
from models.tracking import resolve_for_held_out
from synthetic.stand_in import stand_in_bundle


def _bundle(role: str | None, seed: int):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(300, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES))
    b = stand_in_bundle(X, n_trees=5, num_leaves=3, seed=seed)
    if role:
        b.metadata["role"] = role
    return b


def test_deployed_folder_is_judged_by_its_evaluated_model(tmp_path):
    folder = _bundle("deployed", 1).save(tmp_path / "model")
    _bundle("evaluated", 2).save(folder / "evaluated")
    got, note = resolve_for_held_out(str(folder))
    assert got.metadata["role"] == "evaluated" and "evaluated model" in note


def test_deployed_folder_without_evaluated_model_says_optimistic(tmp_path):
    folder = _bundle("deployed", 1).save(tmp_path / "model")
    got, note = resolve_for_held_out(str(folder))
    assert got.metadata["role"] == "deployed" and "optimistic" in note


def test_other_models_are_used_as_given(tmp_path):
    folder = _bundle(None, 3).save(tmp_path / "model")
    got, note = resolve_for_held_out(str(folder))
    assert "role" not in got.metadata and note == ""
