"""`make bench`: time and peak memory of feature building, training and recommend.

Each measured step runs in a fresh Python process so its peak resident memory
(ru_maxrss) is its own; the process also reports its memory right after imports
and data loading, so the step's own growth is visible. Sizes: the default
synthetic dataset (1×) and one with 10× the weekly vacancies and candidates
(10×). Results go to bench/results.json and a markdown table on stdout.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench"

_STEP = r"""
import json, resource, sys, time
def rss_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import dataclasses
from features.config import load_params, section
from features.labels import LabelParams
from features.load import load_dataset
from features.pairs import FeatureParams
from features.rules import PassendToewijzen
from models.baselines import BaselineParams
from models.experiment import placement_rows, run_experiment
from models.ranker import TrainParams
cfg = load_params()
fp, lp = section(cfg, "features", FeatureParams), section(cfg, "labels", LabelParams)
rules = section(cfg, "passend_toewijzen", PassendToewijzen)
tp, bp = section(cfg, "train", TrainParams), section(cfg, "baselines", BaselineParams)
step, data = sys.argv[1], sys.argv[2]
t0 = time.perf_counter(); ds = load_dataset(data); load_s = time.perf_counter() - t0
before = rss_mb()
t0 = time.perf_counter()
rows = placement_rows(ds, features=fp, labels=lp, rules=rules)
feat_s = time.perf_counter() - t0
result = {"load_s": load_s, "rss_after_load_mb": before, "placements": len(rows), "features_s": feat_s}
if step == "train":
    from models.experiment import versus_baselines
    t0 = time.perf_counter()
    exp = run_experiment(rows, train=dataclasses.replace(tp, bootstrap_resamples=0), baselines=bp, objectives=(tp.objective,))
    result["train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    versus_baselines(exp.test, tp)
    result["bootstrap_s"] = time.perf_counter() - t0
    result["bootstrap_resamples"] = tp.bootstrap_resamples
result["peak_rss_mb"] = rss_mb()
print(json.dumps(result))
"""


def _run_step(step: str, data: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _STEP, step, str(data)], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench step {step} on {data} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _generate(folder: Path, factor: int) -> float:
    """Generate the dataset in a child process (Linux keeps a process's peak RSS across fork and exec,
    so generating in this process would inflate every later step's measured peak)."""
    if (folder / "dataset.yaml").is_file():
        return float("nan")
    t0 = time.perf_counter()
    code = f"from pathlib import Path; from pipelines.bench import generate_here; generate_here(Path({str(folder)!r}), {factor})"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: generating {folder} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def generate_here(folder: Path, factor: int) -> None:
    """The default synthetic dataset with `factor` times the weekly vacancies, candidates and initial queue."""
    import dataclasses

    from features.config import load_params, section
    from synthetic.generate import GenerateParams, generate_dataset

    cfg = section(load_params(), "generate", GenerateParams)
    cfg = dataclasses.replace(
        cfg,
        weekly_vacancies=cfg.weekly_vacancies * factor,
        weekly_candidates=cfg.weekly_candidates * factor,
        initial_queue=cfg.initial_queue * factor,
    )
    generate_dataset(folder, cfg)


def machine() -> str:
    """A one-line description of this machine."""
    import os

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = float("nan")
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, Python {platform.python_version()}"


def main() -> None:
    """Run every benchmark and print a markdown table."""
    OUT.mkdir(exist_ok=True)
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "sizes": {}}
    for factor in (1, 10):
        data = OUT / f"data_{factor}x"
        print(f"bench: {factor}× data ({data})", file=sys.stderr)
        gen_s = _generate(data, factor)
        r = _run_step("train", data)
        r["generate_s"] = gen_s
        results["sizes"][f"{factor}x"] = r
    # Imported here, after the sized runs: this process's peak memory is carried into the children it starts.
    from pipelines.bench_recommend import bench_recommend

    print("bench: recommend, 50 vacancies × 400 candidates", file=sys.stderr)
    results["recommend"] = bench_recommend(OUT / "recommend")
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")

    print(f"Machine: {results['machine']}; {results['date']}\n")
    print(
        "| data | placements with outcome | load (s) | features (s) | train + evaluate (s) | bootstrap (s) | peak RSS (MB) | RSS after load (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for size, r in results["sizes"].items():
        print(
            f"| {size} | {r['placements']} | {r['load_s']:.1f} | {r['features_s']:.2f} | {r['train_s']:.1f} | {r['bootstrap_s']:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {r['rss_after_load_mb']:.0f} |"
        )
    if "recommend" in results:
        print("\nrecommend (50 vacancies × 400 candidates):", json.dumps(results["recommend"], default=float))


if __name__ == "__main__":
    main()
