import hashlib
import os
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from cases.models import Case
from evidence import packages
from evidence.models import EvidencePackage


class Command(BaseCommand):
    help = (
        "Build an evidence package of a case now (as the named user, who must have access to "
        "the case's evidence) and write the decrypted zip to --out; prints its SHA-256. With "
        "--recipient-key, the zip is encrypted for the recipient's age key instead (write it "
        "to a .zip.age file). The build and the download are recorded in the chain of custody "
        "like the admin's."
    )

    def add_arguments(self, parser):
        parser.add_argument("case_id", type=int)
        parser.add_argument("--out", required=True, help="The zip file to write (must not exist).")
        parser.add_argument("--user", required=True, help="Username of the person exporting.")
        parser.add_argument("--purpose", required=True)
        parser.add_argument("--recipient", default="", help="Default: the exporting user.")
        parser.add_argument(
            "--recipient-key",
            default="",
            help="The recipient's age public key (age1..., from age-keygen): the package "
            "written is the zip encrypted for it, which only the recipient's key.txt opens.",
        )

    def handle(self, *args, case_id, out, user, purpose, recipient, recipient_key, **options):
        person = get_user_model().objects.filter(username=user, is_active=True).first()
        if person is None:
            raise CommandError(f"No active user {user!r}.")
        case = Case.objects.filter(pk=case_id).first()
        if case is None or not packages.may_export(person, case):
            raise CommandError(
                f"{user} may not export the evidence of case #{case_id} (no such case, or no "
                "access to its evidence)."
            )
        out = Path(out)
        if out.exists():
            raise CommandError(f"{out} exists already: give a new file.")
        try:
            package = packages.request_package(
                case,
                person,
                purpose,
                recipient or person.get_username(),
                recipient_key=recipient_key,
                queue=False,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stderr.write(f"Building evidence package #{package.pk} of case #{case_id}...")
        package = packages.build(package.pk)
        if package.status != EvidencePackage.Status.READY:
            raise CommandError(f"Evidence package #{package.pk} failed: {package.error}")
        digest = hashlib.sha256()
        # Plaintext evidence (or, with a recipient key, for the recipient only): readable by
        # this account only.
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(descriptor, "wb") as target:
            for piece in packages.open_download(package, person, via="export_evidence"):
                target.write(piece)
                digest.update(piece)
        self.stdout.write(
            f"Evidence package #{package.pk}: {package.size:,} bytes written to {out}\n"
            f"SHA-256 {digest.hexdigest()}"
        )
        if package.recipient_key:
            self.stdout.write(
                f"Encrypted for {package.recipient_key}: the recipient opens it with "
                f"age -d -i key.txt {out.name} > {packages.download_name(package)}.zip\n"
                f"SHA-256 of the zip inside {package.zip_sha256}"
            )
