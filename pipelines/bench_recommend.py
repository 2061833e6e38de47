"""Benchmark of `recommend`: one meeting of 50 vacancies × 400 candidates, explanations, plan and sheet included.

    python -m pipelines.bench_recommend [--vacancies 50] [--candidates 400] [--trees 300] [--repeats 3]

`bench_recommend()` returns the numbers as a dict (for pipelines/bench.py). The
dataset is a random, contract-valid meeting with a year of placement history
(`synthetic_meeting_tables`), and the model a stand-in LightGBM of the trainer's
default size (params.yaml train.lgbm) fitted on that history (`stand_in_bundle`),
so the benchmark does not depend on the generator or the trainer.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from models.bundle import ModelBundle
from synthetic.meeting import synthetic_meeting_tables, write_tables
from synthetic.stand_in import history_bundle


def trainer_model_size(params: dict | None = None) -> tuple[int, int]:
    """(trees, leaves) of the trainer's default model (params.yaml train.lgbm), else (300, 15)."""
    from features.config import load_params

    lgbm = ((params if params is not None else load_params()).get("train") or {}).get("lgbm") or {}
    return int(lgbm.get("num_boost_round", 300)), int(lgbm.get("num_leaves", 15))


def bench_recommend(
    workdir: str | Path | None = None,
    *,
    n_vacancies: int = 50,
    n_candidates: int = 400,
    n_trees: int | None = None,
    num_leaves: int | None = None,
    repeats: int = 3,
    cli: bool = True,
    seed: int = 0,
    lang: str = "en",
) -> dict:
    """Time `recommend` on a synthetic meeting; return seconds per stage, totals and peak memory.

    Args:
        workdir: folder for the dataset, model and outputs (default: a new temporary folder).
        n_trees, num_leaves: size of the stand-in model (default: the trainer's, params.yaml train.lgbm).
    """
    from features.load import load_dataset
    from pipelines.recommend import load_config, parse_meeting_date, write_outputs
    from reports.suggestions import meeting_outputs

    cfg = load_config()
    default_trees, default_leaves = trainer_model_size()
    n_trees = default_trees if n_trees is None else n_trees
    num_leaves = default_leaves if num_leaves is None else num_leaves
    if workdir is None:
        work = Path(tempfile.mkdtemp(prefix="matchwijs-bench-"))
    else:
        work = Path(workdir)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
    tables, meeting, as_of = synthetic_meeting_tables(n_vacancies=n_vacancies, n_candidates=n_candidates, seed=seed)
    data = write_tables(work / "data", tables, as_of=as_of)
    t0 = time.perf_counter()
    ds = load_dataset(data)
    load_s = time.perf_counter() - t0
    bundle = history_bundle(ds, cfg, n_trees=n_trees, num_leaves=num_leaves, seed=seed)
    bundle.save(work / "model")
    bundle = ModelBundle.load(work / "model")
    date = parse_meeting_date(meeting)

    runs, stages = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        outputs = meeting_outputs(ds, date, bundle, cfg, lang=lang)
        t1 = time.perf_counter()
        write_outputs(outputs, work / f"out{i}")
        t2 = time.perf_counter()
        runs.append(t2 - t0)
        stages.append({**outputs.timings, "write": t2 - t1})
    tracemalloc.start()
    outputs = meeting_outputs(ds, date, bundle, cfg, lang=lang)
    write_outputs(outputs, work / "out_mem")
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {
        "vacancies": n_vacancies,
        "candidates": n_candidates,
        "pairs": n_vacancies * n_candidates,
        "eligible_pairs": len(outputs.recommendations),
        "explanation_rows": len(outputs.explanations),
        "trees": n_trees,
        "num_leaves": num_leaves,
        "load_dataset_s": round(load_s, 3),
        "recommend_s_median": round(statistics.median(runs), 3),
        "recommend_s_runs": [round(r, 3) for r in runs],
        "stages_s": {k: round(statistics.median(s[k] for s in stages), 3) for k in stages[0]},
        "python_peak_mb_tracemalloc": round(traced_peak / 2**20, 1),
        "bench_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "sheet_kb": round(len(outputs.html.encode()) / 1024, 1),
        "explanations_csv_mb": round((work / "out0" / "explanations.csv").stat().st_size / 2**20, 1),
    }
    if cli:
        t0 = time.perf_counter()
        cmd = [
            sys.executable,
            "-c",
            _CLI_WITH_PEAK,
            "recommend",
            "--data",
            str(data),
            "--meeting",
            meeting,
            "--out",
            str(work / "out_cli"),
            "--model",
            str(work / "model"),
            "--lang",
            lang,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        result["cli_wall_s"] = round(time.perf_counter() - t0, 3)
        result["cli_exit"] = proc.returncode
        peak = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("VmHWM")]
        result["cli_peak_rss_mb"] = round(int(peak[0]) / 1024, 1) if peak else None
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _IMPORTS], check=True)
        result["cli_imports_s"] = round(time.perf_counter() - t0, 3)
    result["workdir"] = str(work)
    return result


# The command line as a user runs it, reporting its own peak resident memory (VmHWM is per
# process image, so unlike ru_maxrss of a child it does not include the forking parent's memory).
_CLI_WITH_PEAK = """
import sys
from pipelines.cli import main
try:
    main()
finally:
    with open('/proc/self/status') as status:
        print(next(line for line in status if line.startswith('VmHWM')).strip(), file=sys.stderr)
"""


# What every `recommend` process pays before any work: the libraries it imports.
_IMPORTS = "import pandas, lightgbm, sklearn.neighbors, scipy.optimize, pandera.pandas, jinja2, pyarrow.csv"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vacancies", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=400)
    parser.add_argument("--trees", type=int, default=None, help="default: the trainer's (params.yaml train.lgbm)")
    parser.add_argument("--leaves", type=int, default=None, help="default: the trainer's (params.yaml train.lgbm)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-cli", action="store_true", help="skip timing the command line end to end")
    args = parser.parse_args(argv)
    result = bench_recommend(
        args.workdir,
        n_vacancies=args.vacancies,
        n_candidates=args.candidates,
        n_trees=args.trees,
        num_leaves=args.leaves,
        repeats=args.repeats,
        cli=not args.no_cli,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
