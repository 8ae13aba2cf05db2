from django.core.management.base import BaseCommand, CommandError

from evidence.packages import verify_zip


class Command(BaseCommand):
    help = (
        "Check an evidence package zip: the BagIt bag (SHA-256 and SHA-512 manifests), its "
        "bag-info fields, and each item against the SHA-256 in metadata.json. Prints 'valid', "
        "or what is wrong and exits non-zero."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The package zip.")

    def handle(self, *args, path, **options):
        problems = verify_zip(path)
        if problems:
            raise CommandError(
                f"{path} is not a valid evidence package:\n  " + "\n  ".join(problems)
            )
        self.stdout.write(f"valid: {path}")
