"""POST /api/v1/reports/{id}/media/: the platform preserves a report's media as evidence.
Test files are generated patterns (tests/evidence_files.py) and placeholder bytes."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from evidence import vault, viewing
from evidence.models import CustodyEvent, EvidenceItem, EvidenceProblem
from reports.actions import create_integration

from .evidence_files import bomb_png, pattern_png, truncated_png
from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db


def media_url(report_id) -> str:
    return f"/api/v1/reports/{report_id}/media/"


def upload(name="upload.bin", data=b"placeholder"):
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


@pytest.fixture
def report(integration):
    return make_report(integration)


def stored_files(root):
    return [p for p in root.rglob("*") if p.is_file()]


def test_an_image_is_preserved_and_answered_with_its_hashes_and_type(api, report, integration):
    data = pattern_png(seed=5)
    response = api.post(media_url(report.pk), {"file": upload("holiday.txt", data)})
    assert response.status_code == 201, response.json()
    body = response.json()
    item = EvidenceItem.objects.get()
    assert body == {
        "id": item.pk,
        "case": report.case_id,
        "kind": "media",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "media_type": "image/png",  # from the bytes, not the name
        "pdq": item.pdq,
        "pdq_quality": item.pdq_quality,
        "problem": "",
    }
    assert len(body["pdq"]) == 64 and isinstance(body["pdq_quality"], int)
    assert (item.report, item.collected_via, item.original_name) == (
        report,
        integration,
        "holiday.txt",
    )
    (event,) = item.custody.all()
    assert event.action == CustodyEvent.Action.COLLECT
    assert event.actor_name == f"integration:{integration.name}"


def test_a_non_image_has_no_pdq_and_a_kind_may_be_given(api, report):
    response = api.post(
        media_url(report.pk), {"file": upload(data=b"placeholder log"), "kind": "communication_log"}
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["kind"], body["media_type"], body["pdq"], body["pdq_quality"]) == (
        "communication_log",
        "application/json",
        None,
        None,
    )


@pytest.mark.parametrize(
    "data, problem",
    [(truncated_png(), EvidenceProblem.CORRUPT), (bomb_png(), EvidenceProblem.BOMB)],
)
def test_corrupt_and_bomb_images_are_preserved_and_flagged(api, report, data, problem):
    response = api.post(media_url(report.pk), {"file": upload("broken.png", data)})
    assert response.status_code == 201
    assert response.json()["problem"] == problem
    assert response.json()["pdq"] is None
    item = EvidenceItem.objects.get()
    assert b"".join(vault.read_verified(item)) == data


def test_without_a_file_the_answer_is_400_with_the_field(api, report):
    response = api.post(media_url(report.pk), {"kind": "media"})
    assert response.status_code == 400
    assert "file" in response.json()
    empty = api.post(media_url(report.pk), {"file": upload(data=b"")})
    assert empty.status_code == 400 and "file" in empty.json()
    wrong_kind = api.post(media_url(report.pk), {"file": upload(), "kind": "nonsense"})
    assert wrong_kind.status_code == 400 and "kind" in wrong_kind.json()
    as_json = api.post(media_url(report.pk), {"file": "x"}, format="json")
    assert as_json.status_code == 415
    assert not EvidenceItem.objects.exists()


def test_over_the_limit_the_answer_is_413_and_nothing_is_kept(api, report, settings, evidence_root):
    settings.BAKKME_EVIDENCE_MAX_BYTES = 1000
    response = api.post(media_url(report.pk), {"file": upload(data=b"0" * 5000)})
    assert response.status_code == 413
    assert "larger than the limit of 1,000 bytes" in response.json()["detail"]
    settings.BAKKME_EVIDENCE_UPLOAD_ENVELOPE_BYTES = 0  # refused on the declared length
    response = api.post(media_url(report.pk), {"file": upload(data=b"0" * 1500)})
    assert response.status_code == 413
    assert not EvidenceItem.objects.exists()
    assert not stored_files(evidence_root)
    settings.BAKKME_EVIDENCE_UPLOAD_ENVELOPE_BYTES = 64 * 1024
    at_limit = api.post(media_url(report.pk), {"file": upload(data=b"0" * 1000)})
    assert at_limit.status_code == 201


def test_the_json_body_limit_does_not_apply_and_uploads_are_sealed_as_they_arrive(
    api, report, settings, monkeypatch
):
    settings.BAKKME_API_MAX_BODY_BYTES = 100
    sources = []
    collect = vault.collect

    def spy(source, **kwargs):
        sources.append(source)
        return collect(source, **kwargs)

    monkeypatch.setattr(viewing.vault, "collect", spy)
    data = pattern_png((300, 200))
    assert len(data) > 100
    response = api.post(media_url(report.pk), {"file": upload("p.png", data)})
    assert response.status_code == 201
    (source,) = sources
    # Encrypted as it arrived: what the request held was ciphertext, never the plaintext.
    assert isinstance(source, vault.SealedUpload)
    assert source.sealed.sha256 == hashlib.sha256(data).hexdigest()


def test_a_report_of_another_integration_is_404(report, api):
    other_integration, token = create_integration("platform-other")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert other.post(media_url(report.pk), {"file": upload()}).status_code == 404
    assert api.post(media_url(999_999), {"file": upload()}).status_code == 404
    assert not EvidenceItem.objects.exists()


def test_without_a_token_the_answer_is_401(report):
    assert APIClient().post(media_url(report.pk), {"file": upload()}).status_code == 401
    staff = APIClient()
    staff.force_login(UserFactory(username="rob", roles=["reviewer"]))
    assert staff.post(media_url(report.pk), {"file": upload()}).status_code == 401


def test_the_endpoint_is_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/reports/{report_id}/media/" in text
    assert "multipart/form-data" in text
