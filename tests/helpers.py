"""Small helpers shared by tests: params of the project's own params.yaml."""

from __future__ import annotations

from features.config import load_params, section
from features.labels import LabelParams
from features.pairs import FeatureParams
from features.rules import PassendToewijzen

PARAMS = load_params()
FEATURE_PARAMS = section(PARAMS, "features", FeatureParams)
LABEL_PARAMS = section(PARAMS, "labels", LabelParams)
RULES = section(PARAMS, "passend_toewijzen", PassendToewijzen)
