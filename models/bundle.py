"""The trained model as one self-contained folder: booster, calibration, support reference, metadata.

A bundle is what `train` produces, MLflow stores as artifacts, and `recommend`
and `audit` load. It holds no protected attribute.

Folder layout:
    booster.txt        LightGBM's native text model
    bundle.json        feature names, objective, calibration, threshold, prior, nuisance head, metadata
    support.parquet    standardised key features of the training placements
    intervals.json     optional: bootstrap copies and width of the chance intervals (models/intervals.py);
                       folders without it load and simply have no intervals
    checksums.json     sha256 of the three (four) files, verified on load: LightGBM aborts the
                       whole process on a truncated model file, so it never sees
                       unverified bytes (older folders without checksums are probed
                       in a child process first)
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.errors import UserError
from models.calibration import PlattCalibration
from models.intervals import ChanceIntervals

BOOSTER_FILE = "booster.txt"
META_FILE = "bundle.json"
SUPPORT_FILE = "support.parquet"
INTERVALS_FILE = "intervals.json"  # optional (models/intervals.py)
CHECKSUM_FILE = "checksums.json"  # sha256 of each file above, written last by `save`
MAX_FILE_BYTES = 1024**3

ERR_NOT_FOLDER = "model {folder}: no such model folder"
ERR_IS_FILE = "model {folder} is a file: give the model folder that `train --bundle-out` wrote (with booster.txt, bundle.json, support.parquet)"
ERR_DAMAGED = "model {folder}: the model folder is damaged and cannot be read ({detail})"

# Features that define "similar placements" for the support indicator: who the
# client is and what kind of home and neighbourhood it is.
SUPPORT_FEATURES = (
    "zrm_mean",
    "zrm_finances",
    "zrm_addiction",
    "zrm_mental_health",
    "support_hours_per_week",
    "needs_quiet_surroundings",
    "rent_to_income",
    "floors_without_lift",
    "units_in_complex",
    "vulnerable_household_share",
    "nuisance_reports_per_1000",
    "distance_to_care_km",
)


@dataclass(frozen=True)
class LinearPrior:
    """A fixed linear score the trees are boosted from: score = intercept + sum(coef * feature).

    Its SHAP values are exact and need no sampling: coef * (x - mean), with `mean` the
    training mean of each feature, so the base value is intercept + sum(coef * mean).
    """

    coef: dict[str, float]
    intercept: float
    mean: dict[str, float]

    def score(self, X: pd.DataFrame) -> np.ndarray:
        out = np.full(len(X), self.intercept, dtype=float)
        for feature in sorted(self.coef):  # a fixed order: the same sums before and after saving (JSON sorts keys)
            out += self.coef[feature] * X[feature].to_numpy(dtype=float)
        return out

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact SHAP values of the prior: coef * (x - mean), one column per feature it uses."""
        return pd.DataFrame(
            {f: self.coef[f] * (X[f].to_numpy(dtype=float) - self.mean[f]) for f in self.coef}, index=X.index
        )

    def base_value(self) -> float:
        return self.intercept + sum(self.coef[f] * self.mean[f] for f in sorted(self.coef))

    def to_json(self) -> dict:
        return {"coef": self.coef, "intercept": self.intercept, "mean": self.mean}

    @classmethod
    def from_json(cls, value: dict | None) -> LinearPrior | None:
        if value is None:
            return None
        return cls(
            {k: float(v) for k, v in value["coef"].items()},
            float(value["intercept"]),
            {k: float(v) for k, v in value["mean"].items()},
        )


@dataclass
class ModelBundle:
    """A trained ranker with what is needed to score, calibrate, explain and judge support."""

    booster: lgb.Booster
    feature_names: tuple[str, ...]
    objective: str
    calibration: PlattCalibration  # raw score -> P(sustained)
    threshold: float  # P(sustained) at or above which the model's 0/1 call is "success"
    support_reference: pd.DataFrame  # SUPPORT_FEATURES of training placements, standardised
    support_scale: dict  # feature -> (mean, std) used to standardise
    support_radius: float
    metadata: dict = field(default_factory=dict)
    prior: LinearPrior | None = None  # the trees' starting point (params train.prior_weights); None = trees only
    intervals: ChanceIntervals | None = None  # how sure each chance is (params `intervals`); None = no intervals
    # log E[label gain | sustained] (params train.nuisance_terms, models/ranker.py fit_nuisance_head): with it the
    # candidates are ranked by the expected label gain P(sustained) x E[gain | sustained]; None = by the chance alone
    nuisance: LinearPrior | None = None

    def chance_intervals(self, X: pd.DataFrame, p: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """chance_low, chance_high around the calibrated chances `p` of pairs X (None for a model without intervals)."""
        return None if self.intervals is None else self.intervals.interval(X, p)

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.feature_names if f not in X.columns]
        if missing:
            raise UserError(f"model expects features that were not built: {', '.join(missing)}")
        return X[list(self.feature_names)].to_numpy(dtype=float)

    def logodds(self, X: pd.DataFrame) -> np.ndarray:
        """Log-odds of a sustained tenancy before calibration: trees plus prior (what `proba` calibrates)."""
        raw = np.asarray(self.booster.predict(self._matrix(X), raw_score=True), dtype=float)
        return raw if self.prior is None else raw + self.prior.score(X)

    def score(self, X: pd.DataFrame, *, logodds: np.ndarray | None = None) -> np.ndarray:
        """The score candidates are ranked by (higher = better expected outcome; comparable within a meeting).

        Without a nuisance head: the log-odds of a sustained tenancy. With one: the log of the expected
        label gain, log P(sustained) + log E[gain | sustained], so a clean tenancy counts for more than
        one with nuisance reports, as the graded labels (and NDCG) count it. `logodds`: already computed.
        """
        z = self.logodds(X) if logodds is None else np.asarray(logodds, dtype=float)
        if self.nuisance is None:
            return z
        return self.log_chance(z) + self.nuisance.score(X)

    def log_chance(self, logodds: np.ndarray) -> np.ndarray:
        """log P(sustained) of log-odds, through the calibration (numerically stable)."""
        c = self.calibration
        return np.asarray(-np.logaddexp(0.0, -(c.a * np.asarray(logodds, dtype=float) + c.b)), dtype=float)

    def proba(self, X: pd.DataFrame | None = None, *, logodds: np.ndarray | None = None) -> np.ndarray:
        """Calibrated chance of a sustained tenancy, from features or from already computed `logodds`."""
        if logodds is None:
            if X is None:
                raise TypeError("proba needs X or logodds")
            logodds = self.logodds(X)
        return self.calibration(logodds)

    def contributions(self, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Contributions per feature (units of `score`) and the base value per row: base + sum == score.

        The log-odds part is LightGBM's TreeSHAP (pred_contrib) plus the prior's exact linear SHAP
        values. With a nuisance head the score is log P(sustained) + head: the log-odds contributions
        are rescaled by (log P(z) - log P(base)) / (z - base) per row (the rescale rule: each keeps its
        share of the change, and they still add up exactly), and the head's exact linear SHAP values
        are added to the same features.
        """
        contrib = np.asarray(self.booster.predict(self._matrix(X), pred_contrib=True), dtype=float)
        frame = pd.DataFrame(contrib[:, :-1], columns=list(self.feature_names), index=X.index)
        trees, base = self.with_prior(frame, contrib[:, -1], X)
        return self.with_nuisance(trees, base, X)

    def with_nuisance(
        self, contrib: pd.DataFrame, base: np.ndarray, X: pd.DataFrame
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Log-odds contributions and base turned into contributions to `score` (unchanged without a head)."""
        if self.nuisance is None:
            return contrib, base
        base = np.asarray(base, dtype=float)
        z = base + contrib.to_numpy(dtype=float).sum(axis=1)
        step = z - base
        close = np.abs(step) < 1e-9
        slope = self.calibration.a * (1.0 - self.calibration(z))  # d log P / dz where z is (almost) the base
        ratio = np.where(close, slope, (self.log_chance(z) - self.log_chance(base)) / np.where(close, 1.0, step))
        out = contrib * ratio[:, None]
        head = self.nuisance.contributions(X)
        out[list(head.columns)] = out[list(head.columns)].to_numpy() + head.to_numpy()
        return out, self.log_chance(base) + self.nuisance.base_value()

    def with_prior(self, trees: pd.DataFrame, base: np.ndarray, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The trees' contributions and base value plus the prior's (new objects; the arguments are not changed)."""
        if self.prior is None:
            return trees, base
        prior = self.prior.contributions(X)
        out = trees.copy()
        out[list(prior.columns)] = out[list(prior.columns)].to_numpy() + prior.to_numpy()
        return out, base + self.prior.base_value()

    def support_counts(self, X: pd.DataFrame) -> np.ndarray:
        """How many training placements lie within `support_radius` of each pair (standardised key features)."""
        ref = self.support_reference.to_numpy(dtype=float)
        if len(ref) == 0:
            return np.zeros(len(X), dtype=int)
        return count_within(ref, standardise(X, self.support_scale), self.support_radius)

    def save(self, folder: str | Path) -> Path:
        """Write the bundle into `folder` (created), with a checksum of every file."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / BOOSTER_FILE).write_text(self.booster.model_to_string(), encoding="utf-8")
        self.support_reference.to_parquet(folder / SUPPORT_FILE, index=False)
        meta = {
            "feature_names": list(self.feature_names),
            "objective": self.objective,
            "calibration": self.calibration.to_json(),
            "threshold": self.threshold,
            "support_scale": {k: list(v) for k, v in self.support_scale.items()},
            "support_radius": self.support_radius,
            "prior": None if self.prior is None else self.prior.to_json(),
            "nuisance": None if self.nuisance is None else self.nuisance.to_json(),
            "metadata": self.metadata,
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str), encoding="utf-8")
        names = [BOOSTER_FILE, META_FILE, SUPPORT_FILE]
        (folder / INTERVALS_FILE).unlink(missing_ok=True)
        if self.intervals is not None:
            (folder / INTERVALS_FILE).write_text(json.dumps(self.intervals.to_json(), sort_keys=True), encoding="utf-8")
            names.append(INTERVALS_FILE)
        sums = {name: _sha256((folder / name).read_bytes()) for name in names}
        (folder / CHECKSUM_FILE).write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> ModelBundle:
        """Read a bundle folder written by `save`, verifying every file first.

        Raises:
            UserError: naming the folder when it is missing, a file, incomplete, damaged or foreign.
        """
        folder = Path(folder)
        if folder.is_file():
            raise UserError(ERR_IS_FILE.format(folder=folder))
        if not folder.is_dir():
            raise UserError(ERR_NOT_FOLDER.format(folder=folder))
        missing = [f for f in (BOOSTER_FILE, META_FILE, SUPPORT_FILE) if not (folder / f).is_file()]
        if missing:
            raise UserError(f"{folder} is not a complete matchwijs model folder: missing {', '.join(missing)}")
        blobs = _verified_files(folder)
        try:
            meta = json.loads(blobs[META_FILE].decode("utf-8"))
            if not isinstance(meta, dict):
                raise ValueError("bundle.json is not a mapping")
            booster = lgb.Booster(model_str=blobs[BOOSTER_FILE].decode("utf-8"))
            bundle = cls(
                booster=booster,
                feature_names=tuple(str(f) for f in meta["feature_names"]),
                objective=meta["objective"],
                calibration=PlattCalibration.from_json(meta["calibration"]),
                threshold=float(meta["threshold"]),
                support_reference=pd.read_parquet(io.BytesIO(blobs[SUPPORT_FILE])),
                support_scale={k: tuple(v) for k, v in meta["support_scale"].items()},
                support_radius=float(meta["support_radius"]),
                metadata=meta.get("metadata", {}),
                prior=LinearPrior.from_json(meta.get("prior")),
                nuisance=LinearPrior.from_json(meta.get("nuisance")),  # older folders: none, ranked by the chance
                intervals=(
                    ChanceIntervals.from_json(json.loads(blobs[INTERVALS_FILE].decode("utf-8")))
                    if INTERVALS_FILE in blobs
                    else None
                ),
            )
        except (
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            OSError,
            lgb.basic.LightGBMError,
        ) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise UserError(
                ERR_DAMAGED.format(folder=folder, detail=f"{type(exc).__name__}: {str(exc)[:200]}")
            ) from None
        _check_consistent(bundle, folder)
        return bundle


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified_files(folder: Path) -> dict[str, bytes]:
    """The bytes of the three files (and intervals.json when present), checked against checksums.json.

    Older folders without checksums are probed safely instead.
    """
    blobs: dict[str, bytes] = {}
    optional = (INTERVALS_FILE,) if (folder / INTERVALS_FILE).is_file() else ()
    for name in (BOOSTER_FILE, META_FILE, SUPPORT_FILE, *optional):
        path = folder / name
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise UserError(ERR_DAMAGED.format(folder=folder, detail=f"{name} is {size:,} bytes, far too large"))
        blobs[name] = path.read_bytes()
    sums_file = folder / CHECKSUM_FILE
    if sums_file.is_file():
        try:
            sums = json.loads(sums_file.read_text(encoding="utf-8"))
            if not isinstance(sums, dict):
                raise ValueError("not a mapping")
        except ValueError:
            raise UserError(ERR_DAMAGED.format(folder=folder, detail=f"{CHECKSUM_FILE} is not valid JSON")) from None
        for name, data in blobs.items():
            if sums.get(name) != _sha256(data):
                raise UserError(
                    ERR_DAMAGED.format(
                        folder=folder, detail=f"{name} does not match its checksum: changed or cut off after saving"
                    )
                )
        return blobs
    _probe_booster(folder / BOOSTER_FILE, folder)
    blobs.pop(INTERVALS_FILE, None)  # intervals came after checksums: an unverified intervals.json is not read
    return blobs


def _probe_booster(path: Path, folder: Path) -> None:
    """Load a model file without checksum in a child process: LightGBM may abort on bad bytes."""
    code = "import sys, lightgbm; lightgbm.Booster(model_file=sys.argv[1])"
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(ERR_DAMAGED.format(folder=folder, detail=f"could not check {BOOSTER_FILE}: {exc}")) from None
    if done.returncode != 0:
        raise UserError(
            ERR_DAMAGED.format(folder=folder, detail=f"{BOOSTER_FILE} is not a readable LightGBM model (no checksums)")
        )


def _check_consistent(bundle: ModelBundle, folder: Path) -> None:
    """The booster, feature list, support reference and calibration must fit together."""
    n = bundle.booster.num_feature()
    if n != len(bundle.feature_names):
        raise UserError(
            ERR_DAMAGED.format(
                folder=folder,
                detail=f"the booster uses {n} features but bundle.json lists {len(bundle.feature_names)}",
            )
        )
    if len(set(bundle.feature_names)) != len(bundle.feature_names):
        raise UserError(ERR_DAMAGED.format(folder=folder, detail="bundle.json lists a feature twice"))
    ref = bundle.support_reference
    if len(ref) and ref.shape[1] != len(bundle.support_scale):
        raise UserError(
            ERR_DAMAGED.format(folder=folder, detail="support.parquet and bundle.json disagree on the support features")
        )
    values = [bundle.threshold, bundle.support_radius]
    if not all(math.isfinite(v) for v in values):
        raise UserError(ERR_DAMAGED.format(folder=folder, detail="threshold or support radius is not a finite number"))


def count_within(ref: np.ndarray, q: np.ndarray, radius: float, *, chunk: int = 256) -> np.ndarray:
    """For each row of `q`, how many rows of `ref` lie within Euclidean distance `radius` (inclusive).

    The count sklearn's KD tree gives (squared distance summed feature by feature, ≤ radius²), at
    the speed of a matrix product: squared distances come from |q|² + |r|² − 2 q·r, a chunk of
    queries at a time, and the few pairs within rounding of the radius are summed exactly as the
    tree sums them. At country scale (40,000 training placements, 20,000 queries, 13 features)
    the tree took minutes; radius 3 in 13 standardised features reaches too far for it to prune.
    """
    ref = np.ascontiguousarray(ref, dtype=float)
    q = np.ascontiguousarray(q, dtype=float)
    counts = np.zeros(len(q), dtype=int)
    if len(ref) == 0 or len(q) == 0:
        return counts
    r2 = float(radius) * float(radius)
    ref_sq = np.einsum("ij,ij->i", ref, ref)
    minus_2_ref_t = np.ascontiguousarray(-2.0 * ref.T)
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        block_sq = np.einsum("ij,ij->i", block, block)
        # |r|² − 2 q·r against radius² − |q|², with a band for the product form's rounding
        # (far below 1e-9 × the largest squared norms involved)
        tol = 1e-9 * (1.0 + float(block_sq.max()) + float(ref_sq.max()))
        partial = block @ minus_2_ref_t
        partial += ref_sq
        limit = (r2 - block_sq)[:, None]
        sure = np.count_nonzero(partial <= limit - tol, axis=1)
        maybe = np.count_nonzero(partial < limit + tol, axis=1)
        counts[start : start + len(block)] = sure
        for i in np.flatnonzero(maybe > sure):
            band = np.flatnonzero((partial[i] > limit[i] - tol) & (partial[i] < limit[i] + tol))
            for j in band:
                exact = 0.0
                for a, b in zip(block[i], ref[j], strict=True):  # the tree's sum, feature by feature
                    exact += (a - b) * (a - b)
                counts[start + i] += exact <= r2
    return counts


def support_scale_of(X: pd.DataFrame) -> dict:
    """Mean and standard deviation of each support feature (std 1 where constant)."""
    return {f: (float(X[f].mean()), float(X[f].std(ddof=0)) or 1.0) for f in SUPPORT_FEATURES}


def standardise(X: pd.DataFrame, scale: dict) -> np.ndarray:
    """Support features of X standardised with `scale`."""
    return np.column_stack([(X[f].to_numpy(dtype=float) - m) / s for f, (m, s) in scale.items()])
