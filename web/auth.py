"""The app's authentication backend: Django's ModelBackend with fewer queries per request.

ModelBackend loads a request's user, then (on the first permission check) the user's own permissions and
their groups' permissions in two more queries, and the page header lists the user's groups in a fourth;
the app reads the user's profile in a fifth. Here the user comes with their profile in one query, and
their own and their groups' permissions with the group names in one more, both plain SQL (the ORM's
compilation cost more than the queries). Nothing is cached beyond the request: a changed role or
profile counts from the next request, as with ModelBackend.
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection


class MeetingBackend(ModelBackend):
    """ModelBackend's rules (active users, superusers hold every permission) in fewer queries."""

    def get_user(self, user_id):
        from web.models import Profile

        p = Profile._meta
        columns = ", ".join(f"p.{f.column} AS profile_{f.attname}" for f in p.concrete_fields)
        found = list(
            User._default_manager.raw(
                f"SELECT u.*, {columns} FROM {User._meta.db_table} u "
                f"LEFT JOIN {p.db_table} p ON p.user_id = u.id WHERE u.id = %s",
                [user_id],
            )
        )
        if not found:
            return None
        user = found[0]
        if user.profile_id is not None:  # the profile's fields are plain text and ids: no conversion needed
            profile = Profile(**{f.attname: getattr(user, f"profile_{f.attname}") for f in p.concrete_fields})
            profile._state.adding, profile._state.db = False, user._state.db
            user.profile = profile
        return user if self.user_can_authenticate(user) else None

    def _get_permissions(self, user_obj, obj, from_name):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None or user_obj.is_superuser:
            return super()._get_permissions(user_obj, obj, from_name)
        if not hasattr(user_obj, f"_{from_name}_perm_cache"):
            _load_roles(user_obj)
        return getattr(user_obj, f"_{from_name}_perm_cache")


def _roles_sql() -> str:
    """The user's groups with their permissions, then the user's own permissions (table names from the models)."""
    t = {
        "ug": User.groups.through._meta.db_table,
        "g": Group._meta.db_table,
        "gp": Group.permissions.through._meta.db_table,
        "p": Permission._meta.db_table,
        "ct": ContentType._meta.db_table,
        "up": User.user_permissions.through._meta.db_table,
    }
    return (
        f"SELECT 'group', g.name, ct.app_label, p.codename FROM {t['ug']} ug "
        f"JOIN {t['g']} g ON g.id = ug.group_id "
        f"LEFT JOIN {t['gp']} gp ON gp.group_id = g.id "
        f"LEFT JOIN {t['p']} p ON p.id = gp.permission_id "
        f"LEFT JOIN {t['ct']} ct ON ct.id = p.content_type_id WHERE ug.user_id = %s "
        f"UNION ALL SELECT 'user', '', ct.app_label, p.codename FROM {t['up']} up "
        f"JOIN {t['p']} p ON p.id = up.permission_id "
        f"JOIN {t['ct']} ct ON ct.id = p.content_type_id WHERE up.user_id = %s"
    )


def _load_roles(user) -> None:
    """One query: the user's groups with their permissions, and the user's own permissions.

    Plain SQL: the ORM's compilation of this union cost more than all the page's other queries together.
    """
    names: set[str] = set()
    perms: dict[str, set[str]] = {"group": set(), "user": set()}
    with connection.cursor() as cursor:
        cursor.execute(_roles_sql(), [user.pk, user.pk])
        for source, name, app, codename in cursor.fetchall():
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
