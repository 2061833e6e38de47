"""`matchwijs decisions export`: the app's decision log as contract tables (decisions.csv, placements.csv)."""

from __future__ import annotations

import os
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
    from features.outputs import check_output_folder
    from pipelines.serve import setup_django

    check_output_folder(out, "--out")
    setup_django(params)
    from django.db.utils import OperationalError

    from features.decisions import decisions_to_contract, write_export
    from web.export import record_dict
    from web.models import DecisionRecord
    from web.params import app_params

    cfg = app_params(os.environ.get("MATCHWIJS_PARAMS"))
    try:
        records = [record_dict(r) for r in DecisionRecord.objects.select_related("meeting").all()]
    except OperationalError as exc:
        raise UserError(f"no decision log to export ({exc}); start the app once with `matchwijs serve`") from None
    export = decisions_to_contract(records, tenancy_lag_days=cfg.tenancy_start_after_days)
    write_export(export, out)
    typer.echo(
        f"wrote {len(export.decisions)} decision records and {len(export.placements)} placements to {out}"
        + (f"; {len(export.pending)} placing decisions wait for a tenancy start" if len(export.pending) else "")
    )
