"""The bad-input campaign: every kind of bad input is a named error, exit code 1, no traceback, nothing written.

Each case copies a tiny valid dataset, a stand-in model folder, params.yaml and an
MLflow store (with a registered default model) into its own folder, breaks one
thing, runs one command, and checks: exit code 1, no traceback, the problem
named, and every byte under the case's folder (outputs, the store, the inputs)
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features import load as load_module
from features.load import load_dataset
from features.pairs import all_meeting_pairs, build_pair_features
from pipelines.cli import app
from pipelines.recommend import load_config
from synthetic.stand_in import jittered, stand_in_bundle
from tests.conftest import tiny_tables, write_dataset

MEETING = "2023-01-02"


@pytest.fixture(scope="session")
def campaign_base(tmp_path_factory) -> Path:
    """One valid dataset, model folder, params.yaml and MLflow store (champion = the model), made once."""
    from models import tracking

    root = tmp_path_factory.mktemp("campaign")
    data = write_dataset(root / "data", tiny_tables())
    ds = load_dataset(data)
    cfg = load_config()
    X = build_pair_features(
        ds, all_meeting_pairs(ds, ds.vacancies["meeting_date"].unique()), params=cfg.features, rules=cfg.amounts
    )
    bundle = stand_in_bundle(jittered(X, 200, seed=1), n_trees=5, num_leaves=4, min_data_in_leaf=5)
    bundle.save(root / "model")
    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", root / "params.yaml")
    mp = tracking.mlflow_params(root / "params.yaml")
    store = root / "store"
    run_id, uri = tracking.log_run(
        store, mp, run_name="campaign", run_params={}, metrics={}, tags={}, artifacts={"bundle": root / "model"}
    )
    tracking.register(store, mp, run_id, uri, promote=True, description="campaign champion")
    return root


@dataclass
class Ctx:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def table(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.data / f"{name}.csv", dtype=str, keep_default_na=False)

    def set_table(self, name: str, frame: pd.DataFrame) -> None:
        frame.to_csv(self.data / f"{name}.csv", index=False)

    def set_cell(self, name: str, column: str, row: int, value: str) -> None:
        frame = self.table(name)
        frame.loc[row, column] = value
        self.set_table(name, frame)

    def edit_params(self, change: Callable[[dict], None]) -> None:
        params = yaml.safe_load(self.params.read_text(encoding="utf-8"))
        change(params)
        self.params.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")

    def edit_bundle_json(self, change: Callable[[dict], None], *, rehash: bool) -> None:
        meta = json.loads((self.model / "bundle.json").read_text())
        change(meta)
        (self.model / "bundle.json").write_text(json.dumps(meta))
        if rehash:
            sums = json.loads((self.model / "checksums.json").read_text())
            sums["bundle.json"] = hashlib.sha256((self.model / "bundle.json").read_bytes()).hexdigest()
            (self.model / "checksums.json").write_text(json.dumps(sums))


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            try:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                out[rel] = "unreadable"
        elif path.is_dir():
            out[rel] = "dir"
    return out


# Commands, each given the case's folder.
def validate(c: Ctx) -> list[str]:
    return ["validate", "--data", str(c.data)]


def train(c: Ctx, *extra: str) -> list[str]:
    return ["train", "--data", str(c.data), "--params", str(c.params), *extra]


def recommend(c: Ctx, *extra: str, model: str | None = "folder", meeting: str = MEETING) -> list[str]:
    args = ["recommend", "--data", str(c.data), "--meeting", meeting, "--out", str(c.out), "--params", str(c.params)]
    if model == "folder":
        args += ["--model", str(c.model)]
    elif model is not None:
        args += ["--model", model]
    return [*args, *extra]


def audit(c: Ctx, *extra: str) -> list[str]:
    return [
        "audit",
        "--data",
        str(c.data),
        "--out",
        str(c.out),
        "--model",
        str(c.model),
        "--params",
        str(c.params),
        *extra,
    ]


def generate(c: Ctx, *extra: str) -> list[str]:
    return ["generate", "--out", str(c.out), "--params", str(c.params), *extra]


def _write(path: Path, data: bytes | str) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)


def _cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str]]
    expect: str  # a regex that must appear in the output (the problem, named)


def _manifest(text: str | bytes) -> Callable[[Ctx], None]:
    return lambda c: _write(c.data / "dataset.yaml", text)


def case(id: str, expect: str, command: Callable[[Ctx], list[str]], *steps: Callable[[Ctx], object]) -> Case:
    def setup(c: Ctx) -> list[str]:
        for step in steps:
            step(c)
        return command(c)

    return Case(id, setup, expect)


def _lines(n: int) -> str:
    return "x" * n


BIG = "=" + "A" * (10 * 1024 * 1024)


def _symlink_outside(c: Ctx) -> None:
    outside = c.root / "elsewhere.csv"
    shutil.move(c.data / "clients.csv", outside)
    (c.data / "clients.csv").symlink_to(outside)


def _set_param(path: str, value) -> Callable[[Ctx], None]:
    def change(params: dict) -> None:
        keys = path.split(".")
        node = params
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return lambda c: c.edit_params(change)


def _drop_param(path: str) -> Callable[[Ctx], None]:
    def change(params: dict) -> None:
        keys = path.split(".")
        node = params
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return lambda c: c.edit_params(change)


def _feature_mismatch(meta: dict) -> None:
    meta["feature_names"] = meta["feature_names"][:-1]


CASES = [
    # ------------------------------------------------------------ data folder and manifest
    case(
        "data-missing-folder",
        r"dataset folder .*nowhere does not exist",
        lambda c: ["validate", "--data", str(c.root / "nowhere")],
    ),
    case("data-is-a-file", r"does not exist or is not a folder", lambda c: ["validate", "--data", str(c.params)]),
    case("manifest-missing", r"dataset.yaml is missing", validate, lambda c: (c.data / "dataset.yaml").unlink()),
    case("manifest-bad-yaml", r"dataset.yaml.*not valid YAML", validate, _manifest("as_of: [2024-01-01\n")),
    case("manifest-not-utf8", r"dataset.yaml is not UTF-8", validate, _manifest(b"name: caf\xe9\nas_of: 2024-06-30\n")),
    case("manifest-month-13", r"as_of='2024-31-12', not a real date", validate, _manifest("as_of: 2024-31-12\n")),
    case("manifest-feb-30", r"as_of='2024-02-30', not a real date", validate, _manifest("as_of: 2024-02-30\n")),
    case("manifest-no-as-of", r"as_of=None", validate, _manifest("name: tiny\n")),
    case("manifest-a-list", r"must be a mapping", validate, _manifest("- as_of\n- 2024-06-30\n")),
    case("manifest-as-of-text", r"as_of='soon'", train, _manifest("as_of: soon\n")),
    case(
        "manifest-symlink-outside",
        r"dataset.yaml.*symbolic link",
        validate,
        lambda c: (
            shutil.move(c.data / "dataset.yaml", c.root / "m.yaml"),
            (c.data / "dataset.yaml").symlink_to(c.root / "m.yaml"),
        ),
    ),
    case("table-missing", r"clients: table file missing", validate, lambda c: (c.data / "clients.csv").unlink()),
    case(
        "table-csv-and-parquet",
        r"both clients.csv and clients.parquet",
        validate,
        lambda c: c.table("clients").to_parquet(c.data / "clients.parquet"),
    ),
    case(
        "table-not-utf8",
        r"clients.csv is not UTF-8 text: byte b'\\xe9'",
        validate,
        lambda c: _write(
            c.data / "clients.csv", (c.data / "clients.csv").read_bytes().replace(b"Kompas", b"K\xe9mpas")
        ),
    ),
    case(
        "table-symlink-outside",
        r"clients.csv is a symbolic link to .*outside the dataset folder",
        train,
        _symlink_outside,
    ),
    case(
        "table-dangling-symlink",
        r"cannot read clients.csv",
        validate,
        lambda c: ((c.data / "clients.csv").unlink(), (c.data / "clients.csv").symlink_to(c.root / "gone.csv")),
    ),
    case(
        "table-is-a-folder",
        r"clients.csv is not a regular file",
        validate,
        lambda c: ((c.data / "clients.csv").unlink(), (c.data / "clients.csv").mkdir()),
    ),
    case("table-empty-file", r"cannot read clients.csv", validate, lambda c: _write(c.data / "clients.csv", b"")),
    case(
        "table-parquet-garbage",
        r"cannot read dwellings.parquet",
        validate,
        lambda c: ((c.data / "dwellings.csv").unlink(), _write(c.data / "dwellings.parquet", b"PAR1 not really")),
    ),
    case(
        "column-missing",
        r"clients.care_provider: required column is missing",
        train,
        lambda c: c.set_table("clients", c.table("clients").drop(columns=["care_provider"])),
    ),
    case(
        "duplicate-id",
        r"clients.client_id: duplicate values",
        validate,
        lambda c: c.set_cell("clients", "client_id", 1, "0001"),
    ),
    case(
        "income-inf",
        r"clients.monthly_income_eur: infinite or NaN values",
        train,
        lambda c: c.set_cell("clients", "monthly_income_eur", 0, "inf"),
    ),
    case(
        "income-minus-inf",
        r"clients.monthly_income_eur: infinite",
        recommend,
        lambda c: c.set_cell("clients", "monthly_income_eur", 1, "-inf"),
    ),
    case(
        "rent-nan", r"dwellings.rent_eur: expected", validate, lambda c: c.set_cell("dwellings", "rent_eur", 0, "nan")
    ),
    case(
        "rooms-infinite",
        r"dwellings.rooms: infinite",
        validate,
        lambda c: c.set_cell("dwellings", "rooms", 0, "Infinity"),
    ),
    case(
        "bool-garbage",
        r"dwellings.has_lift: expected",
        validate,
        lambda c: c.set_cell("dwellings", "has_lift", 0, "maybe"),
    ),
    case(
        "date-garbage",
        r"placements.tenancy_start: expected",
        validate,
        lambda c: c.set_cell("placements", "tenancy_start", 0, "2023-02-30"),
    ),
    case(
        "reference-unknown",
        r"placements.dwelling_id: refers to a dwelling_id that is not in dwellings",
        validate,
        lambda c: c.set_cell("placements", "dwelling_id", 0, "D999"),
    ),
    case(
        "end-before-start",
        r"end_date is before the placement's tenancy_start",
        validate,
        lambda c: c.set_cell("tenancy_ends", "end_date", 0, "2023-01-01"),
    ),
    case(
        "huge-cell-is-cut",
        r"clients.household_size: expected .*characters\)",
        validate,
        lambda c: c.set_cell("clients", "household_size", 0, BIG),
    ),
    case(
        "oversized-table",
        r"clients.csv is .* bytes, more than the 100 allowed",
        validate,
        lambda c: setattr(load_module, "MAX_TABLE_BYTES", 100),
    ),
    case("audit-no-protected", r"client_protected", audit, lambda c: (c.data / "client_protected.csv").unlink()),
    # ------------------------------------------------------------ params.yaml
    case(
        "params-missing",
        r"params file .*nothing.yaml does not exist",
        lambda c: train(c)[:-2] + ["--params", str(c.root / "nothing.yaml")],
    ),
    case(
        "params-not-utf8",
        r"params file .* is not UTF-8",
        train,
        lambda c: _write(c.params, c.params.read_bytes() + b"# \xff\n"),
    ),
    case("params-bad-yaml", r"params file .* is not valid YAML", recommend, lambda c: _write(c.params, "train: [\n")),
    case("params-a-list", r"must be a mapping of sections", train, lambda c: _write(c.params, "- a\n- b\n")),
    case(
        "params-top-reasons-text",
        r"params: explain.top_reasons must be a whole number ≥ 1, got 'three'",
        recommend,
        _set_param("explain.top_reasons", "three"),
    ),
    case(
        "params-top-reasons-zero",
        r"params: explain.top_reasons must be a whole number ≥ 1, got 0",
        recommend,
        _set_param("explain.top_reasons", 0),
    ),
    case(
        "params-boost-rounds-text",
        r"params: train.lgbm.num_boost_round must be a whole number ≥ 1, got 'many'",
        train,
        _set_param("train.lgbm.num_boost_round", "many"),
    ),
    case(
        "params-horizon-negative",
        r"params: labels.horizon_days must be a whole number ≥ 1, got -5",
        train,
        _set_param("labels.horizon_days", -5),
    ),
    case(
        "params-seed-fraction",
        r"params: train.seed must be a whole number ≥ 0, got 1.5",
        train,
        _set_param("train.seed", 1.5),
    ),
    case(
        "params-learning-rate-nan",
        r"params: train.lgbm.learning_rate must be a number > 0",
        train,
        _set_param("train.lgbm.learning_rate", float("nan")),
    ),
    case(
        "params-fraction-above-one",
        r"train.lgbm.feature_fraction must be a number > 0 ≤ 1, got 1.5",
        train,
        _set_param("train.lgbm.feature_fraction", 1.5),
    ),
    case("params-unknown-key", r"params: train: unknown colour", train, _set_param("train.colour", "blue")),
    case("params-unknown-nested-key", r"params: train.lgbm: unknown leaves", train, _set_param("train.lgbm.leaves", 3)),
    case("params-missing-key", r"params: labels: missing horizon_days", train, _drop_param("labels.horizon_days")),
    case("params-missing-section", r"params: section `labels` is missing", train, _drop_param("labels")),
    case("params-section-a-list", r"params: features must be a mapping of keys", train, _set_param("features", [1, 2])),
    case(
        "params-bool-garbage",
        r"train.lgbm.monotone_self_reliance must be true or false",
        train,
        _set_param("train.lgbm.monotone_self_reliance", "perhaps"),
    ),
    case(
        "params-label-gain-text",
        r"train.label_gain\[1\] must be a number",
        train,
        _set_param("train.label_gain", [0, "one", 3, 7]),
    ),
    case(
        "params-promotion-metric",
        r"mlflow.promotion_metric 'accuracy' is not one of",
        train,
        _set_param("mlflow.promotion_metric", "accuracy"),
    ),
    case(
        "params-huge-value-cut",
        r"explain.top_reasons must be .*characters\)",
        recommend,
        _set_param("explain.top_reasons", "x" * 100_000),
    ),
    case(
        "params-generate-years-text",
        r"generate.years must be a number, got 'five'",
        generate,
        _set_param("generate.years", "five"),
    ),
    # ------------------------------------------------------------ model folder
    case(
        "model-missing", r"model .*nomodel: no such model folder", lambda c: recommend(c, model=str(c.root / "nomodel"))
    ),
    case(
        "model-is-a-file", r"model .*booster.txt is a file", lambda c: recommend(c, model=str(c.model / "booster.txt"))
    ),
    case(
        "model-txt-name",
        r"model .*model.txt: no such model folder",
        lambda c: recommend(c, model=str(c.root / "model.txt")),
    ),
    case(
        "model-truncated-booster",
        r"booster.txt does not match its checksum",
        recommend,
        lambda c: _cut(c.model / "booster.txt", 0.5),
    ),
    case(
        "model-truncated-no-checksums",
        r"booster.txt is not a readable LightGBM model",
        audit,
        lambda c: (_cut(c.model / "booster.txt", 0.3), (c.model / "checksums.json").unlink()),
    ),
    case(
        "model-features-disagree",
        r"the booster uses \d+ features but bundle.json lists",
        recommend,
        lambda c: c.edit_bundle_json(_feature_mismatch, rehash=True),
    ),
    case(
        "model-bundle-json-edited",
        r"bundle.json does not match its checksum",
        recommend,
        lambda c: c.edit_bundle_json(lambda m: m.update(threshold=0.1), rehash=False),
    ),
    case(
        "model-bundle-json-garbage",
        r"model folder is damaged",
        recommend,
        lambda c: (_write(c.model / "bundle.json", "{not json"), (c.model / "checksums.json").unlink()),
    ),
    case(
        "model-missing-support", r"missing support.parquet", recommend, lambda c: (c.model / "support.parquet").unlink()
    ),
    case(
        "model-checksums-garbage",
        r"checksums.json is not valid JSON",
        recommend,
        lambda c: _write(c.model / "checksums.json", "]["),
    ),
    case("model-foreign-folder", r"not a complete matchwijs model folder", lambda c: recommend(c, model=str(c.data))),
    case("model-unknown-version", r"has no version 99", lambda c: recommend(c, model="99")),
    case(
        "model-bad-registry-name",
        r"neither a model folder nor a registered version",
        lambda c: recommend(c, model="models:/other/1"),
    ),
    # ------------------------------------------------------------ arguments and file system
    case("meeting-not-a-date", r"--meeting '2023-13-01' is not a date", lambda c: recommend(c, meeting="2023-13-01")),
    case("meeting-without-homes", r"2023-03-06", lambda c: recommend(c, meeting="2023-03-06")),
    case("recommend-out-is-file", r"--out .*out exists and is not a folder", recommend, lambda c: _write(c.out, "x")),
    case(
        "recommend-out-parent-is-file",
        r"--out .*is a file, not a folder",
        lambda c: [
            "recommend",
            "--data",
            str(c.data),
            "--meeting",
            MEETING,
            "--out",
            str(c.out / "sub"),
            "--model",
            str(c.model),
        ],
        lambda c: _write(c.out, "x"),
    ),
    case(
        "recommend-out-symlink",
        r"--out .* is a symbolic link",
        recommend,
        lambda c: (c.root.joinpath("real").mkdir(), c.out.symlink_to(c.root / "real")),
    ),
    case("audit-out-is-file", r"--out .*out exists and is not a folder", audit, lambda c: _write(c.out, "x")),
    case(
        "train-bundle-out-is-file",
        r"--bundle-out .*model.txt exists and is not a folder",
        lambda c: train(c, "--bundle-out", str(c.root / "model.txt")),
        lambda c: _write(c.root / "model.txt", "x"),
    ),
    case(
        "train-metrics-out-is-folder",
        r"--metrics-out .* is a folder",
        lambda c: train(c, "--metrics-out", str(c.root / "m")),
        lambda c: (c.root / "m").mkdir(),
    ),
    case(
        "train-eval-out-parent-file",
        r"--eval-out .*is a file, not a folder",
        lambda c: train(c, "--eval-out", str(c.params / "eval")),
    ),
    case(
        "train-outputs-overlap",
        r"overlap",
        lambda c: train(c, "--bundle-out", str(c.root / "o"), "--eval-out", str(c.root / "o" / "e")),
    ),
    case("train-eval-out-in-data", r"--data .* overlap", lambda c: train(c, "--eval-out", str(c.data / "eval"))),
    case(
        "train-store-is-file",
        r"MLflow store .* is a file",
        train,
        lambda c: os.environ.__setitem__("MATCHWIJS_MLFLOW_DIR", str(c.params / "store")),
    ),
    case("generate-out-is-file", r"--out .*out exists and is not a folder", generate, lambda c: _write(c.out, "x")),
    case(
        "generate-truth-inside-out",
        r"must lie outside the dataset folder",
        lambda c: generate(c, "--truth", str(c.out / "truth")),
    ),
    case(
        "generate-truth-parent-file",
        r"--truth .*is a file, not a folder",
        lambda c: generate(c, "--truth", str(c.params / "t")),
    ),
]


def test_the_campaign_is_big_enough():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_named_error_with_no_side_effect(bad: Case, campaign_base, tmp_path, monkeypatch):
    root = tmp_path / "case"
    shutil.copytree(campaign_base, root, symlinks=True)
    monkeypatch.setenv("MATCHWIJS_MLFLOW_DIR", str(root / "store"))
    monkeypatch.setattr(load_module, "MAX_TABLE_BYTES", load_module.MAX_TABLE_BYTES)  # a case may lower it
    monkeypatch.chdir(root)
    ctx = Ctx(root)
    args = bad.setup(ctx)
    before = _snapshot(root)
    result = CliRunner().invoke(app, args)
    output = result.output
    assert result.exit_code == 1, output[-3000:]
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    assert len(output) < 20_000, "the message echoes too much"
    import re

    assert re.search(bad.expect, output), output[-3000:]
    assert _snapshot(root) == before  # nothing written, no output folder, the registry and store unchanged
