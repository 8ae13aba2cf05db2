"""What the audit trail announces to the apps above it (staff: the login-spray check)."""

from django.dispatch import Signal

# A failed login was recorded: event (the AuditEvent), request.
failed_login_recorded = Signal()
