"""Pruning the decision log after its retention period: the only way records leave it."""

from __future__ import annotations

import datetime as dt
import importlib

from django.db import connection, transaction
from django.utils import timezone

from web.models import CurrentDecision, DecisionRecord
from web.params import app_params


class PruneRefused(Exception):
    """A prune that would remove records younger than the retention period."""


def _months_ago(today: dt.date, months: int) -> dt.date:
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    return dt.date(year, month + 1, min(today.day, 28))


def without_log_guard(cursor, sql: str, params=()) -> None:
    """Run one statement on the log with its append-only triggers lifted (inside the caller's transaction)."""
    triggers = importlib.import_module("web.migrations.0002_append_only")
    for statement in triggers.statements(connection.vendor, create=False):
        cursor.execute(statement)
    cursor.execute(sql, params)
    for statement in triggers.statements(connection.vendor, create=True):
        cursor.execute(statement)


def prune_decisions(before: str, *, params_path: str | None = None, today: dt.date | None = None) -> int:
    """Delete records decided before `before` (and the current decisions pointing at them), in one transaction.

    Raises:
        PruneRefused: `before` is not a date or lies within the retention period.
    """
    try:
        cutoff = dt.date.fromisoformat(before)
    except ValueError:
        raise PruneRefused(f"--before {before!r} is not a date; expected YYYY-MM-DD") from None
    months = app_params(params_path).retention_months
    limit = _months_ago(today or timezone.localdate(), months)
    if cutoff > limit:
        raise PruneRefused(
            f"refusing to prune records decided before {cutoff}: records are kept {months} months "
            f"(params app.retention_months), so the latest allowed date is {limit}"
        )
    start = dt.datetime.combine(cutoff, dt.time.min, tzinfo=dt.UTC)
    with transaction.atomic(), connection.cursor() as cur:
        old = DecisionRecord.objects.filter(decided_at__lt=start)
        ids = list(old.values_list("id", flat=True))
        if not ids:
            return 0
        CurrentDecision.objects.filter(record_id__in=ids).delete()
        without_log_guard(cur, f"DELETE FROM {DecisionRecord._meta.db_table} WHERE decided_at < %s", [start])
    return len(ids)
