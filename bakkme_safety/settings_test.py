"""Test settings: the production module with test-only overrides (never used to serve)."""

import os

os.environ.setdefault("BAKKME_SECRET_KEY", "test-only-secret-key")
# A fixed test-only master key (32 bytes of 0x01); tests that need another set their own.
os.environ.setdefault("BAKKME_EVIDENCE_KEY", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
# And a fixed test-only ledger key (32 bytes of 0x02).
os.environ.setdefault("BAKKME_LEDGER_KEY", "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=")

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    # The test runner empties tables with TRUNCATE between transactional tests: the ledgers'
    # BEFORE TRUNCATE triggers let it through when the session says so (evidence migration
    # 0006). Production connections never do.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (  # noqa: F405
        "-c bakkme.allow_ledger_truncate=on"
    )

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not the shared in-memory database: in-memory shared cache uses table locks that
    # ignore the busy timeout, so concurrent tests would see "table is locked" where the real
    # file-backed server waits for the other writer.
    # One file per test run, so that runs side by side do not share it.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")  # noqa: F405
    }
    (BASE_DIR / "var").mkdir(exist_ok=True)  # noqa: F405

# Built PDQ indexes: one directory per test run, so that runs side by side do not share them.
BAKKME_PDQ_INDEX_DIR = BASE_DIR / "var" / f"pdq-index-test-{os.getpid()}"  # noqa: F405

# The test client speaks plain http; production's https redirect is tested on its own
# (tests/test_hardening.py).
SECURE_SSL_REDIRECT = False
