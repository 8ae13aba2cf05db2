"""What an image tells at collection (PDQ hash, EXIF) and the previews reviewers see.

Pillow opens only what passes its decompression-bomb limit (BAKKME_IMAGE_MAX_PIXELS); a bomb,
a corrupt or a truncated image gets no hash and no preview, and is flagged, never an error.
"""

import io
import warnings
from dataclasses import dataclass, field

import numpy
import pdqhash
from django.conf import settings
from PIL import ExifTags, Image, ImageFilter, UnidentifiedImageError

from .models import EvidenceProblem


@dataclass
class ImageAnalysis:
    pdq: str = ""
    pdq_quality: int | None = None
    exif: dict = field(default_factory=dict)
    problem: str = EvidenceProblem.NONE


def open_image(data: bytes) -> Image.Image:
    """A decoded image, or an exception: Image.DecompressionBombError, or OSError/ValueError
    for what is not a whole, readable image."""
    limit = settings.BAKKME_IMAGE_MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > limit:
            raise Image.DecompressionBombError(
                f"{image.width}x{image.height} is more than {limit:,} pixels"
            )
        image.load()
    return image


def _json_safe(value):
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 64 else f"<{len(value)} bytes>"
    if isinstance(value, tuple | list):
        return [_json_safe(v) for v in value]
    if isinstance(value, int | str | bool) or value is None:
        return value
    try:
        return float(value)  # IFDRational and such
    except (TypeError, ValueError):
        return str(value)


def exif_of(image: Image.Image) -> dict:
    exif = image.getexif()
    found = {ExifTags.TAGS.get(tag, str(tag)): _json_safe(v) for tag, v in exif.items()}
    for ifd_name, ifd in [("Exif", ExifTags.IFD.Exif), ("GPSInfo", ExifTags.IFD.GPSInfo)]:
        values = exif.get_ifd(ifd)
        if values:
            names = ExifTags.GPSTAGS if ifd_name == "GPSInfo" else ExifTags.TAGS
            found[ifd_name] = {names.get(t, str(t)): _json_safe(v) for t, v in values.items()}
    return found


def pdq_of(image: Image.Image) -> tuple[str, int]:
    """PDQ hash (64 hex digits, the form HMA and ThreatExchange use) and its quality."""
    bits, quality = pdqhash.compute(numpy.asarray(image.convert("RGB")))
    return numpy.packbits(bits.astype(numpy.uint8)).tobytes().hex(), int(quality)


def analyse_image(data: bytes | None, media_type: str, size: int) -> ImageAnalysis:
    if not media_type.startswith("image/"):
        return ImageAnalysis()
    if data is None:
        return ImageAnalysis(problem=EvidenceProblem.TOO_LARGE)
    try:
        image = open_image(data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return ImageAnalysis(problem=EvidenceProblem.BOMB)
    except (OSError, ValueError, UnidentifiedImageError, SyntaxError):
        return ImageAnalysis(problem=EvidenceProblem.CORRUPT)
    try:
        exif = exif_of(image)
    except Exception:  # noqa: BLE001  a broken EXIF block must not lose the image
        exif = {}
    pdq, quality = pdq_of(image)
    return ImageAnalysis(pdq=pdq, pdq_quality=quality, exif=exif)


def preview_png(data: bytes, *, blur_radius: int, greyscale: bool) -> bytes:
    """A downscaled PNG, blurred and greyscale unless the reviewer chose otherwise."""
    image = open_image(data)
    image.thumbnail((settings.BAKKME_PREVIEW_MAX_SIDE, settings.BAKKME_PREVIEW_MAX_SIDE))
    image = image.convert("L" if greyscale else "RGB")
    if blur_radius:
        image = image.filter(ImageFilter.GaussianBlur(blur_radius))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
