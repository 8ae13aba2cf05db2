import io
import random
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from bakkme_safety.policy import Category, Source, Surface
from bakkme_safety.roles import Role
from detection.hashbanks import import_hashes
from detection.models import BlockedLink, HashBank, LexiconTerm
from evidence import vault
from evidence.images import analyse_image
from evidence.samples import pattern_png
from reports.actions import build_report, create_integration, ingest_reports, payload_fingerprint
from reports.events import build_event, ingest_events
from reports.events import fingerprint as event_fingerprint
from reports.models import Integration
from staff.actions import set_on_shift, update_compliance_record
from staff.models import BackgroundCheck

# Reports that get a generated pattern image as evidence, so the evidence pages have something.
DEMO_IMAGES = 12
# Demo detections: every Nth report's text carries the demo lexicon term or blocked link.
DEMO_TERM, DEMO_TERM_EVERY = "placeholder-codeword", 25
DEMO_DOMAIN, DEMO_LINK_EVERY = "blocked-demo.example", 40


class Command(BaseCommand):
    help = (
        "Create one demo account per role (printing the generated passwords once) and a few "
        "hundred synthetic reports. Placeholder text only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reports", type=int, default=300)
        parser.add_argument("--seed", type=int, default=2026)

    def handle(self, *args, reports, seed, **options):
        rng = random.Random(seed)
        User = get_user_model()
        self.stdout.write("Demo accounts (the passwords are shown only now):")
        for role in Role:
            username = f"demo_{role.value}"
            password = secrets.token_urlsafe(12)
            user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True})
            user.is_staff = True
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=role.value)])
            # A compliance record that qualifies them for the child-safety queue (the demo
            # needs someone to work it): trained today, enhanced background check cleared.
            today = timezone.localdate()
            update_compliance_record(
                user,
                actor=None,
                csae_training_on=today,
                general_training_on=today,
                background_check=BackgroundCheck.ENHANCED_CLEARED,
                background_checked_on=today,
            )
            if role in (Role.REVIEWER, Role.SENIOR_REVIEWER):
                set_on_shift(user, True)  # someone is on duty for the SLA engine to tell
            self.stdout.write(f"  {role.label:<22} {username:<28} {password}")

        integration = Integration.objects.filter(name="demo-platform").first()
        if integration is None:
            integration, token = create_integration("demo-platform")
            self.stdout.write(f"API token for integration 'demo-platform': {token}")

        now = timezone.now()
        self._seed_signal_lists(seed)
        categories = [c.value for c in Category]
        weights = [6 if c in ("grooming", "other", "csam") else 2 for c in categories]
        batch = []
        for i in range(reports):
            account = f"demo-u-{rng.randint(1, reports // 2)}"
            category = rng.choices(categories, weights)[0]
            payload = {
                "idempotency_key": f"demo-{seed}-{i}",
                "source": rng.choice([s.value for s in Source]),
                "category": category,
                "surface": rng.choice([s.value for s in Surface]),
                "received_at": now - timedelta(minutes=rng.randint(1, 60 * 30)),
                "reported_account": {"platform_id": account, "username": f"user_{account[7:]}"},
                "content": {
                    "platform_id": f"demo-c-{i}",
                    "type": "message",
                    "text": _demo_text(i),
                },
                "reporter": {"platform_id": f"demo-r-{i}", "contact": f"demo-r-{i}"},
                "description": "Placeholder description.",
            }
            batch.append(build_report(integration, payload, payload_fingerprint(payload)))
        with transaction.atomic():
            results = ingest_reports(integration, batch)
        stored = [r.report for r in results if getattr(r, "created", False)]
        self.stdout.write(f"{len(stored)} demo reports created.")
        for n, report in enumerate(stored[:DEMO_IMAGES], start=1):
            vault.collect(
                io.BytesIO(pattern_png(seed + n)),
                case=report.case,
                report=report,
                original_name=f"demo-{report.pk}.png",
                integration=integration,
                purpose="demo data (a generated pattern)",
            )
        self.stdout.write(
            f"{min(len(stored), DEMO_IMAGES)} generated pattern images stored as evidence "
            "(the first is in the demo CSAM bank: its case shows the automatic actions)."
        )
        self._seed_behaviour(integration, now, seed)

    def _seed_signal_lists(self, seed):
        """A lexicon term, a blocked domain and a hash bank holding the first demo image's PDQ
        (a generated pattern), so intake raises a detection of each kind."""
        LexiconTerm.objects.get_or_create(
            pattern=DEMO_TERM + r"-\d+",
            defaults={"category": "grooming", "weight": 2, "note": "Demo term (placeholder)."},
        )
        BlockedLink.objects.get_or_create(
            value=DEMO_DOMAIN, kind=BlockedLink.Kind.DOMAIN, defaults={"note": "Demo domain."}
        )
        first = analyse_image(pattern_png(seed + 1), "image/png", 0)
        import_hashes(
            "demo-csam-bank",
            [f"{first.pdq},demo: the first demo image"],
            "pdq",
            source=HashBank.BankSource.INDUSTRY,
        )
        HashBank.objects.filter(name="demo-csam-bank").update(is_csam=True)

    def _seed_behaviour(self, integration, now, seed):
        """An adult messaging six minors who do not follow back: a behaviour detection."""
        events = []
        for n in range(6):
            payload = {
                "idempotency_key": f"demo-{seed}-event-{n}",
                "type": "message_sent",
                "occurred_at": now - timedelta(minutes=60 - n),
                "actor": {"platform_id": "demo-adult-1", "age": 34},
                "target": {"platform_id": f"demo-minor-{n}", "age_band": "13_15"},
                "mutual_followers": False,
                "surface": "message",
            }
            events.append(build_event(integration, payload, event_fingerprint(payload)))
        ingest_events(integration, events)
        self.stdout.write("6 account events: an adult messaging six minors (a behaviour rule).")


def _demo_text(i: int) -> str:
    text = f"Placeholder text for demo report {i}."
    if i % DEMO_TERM_EVERY == 0:
        text += f" {DEMO_TERM}-{i}"
    if i % DEMO_LINK_EVERY == 0:
        text += f" {DEMO_DOMAIN}/files/{i}"
    return text
