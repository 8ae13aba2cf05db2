import pytest
from rest_framework.test import APIClient

from reports.services import create_integration

from .factories import UserFactory


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
