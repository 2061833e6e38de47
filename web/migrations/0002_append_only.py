"""The decision log is append-only: the database refuses UPDATE and DELETE of its rows (SQLite and PostgreSQL)."""

from django.db import migrations

TABLE = "web_decisionrecord"
MESSAGE = "decision log is append-only"

SQLITE_CREATE = [
    f"CREATE TRIGGER decisionrecord_no_update BEFORE UPDATE ON {TABLE} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    f"CREATE TRIGGER decisionrecord_no_delete BEFORE DELETE ON {TABLE} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
]
SQLITE_DROP = ["DROP TRIGGER IF EXISTS decisionrecord_no_update", "DROP TRIGGER IF EXISTS decisionrecord_no_delete"]
POSTGRES_CREATE = [
    "CREATE OR REPLACE FUNCTION matchwijs_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$",
    f"CREATE TRIGGER decisionrecord_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION matchwijs_append_only()",
]
POSTGRES_DROP = [
    f"DROP TRIGGER IF EXISTS decisionrecord_append_only ON {TABLE}",
]


def statements(vendor: str, create: bool) -> list[str]:
    """The trigger statements for a database vendor (the prune command drops and recreates them)."""
    if vendor == "postgresql":
        return POSTGRES_CREATE if create else POSTGRES_DROP
    if vendor == "sqlite":
        return SQLITE_CREATE if create else SQLITE_DROP
    raise RuntimeError(f"append-only triggers are defined for SQLite and PostgreSQL, not {vendor}")


def _run(create: bool):
    def run(apps, schema_editor):
        for sql in statements(schema_editor.connection.vendor, create):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("web", "0001_initial")]
    operations = [migrations.RunPython(_run(True), _run(False))]
