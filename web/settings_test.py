"""Settings for the test suite: a throwaway home folder, fast password hashing, a file SQLite database or DATABASE_URL."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("MATCHWIJS_SECRET_KEY", "test-only-" + "k" * 60)
os.environ.setdefault("MATCHWIJS_HOME", tempfile.mkdtemp(prefix="matchwijs-test-"))

from web.settings import *  # noqa: F403
from web.settings import DATABASES, HOME

# SQLite: a test database file in the throwaway home (not in memory), so the concurrency tests run
# real threads against a real file with the app's locking settings (WAL, immediate transactions).
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": str(HOME / "test_matchwijs.sqlite3")}
else:
    DATABASES["default"].pop("TEST", None)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
