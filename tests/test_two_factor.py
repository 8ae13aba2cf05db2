"""The second factor: enrolment at the first login, verification afterwards, backup codes, and
the staff pages refusing a session without it (the API's tokens are not affected)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib import admin
from django.test import RequestFactory
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from audit.models import AuditEvent
from staff import two_factor

from .factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
VERIFY = "/admin/two-factor/"
ENROL = "/admin/two-factor/enrol/"


def code_for(device, at=None):
    """The code the authenticator app shows now (time-machine's now)."""
    value = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{value:0{device.digits}d}"


def password_login(client, user, next_url="/admin/"):
    response = client.post(
        "/admin/login/", {"username": user.username, "password": PASSWORD, "next": next_url}
    )
    assert response.status_code == 302, response.content[:500]
    return response


def enrolled(user):
    """A user with a confirmed authenticator and backup codes; returns (device, codes)."""
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    return device, two_factor.generate_backup_codes(user)


@pytest.fixture
def traveller():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def test_first_login_enrols_an_authenticator_then_shows_ten_backup_codes_once(
    client, settings, traveller
):
    user = UserFactory(roles=["reviewer"])
    password_login(client, user, "/admin/cases/case/")

    # Password only: the admin sends the user to the second factor, which starts an enrolment.
    page = client.get("/admin/cases/case/")
    assert page.status_code == 302 and page["Location"].startswith(VERIFY + "?next=")
    page = client.get(page["Location"])
    assert page.status_code == 302 and page["Location"].startswith(ENROL)
    page = client.get(page["Location"])
    assert page.status_code == 200
    body = page.content.decode()
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed
    # The secret as text and as an inline SVG QR code drawn on the server: no script, no image.
    assert two_factor.secret_text(device) in body
    assert re.search(r'<div class="two-factor-qr" id="two-factor-qr"><svg[^>]*>.*</svg>', body)
    assert "<script>" not in body

    # A wrong code is refused, nothing confirmed.
    wrong = client.post(ENROL, {"code": "000000", "next": "/admin/cases/case/"})
    assert wrong.status_code == 200 and b"not right" in wrong.content
    device.refresh_from_db()
    assert not device.confirmed

    traveller.shift(timedelta(seconds=30))  # past django-otp's throttle delay after a failure
    done = client.post(ENROL, {"code": code_for(device), "next": "/admin/cases/case/"})
    assert done.status_code == 200
    assert done["Cache-Control"].startswith("max-age=0") and "no-store" in done["Cache-Control"]
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(codes) == settings.BAKKME_BACKUP_CODE_COUNT == 10
    assert set(codes) == set(
        StaticToken.objects.filter(device__user=user).values_list("token", flat=True)
    )
    device.refresh_from_db()
    assert device.confirmed

    # Verified: the staff pages open.
    assert client.get("/admin/cases/case/").status_code == 200
    # The codes are not shown again.
    again = client.get("/admin/two-factor/backup-codes/")
    assert again.status_code == 200
    assert not any(code in again.content.decode() for code in codes)
    assert b"You have 10 unused backup codes" in again.content

    actions = list(
        AuditEvent.objects.filter(object_id=str(user.pk)).values_list("action", flat=True)
    )
    assert {"login", "factor_failed", "factor_enrolled", "backup_codes_generated"} <= set(actions)


def test_a_user_with_an_authenticator_logs_in_with_its_code(client, traveller):
    user = UserFactory(roles=["reviewer"])
    device, _ = enrolled(user)
    password_login(client, user)
    page = client.get("/admin/")
    assert page["Location"] == f"{VERIFY}?next=/admin/"
    form = client.get(page["Location"])
    assert form.status_code == 200 and b'name="code"' in form.content
    # Enrolment is not open to a password-only session of an enrolled user.
    assert client.get(ENROL)["Location"].startswith(VERIFY)

    refused = client.post(VERIFY, {"code": "123456", "next": "/admin/"})
    assert refused.status_code == 200 and b"not right" in refused.content
    assert client.get("/admin/").status_code == 302

    traveller.shift(timedelta(seconds=30))
    session_key = client.session.session_key
    accepted = client.post(VERIFY, {"code": code_for(device), "next": "/admin/cases/case/"})
    assert accepted.status_code == 302 and accepted["Location"] == "/admin/cases/case/"
    assert client.session.session_key != session_key  # a new key for the raised privilege
    assert client.get("/admin/").status_code == 200
    assert AuditEvent.objects.filter(
        action="factor_verified", object_id=str(user.pk), detail__method="totp"
    ).exists()


def test_a_backup_code_works_once(client, traveller):
    user = UserFactory(roles=["reviewer"])
    _, codes = enrolled(user)
    password_login(client, user)
    response = client.post(VERIFY, {"code": codes[0].upper(), "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device__user=user).count() == len(codes) - 1

    client.post("/admin/two-factor/logout/")
    traveller.shift(timedelta(minutes=5))
    password_login(client, user)
    reused = client.post(VERIFY, {"code": codes[0], "next": "/admin/"})
    assert reused.status_code == 200 and b"not right" in reused.content
    assert client.get("/admin/").status_code == 302
    traveller.shift(timedelta(seconds=30))
    assert client.post(VERIFY, {"code": codes[1], "next": "/admin/"}).status_code == 302


def test_wrong_codes_slow_down(client, traveller):
    user = UserFactory(roles=["reviewer"])
    device, _ = enrolled(user)
    password_login(client, user)
    client.post(VERIFY, {"code": "111111"})
    client.post(VERIFY, {"code": "222222"})
    # Even the right code waits while the device is throttled (django-otp: 1, 2, 4 ... seconds).
    throttled = client.post(VERIFY, {"code": code_for(device)})
    assert throttled.status_code == 200 and b"Too many wrong codes" in throttled.content
    traveller.shift(timedelta(seconds=30))
    assert client.post(VERIFY, {"code": code_for(device)}).status_code == 302


def test_new_backup_codes_replace_the_old_ones(client):
    user = UserFactory(roles=["reviewer"])
    _, old = enrolled(user)
    client.force_login(user)
    response = client.post("/admin/two-factor/backup-codes/")
    new = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    device = StaticDevice.objects.get(user=user, name=two_factor.BACKUP_DEVICE_NAME)
    assert not device.verify_token(old[0])


def test_staff_pages_refuse_a_session_without_a_verified_factor(client, cso, integration):
    from .factories import make_report

    report = make_report(integration)
    client.force_login(cso, otp_verified=False)
    for url in [
        "/admin/",
        "/admin/cases/case/",
        f"/admin/cases/case/{report.case_id}/change/",
        "/admin/dashboard/",
        "/admin/evidence/evidenceitem/",
        f"/admin/evidence/evidenceitem/case/{report.case_id}/",
        "/admin/audit/auditevent/",
        "/admin/audit/auditevent/export.csv",
        "/admin/two-factor/backup-codes/",
        "/api/docs/",
        "/api/schema/",
    ]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(VERIFY + "?next="), url
    # The login page itself sends a password-only session on to the second factor.
    assert client.get("/admin/login/")["Location"].startswith(VERIFY)
    # Verified, the same session opens them.
    client.force_login(cso)
    assert client.get("/admin/dashboard/").status_code == 200


def test_the_admin_site_itself_refuses_an_unverified_user(cso):
    """Behind the middleware: admin.site.has_permission needs a verified factor."""
    request = RequestFactory().get("/admin/")
    request.user = cso
    assert not admin.site.has_permission(request)  # no django-otp state at all
    cso.is_verified = lambda: False
    assert not admin.site.has_permission(request)
    cso.is_verified = lambda: True
    assert admin.site.has_permission(request)


def test_api_tokens_need_no_second_factor(api, integration_and_token):
    from .factories import report_payload

    assert api.post("/api/v1/reports/", report_payload(), format="json").status_code == 201
    assert api.get("/api/schema/").status_code == 200


def test_swagger_ui_starts_from_a_script_file_not_an_inline_script(client, cso):
    client.force_login(cso)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    body = page.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body)  # every script has a src
    assert '<script src="/api/docs/?script="></script>' in body
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content


def test_a_session_without_a_factor_is_not_staff_for_the_api_docs(cso):
    """The docs' permission also asks for the factor, not only the middleware's redirect."""
    from reports.api.permissions import IsIntegrationOrStaff

    request = RequestFactory().get("/api/schema/")
    request.user = cso
    cso.is_verified = lambda: False
    assert not IsIntegrationOrStaff().has_permission(request, None)
    cso.is_verified = lambda: True
    assert IsIntegrationOrStaff().has_permission(request, None)


def test_api_client_force_login_is_verified_too(cso):
    client = APIClient()
    client.force_login(cso)
    assert client.get("/api/schema/").status_code == 200
    unverified = APIClient()
    unverified.force_login(cso, otp_verified=False)
    assert unverified.get("/api/schema/").status_code == 302


def test_logging_out_before_the_factor(client):
    user = UserFactory(roles=["reviewer"])
    client.force_login(user, otp_verified=False)
    assert client.post("/admin/two-factor/logout/")["Location"] == "/admin/login/"
    assert "_auth_user_id" not in client.session


def test_next_never_leaves_the_site(client):
    user = UserFactory(roles=["reviewer"])
    _, codes = enrolled(user)
    client.force_login(user, otp_verified=False)
    response = client.post(VERIFY, {"code": codes[0], "next": "https://elsewhere.example/"})
    assert response["Location"] == "/admin/"


def test_only_staff_get_the_second_factor_pages(client):
    user = UserFactory(is_staff=False)
    client.force_login(user, otp_verified=False)
    assert client.get(ENROL).status_code == 403
    assert not TOTPDevice.objects.filter(user=user).exists()
