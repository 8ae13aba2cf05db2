"""The second factor of every staff login (django-otp): a TOTP authenticator app, and one-use
backup codes.

The flow (views: staff.two_factor_views; enforcement: staff.sessions and
bakkme_safety.admin_site):

1. password (the admin login; django-axes counts the failures);
2. no confirmed authenticator yet: enrolment. A pending TOTP device is made, its secret shown as
   text and as a QR code (SVG drawn here, no script), and a code from the app confirms it; then
   BAKKME_BACKUP_CODE_COUNT backup codes are shown once;
3. with an authenticator: a code from it, or one backup code (each works once).

The session is then verified (django_otp.login) until it ends. Wrong codes slow down per device
(django-otp's throttling: each failure doubles the wait). Every step is in the audit trail.
"""

from __future__ import annotations

from base64 import b32encode
from dataclasses import dataclass

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django_otp.models import VerifyNotAllowed
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.actions import record
from audit.models import AuditEvent

TOTP_DEVICE_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"


def is_verified(user) -> bool:
    """True when `user` (request.user) passed a second factor in this session."""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def has_authenticator(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def pending_authenticator(user) -> TOTPDevice:
    """The user's unconfirmed TOTP device, made on first call: its secret stays the same while
    the enrolment page is reloaded, so a code scanned before still works."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def secret_text(device: TOTPDevice) -> str:
    """The shared secret in base32, in groups of four (for typing it into an app by hand)."""
    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The device's otpauth:// URL as an inline SVG QR code (a white square with one path)."""
    image = qrcode.make(
        device.config_url, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=10, border=4
    )
    return image.to_string(encoding="unicode")


def normalise(code: str) -> str:
    """Codes are typed with spaces or dashes now and then; backup codes in any case."""
    return "".join(ch for ch in code if ch not in " -\t").lower()


def _looks_like_totp(code: str) -> bool:
    return code.isdigit() and len(code) == TOTPDevice._meta.get_field("digits").default


@dataclass
class Outcome:
    device: object | None = None
    error: str = ""
    codes: list[str] | None = None


def _not_allowed_message(extra: dict) -> str:
    if extra.get("reason") == VerifyNotAllowed.N_FAILED_ATTEMPTS:
        return f"Too many wrong codes ({extra.get('failure_count')}). Wait a little and try again."
    return "Codes cannot be checked at the moment. Try again shortly."


def generate_backup_codes(user, request=None) -> list[str]:
    """A new set of backup codes; the old ones stop working. Shown to the user once."""
    count = settings.BAKKME_BACKUP_CODE_COUNT
    with transaction.atomic():
        device = StaticDevice.objects.filter(user=user).order_by("pk").first()
        if device is None:
            device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
        elif not device.confirmed:
            device.confirmed = True
            device.save()
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(count)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
        record(
            AuditEvent.Action.BACKUP_CODES_GENERATED,
            obj=user,
            actor=user,
            request=request,
            detail={"count": count},
        )
    return codes


def confirm_enrolment(user, code: str, request=None) -> Outcome:
    """Confirm the pending authenticator with a code from it; then make the backup codes."""
    code = normalise(code)
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=False)
            .order_by("pk")
            .first()
        )
        if device is None:
            return Outcome(error="The enrolment expired: start again.")
        allowed, extra = device.verify_is_allowed()
        if not allowed:
            return Outcome(error=_not_allowed_message(extra))
        if not (_looks_like_totp(code) and device.verify_token(code)):
            record(
                AuditEvent.Action.FACTOR_FAILED,
                obj=user,
                actor=user,
                request=request,
                detail={"method": "totp", "step": "enrolment"},
            )
            return Outcome(error="That code is not right. Check the time on your phone and retry.")
        device.confirmed = True
        device.save()
        # Another authenticator left pending (another browser tab) is not needed any more.
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        codes = generate_backup_codes(user, request=request)
    return Outcome(device=device, codes=codes)


def verify(user, code: str, request=None) -> Outcome:
    """Check a code from the authenticator app, or a backup code (used up by this)."""
    code = normalise(code)
    method = "totp" if _looks_like_totp(code) else "backup_code"
    model = TOTPDevice if method == "totp" else StaticDevice
    with transaction.atomic():
        devices = model.objects.select_for_update().filter(user=user, confirmed=True)
        device = devices.order_by("pk").first()
        if device is None:
            error = (
                "You have no authenticator app yet."
                if method == "totp"
                else "That is not a code from your authenticator app, and you have no backup codes."
            )
            return Outcome(error=error)
        allowed, extra = device.verify_is_allowed()
        if not allowed:
            return Outcome(error=_not_allowed_message(extra))
        if not code or not device.verify_token(code):
            record(
                AuditEvent.Action.FACTOR_FAILED,
                obj=user,
                actor=user,
                request=request,
                detail={"method": method},
            )
            return Outcome(error="That code is not right.")
        detail = {"method": method}
        if method == "backup_code":
            detail["backup_codes_left"] = device.token_set.count()
        record(
            AuditEvent.Action.FACTOR_VERIFIED, obj=user, actor=user, request=request, detail=detail
        )
    return Outcome(device=device)


def backup_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()
