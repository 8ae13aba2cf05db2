"""Hardening: session limits, login throttling (django-axes), the security headers and the
Content-Security-Policy, and `check --deploy` with the production settings."""

import base64
import os
import re
import secrets
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.checks import run_checks
from django.core.management import call_command

from audit.models import AuditEvent

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)
BASE_DIR = Path(__file__).resolve().parent.parent


# --- Sessions ------------------------------------------------------------------------------------


def test_a_session_ends_after_the_idle_limit(client, settings, reviewer):
    idle = timedelta(minutes=settings.BAKKME_SESSION_IDLE_MINUTES)
    with time_machine.travel(T0, tick=False) as traveller:
        client.force_login(reviewer)
        assert client.get("/admin/").status_code == 200
        # Requests within the idle limit keep it going, well past the limit in total.
        for _ in range(3):
            traveller.shift(idle - timedelta(minutes=2))
            assert client.get("/admin/").status_code == 200
        traveller.shift(idle + timedelta(minutes=1))
        response = client.get("/admin/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_session_ends_at_the_absolute_limit_however_busy(client, settings, reviewer):
    idle = timedelta(minutes=settings.BAKKME_SESSION_IDLE_MINUTES)
    limit = timedelta(hours=settings.BAKKME_SESSION_MAX_HOURS)
    step = idle - timedelta(minutes=5)
    with time_machine.travel(T0, tick=False) as traveller:
        client.force_login(reviewer)
        elapsed = timedelta(0)
        while elapsed + step < limit:
            traveller.shift(step)
            elapsed += step
            assert client.get("/admin/").status_code == 200, elapsed
        traveller.shift(limit - elapsed + timedelta(seconds=1))
        response = client.get("/admin/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    event = AuditEvent.objects.filter(action="logout", object_id=str(reviewer.pk)).get()
    assert event.detail == {"reason": "session_max_age"}


def test_session_cookie_is_secure_and_ends_with_the_browser(client, reviewer):
    response = client.post("/admin/login/", {"username": reviewer.username, "password": PASSWORD})
    cookie = response.cookies["sessionid"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert not cookie["max-age"] and not cookie["expires"]  # a browser-session cookie


# --- Login throttling ----------------------------------------------------------------------------


def _login(client, username, password, ip="10.0.0.1"):
    return client.post(
        "/admin/login/", {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def test_too_many_failed_logins_lock_the_username_at_that_address(client, settings, reviewer):
    limit = settings.BAKKME_LOGIN_FAILURE_LIMIT
    with time_machine.travel(T0, tick=False) as traveller:
        for _ in range(limit - 1):
            response = _login(client, reviewer.username, "wrong")
            assert response.status_code == 200 and b"Please enter the correct" in response.content
        locked = _login(client, reviewer.username, "wrong")
        assert locked.status_code == 429
        assert b'id="lockout-message"' in locked.content
        assert b"Too many failed logins" in locked.content
        assert b'id="login-form"' in locked.content  # the login page, with the reason on it

        # The right password does not help now; the same user elsewhere is not locked out.
        assert _login(client, reviewer.username, PASSWORD).status_code == 429
        assert _login(client, reviewer.username, PASSWORD, ip="10.0.0.2").status_code == 302
        client.logout()

        traveller.shift(timedelta(minutes=settings.BAKKME_LOGIN_COOLOFF_MINUTES, seconds=1))
        response = _login(client, reviewer.username, PASSWORD)
        assert response.status_code == 302
    lockouts = AuditEvent.objects.filter(action="lockout", object_id=str(reviewer.pk))
    assert lockouts.exists()
    assert lockouts.first().detail["username"] == reviewer.username
    assert str(lockouts.first().ip) == "10.0.0.1"


def test_a_forwarded_address_is_ignored_without_a_trusted_proxy(client, settings, reviewer):
    """Otherwise each try could claim another address and never be locked out."""
    for n in range(settings.BAKKME_LOGIN_FAILURE_LIMIT):
        client.post(
            "/admin/login/",
            {"username": reviewer.username, "password": "wrong"},
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
        )
    assert _login(client, reviewer.username, PASSWORD).status_code == 429


def test_behind_a_trusted_proxy_the_forwarded_address_counts(rf, settings):
    from audit.actions import client_ip

    request = rf.get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    assert client_ip(request) == "10.9.9.9"
    settings.BAKKME_TRUSTED_PROXY_COUNT = 1
    assert client_ip(request) == "203.0.113.7"  # the entry our proxy added, not the client's


# --- Headers and the Content-Security-Policy -----------------------------------------------------


def _csp(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_staff_pages_carry_the_security_headers(client, cso):
    client.force_login(cso)
    response = client.get("/admin/")
    assert response.status_code == 200
    policy = _csp(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_https_requests_get_hsts(client, settings):
    response = client.get("/admin/login/", secure=True)
    assert response["Strict-Transport-Security"] == (
        f"max-age={settings.SECURE_HSTS_SECONDS}; includeSubDomains; preload"
    )


def test_plain_http_is_redirected_to_https_in_production(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/admin/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/admin/login/"


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>")
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|<[^>]+\sstyle\s*=", re.IGNORECASE)


def test_no_page_needs_an_inline_script(client, cso, integration, settings):
    """Every script is a file from this server (or JSON data, which is not run): the pages work
    under script-src 'self'."""
    report = make_report(integration, category="csam")
    login_page = client.get("/admin/login/")
    assert not INLINE_SCRIPT.findall(login_page.content.decode())
    client.force_login(cso)
    pages = [
        "/admin/",
        "/admin/cases/case/",
        f"/admin/cases/case/{report.case_id}/change/",
        "/admin/dashboard/",
        f"/admin/evidence/evidenceitem/case/{report.case_id}/",
        "/admin/evidence/evidenceitem/",
        "/admin/evidence/legalhold/",
        "/admin/evidence/legalhold/add/",
        "/admin/audit/auditevent/",
        "/admin/staff/notification/",
        "/api/docs/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert not INLINE_SCRIPT.findall(body), (url, INLINE_SCRIPT.findall(body))
        assert not INLINE_HANDLER.findall(body), (url, INLINE_HANDLER.findall(body))
        assert "'unsafe-inline'" not in _csp(response)["script-src"], url
        if url != "/api/docs/":  # Swagger UI styles inline; that page alone allows it
            assert not INLINE_STYLE.findall(body), (url, INLINE_STYLE.findall(body))
            assert "'unsafe-inline'" not in _csp(response)["style-src"], url
    # The enrolment page too (a password-only session).
    newcomer = UserFactory(roles=["reviewer"])
    client.force_login(newcomer, otp_verified=False)
    enrol = client.get("/admin/two-factor/enrol/")
    assert enrol.status_code == 200
    assert not INLINE_SCRIPT.findall(enrol.content.decode())
    assert not INLINE_STYLE.findall(enrol.content.decode())


# --- check --deploy ------------------------------------------------------------------------------


def _production_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAKKME_", "DJANGO_SETTINGS"))}
    env.update(
        BAKKME_SECRET_KEY=secrets.token_urlsafe(64),
        BAKKME_EVIDENCE_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        BAKKME_LEDGER_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        BAKKME_ALLOWED_HOSTS="backoffice.example",
        DJANGO_SETTINGS_MODULE="bakkme_safety.settings",
    )
    return env


def test_check_deploy_is_clean_with_the_production_settings():
    """The production settings module itself, as the environment makes it: not one warning."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        cwd=BASE_DIR,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr and "WARNINGS" not in result.stdout


def test_deployment_checks_find_nothing_under_production_settings(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = secrets.token_urlsafe(64)
    settings.ALLOWED_HOSTS = ["backoffice.example"]
    settings.SECURE_SSL_REDIRECT = True  # production's default (the tests' http client: off)
    assert run_checks(include_deployment_checks=True) == []
    call_command("check", deploy=True, fail_level="DEBUG")


def test_deployment_checks_do_see_an_insecure_setting(settings):
    """The check above would notice: without the https redirect, Django warns."""
    settings.DEBUG = False
    settings.SECRET_KEY = secrets.token_urlsafe(64)
    settings.SECURE_SSL_REDIRECT = False
    assert [m.id for m in run_checks(include_deployment_checks=True)] == ["security.W008"]
