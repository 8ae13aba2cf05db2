"""django-simple-history, recording who changed a row.

API requests are made by an integration, not by a person: their changes are recorded with no
history user (the reports carry the integration).
"""

from django.contrib.auth import get_user_model
from simple_history.models import HistoricalRecords


def _staff_user(request=None, **kwargs):
    user = getattr(request, "user", None)
    return user if isinstance(user, get_user_model()) else None


def audit_history(**kwargs) -> HistoricalRecords:
    return HistoricalRecords(get_user=_staff_user, **kwargs)
