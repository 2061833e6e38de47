"""The `app` section of params.yaml: decision log retention and exported placements."""

from __future__ import annotations

from dataclasses import dataclass

from features.config import ConfigError, load_params, section

MIN_RETENTION_MONTHS = 6


@dataclass(frozen=True)
class AppParams:
    """retention_months: the log keeps records at least this long (≥ 6); tenancy_start_after_days: see export."""

    retention_months: int = 6
    tenancy_start_after_days: int | None = 28

    def __post_init__(self) -> None:
        if not isinstance(self.retention_months, int) or self.retention_months < MIN_RETENTION_MONTHS:
            raise ConfigError(
                f"params: app.retention_months is {self.retention_months!r}; expected a whole number ≥ {MIN_RETENTION_MONTHS}"
            )


def app_params(params_path: str | None = None) -> AppParams:
    """The app section of the params file in use."""
    return section(load_params(params_path), "app", AppParams)
