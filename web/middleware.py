"""A Content-Security-Policy and Permissions-Policy on every response (no inline scripts; htmx is a static file)."""

from __future__ import annotations

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


class SecurityHeadersMiddleware:
    """Adds the security headers Django's SecurityMiddleware does not set."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CSP)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.setdefault("Cache-Control", "no-store")
        return response


class UserLanguageMiddleware:
    """Screen labels in the logged-in user's language (Profile.lang: en or nl); English before login."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.utils import translation

        from web.models import profile_of

        lang = "en"
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            lang = profile_of(user).lang
        translation.activate(lang)
        request.LANGUAGE_CODE = lang
        response = self.get_response(request)
        response.setdefault("Content-Language", lang)
        translation.deactivate()
        return response
