from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from cases.models import Case
from legal import actions
from legal.cybertip_client import target


class Command(BaseCommand):
    help = (
        "File a case's CyberTipline report with NCMEC as the named member of legal staff (or "
        "continue its interrupted filing): queued for the task queue, like the File button; "
        "with --wait filed here, printing NCMEC's report id."
    )

    def add_arguments(self, parser):
        parser.add_argument("case_id", type=int)
        parser.add_argument("--user", required=True, help="Username of the person filing.")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="File in this process and print NCMEC's report id (no worker needed).",
        )

    def handle(self, *args, case_id, user, wait=False, **options):
        person = get_user_model().objects.filter(username=user, is_active=True).first()
        if person is None:
            raise CommandError(f"No active user {user!r}.")
        case = Case.objects.filter(pk=case_id).first()
        if case is None or not actions.may_file(person, case):
            raise CommandError(
                f"{user} may not file a report for case #{case_id} (no such case, or no access)."
            )
        try:
            if wait:
                report = actions.file_report(case, person)
            else:
                report = actions.request_filing(case, person)
        except actions.InvalidDraft as exc:
            lines = "\n".join(f"  {problem}" for problem in exc.problems)
            raise CommandError(
                f"The report of case #{case_id} does not validate; nothing was sent:\n{lines}"
            ) from exc
        except actions.FilingError as exc:
            raise CommandError(f"The filing of case #{case_id} stopped: {exc}") from exc
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from exc
        if wait or report.status == report.Status.FINISHED:
            self.stdout.write(report.report_id)
        else:
            self.stdout.write(
                f"Filing of case #{case_id} queued ({target().label}): CyberTipline report "
                f"#{report.pk}; its admin page shows each step."
            )
