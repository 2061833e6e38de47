"""`manage.py load_meeting [DATE|latest]`: register a meeting of the served dataset in the app."""

from django.core.management.base import BaseCommand

from web.meetings import load_meeting
from web.state import get_state


class Command(BaseCommand):
    help = "Load a meeting (default: the latest) of the dataset in MATCHWIJS_DATA into the app."

    def add_arguments(self, parser):
        parser.add_argument("date", nargs="?", default="latest")

    def handle(self, *args, date="latest", **options):
        meeting = load_meeting(get_state(), date)
        self.stdout.write(f"meeting {meeting} loaded ({meeting.model_version})")
