"""The audit trail: what is recorded, who sees it, and its CSV export."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit import actions as audit
from audit.models import AuditEvent
from audit.receivers import compliance_fields
from staff import two_factor

from .factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
EXPORT = "/admin/audit/auditevent/export.csv"


def last_pk() -> int:
    """Where the trail ends now: the trail is append-only, so a test looks at what follows."""
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def events(action, user=None, after=0):
    qs = AuditEvent.objects.filter(action=action, pk__gt=after)
    if user is not None:
        qs = qs.filter(object_type="auth.user", object_id=str(user.pk))
    return qs


def export_rows(client, **params):
    response = client.get(EXPORT, params)
    assert response.status_code == 200, response.content[:300]
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    return rows


# --- What is recorded ----------------------------------------------------------------------------


def test_logins_failed_logins_and_logouts(client, reviewer):
    failed = client.post(
        "/admin/login/",
        {"username": reviewer.username, "password": "not-the-password"},
        REMOTE_ADDR="10.1.2.3",
    )
    assert failed.status_code == 200
    event = events("login_failed", reviewer).get()
    assert event.actor is None and event.object_repr == reviewer.username
    assert event.detail == {"username": reviewer.username}
    assert str(event.ip) == "10.1.2.3"
    assert "not-the-password" not in str(AuditEvent.objects.values_list())

    # A username nobody has is recorded too, as typed.
    client.post("/admin/login/", {"username": "nobody-here", "password": "x"})
    stranger = AuditEvent.objects.get(action="login_failed", object_repr="nobody-here")
    assert stranger.object_type == "" and stranger.object_id == ""

    client.post("/admin/login/", {"username": reviewer.username, "password": PASSWORD})
    login = events("login", reviewer).get()
    assert login.actor == reviewer and login.actor_name == reviewer.username
    client.post("/admin/two-factor/logout/")
    assert events("logout", reviewer).get().detail == {"reason": "logout"}


def test_a_lockout_is_recorded(client, settings, reviewer):
    for _ in range(settings.BAKKME_LOGIN_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": reviewer.username, "password": "wrong"})
    event = events("lockout", reviewer).first()
    assert event is not None
    assert event.detail["failure_limit"] == settings.BAKKME_LOGIN_FAILURE_LIMIT
    assert event.detail["cooloff_minutes"] == settings.BAKKME_LOGIN_COOLOFF_MINUTES
    assert events("login_failed", reviewer).count() == settings.BAKKME_LOGIN_FAILURE_LIMIT


def test_factor_enrolment_backup_codes_and_removal(reviewer):
    device = TOTPDevice.objects.create(user=reviewer, name="app", confirmed=False)
    assert not events("factor_enrolled", reviewer).exists()  # pending is not enrolled
    device.confirmed = True
    device.save()
    enrolled = events("factor_enrolled", reviewer).get()
    assert enrolled.detail["device"] == "otp_totp.totpdevice"
    device.save()  # saved again (each verification does): nothing new
    assert events("factor_enrolled", reviewer).count() == 1

    two_factor.generate_backup_codes(reviewer)
    assert events("backup_codes_generated", reviewer).get().detail == {"count": 10}

    device.delete()
    removed = events("factor_removed", reviewer).get()
    assert removed.detail["device"] == "otp_totp.totpdevice"


def test_role_and_permission_changes_from_either_side(reviewer):
    assert events("role_changed", reviewer).get().detail == {"added": ["reviewer"]}  # factory
    mark = last_pk()
    legal = Group.objects.get(name="legal")
    reviewer.groups.add(legal)
    assert events("role_changed", reviewer, mark).get().detail == {"added": ["legal"]}
    legal.user_set.remove(reviewer)
    assert events("role_changed", reviewer, mark).filter(detail={"removed": ["legal"]}).exists()
    reviewer.groups.clear()
    assert events("role_changed", reviewer, mark).filter(detail={"removed": ["reviewer"]}).exists()

    perm = Permission.objects.get(codename="view_auditevent")
    reviewer.user_permissions.add(perm)
    assert events("permission_changed", reviewer, mark).get().detail == {
        "added": ["audit.view_auditevent"]
    }
    legal.permissions.remove(Permission.objects.get(codename="view_report"))
    group_event = events("permission_changed", after=mark).get(
        object_type="auth.group", object_id=str(legal.pk)
    )
    assert group_event.detail == {"removed": ["reports.view_report"]}


def test_account_creation_and_flag_changes(reviewer):
    User = get_user_model()
    user = User.objects.create_user("newcomer", password="x", is_staff=True)
    assert events("user_created", user).get().detail == {
        "is_staff": True,
        "is_active": True,
        "is_superuser": False,
    }
    user.first_name = "New"
    user.save()
    assert not events("user_changed", user).exists()  # only the access flags count
    user.is_active = False
    user.is_superuser = True
    user.save()
    assert events("user_changed", user).get().detail == {
        "changes": {"is_active": [True, False], "is_superuser": [False, True]}
    }


def test_changes_made_in_the_admin_name_who_made_them(client, reviewer):
    boss = get_user_model().objects.create_superuser("boss", password="x")
    client.force_login(boss)
    senior = Group.objects.get(name="senior_reviewer")
    response = client.post(
        f"/admin/auth/user/{reviewer.pk}/change/",
        {
            "username": reviewer.username,
            "is_active": "on",
            "is_staff": "on",
            "groups": [senior.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "10:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    changes = events("role_changed", reviewer).filter(actor=boss)
    assert {"added": ["senior_reviewer"]} in [e.detail for e in changes]
    assert {"removed": ["reviewer"]} in [e.detail for e in changes]
    assert all(e.actor_name == "boss" for e in changes)


def _new_value(field, old):
    if field.choices:
        return next(value for value, _ in field.choices if value != old)
    internal = field.get_internal_type()
    if internal == "DateField":
        return date(2026, 3, 1) if old != date(2026, 3, 1) else date(2026, 4, 1)
    if internal == "DateTimeField":
        return datetime(2026, 3, 1, tzinfo=UTC)
    if internal == "BooleanField":
        return not old
    return f"{old}-changed"


def test_training_and_background_updates(reviewer):
    """Whatever the staff app names them: every field with "training" or "background" in it."""
    from staff.models import StaffProfile

    fields = compliance_fields(StaffProfile)
    assert fields, "staff.StaffProfile has training and background fields"
    profile, _ = StaffProfile.objects.get_or_create(user=reviewer)
    profile.refresh_from_db()
    mark = last_pk()
    expected = {}
    for attname, action in fields.items():
        field = StaffProfile._meta.get_field(attname)
        old = getattr(profile, attname)
        new = _new_value(field, old)
        setattr(profile, attname, new)
        expected.setdefault(action, set()).add(attname)
    profile.save()
    for action, names in expected.items():
        event = events(action, reviewer, mark).get()
        assert set(event.detail["changes"]) == names
        assert event.detail["record"] == "staff.staffprofile"
    # Saving other fields records nothing.
    profile.on_shift = not profile.on_shift
    profile.save()
    assert AuditEvent.objects.filter(action__in=list(expected), pk__gt=mark).count() == len(
        expected
    )


# --- Who sees it ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["auditor", "child_safety_officer", "admin"])
def test_auditors_the_cso_and_admins_read_the_trail(client, role):
    user = UserFactory(roles=[role])
    client.force_login(user)
    page = client.get("/admin/audit/auditevent/")
    assert page.status_code == 200
    assert b'id="audit-export-form"' in page.content
    assert EXPORT.encode() in page.content
    assert client.get(EXPORT).status_code == 200
    # Read-only: no adding, changing or deleting.
    event = AuditEvent.objects.first()
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/").status_code == 403


def test_reviewers_do_not(client, reviewer):
    client.force_login(reviewer)
    assert client.get("/admin/audit/auditevent/").status_code == 403
    assert client.get(EXPORT).status_code == 403


# --- The CSV export ------------------------------------------------------------------------------


def test_the_export_filters_by_user_object_action_and_time(client, auditor, reviewer, senior):
    # The trail is append-only: the fixtures' own events stay, written now; this test's are on
    # one day before, and the filters that would also match the fixtures' look at that day.
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    day = {"since": "2026-11-01", "until": "2026-11-02"}
    assert AuditEvent.objects.filter(at__lt=t0 + timedelta(days=1)).count() == 0
    with time_machine.travel(t0, tick=False) as traveller:
        audit.record("login", obj=reviewer, actor=reviewer)
        traveller.shift(timedelta(hours=1))
        audit.record("role_changed", obj=reviewer, actor=senior, detail={"added": ["legal"]})
        traveller.shift(timedelta(hours=1))
        audit.record("login", obj=senior, actor=senior)
    client.force_login(auditor)  # (itself a login event, now)

    def actions(**params):
        return [(r["action"], r["actor"], r["object_id"]) for r in export_rows(client, **params)]

    everything = export_rows(client)
    assert [r["action"] for r in everything][:3] == ["login", "role_changed", "login"]
    assert set(everything[0]) == set(audit.CSV_HEADER)

    assert actions(user=senior.username) == [
        ("role_changed", senior.username, str(reviewer.pk)),
        ("login", senior.username, str(senior.pk)),
    ]
    assert actions(user=str(senior.pk)) == actions(user=senior.username)
    assert actions(object_type="auth.user", object_id=str(reviewer.pk), **day) == [
        ("login", reviewer.username, str(reviewer.pk)),
        ("role_changed", senior.username, str(reviewer.pk)),
    ]
    assert [a for a, _, _ in actions(action="role_changed", **day)] == ["role_changed"]
    assert actions(since="2026-11-01T09:30:00Z", until="2026-11-01 10:30") == [
        ("role_changed", senior.username, str(reviewer.pk))
    ]
    assert actions(since="2026-11-01", until="2026-11-02", action="login", user="nobody") == []

    bad = client.get(EXPORT, {"since": "yesterday"})
    assert bad.status_code == 400
    assert client.get(EXPORT, {"action": "made-up"}).status_code == 400
    assert client.get(EXPORT, {"since": "2026-11-02", "until": "2026-11-01"}).status_code == 400


def test_the_export_defuses_spreadsheet_formulas(client, auditor):
    """A failed login's username is whatever someone typed."""
    client.post("/admin/login/", {"username": '=HYPERLINK("http://x")', "password": "x"})
    client.force_login(auditor)
    rows = export_rows(client, action="login_failed")
    assert rows[0]["object"] == '\'=HYPERLINK("http://x")'


def test_the_changelist_filters_and_searches(client, auditor, reviewer):
    audit.record("lockout", obj=reviewer, actor=None, detail={"username": reviewer.username})
    client.force_login(auditor)
    page = client.get("/admin/audit/auditevent/", {"action__exact": "lockout"})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    # The export form starts from the list's filter.
    assert page.context["export_form"].initial == {"action": "lockout"}
    search = client.get("/admin/audit/auditevent/", {"q": reviewer.username})
    assert search.status_code == 200 and search.context["cl"].result_count >= 1
