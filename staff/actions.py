"""Who is on duty, and telling them: in-app notifications and their e-mail delivery; the
compliance record (trainings, background check) and leaving or rejoining CSAE duties."""

import logging
from collections import defaultdict
from datetime import date, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from . import compliance, signals
from .models import Notification, StaffProfile

log = logging.getLogger(__name__)

OWN_RECORD_REFUSED = "Your own trainings and background check are kept by someone else."

# A digest names at most this many cases in its text; all of them stay in case_ids.
DIGEST_LISTED = 50


def staff_in_role(role: str):
    return get_user_model().objects.filter(groups__name=role, is_active=True, is_staff=True)


def on_duty(role: str) -> list:
    """The people in a role who are on shift and may handle child-safety work (current CSAE
    training, cleared, not left CSAE duties); failing that, those on shift; failing that,
    everyone in the role.

    A warning or an emergency must reach someone even when the rota was not kept up to date.
    """
    from .compliance import may_handle_child_safety

    people = staff_in_role(role)
    on_shift = list(people.filter(staff_profile__on_shift=True).order_by("pk"))
    able = [person for person in on_shift if may_handle_child_safety(person)]
    return able or on_shift or list(people.order_by("pk"))


def set_on_shift(user, on_shift: bool, now: datetime | None = None) -> StaffProfile:
    profile, _ = StaffProfile.objects.get_or_create(user=user)
    profile.on_shift = on_shift
    profile.on_shift_since = (now or timezone.now()) if on_shift else None
    profile._history_user = user
    profile.save()
    compliance.forget(user)
    return profile


# --- Compliance: the record the CSO keeps, and the person's own choice --------------------------


def update_compliance_record(
    user,
    *,
    actor,
    csae_training_on: date | None,
    general_training_on: date | None,
    background_check: str,
    background_checked_on: date | None,
    now: datetime | None = None,
) -> StaffProfile:
    """The CSO or an admin records a person's trainings and background check.

    Refuses dates in the future and a background check state without its date
    (ValidationError by field). The history records who changed it. A person who no longer
    qualifies loses the child-safety queue at once (Case.visible_to); the claims they hold go
    back to the queue on their next request (staff.middleware) or when the claims expire.
    Nobody keeps their own record: it is what opens child-safety work.
    """
    if actor is not None and actor.pk == user.pk:
        raise PermissionDenied(OWN_RECORD_REFUSED)
    errors = compliance.record_errors(
        csae_training_on=csae_training_on,
        general_training_on=general_training_on,
        background_check=background_check,
        background_checked_on=background_checked_on,
        on=compliance.today(now),
    )
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        profile, _ = StaffProfile.objects.select_for_update().get_or_create(user=user)
        profile.csae_training_on = csae_training_on
        profile.general_training_on = general_training_on
        profile.background_check = background_check
        profile.background_checked_on = background_checked_on
        profile._history_user = actor
        profile._change_reason = "compliance record updated"
        profile.save()
    compliance.forget(user)
    return profile


def release_child_safety_claims(user, reason: str) -> list[int]:
    """Hand the open child-safety cases this person holds back to the queue (as them): the
    cases app does it (cases/receivers.py, staff.signals.child_safety_access_lost). Returns the
    released case ids."""
    answers = signals.child_safety_access_lost.send(sender=StaffProfile, user=user, reason=reason)
    return sorted(pk for _, released in answers for pk in (released or []))


def leave_csae_duties(user, now: datetime | None = None) -> list[int]:
    """The person leaves CSAE duties, at any time and without anyone's approval.

    Recorded (the profile's history, by them, and csae_opt_out_at); their child-safety claims go
    back to the queue at once, and child-safety cases leave their queue. Never a performance
    figure: the dashboard and its exports do not show it. Returns the released case ids.
    """
    now = now or timezone.now()
    with transaction.atomic():
        profile, _ = StaffProfile.objects.select_for_update().get_or_create(user=user)
        if not profile.csae_opt_out:
            profile.csae_opt_out = True
            profile.csae_opt_out_at = now
            profile._history_user = user
            profile._change_reason = compliance.REASON_OPTED_OUT
            profile.save()
        compliance.forget(user)
        return release_child_safety_claims(user, compliance.REASON_OPTED_OUT)


def rejoin_csae_duties(user, now: datetime | None = None) -> compliance.ComplianceStatus:
    """The person comes back to CSAE duties (recorded like leaving). Returns their status:
    the queue opens again only when the rest of the record qualifies them too."""
    with transaction.atomic():
        profile, _ = StaffProfile.objects.select_for_update().get_or_create(user=user)
        if profile.csae_opt_out:
            profile.csae_opt_out = False
            profile.csae_opt_out_at = None
            profile._history_user = user
            profile._change_reason = "rejoined CSAE duties"
            profile.save()
    compliance.forget(user)
    return compliance.compliance_status(user, now)


def enforce_compliance(user) -> tuple[compliance.ComplianceStatus, list[int]]:
    """For one request of a member of staff: when they no longer qualify for child-safety work,
    the child-safety cases they still hold go back to the queue. Returns (status, released)."""
    status = compliance.compliance_status(user)
    if user.is_superuser or status.may_handle_child_safety:
        return status, []
    released = release_child_safety_claims(user, status.reason)
    if released:
        compliance.forget(user)
    return status, released


_TITLES = {
    Notification.Kind.SLA_WARNING: (
        "Case #{} is approaching its SLA deadline",
        "{} cases are approaching their SLA deadline",
    ),
    Notification.Kind.SLA_BREACH: ("Case #{} breached its SLA", "{} cases breached their SLA"),
    Notification.Kind.EMERGENCY: ("EMERGENCY: P0 case #{}", "EMERGENCY: {} P0 cases"),
    Notification.Kind.EVIDENCE_INTEGRITY: (
        "Evidence of case #{} failed its integrity check",
        "Evidence of {} cases failed its integrity check",
    ),
    Notification.Kind.WEBHOOK_FAILED: (
        "The platform never received a delivery for case #{}",
        "The platform never received deliveries for {} cases",
    ),
    Notification.Kind.LEGAL_HANDOFF: (
        "Case #{} is handed to legal: see the legal desk",
        "{} cases are handed to legal: see the legal desk",
    ),
    Notification.Kind.LEGAL_DUTY_WARNING: (
        "A legal deadline on case #{} is approaching",
        "Legal deadlines on {} cases are approaching",
    ),
    Notification.Kind.LEGAL_DUTY_BREACH: (
        "A legal deadline on case #{} was missed",
        "Legal deadlines on {} cases were missed",
    ),
}


def notify(kind: str, cases_by_recipient: dict, now: datetime) -> list[Notification]:
    """Create the notifications of one sweep: one per recipient and kind.

    `cases_by_recipient` maps a user to the case ids they must hear about. One case gives a
    notification linked to it; several give one digest listing them, so a catch-up after an
    outage sends each person one message, not thousands.
    """
    one, many = _TITLES[kind]
    rows = []
    for recipient, case_ids in cases_by_recipient.items():
        case_ids = sorted(set(case_ids))
        if not case_ids:
            continue
        if len(case_ids) == 1:
            title, case_id = one.format(case_ids[0]), case_ids[0]
        else:
            title, case_id = many.format(len(case_ids)), None
        listed = ", ".join(f"#{pk}" for pk in case_ids[:DIGEST_LISTED])
        more = len(case_ids) - DIGEST_LISTED
        body = f"Cases: {listed}" + (f" and {more} more" if more > 0 else "")
        rows.append(
            Notification(
                recipient=recipient,
                kind=kind,
                case_id=case_id,
                case_ids=case_ids,
                title=title,
                body=body,
                created_at=now,
                email_status=Notification.Email.PENDING
                if recipient.email
                else Notification.Email.NONE,
                email_next_attempt_at=now,
            )
        )
    return Notification.objects.bulk_create(rows)


def notify_people(kind: str, people, *, title: str, body: str, now: datetime) -> list:
    """One notification of `kind`, not about one case, to each of `people`; e-mailed like the
    others (deliver_emails)."""
    rows = [
        Notification(
            recipient=recipient,
            kind=kind,
            title=title[:200],
            body=body,
            created_at=now,
            email_status=Notification.Email.PENDING if recipient.email else Notification.Email.NONE,
            email_next_attempt_at=now,
        )
        for recipient in people
    ]
    return Notification.objects.bulk_create(rows)


def notify_role(kind: str, role: str, *, title: str, body: str, now: datetime) -> list:
    """One notification of `kind`, not about a case, to every active member of `role` (e.g. a
    login spray to every CSO)."""
    people = staff_in_role(role).order_by("pk")
    return notify_people(kind, people, title=title, body=body, now=now)


def notify_person(kind: str, recipient, *, case=None, title: str, body: str, now: datetime):
    """One notification of `kind` to one member of staff, with its own title and body (e.g.
    a stopped CyberTipline filing, with NCMEC's message, to the person who filed it); e-mailed
    like the others (deliver_emails)."""
    return Notification.objects.create(
        recipient=recipient,
        kind=kind,
        case=case,
        case_ids=[case.pk] if case is not None else [],
        title=title[:200],
        body=body,
        created_at=now,
        email_status=Notification.Email.PENDING if recipient.email else Notification.Email.NONE,
        email_next_attempt_at=now,
    )


def unread_count(user) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def mark_read(user, notification_ids=None, now: datetime | None = None) -> int:
    qs = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if notification_ids is not None:
        qs = qs.filter(pk__in=notification_ids)
    return qs.update(read_at=now or timezone.now())


def _retry_delay(attempts: int) -> timedelta:
    base = settings.BAKKME_NOTIFY_EMAIL_RETRY_MINUTES
    return timedelta(minutes=min(base * 2 ** (attempts - 1), 60))


def deliver_emails(now: datetime | None = None) -> dict:
    """Send the pending notification e-mails, one message per recipient.

    A failing mail server is recorded on the notifications (attempts, error, next attempt) and
    retried later with a growing delay; after BAKKME_NOTIFY_EMAIL_MAX_ATTEMPTS it gives up and
    the notification stays in the in-app list. Never raises for a mail failure.
    """
    now = now or timezone.now()
    due = (
        Notification.objects.filter(
            email_status=Notification.Email.PENDING, email_next_attempt_at__lte=now
        )
        .select_related("recipient")
        .order_by("recipient_id", "pk")
    )
    by_recipient = defaultdict(list)
    for notification in due:
        by_recipient[notification.recipient].append(notification)
    sent = failed = 0
    for recipient, notifications in by_recipient.items():
        ids = [n.pk for n in notifications]
        subject = (
            notifications[0].title
            if len(notifications) == 1
            else f"{len(notifications)} notifications from the BakkMe Safety back office"
        )
        link = settings.BAKKME_BASE_URL + reverse("admin:staff_notification_changelist")
        text = "\n\n".join(f"{n.title}\n{n.body}" for n in notifications) + f"\n\n{link}\n"
        try:
            send_mail(subject, text, None, [recipient.email])
        except Exception as exc:  # any transport error: record it, retry later
            failed += len(ids)
            log.warning("Notification e-mail to %s failed: %s", recipient.pk, exc)
            attempts = max(n.email_attempts for n in notifications) + 1
            gave_up = attempts >= settings.BAKKME_NOTIFY_EMAIL_MAX_ATTEMPTS
            with transaction.atomic():
                Notification.objects.filter(pk__in=ids).update(
                    email_attempts=attempts,
                    email_error=f"{type(exc).__name__}: {exc}"[:2000],
                    email_status=Notification.Email.FAILED
                    if gave_up
                    else Notification.Email.PENDING,
                    email_next_attempt_at=None if gave_up else now + _retry_delay(attempts),
                )
            continue
        sent += len(ids)
        Notification.objects.filter(pk__in=ids).update(
            email_status=Notification.Email.SENT,
            emailed_at=now,
            email_attempts=notifications[0].email_attempts + 1,
            email_error="",
            email_next_attempt_at=None,
        )
    return {"sent": sent, "failed": failed}


def active_staff(user_ids) -> list:
    """The active staff among these user ids (an assignee who left gets nothing)."""
    return list(get_user_model().objects.filter(pk__in=list(user_ids), is_active=True))
