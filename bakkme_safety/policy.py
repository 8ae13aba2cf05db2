"""The Child Safety Standards as data.

The vocabularies (categories, surfaces, priorities, violations, actions) are enumerations here;
every number and mapping is read from settings at call time, so an operator changes the policy in
settings and tests read the same values.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models


class Source(models.TextChoices):
    IN_APP = "in_app", "In-app report"
    EMAIL = "email", "E-mail"
    AUTOMATED = "automated", "Automated detection"
    PARENT_GUARDIAN = "parent_guardian", "Parent or guardian"
    LAW_ENFORCEMENT = "law_enforcement", "Law enforcement"
    EXTERNAL_HOTLINE = "external_hotline", "External hotline"
    STAFF = "staff", "Staff"


class Category(models.TextChoices):
    CSAM = "csam", "CSAM"
    AI_GENERATED_CSAE = "ai_generated_csae", "AI-generated CSAE"
    GROOMING = "grooming", "Grooming"
    SEXTORTION = "sextortion", "Sextortion"
    SOLICITATION_OF_MINOR = "solicitation_of_minor", "Solicitation of a minor"
    EXPLOITATION_TRAFFICKING = "exploitation_trafficking", "Exploitation / trafficking"
    SEXUALIZING_MINORS = "sexualizing_minors", "Sexualizing minors"
    UNDERAGE_USER = "underage_user", "Underage user"
    AGE_RESTRICTED_FEATURE = "age_restricted_feature", "Minor using an 18+ feature"
    IMMINENT_DANGER = "imminent_danger", "Imminent danger"
    OTHER_CHILD_SAFETY = "other_child_safety", "Other child safety"
    OTHER = "other", "Other (not child safety)"


# In-app report reasons map onto categories.
IN_APP_REASONS = {
    "Child Safety": Category.OTHER_CHILD_SAFETY,
    "Child Exploitation": Category.EXPLOITATION_TRAFFICKING,
}


class Surface(models.TextChoices):
    POST = "post", "Post"
    IMAGE = "image", "Image"
    VIDEO = "video", "Video"
    COMMENT = "comment", "Comment"
    MESSAGE = "message", "Message"
    CHAT = "chat", "Chat"
    LIVE_STREAM = "live_stream", "Live stream"
    GROUP = "group", "Group"
    GROUP_POST = "group_post", "Group post"
    FUNDRAISER = "fundraiser", "Fundraiser"
    PROFILE = "profile", "Profile"


class AgeBand(models.TextChoices):
    UNDER_13 = "under_13", "Under 13"
    AGE_13_15 = "13_15", "13-15"
    AGE_16_17 = "16_17", "16-17"
    ADULT = "18_plus", "18 or older"
    UNKNOWN = "unknown", "Unknown"


class Priority(models.IntegerChoices):
    """Lower sorts first: P0 is the most urgent."""

    P0 = 0, "P0"
    P1 = 1, "P1"
    P2 = 2, "P2"
    P3 = 3, "P3"

    @classmethod
    def from_label(cls, label: str) -> "Priority":
        return cls[label]


class Violation(models.TextChoices):
    CSAM_DISTRIBUTION = "csam_distribution", "Distributing CSAM"
    CSAM_POSSESSION = "csam_possession", "Possessing or storing CSAM"
    SOLICITATION_OF_MINOR = "solicitation_of_minor", "Soliciting sexual content from a minor"
    AI_GENERATED_CSAE = "ai_generated_csae", "AI-generated / synthetic CSAE"
    GROOMING = "grooming", "Grooming / predatory behaviour"
    EXPLOITATION_FACILITATION = (
        "exploitation_facilitation",
        "Using platform features to facilitate exploitation",
    )
    SEXUALIZING_MINORS = "sexualizing_minors", "Sexualizing minors in comments or captions"
    UNDERAGE_USER = "underage_user", "Underage user (under 13)"
    AGE_RESTRICTED_FEATURE = "age_restricted_feature", "Minor using an 18+ feature"
    NO_VIOLATION = "no_violation", "No violation"


class Severity(models.TextChoices):
    LOW = "low", "Low: warning"
    HIGH = "high", "High: permanent ban"


class ActionType(models.TextChoices):
    REMOVE_CONTENT = "remove_content", "Remove content"
    SUSPEND_ACCOUNT = "suspend_account", "Suspend account"
    PERMANENT_BAN = "permanent_ban", "Permanent ban"
    WARN = "warn", "Warn"
    RESTRICT_FEATURE = "restrict_feature", "Restrict feature"
    DELETE_ACCOUNT_DATA = "delete_account_data", "Delete account data"
    NCMEC_REPORT = "ncmec_report", "NCMEC CyberTipline report"
    LAW_ENFORCEMENT_REFERRAL = "law_enforcement_referral", "Law-enforcement referral"
    # Undoes an automatic removal or suspension a reviewer overturned (cases.actions).
    REINSTATE = "reinstate", "Reinstate"
    # A legal freeze (legal.freeze, Child Safety Standards §6.4): the account becomes
    # inaccessible, nothing is deleted, the subject is not told; lifted with unfreeze_account.
    FREEZE_ACCOUNT = "freeze_account", "Freeze account"
    UNFREEZE_ACCOUNT = "unfreeze_account", "Lift account freeze"


# Features a minor may not use (DESIGN.md: payments, fundraising, live hosting, monetization, tips).
class RestrictedFeature(models.TextChoices):
    PAYMENTS = "payments", "Payments"
    FUNDRAISING = "fundraising", "Fundraising"
    LIVE_HOSTING = "live_hosting", "Live hosting"
    MONETIZATION = "monetization", "Monetization"
    TIPS = "tips", "Tips"


def is_child_safety(category: str) -> bool:
    return category != Category.OTHER


def priority_for(category: str, surface: str, source: str | None = None) -> Priority:
    """The priority a report gets (DESIGN.md, priority table).

    P0: imminent danger, or a live stream in a sexual-exploitation category; P1 every other
    child-safety category (an automated CSAM detection included); P2 under-13 deletion
    requests; P3 other moderation.
    """
    if surface == Surface.LIVE_STREAM and category in settings.BAKKME_LIVE_STREAM_P0_CATEGORIES:
        return Priority.P0
    return Priority.from_label(settings.BAKKME_CATEGORY_PRIORITY[category])


def sla_window(priority: int) -> timedelta:
    return timedelta(hours=settings.BAKKME_SLA_HOURS[Priority(priority).label])


def due_at_for(priority: int, received_at: datetime) -> datetime:
    """The SLA clock starts when the platform first received the report."""
    return received_at + sla_window(priority)


def actions_for(
    violation: str, *, enticement: bool = False, severity: str | None = None
) -> list[str]:
    """The enforcement actions a decision prescribes (Child Safety Standards §6.2)."""
    rule = settings.BAKKME_VIOLATION_ACTIONS[violation]
    actions = list(rule.get("actions", []))
    if enticement:
        actions += rule.get("enticement", [])
    if "severity" in rule:
        actions += rule["severity"][severity or Severity.LOW]
    return actions


def csam_match_actions() -> list[str]:
    """The actions an automated CSAM hash match takes at once, pending human review (§4.3)."""
    return list(settings.BAKKME_CSAM_MATCH_ACTIONS)


def csam_match_priority_floor() -> Priority:
    """A case with a CSAM hash match is child-safety work at this priority at least."""
    return Priority.from_label(settings.BAKKME_CSAM_MATCH_PRIORITY_FLOOR)


def ban_evasion_case() -> tuple[str, str]:
    """The category and surface of the case a ban-evasion hit opens or joins."""
    return settings.BAKKME_BAN_EVASION_CASE_CATEGORY, settings.BAKKME_BAN_EVASION_CASE_SURFACE


def internal_bank_violations() -> list[str]:
    """The violations whose decision adds the case's evidence hashes to the internal bank."""
    return list(settings.BAKKME_INTERNAL_BANK_VIOLATIONS)


def violation_needs(violation: str) -> set[str]:
    """Which extra decision fields a violation's rule reads."""
    rule = settings.BAKKME_VIOLATION_ACTIONS[violation]
    needs = {key for key in ("enticement", "severity") if key in rule}
    if ActionType.RESTRICT_FEATURE in rule.get("actions", []):
        needs.add("feature")
    return needs
