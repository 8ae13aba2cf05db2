from django.core.management.base import BaseCommand, CommandError

from cases.models import Case
from legal import actions


class Command(BaseCommand):
    help = (
        "Print the CyberTipline <report> XML of a case's draft: the one legal staff saved, or "
        "(none saved yet) the one the case gives, from its decision or its reports' categories. "
        "Problems against NCMEC's schema are listed on stderr, field by field."
    )

    def add_arguments(self, parser):
        parser.add_argument("case_id", type=int)

    def handle(self, *args, case_id, **options):
        case = Case.objects.filter(pk=case_id).first()
        if case is None:
            raise CommandError(f"No case #{case_id}.")
        xml, problems = actions.draft(case)
        self.stdout.write(xml, ending="")
        for problem in problems:
            self.stderr.write(f"invalid: {problem}")
