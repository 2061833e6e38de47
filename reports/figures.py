"""Figures for people: feature importance, SHAP summary, reliability curve (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def importance_figure(importance: pd.Series, path: Path, title: str, top: int = 20) -> Path:
    """Horizontal bar chart of the `top` largest values of `importance` (feature -> value)."""
    imp = importance.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(imp) + 1.2))
    ax.barh(imp.index, imp.to_numpy(), color="#2b6cb0")
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def shap_summary_figure(contributions: pd.DataFrame, X: pd.DataFrame, path: Path, top: int = 15) -> Path:
    """SHAP beeswarm of precomputed TreeSHAP contributions (shap's own plot, no explainer re-run)."""
    import shap  # imported here: 4.9 s of import time, needed by train's evaluation figure only

    shap.summary_plot(
        contributions.to_numpy(),
        X[contributions.columns],
        max_display=top,
        show=False,
        plot_size=(8, 0.35 * top + 1.5),
        rng=np.random.default_rng(0),  # the beeswarm's jitter: the same figure from the same model
    )
    fig = plt.gcf()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def reliability_figure(curves: dict[str, pd.DataFrame], path: Path) -> Path:
    """Observed vs predicted sustained rate per bin, one line per model, with the diagonal."""
    fig, ax = plt.subplots(figsize=(5, 5))
    lo = min(float(c["mean_predicted"].min()) for c in curves.values())
    ax.plot([lo, 1], [lo, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for name, curve in curves.items():
        ax.plot(curve["mean_predicted"], curve["observed"], marker="o", label=name)
    ax.set_xlabel("predicted chance of a sustained tenancy")
    ax.set_ylabel("observed share sustained")
    ax.legend(fontsize=8)
    ax.set_title("Calibration on held-out meetings")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def gain_figure(table: pd.DataFrame, path: Path) -> Path:
    """Mean true sustain probability per policy (bars), from the oracle comparison."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(table.index, table.to_numpy(), color=["#999999" if "random" in i else "#2b6cb0" for i in table.index])
    ax.set_ylim(max(0.0, float(np.min(table.to_numpy())) - 0.05), min(1.0, float(np.max(table.to_numpy())) + 0.03))
    ax.set_ylabel("true P(sustained), mean")
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
