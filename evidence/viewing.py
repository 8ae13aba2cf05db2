"""The ways staff look at evidence: blurred previews, one item unblurred, the original bytes.

Every way that hands out anything derived from an item's bytes goes through evidence.vault
(checked against the SHA-256) and writes its custody event: PREVIEW, VIEW (unblurred) or
DOWNLOAD. Who may call these is decided before, by evidence.access; the views stay thin.
Previews and unblurred views of a child-safety case's evidence also count as the viewer's
exposure (staff.exposure.record_view).
None of these may run inside transaction.atomic (a failed check writes its own events).
"""

from collections.abc import Iterator

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from staff import exposure

from . import custody, images, vault
from .models import CustodyEvent, EvidenceItem, PreviewSettings
from .queries import preview_options


class NoPreview(Exception):
    """The item has no picture to show: the page shows an icon instead."""


def display_of(item: EvidenceItem) -> str:
    """How a list shows the item: "image" (a blurred preview), or an icon: "video", "audio",
    "problem" (corrupt, bomb, too large), "purged" or "file"."""
    if item.purged:
        return "purged"
    if item.problem:
        return "problem"
    if item.is_image:
        if item.size > settings.BAKKME_EVIDENCE_ANALYSE_MAX_BYTES:
            return "problem"
        return "image"
    if item.media_type.startswith("video/"):
        return "video"
    if item.media_type.startswith("audio/"):
        return "audio"
    return "file"


def _picture(item: EvidenceItem, user, *, unblurred: bool) -> bytes:
    if display_of(item) != "image":
        raise NoPreview(f"Evidence #{item.pk} has no preview.")
    options = preview_options(user)
    blur = 0 if unblurred else options.blur_radius
    purpose = "unblurred view" if unblurred else "blurred preview"
    data = vault.read_bytes(item, actor=user, purpose=purpose)
    try:
        png = images.preview_png(data, blur_radius=blur, greyscale=options.greyscale)
    except (
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,  # raised as an error by images.open_image
        OSError,
        ValueError,
        UnidentifiedImageError,
    ) as exc:
        raise NoPreview(f"Evidence #{item.pk} cannot be decoded.") from exc
    custody.record(
        item,
        CustodyEvent.Action.VIEW if unblurred else CustodyEvent.Action.PREVIEW,
        actor=user,
        purpose=purpose,
        detail={"blur_radius": blur, "greyscale": options.greyscale},
    )
    exposure.record_view(user, item.case)  # child-safety exposure (staff.exposure)
    return png


def preview(item: EvidenceItem, user) -> bytes:
    """A downscaled PNG, blurred and greyscale by the user's settings; custody PREVIEW.

    Raises NoPreview for what is not a decodable image, vault.EvidenceIntegrityError when the
    stored bytes fail their check."""
    return _picture(item, user, unblurred=False)


def unblurred(item: EvidenceItem, user) -> bytes:
    """The same picture without blur (still downscaled, greyscale if the user chose it);
    custody VIEW."""
    return _picture(item, user, unblurred=True)


def download(item: EvidenceItem, user) -> Iterator[bytes]:
    """The original bytes in chunks, after the integrity check; custody DOWNLOAD.

    Raises vault.EvidenceIntegrityError before anything is handed out when the check fails.
    """
    chunks = vault.read_verified(item, actor=user, purpose="download")
    custody.record(
        item,
        CustodyEvent.Action.DOWNLOAD,
        actor=user,
        purpose="download",
        detail={"size": item.size},
    )
    return chunks


def collect_upload(uploaded, *, case, kind: str, actor=None, integration=None, report=None):
    """Preserve an uploaded file (streamed from its temporary file) as evidence of `case`."""
    return vault.collect(
        uploaded,
        case=case,
        kind=kind,
        report=report,
        original_name=uploaded.name or "",
        actor=actor,
        integration=integration,
        purpose="uploaded by staff" if actor is not None else "uploaded by the platform",
    )


def save_preview_settings(user, *, blur_radius: int, greyscale: bool) -> PreviewSettings:
    """The user's own preview settings (blur 0..BAKKME_PREVIEW_MAX_BLUR_RADIUS)."""
    limit = settings.BAKKME_PREVIEW_MAX_BLUR_RADIUS
    if not 0 <= blur_radius <= limit:
        raise ValueError(f"The blur radius is from 0 to {limit}.")
    own, _ = PreviewSettings.objects.update_or_create(
        user=user, defaults={"blur_radius": blur_radius, "greyscale": greyscale}
    )
    return own


def reset_preview_settings(user) -> None:
    """Back to the organisation's defaults."""
    PreviewSettings.objects.filter(user=user).delete()
