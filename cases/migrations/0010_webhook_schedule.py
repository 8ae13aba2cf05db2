"""The webhook delivery's django-q2 schedule, created once by name (re-running changes nothing)."""

from django.conf import settings
from django.db import migrations
from django.utils import timezone


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="platform-webhooks",
        defaults={
            "func": "cases.tasks.deliver_webhooks",
            "schedule_type": "I",  # MINUTES
            "minutes": settings.BAKKME_WEBHOOK_SCHEDULE_MINUTES,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="platform-webhooks").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0009_webhook_delivery"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
