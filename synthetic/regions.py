"""A country of regional meetings: several synthetic regions in one dataset (the contract's `region`).

The Netherlands has many regional matching meetings, not one giant one. Each region here is an
independent synthetic world (the generator with its own seed: seed + 1000 × region number) on the
same CBS neighbourhoods; the regions are then written as one dataset whose `vacancies` and
`candidates` carry a `region` column. Identifiers are prefixed with the region's name (`R01-W000001`),
so homes, clients, placements and care providers never collide across regions.

One region is generated at a time, so memory grows with one region, never with the country.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from features.contract import REGION, TABLES
from features.outputs import Staging
from synthetic.decisions import DecisionParams
from synthetic.generate import (
    TRUTH_MANIFEST,
    TRUTH_PAIRS_FILE,
    TRUTH_PLACEMENTS_FILE,
    GenerateParams,
    check_outputs,
    generate_dataset,
)

# Columns holding an identifier that is local to one region (prefixed with the region's name).
REGIONAL_IDS = (
    "dwelling_id",
    "complex_id",
    "client_id",
    "placement_id",
    "report_id",
    "decision_id",
    "supersedes",
    "proposed_client_id",
    "care_provider",
)
SEED_STEP = 1000


def region_name(number: int) -> str:
    """R01, R02, ...: the name and identifier prefix of the `number`-th region (1-based)."""
    return f"R{number:02d}"


def _prefix(frame: pd.DataFrame, region: str) -> pd.DataFrame:
    out = frame.copy()
    for col in REGIONAL_IDS:
        if col in out.columns:
            values = out[col]
            filled = values.notna() & (values.astype(str) != "")
            out[col] = values.where(~filled, region + "-" + values.astype(str))
    return out


def generate_regions(
    out: str | Path,
    cfg: GenerateParams,
    regions: int,
    *,
    truth_dir: str | Path | None = None,
    decisions: DecisionParams | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Write `regions` synthetic regional meetings as one dataset at `out` (and their truth at `truth_dir`).

    Returns a one-line summary. The output folders are replaced atomically, as by `generate_dataset`.
    """
    if regions < 1:
        raise ValueError("regions must be at least 1")
    out, _ = check_outputs(out, truth_dir)
    say = progress or (lambda _msg: None)
    counts: dict[str, int] = {}
    columns: dict[str, list[str]] = {}
    writers: dict[str, pq.ParquetWriter] = {}
    manifest: dict = {}
    truth_manifest: dict = {}
    # Each region is written (appended) as soon as it is made: memory grows with one region, not the country.
    with tempfile.TemporaryDirectory(prefix="matchwijs-regions-") as scratch, Staging() as stage:
        data_tmp = stage.folder(out, "--out")
        truth_tmp = stage.folder(truth_dir, "--truth") if truth_dir is not None else None
        try:
            for number in range(1, regions + 1):
                name = region_name(number)
                say(f"region {name} ({number}/{regions})")
                folder, truth = Path(scratch) / "data", Path(scratch) / "truth"
                generate_dataset(
                    folder,
                    dataclasses.replace(cfg, seed=cfg.seed + SEED_STEP * number),
                    truth_dir=truth if truth_dir is not None else None,
                    decisions=decisions,
                )
                manifest = yaml.safe_load((folder / "dataset.yaml").read_text(encoding="utf-8"))
                for spec in TABLES.values():
                    file = folder / f"{spec.name}.csv"
                    if not file.exists() or (spec.name == "neighbourhoods" and number > 1):
                        continue  # the same CBS buurten in every region: written once
                    frame = pd.read_csv(file, dtype=str, keep_default_na=False)
                    if spec.name != "neighbourhoods":
                        frame = _prefix(frame, name)
                    if spec.name in ("vacancies", "candidates"):
                        frame[REGION] = name
                    _append_csv(
                        data_tmp / f"{spec.name}.csv", frame, columns.setdefault(spec.name, list(frame.columns))
                    )
                    counts[spec.name] = counts.get(spec.name, 0) + len(frame)
                if truth_tmp is not None:
                    pairs = _prefix(pd.read_parquet(truth / TRUTH_PAIRS_FILE), name).assign(region=name)
                    _append_parquet(writers, truth_tmp / TRUTH_PAIRS_FILE, pairs)
                    placed = _prefix(pd.read_parquet(truth / TRUTH_PLACEMENTS_FILE), name)
                    _append_parquet(writers, truth_tmp / TRUTH_PLACEMENTS_FILE, placed)
                    del pairs, placed
                    truth_manifest = yaml.safe_load((truth / TRUTH_MANIFEST).read_text(encoding="utf-8"))
                shutil.rmtree(folder)
                if truth.exists():
                    shutil.rmtree(truth)
        finally:
            for writer in writers.values():
                writer.close()
        manifest["name"] = f"{manifest.get('name') or 'synthetic'} ({regions} regions)"
        manifest["description"] = (
            f"Synthetic matchwijs dataset of {regions} regional meetings (seeds {cfg.seed} + {SEED_STEP} × region); "
            "every client, home and outcome is simulated."
        )
        (data_tmp / "dataset.yaml").write_text(
            yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
        if truth_tmp is not None:
            truth_manifest["regions"] = [region_name(n) for n in range(1, regions + 1)]
            truth_manifest["seed"] = cfg.seed
            (truth_tmp / TRUTH_MANIFEST).write_text(
                yaml.safe_dump(truth_manifest, sort_keys=False, allow_unicode=True), encoding="utf-8"
            )
        stage.commit()
    listed = ", ".join(f"{n} {c}" for n, c in counts.items())
    return f"wrote {out}: {regions} regions; {listed}"


def _append_csv(file: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    """Append `frame` to a CSV file (header only when the file is new); every region has the same columns."""
    if list(frame.columns) != columns:
        raise ValueError(f"{file.name}: a region's columns {list(frame.columns)} differ from the first's {columns}")
    frame.to_csv(file, index=False, mode="a", header=not file.exists())


def _append_parquet(writers: dict[str, pq.ParquetWriter], file: Path, frame: pd.DataFrame) -> None:
    """Append `frame` to a Parquet file as a row group, in the first region's schema."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    writer = writers.get(file.name)
    if writer is None:
        writer = writers[file.name] = pq.ParquetWriter(file, table.schema)
    else:
        table = table.cast(writer.schema)
    writer.write_table(table)
