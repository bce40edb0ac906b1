"""The CPU engine's text-layer reader on real born-digital documents: speed, words, order,
headings, and retrieval through the embedded path against RapidOCR.

Documents (Debian packages, fetched with ``apt-get download`` into ``~/.cache/lightocr-ingest``,
and this repository's own):
- ``papers``: the four two-column papers of ``tests/real_documents`` (24 pages)
- ``one-column``: the one-column paper and the manual excerpt of ``tests/real_documents`` (8 pages)
- ``manual``: the Yosys manual (``yosys-doc``, 286 pages, ISC)
- ``slides``: the Yosys presentation (``yosys-doc``, a beamer deck of 169 slides, ISC)
- ``reports``: two statistical papers with tables and plots: vcd's ``strucplot.pdf`` (48 pages,
  ``r-cran-vcd``, GPL-2) and zoo's ``zoo.pdf`` (30 pages, ``r-cran-zoo``, GPL-2)

Figures (each a median of ``--runs`` runs):
- **layout ms/page**: the text-layer reader alone (words, fonts and positions already read),
  one core.
- **reader pages/s**: ``LightOnOCRReader(ocr_engine="cpu")`` over the document: open, render,
  orientation, words and fonts, layout: the OCR side as a user meets it, on all cores.
- **RapidOCR pages/s**: the same reader with the text layer switched off (``text_layer=False``:
  every page read from its image, as before), on the first ``--rapidocr-pages`` pages of the papers.
- **word recall**: the share of the layer's words found in the Markdown, per page.
- **reading order**: olmOCR-bench's order test over the papers' sentence pairs
  (``lightocr_ingest.testing.text_quality``), the typesetter's order as reference.
- **headings**: the Markdown's headings against the document's own outline (its PDF
  bookmarks, written by hyperref from the \\section commands): a heading found where the
  outline has an entry on that page counts, on the manual, strucplot and the acmart paper.
- **retrieval**: ``benchmarks/questions/real_documents.yaml`` over ``tests/real_documents``,
  and ``samples/queries.yaml`` over ``samples/``, ingested through the embedded path, read from
  the text layer and by RapidOCR (as before); the manual's questions through the text layer
  (RapidOCR on its 286 pages takes about 40 minutes here: ``--rapidocr-manual``); under each
  ``--embed-headings`` setting given (``section,path,none`` compares them).

Run from the repository root::

    .venv/bin/python benchmarks/text_layer.py --json .bench/text_layer.json   # ~15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
CACHE = Path.home() / ".cache" / "lightocr-ingest"
REAL = REPO / "tests" / "real_documents"
PACKAGES = {  # name -> (Debian package, path inside it, folder under CACHE: retrieval.py's for the manual)
    "manual.pdf": ("yosys-doc", "usr/share/doc/yosys/manual.pdf", "yosys"),
    "presentation.pdf": ("yosys-doc", "usr/share/doc/yosys/presentation.pdf", "yosys"),
    "strucplot.pdf": ("r-cran-vcd", "usr/lib/R/site-library/vcd/doc/strucplot.pdf", "r-cran-vcd"),
    "zoo.pdf": ("r-cran-zoo", "usr/lib/R/site-library/zoo/doc/zoo.pdf", "r-cran-zoo"),
}


def fetch(name: str) -> Path:
    from retrieval import fetch_from_debian

    package, inside, folder = PACKAGES[name]
    return fetch_from_debian(package, inside, CACHE / folder / name)


def corpus() -> dict[str, list[Path]]:
    return {"papers": sorted(REAL.glob("paper-two-column-*.pdf")),
            "one-column": [REAL / "paper-one-column-tables.pdf", REAL / "manual-tables.pdf"],
            "manual": [fetch("manual.pdf")], "slides": [fetch("presentation.pdf")],
            "reports": [fetch("strucplot.pdf"), fetch("zoo.pdf")]}


def styled_pages(path: Path) -> list:
    from lightocr_ingest.pages.source import DocumentSource

    with DocumentSource(path, text_words="styled") as source:
        return [source.render_page(n) for n in range(1, source.source.page_count + 1)]


def _normal(text: str) -> str:
    text = re.sub(r"^(chapter|appendix|section)\s+\w+\b", "", text.lower().strip())
    text = re.sub(r"^[\divxl.]+\s+|^[a-z]\.\s+", "", text)  # numbering: "2.5.1", "iv.", "a."
    return re.sub(r"[^a-z0-9]+", "", text)


def outline(path: Path) -> dict[int, list[str]]:
    """The PDF's bookmarks by 1-based page: its authors' own list of headings."""
    import pypdfium2 as pdfium

    entries: dict[int, list[str]] = {}
    document = pdfium.PdfDocument(str(path))
    for mark in document.get_toc():
        dest = mark.get_dest()
        if dest is not None and dest.get_index() is not None:
            entries.setdefault(dest.get_index() + 1, []).append(mark.get_title())
    document.close()
    return entries


def heading_scores(pages: list, markdowns: list[str], entries: dict[int, list[str]]) -> dict:
    """Precision and recall of the Markdown's headings against the outline, page by page. A
    running title (the same heading on at least a fifth of the pages, three at least) is left
    out: the chunker drops it as page furniture before any chunk is made."""
    found = matched = labelled = hit = 0
    per_page = [[_normal(line.lstrip("#")) for line in markdown.splitlines() if line.startswith("#")]
                for markdown in markdowns]
    seen: dict[str, int] = {}
    for headings in per_page:
        for heading in set(headings):
            seen[heading] = seen.get(heading, 0) + 1
    running = {h for h, count in seen.items() if count >= max(3, len(pages) / 5)}
    for page, headings in zip(pages, per_page):
        headings = [h for h in headings if h not in running]
        want = [_normal(title) for title in entries.get(page.page, [])]
        headings, want = [h for h in headings if h], [w for w in want if w]
        found += len(headings)
        matched += sum(any(h == w or (len(w) >= 6 and w in h) for w in want) for h in headings)
        labelled += len(want)
        hit += sum(any(h == w or (len(w) >= 6 and w in h) for h in headings) for w in want)
    return {"markdown_headings": found, "outline_entries": labelled,
            "precision": round(matched / found, 3) if found else None,
            "recall": round(hit / labelled, 3) if labelled else None}


def quality(documents: dict[str, list[Path]], runs: int) -> dict:
    from lightocr_ingest.ocr.text_layer import read_text_layer, why_unusable
    from lightocr_ingest.testing.text_quality import reading_order, word_recall

    out = {}
    for name, paths in documents.items():
        recalls, unusable, times, in_order, pairs = [], 0, [], 0.0, 0
        headings = {"markdown_headings": 0, "outline_entries": 0, "matched": 0, "hit": 0}
        for path in paths:
            pages = styled_pages(path)
            readable = [p for p in pages if why_unusable(p) is None]
            unusable += len(pages) - len(readable)
            per_run = []
            for _ in range(runs):
                started = time.thread_time()
                markdowns = [read_text_layer(p).markdown for p in readable]
                per_run.append((time.thread_time() - started) * 1000 / max(1, len(readable)))
            times.append(statistics.median(per_run))
            for page, markdown in zip(readable, markdowns):
                recalls.append(word_recall(page.text_words.text, markdown))
                order, judged = reading_order(page.text_layer, markdown)
                in_order, pairs = in_order + order * judged, pairs + judged
            entries = outline(path)
            if entries and name != "slides":  # a deck's bookmarks are its sections, not its slides' titles
                scores = heading_scores(readable, markdowns, entries)
                for key in ("markdown_headings", "outline_entries"):
                    headings[key] += scores[key]
                headings["matched"] += round((scores["precision"] or 0) * scores["markdown_headings"])
                headings["hit"] += round((scores["recall"] or 0) * scores["outline_entries"])
        row = {"pages": len(recalls) + unusable, "read_from_layer": len(recalls),
               "layout_core_ms_per_page": round(statistics.median(times), 2),
               "word_recall_median": round(statistics.median(recalls), 4), "word_recall_min": round(min(recalls), 4),
               "pages_recall_ge_0_99": round(sum(r >= 0.99 for r in recalls) / len(recalls), 3),
               "reading_order": round(in_order / pairs, 3) if pairs else None, "order_pairs": pairs}
        if headings["markdown_headings"]:
            row["headings"] = {"precision": round(headings["matched"] / headings["markdown_headings"], 3),
                               "recall": round(headings["hit"] / max(1, headings["outline_entries"]), 3),
                               "markdown_headings": headings["markdown_headings"],
                               "outline_entries": headings["outline_entries"]}
        out[name] = row
        print(name, json.dumps(row), file=sys.stderr, flush=True)
    return out


def reader_speed(paths: list[Path], runs: int, rapidocr: bool = False, pages: str | None = None) -> dict:
    """Pages a second through the reader with the CPU engine (median of ``runs``); ``rapidocr``:
    with the text layer switched off (``text_layer=False``), every page read from its image."""
    from lightocr_ingest import LightOnOCRReader

    reader = LightOnOCRReader(ocr_engine="cpu", pages=pages, text_layer=not rapidocr)
    reader.load_data(paths[0])  # engines, models and imports loaded before timing
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        count = sum(len(reader.load_data(path)) for path in paths)
        rates.append(count / (time.perf_counter() - started))
    engines: dict[str, int] = {}
    for document in reader.load_data(paths[0]):
        engines[document.metadata["ocr_engine"]] = engines.get(document.metadata["ocr_engine"], 0) + 1
    return {"pages_per_s": round(statistics.median(rates), 2), "runs": [round(r, 2) for r in rates],
            "pages": count, "engines_first_file": engines}


def retrieval(manual: Path, rapidocr_manual: bool, embed_headings: list[str], names: list[str]) -> dict:
    """recall@k and MRR of the question sets, ingested through the embedded path (the CPU
    engine) with the text layer on, and off (RapidOCR, as before), under each of the
    ``chunking.embed_headings`` settings given (an OCR cache shared by the settings: each reader
    reads a page once)."""
    import retrieval as bench

    out = {}
    sets = [("real", sorted(REAL.glob("*.pdf")), bench.QUESTIONS / "real_documents.yaml", True),
            ("manual", [manual], bench.QUESTIONS / "yosys_manual.yaml", rapidocr_manual),
            ("samples", sorted(p for p in (REPO / "samples").iterdir() if p.suffix in (".pdf", ".png")),
             REPO / "samples" / "queries.yaml", True)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, paths, questions, with_rapidocr in [s for s in sets if s[0] in names]:
            for engine in ("text layer", "rapidocr") if with_rapidocr else ("text layer",):
                for headings in embed_headings:
                    key = f"{name}, {engine}, embed_headings {headings}"
                    workdir = Path(tmp) / key.replace(", ", "-").replace(" ", "-")
                    config = bench.ingest(paths, workdir, name, None, text_layer=engine == "text layer",
                                          cache_dir=f"{tmp}/ocr-cache", chunking={"embed_headings": headings})
                    scores = bench.evaluate(config, questions)
                    out[key] = {mode: {k: v for k, v in scores[mode].items() if k != "misses@5"}
                                for mode in ("dense", "hybrid")}
                    out[key]["questions"] = scores["questions"]
                    print(key, json.dumps(out[key]), file=sys.stderr, flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rapidocr-pages", default="1-3", help="pages of each paper RapidOCR reads for its speed")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: quality,speed,retrieval")
    parser.add_argument("--rapidocr-manual", action="store_true", help="also ingest the manual with RapidOCR")
    parser.add_argument("--sets", default="real,manual,samples", help="question sets for retrieval")
    parser.add_argument("--embed-headings", default="section",
                        help="comma-separated chunking.embed_headings settings to measure retrieval under "
                             "(section, path, none)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    skip = set(filter(None, args.skip.split(",")))
    documents = corpus()
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "date": time.strftime("%Y-%m-%d")}
    if "quality" not in skip:
        result["quality"] = quality(documents, args.runs)
    if "speed" not in skip:
        result["reader"] = {name: reader_speed(paths, args.runs) for name, paths in documents.items()}
        print("reader", json.dumps(result["reader"]), file=sys.stderr, flush=True)
        result["rapidocr"] = reader_speed(documents["papers"], 1, rapidocr=True, pages=args.rapidocr_pages)
        print("rapidocr", json.dumps(result["rapidocr"]), file=sys.stderr, flush=True)
    if "retrieval" not in skip:
        result["retrieval"] = retrieval(documents["manual"][0], args.rapidocr_manual, args.embed_headings.split(","),
                                        args.sets.split(","))
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
