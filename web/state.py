"""The dataset, model and params the app serves, loaded once per process; meeting suggestions cached per language.

`matchwijs serve` sets MATCHWIJS_DATA/MODEL/PARAMS; gunicorn --preload loads them once before forking.
Tests install their own state with `set_state`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from django.conf import settings

from features import formatting
from features.contract import DEFAULT_REGION
from features.load import Dataset, dataset_fingerprint, load_dataset, region_of
from models.bundle import ModelBundle
from reports.suggestions import MeetingOutputs, RecommendConfig, latest_meeting, meeting_outputs
from web.pages import HomePage, build_pages


@dataclass
class MeetingIndex:
    """One meeting's suggestions in one language, with every home's page content built once (web.pages)."""

    outputs: MeetingOutputs
    pages: dict[str, HomePage]

    @classmethod
    def of(cls, ds: Dataset, out: MeetingOutputs, lang: str, tolerance: float) -> MeetingIndex:
        """Build the per-home pages (charts, lists, why) once, so requests only read them."""
        return cls(out, build_pages(ds, out, lang, tolerance))


@dataclass
class AppState:
    """What every request reads: the validated dataset, the model, params, and computed meetings."""

    ds: Dataset
    bundle: ModelBundle
    cfg: RecommendConfig
    fingerprint: str
    model_version: str
    params: dict = field(default_factory=dict)
    _index: dict[tuple[str, str, str], MeetingIndex] = field(default_factory=dict)
    _regional: dict[str, Dataset] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def region_data(self, region: str = DEFAULT_REGION) -> Dataset:
        """The dataset of one regional meeting (the whole dataset when the data have no regions)."""
        if self.ds.regions == [DEFAULT_REGION] and region == DEFAULT_REGION:
            return self.ds
        if region not in self._regional:
            self._regional[region] = self.ds.for_region(region)
        return self._regional[region]

    def index(self, meeting_date: pd.Timestamp, lang: str, region: str = DEFAULT_REGION) -> MeetingIndex:
        """The meeting's suggestions in one language, split per home (computed once, then from memory).

        A meeting is a region on a date: with regions, only that region's homes and candidates.
        """
        key = (f"{meeting_date:%Y-%m-%d}", region, lang)
        with self._lock:
            if key not in self._index:
                ds = self.region_data(region)
                out = meeting_outputs(
                    ds,
                    meeting_date,
                    self.bundle,
                    self.cfg,
                    lang=lang,
                    model_label=self.model_version,
                    sheet=False,  # the app has its own pages; `recommend` writes the sheet
                    explain_long=False,  # the pages read the wide contributions
                )
                self._index[key] = MeetingIndex.of(ds, out, lang, self.cfg.assignment.no_real_difference)
            return self._index[key]

    def outputs(self, meeting_date: pd.Timestamp, lang: str, region: str = DEFAULT_REGION) -> MeetingOutputs:
        """The meeting's suggestions in one language (computed once, then from memory)."""
        return self.index(meeting_date, lang, region).outputs

    def latest(self) -> pd.Timestamp:
        """The dataset's latest meeting with vacancies and candidates."""
        return latest_meeting(self.ds)

    def regions_on(self, meeting_date: pd.Timestamp) -> list[str]:
        """The regions that hold a meeting on this date (vacancies and candidates), sorted."""
        vac, cand = self.ds.vacancies, self.ds.candidates
        with_vac = set(region_of(vac)[(vac["meeting_date"] == meeting_date).to_numpy()])
        with_cand = set(region_of(cand)[(cand["meeting_date"] == meeting_date).to_numpy()])
        return sorted(with_vac & with_cand)


_state: AppState | None = None
_switch_id: int | None = None  # the DatasetSwitch row the state follows (None: the one settings named)
_state_lock = threading.Lock()
_checked_at = float("-inf")
FOLLOW_EVERY_S = 2.0
log = logging.getLogger(__name__)


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


def set_state(state: AppState | None, switch_id: int | None = None) -> None:
    """Install the state (tests, dataset switch); the previous one stays in use until this call."""
    global _state, _switch_id, _checked_at
    with _state_lock:
        _state, _switch_id, _checked_at = state, switch_id, float("-inf")


def _follow_switch() -> None:
    """Follow a dataset switch made in another worker process (the latest DatasetSwitch row).

    Checked at most every FOLLOW_EVERY_S seconds per process (one small query), so a switch reaches
    every worker within that time.
    """
    global _state, _switch_id, _checked_at
    from web.models import DatasetSwitch

    now = time.monotonic()
    if now - _checked_at < FOLLOW_EVERY_S:
        return
    _checked_at = now

    latest = DatasetSwitch.objects.values_list("id", "path", "fingerprint").first()
    if latest is None or latest[0] == _switch_id or _state is None:
        return
    row_id, path, fingerprint = latest
    if str(Path(_state.ds.path).resolve()) != path or _state.fingerprint != fingerprint:
        try:
            ds = load_dataset(path)
        except Exception:  # the folder went away or changed: keep serving what is loaded
            log.exception("dataset switch %s to %s could not be followed; the previous data stay in use", row_id, path)
            _switch_id = row_id
            return
        s = _state
        _state = AppState(ds, s.bundle, s.cfg, dataset_fingerprint(path), s.model_version, s.params)
    _switch_id = row_id


def get_state() -> AppState:
    """The loaded state (loading it from settings on first use), following the latest dataset switch."""
    global _state
    with _state_lock:
        if _state is None:
            if not settings.MATCHWIJS_DATA:
                raise RuntimeError("no dataset: start the app with `matchwijs serve --data DIR`")
            _state = build_state(settings.MATCHWIJS_DATA, settings.MATCHWIJS_MODEL, settings.MATCHWIJS_PARAMS)
        _follow_switch()
        return _state


def warm() -> None:
    """Load the data and model and compute the latest meeting in both languages (before serving)."""
    formatting.warm()
    state = get_state()
    latest = state.latest()
    for region in state.regions_on(latest):
        for lang in ("en", "nl"):
            state.outputs(latest, lang, region)
