"""Test settings: the production module with test-only overrides (never used to serve)."""

import os

os.environ.setdefault("BAKKME_SECRET_KEY", "test-only-secret-key")

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405
