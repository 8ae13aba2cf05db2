import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from cases.models import Case
from evidence.models import EvidenceItem
from reports.models import Integration, Report

from .factories import report_payload

pytestmark = pytest.mark.django_db


def test_create_api_token_prints_a_working_token_as_its_last_line():
    out = StringIO()
    call_command("create_api_token", "platform-reports", stdout=out)
    token = out.getvalue().strip().splitlines()[-1]
    integration = Integration.objects.get(name="platform-reports")
    assert token not in integration.token_hash  # only a hash is stored

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post("/api/v1/reports/", report_payload(), format="json").status_code == 201


def test_create_api_token_refuses_a_name_in_use():
    call_command("create_api_token", "platform-reports", stdout=StringIO())
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_api_token", "platform-reports", stdout=StringIO())


def test_seed_demo_makes_one_account_per_role_and_placeholder_reports(settings):
    from detection import matching, textsignals
    from detection.models import Detection

    settings.BAKKME_PDQ_INDEX_REFRESH_SECONDS = settings.BAKKME_LEXICON_REFRESH_SECONDS = 0
    matching.reset_index()
    textsignals.reset_lexicon()
    out = StringIO()
    call_command("seed_demo", "--reports", "40", stdout=out)
    users = get_user_model().objects.filter(username__startswith="demo_")
    roles = {g for u in users for g in u.groups.values_list("name", flat=True)}
    assert roles == {
        "reviewer", "senior_reviewer", "legal", "child_safety_officer", "auditor", "admin"
    }  # fmt: skip
    for user in users:
        assert user.username in out.getvalue()
    # 40 demo reports, and the automated one the behaviour rule raised.
    assert Report.objects.filter(idempotency_key__startswith="behaviour:").exists()
    assert Report.objects.count() == 41
    assert Case.objects.exists()
    assert len({r.category for r in Report.objects.all()}) > 3
    # Generated pattern images as evidence, so the evidence pages are not empty in a demo.
    images = EvidenceItem.objects.all()
    assert images.count() == 12
    assert all(i.media_type == "image/png" and len(i.pdq) == 64 for i in images)
    # A detection of each kind the demo lists feed, so those pages are not empty either: the
    # first image is in the demo CSAM bank and takes the automatic actions.
    methods = set(Detection.objects.values_list("method", flat=True))
    assert methods == {"hash", "keyword", "link", "behaviour"}
    hashed = Detection.objects.get(method="hash").case
    assert {a.type for a in hashed.actions.all()} == {"remove_content", "suspend_account"}


def test_seed_demo_passwords_log_in(client):
    out = StringIO()
    call_command("seed_demo", "--reports", "5", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if "demo_reviewer" in line)
    password = line.split()[-1]
    assert client.login(username="demo_reviewer", password=password)
    assert client.get("/admin/cases/case/").status_code == 200


def test_api_docs_are_served_to_staff_from_local_assets(client):
    staff = get_user_model().objects.create_user("docs", password="x", is_staff=True)
    client.force_login(staff)
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/reports/batch/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    body = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/" in body
    # Every asset the page loads comes from this server: no CDN, nothing off-site.
    assets = re.findall(r"""(?:src|href)\s*[=:]\s*["']([^"']+)["']""", body)
    assert assets
    assert not [url for url in assets if url.startswith(("http:", "https:", "//"))]
    assert not re.search(r"cdn\.|unpkg\.com|jsdelivr", body)


def test_api_docs_need_a_login_or_a_token(client, integration_and_token):
    assert client.get("/api/schema/").status_code == 401
    docs = client.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/admin/login/?next=")
    token_client = APIClient()
    token_client.credentials(HTTP_AUTHORIZATION=f"Token {integration_and_token[1]}")
    assert token_client.get("/api/schema/").status_code == 200
    # The platform's engineers read the docs with their token too.
    assert token_client.get("/api/docs/").status_code == 200
