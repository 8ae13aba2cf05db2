"""Staff roles: one Django group each, with only the permissions that role needs.

Model-level permissions live here; per-object rules (the assigned reviewer, legal staff granted
a case) are django-guardian object permissions given by the case services.
"""

from django.db import models


class Role(models.TextChoices):
    REVIEWER = "reviewer", "Reviewer"
    SENIOR_REVIEWER = "senior_reviewer", "Senior reviewer"
    LEGAL = "legal", "Legal"
    CHILD_SAFETY_OFFICER = "child_safety_officer", "Child Safety Officer"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Admin"


# Roles a case can be escalated to.
ESCALATION_ROLES = (Role.SENIOR_REVIEWER, Role.LEGAL, Role.CHILD_SAFETY_OFFICER)
# Roles granted only by two people, one asking and a second approving (staff.privileges).
PRIVILEGED_ROLES = (Role.CHILD_SAFETY_OFFICER, Role.LEGAL, Role.ADMIN)

_REVIEWER = [
    "staff.view_notification",
    "cases.view_case",
    "cases.view_child_safety_case",
    "cases.claim_case",
    "cases.escalate_case",
    "cases.add_note",
    "reports.view_report",
    "cases.view_enforcementaction",
    # The evidence of the cases they hold (evidence.access): list, blurred preview, download.
    "evidence.view_evidenceitem",
    "evidence.add_evidenceitem",
    "evidence.preview_evidenceitem",
    "evidence.download_evidenceitem",
    "evidence.view_custodyevent",
]
_EVIDENCE_LEGAL = [
    "evidence.view_evidenceitem",
    "evidence.add_evidenceitem",
    "evidence.preview_evidenceitem",
    "evidence.download_evidenceitem",
    "evidence.view_custodyevent",
    "evidence.export_evidence",
    "evidence.manage_legal_hold",
    "evidence.view_legalhold",
    "evidence.view_evidencepackage",
]
# Legal's own domain (legal/): CyberTipline filings, law-enforcement referrals and requests.
_LEGAL_DOMAIN = [
    "legal.view_cybertiplinereport",
    "legal.file_cybertiplinereport",
    "legal.view_lawenforcementreferral",
    "legal.add_lawenforcementreferral",
    "legal.change_lawenforcementreferral",
    "legal.view_lawenforcementrequest",
    "legal.add_lawenforcementrequest",
    "legal.change_lawenforcementrequest",
    # A legal freeze: the account frozen, its records asked for, a hold (legal.freeze).
    "legal.view_preservationrequest",
    "legal.freeze_account",
]
# The hash banks (detection.matching): entries added and corrected, matches read.
_HASH_BANKS = [
    "detection.view_hashbank",
    "detection.add_hashbank",
    "detection.change_hashbank",
    "detection.view_hashentry",
    "detection.add_hashentry",
    "detection.change_hashentry",
    "detection.view_hashmatch",
]
# Detections reviewed, the lexicon and the blocked links edited (detection.textsignals).
_DETECTIONS = [
    "detection.view_detection",
    "detection.review_detection",
    "detection.view_lexiconterm",
    "detection.add_lexiconterm",
    "detection.change_lexiconterm",
    "detection.view_blockedlink",
    "detection.add_blockedlink",
    "detection.change_blockedlink",
    # What the behaviour rules and the ban-evasion checks read (reports.events, .banevasion).
    "reports.view_accountevent",
    "detection.view_banevasionidentifier",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.REVIEWER: _REVIEWER,
    Role.SENIOR_REVIEWER: _REVIEWER
    + [
        # Senior reviewers decide any case, not only the ones they claimed.
        "cases.decide_case",
        "cases.reopen_case",
        "cases.close_case",
        "reports.view_reporter_contact",
        *_HASH_BANKS,
        *_DETECTIONS,
    ],
    # Legal staff see the cases granted to them (object permissions), not the whole queue.
    Role.LEGAL: [
        "staff.view_notification",
        "cases.view_child_safety_case",
        "cases.escalate_case",
        "cases.add_note",
        "reports.view_report",
        "reports.view_reporter_contact",
        "cases.view_enforcementaction",
        *_EVIDENCE_LEGAL,
        *_LEGAL_DOMAIN,
        *_HASH_BANKS,
    ],
    Role.CHILD_SAFETY_OFFICER: _REVIEWER
    + [
        "cases.decide_case",
        "cases.reopen_case",
        "cases.close_case",
        "reports.view_reporter_contact",
        "cases.view_sla_dashboard",
        *_EVIDENCE_LEGAL,
        "cases.view_case_evidence",  # every case's evidence
        "audit.view_auditevent",  # the audit trail of staff access
        # The staff compliance record: trainings and background checks (staff.compliance).
        "staff.view_staffprofile",
        "staff.add_staffprofile",
        "staff.change_staffprofile",
        *_LEGAL_DOMAIN,
        *_HASH_BANKS,
        *_DETECTIONS,
    ],
    Role.AUDITOR: [
        "staff.view_notification",
        "cases.view_sla_dashboard",
        "cases.view_case",
        "cases.view_child_safety_case",
        "reports.view_report",
        "cases.view_enforcementaction",
        "reports.view_integration",
        # The chain of custody and the holds, never the evidence itself.
        "evidence.view_custodyevent",
        "evidence.view_legalhold",
        "staff.view_staffprofile",
        "audit.view_auditevent",  # the audit trail of staff access
        # What legal staff filed and received, read-only.
        "legal.view_cybertiplinereport",
        "legal.view_lawenforcementreferral",
        "legal.view_lawenforcementrequest",
        "legal.view_preservationrequest",
    ],
    # The technical admin manages accounts and integrations; no child-safety content.
    Role.ADMIN: [
        "staff.view_notification",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        "reports.view_integration",
        "reports.add_integration",
        "reports.change_integration",
        "cases.view_case",
        "staff.view_staffprofile",
        "staff.add_staffprofile",
        "staff.change_staffprofile",
        "audit.view_auditevent",  # the audit trail of staff access
    ],
}


def sync_role_groups(apps=None) -> None:
    """Create or update the role groups so each holds exactly ROLE_PERMISSIONS[role].

    Called from a data migration (with the historical `apps`) and safe to run again.
    """
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    apps = apps or global_apps
    # Permissions are normally created after migrate; the groups need them now.
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, apps=apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            # A permission of an app migrated later is added by the post_migrate run.
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is not None:
                wanted.append(found)
        group.permissions.set(wanted)


def sync_role_groups_after_migrate(sender, **kwargs) -> None:
    """post_migrate: every migrate (and every test flush) leaves the groups holding exactly
    ROLE_PERMISSIONS. post_migrate is sent once per app with models; one run is enough."""
    if sender.label == "cases":
        sync_role_groups()
