"""The evaluation folder `train` writes (`--eval-out`, and the MLflow run's `evaluation/` artifacts).

Tables: metrics per scorer, feature importance, global SHAP importance, reliability
curves, the oracle comparison (synthetic data), model-minus-baseline intervals and
the fairness gate. Figures: importance, SHAP beeswarm, reliability, oracle gains.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fairness.gate import GateResult
from models.bundle import ModelBundle
from models.experiment import ExperimentResult
from models.oracle import OracleComparison
from reports import figures

SHAP_SAMPLE_ROWS = 2000  # held-out rows in the SHAP beeswarm


def write_evaluation(
    folder: Path,
    *,
    result: ExperimentResult,
    bundle: ModelBundle,
    oracle: OracleComparison | None,
    versus: pd.DataFrame | None,
    gate: GateResult | None,
) -> Path:
    """Write every evaluation table and figure into `folder` (which must exist)."""
    result.metrics.to_csv(folder / "metrics.csv")
    importance = pd.Series(bundle.booster.feature_importance("gain"), index=list(bundle.feature_names), dtype=float)
    importance.sort_values(ascending=False).to_csv(folder / "feature_importance.csv", header=["gain"])
    title = "LightGBM feature importance (gain)" + (
        " of the trees, on top of the prior" if bundle.prior is not None else ""
    )
    figures.importance_figure(importance, folder / "feature_importance.png", title)
    sample = result.test.head(SHAP_SAMPLE_ROWS)
    contrib, _ = bundle.contributions(sample)
    figures.shap_summary_figure(contrib, sample, folder / "shap_summary.png")
    contrib.abs().mean().sort_values(ascending=False).to_csv(
        folder / "shap_global_importance.csv", header=["mean_abs_contribution"]
    )
    figures.reliability_figure(dict(result.reliability), folder / "reliability.png")
    for name, curve in result.reliability.items():
        curve.to_csv(folder / f"reliability_{name}.csv", index=False)
    if oracle is not None:
        oracle.table.to_csv(folder / "oracle_comparison.csv")
        oracle.per_meeting.to_csv(folder / "oracle_per_meeting.csv", index=False)
        figures.gain_figure(oracle.table["plan_true_p_sustained"], folder / "oracle_comparison.png")
    if versus is not None:
        versus.to_csv(folder / "model_vs_baselines.csv", index=False)
    if gate is not None:
        gate.table.to_csv(folder / "fairness_gate.csv", index=False)
    return folder
