"""Generated test files: patterns and shapes only, made on the fly."""

import io

from PIL import Image, ImageDraw


def pattern_png(size=(96, 64), seed: int = 0, exif: bool = False) -> bytes:
    image = Image.new("RGB", size, (20 + seed % 200, 80, 160))
    draw = ImageDraw.Draw(image)
    for i in range(0, size[0], 12):
        draw.rectangle([i, 0, i + 5, size[1]], fill=(200, (i * 7 + seed) % 255, 40))
    draw.ellipse([10, 10, 40, 40], fill=(255, 255, 255))
    out = io.BytesIO()
    if exif:
        data = Image.Exif()
        data[0x010F] = "PlaceholderCam"  # Make
        data[0x0110] = "Model 1"  # Model
        image.save(out, format="JPEG", exif=data)
    else:
        image.save(out, format="PNG")
    return out.getvalue()


def truncated_png() -> bytes:
    whole = pattern_png((200, 200))
    return whole[: len(whole) // 2]


def bomb_png(side: int = 10_000) -> bytes:
    """A small file that claims a huge image (one colour compresses to almost nothing)."""
    out = io.BytesIO()
    Image.new("1", (side, side), 0).save(out, format="PNG", optimize=True)
    return out.getvalue()
