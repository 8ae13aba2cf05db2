"""Issue 13, access findings: nobody grants themselves rights, privileged roles take two people,
and everything that hangs off a case follows the case's visibility (404 outside it).

Each test reproduces a finding of the probe; on the code before the fix each one failed.
"""

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import models
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from cases import actions
from cases.admin_scoping import CaseScopedAdminMixin
from cases.models import Case
from detection.actions import review_detection
from detection.models import Detection, HashBank, HashEntry, HashMatch
from evidence import access, holds, vault
from evidence.models import EvidenceItem, LegalHold
from evidence.samples import pattern_png
from legal import actions as legal_actions
from legal.models import LawEnforcementRequest
from reports.models import Report
from staff import privileges
from staff.actions import notify
from staff.models import Notification, PrivilegeRequest, StaffProfile

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db
User = get_user_model()


def user_form(user, **changes) -> dict:
    """The user change form as the admin page posts it, with `changes` applied."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [g.pk for g in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "initial-date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def group(name) -> Group:
    return Group.objects.get(name=name)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada", roles=["admin"])


@pytest.fixture
def second_admin(db):
    return UserFactory(username="abe", roles=["admin"])


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_superuser=True)


def change_url(user) -> str:
    return reverse("admin:auth_user_change", args=[user.pk])


# --- 1. The admin role cannot make itself superuser or CSO -----------------------------------


def test_an_admin_cannot_make_itself_superuser_or_cso(client, admin_user):
    client.force_login(admin_user)
    for changes in (
        {"is_superuser": "on"},
        {"groups": [group("admin").pk, group("child_safety_officer").pk]},
    ):
        response = client.post(change_url(admin_user), user_form(admin_user, **changes))
        assert response.status_code == 403
        assert b"You cannot change your own roles" in response.content
    admin_user.refresh_from_db()
    assert not admin_user.is_superuser
    assert set(admin_user.groups.values_list("name", flat=True)) == {"admin"}
    assert not Case.objects.visible_to(admin_user).filter(is_child_safety=True).exists()


def test_an_admin_changes_their_own_name_but_not_their_flags(client, admin_user):
    client.force_login(admin_user)
    response = client.post(change_url(admin_user), user_form(admin_user, first_name="Ada"))
    assert response.status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.first_name == "Ada"
    response = client.post(change_url(admin_user), user_form(admin_user, is_staff=""))
    assert response.status_code == 403
    admin_user.refresh_from_db()
    assert admin_user.is_staff


def test_a_privileged_role_is_never_granted_through_the_user_form(
    client, admin_user, superuser, reviewer
):
    for editor in (admin_user, superuser):
        client.force_login(editor)
        response = client.post(
            change_url(reviewer),
            user_form(reviewer, groups=[group("reviewer").pk, group("legal").pk]),
        )
        assert response.status_code == 403
        assert b"takes two people" in response.content
    assert not reviewer.groups.filter(name="legal").exists()
    # A role that is not privileged is granted by one person.
    client.force_login(admin_user)
    response = client.post(
        change_url(reviewer), user_form(reviewer, groups=[group("senior_reviewer").pk])
    )
    assert response.status_code == 302
    assert set(reviewer.groups.values_list("name", flat=True)) == {"senior_reviewer"}


def test_only_a_superuser_sets_permissions_and_nobody_ticks_superuser(
    client, admin_user, superuser, reviewer
):
    from django.contrib.auth.models import Permission

    perm = Permission.objects.get(codename="view_case_evidence")
    client.force_login(admin_user)
    response = client.post(change_url(reviewer), user_form(reviewer, user_permissions=[perm.pk]))
    assert response.status_code == 403
    assert b"Only a superuser sets" in response.content
    assert not reviewer.user_permissions.exists()
    client.force_login(superuser)
    response = client.post(change_url(reviewer), user_form(reviewer, is_superuser="on"))
    assert response.status_code == 403
    reviewer.refresh_from_db()
    assert not reviewer.is_superuser


def test_an_admin_reads_but_does_not_edit_a_superuser(client, admin_user, superuser):
    client.force_login(admin_user)
    assert client.get(change_url(superuser)).status_code == 200
    response = client.post(change_url(superuser), user_form(superuser, is_superuser=""))
    assert response.status_code == 403
    assert b"Only a superuser edits a superuser" in response.content
    superuser.refresh_from_db()
    assert superuser.is_superuser


def test_passwords_are_set_only_by_a_superuser_and_never_ones_own(
    client, admin_user, superuser, reviewer
):
    password_url = reverse("admin:auth_user_password_change", args=[reviewer.pk])
    new = {"password1": "another long passphrase 42", "password2": "another long passphrase 42"}
    client.force_login(admin_user)
    response = client.post(password_url, {**new, "usable_password": "true"})
    assert response.status_code == 403
    assert b"Only a superuser sets another person" in response.content
    reviewer.refresh_from_db()
    assert not reviewer.check_password(new["password1"])
    own = reverse("admin:auth_user_password_change", args=[superuser.pk])
    client.force_login(superuser)
    assert client.get(own).status_code == 403
    response = client.post(password_url, {**new, "usable_password": "true"})
    assert response.status_code == 302
    reviewer.refresh_from_db()
    assert reviewer.check_password(new["password1"])


def test_nobody_keeps_their_own_compliance_record(client, cso):
    profile = StaffProfile.objects.get(user=cso)
    client.force_login(cso)
    url = reverse("admin:staff_staffprofile_change", args=[profile.pk])
    response = client.post(url, {"csae_training_on": timezone.localdate().isoformat()})
    assert response.status_code == 403
    assert b"kept by someone else" in response.content


# --- Two people for a privileged role ---------------------------------------------------------


def test_a_privileged_role_takes_one_to_ask_and_a_second_to_approve(
    client, admin_user, second_admin, reviewer
):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:staff_privilegerequest_add"),
        {"user": reviewer.pk, "privilege": "legal", "reason": "placeholder reason"},
    )
    assert response.status_code == 302
    asked = PrivilegeRequest.objects.get()
    assert asked.status == "pending" and not reviewer.groups.filter(name="legal").exists()
    decide = reverse("admin:staff_privilegerequest_decide", args=[asked.pk])

    # The one who asked cannot approve it, nor can the person concerned.
    response = client.post(decide, {"decision": "approve"})
    assert response.status_code == 403
    assert b"A second person decides" in response.content
    with pytest.raises(PermissionDenied):
        privileges.approve_privilege(asked, actor=reviewer)
    assert not reviewer.groups.filter(name="legal").exists()

    client.force_login(second_admin)
    page = client.get(reverse("admin:staff_privilegerequest_change", args=[asked.pk]))
    assert b"Approve and grant" in page.content
    response = client.post(decide, {"decision": "approve"})
    assert response.status_code == 302
    assert reviewer.groups.filter(name="legal").exists()
    asked.refresh_from_db()
    assert asked.status == "approved" and asked.decided_by == second_admin

    trail = AuditEvent.objects.filter(object_type="auth.user", object_id=str(reviewer.pk))
    assert trail.filter(action="privilege_requested", actor=admin_user).exists()
    assert trail.filter(action="privilege_approved", actor=second_admin).exists()
    assert trail.filter(action="role_changed", detail={"added": ["legal"]}).exists()


def test_a_refusal_needs_a_reason_and_grants_nothing(admin_user, second_admin, reviewer):
    asked = privileges.request_privilege(
        reviewer, "child_safety_officer", actor=admin_user, reason="placeholder"
    )
    with pytest.raises(Exception, match="Say why"):
        privileges.reject_privilege(asked, actor=second_admin, note=" ")
    privileges.reject_privilege(asked, actor=second_admin, note="placeholder")
    asked.refresh_from_db()
    assert asked.status == "rejected"
    assert not reviewer.groups.filter(name="child_safety_officer").exists()
    assert AuditEvent.objects.filter(action="privilege_rejected", actor=second_admin).exists()
    with pytest.raises(Exception, match="already"):
        privileges.approve_privilege(asked, actor=second_admin)


def test_superuser_takes_two_superusers(admin_user, superuser, reviewer):
    with pytest.raises(PermissionDenied):
        privileges.request_privilege(reviewer, "superuser", actor=admin_user, reason="x")
    asked = privileges.request_privilege(reviewer, "superuser", actor=superuser, reason="x")
    with pytest.raises(PermissionDenied):
        privileges.approve_privilege(asked, actor=admin_user)
    with pytest.raises(PermissionDenied):
        privileges.approve_privilege(asked, actor=superuser)  # the one who asked
    other = UserFactory(username="root2", is_superuser=True)
    privileges.approve_privilege(asked, actor=other)
    reviewer.refresh_from_db()
    assert reviewer.is_superuser


def test_asking_twice_or_for_what_is_held_is_refused_with_field_errors(
    client, admin_user, reviewer
):
    privileges.request_privilege(reviewer, "legal", actor=admin_user, reason="placeholder")
    client.force_login(admin_user)
    add = reverse("admin:staff_privilegerequest_add")
    response = client.post(add, {"user": reviewer.pk, "privilege": "legal", "reason": "again"})
    assert response.status_code == 200
    assert "waits for approval" in str(response.context["form"].errors["privilege"])
    response = client.post(add, {"user": admin_user.pk, "privilege": "admin", "reason": "x"})
    assert "already has" in str(response.context["form"].errors["privilege"])
    assert PrivilegeRequest.objects.count() == 1


# --- 2. Legal holds of cases a person cannot see ----------------------------------------------


@pytest.fixture
def case_with_hold(integration, cso):
    report = make_report(integration, category="grooming")
    item = vault.collect(io.BytesIO(pattern_png(seed=3)), case=report.case, report=report)
    hold = holds.place(by=cso, reason="placeholder", authority="litigation", case=report.case)
    return report.case, item, hold


def test_legal_not_granted_a_case_gets_404_on_its_holds(client, legal, case_with_hold):
    case, item, hold = case_with_hold
    client.force_login(legal)
    changelist = client.get(reverse("admin:evidence_legalhold_changelist"))
    assert changelist.status_code == 200 and hold not in changelist.context["cl"].result_list
    for url in (
        reverse("admin:evidence_legalhold_change", args=[hold.pk]),
        reverse("admin:evidence_legalhold_history", args=[hold.pk]),
    ):
        assert client.get(url).status_code == 404
    release = reverse("admin:evidence_legalhold_release", args=[hold.pk])
    assert client.post(release, {"reason": "placeholder"}).status_code == 404
    hold.refresh_from_db()
    assert hold.released_at is None
    with pytest.raises(PermissionDenied):
        holds.release(hold, by=legal, reason="placeholder")


def test_the_hold_form_answers_alike_for_missing_and_hidden_cases_and_items(
    client, legal, case_with_hold
):
    case, item, _ = case_with_hold
    client.force_login(legal)
    add = reverse("admin:evidence_legalhold_add")
    base = {"reason": "placeholder", "authority": "litigation"}

    def errors(**fields):
        response = client.post(add, {**base, **fields})
        assert response.status_code == 200
        return response.context["form"].errors

    missing_case = Case.objects.order_by("-pk").first().pk + 1000
    assert errors(case=case.pk)["case"] == errors(case=missing_case)["case"] == ["No such case."]
    missing_item = EvidenceItem.objects.order_by("-pk").first().pk + 1000
    hidden = errors(item_ids=str(item.pk))["item_ids"]
    assert hidden == [m.replace(str(missing_item), str(item.pk)) for m in
                      errors(item_ids=str(missing_item))["item_ids"]]  # fmt: skip
    assert LegalHold.objects.count() == 1


def test_legal_granted_the_case_sees_and_releases_its_hold(client, legal, cso, case_with_hold):
    case, _, hold = case_with_hold
    access.grant(case, legal, by=cso, reason="placeholder")
    client.force_login(legal)
    assert client.get(reverse("admin:evidence_legalhold_change", args=[hold.pk])).status_code == 200
    response = client.post(
        reverse("admin:evidence_legalhold_release", args=[hold.pk]), {"reason": "placeholder"}
    )
    assert response.status_code == 302
    hold.refresh_from_db()
    assert hold.released_by == legal


def test_an_account_hold_is_seen_by_who_placed_it_and_by_who_sees_the_account(legal, cso):
    own = holds.place(
        by=legal, reason="placeholder", authority="litigation", account_platform_id="u-x"
    )
    other = holds.place(
        by=cso, reason="placeholder", authority="litigation", account_platform_id="u-x"
    )
    assert set(holds.visible_holds(legal)) == {own}
    assert set(holds.visible_holds(cso)) == {own, other}


# --- 3. Detections and hash matches follow the compliance gate --------------------------------


@pytest.fixture
def senior_expired(db):
    person = UserFactory(username="sid", roles=["senior_reviewer"])
    old = timezone.localdate() - timedelta(days=settings.BAKKME_CSAE_TRAINING_VALID_DAYS + 1)
    StaffProfile.objects.filter(user=person).update(csae_training_on=old)
    return person


@pytest.fixture
def csam_detection(integration):
    report = make_report(integration, category="csam", surface="image")
    item = vault.collect(io.BytesIO(pattern_png(seed=4)), case=report.case, report=report)
    bank = HashBank.objects.create(name="placeholder-bank", source="internal", is_csam=True)
    entry = HashEntry.objects.create(bank=bank, signal_type="md5", value=item.md5)
    match = HashMatch.objects.create(item=item, entry=entry, distance=0)
    detection = Detection.objects.create(
        case=report.case,
        item=item,
        method="hash",
        matched={"bank": bank.name, "entry": entry.pk, "distance": 0},
    )
    actions.apply_csam_hash_match(item, [match])
    return detection, match


def test_a_senior_with_expired_training_sees_no_detection_of_a_child_safety_case(
    client, senior_expired, csam_detection
):
    detection, match = csam_detection
    client.force_login(senior_expired)
    for name, obj in (("detection_detection", detection), ("detection_hashmatch", match)):
        listing = client.get(reverse(f"admin:{name}_changelist"))
        assert listing.status_code == 200 and obj not in listing.context["cl"].result_list
        assert client.get(reverse(f"admin:{name}_change", args=[obj.pk])).status_code == 404
        assert client.get(reverse(f"admin:{name}_history", args=[obj.pk])).status_code == 404


def test_a_senior_with_expired_training_cannot_overturn_a_csam_hash_detection(
    client, senior_expired, csam_detection
):
    detection, _ = csam_detection
    client.force_login(senior_expired)
    client.post(
        reverse("admin:detection_detection_changelist"),
        {"action": "overturn", "_selected_action": [detection.pk]},
    )
    with pytest.raises(PermissionDenied):
        review_detection(detection, actor=senior_expired, confirmed=False)
    detection.refresh_from_db()
    assert detection.outcome == "pending"
    pending = detection.case.actions.filter(decision__isnull=True, status="pending")
    assert set(pending.values_list("type", flat=True)) == {"remove_content", "suspend_account"}


def test_every_admin_of_a_case_linked_model_goes_through_the_case_rule():
    """A model that hangs off a case (a foreign key to a case, or to something that has one)
    must have an admin that is case-scoped; a new one without it fails here."""

    def reaches_case(model, seen=()) -> bool:
        for field in model._meta.get_fields():
            if not (field.is_relation and field.concrete and field.related_model):
                continue
            if isinstance(field, models.ManyToManyField | models.ForeignKey):
                target = field.related_model
                if target is Case:
                    return True
                linked = target not in seen and target._meta.app_label in PROJECT_APPS
                if linked and reaches_case(target, (*seen, model)):
                    return True
        return False

    unscoped = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if model is not Case
        and model._meta.app_label in PROJECT_APPS
        and reaches_case(model)
        and not isinstance(model_admin, CaseScopedAdminMixin)
    ]
    assert unscoped == []
    # The walk finds the models it is about.
    assert reaches_case(HashMatch) and reaches_case(LegalHold) and reaches_case(Notification)


PROJECT_APPS = {"cases", "reports", "evidence", "legal", "staff", "audit"}


# --- 4. Law-enforcement requests follow the cases they name -----------------------------------


def test_legal_see_only_the_requests_of_cases_they_can_see(client, integration, legal, cso):
    hidden_case = make_report(integration).case
    seen_case = make_report(integration).case
    access.grant(seen_case, legal, by=cso, reason="placeholder")
    hidden = LawEnforcementRequest.objects.create(
        agency="placeholder", process_type="subpoena", received_on=timezone.localdate()
    )
    hidden.cases.add(hidden_case)
    seen = LawEnforcementRequest.objects.create(
        agency="placeholder", process_type="subpoena", received_on=timezone.localdate()
    )
    seen.cases.add(seen_case)
    assert set(legal_actions.visible_requests(legal)) == {seen}
    client.force_login(legal)
    listing = client.get(reverse("admin:legal_lawenforcementrequest_changelist"))
    assert list(listing.context["cl"].result_list) == [seen]
    hidden_url = reverse("admin:legal_lawenforcementrequest_change", args=[hidden.pk])
    assert client.get(hidden_url).status_code == 404
    assert set(legal_actions.visible_requests(cso)) == {hidden, seen}


# --- Other rows that hang off a case ----------------------------------------------------------


def test_notifications_about_a_case_one_no_longer_sees_are_not_listed(client, integration):
    person = UserFactory(username="nora", roles=["reviewer"])
    case = make_report(integration, category="grooming").case
    (notification,) = notify(Notification.Kind.SLA_WARNING, {person: [case.pk]}, timezone.now())
    client.force_login(person)
    listing = client.get(reverse("admin:staff_notification_changelist"))
    assert notification in listing.context["cl"].result_list
    old = timezone.localdate() - timedelta(days=settings.BAKKME_CSAE_TRAINING_VALID_DAYS + 1)
    StaffProfile.objects.filter(user=person).update(csae_training_on=old)
    listing = client.get(reverse("admin:staff_notification_changelist"))
    assert notification not in listing.context["cl"].result_list
    open_url = reverse("admin:staff_notification_open", args=[notification.pk])
    assert client.get(open_url).status_code == 404


def test_reports_of_a_hidden_case_answer_404_like_missing_ones(client, integration, legal):
    report = make_report(integration, category="grooming")
    client.force_login(legal)
    hidden = client.get(reverse("admin:reports_report_change", args=[report.pk]))
    missing = client.get(reverse("admin:reports_report_change", args=[report.pk + 1000]))
    assert hidden.status_code == missing.status_code == 404
    assert Report.objects.filter(pk=report.pk).exists()
