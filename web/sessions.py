"""Sessions in the database, as Django's `db` engine, read with one plain SQL query.

The ORM's compilation of the session lookup cost more than the query itself on every request; the
lookup is the same (the key, and not expired), and writing, expiry and logout are Django's own.
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    """Django's database session store; only the read is plain SQL."""

    def _get_session_from_db(self):
        model = self.model
        alias = router.db_for_read(model)
        now = connections[alias].ops.adapt_datetimefield_value(timezone.now())
        found = list(
            model.objects.using(alias).raw(
                f"SELECT session_key, session_data, expire_date FROM {model._meta.db_table} "
                "WHERE session_key = %s AND expire_date > %s",
                [self.session_key, now],
            )
        )
        if not found:
            self._session_key = None
            return None
        return found[0]
