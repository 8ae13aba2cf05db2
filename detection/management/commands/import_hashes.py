from django.core.management.base import BaseCommand, CommandError

from detection.hashbanks import ImportError_, import_hashes
from detection.models import HashBank, SignalType


class Command(BaseCommand):
    help = (
        "Import hashes into a bank (created when missing): one hash a line, optional ', note'. "
        "A bad line is reported with its number and nothing from the file is imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("bank", help="the bank's name")
        parser.add_argument("file", help="a text file, one hash a line")
        parser.add_argument("--type", required=True, choices=SignalType.values, dest="signal_type")
        parser.add_argument(
            "--source",
            choices=HashBank.BankSource.values,
            default=HashBank.BankSource.INTERNAL,
            help="for a bank created now",
        )

    def handle(self, *args, bank, file, signal_type, source, **options):
        try:
            with open(file, encoding="utf-8") as lines:
                result = import_hashes(bank, lines, signal_type, source=source)
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {file}: {exc}") from None
        except ImportError_ as exc:
            raise CommandError(str(exc)) from None
        made = " (bank created)" if result.bank_created else ""
        self.stdout.write(
            f"{result.added} {signal_type} hashes added to {result.bank.name}{made}; "
            f"{result.already_present} already there."
        )
