"""What the evidence app announces to the apps above it (legal: the desk's package duties),
inside the sender's transaction. Receivers connect in their AppConfig.ready."""

from django.dispatch import Signal

# An evidence package was requested: package.
package_requested = Signal()
# An evidence package was downloaded by its requester: package, user.
package_downloaded = Signal()
