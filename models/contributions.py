"""TreeSHAP contributions of the model's scores: per pair and feature, base value + sum = score.

They explain a pair's *score*, not its rank; to compare two candidates for the
same home, look at the differences of their contributions (`differences`).
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

from models.bundle import ModelBundle


def tree_shap(bundle: ModelBundle, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """TreeSHAP contributions and base values, equal to `bundle.contributions(X)` but computed faster.

    Path-dependent TreeSHAP of one tree depends on a row only through the side it takes
    at each split of that tree. Rows are grouped per tree by that split pattern, and
    LightGBM's own `pred_contrib` is asked once per group (tree by tree), then summed
    over the trees in order. A meeting of 20,000 pairs has about a thousand distinct
    patterns per tree, so this is an order of magnitude faster than explaining every
    row, with the same numbers (to float rounding). Models this does not cover
    (categorical splits, linear trees, several classes) use `bundle.contributions`.
    """
    booster = bundle.booster
    trees = _split_nodes(booster)
    if trees is None or len(X) == 0:
        return bundle.contributions(X)
    M = bundle._matrix(X)
    MT = np.ascontiguousarray(M.T)  # one contiguous row per feature: fast gathers per split
    has_nan = bool(np.isnan(M).any())
    outT = np.zeros((M.shape[1] + 1, len(M)))
    for t, (feat, thr, zero_missing) in enumerate(trees):
        first, inverse = _patterns(MT, feat, thr, zero_missing, has_nan)
        contrib = booster.predict(M[first], pred_contrib=True, start_iteration=t, num_iteration=1, num_threads=1)
        # A tree only gives credit to the features it splits on (and its expected value, the last column).
        for j in (*np.unique(feat), M.shape[1]):
            outT[j] += contrib[:, j][inverse]
    frame = pd.DataFrame(outT[:-1].T, columns=list(bundle.feature_names), index=X.index)
    return bundle.add_prior(frame, outT[-1].copy(), X)


_NODES_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _split_nodes(booster) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """(split feature, threshold, zero-is-missing) arrays per tree, or None when the model has splits this does not cover."""
    if booster in _NODES_CACHE:
        return _NODES_CACHE[booster]
    dump = booster.dump_model()
    trees = None
    if dump.get("num_tree_per_iteration", 1) == 1 and not booster.params.get("linear_tree", False):
        trees = []
        for info in dump["tree_info"]:
            feats, thrs, zeros, stack = [], [], [], [info["tree_structure"]]
            while stack:
                node = stack.pop()
                if "split_index" not in node:
                    if "leaf_coeff" in node:
                        trees = None
                        break
                    continue
                if node.get("decision_type") != "<=":
                    trees = None
                    break
                feats.append(int(node["split_feature"]))
                thrs.append(float(node["threshold"]))
                zeros.append(node.get("missing_type") == "Zero")
                stack += [node["left_child"], node["right_child"]]
            if trees is None:
                break
            trees.append((np.asarray(feats, dtype=np.int64), np.asarray(thrs, dtype=float), np.asarray(zeros, dtype=bool)))
    _NODES_CACHE[booster] = trees
    return trees


def _patterns(MT: np.ndarray, feat: np.ndarray, thr: np.ndarray, zero_missing: np.ndarray,
              has_nan: bool) -> tuple[np.ndarray, np.ndarray]:
    """One representative row per distinct split pattern of a tree, and each row's pattern number.

    `MT` is the feature matrix transposed (features × rows). The pattern is at least
    as fine as LightGBM's decision at every split (value ≤ threshold; is NaN, when the
    data has NaN; is zero, where zero counts as missing), so rows in one group take
    the same paths; a row within float noise of a threshold gets a group of its own.
    """
    n = MT.shape[1]
    if len(feat) == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(n, dtype=np.int64)
    diff = MT[feat] - thr[:, None]  # exact sign: x - t <= 0 iff x <= t for finite doubles
    bits = [diff <= 0]
    if has_nan:
        bits.append(np.isnan(diff))
    if zero_missing.any():
        bits.append(np.abs(MT[feat[zero_missing]]) <= 1e-35)
    bits = np.concatenate(bits, axis=0) if len(bits) > 1 else bits[0]
    near = (np.abs(diff) <= 1e-12 * np.abs(thr)[:, None]).any(axis=0)
    if len(bits) <= 22:
        key = np.zeros(n, dtype=np.int64)
        for k, row in enumerate(bits):
            key |= row.astype(np.int64) << k
        if near.any():
            key[near] = (1 << len(bits)) + np.arange(int(near.sum()))  # each row near a threshold is its own pattern
        present = np.zeros(int(key.max()) + 1, dtype=bool)
        present[key] = True
        group = np.cumsum(present) - 1
        inverse = group[key]
        first = np.empty(int(present.sum()), dtype=np.int64)
        first[inverse[::-1]] = np.arange(n - 1, -1, -1)
        return first, inverse
    packed = np.ascontiguousarray(np.packbits(bits, axis=0).T)
    key = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel(), return_inverse=True)[1].astype(np.int64)
    if near.any():
        key[near] = key.max() + 1 + np.arange(int(near.sum()))
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def explanations_frame(keys: pd.DataFrame, X: pd.DataFrame, contributions: pd.DataFrame) -> pd.DataFrame:
    """The long table of explanations.csv: one row per (pair, feature), pairs in `keys` order.

    Args:
        keys: dwelling_id and client_id per pair.
        X: feature values per pair (same rows as keys), at least the contribution columns.
        contributions: TreeSHAP contributions per pair and feature (same rows as keys).
    """
    features = list(contributions.columns)
    n, k = len(keys), len(features)
    return pd.DataFrame(
        {
            "dwelling_id": np.repeat(keys["dwelling_id"].to_numpy(dtype=object), k),
            "client_id": np.repeat(keys["client_id"].to_numpy(dtype=object), k),
            "feature": np.tile(np.asarray(features, dtype=object), n),
            "value": X[features].to_numpy(dtype=float).reshape(-1),
            "contribution": contributions.to_numpy(dtype=float).reshape(-1),
        }
    )


def top_features(contributions: pd.DataFrame, k: int, min_abs: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column positions of the `k` largest |contributions| (largest first) and a mask of those above `min_abs`."""
    c = np.abs(contributions.to_numpy(dtype=float))
    k = min(k, c.shape[1])
    if k == 0 or len(c) == 0:
        return np.zeros((len(c), 0), dtype=int), np.zeros((len(c), 0), dtype=bool)
    # Stable: ties keep feature order, so reasons are deterministic.
    order = np.argsort(-c, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(c, order, axis=1) > min_abs


def differences(first, other, k: int, features=None) -> list[tuple[str, float]]:
    """What separates two candidates of one home: the `k` features with the largest |other − first| contribution.

    `first` and `other` are contribution rows (Series, or arrays with `features` naming
    the positions). Returns (feature, other − first) pairs, largest first, zeros left out.
    """
    if features is None:
        features = list(first.index)
    diff = np.asarray(other, dtype=float) - np.asarray(first, dtype=float)
    order = np.argsort(-np.abs(diff), kind="stable")[:k]
    return [(features[j], float(diff[j])) for j in order if diff[j] != 0]
