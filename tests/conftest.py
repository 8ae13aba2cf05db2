import shutil

import pytest
from django.conf import settings
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from reports.actions import create_integration

from .factories import UserFactory


@pytest.fixture(scope="session", autouse=True)
def remove_saved_pdq_indexes():
    """The PDQ indexes the run saved (a directory of its own, bakkme_safety/settings_test.py)."""
    yield
    shutil.rmtree(settings.BAKKME_PDQ_INDEX_DIR, ignore_errors=True)


@pytest.fixture
def integration_and_token(db):
    return create_integration("platform-test")


@pytest.fixture
def integration(integration_and_token):
    return integration_and_token[0]


@pytest.fixture
def api(integration_and_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {integration_and_token[1]}")
    return client


@pytest.fixture
def reviewer(db):
    return UserFactory(username="rita", roles=["reviewer"])


@pytest.fixture
def senior(db):
    return UserFactory(username="sam", roles=["senior_reviewer"])


@pytest.fixture
def legal(db):
    return UserFactory(username="lee", roles=["legal"])


@pytest.fixture
def cso(db):
    return UserFactory(username="chris", roles=["child_safety_officer"])


@pytest.fixture
def auditor(db):
    return UserFactory(username="aude", roles=["auditor"])


@pytest.fixture(autouse=True)
def evidence_root(settings, tmp_path):
    """Each test's evidence goes to its own folder."""
    root = tmp_path / "evidence"
    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": {
            **settings.STORAGES["evidence"],
            "OPTIONS": {**settings.STORAGES["evidence"]["OPTIONS"], "location": root},
        },
    }
    return root


TEST_FACTOR_NAME = "test factor"


def verify_client_session(client, user):
    """Mark the client's session as having passed a second factor, the way django_otp.login does:
    the session names a confirmed device of the user (a StaticDevice made once per user)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_static.models import StaticDevice

    device = StaticDevice.objects.filter(user=user, name=TEST_FACTOR_NAME).first()
    if device is None:
        device = StaticDevice.objects.create(user=user, name=TEST_FACTOR_NAME, confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


@pytest.fixture(autouse=True)
def otp_verified_logins(monkeypatch):
    """Test-client logins pass the second factor too, unless asked not to.

    Every staff page needs a verified second factor (django-otp). So that a test can log in as
    before, `client.force_login(user)` and `client.login(username=..., password=...)` (on
    django.test.Client and so on DRF's APIClient too) also verify the session: a confirmed
    StaticDevice named "test factor" is made for the user and put in the session.

    `client.force_login(user, otp_verified=False)` / `client.login(..., otp_verified=False)`
    log in with the password step only: the session is authenticated but not verified, as
    between the password and the second factor (staff pages redirect to /admin/two-factor/).

    `client.login()` also gets a request for django-axes (whose backend needs one), unless the
    test passes its own `request=`.
    """
    force_login = Client.force_login
    login = Client.login

    def force_login_verified(self, user, backend=None, otp_verified=True):
        force_login(self, user, backend)
        if otp_verified:
            verify_client_session(self, user)

    def login_verified(self, otp_verified=True, **credentials):
        credentials.setdefault("request", RequestFactory().post("/admin/login/"))
        logged_in = login(self, **credentials)
        if logged_in and otp_verified:
            verify_client_session(self, _session_user(self))
        return logged_in

    monkeypatch.setattr(Client, "force_login", force_login_verified)
    monkeypatch.setattr(Client, "login", login_verified)


def _session_user(client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])
