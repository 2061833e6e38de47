"""`train`'s progress lines say how long it has been running (which stage takes the time)."""

from __future__ import annotations

from pipelines import train


def test_progress_lines_carry_the_time_since_train_started(monkeypatch, capsys):
    monkeypatch.setattr(train, "_STARTED", [100.0])
    monkeypatch.setattr(train.time, "perf_counter", lambda: 165.7)
    train._progress("comparing with the oracle")
    assert capsys.readouterr().err == "train: [1:05] comparing with the oracle\n"
