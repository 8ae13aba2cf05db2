"""The access matrix: every URL of the project against every kind of staff member.

One table (EXPECTED) says, for each URL pattern, what each principal gets. The test walks the
project's URL conf, so a URL added without a row fails `test_every_url_has_a_row`. Each request
runs in a savepoint that is rolled back, so one probe's effects (a claim released, a note
added) do not change what the next probe sees.

Outcomes: a status code (200, 403, 404, 405, ...), "login" (sent to the login page), "2fa"
(sent to the second-factor page), "redirect" (any other redirect: a form that was posted, an
object page that moved).
"""

import copy
import io
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_q.models import Schedule

from audit.models import AuditEvent
from cases import actions
from cases.actions import DecisionInput
from cases.models import Case, EnforcementAction
from detection.models import (
    BanEvasionIdentifier,
    BlockedLink,
    Detection,
    HashBank,
    HashEntry,
    HashMatch,
    LexiconTerm,
)
from evidence import holds, packages, vault
from evidence.access import grant
from evidence.models import CustodyEvent
from evidence.samples import pattern_png
from legal import duties
from legal.freeze import freeze_account
from legal.models import CyberTiplineReport, LawEnforcementReferral, LawEnforcementRequest
from reports.models import AccountEvent
from staff.actions import notify
from staff.models import Notification, StaffProfile
from staff.privileges import request_privilege

from .factories import UserFactory, make_report

pytestmark = pytest.mark.django_db

PRINCIPALS = [
    "anonymous",  # nobody logged in
    "unverified",  # a reviewer who gave a password but no second factor
    "assigned",  # the reviewer holding the child-safety case
    "reviewer",  # another reviewer, not assigned to it
    "expired",  # a reviewer whose CSAE training has expired
    "senior",
    "senior_expired",  # a senior reviewer whose CSAE training has expired
    "legal",  # legal staff not granted the case
    "legal_granted",  # legal staff granted the case (an escalation to legal)
    "cso",
    "auditor",
    "admin",  # the technical admin role (not a superuser)
    "superuser",
]


def url_patterns(resolver=None, prefix="", namespace=None):
    """(key, pattern) for every URL: the key is the namespaced name, or the pattern when the
    URL has no name."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            ns = pattern.namespace
            ns = f"{namespace}:{ns}" if namespace and ns else (ns or namespace)
            yield from url_patterns(pattern, prefix + str(pattern.pattern), ns)
        else:
            assert isinstance(pattern, URLPattern)
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield name or prefix + str(pattern.pattern), prefix + str(pattern.pattern)


# --- The world the probes run in -----------------------------------------------------------------


@pytest.fixture
def world(integration, django_capture_on_commit_callbacks, evidence_root, settings):
    """One child-safety case held by the "assigned" reviewer, with evidence, a hold and a ready
    package; a decided case with its actions; a notification; the people."""
    people = {
        "unverified": UserFactory(username="p_unverified", roles=["reviewer"]),
        "assigned": UserFactory(username="p_assigned", roles=["reviewer"]),
        "reviewer": UserFactory(username="p_reviewer", roles=["reviewer"]),
        "expired": UserFactory(username="p_expired", roles=["reviewer"]),
        "senior": UserFactory(username="p_senior", roles=["senior_reviewer"]),
        "senior_expired": UserFactory(username="p_senior_expired", roles=["senior_reviewer"]),
        "legal": UserFactory(username="p_legal", roles=["legal"]),
        "legal_granted": UserFactory(username="p_legal_granted", roles=["legal"]),
        "cso": UserFactory(username="p_cso", roles=["child_safety_officer"]),
        "auditor": UserFactory(username="p_auditor", roles=["auditor"]),
        "admin": UserFactory(username="p_admin", roles=["admin"]),
        "superuser": UserFactory(username="p_superuser", is_superuser=True),
    }
    old = timezone.localdate() - timedelta(days=settings.BAKKME_CSAE_TRAINING_VALID_DAYS + 1)
    StaffProfile.objects.filter(user__in=[people["expired"], people["senior_expired"]]).update(
        csae_training_on=old
    )

    report = make_report(integration, category="grooming", reported_account={"platform_id": "u-m"})
    case = report.case
    assert actions.claim_next_case(people["assigned"]) == case
    item = vault.collect(io.BytesIO(pattern_png(seed=1)), case=case, report=report)
    hold = holds.place(by=people["cso"], reason="placeholder", authority="litigation", case=case)
    grant(case, people["legal_granted"], by=people["cso"], reason="placeholder")
    with django_capture_on_commit_callbacks(execute=True):
        package = packages.request_package(
            case, people["cso"], purpose="placeholder", recipient="placeholder"
        )
    package.refresh_from_db()
    assert package.status == "ready", package.error

    other = make_report(integration, category="other", reported_account={"platform_id": "u-o"})
    actions.decide_case(
        other.case, DecisionInput("no_violation", "placeholder"), actor=people["senior"]
    )
    action = EnforcementAction.objects.create(case=other.case, type="warn")
    cybertip = CyberTiplineReport.objects.create(case=case)
    freeze = freeze_account(
        case,
        actor=people["cso"],
        since=timezone.now() - timedelta(days=30),
        until=timezone.now() - timedelta(minutes=1),
        reason="placeholder",
    )
    duty = duties.open_duty(
        kind="cybertip_report",
        title="placeholder",
        started_at=timezone.now(),
        hours=24,
        case=case,
        cybertip_report=cybertip,
    )
    referral = LawEnforcementReferral.objects.create(
        case=case, agency="placeholder", country="US", contact="placeholder", sent="placeholder"
    )
    le_request = LawEnforcementRequest.objects.create(
        agency="placeholder", process_type="subpoena", received_on=timezone.localdate()
    )
    le_request.cases.add(case)
    hash_bank = HashBank.objects.create(name="placeholder", source="internal", is_csam=False)
    hash_entry = HashEntry.objects.create(bank=hash_bank, signal_type="md5", value="0" * 32)
    hash_match = HashMatch.objects.create(item=item, entry=hash_entry, distance=0)
    detection = Detection.objects.create(case=case, method="keyword", matched={"spans": []})
    lexicon_term = LexiconTerm.objects.create(pattern="placeholder-term-1", category="grooming")
    blocked_link = BlockedLink.objects.create(value="blocked.example", kind="domain")
    account_event = AccountEvent.objects.create(
        integration=integration,
        idempotency_key="placeholder-event",
        type="login",
        occurred_at=timezone.now(),
        actor_platform_id="u-o",
    )
    banned_identifier = BanEvasionIdentifier.objects.create(
        kind="device", value="placeholder-device", account_platform_id="u-o", source_case=other.case
    )
    privilege_request = request_privilege(
        people["reviewer"], "legal", actor=people["superuser"], reason="placeholder"
    )
    StaticDevice.objects.create(user=people["assigned"], name="test factor", confirmed=True)
    TOTPDevice.objects.create(user=people["assigned"], name="phone", confirmed=True)
    (notification,) = notify(
        Notification.Kind.SLA_WARNING, {people["assigned"]: [case.pk]}, timezone.now()
    )
    ids = {
        "case": case.pk,
        "case_id": case.pk,
        "item_id": item.pk,
        "hold_id": hold.pk,
        "package_id": package.pk,
        "pk": notification.pk,
        "item": "contact_law_enforcement",
        "report_id": report.pk,
        "request_id": privilege_request.pk,
    }
    objects = {
        "auth_group": Group.objects.get(name="reviewer").pk,
        "auth_user": people["assigned"].pk,
        "django_q_schedule": Schedule.objects.get(name="sla-sweep").pk,
        "reports_report": report.pk,
        "reports_integration": integration.pk,
        "detection_hashbank": hash_bank.pk,
        "detection_hashentry": hash_entry.pk,
        "detection_hashmatch": hash_match.pk,
        "detection_detection": detection.pk,
        "detection_lexiconterm": lexicon_term.pk,
        "detection_blockedlink": blocked_link.pk,
        "reports_accountevent": account_event.pk,
        "detection_banevasionidentifier": banned_identifier.pk,
        "cases_case": case.pk,
        "cases_enforcementaction": action.pk,
        "staff_notification": notification.pk,
        "staff_staffprofile": people["assigned"].staff_profile.pk,
        "staff_privilegerequest": privilege_request.pk,
        "evidence_legalhold": hold.pk,
        "evidence_evidencepackage": package.pk,
        "evidence_evidenceitem": item.pk,
        "evidence_custodyevent": CustodyEvent.objects.filter(item=item).first().pk,
        "case_content_type": ContentType.objects.get_for_model(Case).pk,
        "otp_static_staticdevice": StaticDevice.objects.get(user=people["assigned"]).pk,
        "otp_totp_totpdevice": TOTPDevice.objects.get(user=people["assigned"]).pk,
        "audit_auditevent": AuditEvent.objects.order_by("pk").first().pk,
        "legal_cybertiplinereport": cybertip.pk,
        "legal_lawenforcementreferral": referral.pk,
        "legal_lawenforcementrequest": le_request.pk,
        "legal_preservationrequest": freeze.pk,
        "legal_legalduty": duty.pk,
    }
    return {"people": people, "ids": ids, "objects": objects, "case": case}


# For the models the world has no row of (django-q's task records, axes' logs): an id that
# exists in no database, so the answer does not depend on what earlier tests left behind.
NO_SUCH_ID = 999_999_999


def concrete_url(key: str, pattern: str, world) -> str:
    """A URL for the pattern, filled with the world's objects."""
    ids, objects = world["ids"], world["objects"]
    name = key if not key.startswith(("admin/", "api/")) and key else None
    if name and name.startswith("admin:") and "_" in name:
        model_key = next((m for m in sorted(objects, key=len, reverse=True)
                          if name.startswith(f"admin:{m}_")), None)  # fmt: skip
    else:
        model_key = None
    if name:
        if name == "admin:view_on_site":
            return reverse(name, args=[objects["case_content_type"], world["case"].pk])
        if name == "admin:app_list":
            return reverse(name, kwargs={"app_label": "cases"})
        if name.endswith("_simple_history"):
            app_label, model_name = model_key.split("_", 1)
            model = apps.get_model(app_label, model_name)
            pk = objects[model_key]
            record = model.history.filter(id=pk).order_by("history_id").first()
            return reverse(name, args=[pk, record.history_id])
        if "<path:object_id>" in pattern:
            return reverse(name, kwargs={"object_id": objects.get(model_key, NO_SUCH_ID)})
        if "<id>" in pattern:
            return reverse(name, kwargs={"id": objects["auth_user"]})
        kwargs = {k: ids[k] for k in ("case_id", "item_id", "hold_id", "package_id", "pk",
                                      "item", "report_id", "request_id") if f":{k}>" in pattern}  # fmt: skip
        if "<int:pk>" in pattern and model_key and model_key.startswith("otp_"):
            kwargs["pk"] = objects[model_key]
        return reverse(name, kwargs=kwargs)
    # Unnamed patterns: the admin's object redirect and its catch-all.
    if pattern.endswith("<path:object_id>/"):
        return "/" + pattern.replace("<path:object_id>/", f"{NO_SUCH_ID}/")
    if pattern == "admin/(?P<url>.*)$":
        return "/admin/no-such-page/"
    if pattern == "":
        return "/"
    raise AssertionError(f"no URL for {key}")


def outcome(response) -> str | int:
    if response.status_code in (301, 302, 303):
        location = response["Location"]
        if "/admin/login/" in location:
            return "login"
        if "/admin/two-factor/" in location:
            return "2fa"
        return "redirect"
    return response.status_code


# Views that only take POST (a GET answers 404 or 405 for everyone): the matrix posts an empty
# form to them, which is enough to see who is let in (an empty form is then refused or a no-op).
POST_ONLY = {
    "two_factor:logout",
    "admin:logout",
    "admin:cases_case_next",
    "admin:cases_case_decide",
    "admin:cases_case_escalate",
    "admin:cases_case_note",
    "admin:cases_case_release",
    "admin:cases_case_close",
    "admin:cases_case_reopen",
    "admin:cases_case_checklist",
    "admin:staff_notification_read_all",
    "admin:staff_shift",
    "admin:staff_csae_duties",
    "admin:evidence_legalhold_release",
    "admin:evidence_evidenceitem_upload",
    "api:report-create",
    "api:report-batch",
    "api:report-media",
    "api:match",
    "api:events",
    "admin:legal_cybertiplinereport_file",
    "admin:legal_cybertiplinereport_retract",
    "admin:staff_privilegerequest_decide",
    "admin:evidence_evidencepackage_rebuild",
    "admin:legal_preservationrequest_lift",
    "api:records",
}


def probe(client, url: str, method: str) -> str | int:
    """One request whose effects are undone: its database changes are rolled back and the
    client's cookies put back (a logout probe must not log the next probes out)."""
    cookies = copy.deepcopy(client.cookies)
    with transaction.atomic():
        response = client.post(url, {}) if method == "POST" else client.get(url)
        transaction.set_rollback(True)
    client.cookies = cookies
    return outcome(response)


def client_for(principal: str, world) -> Client:
    client = Client()
    if principal != "anonymous":
        client.force_login(world["people"][principal], otp_verified=principal != "unverified")
    return client


# --- The table ---------------------------------------------------------------------------------
# One row per URL; the columns follow PRINCIPALS:
#   anonymous unverified assigned reviewer expired senior senior_expired legal legal_granted cso
#   auditor admin superuser
# Reading guide: "404" where a case or its evidence exists but this person may not know it;
# "403" where the person may know the page but their role cannot use it; POST_ONLY rows were
# posted an empty form ("200" there is the form shown again with its errors).

EXPECTED = {
    "": "redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "two_factor:verify": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "two_factor:enrol": "login 200 2fa 2fa 2fa 2fa 2fa 2fa 2fa 2fa 2fa 2fa 2fa",
    "two_factor:backup_codes": "login 2fa 200 200 200 200 200 200 200 200 200 200 200",
    "two_factor:logout": "login login login login login login login login login login login login login",
    "dashboard:sla": "login 2fa 403 403 403 403 403 403 403 200 200 403 200",
    "admin:index": "login 2fa 200 200 200 200 200 redirect redirect 200 200 200 200",
    "admin:login": "200 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:logout": "redirect redirect 200 200 200 200 200 200 200 200 200 200 200",
    "admin:password_change": "login 2fa 200 200 200 200 200 200 200 200 200 200 200",
    "admin:password_change_done": "login 2fa 200 200 200 200 200 200 200 200 200 200 200",
    "admin:autocomplete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:jsi18n": "login 2fa 200 200 200 200 200 200 200 200 200 200 200",
    "admin:view_on_site": "login 2fa 404 404 404 404 404 404 404 404 404 404 404",
    "admin:auth_group_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:auth_group_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:auth_group_history": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:auth_group_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:auth_group_change": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin/auth/group/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:django_q_schedule_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:django_q_schedule_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:django_q_schedule_history": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:django_q_schedule_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:django_q_schedule_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin/django_q/schedule/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:django_q_success_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:django_q_success_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:django_q_success_history": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:django_q_success_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin:django_q_success_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin/django_q/success/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:django_q_failure_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:django_q_failure_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:django_q_failure_history": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:django_q_failure_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin:django_q_failure_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin/django_q/failure/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:django_q_ormq_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:django_q_ormq_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:django_q_ormq_history": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:django_q_ormq_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin:django_q_ormq_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin/django_q/ormq/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:otp_totp_totpdevice_config": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:otp_totp_totpdevice_qrcode": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:otp_totp_totpdevice_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:otp_totp_totpdevice_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:otp_totp_totpdevice_history": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:otp_totp_totpdevice_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:otp_totp_totpdevice_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin/otp_totp/totpdevice/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:otp_static_staticdevice_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:otp_static_staticdevice_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:otp_static_staticdevice_history": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:otp_static_staticdevice_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:otp_static_staticdevice_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin/otp_static/staticdevice/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:axes_accessattempt_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:axes_accessattempt_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:axes_accessattempt_history": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:axes_accessattempt_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin:axes_accessattempt_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin/axes/accessattempt/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:axes_accesslog_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:axes_accesslog_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:axes_accesslog_history": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:axes_accesslog_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin:axes_accesslog_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin/axes/accesslog/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:axes_accessfailurelog_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:axes_accessfailurelog_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:axes_accessfailurelog_history": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:axes_accessfailurelog_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin:axes_accessfailurelog_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 redirect",
    "admin/axes/accessfailurelog/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:reports_report_changelist": "login 2fa 200 200 200 200 200 200 200 200 200 403 200",
    "admin:reports_report_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:reports_report_history": "login 2fa 200 200 404 200 404 404 200 200 200 404 200",
    "admin:reports_report_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:reports_report_change": "login 2fa 200 200 404 200 404 404 200 200 200 403 200",
    "admin/reports/report/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:reports_integration_simple_history": "login 2fa 403 403 403 403 403 403 403 403 200 200 200",
    "admin:reports_integration_changelist": "login 2fa 403 403 403 403 403 403 403 403 200 200 200",
    "admin:reports_integration_add": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:reports_integration_history": "login 2fa 403 403 403 403 403 403 403 403 200 200 200",
    "admin:reports_integration_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:reports_integration_change": "login 2fa 403 403 403 403 403 403 403 403 200 200 200",
    "admin/reports/integration/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:detection_hashbank_changelist": "login 2fa 403 403 403 200 200 200 200 200 403 403 200",
    "admin:detection_hashbank_add": "login 2fa 403 403 403 200 200 200 200 200 403 403 200",
    "admin:detection_hashbank_history": "login 2fa 403 403 403 200 200 200 200 200 403 403 200",
    "admin:detection_hashbank_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_hashbank_change": "login 2fa 403 403 403 200 200 200 200 200 403 403 200",
    "admin/detection/hashbank/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:detection_hashentry_changelist": "login 2fa 403 403 403 200 200 200 200 200 403 403 200",
    "admin:detection_hashentry_add": "login 2fa 403 403 403 200 200 200 200 200 403 403 200",
    "admin:detection_hashentry_history": "login 2fa 403 403 403 200 200 200 200 200 403 403 200",
    "admin:detection_hashentry_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_hashentry_change": "login 2fa 403 403 403 200 200 200 200 200 403 403 200",
    "admin/detection/hashentry/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:detection_hashmatch_changelist": "login 2fa 403 403 403 200 200 200 200 200 403 403 200",
    "admin:detection_hashmatch_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_hashmatch_history": "login 2fa 403 403 404 200 404 404 200 200 403 404 200",
    "admin:detection_hashmatch_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_hashmatch_change": "login 2fa 403 403 403 200 404 404 200 200 403 403 200",
    "admin/detection/hashmatch/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:detection_lexiconterm_simple_history": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_lexiconterm_changelist": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_lexiconterm_add": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_lexiconterm_history": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_lexiconterm_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_lexiconterm_change": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin/detection/lexiconterm/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:detection_blockedlink_simple_history": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_blockedlink_changelist": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_blockedlink_add": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_blockedlink_history": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_blockedlink_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_blockedlink_change": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin/detection/blockedlink/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:detection_detection_changelist": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_detection_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_detection_history": "login 2fa 403 403 404 200 404 404 403 200 403 404 200",
    "admin:detection_detection_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_detection_change": "login 2fa 403 403 403 200 404 403 403 200 403 403 200",
    "admin/detection/detection/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:reports_accountevent_changelist": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:reports_accountevent_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:reports_accountevent_history": "login 2fa 403 403 403 200 200 404 404 200 403 403 200",
    "admin:reports_accountevent_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:reports_accountevent_change": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin/reports/accountevent/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:detection_banevasionidentifier_changelist": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin:detection_banevasionidentifier_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_banevasionidentifier_history": "login 2fa 403 403 403 200 200 404 404 200 403 403 200",
    "admin:detection_banevasionidentifier_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:detection_banevasionidentifier_change": "login 2fa 403 403 403 200 200 403 403 200 403 403 200",
    "admin/detection/banevasionidentifier/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:cases_case_next": "login 2fa redirect redirect redirect redirect redirect 403 403 redirect 403 403 redirect",
    "admin:cases_case_decide": "login 2fa 200 200 404 200 404 404 403 200 403 404 200",
    "admin:cases_case_escalate": "login 2fa 200 200 404 200 404 404 200 200 403 404 200",
    "admin:cases_case_note": "login 2fa 200 200 404 200 404 404 200 200 403 404 200",
    "admin:cases_case_release": "login 2fa redirect redirect 404 redirect 404 404 403 redirect 403 404 redirect",
    "admin:cases_case_close": "login 2fa 403 403 404 redirect 404 404 403 redirect 403 404 redirect",
    "admin:cases_case_reopen": "login 2fa 403 403 404 200 404 404 403 200 403 404 200",
    "admin:cases_case_checklist": "login 2fa redirect redirect 404 redirect 404 404 redirect redirect 403 404 redirect",
    "admin:cases_case_simple_history": "login 2fa 200 200 403 200 403 403 200 200 200 403 200",
    "admin:cases_case_changelist": "login 2fa 200 200 200 200 200 403 200 200 200 200 200",
    "admin:cases_case_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:cases_case_history": "login 2fa 200 200 403 200 403 403 200 200 200 403 200",
    "admin:cases_case_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:cases_case_change": "login 2fa 200 200 404 200 404 404 200 200 200 404 200",
    "admin/cases/case/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:cases_enforcementaction_changelist": "login 2fa 200 200 200 200 200 200 200 200 200 403 200",
    "admin:cases_enforcementaction_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:cases_enforcementaction_history": "login 2fa 200 200 200 200 200 404 404 200 200 403 200",
    "admin:cases_enforcementaction_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:cases_enforcementaction_change": "login 2fa 200 200 200 200 200 404 404 200 200 403 200",
    "admin/cases/enforcementaction/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:staff_notification_open": "login 2fa redirect 404 404 404 404 404 404 404 404 404 404",
    "admin:staff_notification_read_all": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:staff_shift": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:staff_notification_changelist": "login 2fa 200 200 200 200 200 200 200 200 200 200 200",
    "admin:staff_notification_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:staff_notification_history": "login 2fa 200 404 404 404 404 404 404 404 404 404 404",
    "admin:staff_notification_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:staff_notification_change": "login 2fa 200 404 404 404 404 404 404 404 404 404 404",
    "admin/staff/notification/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:staff_my_compliance": "login 2fa 200 200 200 200 200 200 200 200 200 200 200",
    "admin:staff_csae_duties": "login 2fa 400 400 400 400 400 400 400 400 400 400 400",
    "admin:staff_staffprofile_simple_history": "login 2fa 403 403 403 403 403 403 403 200 200 200 200",
    "admin:staff_staffprofile_changelist": "login 2fa 403 403 403 403 403 403 403 200 200 200 200",
    "admin:staff_staffprofile_add": "login 2fa 403 403 403 403 403 403 403 200 403 200 200",
    "admin:staff_staffprofile_history": "login 2fa 403 403 403 403 403 403 403 200 200 200 200",
    "admin:staff_staffprofile_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:staff_staffprofile_change": "login 2fa 403 403 403 403 403 403 403 200 200 200 200",
    "admin/staff/staffprofile/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:auth_user_password_change": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:auth_user_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:auth_user_add": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:auth_user_history": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:auth_user_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 200",
    "admin:auth_user_change": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin/auth/user/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:staff_privilegerequest_decide": "login 2fa 404 404 404 404 404 404 404 404 404 400 400",
    "admin:staff_privilegerequest_simple_history": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:staff_privilegerequest_changelist": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:staff_privilegerequest_add": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:staff_privilegerequest_history": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin:staff_privilegerequest_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:staff_privilegerequest_change": "login 2fa 403 403 403 403 403 403 403 403 403 200 200",
    "admin/staff/privilegerequest/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:evidence_legalhold_release": "login 2fa 404 404 404 404 404 404 redirect redirect 403 404 redirect",
    "admin:evidence_legalhold_simple_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:evidence_legalhold_changelist": "login 2fa 403 403 403 403 403 200 200 200 200 403 200",
    "admin:evidence_legalhold_add": "login 2fa 403 403 403 403 403 200 200 200 403 403 200",
    "admin:evidence_legalhold_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:evidence_legalhold_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:evidence_legalhold_change": "login 2fa 403 403 403 403 403 404 200 200 200 403 200",
    "admin/evidence/legalhold/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:evidence_evidencepackage_download": "login 2fa 404 404 404 404 404 404 404 200 404 404 404",
    "admin:evidence_evidencepackage_rebuild": "login 2fa 404 404 404 404 404 404 404 409 404 404 409",
    "admin:evidence_evidencepackage_changelist": "login 2fa 403 403 403 403 403 200 200 200 403 403 200",
    "admin:evidence_evidencepackage_add": "login 2fa 403 403 403 403 403 200 200 200 403 403 200",
    "admin:evidence_evidencepackage_history": "login 2fa 404 404 404 404 404 404 404 200 404 404 200",
    "admin:evidence_evidencepackage_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:evidence_evidencepackage_change": "login 2fa 403 403 403 403 403 404 404 200 403 403 200",
    "admin/evidence/evidencepackage/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:evidence_evidenceitem_case": "login 2fa 200 404 404 404 404 404 200 200 404 404 200",
    "admin:evidence_evidenceitem_upload": "login 2fa 400 404 404 404 404 404 400 400 404 404 400",
    "admin:evidence_evidenceitem_preview": "login 2fa 200 404 404 404 404 404 200 200 404 404 200",
    "admin:evidence_evidenceitem_unblur": "login 2fa 200 404 404 404 404 404 200 200 404 404 200",
    "admin:evidence_evidenceitem_unblurred": "login 2fa 200 404 404 404 404 404 200 200 404 404 200",
    "admin:evidence_evidenceitem_download": "login 2fa 200 404 404 404 404 404 200 200 404 404 200",
    "admin:evidence_preview_settings": "login 2fa 200 200 200 200 200 200 200 200 403 403 200",
    "admin:evidence_evidenceitem_changelist": "login 2fa 200 200 200 200 200 200 200 200 403 403 200",
    "admin:evidence_evidenceitem_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:evidence_evidenceitem_history": "login 2fa 200 404 404 404 404 404 200 200 404 404 200",
    "admin:evidence_evidenceitem_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:evidence_evidenceitem_change": "login 2fa 200 404 404 404 404 404 200 200 404 404 200",
    "admin/evidence/evidenceitem/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:evidence_custodyevent_changelist": "login 2fa 200 200 200 200 200 200 200 200 200 403 200",
    "admin:evidence_custodyevent_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:evidence_custodyevent_history": "login 2fa 200 200 404 200 404 404 200 200 200 404 200",
    "admin:evidence_custodyevent_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:evidence_custodyevent_change": "login 2fa 200 200 404 200 404 404 200 200 200 403 200",
    "admin/evidence/custodyevent/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:legal_preservationrequest_freeze": "login 2fa 403 403 404 403 404 404 200 200 403 404 200",
    "admin:legal_preservationrequest_lift": "login 2fa 403 403 404 403 404 404 200 200 403 404 200",
    "admin:legal_preservationrequest_simple_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:legal_preservationrequest_changelist": "login 2fa 403 403 403 403 403 200 200 200 200 403 200",
    "admin:legal_preservationrequest_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:legal_preservationrequest_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:legal_preservationrequest_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:legal_preservationrequest_change": "login 2fa 403 403 403 403 403 404 200 200 200 403 200",
    "admin/legal/preservationrequest/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:legal_cybertiplinereport_draft": "login 2fa 403 403 403 403 403 404 200 200 200 403 200",
    "admin:legal_cybertiplinereport_file": "login 2fa 403 403 403 403 403 404 200 200 403 403 200",
    "admin:legal_cybertiplinereport_retract": "login 2fa 403 403 403 403 403 404 redirect redirect 403 403 redirect",
    "admin:legal_cybertiplinereport_simple_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:legal_cybertiplinereport_changelist": "login 2fa 403 403 403 403 403 200 200 200 200 403 200",
    "admin:legal_cybertiplinereport_add": "login 2fa 403 403 403 403 403 200 200 200 403 403 200",
    "admin:legal_cybertiplinereport_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:legal_cybertiplinereport_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:legal_cybertiplinereport_change": "login 2fa 403 403 403 403 403 404 200 200 200 403 200",
    "admin/legal/cybertiplinereport/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:legal_lawenforcementreferral_simple_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:legal_lawenforcementreferral_changelist": "login 2fa 403 403 403 403 403 200 200 200 200 403 200",
    "admin:legal_lawenforcementreferral_add": "login 2fa 403 403 403 403 403 200 200 200 403 403 200",
    "admin:legal_lawenforcementreferral_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:legal_lawenforcementreferral_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:legal_lawenforcementreferral_change": "login 2fa 403 403 403 403 403 404 200 200 200 403 200",
    "admin/legal/lawenforcementreferral/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:legal_lawenforcementrequest_simple_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:legal_lawenforcementrequest_changelist": "login 2fa 403 403 403 403 403 200 200 200 200 403 200",
    "admin:legal_lawenforcementrequest_add": "login 2fa 403 403 403 403 403 200 200 200 403 403 200",
    "admin:legal_lawenforcementrequest_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:legal_lawenforcementrequest_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:legal_lawenforcementrequest_change": "login 2fa 403 403 403 403 403 404 200 200 200 403 200",
    "admin/legal/lawenforcementrequest/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:legal_legalduty_changelist": "login 2fa 403 403 403 403 403 200 200 200 200 403 200",
    "admin:legal_legalduty_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:legal_legalduty_history": "login 2fa 403 403 404 403 404 404 200 200 200 404 200",
    "admin:legal_legalduty_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:legal_legalduty_change": "login 2fa 403 403 403 403 403 404 redirect redirect redirect 403 redirect",
    "admin/legal/legalduty/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:audit_auditevent_export": "login 2fa 403 403 403 403 403 403 403 200 200 200 200",
    "admin:audit_auditevent_changelist": "login 2fa 403 403 403 403 403 403 403 200 200 200 200",
    "admin:audit_auditevent_add": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:audit_auditevent_history": "login 2fa 403 403 403 403 403 403 403 200 200 200 200",
    "admin:audit_auditevent_delete": "login 2fa 403 403 403 403 403 403 403 403 403 403 403",
    "admin:audit_auditevent_change": "login 2fa 403 403 403 403 403 403 403 200 200 200 200",
    "admin/audit/auditevent/<path:object_id>/": "login 2fa redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect redirect",
    "admin:app_list": "login 2fa 200 200 200 200 200 200 200 200 200 200 200",
    "admin/(?P<url>.*)$": "login 2fa 404 404 404 404 404 404 404 404 404 404 404",
    "api:report-create": "401 401 401 401 401 401 401 401 401 401 401 401 401",
    "api:report-batch": "401 401 401 401 401 401 401 401 401 401 401 401 401",
    "api:events": "401 401 401 401 401 401 401 401 401 401 401 401 401",
    "api:match": "401 401 401 401 401 401 401 401 401 401 401 401 401",
    "api:report-media": "401 401 401 401 401 401 401 401 401 401 401 401 401",
    "api:records": "401 401 401 401 401 401 401 401 401 401 401 401 401",
    "schema": "401 2fa 200 200 200 200 200 200 200 200 200 200 200",
    "api-docs": "login 2fa 200 200 200 200 200 200 200 200 200 200 200",
}


def test_every_url_has_a_row():
    keys = [key for key, _ in url_patterns()]
    assert len(keys) == len(set(keys)), "two URLs share a name"
    assert set(keys) - set(EXPECTED) == set(), "URLs without a row in EXPECTED"
    assert set(EXPECTED) - set(keys) == set(), "rows of URLs that no longer exist"
    assert all(len(row.split()) == len(PRINCIPALS) for row in EXPECTED.values())


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_each_principal_gets_what_the_table_says(principal, world):
    column = PRINCIPALS.index(principal)
    client = client_for(principal, world)
    wrong = []
    for key, pattern in url_patterns():
        url = concrete_url(key, pattern, world)
        got = str(probe(client, url, "POST" if key in POST_ONLY else "GET"))
        expected = EXPECTED.get(key, "").split()[column : column + 1]
        if [got] != expected:
            wrong.append(f"{key} ({url}): expected {expected}, got {got}")
    assert wrong == [], f"{principal}: " + "\n".join(wrong)
