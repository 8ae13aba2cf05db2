"""The outbox moved from cases to deliveries: its schedule runs deliveries.tasks.deliver."""

from django.db import migrations


def forwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(func="cases.tasks.deliver_webhooks").update(
        func="deliveries.tasks.deliver"
    )


def backwards(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(func="deliveries.tasks.deliver").update(
        func="cases.tasks.deliver_webhooks"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0010_webhook_schedule"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
