"""WSGI entry point for gunicorn; loads the dataset and model once (with --preload: once for all workers)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
application = get_wsgi_application()

if os.environ.get("MATCHWIJS_DATA"):
    from web.state import warm

    warm()
