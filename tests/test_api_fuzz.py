"""Property-based fuzzing of the intake API from its own OpenAPI schema (schemathesis).

The schema is the one /api/schema/ serves (drf-spectacular's generator; a test below checks the
two are equal). Every operation is called in-process through Django's WSGI handler with the
integration's token, with data that fits the schema and data that does not. Nothing may answer
5xx, and the answers must be the ones the schema declares. Bounded for CI: a few examples per
operation, derandomized, no example database.
"""

import json
import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings

from .factories import make_report

pytestmark = pytest.mark.django_db

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            # A deeper search by hand: BAKKME_FUZZ_MAX_EXAMPLES=500 pytest tests/test_api_fuzz.py
            "max-examples": int(os.environ.get("BAKKME_FUZZ_MAX_EXAMPLES", "25")),
            "deterministic": True,
            "database": "none",
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {
            # Rules the schema cannot state refuse schema-valid data, rightly: dates within the
            # accepted window (relative to now), a report needs reported_account.platform_id or
            # content.platform_id, a file or a hash, a target for some event types.
            "positive_data_acceptance": {"enabled": False},
            # A batch answers an invalid report with 200 and that item's 400, by design; and a
            # number given for a text field is read as its text (DRF's CharField).
            "negative_data_rejection": {"enabled": False},
        },
    }
)


def api_schema() -> dict:
    """The schema /api/schema/ serves, as JSON."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(api_schema(), config=CONFIG)
schema.app = get_wsgi_application()


@pytest.fixture(autouse=True)
def in_the_test_transaction():
    """A WSGI request closes "old" connections when it starts and ends; inside the test's
    transaction that would roll it back. Django's own test client holds these signals off the
    same way (django.test.client.ClientHandler)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(integration_and_token):
    return integration_and_token[1]


@pytest.fixture
def report(integration, evidence_root):
    """A report of the calling integration, so that uploads of media reach the vault too."""
    return make_report(integration)


@schema.parametrize()
# The fixtures are the same for every example, on purpose: one integration, one test transaction
# in which the examples' reports pile up (so repeated keys are tried too).
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_generated_requests_get_the_declared_answers_and_never_a_server_error(case, token, report):
    if isinstance((case.path_parameters or {}).get("report_id"), int):
        case.path_parameters["report_id"] = report.pk
    case.call_and_validate(headers={"Authorization": f"Token {token}"})


def test_the_fuzzed_schema_is_the_one_the_api_serves(api):
    served = api.get("/api/schema/?format=json")
    assert served.status_code == 200
    assert json.loads(served.content) == api_schema()
