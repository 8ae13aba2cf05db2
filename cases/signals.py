"""What the cases app announces to the apps above it, inside the sender's transaction.

The apps that act on these (legal: the hand-off to the legal desk) connect receivers in their
AppConfig.ready; cases never imports them.
"""

from django.dispatch import Signal

# A decision was recorded: case, decision, actions (the action types it prescribes), actor.
case_decided = Signal()
# An evidence item matched a CSAM hash bank: case, item, matches (new reports.HashMatch rows).
csam_hash_matched = Signal()
# A case was escalated: case, escalation, actor.
case_escalated = Signal()
