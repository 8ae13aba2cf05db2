"""What the intake announces to the apps above it, inside the sender's transaction (their
receivers connect in AppConfig.ready; reports never imports them)."""

from django.dispatch import Signal

# The platform's new reports were stored, each in its case: reports (the Report rows).
reports_received = Signal()
# The platform's new account events were stored: events (the AccountEvent rows), integration.
account_events_received = Signal()
