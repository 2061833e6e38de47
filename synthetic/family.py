"""A family of synthetic worlds for judging model choices on worlds they were not tuned on (issue #13).

Each world is the project's generator (params.yaml `generate`) with a few knobs
turned: the size, and the truth knobs of `generate.truth.failure`
(`match_scale`: strength of the match signal; `latent_severity_sd`: a client
severity that affects outcomes but is not in the data; `isolation_big_complex`:
an interaction in the truth that no feature names). All family worlds have
`FAMILY_YEARS` years of meetings and `FAMILY_WEEKLY_VACANCIES` × size homes a
week (the demo: 5 years, 23 homes), and `HELD_OUT_WEEKS` weeks of truth.

    matchwijs generate --world weak_match_latent --out data/w5 --truth data/w5-truth
"""

from __future__ import annotations

import dataclasses
from typing import Any

from features.errors import UserError
from synthetic.generate import GenerateParams

FAMILY_YEARS = 5
FAMILY_WEEKLY_VACANCIES = 12.0
HELD_OUT_WEEKS = 26  # truth weeks of every family world (the demo: 52); bench_family tests on the same weeks

WORLDS: dict[str, dict[str, float]] = {
    "base": {},
    "small": {"size": 0.6},
    "weak_match": {"match_scale": 0.5},
    "latent_severity": {"latent_severity_sd": 1.0},
    "weak_match_latent": {"match_scale": 0.5, "latent_severity_sd": 1.2},
    "interaction": {"isolation_big_complex": 2.0},
    "interaction_latent": {"isolation_big_complex": 2.0, "latent_severity_sd": 1.0, "size": 0.6},
}


def world_params(cfg: GenerateParams, name: str, *, seed: int | None = None) -> GenerateParams:
    """The generator params of family world `name`: the demo world `cfg` with the world's knobs."""
    if name not in WORLDS:
        raise UserError(f"unknown world {name!r}; the family has: {', '.join(WORLDS)}")
    knobs = WORLDS[name]
    factor = float(knobs.get("size", 1.0)) * FAMILY_WEEKLY_VACANCIES / cfg.weekly_vacancies
    turned: dict[str, Any] = {k: v for k, v in knobs.items() if k != "size"}
    failure = dataclasses.replace(cfg.truth.failure, **turned)
    return dataclasses.replace(
        cfg,
        seed=cfg.seed if seed is None else seed,
        years=FAMILY_YEARS,
        weekly_vacancies=cfg.weekly_vacancies * factor,
        weekly_candidates=cfg.weekly_candidates * factor,
        initial_queue=int(round(cfg.initial_queue * factor)),
        truth_weeks=HELD_OUT_WEEKS,
        truth=dataclasses.replace(cfg.truth, failure=failure),
    )
