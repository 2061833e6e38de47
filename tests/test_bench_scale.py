"""The country-scale benchmark's bookkeeping (pipelines/bench_scale.py), with the measured commands stubbed out."""

from __future__ import annotations

import pandas as pd

from pipelines import bench_scale


def test_steps_of_each_case_read_the_folders_the_earlier_steps_write(tmp_path):
    regions = dict(bench_scale.steps("regions", 20, tmp_path))
    assert list(regions) == ["generate", "train"]
    assert regions["generate"][-2:] == ["--regions", "20"]
    meeting = dict(bench_scale.steps("meeting", 5, tmp_path))
    assert list(meeting) == ["generate", "train", "recommend"]
    gen = meeting["generate"]
    assert gen[gen.index("--weekly-vacancies") + 1] == "115" and gen[gen.index("--weekly-candidates") + 1] == "125.0"
    train, recommend = meeting["train"], meeting["recommend"]
    model = train[train.index("--bundle-out") + 1]
    assert recommend[recommend.index("--model") + 1] == model  # the folder train wrote, not a subfolder


def test_results_goals_and_skips_are_written_per_step(tmp_path, monkeypatch, capsys):
    calls: list[str] = []
    kill_train = [True]

    def fake_measure(cmd, *, cwd, env, limit_gb, log):
        step = cmd[1]
        calls.append(step)
        log.write_text(f"{step} started\n{step}: the last line\n")
        assert env["MATCHWIJS_MLFLOW_DIR"].startswith(str(cwd)) and limit_gb == 3.0
        if step == "train" and kill_train[0]:
            return -9, 12.0, 10.0, 3.1, 3.4
        return 0, 2.0, 1.5, 0.4, 0.5

    monkeypatch.setattr(bench_scale, "measure", fake_measure)
    assert bench_scale.main(["--scales", "20", "--cases", "regions", "--limit-gb", "3", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / bench_scale.RESULT_FILE)
    assert table[["step", "status"]].values.tolist() == [["generate", "ok"], ["train", "killed"]]
    train = table.set_index("step").loc["train"]
    assert (train["goal_s"], train["goal_gb"], train["peak_rss_gb"], train["peak_total_gb"]) == (300.0, 4.0, 3.1, 3.4)
    assert train["detail"] == "train started | train: the last line"
    assert "| regions | 20× | train | killed | 12 | 10 | 3.40 | 3.10 | ≤ 300 s ≤ 4 GB |" in capsys.readouterr().out
    calls.clear()
    kill_train[0] = False
    bench_scale.main(["--scales", "5", "--cases", "meeting", "--limit-gb", "3", "--out", str(tmp_path)])
    table = pd.read_csv(tmp_path / bench_scale.RESULT_FILE)
    assert table["status"].tolist() == ["ok", "ok", "ok"] and calls == ["generate", "train", "recommend"]
    assert table.set_index("step").loc["recommend", "goal_gb"] == 2.0


def test_a_failed_step_skips_the_rest_of_its_case(tmp_path, monkeypatch):
    def failing(cmd, *, log, **_):
        log.write_text("Error: something\n")
        return 1, 1.0, 1.0, 0.1, 0.1

    monkeypatch.setattr(bench_scale, "measure", failing)
    bench_scale.main(["--scales", "1", "--cases", "meeting", "--out", str(tmp_path)])
    table = pd.read_csv(tmp_path / bench_scale.RESULT_FILE)
    assert table["status"].tolist() == ["failed", "skipped", "skipped"]
    assert table["detail"].tolist() == ["Error: something", "earlier step failed", "earlier step failed"]


def test_keep_makes_its_folder_and_keeps_the_scratch_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(
        bench_scale, "measure", lambda cmd, *, log, **_: (log.write_text("ok\n"), (0, 1.0, 1.0, 0.1, 0.1))[1]
    )
    keep = tmp_path / "not" / "there" / "yet"
    assert bench_scale.main(["--scales", "1", "--cases", "regions", "--keep", str(keep), "--out", str(tmp_path)]) == 0
    assert [p.name.startswith("matchwijs-scale-regions1-") for p in keep.iterdir()] == [True]


def test_the_memory_of_side_processes_is_counted(tmp_path):
    """A step whose work runs in two child processes: their memory adds up (the peak of one alone would hide it)."""
    import subprocess
    import sys

    hold = "import sys, time; x = bytearray(150 * 2**20); x[::4096] = b'1' * len(x[::4096]); print('held', flush=True); time.sleep(30)"
    parent = (
        "import subprocess, sys\n"
        f"kids = [subprocess.Popen([sys.executable, '-c', {hold!r}], stdout=subprocess.PIPE) for _ in range(2)]\n"
        "[k.stdout.readline() for k in kids]\n"
        "print('ready', flush=True)\n"
        "[k.wait() for k in kids]\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        total = bench_scale.tree_rss_bytes(proc.pid)
        assert total >= 2 * 150 * 2**20  # both children's pages, not only the largest process's
        assert bench_scale.tree_rss_bytes(2**22 + 12345) == 0  # no such process: nothing counted
    finally:
        import os
        import signal

        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
