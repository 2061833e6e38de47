"""`matchwijs decisions export`: the app's decision log as contract tables (decisions.csv, placements.csv)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import typer

from features.errors import UserError

app = typer.Typer(no_args_is_help=True, help="The meeting's decision log.")


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", help="Folder for decisions.csv and placements.csv."),
    params: Path | None = typer.Option(None, "--params", help="params.yaml to use (default: ./params.yaml)."),
) -> None:
    """Write every decision record (decisions.csv) and the placements the decisions in force imply (placements.csv)."""
    from pipelines.serve import setup_django

    setup_django(params)
    from django.db.utils import OperationalError

    from web.export import contract_rows, record_dict
    from web.models import DecisionRecord
    from web.params import app_params

    cfg = app_params(os.environ.get("MATCHWIJS_PARAMS"))
    try:
        records = [record_dict(r) for r in DecisionRecord.objects.select_related("meeting").all()]
    except OperationalError as exc:
        raise UserError(f"no decision log to export ({exc}); start the app once with `matchwijs serve`") from None
    decisions, placements = contract_rows(records, tenancy_start_after_days=cfg.tenancy_start_after_days)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".decisions-", dir=out))
    try:
        decisions.to_csv(tmp / "decisions.csv", index=False)
        placements.to_csv(tmp / "placements.csv", index=False)
        for name in ("decisions.csv", "placements.csv"):
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    typer.echo(f"wrote {len(decisions)} decision records and {len(placements)} placements to {out}")
