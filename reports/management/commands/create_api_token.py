from django.core.management.base import BaseCommand, CommandError

from reports.actions import create_integration
from reports.models import Integration


class Command(BaseCommand):
    help = "Create an API integration and print its token (last line). Only a hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the integration's name, e.g. platform-reports")

    def handle(self, *args, name, **options):
        name = name.strip()
        if not name:
            raise CommandError("Give the integration a name.")
        if Integration.objects.filter(name=name).exists():
            raise CommandError(f"An integration named {name!r} exists already.")
        _, token = create_integration(name)
        self.stdout.write(f"Integration {name!r} created. Keep the token: it is not shown again.")
        self.stdout.write(token)
