"""What the staff app announces to the apps above it (their receivers connect in
AppConfig.ready; staff never imports them)."""

from django.dispatch import Signal

# A person may no longer handle child-safety work (left CSAE duties, training expired ...): user,
# reason. A receiver that hands their child-safety claims back answers with the case ids.
child_safety_access_lost = Signal()
