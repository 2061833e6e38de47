"""Admin: users and groups for the admin role; the decision log read-only (no add, change or delete)."""

from __future__ import annotations

from django.contrib import admin

from web.models import DecisionRecord, Meeting, Profile


@admin.register(DecisionRecord)
class DecisionRecordAdmin(admin.ModelAdmin):
    """The log can be viewed, never edited or deleted here (the database refuses it anyway)."""

    list_display = ("decided_at", "meeting", "dwelling_id", "decision", "reason", "client_id", "decided_by")
    list_filter = ("decision", "reason")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    """Language and care provider of each user."""

    list_display = ("user", "pseudonym", "lang", "care_provider")


@admin.register(Meeting)
class MeetingAdmin(admin.ModelAdmin):
    """Meetings loaded, read-only."""

    list_display = ("date", "model_version", "closed", "loaded_at")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
