"""Settings for the BakkMe Safety back office.

One env-driven module. The embedded defaults (SQLite, django-q2's ORM broker) need no
configuration; `DATABASE_URL=postgres://...` switches to PostgreSQL. Every policy number lives
here (the `BAKKME_*` settings) and is read through `bakkme_safety.policy`.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.core.exceptions import ImproperlyConfigured

from core.keys import decode_master_key

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("BAKKME_DEBUG")

SECRET_KEY = os.environ.get("BAKKME_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "BAKKME_SECRET_KEY is not set. Set it, or BAKKME_DEBUG=1 for a local run."
        )
    SECRET_KEY = "insecure-local-development-key-never-use-in-production"

ALLOWED_HOSTS = [
    h for h in os.environ.get("BAKKME_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h
]

INSTALLED_APPS = [
    # django.contrib.admin, with an admin site that requires a verified second factor.
    "bakkme_safety.admin_config.BakkmeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "simple_history",
    "django_q",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "csp",
    "core",
    "bakkme_safety",
    "deliveries",
    "reports",
    "detection",
    "cases",
    "staff",
    "evidence",
    "legal",
    "oversight",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "staff.sessions.SessionLimitMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "staff.sessions.VerifiedFactorMiddleware",
    "staff.middleware.StaffComplianceMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "bakkme_safety.urls"
WSGI_APPLICATION = "bakkme_safety.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "staff.context_processors.staff_bar",
            ],
        },
    },
]

# Seconds a process keeps its database connection between requests (persistent connections).
# 60 for gunicorn and the workers; `make run` starts runserver with 0: runserver opens a
# connection in each of its request threads, and kept open they pile up to the server's limit.
BAKKME_DB_CONN_MAX_AGE = int(os.environ.get("BAKKME_DB_CONN_MAX_AGE", "60"))
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}",
        conn_max_age=BAKKME_DB_CONN_MAX_AGE,
        # A kept connection is checked before a request reuses it: one the database dropped
        # (restart, failover, idle timeout) is replaced instead of failing that request.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker share the file: wait for the other's write lock.
    # IMMEDIATE takes the write lock when a transaction starts, so two claims or intakes are
    # serialised instead of failing on a lock upgrade (SQLite has no SELECT ... FOR UPDATE).
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username and address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# A staff-only tool: no anonymous user row.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "admin:login"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["reports.api.authentication.IntegrationTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["reports.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "reports.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "BakkMe Safety intake API",
    "DESCRIPTION": "Reports, detections and account events from the BakkMe platform.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Assets come from drf-spectacular-sidecar's static files: the back office runs on a
    # closed network, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Staff read the docs with their admin session; the platform's engineers with their token.
    "SERVE_AUTHENTICATION": [
        "reports.api.authentication.IntegrationTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "SERVE_PERMISSIONS": ["reports.api.permissions.IsIntegrationOrStaff"],
}

# --- Task queue (django-q2) --------------------------------------------------------------------
Q_CLUSTER = {
    "name": "bakkme",
    "orm": "default",
    "workers": int(os.environ.get("BAKKME_Q_WORKERS", "2")),
    "timeout": 120,
    "retry": 300,  # larger than timeout: a running task is not delivered again
    "max_attempts": 5,
    "ack_failures": True,
    "catch_up": False,
}

# --- The policy (Child Safety Standards). Read through bakkme_safety.policy. -------------------
# SLA to first action, per priority, in hours (DESIGN.md, priority table).
BAKKME_SLA_HOURS = {"P0": 1, "P1": 24, "P2": 48, "P3": 72}
# Report category -> priority. Child-safety work always sorts above other work.
BAKKME_CATEGORY_PRIORITY = {
    "imminent_danger": "P0",
    "csam": "P1",
    "ai_generated_csae": "P1",
    "grooming": "P1",
    "sextortion": "P1",
    "solicitation_of_minor": "P1",
    "exploitation_trafficking": "P1",
    "sexualizing_minors": "P1",
    "age_restricted_feature": "P1",
    "other_child_safety": "P1",
    "underage_user": "P2",
    "other": "P3",
}
# A live stream with a minor in an unsafe context is imminent danger (P0).
BAKKME_LIVE_STREAM_P0_CATEGORIES = [
    "csam",
    "ai_generated_csae",
    "grooming",
    "sextortion",
    "solicitation_of_minor",
    "exploitation_trafficking",
    "sexualizing_minors",
]
# Decision violation -> enforcement actions (Child Safety Standards §6.2).
BAKKME_VIOLATION_ACTIONS = {
    "csam_distribution": {
        "actions": ["remove_content", "permanent_ban", "ncmec_report", "law_enforcement_referral"]
    },
    "csam_possession": {
        "actions": ["remove_content", "permanent_ban", "ncmec_report", "law_enforcement_referral"]
    },
    "solicitation_of_minor": {
        "actions": ["remove_content", "permanent_ban", "ncmec_report", "law_enforcement_referral"]
    },
    "ai_generated_csae": {
        "actions": ["remove_content", "permanent_ban", "ncmec_report", "law_enforcement_referral"]
    },
    "grooming": {
        "actions": ["remove_content", "permanent_ban", "law_enforcement_referral"],
        # Enticement (18 U.S.C. 2422(b)) is also reported to NCMEC.
        "enticement": ["ncmec_report"],
    },
    "exploitation_facilitation": {
        "actions": ["remove_content", "permanent_ban", "law_enforcement_referral"],
        "enticement": ["ncmec_report"],
    },
    "sexualizing_minors": {
        "actions": ["remove_content"],
        "severity": {"low": ["warn"], "high": ["permanent_ban"]},
    },
    "underage_user": {"actions": ["suspend_account", "delete_account_data"]},
    "age_restricted_feature": {"actions": ["restrict_feature"]},
    "no_violation": {"actions": []},
}
# An unattended claim on a case expires after this many minutes.
BAKKME_CLAIM_TIMEOUT_MINUTES = int(os.environ.get("BAKKME_CLAIM_TIMEOUT_MINUTES", "30"))
# SLA colours in the queue: amber from the first fraction of the window, red from the second.
BAKKME_SLA_WARNING_FRACTIONS = [0.5, 0.8]
# The SLA sweep runs this often (django-q2 schedule "sla-sweep").
BAKKME_SLA_SWEEP_MINUTES = 1
# The P0 emergency protocol's checklist: (item, label), ticked on the case page.
BAKKME_EMERGENCY_CHECKLIST = [
    ("contact_law_enforcement", "Contact law enforcement"),
    ("remove_content", "Remove the content"),
    ("preserve_evidence", "Preserve the evidence"),
]
# Notification e-mails: retried after 1, 2, 4 ... minutes (at most 60), then given up.
BAKKME_NOTIFY_EMAIL_RETRY_MINUTES = 1
BAKKME_NOTIFY_EMAIL_MAX_ATTEMPTS = 10
# A platform clock slightly ahead of ours is tolerated this many seconds.
BAKKME_RECEIVED_AT_MAX_SKEW_SECONDS = 60

# --- Mail and links -----------------------------------------------------------------------------
BAKKME_BASE_URL = os.environ.get("BAKKME_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
DEFAULT_FROM_EMAIL = os.environ.get("BAKKME_FROM_EMAIL", "safety-backoffice@bakkme.example")
EMAIL_BACKEND = os.environ.get(
    "BAKKME_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("BAKKME_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("BAKKME_EMAIL_PORT", "25"))
EMAIL_TIMEOUT = 10

# --- API limits ---------------------------------------------------------------------------------
BAKKME_API_MAX_BODY_BYTES = 1024 * 1024
BAKKME_API_MAX_BATCH_BODY_BYTES = 8 * 1024 * 1024
BAKKME_API_BATCH_MAX_REPORTS = 500
# The deepest JSON nesting the API takes. Its deepest payload is 4 levels (a batch, its list, a
# report, its reported_account); far deeper nesting is an attack on the recursion of Python's
# json and the serializers, refused with 400 "not valid JSON".
BAKKME_API_MAX_JSON_DEPTH = 16
# The oldest platform date the API takes (received_at, occurred_at, an account's created_at):
# year 0001 or 1970 is a platform's bug, and an old received_at would breach the case's SLA at once.
BAKKME_API_MAX_PAST_DAYS = 3650
# A date of birth further back than this is not one (the events' `age` stops at 150 too).
BAKKME_API_MAX_PERSON_AGE_YEARS = 150
# Django's own cap must not cut the batch body short before the API answers 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = BAKKME_API_MAX_BATCH_BODY_BYTES + 1
# The CyberTipline draft form sends about seven fields per evidence file (legal/forms.py): a
# case with a few hundred files is past Django's default of 1000 fields per request.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10000

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BAKKME_LOG_LEVEL", "INFO")},
}

# --- The evidence vault -------------------------------------------------------------------------
# The master key that wraps every item's data key: 32 random bytes, URL-safe base64. Required:
# `make run` writes a local one to var/evidence.key; production sets its own. Old keys stay
# listed (comma-separated) while `manage.py rotate_evidence_key` re-wraps the data keys.
BAKKME_EVIDENCE_KEY = os.environ.get("BAKKME_EVIDENCE_KEY", "")
BAKKME_EVIDENCE_OLD_KEYS = [
    k for k in os.environ.get("BAKKME_EVIDENCE_OLD_KEYS", "").split(",") if k.strip()
]
if BAKKME_EVIDENCE_KEY:
    decode_master_key(BAKKME_EVIDENCE_KEY)  # a malformed key stops the start, never later
elif not DEBUG:
    raise ImproperlyConfigured(
        "BAKKME_EVIDENCE_KEY is not set: evidence cannot be stored or read. Generate one with "
        '`python -c "import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"`.'
    )
for _old_key in BAKKME_EVIDENCE_OLD_KEYS:
    decode_master_key(_old_key, "BAKKME_EVIDENCE_OLD_KEYS")
# The ledger key: the MACs of the custody ledger and the audit trail and of their signed
# checkpoints (bakkme_safety/ledger.py). Its own secret, never in the database: 32 random bytes,
# URL-safe base64. Required: `make run` writes a local one to var/ledger.key. After a rotation
# the old keys stay listed (comma-separated) for as long as the links they made are checked.
BAKKME_LEDGER_KEY = os.environ.get("BAKKME_LEDGER_KEY", "")
BAKKME_LEDGER_OLD_KEYS = [
    k for k in os.environ.get("BAKKME_LEDGER_OLD_KEYS", "").split(",") if k.strip()
]
if BAKKME_LEDGER_KEY:
    decode_master_key(BAKKME_LEDGER_KEY, "BAKKME_LEDGER_KEY")
elif not DEBUG:
    raise ImproperlyConfigured(
        "BAKKME_LEDGER_KEY is not set: the custody ledger and the audit trail cannot be "
        "written. Generate one like BAKKME_EVIDENCE_KEY (32 random bytes, URL-safe base64)."
    )
for _old_key in BAKKME_LEDGER_OLD_KEYS:
    decode_master_key(_old_key, "BAKKME_LEDGER_OLD_KEYS")
# A signed checkpoint of both ledgers' heads goes to evidence storage this often (minutes),
# when they moved: events after the latest checkpoint are the ones a cut could remove unseen.
BAKKME_LEDGER_CHECKPOINT_MINUTES = int(os.environ.get("BAKKME_LEDGER_CHECKPOINT_MINUTES", "10"))
# A private folder, never under MEDIA_ROOT and never served; or S3-compatible object storage.
BAKKME_EVIDENCE_ROOT = Path(os.environ.get("BAKKME_EVIDENCE_ROOT", BASE_DIR / "var" / "evidence"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "evidence": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": BAKKME_EVIDENCE_ROOT,
            "base_url": "/no-public-url/",
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    },
}
if os.environ.get("BAKKME_EVIDENCE_S3_BUCKET"):
    STORAGES["evidence"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["BAKKME_EVIDENCE_S3_BUCKET"],
            "endpoint_url": os.environ.get("BAKKME_EVIDENCE_S3_ENDPOINT") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
# Largest item accepted (bytes); uploads are streamed, never held whole in memory.
BAKKME_EVIDENCE_MAX_BYTES = int(os.environ.get("BAKKME_EVIDENCE_MAX_BYTES", 2 * 1024**3))
# Images up to this size are decoded at collection (PDQ, EXIF) and for previews.
BAKKME_EVIDENCE_ANALYSE_MAX_BYTES = 64 * 1024 * 1024
# Pillow's decompression-bomb limit: larger images are preserved, flagged and not decoded.
BAKKME_IMAGE_MAX_PIXELS = 50_000_000
# Reviewer-safe previews: organisation defaults; each reviewer may choose their own.
BAKKME_PREVIEW_MAX_SIDE = 480
BAKKME_PREVIEW_BLUR_RADIUS = 12
BAKKME_PREVIEW_GREYSCALE = True
# The strongest blur a reviewer may choose for their own previews (0 = sharp).
BAKKME_PREVIEW_MAX_BLUR_RADIUS = 50
# Uploads (admin form, platform API): room for the multipart envelope and the form's other
# fields; a declared length beyond BAKKME_EVIDENCE_MAX_BYTES plus this is refused unread.
BAKKME_EVIDENCE_UPLOAD_ENVELOPE_BYTES = 64 * 1024
# Retention: days after collection per kind, unless held; items of a case closed with no
# violation go this many days after it was decided.
BAKKME_EVIDENCE_RETENTION_DAYS = {
    "media": 365,
    "communication_log": 365,
    "account_snapshot": 365,
    "metadata": 365,
}
BAKKME_EVIDENCE_NO_VIOLATION_RETENTION_DAYS = 90
# A filed CyberTipline report holds its contents this long (18 U.S.C. 2258A(h)).
BAKKME_NCMEC_HOLD_DAYS = 365
# Evidence packages: the download link expires after this many hours.
BAKKME_PACKAGE_LINK_HOURS = 24
BAKKME_EVIDENCE_ORGANIZATION = os.environ.get("BAKKME_EVIDENCE_ORGANIZATION", "BakkMe Safety")
# Building a package may take longer than Q_CLUSTER's timeout: its task has this one (seconds).
# A delivery again meanwhile (Q_CLUSTER retry) finds the build's lease live and does nothing.
BAKKME_PACKAGE_BUILD_TIMEOUT = 3600
# A build holds a lease on its package for this long (seconds), renewed with its progress and at
# least every third of it. A build whose lease ran out is dead (its worker was killed or its
# machine stopped): the task delivered again builds it again, or the sweep marks it failed.
BAKKME_PACKAGE_LEASE_SECONDS = int(os.environ.get("BAKKME_PACKAGE_LEASE_SECONDS", "120"))
# The sweep for dead builds runs this often (minutes); it fails a build whose lease ran out
# more than Q_CLUSTER's retry ago (so a delivery again could take it over first).
BAKKME_PACKAGE_SWEEP_MINUTES = 5
# Where a package is built: a private work folder (bakkme-package-<id>-<lease>) that only ever
# holds the encrypted zip as it is written, removed afterwards, and swept at each worker's start
# when no live build uses it; verify_package extracts a zip it checks here too. Needs room for
# the largest package. Empty: the system's temporary folder.
BAKKME_PACKAGE_TEMP_DIR = os.environ.get("BAKKME_PACKAGE_TEMP_DIR") or None
# The package page reloads itself this often (seconds) while the package is being built.
BAKKME_PACKAGE_REFRESH_SECONDS = 5
# bagit logs every file it moves and hashes at INFO: evidence file names stay out of the logs.
LOGGING.setdefault("loggers", {})["bagit"] = {"level": "WARNING"}

# --- Staff compliance ---------------------------------------------------------------------------
# Child Safety Standards: the CSAE queue (child-safety cases, their evidence) needs a current CSAE
# training and an enhanced background check cleared (staff/compliance.py). Dates are days (UTC).
# CSAE training is valid this many days (about 6 months): trained on day D, it expires on D + 182.
BAKKME_CSAE_TRAINING_VALID_DAYS = int(os.environ.get("BAKKME_CSAE_TRAINING_VALID_DAYS", "182"))
# The general child-safety training is annual (tracked and warned about; not a queue gate).
BAKKME_GENERAL_TRAINING_VALID_DAYS = int(
    os.environ.get("BAKKME_GENERAL_TRAINING_VALID_DAYS", "365")
)
# A training that expires within this many days is announced in the staff bar.
BAKKME_TRAINING_WARN_DAYS = 14
# Exposure (staff/exposure.py): at this much time with child-safety cases open in a shift, "next
# case" gives no more child-safety cases and the queue shows a break notice.
BAKKME_EXPOSURE_LIMIT_MINUTES = int(os.environ.get("BAKKME_EXPOSURE_LIMIT_MINUTES", "240"))
# A preview or unblurred view of a child-safety case's evidence counts this many minutes of
# exposure; further views of the same case within them extend it.
BAKKME_EXPOSURE_PREVIEW_MINUTES = 5

# --- Staff access and security: second factor, sessions, lockouts, headers, CSP -----------------
# README "Staff access and security". Production runs behind a TLS proxy; `make run` sets
# BAKKME_DEBUG=1 and serves plain http locally, so the https-only settings default off there.

# Second factor (django-otp): a TOTP app plus one-use backup codes; enrolment at the first login.
OTP_TOTP_ISSUER = os.environ.get("BAKKME_OTP_ISSUER", "BakkMe Safety")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the device admin never shows a secret
BAKKME_BACKUP_CODE_COUNT = 10
# Paths that need a verified factor for a logged-in user: the staff pages, and the API docs and
# schema for a staff session (the platform's token requests are not sessions).
BAKKME_FACTOR_REQUIRED_PATHS = ["/admin/", "/api/docs/", "/api/schema/"]

# Sessions end this long after the last request, and this long after the login in any case.
BAKKME_SESSION_IDLE_MINUTES = int(os.environ.get("BAKKME_SESSION_IDLE_MINUTES", "30"))
BAKKME_SESSION_MAX_HOURS = int(os.environ.get("BAKKME_SESSION_MAX_HOURS", "12"))
SESSION_COOKIE_AGE = BAKKME_SESSION_IDLE_MINUTES * 60
# A request renews the idle limit; the session row is rewritten at most this often for it.
BAKKME_SESSION_TOUCH_SECONDS = 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True  # and no session outlives the browser on a shared desk

# Login throttling (django-axes, staff.lockout): failed logins within the cool-off are
# counted three ways, each locked at its own limit: one username from one address (that pair is
# locked), one address for any usernames (the address is locked for every username), one
# username from any addresses (the username is locked from everywhere). Tries made while locked
# neither count nor extend the lockout, so one address adds at most the pair limit to a
# username's count: locking someone out from everywhere takes
# BAKKME_LOGIN_USERNAME_FAILURE_LIMIT / BAKKME_LOGIN_FAILURE_LIMIT addresses (4 by default).
# A success clears that username's failures from that address only.
BAKKME_LOGIN_FAILURE_LIMIT = int(os.environ.get("BAKKME_LOGIN_FAILURE_LIMIT", "5"))
BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT = int(os.environ.get("BAKKME_LOGIN_ADDRESS_FAILURE_LIMIT", "20"))
BAKKME_LOGIN_USERNAME_FAILURE_LIMIT = int(
    os.environ.get("BAKKME_LOGIN_USERNAME_FAILURE_LIMIT", "20")
)
BAKKME_LOGIN_COOLOFF_MINUTES = int(os.environ.get("BAKKME_LOGIN_COOLOFF_MINUTES", "30"))
AXES_HANDLER = "staff.lockout.LockoutHandler"
AXES_FAILURE_LIMIT = "staff.lockout.failure_limit"  # the limit of the count reached
AXES_COOLOFF_TIME = timedelta(minutes=BAKKME_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address", "username"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
# Login sprays: this many distinct usernames failing from one address, or one username failing
# from this many distinct addresses, within the window alert every CSO (once per address or
# username and window) and are recorded in the audit trail (staff.login_spray).
BAKKME_LOGIN_SPRAY_USERNAMES = int(os.environ.get("BAKKME_LOGIN_SPRAY_USERNAMES", "5"))
BAKKME_LOGIN_SPRAY_ADDRESSES = int(os.environ.get("BAKKME_LOGIN_SPRAY_ADDRESSES", "3"))
BAKKME_LOGIN_SPRAY_WINDOW_MINUTES = int(os.environ.get("BAKKME_LOGIN_SPRAY_WINDOW_MINUTES", "30"))
AXES_LOCKOUT_CALLABLE = "staff.two_factor_views.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # successful logins are in the audit trail
# Behind this many proxies (each appending to X-Forwarded-For) the client address comes from that
# header; 0: REMOTE_ADDR, and a forwarded header is ignored (anyone could send one).
BAKKME_TRUSTED_PROXY_COUNT = int(os.environ.get("BAKKME_TRUSTED_PROXY_COUNT", "0"))
AXES_CLIENT_IP_CALLABLE = "audit.actions.client_ip"

# HTTPS, cookies and headers: all on unless BAKKME_DEBUG=1; each can be set on its own.
SECURE_SSL_REDIRECT = env_bool("BAKKME_SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("BAKKME_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = int(os.environ.get("BAKKME_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("BAKKME_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("BAKKME_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The TLS proxy's header telling a request came over https, as HEADER=value, e.g.
# BAKKME_SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO=https. Only for a proxy that always sets
# (or strips) that header.
_proxy_ssl_header = os.environ.get("BAKKME_SECURE_PROXY_SSL_HEADER", "")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header.split("=", 1)) if _proxy_ssl_header else None
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("BAKKME_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# Content-Security-Policy (django-csp 4): everything from this server, no inline script or
# style, no framing. Only the API docs page (Swagger UI styles its elements inline) allows
# inline styles (reports.api.views.ApiDocsView).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF],
        "style-src": [CSP_SELF],
        "img-src": [CSP_SELF, "data:"],
        "font-src": [CSP_SELF],
        "connect-src": [CSP_SELF],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_SELF],
        "form-action": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
    },
}
# django-axes logs each failed login at WARNING; its start-up banner (INFO) is noise.
LOGGING["loggers"]["axes"] = {"level": "WARNING"}

# --- Platform webhooks --------------------------------------------------------------------------
# Enforcement actions and reporter acknowledgments go to the platform as signed JSON POSTs
# (deliveries/: signing.py, outbox.py; the apps' kinds). Without a URL and a secret nothing is sent:
# deliveries wait (pending), and the admin says so.
BAKKME_PLATFORM_WEBHOOK_URL = os.environ.get("BAKKME_PLATFORM_WEBHOOK_URL", "")
BAKKME_PLATFORM_WEBHOOK_SECRET = os.environ.get("BAKKME_PLATFORM_WEBHOOK_SECRET", "")
# The receiver refuses a timestamp further than this from its clock (seconds).
BAKKME_WEBHOOK_TOLERANCE_SECONDS = int(os.environ.get("BAKKME_WEBHOOK_TOLERANCE_SECONDS", "300"))
# One call's timeout (seconds). A run leases the rows it sends for this long plus the margin:
# a run that died mid-call is retried (same idempotency key) once the lease runs out.
BAKKME_WEBHOOK_TIMEOUT_SECONDS = int(os.environ.get("BAKKME_WEBHOOK_TIMEOUT_SECONDS", "10"))
BAKKME_WEBHOOK_LEASE_MARGIN_SECONDS = 60
# Retries: exponential backoff from the base (30 s, 60 s, 120 s ...) capped; after this many hours
# since the first attempt the delivery is failed and the CSO alerted.
BAKKME_WEBHOOK_BACKOFF_SECONDS = int(os.environ.get("BAKKME_WEBHOOK_BACKOFF_SECONDS", "30"))
BAKKME_WEBHOOK_BACKOFF_MAX_SECONDS = 3600
BAKKME_WEBHOOK_GIVE_UP_HOURS = int(os.environ.get("BAKKME_WEBHOOK_GIVE_UP_HOURS", "24"))
# Deliveries sent per run (one run a minute, and one queued when a decision creates actions).
BAKKME_WEBHOOK_BATCH = 200
# The schedule of the delivery task (minutes).
BAKKME_WEBHOOK_SCHEDULE_MINUTES = 1
# This much of the platform's answer is kept on the row (characters).
BAKKME_WEBHOOK_RESPONSE_EXCERPT_CHARS = 1000
# The action types the platform carries out; the others (CyberTipline, law enforcement) are the
# back office's own work and never go to the platform.
BAKKME_WEBHOOK_ACTION_TYPES = [
    "remove_content",
    "suspend_account",
    "permanent_ban",
    "warn",
    "restrict_feature",
    "delete_account_data",
    # A legal freeze and its lifting (legal.freeze).
    "freeze_account",
    "unfreeze_account",
]
# Go first: these action types on P0 cases, or on cases of these categories or decided with these
# violations; then everything else, oldest first.
BAKKME_WEBHOOK_URGENT_ACTION_TYPES = [
    "remove_content",
    "suspend_account",
    "permanent_ban",
    "freeze_account",
]
BAKKME_WEBHOOK_URGENT_PRIORITIES = [0]
BAKKME_WEBHOOK_URGENT_CATEGORIES = ["csam"]
BAKKME_WEBHOOK_URGENT_VIOLATIONS = ["csam_distribution", "csam_possession"]
# A 2xx answer whose JSON "status" is one of these confirms the action was carried out.
BAKKME_WEBHOOK_CONFIRMED_ANSWERS = ["done", "confirmed", "completed"]

# --- CyberTipline filing and law enforcement (legal/) ------------------------------------------
# README "CyberTipline and law enforcement". NCMEC's reporting API: base URL (default NCMEC's test
# environment; production is https://report.cybertip.org/ispws) and the credentials NCMEC issues.
BAKKME_CYBERTIP_URL = os.environ.get("BAKKME_CYBERTIP_URL", "https://exttest.cybertip.org/ispws")
BAKKME_CYBERTIP_USERNAME = os.environ.get("BAKKME_CYBERTIP_USERNAME", "")
BAKKME_CYBERTIP_PASSWORD = os.environ.get("BAKKME_CYBERTIP_PASSWORD", "")
# Seconds a connection, a send or a read may block before the attempt counts as a network error.
BAKKME_CYBERTIP_TIMEOUT_SECONDS = float(os.environ.get("BAKKME_CYBERTIP_TIMEOUT_SECONDS", "60"))
# Attempts per call on network errors, HTTP 5xx and NCMEC's 1000-series codes (never on the
# 4000-series); the waits between them double from the first, up to the maximum.
BAKKME_CYBERTIP_ATTEMPTS = 5
BAKKME_CYBERTIP_BACKOFF_SECONDS = 2.0
BAKKME_CYBERTIP_BACKOFF_MAX_SECONDS = 60.0
# Filing runs in the background (legal.tasks.file_cybertip_report). Each step (the submission,
# each upload, each fileinfo, the finish) has this total deadline in seconds, attempts and waits
# included; past it the filing stops and goes back to legal with the reason.
BAKKME_CYBERTIP_STEP_DEADLINE_SECONDS = float(
    os.environ.get("BAKKME_CYBERTIP_STEP_DEADLINE_SECONDS", "300")
)
# A filing run holds a lease on its report for this long (seconds), renewed every third of it
# while the run lives; well below Q_CLUSTER's retry, so that the task delivered again after its
# worker died takes the filing over. The task's own timeout (a filing of many files takes
# longer than Q_CLUSTER's), and how often the report's page reloads while its filing runs.
BAKKME_CYBERTIP_LEASE_SECONDS = 60
BAKKME_CYBERTIP_FILING_TIMEOUT = 3600
BAKKME_CYBERTIP_REFRESH_SECONDS = 3
# The practice CyberTipline (manage.py practice_cybertipline): `make run` starts it and points
# filing at it. A filing to this URL is labelled "Practice (local, nothing reaches NCMEC)".
BAKKME_CYBERTIP_PRACTICE_URL = os.environ.get(
    "BAKKME_CYBERTIP_PRACTICE_URL", "http://127.0.0.1:8010/ispws"
)
BAKKME_CYBERTIP_PRACTICE_USERNAME = os.environ.get("BAKKME_CYBERTIP_PRACTICE_USERNAME", "practice")
BAKKME_CYBERTIP_PRACTICE_PASSWORD = os.environ.get("BAKKME_CYBERTIP_PRACTICE_PASSWORD", "practice")
# Our contact as the reporting company (<reporter><reportingPerson>) and the platform's name.
BAKKME_CYBERTIP_PLATFORM = os.environ.get("BAKKME_CYBERTIP_PLATFORM", "BakkMe")
BAKKME_CYBERTIP_REPORTER_FIRST_NAME = os.environ.get("BAKKME_CYBERTIP_REPORTER_FIRST_NAME", "")
BAKKME_CYBERTIP_REPORTER_LAST_NAME = os.environ.get(
    "BAKKME_CYBERTIP_REPORTER_LAST_NAME", "BakkMe Safety"
)
BAKKME_CYBERTIP_REPORTER_EMAIL = os.environ.get("BAKKME_CYBERTIP_REPORTER_EMAIL", "")
BAKKME_CYBERTIP_REPORTER_PHONE = os.environ.get("BAKKME_CYBERTIP_REPORTER_PHONE", "")
BAKKME_CYBERTIP_LEGAL_URL = os.environ.get("BAKKME_CYBERTIP_LEGAL_URL", "")
# The incidentType a decided violation gives, and (for a draft of an undecided case) a report
# category gives. A violation or category not listed has no CyberTipline incident type: its
# draft does not validate and is never sent.
_cybertip_cp = "Child Pornography (possession, manufacture, and distribution)"
_cybertip_enticement = "Online Enticement of Children for Sexual Acts"
BAKKME_CYBERTIP_INCIDENT_TYPES = {
    "csam_distribution": _cybertip_cp,
    "csam_possession": _cybertip_cp,
    "ai_generated_csae": _cybertip_cp,
    "solicitation_of_minor": _cybertip_enticement,
    "grooming": _cybertip_enticement,
    "exploitation_facilitation": _cybertip_enticement,
}
BAKKME_CYBERTIP_CATEGORY_INCIDENT_TYPES = {
    "csam": _cybertip_cp,
    "ai_generated_csae": _cybertip_cp,
    "grooming": _cybertip_enticement,
    "solicitation_of_minor": _cybertip_enticement,
    "sextortion": _cybertip_enticement,
    "imminent_danger": _cybertip_enticement,
    "exploitation_trafficking": "Child Sex Trafficking",
}
# The draft legal staff edit (legal/draft.py) is filled from our own data: at most this many of
# each reported account's most recent login / account_created IP addresses, and at most this
# many minors (from account events and message logs) offered as victims for legal to confirm.
BAKKME_CYBERTIP_DRAFT_IP_EVENTS = 50
BAKKME_CYBERTIP_DRAFT_SUGGESTED_VICTIMS = 50
# The legal desk (legal/duties.py): what legal staff owe, and by when. A CyberTipline report is
# due "as soon as reasonably possible" (18 U.S.C. 2258A): this many hours from the decision or
# the hash match that called for it.
BAKKME_LEGAL_CYBERTIP_HOURS = int(os.environ.get("BAKKME_LEGAL_CYBERTIP_HOURS", "24"))
# A law-enforcement referral a decision prescribes; an emergency one (a P0 case) much sooner.
BAKKME_LEGAL_REFERRAL_HOURS = 24
BAKKME_LEGAL_EMERGENCY_REFERRAL_HOURS = 1
# Platform records answering a preservation request are checked within this many hours; a
# package of evidence is handed over within this many hours of its request.
BAKKME_LEGAL_PRESERVATION_CHECK_HOURS = 24
BAKKME_LEGAL_PACKAGE_HOURS = 48
# The answer to legal process, by type (hours from receipt). These are working defaults for the
# desk's deadlines, not legal advice: the Child Safety Officer and counsel set the real ones (a
# request may name its own deadline: it can be entered on the request).
BAKKME_LE_REQUEST_RESPONSE_HOURS = {
    "emergency_disclosure": 2,
    "preservation_request": 24,
    "search_warrant": 7 * 24,
    "court_order": 7 * 24,
    "subpoena": 14 * 24,
    "ofcom_request": 14 * 24,
    "ec_request": 14 * 24,
    "ftc_request": 30 * 24,
    "national_regulator_request": 14 * 24,
}
# The sweep of the legal desk's deadlines runs this often (minutes; schedule "legal-duties").
BAKKME_LEGAL_SWEEP_MINUTES = 1
# A legal freeze (legal/freeze.py) asks the platform for the account's records over a period:
# the form proposes the last this many days. The platform's answer (POST /api/v1/records/) holds
# at most this many entries per record type.
BAKKME_LEGAL_FREEZE_DEFAULT_DAYS = 90
BAKKME_API_RECORDS_MAX_ITEMS = 10000

# Surfaces whose content anyone on the platform could see (fileDetails/publiclyAvailable).
BAKKME_CYBERTIP_PUBLIC_SURFACES = [
    "post",
    "image",
    "video",
    "comment",
    "live_stream",
    "group_post",
    "fundraiser",
    "profile",
]
# Surfaces reported as chatImIncident; every other surface is a webPageIncident.
BAKKME_CYBERTIP_CHAT_SURFACES = ["message", "chat"]

# --- Hash banks and PDQ matching (reports/matching.py) -----------------------------------------
# README "Hash banks and PDQ matching". A PDQ hash matches a bank entry at a Hamming distance of
# at most this many bits (of 256; HMA's confident-match threshold; the index is exact up to 31).
BAKKME_PDQ_MAX_DISTANCE = 31
# PDQ's own quality score (0-100): below it the image has too little detail to match on.
BAKKME_PDQ_MIN_QUALITY = 50
# Each process checks the banks for changes at most this often and rebuilds its index when they
# changed: a new entry matches within this many seconds.
BAKKME_PDQ_INDEX_REFRESH_SECONDS = 60
# Where a built index is kept for the other processes of this machine (reports/matching.py): the
# first process to see a bank version builds and saves it there, the others map the same files.
BAKKME_PDQ_INDEX_DIR = Path(os.environ.get("BAKKME_PDQ_INDEX_DIR", BASE_DIR / "var" / "pdq-index"))
# Largest file POST /api/v1/match/ hashes (it is hashed in memory, never stored).
BAKKME_MATCH_MAX_FILE_BYTES = 50 * 1024 * 1024

# --- Detections: text and link signals, the internal bank (reports/textsignals.py) -------------
# README "Detection". Each process recompiles the lexicon when it changed, checking at most this
# often: a new or edited term applies within this many seconds.
BAKKME_LEXICON_REFRESH_SECONDS = 60
# Texts are scanned (lexicon and links) up to this many characters each.
BAKKME_SIGNAL_MAX_TEXT_CHARS = 20_000
# A lexicon pattern gets at most this long on one text; one that runs out (catastrophic
# backtracking) keeps what it found and is counted on its term in the admin.
BAKKME_LEXICON_TIMEOUT_SECONDS = 0.05
# An automated match against a CSAM bank (§4.3): these actions at once, pending human review,
# and the case raised to this priority at least.
BAKKME_CSAM_MATCH_ACTIONS = ["remove_content", "suspend_account"]
BAKKME_CSAM_MATCH_PRIORITY_FLOOR = "P1"
# The bank a CSAM decision adds the case's evidence hashes to (created when missing).
BAKKME_INTERNAL_HASH_BANK = "internal-confirmed"
# The violations whose decision adds the evidence hashes to that bank.
BAKKME_INTERNAL_BANK_VIOLATIONS = ["csam_distribution", "csam_possession"]

# --- Account events, behaviour rules and ban evasion (reports/rules.py, reports/events.py) -----
# README "Detection". POST /api/v1/events/ takes at most this many events a request.
BAKKME_API_EVENTS_MAX = 500
# The window each behaviour rule counts in; a rule hits an adult at most once per window.
BAKKME_RULE_WINDOW_HOURS = 24
# An adult messaging this many distinct minors who are not mutual followers within the window.
BAKKME_RULE_MINOR_CONTACTS = 5
# An adult sending this many gifts or payments to minors' live streams within the window. The
# policy says "repeatedly" and gives no number: 3 is the smallest count that is a repetition
# beyond a one-off pair; the Child Safety Officer sets the real one (issue 5's note).
BAKKME_RULE_GIFTS_TO_MINORS = 3
# The category and priority of the case a behaviour rule opens or joins for the adult.
BAKKME_RULE_CASE_CATEGORY = "grooming"
BAKKME_RULE_CASE_SURFACE = "profile"
# The case a ban-evasion hit opens or joins for the evading account (Child Safety Standards §7).
BAKKME_BAN_EVASION_CASE_CATEGORY = "other_child_safety"
BAKKME_BAN_EVASION_CASE_SURFACE = "profile"
# An account_created or login event matching a banned account's identifiers also creates a
# permanent_ban action (termination) at once, pending human review.
BAKKME_BAN_EVASION_AUTO_TERMINATE = True
# An IP address matches a banned account's only within this many days of the banned account's
# last use of it (addresses are shared and reassigned); devices, e-mails and phones always.
BAKKME_BAN_EVASION_IP_DAYS = 30
