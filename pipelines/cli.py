"""The `matchwijs` command line: thin wrappers that read files and params, call the libraries, write outputs.

Heavy libraries are imported inside the commands so that `matchwijs --help` and
`validate` start fast.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import typer

from features.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="matchwijs: ranked, explained suggestions for the weekly matching meeting. People decide; matchwijs suggests and explains.",
)

DataOpt = typer.Option(..., "--data", help="Dataset folder that follows the data contract (see README).")
ParamsOpt = typer.Option(None, "--params", help="params.yaml to use (default: ./params.yaml, else the project's own).")


def _echo_err(text: str) -> None:
    typer.echo(text, err=True)


def report_user_error(exc: UserError) -> None:
    """Print a user error (every data problem listed) to stderr, without a traceback."""
    problems = getattr(exc, "problems", None)
    if problems:
        _echo_err(f"error: {len(problems)} problem{'s' if len(problems) != 1 else ''} with the input data:")
        for problem in problems:
            _echo_err(f"  - {problem}")
    else:
        _echo_err(f"error: {exc}")


def user_errors(func):
    """Command decorator: a UserError becomes a message on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            report_user_error(exc)
            raise typer.Exit(1) from None
        except OSError as exc:
            # The file system refused (read-only, disk full, permissions): a problem for the
            # user to fix, named by its path. Outputs are published all-or-nothing, so nothing is half-written.
            if exc.filename is None:
                raise
            where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
            _echo_err(f"error: cannot write or read {where}: {exc.strerror or exc}")
            raise typer.Exit(1) from None

    return wrapper


@app.command()
def validate(data: Path = DataOpt) -> None:
    """Check a dataset folder against the contract; list every problem (exit 1) or summarise it (exit 0)."""
    from features.load import DataError, load_dataset

    try:
        ds = load_dataset(data)
    except DataError as exc:
        _echo_err(f"{data}: {len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''} with the data contract:")
        for problem in exc.problems:
            _echo_err(f"  - {problem}")
        raise typer.Exit(1) from None
    typer.echo(f"OK {ds.summary()}")


@app.command()
@user_errors
def generate(
    out: Path = typer.Option(..., "--out", help="Folder to write the synthetic dataset to (replaced if it exists)."),
    seed: int = typer.Option(None, "--seed", help="Random seed (default: params.yaml generate.seed)."),
    years: float | None = typer.Option(None, "--years", help="Years of weekly meetings (default: params.yaml)."),
    weekly_vacancies: float | None = typer.Option(None, "--weekly-vacancies", help="Mean vacancies per meeting."),
    weekly_candidates: float | None = typer.Option(None, "--weekly-candidates", help="Mean new candidates per week."),
    truth: Path | None = typer.Option(
        None, "--truth", help="Also write the generator's ground truth to this folder (kept out of the dataset)."
    ),
    decisions: bool = typer.Option(
        False,
        "--decisions",
        help="Also write a made-up decision log of the meetings (decisions.csv; params.yaml synthetic_decisions).",
    ),
    regions: int = typer.Option(
        1,
        "--regions",
        min=1,
        help="Regional meetings to simulate (more than 1: a region column, one world per region, ids prefixed R01-...).",
    ),
    world: str | None = typer.Option(
        None, "--world", help="A world of the model-choice family (synthetic/family.py), e.g. weak_match_latent."
    ),
    params: Path | None = ParamsOpt,
) -> None:
    """Write a synthetic Amsterdam dataset that follows the contract (and, optionally, its ground truth)."""
    import dataclasses

    from features.config import load_params, section
    from synthetic.decisions import DecisionParams
    from synthetic.generate import GenerateParams, generate_dataset

    loaded = load_params(params)
    cfg = section(loaded, "generate", GenerateParams)
    if world is not None:
        from synthetic.family import world_params

        cfg = world_params(cfg, world)
    log = section(loaded, "synthetic_decisions", DecisionParams) if decisions else None
    overrides = {
        k: v
        for k, v in dict(
            seed=seed, years=years, weekly_vacancies=weekly_vacancies, weekly_candidates=weekly_candidates
        ).items()
        if v is not None
    }
    cfg = dataclasses.replace(cfg, **overrides)
    if regions > 1:
        from synthetic.regions import generate_regions

        summary = generate_regions(
            out, cfg, regions, truth_dir=truth, decisions=log, progress=lambda msg: _echo_err(f"generate: {msg}")
        )
    else:
        summary = generate_dataset(
            out, cfg, truth_dir=truth, progress=lambda msg: _echo_err(f"generate: {msg}"), decisions=log
        )
    typer.echo(summary)


# Commands that live in their own modules register here (each module imports its heavy
# libraries inside the command function, so the CLI starts fast).
def _register() -> None:
    import importlib

    for module, name in (
        ("pipelines.train", "train"),
        ("pipelines.recommend", "recommend"),
        ("pipelines.audit", "audit"),
        ("pipelines.serve", "serve"),
        ("pipelines.policies", "policies"),
    ):
        mod = importlib.import_module(module)
        app.command(name)(user_errors(getattr(mod, name)))
    decisions = importlib.import_module("pipelines.decisions")
    for command in decisions.app.registered_commands:
        command.callback = user_errors(command.callback)
    app.add_typer(decisions.app, name="decisions")


_register()


def main() -> None:
    """Console entry point: user errors become a message and a non-zero exit, never a traceback."""
    try:
        app()
    except UserError as exc:  # raised outside a command (e.g. while registering)
        report_user_error(exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
