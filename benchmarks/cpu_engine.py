"""Embedded CPU engine quality: word recall against the text layer on real pages read as images.

Born-digital pages of ``tests/real_documents`` (papers and a manual from Debian packages; see
SOURCES.md there) are rendered as the reader renders them and read by the CPU engine as if
they were scans (``ocr_page_sync``: RapidOCR, weak-line re-reading, layout). Word recall is
the share of the text layer's words (NFKC, case-folded, punctuation stripped, counted with
multiplicity) that the engine's Markdown holds too. Cost is CPU seconds per page (both
cores). Each page is read three ways (``VARIANTS``): as the engine was, without RapidOCR's
line-direction classifier, and as it is now (weak lines re-read). Run from the repository root::

    .venv/bin/python benchmarks/cpu_engine.py            # the 8 pages the issue names, ~5 minutes on 2 cores
    .venv/bin/python benchmarks/cpu_engine.py --all      # all 32 pages
    .venv/bin/python benchmarks/cpu_engine.py --scans    # also re-reading and skew cost on 8 real scans
    .venv/bin/python benchmarks/cpu_engine.py --json .bench/cpu_engine.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import statistics
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from lightocr_ingest.ocr.cpu import ocr_page_sync
from lightocr_ingest.pages import DocumentSource

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = REPO / "tests" / "real_documents"
DEFAULT_PAGES = [("paper-two-column-1.pdf", 1), ("paper-two-column-1.pdf", 2),
                 ("paper-two-column-2.pdf", 1), ("paper-two-column-2.pdf", 2),
                 ("paper-one-column-tables.pdf", 1), ("paper-one-column-tables.pdf", 2),
                 ("manual-tables.pdf", 1), ("manual-tables.pdf", 2)]  # four documents, two pages each
_MARKUP = re.compile(r"^#+\s")  # heading marks; the CPU engine writes no other markup
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"'})


def words(text: str) -> Counter:
    """Comparable words: NFKC, case-folded, outer punctuation stripped, hyphens at line ends
    re-joined; words without a letter or digit left out."""
    text = unicodedata.normalize("NFKC", text).replace("\ufffe", "").replace("\x02", "")
    text = text.translate(_QUOTES)
    text = re.sub(r"-\s*\n\s*", "", text)
    out = Counter()
    for raw in text.split():
        word = raw.strip(".,;:!?()[]{}\"'`*_#|<>").casefold()
        if any(ch.isalnum() for ch in word):
            out[word] += 1
    return out


def recall(reference: Counter, found: Counter) -> float:
    total = sum(reference.values())
    return sum(min(n, found[w]) for w, n in reference.items()) / total if total else 1.0


VARIANTS = {  # name -> options of ocr_page_sync
    "before": {"classify_lines": True, "reread_below": 0.0, "deskew": False},  # the engine as it was
    "no_classifier": {"reread_below": 0.0, "deskew": False},  # pages come upright: RapidOCR's line classifier off
    "now": {},  # the engine's defaults: line classifier off, weak lines re-read, skew straightened
}


def measure(pages: list[tuple[str, int]]) -> dict:
    rows = []
    for name, number in pages:
        with DocumentSource(DOCUMENTS / name, detect_rotation=False) as source:
            page = source.render_page(number)
        reference = words(page.text_layer or "")
        row = {"page": f"{name}:{number}", "words": sum(reference.values())}
        for variant, options in VARIANTS.items():
            started = time.process_time()
            result = ocr_page_sync(page, **options)
            seconds = time.process_time() - started
            markdown = "\n".join(_MARKUP.sub(" ", line) for line in result.markdown.splitlines())
            row[variant] = {"recall": round(recall(reference, words(markdown)), 4), "cpu_s": round(seconds, 2)}
        rows.append(row)
        print(f"  {row['page']:32s} " + "  ".join(f"{v} {row[v]['recall']:.3f} ({row[v]['cpu_s']:.1f} s)"
                                                 for v in VARIANTS), file=sys.stderr)
    summary = {}
    for variant in VARIANTS:
        recalls = [r[variant]["recall"] for r in rows]
        summary[variant] = {"median_recall": round(statistics.median(recalls), 4), "min_recall": min(recalls),
                            "median_cpu_s": round(statistics.median(r[variant]["cpu_s"] for r in rows), 2)}
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "pages": rows, "summary": summary}


def scans_cost(folder: Path, count: int = 8) -> dict:
    """On real scans (``benchmarks/scans/fetch.py``; printed, not handwritten): weak lines per
    page, CPU-seconds with and without re-reading, and the skew estimate's core-ms."""
    from lightocr_ingest.ocr.cpu import read_lines
    from lightocr_ingest.ocr.skew import estimate_skew

    manifest = json.loads((folder / "manifest.json").read_text())
    entries = [e for e in manifest["pages"] if e["content"] != "handwriting"]
    rows = []
    for entry in entries[::3][:count]:
        with DocumentSource(folder / entry["file"]) as source:
            page = source.render_page(1)
        row = {"page": entry["file"]}
        for name, options in (("without_reread", {"reread_below": 0.0}), ("with_reread", {})):
            started = time.process_time()
            read_lines(page.png, **options)
            row[f"{name}_cpu_s"] = round(time.process_time() - started, 2)
        row["weak_lines"] = sum(1 for line in read_lines(page.png, reread_below=0.0).lines if line.score < 0.9)
        grey = np.asarray(Image.open(io.BytesIO(page.png)).convert("L"))
        started = time.thread_time()
        estimate_skew(grey)
        row["skew_estimate_core_ms"] = round((time.thread_time() - started) * 1000, 1)
        rows.append(row)
        print(f"  {row}", file=sys.stderr)
    return {"pages": rows,
            "median_skew_estimate_core_ms": statistics.median(r["skew_estimate_core_ms"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="every page of every real document")
    parser.add_argument("--scans", nargs="?", const=str(Path.home() / ".cache" / "lightocr-ingest" / "scans"),
                        help="also measure re-reading and the skew estimate on real scans (fetch.py's folder)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.all:
        pages = []
        for path in sorted(DOCUMENTS.glob("*.pdf")):
            with DocumentSource(path, detect_rotation=False) as source:
                pages += [(path.name, n) for n in range(1, source.source.page_count + 1)]
    else:
        pages = DEFAULT_PAGES
    result = measure(pages)
    if args.scans:
        result["scans"] = scans_cost(Path(args.scans))
    print(json.dumps(result["summary"], indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
