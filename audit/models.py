"""The audit trail of staff access: who logged in, failed, enrolled a factor, changed whose roles
and permissions, and the staff compliance records (training, background checks).

Rows are written by audit.actions.record (mostly from signals, audit.receivers) and never changed:
each is a link of a keyed chain (audit/chain.py), the model refuses updates and deletes, and on
PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE.
The object of an event is the person (or group) it is about: a user's logins, factors, roles and
compliance records all carry object_type "auth.user" and that user's id, so one filter finds
everything that happened to one person.
"""

from django.conf import settings
from django.db import models


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("The audit trail is append-only: events are never changed.")

    def delete(self):
        raise TypeError("The audit trail is append-only: events are never deleted.")


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        LOGIN = "login", "Login"
        LOGIN_FAILED = "login_failed", "Failed login"
        LOGOUT = "logout", "Logout"
        LOCKOUT = "lockout", "Locked out (too many failed logins)"
        LOGIN_SPRAY = "login_spray", "Login spray (failed logins for many usernames or addresses)"
        FACTOR_VERIFIED = "factor_verified", "Second factor verified"
        FACTOR_FAILED = "factor_failed", "Second factor refused"
        FACTOR_ENROLLED = "factor_enrolled", "Second factor enrolled"
        FACTOR_REMOVED = "factor_removed", "Second factor removed"
        BACKUP_CODES_GENERATED = "backup_codes_generated", "Backup codes generated"
        USER_CREATED = "user_created", "User created"
        USER_CHANGED = "user_changed", "User flags changed"
        ROLE_CHANGED = "role_changed", "Roles (groups) changed"
        PERMISSION_CHANGED = "permission_changed", "Permissions changed"
        TRAINING_UPDATED = "training_updated", "Training updated"
        BACKGROUND_UPDATED = "background_updated", "Background check updated"
        PRIVILEGE_REQUESTED = "privilege_requested", "Privileged role asked for"
        PRIVILEGE_APPROVED = "privilege_approved", "Privileged role approved and granted"
        PRIVILEGE_REJECTED = "privilege_rejected", "Privileged role refused"

    at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    # No database constraint and nothing done when the user is deleted: the event keeps the id
    # it was written with (SET_NULL would be an UPDATE of an append-only row, and the id is
    # part of what the chain's MAC covers). Ids are never reused (PostgreSQL sequences, SQLite
    # AUTOINCREMENT).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        help_text="Who did it; empty for the system (migrations, tasks) or an unknown person.",
    )
    actor_name = models.CharField(max_length=150, blank=True, help_text="Kept if the user goes.")
    object_type = models.CharField(max_length=100, blank=True, help_text='e.g. "auth.user"')
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    key_id = models.CharField(max_length=16, editable=False, help_text="The ledger key's id.")
    mac = models.CharField(max_length=64, editable=False)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]
        indexes = [
            models.Index(fields=["actor", "at"], name="audit_actor_at"),
            models.Index(fields=["object_type", "object_id", "at"], name="audit_object_at"),
            models.Index(fields=["action", "at"], name="audit_action_at"),
        ]

    def __str__(self):
        who = self.actor_name or "system"
        return f"{self.at:%Y-%m-%d %H:%M:%S} {who}: {self.get_action_display()} {self.object_repr}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("The audit trail is append-only: events are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("The audit trail is append-only: events are never deleted.")
