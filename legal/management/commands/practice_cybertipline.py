import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from legal.practice import PracticeCyberTipline


class Command(BaseCommand):
    help = (
        "Run the practice CyberTipline: NCMEC's reporting API on this machine (nothing reaches "
        "NCMEC), validating every document against the schema and listing what it received on "
        "its root page. `make run` starts it and points filing at it."
    )
    requires_system_checks = []  # it touches neither the database nor the vault

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--port", type=int, default=8010)

    def handle(self, *args, host, port, **options):
        practice = PracticeCyberTipline(
            settings.BAKKME_CYBERTIP_PRACTICE_USERNAME, settings.BAKKME_CYBERTIP_PRACTICE_PASSWORD
        )
        server = practice.serve(host, port)
        signal.signal(signal.SIGTERM, _interrupt)
        root = practice.url.removesuffix("/ispws") + "/"
        self.stdout.write(
            f"Practice CyberTipline at {practice.url}: nothing reaches NCMEC. What it received: "
            f"{root} (user {practice.username!r}, password BAKKME_CYBERTIP_PRACTICE_PASSWORD)."
        )
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            practice.stop()


def _interrupt(signum, frame):
    """SIGTERM (run-local.sh stopping it) ends it like Ctrl+C."""
    raise KeyboardInterrupt
