from django.core.management.base import BaseCommand, CommandError

from evidence.packages import verify_download


class Command(BaseCommand):
    help = (
        "Check an evidence package zip: the BagIt bag (SHA-256 and SHA-512 manifests), its "
        "bag-info fields, and each item against the SHA-256 in metadata.json. A package "
        "encrypted for its recipient (.zip.age) is opened first with --identity. Prints "
        "'valid', or what is wrong and exits non-zero."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "path", help="The package zip, or the .zip.age encrypted for its recipient."
        )
        parser.add_argument(
            "--identity",
            default=None,
            help="The recipient's age identity file (key.txt from age-keygen), to open a "
            "package encrypted for them.",
        )

    def handle(self, *args, path, identity, **options):
        problems = verify_download(path, identity)
        if problems:
            raise CommandError(
                f"{path} is not a valid evidence package:\n  " + "\n  ".join(problems)
            )
        self.stdout.write(f"valid: {path}")
