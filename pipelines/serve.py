"""`matchwijs serve`: migrate, load the dataset and model once, register the latest meeting, serve with gunicorn.

The dataset and model are loaded in this process before gunicorn forks its workers (preload), so every
worker shares them and none reloads them per request.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer


def setup_django(params: Path | None = None) -> None:
    """Point Django at the app's settings and initialise it (idempotent)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    if params is not None:
        os.environ["MATCHWIJS_PARAMS"] = str(params.resolve())
    import django

    django.setup()


def serve(
    data: Path = typer.Option(..., "--data", help="Dataset folder that follows the data contract (see README)."),
    model: str | None = typer.Option(
        None, "--model", help="Model folder or registered version (default: the registered default model)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(
        2, "--workers", min=1, help="gunicorn worker processes (each shares the loaded model)."
    ),
    demo_accounts: bool = typer.Option(
        False, "--demo-accounts", help="Create one account per role with a random password, printed once."
    ),
    prepare_only: bool = typer.Option(
        False, "--prepare-only", help="Migrate, load the latest meeting (and demo accounts), then exit without serving."
    ),
    params: Path | None = typer.Option(None, "--params", help="params.yaml to use (default: ./params.yaml)."),
) -> None:
    """The meeting app: login, the meeting's suggestions, decisions and their log (http://HOST:PORT/)."""
    os.environ["MATCHWIJS_DATA"] = str(data.resolve())
    if model:
        os.environ["MATCHWIJS_MODEL"] = str(Path(model).resolve()) if Path(model).exists() else model
    setup_django(params)
    from django.core.management import call_command

    from web.datasets import record_served
    from web.meetings import demo_accounts as make_accounts
    from web.meetings import load_meetings
    from web.state import build_state, set_state

    state = build_state(str(data.resolve()), os.environ.get("MATCHWIJS_MODEL"), os.environ.get("MATCHWIJS_PARAMS"))
    call_command("migrate", verbosity=0, interactive=False)
    meetings = load_meetings(state, "latest")  # one per region on the latest date
    set_state(state, switch_id=record_served(state))
    for meeting in meetings:
        typer.echo(f"meeting {meeting} loaded: {state.outputs(state.latest(), 'en', meeting.region).summary}")
    if demo_accounts:
        created = make_accounts(state)
        if not created:
            typer.echo("demo accounts exist already (passwords were printed when they were made)")
        for username, role, password in created:
            typer.echo(f"  {role:8s} user {username:13s} password {password}")
        if created:
            typer.echo("These passwords are shown only now: write them down.")
    if prepare_only:
        return
    _run_gunicorn(host, port, workers)


def _run_gunicorn(host: str, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    from web.wsgi import application

    class App(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": 4,
                "preload_app": True,
                "timeout": 60,
                "accesslog": "-",
            }.items():
                self.cfg.set(key, value)

        def load(self):
            return application

    typer.echo(f"serving the meeting app on http://{host}:{port}/ (Ctrl+C stops)")
    App().run()
