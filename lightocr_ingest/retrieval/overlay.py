"""Draw boxes on a rendered page: where a retrieved chunk sits, for people who would rather look.

Boxes in chunk metadata are in page coordinates (PDF points, origin at the top-left corner,
as the reader stores them); this renders the page at a viewing size and scales them onto it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from ..metadata import ChunkMetadata
from ..pages import DocumentSource, to_rgb

VIEW_LONGEST_SIDE = 900  # px: a page that fits a notebook cell and still reads


@dataclass(frozen=True)
class Outline:
    """A box to draw on a page, with its colour and an optional label (not ``records.Box``, a bare tuple)."""

    bbox: Sequence[float]  # x0, y0, x1, y1 in page points, top-left origin
    colour: str = "red"
    label: str = ""


def boxes_of_chunk(metadata: dict, page: int | None = None) -> list[Outline]:
    """A chunk's regions (blue) and figures (red, with their reference) on ``page`` (default:
    the chunk's first page)."""
    chunk = ChunkMetadata.from_metadata(metadata)
    page = page if page is not None else chunk.page
    boxes = [Outline(region.bbox, "royalblue") for region in chunk.regions if region.page == page]
    boxes += [Outline(figure.bbox, "red", figure.ref) for figure in chunk.figures if figure.bbox and figure.page == page]
    return boxes


def page_with_boxes(path: str | os.PathLike, page: int, boxes: Iterable[Outline],
                    longest_side: int = VIEW_LONGEST_SIDE, password: str | None = None) -> Image.Image:
    """Render ``page`` of ``path`` (1-based) and draw ``boxes`` on it; returns an RGB image."""
    with DocumentSource(path, password=password, longest_side=longest_side, detect_rotation=False) as source:
        rendered = source.render_page(page)
    image = to_rgb(Image.open(io.BytesIO(rendered.png)))
    sx, sy = image.width / rendered.page_width, image.height / rendered.page_height
    draw = ImageDraw.Draw(image)
    width = max(2, image.width // 300)
    for box in boxes:
        x0, y0, x1, y1 = box.bbox
        corners = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
        draw.rectangle(corners, outline=box.colour, width=width)
        if box.label:
            draw.text((corners[0] + width, max(0, corners[1] - 12)), box.label, fill=box.colour)
    return image
