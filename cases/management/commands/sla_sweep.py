import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from cases import sla_engine
from staff.actions import deliver_emails


class Command(BaseCommand):
    help = (
        "Run one SLA sweep now (warnings, breaches, escalations, P0 emergencies) and print "
        'one JSON line {"warned", "breached", "escalated", "notified"} counting what it did.'
    )

    def handle(self, *args, **options):
        now = timezone.now()
        result = sla_engine.sweep(now)
        deliver_emails(now)
        self.stdout.write(json.dumps(result.as_dict()))
