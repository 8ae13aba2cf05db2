from django.core.management.base import BaseCommand

from evidence.actions import rotate_master_key


class Command(BaseCommand):
    help = (
        "Re-wrap every evidence data key with BAKKME_EVIDENCE_KEY. Put the previous key in "
        "BAKKME_EVIDENCE_OLD_KEYS while this runs; the stored items are not touched."
    )

    def handle(self, *args, **options):
        count = rotate_master_key()
        self.stdout.write(f"{count} data keys re-wrapped with the current master key.")
