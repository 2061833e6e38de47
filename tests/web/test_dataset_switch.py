"""Switching the running app to another dataset: a folder path or an uploaded zip, validated like `validate`."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.web.conftest import client_for
from web.models import DatasetSwitch, Meeting
from web.state import get_state


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory) -> Path:
    """A second contract-valid dataset whose latest meeting is a different one."""
    from synthetic.meeting import synthetic_meeting_tables, write_tables

    tables, _meeting, as_of = synthetic_meeting_tables(
        n_vacancies=3, n_candidates=9, history_weeks=8, weekly_history=5, seed=11
    )
    return write_tables(tmp_path_factory.mktemp("switch") / "other", tables, as_of=as_of, name="other")


def _zip(folder: Path, *, prefix: str = "") -> SimpleUploadedFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, prefix + f.name)
    return SimpleUploadedFile("dataset.zip", buf.getvalue(), content_type="application/zip")


def _broken(folder: Path, dest: Path) -> Path:
    """A copy of the dataset with one vacancy naming a home that does not exist."""
    shutil.copytree(folder, dest)
    lines = (dest / "vacancies.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("dwelling_id")] = "W99999"
    lines[1] = ",".join(row)
    (dest / "vacancies.csv").write_text("\n".join(lines) + "\n")
    return dest


def _validate_problems(folder: Path) -> list[str]:
    from features.load import DataError, load_dataset

    with pytest.raises(DataError) as exc:
        load_dataset(folder)
    return [str(p) for p in exc.value.problems]


@pytest.mark.parametrize("role", ["analyst", "admin"])
def test_switch_to_a_valid_folder(client, meeting, users, app_state, other_dir, role):
    before = get_state()
    response = client_for(client, users[role]).post("/data/", {"path": str(other_dir)})
    assert response.status_code == 302
    state = get_state()
    assert state is not before and Path(state.ds.path).resolve() == other_dir.resolve()
    assert state.bundle is before.bundle  # the same model, no reload
    switch = DatasetSwitch.objects.get()
    assert switch.path == str(other_dir.resolve()) and switch.fingerprint == state.fingerprint
    latest = Meeting.objects.get(date=state.latest().date())
    assert latest.data_fingerprint == state.fingerprint
    page = client.get("/data/")
    assert "Now serving" in page.content.decode() and str(other_dir.resolve()) in page.content.decode()


def test_switch_by_upload_of_a_zip(client, meeting, users, app_state, other_dir):
    response = client_for(client, users["analyst"]).post("/data/", {"upload": _zip(other_dir, prefix="other/")})
    assert response.status_code == 302
    state = get_state()
    assert state.ds.name == "other" and state.ds.path.name == "other"
    assert DatasetSwitch.objects.count() == 1


def test_invalid_upload_shows_the_named_problems_and_changes_nothing(
    client, meeting, users, app_state, other_dir, tmp_path
):
    broken = _broken(other_dir, tmp_path / "broken")
    expected = _validate_problems(broken)
    assert expected
    from web.datasets import uploads_root

    before, meetings = get_state(), list(Meeting.objects.values_list("date", "data_fingerprint"))
    unpacked_before = set(uploads_root().glob("upload-*"))
    response = client_for(client, users["analyst"]).post("/data/", {"upload": _zip(broken)})
    html = response.content.decode()
    assert response.status_code == 400
    assert "Not switched" in html
    for problem in expected:  # the same named problems as `matchwijs validate`
        from django.utils.html import escape

        assert escape(problem) in html
    assert get_state() is before
    assert DatasetSwitch.objects.count() == 0
    assert list(Meeting.objects.values_list("date", "data_fingerprint")) == meetings
    assert set(uploads_root().glob("upload-*")) == unpacked_before, "a refused upload is removed"
    # the previous meeting is still served
    assert client.get(f"/meetings/{meeting.date:%Y-%m-%d}/").status_code == 200


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"path": "/no/such/folder"}, "no such folder"),
        ({"upload": SimpleUploadedFile("x.zip", b"not a zip")}, "not a zip file"),
        ({}, "Give a dataset folder"),
    ],
)
def test_bad_requests_change_nothing(client, meeting, users, app_state, data, message):
    before = get_state()
    response = client_for(client, users["admin"]).post("/data/", data)
    assert response.status_code == 400 and message in response.content.decode()
    assert get_state() is before and DatasetSwitch.objects.count() == 0


def test_zip_without_manifest_or_with_unsafe_names_is_refused(client, meeting, users, app_state, other_dir):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.csv", "x")
    c = client_for(client, users["analyst"])
    response = c.post("/data/", {"upload": SimpleUploadedFile("d.zip", buf.getvalue())})
    assert response.status_code == 400 and "unsafe file names" in response.content.decode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("clients.csv", "client_id\n")
    response = c.post("/data/", {"upload": SimpleUploadedFile("d.zip", buf.getvalue())})
    assert response.status_code == 400 and "no dataset.yaml" in response.content.decode()


@pytest.mark.parametrize("role", ["chair", "member", "auditor"])
def test_other_roles_cannot_switch(client, meeting, users, app_state, other_dir, role):
    before = get_state()
    c = client_for(client, users[role])
    assert c.get("/data/").status_code == 403
    assert c.post("/data/", {"path": str(other_dir)}).status_code == 403
    assert get_state() is before and DatasetSwitch.objects.count() == 0


def test_another_worker_follows_the_switch(meeting, app_state, other_dir):
    """A worker process that did not make the switch picks it up from the database on its next request."""
    from features.load import dataset_fingerprint
    from web.state import set_state

    DatasetSwitch.objects.create(
        path=str(other_dir.resolve()), fingerprint=dataset_fingerprint(other_dir), switched_by="u-x"
    )
    set_state(app_state)  # this "worker" still serves the old dataset
    state = get_state()
    assert Path(state.ds.path).resolve() == other_dir.resolve() and state.bundle is app_state.bundle
    assert get_state() is state  # followed once, then kept
