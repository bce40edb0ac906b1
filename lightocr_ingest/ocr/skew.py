"""Small skew: a page scanned a few degrees off is straightened before the CPU engine reads it.

RapidOCR reads a slanted line well (it crops each line along its own slant), but the layout
step groups lines into columns and paragraphs by their upright boxes, and on a two-column
page tilted 1-4 degrees the boxes of neighbouring lines and columns overlap: word recall on a
real two-column paper fell from 0.991 to 0.96 (benchmarks/orientation.py measures it). Finding
the angle costs about 12 core-ms a page (benchmarks/cpu_engine.py --scans).

The angle is found the classic way: ink pixels of a shrunk page are projected onto the
vertical axis at candidate angles, and the angle whose profile is sharpest (text lines
become narrow peaks) wins, first in coarse steps and then finer around the best.

The vLLM path is left alone: LightOnOCR reads the page image as a whole, and resampling
would soften small print for a model that was not shown to need it (not measured here: no GPU).
"""

from __future__ import annotations

import math

import numpy as np

MAX_SKEW = 5.0  # degrees: a page further off is turned, not skewed (``pages.orientation``), or a photo
MIN_SKEW = 0.3  # degrees: below this, straightening costs sharpness and buys nothing
COARSE_STEP, FINE_STEP = 0.5, 0.1  # degrees
SKEW_WIDTH = 800  # px: the page is shrunk to this width to find its angle (line pitch stays ~10 px)
MAX_POINTS = 40_000  # ink pixels used: enough for a sharp profile, bounded cost on dark scans


def _ink_points(grey: np.ndarray) -> np.ndarray | None:
    from ..pages.orientation import page_ink
    from ..pages.pixels import downscale

    scale = min(1.0, SKEW_WIDTH / grey.shape[1])
    small = downscale(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))) \
        if scale < 1 else grey
    rows, cols = np.nonzero(page_ink(small))
    if len(rows) < 200:
        return None  # a blank page or a few specks: no lines to align
    if len(rows) > MAX_POINTS:
        keep = np.random.default_rng(0).choice(len(rows), MAX_POINTS, replace=False)
        rows, cols = rows[keep], cols[keep]
    return np.stack([cols, rows]).astype(np.float32)


def _sharpness(points: np.ndarray, degrees: float) -> float:
    angle = math.radians(degrees)
    projected = points[1] * math.cos(angle) - points[0] * math.sin(angle)
    counts = np.bincount((projected - projected.min()).astype(np.int64))
    return float(np.dot(counts, counts))


def estimate_skew(grey: np.ndarray) -> float:
    """Degrees the page's text lines rise to the right (positive: anticlockwise), 0 when the
    page is straight enough, blank, or tilted beyond ``MAX_SKEW``."""
    points = _ink_points(grey)
    if points is None:
        return 0.0
    steps = np.arange(-MAX_SKEW, MAX_SKEW + 1e-9, COARSE_STEP)
    best = max(steps, key=lambda a: _sharpness(points, a))
    fine = np.arange(best - COARSE_STEP, best + COARSE_STEP + 1e-9, FINE_STEP)
    best = float(max(fine, key=lambda a: _sharpness(points, a)))
    if abs(best) < MIN_SKEW or abs(best) > MAX_SKEW:
        return 0.0
    return round(-best, 2)  # the profile is sharpest when projected against the lines' rise


def straighten(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned by ``-degrees`` so its lines run level, on a canvas large enough to
    keep every corner, and the 2 x 3 affine map from the straightened image back to ``image``."""
    import cv2

    height, width = image.shape[:2]
    angle = math.radians(degrees)
    new_width = int(math.ceil(abs(width * math.cos(angle)) + abs(height * math.sin(angle))))
    new_height = int(math.ceil(abs(height * math.cos(angle)) + abs(width * math.sin(angle))))
    # Turning by the angle the lines rise undoes it (OpenCV's positive angles are anticlockwise
    # on screen, the y axis pointing down).
    forward = cv2.getRotationMatrix2D((width / 2, height / 2), -degrees, 1.0)
    forward[0, 2] += (new_width - width) / 2
    forward[1, 2] += (new_height - height) / 2
    fill = (255,) * (1 if image.ndim == 2 else image.shape[2])
    straight = cv2.warpAffine(image, forward, (new_width, new_height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    return straight, cv2.invertAffineTransform(forward)


def map_box(box: tuple[float, float, float, float], back: np.ndarray, width: int, height: int
            ) -> tuple[float, float, float, float]:
    """The upright box around a box's four corners mapped through ``back``, clipped to the image."""
    x0, y0, x1, y1 = box
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], dtype=np.float64) @ back.T
    xs, ys = np.clip(corners[:, 0], 0, width), np.clip(corners[:, 1], 0, height)
    return (round(float(xs.min()), 1), round(float(ys.min()), 1), round(float(xs.max()), 1), round(float(ys.max()), 1))
