"""Evidence packages carry the lease of the run building them; the sweep that fails dead builds
runs as a django-q2 schedule, created once by name (re-running changes nothing)."""

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="evidence-package-builds",
        defaults={
            "func": "evidence.tasks.fail_dead_package_builds",
            "schedule_type": "I",  # MINUTES
            "minutes": settings.BAKKME_PACKAGE_SWEEP_MINUTES,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="evidence-package-builds").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("evidence", "0004_retention_schedule"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="evidencepackage",
            name="heartbeat_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="When the build last renewed its lease.",
                null=True,
                verbose_name="last heartbeat",
            ),
        ),
        migrations.AddField(
            model_name="evidencepackage",
            name="lease_token",
            field=models.CharField(blank=True, editable=False, max_length=32),
        ),
        migrations.AddField(
            model_name="evidencepackage",
            name="lease_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(create_schedule, remove_schedule),
    ]
