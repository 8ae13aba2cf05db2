"""Generated placeholder images (stripes and shapes) for demo data and benchmarks: never real
content."""

import io
import random

from PIL import Image, ImageDraw


def pattern_png(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    step = rng.randint(8, 32)
    colour = tuple(rng.randrange(256) for _ in range(3))
    for x in range(0, size[0], step * 2):
        draw.rectangle([x, 0, x + step, size[1]], fill=colour)
    for _ in range(rng.randint(2, 6)):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        r = rng.randint(10, 60)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
