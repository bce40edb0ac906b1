"""Region quality benchmark: do chunks' regions cover their text on real pages, and nothing else?

On the real PDFs of ``tests/real_documents`` (two-column papers, a one-column paper, a manual
with tables; see SOURCES.md there), each page is chunked three ways and its chunks' regions
judged against the PDF text layer's own word boxes (``chunking.quality.region_quality``):

- text_layer: Markdown from an OCR engine (the embedded CPU engine's, a stand-in for the
  model's: other words, other reading order, OCR errors), placed by the PDF text layer;
- ocr_lines: the same Markdown placed by the CPU engine's own lines (no text layer used);
- located: the text layer's text as the "model's" Markdown, placed by lines the embedded
  detector located on the rendered page, as ``--regions locate`` does for a scan.

Coverage: share of a chunk's words (those that occur once on the page) whose box centre is
inside one of its regions; leakage: other chunks' such words inside its regions, per own
word. It also times what text-layer regions add to a page (reading the words' boxes, and
chunking with regions minus chunking without: core-ms per page), and locating (CPU seconds
per page). Run from the repository root::

    .venv/bin/python benchmarks/regions.py                 # all pages, about 3 minutes on 2 cores
    .venv/bin/python benchmarks/regions.py --json .bench/regions.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from lightocr_ingest.chunking import PageText, chunk_pages, region_quality
from lightocr_ingest.ocr.cpu import recognise_lines
from lightocr_ingest.ocr.layout import lines_to_paragraphs, paragraphs_to_markdown
from lightocr_ingest.ocr.postprocess import text_layer_markdown
from lightocr_ingest.pages import DocumentSource
from lightocr_ingest.pages.words import text_layer_words
from lightocr_ingest.records import PageLayout

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = REPO / "tests" / "real_documents"
CHUNK_TOKENS = 128  # several chunks a page, so that leakage between neighbours is tested


def text_layer_cost_ms(path: Path, repeats: int = 5) -> list[float]:
    """Core-ms per page that regions from the text layer add: reading the words' boxes, plus
    chunking with regions minus chunking without (alignment, rectangles, bookkeeping)."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    costs = []
    for index in range(len(pdf)):
        page = pdf[index]
        textpage = page.get_textpage()
        text = textpage.get_text_range()
        width, height = page.get_size()
        markdown = text_layer_markdown(text)
        runs = []
        for _ in range(repeats):
            started = time.thread_time()
            words = text_layer_words(page, textpage, text, width, height)
            pages = [PageText(index + 1, markdown, PageLayout(text_layer=words))]
            chunk_pages(pages, max_tokens=CHUNK_TOKENS, drop_page_furniture=False, regions=True)
            with_regions = time.thread_time() - started
            started = time.thread_time()
            chunk_pages(pages, max_tokens=CHUNK_TOKENS, drop_page_furniture=False, regions=False)
            runs.append((with_regions - (time.thread_time() - started)) * 1000)
        costs.append(statistics.median(runs))
        textpage.close()
        page.close()
    pdf.close()
    return costs


def measure(path: Path) -> dict[str, list]:
    """Per-page quality rows for each way of placing, and locating seconds per page."""
    with DocumentSource(path, text_words=True) as source:
        rendered = [source.render_page(n) for n in source.page_numbers()]
    located_s = []
    lines_of = {}
    for page in rendered:
        started = time.process_time()
        lines_of[page.page] = recognise_lines(page.png)
        located_s.append(time.process_time() - started)
    ways = {}
    for way in ("text_layer", "ocr_lines", "located"):
        texts = []
        for page in rendered:
            lines = page.lines_in_points(tuple(lines_of[page.page]), "ocr_lines" if way != "located" else "located")
            if way == "located":
                markdown = text_layer_markdown(page.text_layer or "")
                layout = PageLayout(ocr_lines=lines)
            else:
                markdown = paragraphs_to_markdown(lines_to_paragraphs(lines_of[page.page]))
                layout = PageLayout(text_layer=page.text_words if way == "text_layer" else None,
                                    ocr_lines=lines if way == "ocr_lines" else None)
            texts.append(PageText(page.page, markdown, layout))
        chunks = chunk_pages(texts, max_tokens=CHUNK_TOKENS, drop_page_furniture=False)
        rows = []
        for page in rendered:
            on_page = [(c.index, "\n".join(page_text.markdown[s:e] for p, s, e in c.spans if p == page.page),
                        list(c.regions)) for c in chunks if page.page in c.pages
                       for page_text in texts if page_text.page == page.page]
            sources = {c.bbox_source for c in chunks if page.page in c.pages}
            for quality in region_quality(page.page, on_page, page.text_words):
                rows.append({"page": page.page, "chunk": quality.chunk, "words": quality.words,
                             "coverage": quality.coverage, "leakage": quality.leakage, "sources": sorted(sources)})
        ways[way] = rows
    return {"ways": ways, "located_s": located_s}


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {"chunks": 0}
    coverage = [r["coverage"] for r in rows]
    leakage = [r["leakage"] for r in rows]
    return {"chunk_pages": len(rows), "median_coverage": round(statistics.median(coverage), 3),
            "p10_coverage": round(sorted(coverage)[len(coverage) // 10], 3),
            "median_leakage": round(statistics.median(leakage), 3),
            "p90_leakage": round(sorted(leakage)[(9 * len(leakage)) // 10], 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--files", nargs="*", help="PDFs to measure (default: tests/real_documents/*.pdf)")
    args = parser.parse_args()
    files = [Path(f) for f in args.files] if args.files else sorted(DOCUMENTS.glob("*.pdf"))
    results = {"machine": f"{platform.node()} ({platform.processor() or platform.machine()}), "
                          f"{__import__('os').cpu_count()} cores", "files": {}}
    all_rows: dict[str, list] = {"text_layer": [], "ocr_lines": [], "located": []}
    costs, located = [], []
    for path in files:
        print(f"{path.name} ...", file=sys.stderr, flush=True)
        measured = measure(path)
        file_costs = text_layer_cost_ms(path)
        costs += file_costs
        located += measured["located_s"]
        results["files"][path.name] = {way: summarise(rows) for way, rows in measured["ways"].items()}
        results["files"][path.name]["text_layer_ms_per_page"] = round(statistics.median(file_costs), 2)
        for way, rows in measured["ways"].items():
            all_rows[way] += rows
    results["overall"] = {way: summarise(rows) for way, rows in all_rows.items()}
    results["text_layer_core_ms_per_page"] = {"median": round(statistics.median(costs), 2),
                                              "max": round(max(costs), 2), "pages": len(costs)}
    results["locate_cpu_s_per_page"] = {"median": round(statistics.median(located), 2), "max": round(max(located), 2)}
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
