import sys

from django.core.management.base import BaseCommand

from evidence.services import verify_custody


class Command(BaseCommand):
    help = (
        "Walk the custody ledger's hash chain and re-hash every stored item; print what is "
        "broken and exit 1 when anything is."
    )

    def handle(self, *args, **options):
        report = verify_custody()
        for line in report.broken:
            self.stdout.write(f"BROKEN {line}")
        self.stdout.write(
            f"{report.events} custody events, {report.items} stored items checked, "
            f"{len(report.broken)} problems."
        )
        if report.broken:
            sys.exit(1)
