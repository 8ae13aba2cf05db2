import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from evidence.actions import verify_custody


class Command(BaseCommand):
    help = (
        "Check the custody ledger and the audit trail (every keyed link, and both against the "
        "latest signed checkpoint in evidence storage) and re-hash every stored item; print "
        "what is broken and exit 1 when anything is."
    )

    def handle(self, *args, **options):
        try:
            report = verify_custody()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        for line in report.broken:
            self.stdout.write(f"BROKEN {line}")
        if report.omitted:
            self.stdout.write(f"BROKEN ... and {report.omitted} more broken links not listed")
        if report.checkpoint is None:
            self.stdout.write(
                "No valid checkpoint yet: the chains are checked alone (events missing at the "
                "end, or an emptied ledger, cannot be seen without one)."
            )
        else:
            self.stdout.write(
                f"Checked against checkpoint {report.checkpoint.name} "
                f"(written {report.checkpoint.written_at})."
            )
        self.stdout.write(
            f"{report.events} custody events, {report.audit_events} audit events, "
            f"{report.items} stored items checked, {report.problems} problems."
        )
        if report.problems:
            sys.exit(1)
