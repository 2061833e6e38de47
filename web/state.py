"""The dataset, model and params the app serves, loaded once per process; meeting suggestions cached per language.

`matchwijs serve` sets MATCHWIJS_DATA/MODEL/PARAMS; gunicorn --preload loads them once before forking.
Tests install their own state with `set_state`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pandas as pd
from django.conf import settings

from features.load import Dataset, dataset_fingerprint, load_dataset
from models.bundle import ModelBundle
from reports.suggestions import MeetingOutputs, RecommendConfig, latest_meeting, meeting_outputs


@dataclass
class MeetingIndex:
    """Row positions of one meeting's outputs per home (and per pair), so a home page reads only its rows."""

    outputs: MeetingOutputs
    recs: dict
    excluded: dict
    explanations: dict

    @classmethod
    def of(cls, out: MeetingOutputs) -> MeetingIndex:
        """Group row positions once (groupby indices: no frame per group)."""
        recs = out.recommendations.groupby("dwelling_id", sort=False).indices
        excluded = out.excluded.groupby("dwelling_id", sort=False).indices
        pairs = out.explanations.groupby(["dwelling_id", "client_id"], sort=False).indices
        return cls(out, recs, excluded, pairs)

    @staticmethod
    def _rows(frame: pd.DataFrame, positions) -> pd.DataFrame:
        return frame.iloc[positions if positions is not None else []]

    def home_recs(self, dwelling_id: str) -> pd.DataFrame:
        """The ranked recommendations of one home (empty frame when none)."""
        rows = self._rows(self.outputs.recommendations, self.recs.get(dwelling_id))
        return rows.sort_values("rank", kind="stable")

    def home_excluded(self, dwelling_id: str) -> pd.DataFrame:
        """The excluded candidates of one home (empty frame when none)."""
        return self._rows(self.outputs.excluded, self.excluded.get(dwelling_id))

    def pair_explanations(self, dwelling_id: str, client_id: str) -> pd.DataFrame:
        """The SHAP rows of one (home, candidate) pair."""
        return self._rows(self.outputs.explanations, self.explanations.get((dwelling_id, client_id)))


@dataclass
class AppState:
    """What every request reads: the validated dataset, the model, params, and computed meetings."""

    ds: Dataset
    bundle: ModelBundle
    cfg: RecommendConfig
    fingerprint: str
    model_version: str
    params: dict = field(default_factory=dict)
    _index: dict[tuple[str, str], MeetingIndex] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def index(self, meeting_date: pd.Timestamp, lang: str) -> MeetingIndex:
        """The meeting's suggestions in one language, split per home (computed once, then from memory)."""
        key = (f"{meeting_date:%Y-%m-%d}", lang)
        with self._lock:
            if key not in self._index:
                out = meeting_outputs(
                    self.ds, meeting_date, self.bundle, self.cfg, lang=lang, model_label=self.model_version
                )
                self._index[key] = MeetingIndex.of(out)
            return self._index[key]

    def outputs(self, meeting_date: pd.Timestamp, lang: str) -> MeetingOutputs:
        """The meeting's suggestions in one language (computed once, then from memory)."""
        return self.index(meeting_date, lang).outputs

    def latest(self) -> pd.Timestamp:
        """The dataset's latest meeting with vacancies and candidates."""
        return latest_meeting(self.ds)


_state: AppState | None = None
_state_lock = threading.Lock()


def model_version(bundle: ModelBundle) -> str:
    """How the log names the model: its registry version or name from the bundle's metadata."""
    meta = bundle.metadata or {}
    return str(meta.get("model_version") or meta.get("name") or f"{bundle.objective} model")[:200]


def build_state(data: str, model: str | None = None, params_path: str | None = None) -> AppState:
    """Load and validate the dataset, resolve the model, read params (UserError/DataError on bad input)."""
    from features.config import load_params
    from models.tracking import resolve_bundle

    params = load_params(params_path)
    cfg = RecommendConfig.from_params(params)
    ds = load_dataset(data)
    bundle = resolve_bundle(model, params_path=params_path)
    return AppState(ds, bundle, cfg, dataset_fingerprint(data), model_version(bundle), params)


def set_state(state: AppState | None) -> None:
    """Install the state (tests, dataset reload); the previous one stays in use until this call."""
    global _state
    with _state_lock:
        _state = state


def get_state() -> AppState:
    """The loaded state, loading it from settings on first use."""
    global _state
    with _state_lock:
        if _state is None:
            if not settings.MATCHWIJS_DATA:
                raise RuntimeError("no dataset: start the app with `matchwijs serve --data DIR`")
            _state = build_state(settings.MATCHWIJS_DATA, settings.MATCHWIJS_MODEL, settings.MATCHWIJS_PARAMS)
        return _state


def warm() -> None:
    """Load the data and model and compute the latest meeting in both languages (before serving)."""
    state = get_state()
    latest = state.latest()
    for lang in ("en", "nl"):
        state.outputs(latest, lang)
