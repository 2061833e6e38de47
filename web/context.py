"""Template context for every page: the user's roles for the header (read with their permissions, web.auth)."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from web.auth import role_names


def roles(request) -> dict:
    """`user_roles`: the logged-in user's group names, looked up only when a page shows them."""
    return {"user_roles": SimpleLazyObject(lambda: role_names(request.user))}
