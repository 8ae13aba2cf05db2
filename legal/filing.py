"""The lease a filing run holds on its CyberTipline report (legal.actions.run_filing).

django-q2 delivers a task at least once: the filing task may run twice at the same time (a
delivery again while the first still runs) or after its worker died. A run therefore claims the
report first: a token only it knows and an expiry (`lease_until`), written by a conditional
UPDATE on the state it read, so two runs never both win, on SQLite too. The lease is renewed at
each step and, from a thread of its own, every third of BAKKME_CYBERTIP_LEASE_SECONDS while the
run lives; it dies with the process. A run whose lease ran out is dead: the task delivered again
(or legal pressing File again) takes the filing over, and the resume rules decide what is left.
"""

import logging
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import CyberTiplineReport

log = logging.getLogger(__name__)
Step = CyberTiplineReport.Step

# The steps of a filing that is under way: queued for a worker, or a worker running it.
RUNNING_STEPS = (Step.SUBMIT, Step.UPLOAD, Step.FILEINFO, Step.FINISH)
ACTIVE_STEPS = (Step.QUEUED, *RUNNING_STEPS)


class LeaseLost(Exception):
    """This run no longer holds the filing: another run took it over."""


def lease_live(report: CyberTiplineReport, now=None) -> bool:
    return report.lease_until is not None and report.lease_until > (now or timezone.now())


def running(report: CyberTiplineReport, now=None) -> bool:
    """A worker is filing the report now (its lease is live)."""
    return report.step in RUNNING_STEPS and lease_live(report, now)


def stalled(report: CyberTiplineReport, now=None) -> bool:
    """The report's filing was running and its worker stopped (the lease ran out)."""
    return report.step in RUNNING_STEPS and not lease_live(report, now)


class Lease:
    """A run's hold on one report's filing."""

    def __init__(self, report: CyberTiplineReport, token: str):
        self.report = report
        self.report_id = report.pk
        self.token = token
        self.duration = timedelta(seconds=settings.BAKKME_CYBERTIP_LEASE_SECONDS)
        self.interval = max(settings.BAKKME_CYBERTIP_LEASE_SECONDS / 3, 0.05)

    @classmethod
    def claim(cls, report_id: int) -> "Lease | None":
        """Take the filing: a queued report, or one whose run's lease ran out. None when there
        is nothing to take (no such report, not queued, or running under a live lease)."""
        report = CyberTiplineReport.objects.filter(pk=report_id).first()
        if report is None:
            return None
        now = timezone.now()
        if report.step == Step.QUEUED:
            pass
        elif stalled(report, now):
            log.warning(
                "CyberTipline report %s: the previous run stopped at %r; taking it over",
                report.pk,
                report.step_detail,
            )
        else:
            return None
        token = uuid.uuid4().hex
        until = now + timedelta(seconds=settings.BAKKME_CYBERTIP_LEASE_SECONDS)
        claimed = CyberTiplineReport.objects.filter(
            pk=report.pk,
            step=report.step,
            lease_token=report.lease_token,
            lease_until=report.lease_until,
        ).update(lease_token=token, lease_until=until)
        if not claimed:
            return None  # another run took it in between
        report.lease_token, report.lease_until = token, until
        return cls(report, token)

    def renew(self, **fields) -> None:
        """Extend the lease, writing `fields` (the step) in the same UPDATE; LeaseLost when
        another run holds the filing now."""
        until = timezone.now() + self.duration
        kept = CyberTiplineReport.objects.filter(pk=self.report_id, lease_token=self.token).update(
            lease_until=until, **fields
        )
        if not kept:
            raise LeaseLost(self.report_id)
        for name, value in {"lease_until": until, **fields}.items():
            setattr(self.report, name, value)

    def release(self, **fields) -> bool:
        """Give the filing up, writing `fields` (where it stopped); False when another run
        holds it (nothing written)."""
        fields = {"lease_token": "", "lease_until": None, **fields}
        kept = CyberTiplineReport.objects.filter(pk=self.report_id, lease_token=self.token).update(
            **fields
        )
        if kept:
            for name, value in fields.items():
                setattr(self.report, name, value)
        return bool(kept)


class Heartbeat:
    """Renews the lease from a thread of its own every third of the lease, so that a step that
    waits on NCMEC up to its deadline keeps it. Not started inside the caller's transaction (a
    sync cluster in tests, `cybertip_file --wait` in a transaction): no other connection can
    see that filing, so nobody can take it over, and a second connection would wait for its
    locks."""

    def __init__(self, lease: Lease):
        self.lease = lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        if not connection.in_atomic_block:
            name = f"cybertip-report-{self.lease.report_id}-lease"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.lease.interval):
                try:
                    until = timezone.now() + self.lease.duration
                    kept = CyberTiplineReport.objects.filter(
                        pk=self.lease.report_id, lease_token=self.lease.token
                    ).update(lease_until=until)
                    if not kept:
                        return
                except Exception:  # a database hiccup: the next beat tries again
                    log.exception("CyberTipline report %s: lease not renewed", self.lease.report_id)
        finally:
            connection.close()  # this thread's own connection
