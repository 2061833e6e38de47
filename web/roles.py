"""The five roles as Django groups with their permissions (created after every migrate; idempotent)."""

from __future__ import annotations

ROLES: dict[str, tuple[str, ...]] = {
    "chair": ("web.view_agenda", "web.decide", "web.add_meeting_note", "web.view_decision_log"),
    "member": ("web.view_agenda", "web.add_meeting_note", "web.view_client_profile"),
    "analyst": ("web.view_agenda", "web.view_model_info", "web.switch_dataset"),
    "auditor": (
        "web.view_agenda",
        "web.view_decision_log",
        "web.view_audit",
        "web.view_group_figures",
        "web.view_model_info",
        "web.view_decisionrecord",
    ),
    "admin": (
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        "web.view_profile",
        "web.change_profile",
        "web.switch_dataset",
    ),
}


def ensure_groups(**_kwargs) -> None:
    """Create the role groups and give each exactly its permissions."""
    from django.contrib.auth.models import Group, Permission

    for role, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)
