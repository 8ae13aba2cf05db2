from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from bakkme_safety.policy import Category, Priority
from cases.models import Case

from .factories import make_report

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("category", [c.value for c in Category])
def test_each_category_gets_the_priority_and_due_at_the_settings_give(category):
    received = timezone.now() - timedelta(minutes=3)
    report = make_report(category=category, surface="message", received_at=received.isoformat())

    label = settings.BAKKME_CATEGORY_PRIORITY[category]
    expected_due = received + timedelta(hours=settings.BAKKME_SLA_HOURS[label])
    case = Case.objects.get(pk=report.case_id)
    assert Priority(case.priority).label == label
    assert case.due_at == expected_due
    assert report.due_at == expected_due


def test_priorities_follow_the_policy_table():
    assert settings.BAKKME_CATEGORY_PRIORITY["imminent_danger"] == "P0"
    assert settings.BAKKME_SLA_HOURS["P0"] == 1
    assert settings.BAKKME_SLA_HOURS["P1"] <= 24  # every child-safety report within 24 hours
    child_safety = [c for c in Category if c not in (Category.OTHER, Category.UNDERAGE_USER)]
    assert all(settings.BAKKME_CATEGORY_PRIORITY[c] in ("P0", "P1") for c in child_safety)
    assert settings.BAKKME_CATEGORY_PRIORITY["other"] == "P3"


def test_a_changed_setting_changes_priority_and_window(settings):
    settings.BAKKME_CATEGORY_PRIORITY = {**settings.BAKKME_CATEGORY_PRIORITY, "grooming": "P0"}
    settings.BAKKME_SLA_HOURS = {**settings.BAKKME_SLA_HOURS, "P0": 2}
    received = timezone.now() - timedelta(minutes=1)
    report = make_report(category="grooming", received_at=received.isoformat())
    assert report.priority == Priority.P0
    assert report.due_at == received + timedelta(hours=2)


def test_a_live_stream_with_a_minor_in_an_unsafe_context_is_p0(settings):
    report = make_report(category="sextortion", surface="live_stream")
    assert report.priority == Priority.P0
    assert "sextortion" in settings.BAKKME_LIVE_STREAM_P0_CATEGORIES


def test_the_clock_starts_at_the_platforms_received_at_not_at_storage():
    received = timezone.now() - timedelta(hours=20)
    report = make_report(category="csam", received_at=received.isoformat())
    assert report.due_at == received + timedelta(hours=24)
    assert report.created_at - report.due_at > timedelta(hours=-5)
