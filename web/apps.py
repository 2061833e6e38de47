"""App config of the meeting app."""

from django.apps import AppConfig


class WebConfig(AppConfig):
    """The meeting app."""

    name = "web"
    verbose_name = "matchwijs meeting app"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from web.roles import ensure_groups

        post_migrate.connect(ensure_groups, sender=self)
