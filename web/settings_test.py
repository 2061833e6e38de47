"""Settings for the test suite: a throwaway home folder, fast password hashing, in-memory SQLite or DATABASE_URL."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("MATCHWIJS_SECRET_KEY", "test-only-" + "k" * 60)
os.environ.setdefault("MATCHWIJS_HOME", tempfile.mkdtemp(prefix="matchwijs-test-"))

from web.settings import *  # noqa: F403
from web.settings import DATABASES

DATABASES["default"].pop("TEST", None)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
