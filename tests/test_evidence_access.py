"""The evidence pages: who reaches them (404 for everyone else), what they show, and the custody
event each access writes. Test images are generated patterns (tests/evidence_files.py)."""

import io

import numpy
import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm
from PIL import Image

from cases import actions
from evidence import access, vault
from evidence.models import CustodyEvent, EvidenceItem, EvidenceProblem, PreviewSettings
from evidence.queries import accessible_cases, accessible_items

from .evidence_files import bomb_png, pattern_png, truncated_png
from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

# The first bytes of an MP4 container: enough for the type to be detected as video.
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64


def url(name, *args):
    return reverse(f"admin:evidence_evidenceitem_{name}", args=args)


def item_urls(item):
    """Every page that shows something of one item."""
    return [
        url("change", item.pk),
        url("preview", item.pk),
        url("unblur", item.pk),
        url("unblurred", item.pk),
        url("download", item.pk),
    ]


def collect(case, data: bytes, name="file.bin", **kwargs) -> EvidenceItem:
    return vault.collect(io.BytesIO(data), case=case, original_name=name, **kwargs)


def events(item, action):
    return list(item.custody.filter(action=action))


def png_of(response) -> Image.Image:
    return Image.open(io.BytesIO(response.content))


def sharpness(image: Image.Image) -> float:
    """Mean difference between neighbouring pixels: lower when blurred."""
    pixels = numpy.asarray(image.convert("L"), dtype=float)
    return float(numpy.abs(numpy.diff(pixels, axis=1)).mean())


@pytest.fixture
def case(integration, reviewer):
    """A child-safety case held by the reviewer `rita`."""
    case = make_report(integration).case
    claimed = actions.claim_next_case(reviewer)
    assert claimed.pk == case.pk
    return claimed


@pytest.fixture
def image(case):
    return collect(case, pattern_png((240, 160)), name="picture.png")


@pytest.fixture
def other_reviewer(db):
    return UserFactory(username="ray", roles=["reviewer"])


@pytest.fixture
def granted_legal(case, legal, cso):
    access.grant(case, legal, by=cso, reason="placeholder reason")
    return legal


def as_user(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Nobody else: 404 ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["other_reviewer", "legal", "auditor"])
def test_everyone_without_access_gets_404_on_every_evidence_url(request, who, case, image):
    client = as_user(request.getfixturevalue(who))
    for address in [url("case", case.pk), *item_urls(image)]:
        assert client.get(address).status_code == 404, address
    upload = client.post(url("upload", case.pk), {"kind": "media", "file": _upload(b"x")})
    assert upload.status_code == 404
    assert list(image.custody.values_list("action", flat=True)) == ["collect"]
    assert EvidenceItem.objects.count() == 1


def test_an_unknown_item_is_404_like_a_forbidden_one(case, reviewer):
    client = as_user(reviewer)
    assert client.get(url("preview", 999_999)).status_code == 404
    assert client.get(url("case", 999_999)).status_code == 404


def test_a_released_case_is_no_longer_reachable(case, image, reviewer):
    actions.release_claim(case, actor=reviewer)
    for address in [url("case", case.pk), *item_urls(image)]:
        assert as_user(reviewer).get(address).status_code == 404


# --- Access that succeeds, and its custody -------------------------------------------------------


@pytest.mark.parametrize("who", ["reviewer", "granted_legal", "cso"])
def test_people_with_access_preview_unblur_and_download_and_each_is_recorded(
    request, who, case, image
):
    user = request.getfixturevalue(who)
    client = as_user(user)

    listing = client.get(url("case", case.pk))
    assert listing.status_code == 200
    assert url("preview", image.pk).encode() in listing.content
    assert image.sha256.encode() in listing.content

    preview = client.get(url("preview", image.pk))
    assert preview.status_code == 200
    assert preview["Content-Type"] == "image/png"
    assert "no-store" in preview["Cache-Control"] and "private" in preview["Cache-Control"]
    assert preview["Content-Disposition"].startswith("inline")
    (event,) = events(image, CustodyEvent.Action.PREVIEW)
    assert event.actor == user

    assert client.get(url("unblur", image.pk)).status_code == 200
    sharp = client.get(url("unblurred", image.pk))
    assert sharp.status_code == 200 and sharp["Content-Type"] == "image/png"
    assert "no-store" in sharp["Cache-Control"]
    (event,) = events(image, CustodyEvent.Action.VIEW)
    assert event.actor == user

    download = client.get(url("download", image.pk))
    assert download.status_code == 200
    assert download["Content-Type"] == "application/octet-stream"
    disposition = download["Content-Disposition"]
    assert disposition.startswith("attachment") and "picture.png" not in disposition
    assert f"evidence-{image.pk}-" in disposition
    assert b"".join(download.streaming_content) == pattern_png((240, 160))
    (event,) = events(image, CustodyEvent.Action.DOWNLOAD)
    assert event.actor == user

    detail = client.get(url("change", image.pk))
    assert detail.status_code == 200
    assert b"Downloaded" in detail.content and b"Previewed (blurred)" in detail.content


def test_the_preview_is_blurred_greyscale_and_downscaled_by_default(case, reviewer, settings):
    item = collect(case, pattern_png((1200, 800)), name="big.png")
    client = as_user(reviewer)
    blurred = png_of(client.get(url("preview", item.pk)))
    sharp = png_of(client.get(url("unblurred", item.pk)))
    assert blurred.mode == "L" and sharp.mode == "L"  # greyscale by default
    assert max(blurred.size) == settings.BAKKME_PREVIEW_MAX_SIDE  # never the original
    assert blurred.size == sharp.size
    assert sharpness(blurred) < sharpness(sharp) / 2


def test_a_reviewers_own_settings_are_applied(case, image, reviewer, settings):
    client = as_user(reviewer)
    settings_url = reverse("admin:evidence_preview_settings")
    assert client.get(settings_url).status_code == 200
    too_strong = settings.BAKKME_PREVIEW_MAX_BLUR_RADIUS + 1
    refused = client.post(settings_url, {"blur_radius": too_strong, "greyscale": "on"})
    assert refused.status_code == 200 and refused.context["form"].errors
    assert not PreviewSettings.objects.filter(user=reviewer).exists()

    assert client.post(settings_url, {"blur_radius": 0}).status_code == 302  # colour, sharp
    own = PreviewSettings.objects.get(user=reviewer)
    assert (own.blur_radius, own.greyscale) == (0, False)
    colour = png_of(client.get(url("preview", image.pk)))
    assert colour.mode == "RGB"
    assert colour.tobytes() == png_of(client.get(url("unblurred", image.pk))).tobytes()

    client.post(settings_url, {"blur_radius": 30, "greyscale": "on"})
    strong = png_of(client.get(url("preview", image.pk)))
    client.post(settings_url, {"reset": "1"})
    assert not PreviewSettings.objects.filter(user=reviewer).exists()
    default = png_of(client.get(url("preview", image.pk)))
    assert default.mode == strong.mode == "L"
    assert sharpness(strong) < sharpness(default)


# --- What has no picture -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, icon",
    [
        (truncated_png(), "problem.svg"),
        (bomb_png(), "problem.svg"),
        (MP4_HEAD, "video.svg"),
        (b"placeholder text", "file.svg"),
    ],
)
def test_items_without_a_picture_show_an_icon_never_an_error(case, reviewer, data, icon):
    item = collect(case, data)
    client = as_user(reviewer)
    listing = client.get(url("case", case.pk))
    assert listing.status_code == 200
    assert f"evidence/icons/{icon}".encode() in listing.content
    assert url("preview", item.pk).encode() not in listing.content
    preview = client.get(url("preview", item.pk))
    assert preview.status_code == 302 and preview["Location"].endswith(icon)
    assert client.get(url("change", item.pk)).status_code == 200
    assert not events(item, CustodyEvent.Action.PREVIEW)
    download = client.get(url("download", item.pk))  # the bytes are there all the same
    assert b"".join(download.streaming_content) == data


def test_an_image_that_fails_to_decode_at_preview_time_shows_the_icon(
    case, image, reviewer, settings
):
    settings.BAKKME_IMAGE_MAX_PIXELS = 100  # lowered after collection
    preview = as_user(reviewer).get(url("preview", image.pk))
    assert preview.status_code == 302 and preview["Location"].endswith("problem.svg")
    assert not events(image, CustodyEvent.Action.PREVIEW)


def test_a_problem_is_flagged_in_the_list(case, reviewer):
    collect(case, truncated_png())
    listing = as_user(reviewer).get(url("case", case.pk))
    assert EvidenceProblem.CORRUPT.label.encode() in listing.content


# --- Integrity -----------------------------------------------------------------------------------


def test_a_tampered_item_answers_409_and_hands_nothing_out(case, image, reviewer, evidence_root):
    path = evidence_root / image.storage_name
    raw = bytearray(path.read_bytes())
    raw[-40] ^= 0x01
    path.write_bytes(bytes(raw))
    client = as_user(reviewer)
    download = client.get(url("download", image.pk))
    assert download.status_code == 409
    assert b"integrity check" in download.content
    assert client.get(url("preview", image.pk)).status_code == 409
    assert not events(image, CustodyEvent.Action.DOWNLOAD)
    assert not events(image, CustodyEvent.Action.PREVIEW)
    assert events(image, CustodyEvent.Action.VERIFY_FAILED)


# --- Staff upload --------------------------------------------------------------------------------


def _upload(data: bytes, name="upload.png"):
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_the_assigned_reviewer_uploads_evidence_with_custody(case, reviewer):
    client = as_user(reviewer)
    page = client.get(url("case", case.pk))
    assert b'enctype="multipart/form-data"' in page.content
    response = client.post(
        url("upload", case.pk), {"kind": "media", "file": _upload(pattern_png(seed=3))}
    )
    assert response.status_code == 302
    item = EvidenceItem.objects.get(case=case)
    assert (item.collected_by, item.media_type, item.original_name) == (
        reviewer,
        "image/png",
        "upload.png",
    )
    (event,) = events(item, CustodyEvent.Action.COLLECT)
    assert event.actor == reviewer


def test_the_upload_form_refuses_no_file_and_too_large(case, reviewer, settings):
    client = as_user(reviewer)
    missing = client.post(url("upload", case.pk), {"kind": "media"})
    assert missing.status_code == 400 and "file" in missing.context["upload_form"].errors
    settings.BAKKME_EVIDENCE_MAX_BYTES = 1000
    big = client.post(url("upload", case.pk), {"kind": "media", "file": _upload(b"0" * 5000)})
    assert big.status_code == 413
    assert b"larger than the limit" in big.content
    assert not EvidenceItem.objects.exists()


def test_the_upload_checks_the_csrf_token(case, reviewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)
    response = client.post(url("upload", case.pk), {"kind": "media", "file": _upload(b"x")})
    assert response.status_code == 403
    assert not EvidenceItem.objects.exists()


# --- One rule for lists and single items ---------------------------------------------------------


def test_the_list_query_agrees_with_may_access(integration, reviewer, other_reviewer, legal, cso,
                                               auditor, senior):  # fmt: skip
    held = make_report(integration).case
    actions.claim_next_case(reviewer)
    free = make_report(integration).case
    granted = make_report(integration).case
    access.grant(granted, legal, by=cso, reason="placeholder reason")
    by_group = make_report(integration).case
    team = Group.objects.create(name="legal-team-placeholder")
    assign_perm("cases.view_case", team, by_group)
    assign_perm("cases.view_case_evidence", team, by_group)
    member = UserFactory(username="lou", roles=["legal", "legal-team-placeholder"])
    plain = make_report(integration, category="other").case
    cases = [held, free, granted, by_group, plain]
    for case in cases:
        case.refresh_from_db()
    for user in [reviewer, other_reviewer, legal, member, cso, auditor, senior]:
        listed = set(accessible_cases(user).values_list("pk", flat=True))
        expected = {c.pk for c in cases if access.may_access(user, c)}
        assert listed == expected, user.username
    assert {c.pk for c in accessible_cases(reviewer)} == {held.pk}
    assert {c.pk for c in accessible_cases(member)} == {by_group.pk}
    assert len(accessible_cases(cso)) == len(cases)


def test_the_evidence_changelist_shows_only_reachable_items_in_constant_queries(
    integration, case, image, reviewer, auditor
):
    other_case = make_report(integration).case
    hidden = collect(other_case, b"placeholder")
    client = as_user(reviewer)
    changelist = reverse("admin:evidence_evidenceitem_changelist")
    response = client.get(changelist)
    assert [i.pk for i in response.context["cl"].result_list] == [image.pk]
    assert hidden.pk not in [i.pk for i in accessible_items(reviewer)]
    found = client.get(changelist, {"q": image.sha256}).context["cl"].result_list
    assert [i.pk for i in found] == [image.pk]
    with CaptureQueriesContext(connection) as few:
        client.get(changelist)
    for n in range(4):
        collect(case, f"placeholder {n}".encode())
    with CaptureQueriesContext(connection) as more:
        assert len(client.get(changelist).context["cl"].result_list) == 5
    assert len(more) == len(few)
    assert as_user(auditor).get(changelist).status_code == 403


def test_the_generic_admin_neither_adds_changes_nor_deletes(case, image, cso):
    client = as_user(cso)
    assert client.get(reverse("admin:evidence_evidenceitem_add")).status_code == 403
    assert client.post(url("delete", image.pk)).status_code == 403
    assert EvidenceItem.objects.filter(pk=image.pk).exists()


# --- The custody ledger in the admin -------------------------------------------------------------


def test_auditors_read_the_whole_ledger_but_never_the_bytes(case, image, reviewer, auditor):
    as_user(reviewer).get(url("preview", image.pk))
    client = as_user(auditor)
    ledger = reverse("admin:evidence_custodyevent_changelist")
    listed = client.get(ledger)
    assert listed.status_code == 200
    assert {e.action for e in listed.context["cl"].result_list} == {"collect", "preview"}
    previews = client.get(ledger, {"action__exact": "preview"}).context["cl"].result_list
    assert [e.action for e in previews] == ["preview"]
    by_actor = client.get(ledger, {"actor__id__exact": reviewer.pk}).context["cl"].result_list
    assert [e.action for e in by_actor] == ["preview"]
    by_item = client.get(ledger, {"q": str(image.pk)}).context["cl"].result_list
    assert len(by_item) == 2
    by_hash = client.get(ledger, {"q": image.sha256}).context["cl"].result_list
    assert len(by_hash) == 2
    event = image.custody.first()
    page = client.get(reverse("admin:evidence_custodyevent_change", args=[event.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    delete = client.post(reverse("admin:evidence_custodyevent_delete", args=[event.pk]))
    assert delete.status_code == 403
    assert client.get(url("download", image.pk)).status_code == 404


def test_legal_sees_the_ledger_of_granted_cases_only(integration, case, image, legal, cso):
    other = collect(make_report(integration).case, b"placeholder")
    client = as_user(legal)
    ledger = reverse("admin:evidence_custodyevent_changelist")
    assert not client.get(ledger).context["cl"].result_list
    access.grant(case, legal, by=cso, reason="placeholder reason")
    items = {e.item_id for e in client.get(ledger).context["cl"].result_list}
    assert items == {image.pk} and other.pk not in items


def test_the_case_workspace_links_to_its_evidence(case, image, reviewer, auditor):
    page = as_user(reviewer).get(reverse("admin:cases_case_change", args=[case.pk]))
    assert url("case", case.pk).encode() in page.content
    assert b"Evidence (1)" in page.content
    page = as_user(auditor).get(reverse("admin:cases_case_change", args=[case.pk]))
    assert url("case", case.pk).encode() not in page.content
