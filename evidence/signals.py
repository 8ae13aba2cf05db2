"""What the evidence app announces to the apps above it (legal: the desk's package duties),
inside the sender's transaction. Receivers connect in their AppConfig.ready."""

from django.dispatch import Signal

# An evidence item was collected (stored, in the custody ledger): item, plaintext (its bytes
# when they were kept in memory for analysis, else None).
item_collected = Signal()
# An evidence package was requested: package.
package_requested = Signal()
# An evidence package was downloaded by its requester: package, user.
package_downloaded = Signal()
