"""Pointing the running app at another dataset: a folder on the server or an uploaded zip of one.

The folder is validated by `features.load.load_dataset`, the same code as `matchwijs validate`, so
an analyst sees the same named problems. Its latest meeting is computed (both languages) before
anything changes; only then is the switch recorded (`DatasetSwitch`) and the new state installed.
A refused dataset changes nothing: the previous data and meetings stay in use. Every worker process
follows the latest `DatasetSwitch` row (see `web.state.get_state`).
"""

from __future__ import annotations

import shutil
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import transaction

from features.errors import UserError
from features.load import DataError, dataset_fingerprint, load_dataset
from web.meetings import load_meetings
from web.models import DatasetSwitch, Meeting
from web.state import AppState, set_state

MAX_UPLOAD_MB = 200
MAX_UNPACKED_MB = 2000
MANIFEST = "dataset.yaml"


class SwitchRefused(Exception):
    """A dataset the app will not switch to: a message and the named problems (as `validate` lists them)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


def uploads_root() -> Path:
    """Where uploaded datasets are unpacked (under MATCHWIJS_HOME)."""
    return Path(settings.HOME) / "datasets"


def unpack_upload(upload, root: Path | None = None) -> Path:
    """Unpack an uploaded zip into a new folder; the dataset folder inside it (the one holding dataset.yaml).

    Raises:
        SwitchRefused: not a zip, too large, unsafe member names, or no dataset.yaml in it.
    """
    if upload.size > MAX_UPLOAD_MB * 2**20:
        raise SwitchRefused(f"the upload is {upload.size / 2**20:.0f} MB; at most {MAX_UPLOAD_MB} MB is accepted")
    root = root or uploads_root()
    folder = root / f"upload-{uuid.uuid4().hex[:12]}"
    try:
        with zipfile.ZipFile(upload) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            bad = [
                m.filename
                for m in members
                if PurePosixPath(m.filename).is_absolute() or ".." in PurePosixPath(m.filename).parts
            ]
            if bad:
                raise SwitchRefused(f"the zip holds unsafe file names: {', '.join(bad[:5])}")
            if sum(m.file_size for m in members) > MAX_UNPACKED_MB * 2**20:
                raise SwitchRefused(f"the zip unpacks to more than {MAX_UNPACKED_MB} MB")
            folder.mkdir(parents=True)
            zf.extractall(folder, members)
    except zipfile.BadZipFile:
        shutil.rmtree(folder, ignore_errors=True)
        raise SwitchRefused(
            "the upload is not a zip file; expected a zip of the contract's CSV files and dataset.yaml"
        ) from None
    except SwitchRefused:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    manifests = sorted(folder.rglob(MANIFEST), key=lambda p: len(p.parts))
    if not manifests:
        shutil.rmtree(folder, ignore_errors=True)
        raise SwitchRefused(f"the zip holds no {MANIFEST}; expected the contract's CSV files and {MANIFEST}")
    return manifests[0].parent


def prepare(path: Path, current: AppState) -> AppState:
    """A state for the dataset at `path` with the current model and params, its latest meeting computed.

    Raises:
        SwitchRefused: the folder is missing or breaks the contract (every problem named), or has no
            meeting with vacancies and candidates.
    """
    if not path.is_dir():
        raise SwitchRefused(f"{path}: no such folder on the server")
    try:
        ds = load_dataset(path)
    except DataError as exc:
        n = len(exc.problems)
        raise SwitchRefused(
            f"{path}: {n} problem{'s' if n != 1 else ''} with the data contract:", [str(p) for p in exc.problems]
        ) from None
    except UserError as exc:
        raise SwitchRefused(f"{path}: {exc}") from None
    state = AppState(ds, current.bundle, current.cfg, dataset_fingerprint(path), current.model_version, current.params)
    try:
        latest = state.latest()
        for region in state.regions_on(latest):
            for lang in ("en", "nl"):
                state.index(latest, lang, region)
    except UserError as exc:
        raise SwitchRefused(f"{path}: {exc}") from None
    return state


def switch_to(path: Path, current: AppState, *, by: str) -> tuple[AppState, Meeting]:
    """Validate and compute `path`, then record the switch and install the new state (nothing changes on error)."""
    path = path.resolve()
    state = prepare(path, current)
    with transaction.atomic():
        meetings = load_meetings(state, "latest")
        for m in meetings:
            if m.data_fingerprint != state.fingerprint:  # a meeting of that date came from other data
                m.data_fingerprint = state.fingerprint  # (decisions keep their own fingerprint in the log)
                m.model_version = state.model_version
                m.save(update_fields=["data_fingerprint", "model_version"])
        meeting = meetings[0]
        row = DatasetSwitch.objects.create(
            path=str(path), fingerprint=state.fingerprint, switched_by=by, summary=state.ds.summary()
        )
    set_state(state, switch_id=row.id)
    return state, meeting


def record_served(state: AppState, by: str = "serve") -> int:
    """Record the dataset `matchwijs serve` was started with as the one in use (unless it is already)."""
    latest = DatasetSwitch.objects.first()
    path = str(Path(state.ds.path).resolve())
    if latest is not None and latest.path == path and latest.fingerprint == state.fingerprint:
        return latest.id
    row = DatasetSwitch.objects.create(
        path=path, fingerprint=state.fingerprint, switched_by=by, summary=state.ds.summary()
    )
    return row.id


def discard_upload(folder: Path) -> None:
    """Remove an unpacked upload (its whole upload-… folder) after a refused switch."""
    root = uploads_root().resolve()
    folder = folder.resolve()
    while folder.parent != root and folder != folder.parent:
        folder = folder.parent
    if folder.parent == root:
        shutil.rmtree(folder, ignore_errors=True)
