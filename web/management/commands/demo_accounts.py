"""`manage.py demo_accounts`: one account per role with a random password, printed once."""

from django.core.management.base import BaseCommand

from web.meetings import demo_accounts
from web.state import get_state


class Command(BaseCommand):
    help = "Create demo-chair, demo-member, demo-analyst, demo-auditor, demo-admin (random passwords, printed once)."

    def handle(self, *args, **options):
        created = demo_accounts(get_state())
        if not created:
            self.stdout.write("demo accounts exist already (their passwords were printed when they were made)")
        for username, role, password in created:
            self.stdout.write(f"  {role:8s} user {username:13s} password {password}")
