from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from reports.actions import build_report, ingest_reports, payload_fingerprint
from reports.models import Integration
from staff.models import BackgroundCheck, StaffProfile


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for role in extracted or []:
            self.groups.add(Group.objects.get(name=role))

    @factory.post_generation
    def compliant(self, create, extracted, **kwargs):
        """Staff get a compliance record that qualifies them for child-safety work (CSAE and
        general training today, enhanced background check cleared); `compliant=False` gives
        them none."""
        if not (create and self.is_staff) or extracted is False:
            return
        today = timezone.localdate()
        StaffProfile.objects.update_or_create(
            user=self,
            defaults={
                "csae_training_on": today,
                "general_training_on": today,
                "background_check": BackgroundCheck.ENHANCED_CLEARED,
                "background_checked_on": today,
            },
        )


class IntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Integration

    name = factory.Sequence(lambda n: f"platform-{n}")
    token_hash = factory.Sequence(lambda n: f"{n:064d}")
    token_prefix = "test"


_counter = iter(range(1, 10**9))


def report_payload(**overrides) -> dict:
    """A valid API body; nested keys are replaced whole."""
    n = next(_counter)
    payload = {
        "idempotency_key": f"r-{n}",
        "source": "in_app",
        "category": "grooming",
        "surface": "message",
        "received_at": (timezone.now() - timedelta(minutes=5)).isoformat(),
        "reported_account": {"platform_id": f"u-{n}", "username": f"someone{n}"},
        "content": {
            "platform_id": f"m-{n}",
            "type": "message",
            "text": "placeholder",
            "url": f"https://bakkme.example/m/{n}",
        },
        "reporter": {"platform_id": "u-7", "anonymous": False, "contact": "reporter-contact-7"},
        "description": "placeholder",
    }
    payload.update(overrides)
    return payload


def make_report(integration=None, **overrides):
    """Store one report through the intake service, as the API would; returns the Report."""
    from reports.api.serializers import ReportInSerializer

    integration = integration or IntegrationFactory()
    payload = report_payload(**overrides)
    serializer = ReportInSerializer(data=payload)
    serializer.is_valid(raise_exception=True)
    report = build_report(integration, serializer.validated_data, payload_fingerprint(payload))
    (result,) = ingest_reports(integration, [report])
    return result.report
