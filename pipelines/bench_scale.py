"""`make bench` (scale part): wall time and peak memory of the country-scale cases, as a curve 1× / 5× / 20×.

Cases (issue #13 item 6), each at the scales of `--scales` (default 1, 5, 20):

- `regions`: N regions of the demo's size over params `generate.years` (`matchwijs generate
  --regions N --truth`), then `matchwijs train --truth` (evaluation, oracle, intervals,
  fairness gate and audit, MLflow in a scratch store). Goal at 20×: train ≤ 5 minutes, ≤ 4 GB.
- `meeting`: one meeting N × the demo's size (`generate --weekly-vacancies 23N
  --weekly-candidates 25N --truth`), then `matchwijs recommend --meeting latest` with the
  model that train wrote, and `train --truth`. Goal at 5×: ≤ 2 GB peak.

Every step runs as its own process under `/usr/bin/time` (wall seconds, CPU seconds, peak
resident memory) and `prlimit --as` (`--limit-gb`, so a step that would take
the machine down fails instead), `nice -n 10`. A failed or killed step is recorded with its
exit code and the case's later steps are skipped. Bounded: no new step starts after
`--max-minutes`.

Results: bench/scale.csv (one row per case, scale and step) and a markdown table on stdout,
with the machine named.

    python -m pipelines.bench_scale --scales 1,5,20 --cases regions,meeting
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"
RESULT_FILE = "scale.csv"
DEMO_VACANCIES, DEMO_CANDIDATES = 23, 25.0  # params.yaml generate (the demo's size)
GOALS = {  # (case, scale, step): (seconds, GB)
    ("regions", 20, "train"): (300.0, 4.0),
    ("meeting", 5, "recommend"): (None, 2.0),
    ("meeting", 5, "train"): (None, 2.0),
}
COLUMNS = [
    "case",
    "scale",
    "step",
    "status",
    "exit_code",
    "wall_s",
    "cpu_s",
    "peak_rss_gb",
    "peak_total_gb",
    "goal_s",
    "goal_gb",
    "detail",
]


def tree_rss_bytes(root: int) -> int:
    """Resident memory of process `root` and all its descendants (side processes, interval workers), summed.

    Pages two processes share are counted twice: an upper bound of what the machine holds.
    """
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        kids = [pid for pid, ppid in parent.items() if ppid in frontier and pid not in tree]
        tree.update(kids)
        frontier = kids
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in tree:
        try:
            total += int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(
    cmd: list[str], *, cwd: Path, env: dict, limit_gb: float, log: Path
) -> tuple[int, float, float, float, float]:
    """Run `cmd` niced under an address-space limit.

    Returns (exit code, wall seconds, CPU seconds of it and its children, peak RSS in GB of its
    largest process, peak in GB of all its processes together, sampled every 0.2 s).
    """
    stats = log.with_suffix(".time")
    limit = str(int(limit_gb * 2**30))
    full = [
        "/usr/bin/time",
        "-f",
        "%e %M %U %S",
        "-o",
        str(stats),
        "nice",
        "-n",
        "10",
        "prlimit",
        f"--as={limit}",
        *cmd,
    ]
    total = 0
    with log.open("w") as out:
        proc = subprocess.Popen(full, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            total = max(total, tree_rss_bytes(proc.pid))
            time.sleep(0.2)
        code = proc.returncode
    text = stats.read_text().strip().splitlines() if stats.exists() else []
    last = text[-1].split() if text else []
    if len(last) == 4:
        largest = int(last[1]) / 2**20
        return code, float(last[0]), float(last[2]) + float(last[3]), largest, max(total / 2**30, largest)
    return code, float("nan"), float("nan"), float("nan"), float("nan")


def steps(case: str, scale: int, work: Path) -> list[tuple[str, list[str]]]:
    """The commands of one case at one scale."""
    exe = str(Path(sys.executable).with_name("matchwijs"))
    data, truth, model = work / "data", work / "truth", work / "model"
    if case == "regions":
        generate = [exe, "generate", "--out", str(data), "--truth", str(truth), "--regions", str(scale)]
    else:
        generate = [
            exe,
            "generate",
            "--out",
            str(data),
            "--truth",
            str(truth),
            "--weekly-vacancies",
            str(DEMO_VACANCIES * scale),
            "--weekly-candidates",
            str(DEMO_CANDIDATES * scale),
        ]
    train = [exe, "train", "--data", str(data), "--truth", str(truth), "--bundle-out", str(model)]
    # --bundle-out holds the deployed model itself (its evaluated model in evaluated/)
    recommend = [exe, "recommend", "--data", str(data), "--meeting", "latest", "--model", str(model)]
    recommend += ["--out", str(work / "meeting")]
    return [("generate", generate), ("train", train), *([("recommend", recommend)] if case == "meeting" else [])]


def run_case(
    case: str, scale: int, *, limit_gb: float, deadline: float, keep: Path | None, rows: list[dict], save
) -> None:
    """All steps of one case at one scale in a scratch folder (removed afterwards unless `keep`), appended to `rows`.

    `save(rows)` runs after every step, so a bench stopped from outside keeps what it measured.
    """
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"matchwijs-scale-{case}{scale}-", dir=keep))
    env = {**os.environ, "MATCHWIJS_MLFLOW_DIR": str(work / "mlruns"), "PYTHONUNBUFFERED": "1"}
    try:
        failed = False
        for step, cmd in steps(case, scale, work):
            goal_s, goal_gb = GOALS.get((case, scale, step), (None, None))
            row = {"case": case, "scale": scale, "step": step, "goal_s": goal_s, "goal_gb": goal_gb}
            if failed or time.monotonic() > deadline:
                rows.append({**row, "status": "skipped", "detail": "earlier step failed" if failed else "time budget"})
                save(rows)
                continue
            print(f"[scale] {case} {scale}x: {step} ...", flush=True)
            log = work / f"{step}.log"
            code, wall, cpu, peak, total = measure(cmd, cwd=work, env=env, limit_gb=limit_gb, log=log)
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-2:])[-300:] if code else ""
            status = "ok" if code == 0 else ("killed" if code < 0 or code > 128 else "failed")
            rows.append(
                {
                    **row,
                    "status": status,
                    "exit_code": code,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "peak_rss_gb": peak,
                    "peak_total_gb": total,
                    "detail": tail,
                }
            )
            print(
                f"[scale] {case} {scale}x: {step} {status} in {wall:.0f} s ({cpu:.0f} CPU s), "
                f"peak {total:.2f} GB all processes ({peak:.2f} GB the largest)",
                flush=True,
            )
            failed = code != 0
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def markdown(table: pd.DataFrame) -> str:
    """The results as a README table."""
    lines = [
        "| case | scale | step | status | wall (s) | CPU (s) | peak, all processes (GB) | largest process (GB) | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        goal = " ".join(
            x
            for x in (
                f"≤ {r.goal_s:.0f} s" if pd.notna(r.goal_s) else "",
                f"≤ {r.goal_gb:g} GB" if pd.notna(r.goal_gb) else "",
            )
            if x
        )
        wall = f"{r.wall_s:.0f}" if pd.notna(r.wall_s) else ""
        cpu = f"{r.cpu_s:.0f}" if pd.notna(r.cpu_s) else ""
        peak = f"{r.peak_rss_gb:.2f}" if pd.notna(r.peak_rss_gb) else ""
        total = f"{r.peak_total_gb:.2f}" if pd.notna(r.peak_total_gb) else ""
        lines.append(f"| {r.case} | {r.scale}× | {r.step} | {r.status} | {wall} | {cpu} | {total} | {peak} | {goal} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,5,20", help="comma-separated scales (default 1,5,20)")
    parser.add_argument("--cases", default="regions,meeting", help="regions and/or meeting")
    parser.add_argument("--limit-gb", type=float, default=16.0, help="address-space limit per step (GB)")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="start no new step after this")
    parser.add_argument("--keep", type=Path, default=None, help="keep the scratch folders under this folder")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for scale.csv (default bench/)")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + 60 * args.max_minutes
    cases = args.cases.split(",")
    for case in cases:
        if case not in ("regions", "meeting"):
            parser.error(f"unknown case {case!r}: expected regions or meeting")
    args.out.mkdir(parents=True, exist_ok=True)
    from pipelines.bench import machine

    host = machine()

    def save(rows: list[dict]) -> None:
        pd.DataFrame(rows).reindex(columns=COLUMNS).assign(machine=host).to_csv(args.out / RESULT_FILE, index=False)

    rows: list[dict] = []
    for case in cases:
        for scale in (int(s) for s in args.scales.split(",")):
            run_case(case, scale, limit_gb=args.limit_gb, deadline=deadline, keep=args.keep, rows=rows, save=save)
    save(rows)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    print(f"\nScale benchmark ({host}), {args.out / RESULT_FILE}:\n")
    print(markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
