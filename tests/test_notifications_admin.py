import pytest
from django.urls import reverse

from cases import sla_engine
from staff.models import Notification, StaffProfile

from .factories import make_report

pytestmark = pytest.mark.django_db

NOTIFICATIONS = reverse("admin:staff_notification_changelist")


def test_the_header_shows_the_unread_count_and_the_list_shows_only_mine(
    client, integration, senior, cso
):
    case = make_report(integration, category="imminent_danger").case
    sla_engine.sweep()
    client.force_login(senior)
    queue = client.get(reverse("admin:cases_case_changelist")).content.decode()
    assert 'class="unread-count">(1)' in queue
    listed = list(client.get(NOTIFICATIONS).context["cl"].result_list)
    assert [n.recipient for n in listed] == [senior]
    assert listed[0].title == f"EMERGENCY: P0 case #{case.pk}"


def test_opening_a_notification_marks_it_read_and_goes_to_the_case(client, integration, senior):
    case = make_report(integration, category="imminent_danger").case
    sla_engine.sweep()
    note = Notification.objects.get(recipient=senior)
    client.force_login(senior)
    response = client.get(reverse("admin:staff_notification_open", args=[note.pk]))
    assert response["Location"] == reverse("admin:cases_case_change", args=[case.pk])
    note.refresh_from_db()
    assert note.read_at is not None
    assert "unread-count" not in client.get(NOTIFICATIONS).content.decode()


def test_nobody_opens_someone_elses_notification(client, integration, senior, cso):
    make_report(integration, category="imminent_danger")
    sla_engine.sweep()
    theirs = Notification.objects.get(recipient=cso)
    client.force_login(senior)
    assert client.get(reverse("admin:staff_notification_open", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_a_digest_opens_the_queue_filtered_to_its_cases(client, integration, senior):
    cases = [make_report(integration, category="imminent_danger").case for _ in range(3)]
    sla_engine.sweep()
    note = Notification.objects.get(recipient=senior)
    client.force_login(senior)
    target = client.get(reverse("admin:staff_notification_open", args=[note.pk]))["Location"]
    listed = client.get(target).context["cl"].result_list
    assert sorted(c.pk for c in listed) == sorted(c.pk for c in cases)


def test_starting_and_ending_a_shift(client, reviewer):
    client.force_login(reviewer)
    client.post(reverse("admin:staff_shift"), {"on_shift": "1", "next": "/admin/"})
    assert StaffProfile.objects.get(user=reviewer).on_shift
    page = client.get(reverse("admin:cases_case_changelist")).content.decode()
    assert "On shift: end shift" in page
    response = client.post(
        reverse("admin:staff_shift"), {"on_shift": "0", "next": "https://elsewhere.example/"}
    )
    assert response["Location"] == reverse("admin:index")
    assert not StaffProfile.objects.get(user=reviewer).on_shift


def test_the_emergency_checklist_is_ticked_with_who_and_when(client, integration, reviewer):
    case = make_report(integration, category="imminent_danger").case
    sla_engine.sweep()
    client.force_login(reviewer)
    page = client.get(reverse("admin:cases_case_change", args=[case.pk])).content.decode()
    assert "EMERGENCY" in page and "Contact law enforcement" in page

    client.post(reverse("admin:cases_case_checklist", args=[case.pk, "remove_content"]))
    step = case.checklist.get(item="remove_content")
    assert step.done_by == reviewer and step.done_at is not None
    page = client.get(reverse("admin:cases_case_change", args=[case.pk])).content.decode()
    assert "Remove the content — done by rita" in page
    assert case.events.filter(type="checklist_ticked", actor=reviewer).count() == 1


def test_an_auditor_cannot_tick_the_checklist(client, integration, auditor):
    case = make_report(integration, category="imminent_danger").case
    sla_engine.sweep()
    client.force_login(auditor)
    client.post(reverse("admin:cases_case_checklist", args=[case.pk, "remove_content"]))
    assert case.checklist.get(item="remove_content").done_at is None
