"""`matchwijs recommend`: ranked, explained suggestions, a one-to-one plan and the meeting sheet for one meeting.

Wiring only: the suggestions are computed in memory by `reports.suggestions`
(eligibility, features, scores, TreeSHAP, reasons, the plan and the sheet); this
module reads the inputs, writes the five files into a temporary folder next to
OUT, and moves them into OUT only when all are complete. Libraries are imported
inside the command so that `matchwijs --help` and `validate` start fast (see
pipelines/cli.py for the measured cost).
"""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from features.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from models.bundle import ModelBundle
    from reports.suggestions import MeetingOutputs, RecommendConfig

OUTPUT_FILES = ("recommendations.csv", "explanations.csv", "assignment.csv", "excluded.csv", "meeting.html")
XLSX_FILE = "meeting.xlsx"  # with --xlsx


ERR_DATE_FORMAT = "--meeting {value!r} is not a date; expected YYYY-MM-DD"


ERR_OUT_IS_FILE = "--out {out} exists and is not a folder"


class Lang(enum.StrEnum):
    """Language of the reasons and the meeting sheet."""

    en = "en"
    nl = "nl"


def load_config(params_path: str | Path | None = None) -> RecommendConfig:
    """Read the params.yaml sections features, passend_toewijzen, eligibility, assignment, explain."""
    from features.config import load_params
    from reports.suggestions import RecommendConfig

    return RecommendConfig.from_params(load_params(params_path))


def parse_meeting_date(value: str) -> pd.Timestamp:
    """The meeting date from the command line, as a pandas Timestamp."""
    import pandas as pd

    try:
        return pd.Timestamp(dt.date.fromisoformat(value.strip()))
    except ValueError:
        raise UserError(ERR_DATE_FORMAT.format(value=value)) from None


def resolve_model(model: str | None, params_path: str | Path | None = None) -> ModelBundle:
    """The ModelBundle to use: a folder or registered version given with --model, else the default (champion) model."""
    from models.tracking import resolve_bundle

    return resolve_bundle(model, params_path=params_path)


def _warn_if_old(bundle: ModelBundle, meeting_date: pd.Timestamp, params_path: Path | None) -> None:
    """Warn (stderr) when the model is older at this meeting than params `deploy.max_model_age_days`."""
    from features.config import load_params
    from models.deploy import age_warning, deploy_params

    warning = age_warning(bundle.metadata or {}, meeting_date, deploy_params(load_params(params_path)))
    if warning:
        typer.echo(f"warning: {warning}", err=True)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    # pyarrow's writer is several times faster than pandas for the long explanations table
    # and writes floats in shortest round-trip form, so additivity survives the file.
    from features.outputs import write_csv

    write_csv(frame, path, fast=True)


def write_outputs(outputs: MeetingOutputs, out: str | Path, *, xlsx: bool = False) -> Path:
    """Write the five files into a temporary folder beside `out`, then swap it in (all or nothing).

    With `xlsx`, also `meeting.xlsx`: recommendations, assignment and excluded as sheets, every
    cell as text. Files in `out` that recommend does not write are kept.
    """
    from features.outputs import publishing, write_xlsx

    out = Path(out)
    with publishing(out, managed=(*OUTPUT_FILES, XLSX_FILE)) as tmp:
        if xlsx:
            sheets = {"recommendations": outputs.recommendations, "assignment": outputs.assignment}
            write_xlsx({**sheets, "excluded": outputs.excluded}, tmp / XLSX_FILE)
        _write_csv(outputs.recommendations, tmp / "recommendations.csv")
        _write_csv(outputs.explanations, tmp / "explanations.csv")
        _write_csv(outputs.assignment, tmp / "assignment.csv")
        _write_csv(outputs.excluded, tmp / "excluded.csv")
        (tmp / "meeting.html").write_text(outputs.html, encoding="utf-8")
    return out


def recommend(
    data: Path = typer.Option(..., "--data", help="Dataset folder that follows the data contract (see README)."),
    meeting: str = typer.Option(
        ..., "--meeting", help="Meeting date YYYY-MM-DD with vacancies and candidates in the dataset, or `latest`."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Folder for recommendations.csv, explanations.csv, assignment.csv, excluded.csv, meeting.html.",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model folder or registered version (default: the registered default model)."
    ),
    lang: Lang = typer.Option(Lang.en, "--lang", help="Language of reasons and the meeting sheet."),
    complex_cap: int | None = typer.Option(
        None,
        "--complex-cap",
        min=1,
        help="At most this many placements per building complex in the plan (default: params.yaml assignment.complex_cap).",
    ),
    params: Path | None = typer.Option(
        None, "--params", help="params.yaml to use (default: ./params.yaml, else the project's own)."
    ),
    xlsx: bool = typer.Option(
        False, "--xlsx", help="Also write meeting.xlsx (recommendations, assignment, excluded; every cell as text)."
    ),
    region: str | None = typer.Option(
        None,
        "--region",
        help="Only this regional meeting (data with a region column; default: every region at that date, "
        "each with its own plan).",
    ),
) -> None:
    """Rank the eligible candidates for every home at one meeting, explain each suggestion, propose a one-to-one plan."""
    from features.load import load_dataset
    from features.outputs import check_output_folder
    from reports.suggestions import check_meeting, latest_meeting, meeting_outputs

    check_output_folder(out)
    cfg = load_config(params)
    ds = load_dataset(data)
    if region is not None:
        ds = ds.for_region(region)
    meeting_date = latest_meeting(ds) if meeting.strip().lower() == "latest" else parse_meeting_date(meeting)
    check_meeting(ds, meeting_date)
    bundle = resolve_model(model, params)
    _warn_if_old(bundle, meeting_date, params)
    outputs = meeting_outputs(ds, meeting_date, bundle, cfg, lang=lang.value, complex_cap=complex_cap)
    for warning in outputs.warnings:
        typer.echo(f"warning: {warning}", err=True)
    write_outputs(outputs, out, xlsx=xlsx)
    typer.echo(f"{outputs.summary}; wrote {out}")
