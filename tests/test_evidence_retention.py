import io
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.utils import timezone

from cases import actions
from cases.actions import DecisionInput
from evidence import access, crypto, holds, retention, vault
from evidence import actions as vault_actions
from evidence.models import CustodyEvent, EvidenceItem, LegalHold

from .factories import make_report

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def collect(case, data=b"placeholder bytes", kind="media"):
    return vault.collect(io.BytesIO(data), case=case, kind=kind)


def stored_files(root):
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def case(integration):
    return make_report(integration, reported_account={"platform_id": "u-held"}).case


def test_held_items_survive_the_purge_and_expired_unheld_ones_are_gone(
    settings, integration, case, legal, evidence_root
):
    other = make_report(integration).case
    held = collect(case)
    gone = collect(other)
    holds.place(by=legal, reason="preservation request", authority="law_enforcement_request",
                account_platform_id="u-held")  # fmt: skip
    later = timezone.now() + settings.BAKKME_EVIDENCE_RETENTION_DAYS["media"] * DAY + DAY
    with time_machine.travel(later, tick=False):
        result = retention.purge()
    assert (result.purged, result.held) == (1, 1)
    held.refresh_from_db()
    gone.refresh_from_db()
    assert held.purged_at is None and vault.check(held) is None
    assert gone.purged_at == later and gone.wrapped_key == b"" and gone.storage_name == ""
    assert len(stored_files(evidence_root)) == 1  # only the held item's bytes remain
    destroyed = gone.custody.get(action=CustodyEvent.Action.DESTROY)
    assert destroyed.item_sha256 == gone.sha256
    assert retention.purge(later).purged == 0  # a second run destroys nothing more


def test_nothing_goes_before_its_retention_period(settings, case):
    item = collect(case)
    almost = timezone.now() + settings.BAKKME_EVIDENCE_RETENTION_DAYS["media"] * DAY - DAY
    assert retention.purge(almost).purged == 0
    item.refresh_from_db()
    assert item.purged_at is None


def test_items_of_a_closed_no_violation_case_go_after_90_days(settings, case, senior):
    item = collect(case)
    actions.decide_case(case, DecisionInput("no_violation", "placeholder"), actor=senior)
    actions.close_case(case, actor=senior)
    days = settings.BAKKME_EVIDENCE_NO_VIOLATION_RETENTION_DAYS
    assert retention.purge(timezone.now() + (days - 1) * DAY).purged == 0
    assert retention.purge(timezone.now() + (days + 1) * DAY).purged == 1
    item.refresh_from_db()
    assert item.purged


def test_a_hold_on_a_case_expires_and_a_released_hold_no_longer_protects(case, legal, cso):
    item = collect(case)
    # Legal staff hold the cases granted to them; another case is answered as if missing.
    with pytest.raises(ValidationError) as refused:
        holds.place(by=legal, reason="litigation", authority="litigation", case=case)
    assert refused.value.message_dict == {"case": ["No such case."]}
    access.grant(case, legal, by=cso, reason="litigation support")
    hold = holds.place(by=legal, reason="litigation", authority="litigation", case=case,
                       expires_at=timezone.now() + 400 * DAY)  # fmt: skip
    assert holds.is_held(item)
    events = list(item.custody.values_list("action", flat=True))
    assert events == ["collect", "hold_placed"]
    assert not holds.is_held(item, timezone.now() + 401 * DAY)
    holds.release(hold, by=legal, reason="case settled")
    assert not holds.is_held(item)
    assert item.custody.filter(action="hold_released").exists()
    assert LegalHold.history.filter(id=hold.pk).first().history_user == legal
    with pytest.raises(ValidationError):
        holds.release(hold, by=legal, reason="again")


def test_a_hold_needs_a_subject_a_reason_and_the_permission(case, legal, reviewer):
    with pytest.raises(ValidationError) as error:
        holds.place(by=legal, reason="", authority="litigation")
    assert set(error.value.message_dict) == {"reason", "case"}
    with pytest.raises(PermissionDenied):
        holds.place(by=reviewer, reason="x", authority="litigation", case=case)


def test_rotating_the_master_key_rewraps_data_keys_without_touching_the_items(
    settings, case, evidence_root
):
    item = collect(case, b"placeholder " * 1000)
    before = {p: p.read_bytes() for p in stored_files(evidence_root)}
    old = settings.BAKKME_EVIDENCE_KEY
    settings.BAKKME_EVIDENCE_KEY = crypto.new_key_text()
    settings.BAKKME_EVIDENCE_OLD_KEYS = [old]
    out = io.StringIO()
    call_command("rotate_evidence_key", stdout=out)
    assert "1 data keys re-wrapped" in out.getvalue()
    assert {p: p.read_bytes() for p in stored_files(evidence_root)} == before
    settings.BAKKME_EVIDENCE_OLD_KEYS = []  # the old key can go now
    item.refresh_from_db()
    assert item.key_id == crypto.current_key().key_id
    assert b"".join(vault.read_verified(item)) == b"placeholder " * 1000
    assert item.custody.filter(action=CustodyEvent.Action.KEY_ROTATED).exists()
    assert vault_actions.rotate_master_key() == 0


def test_rotating_the_master_key_skips_items_retention_destroyed(settings, case):
    """A destroyed item's data key is wiped: the rotation re-wraps the others and ends."""
    gone = collect(case, b"placeholder gone")
    kept = collect(case, b"placeholder kept")
    EvidenceItem.objects.filter(pk=gone.pk).update(collected_at=timezone.now() - 400 * DAY)
    assert retention.purge().purged == 1
    old = settings.BAKKME_EVIDENCE_KEY
    settings.BAKKME_EVIDENCE_KEY = crypto.new_key_text()
    settings.BAKKME_EVIDENCE_OLD_KEYS = [old]
    assert vault_actions.rotate_master_key() == 1
    kept.refresh_from_db()
    assert kept.key_id == crypto.current_key().key_id
    assert b"".join(vault.read_verified(kept)) == b"placeholder kept"


def test_the_purge_runs_daily_as_a_django_q_schedule():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="evidence-retention")
    assert schedule.func == "evidence.tasks.purge_expired_evidence"
    assert schedule.schedule_type == Schedule.DAILY


def test_purged_items_are_skipped_by_verify_custody(settings, case):
    collect(case)
    later = timezone.now() + settings.BAKKME_EVIDENCE_RETENTION_DAYS["media"] * DAY + DAY
    retention.purge(later)
    out = io.StringIO()
    call_command("verify_custody", stdout=out)
    assert "0 stored items checked, 0 problems" in out.getvalue()
    assert EvidenceItem.objects.get().purged


def test_legal_staff_place_and_release_a_hold_in_the_admin(client, case, legal, cso):
    item = collect(case)
    access.grant(case, legal, by=cso, reason="law-enforcement request")
    client.force_login(legal)
    add = "/admin/evidence/legalhold/add/"
    assert client.get(add).status_code == 200
    missing = client.post(add, {"authority": "litigation", "reason": ""})
    assert missing.status_code == 200
    assert "This field is required." in missing.content.decode()
    assert not LegalHold.objects.exists()
    placed = client.post(
        add,
        {"case": case.pk, "reason": "preservation request", "authority": "law_enforcement_request",
         "authority_reference": "LE-1", "expires_at": ""},
    )  # fmt: skip
    hold = LegalHold.objects.get()
    assert placed.status_code == 302 and placed["Location"].endswith(f"/{hold.pk}/change/")
    assert holds.is_held(item)
    page = client.get(f"/admin/evidence/legalhold/{hold.pk}/change/")
    assert "Release this hold" in page.content.decode()
    client.post(f"/admin/evidence/legalhold/{hold.pk}/release/", {"reason": "request withdrawn"})
    hold.refresh_from_db()
    assert hold.released_by == legal and hold.release_reason == "request withdrawn"
    assert not holds.is_held(item)


def test_auditors_read_holds_and_reviewers_cannot_place_them(
    client, case, legal, auditor, reviewer
):
    holds.place(by=legal, reason="litigation", authority="litigation", account_platform_id="u-1")
    client.force_login(auditor)
    assert client.get("/admin/evidence/legalhold/").status_code == 200
    assert client.get("/admin/evidence/legalhold/add/").status_code == 403
    client.force_login(reviewer)
    assert client.get("/admin/evidence/legalhold/").status_code == 403
    assert client.post("/admin/evidence/legalhold/add/", {}).status_code == 403
