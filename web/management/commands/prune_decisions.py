"""`manage.py prune_decisions --before YYYY-MM-DD`: delete decision records older than the retention period."""

from django.core.management.base import BaseCommand, CommandError

from web.prune import PruneRefused, prune_decisions


class Command(BaseCommand):
    help = "Delete decision records decided before DATE; refuses any DATE within params app.retention_months."

    def add_arguments(self, parser):
        parser.add_argument("--before", required=True, help="YYYY-MM-DD")
        parser.add_argument("--params", default=None)

    def handle(self, *args, before, params=None, **options):
        try:
            n = prune_decisions(before, params_path=params)
        except PruneRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"pruned {n} decision records decided before {before}")
