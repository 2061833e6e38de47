"""The app's authentication backend: Django's ModelBackend with fewer queries per request.

ModelBackend loads a request's user, then (on the first permission check) the user's own permissions and
their groups' permissions in two more queries, and the page header lists the user's groups in a fourth;
the app reads the user's profile in a fifth. Here the user comes with their profile in one query, and
their own and their groups' permissions with the group names in one more. Nothing is cached beyond the
request: a changed role or profile counts from the next request, as with ModelBackend.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.db.models import CharField, Value


class MeetingBackend(ModelBackend):
    """ModelBackend's rules (active users, superusers hold every permission) in fewer queries."""

    def get_user(self, user_id):
        try:
            user = User._default_manager.select_related("profile").get(pk=user_id)
        except User.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None

    def _get_permissions(self, user_obj, obj, from_name):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None or user_obj.is_superuser:
            return super()._get_permissions(user_obj, obj, from_name)
        if not hasattr(user_obj, f"_{from_name}_perm_cache"):
            _load_roles(user_obj)
        return getattr(user_obj, f"_{from_name}_perm_cache")


def _load_roles(user) -> None:
    """One query: the user's groups with their permissions, and the user's own permissions."""
    groups = (
        Group.objects.filter(user=user)
        .order_by()
        .values_list(
            Value("group", output_field=CharField()),
            "name",
            "permissions__content_type__app_label",
            "permissions__codename",
        )
    )
    own = (
        Permission.objects.filter(user=user)
        .order_by()
        .values_list(
            Value("user", output_field=CharField()),
            Value("", output_field=CharField()),
            "content_type__app_label",
            "codename",
        )
    )
    names: set[str] = set()
    perms: dict[str, set[str]] = {"group": set(), "user": set()}
    for source, name, app, codename in groups.union(own, all=True):
        if source == "group":
            names.add(name)
        if codename:
            perms[source].add(f"{app}.{codename}")
    user._group_perm_cache, user._user_perm_cache = perms["group"], perms["user"]
    user._role_names = sorted(names)


def role_names(user) -> list[str]:
    """The names of the user's groups (roles), sorted; read with the permissions when they were checked."""
    if not user.is_authenticated:
        return []
    if not hasattr(user, "_role_names"):
        if user.is_superuser or not user.is_active:
            return sorted(user.groups.values_list("name", flat=True))
        _load_roles(user)
    return user._role_names
