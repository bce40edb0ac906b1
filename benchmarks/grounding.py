"""Regions from the model's own boxes (LightOnOCR-3 grounding) against text-layer alignment.

On the real PDFs of ``tests/real_documents`` (two-column papers, a one-column paper, a manual
with tables), each page's grounding answer is the one a model would give if its blocks were
the text layer's paragraphs (``testing.generation3.grounded_answer_from_words``: lines joined
into blocks by their gaps and columns, boxed in 0-1000 of the image). Its Markdown is chunked
twice, and the chunks' regions judged against the text layer's word boxes
(``chunking.quality.region_quality``, the measure of the README's Provenance section):

- model: the reader's grounding path (``parse_grounding``, boxes to page points, chunked
  with the blocks: ``bbox_source: model``);
- text_layer: the same Markdown placed by aligning it with the text layer, as plain mode does.

On the scans of ``tests/real_documents/scans`` (a book page, a brochure, a printout, a typed
recipe, a report; no text layer), the words are the lines the CPU engine detects and reads
(``ocr.cpu.recognise_lines``), the grounding answer is built from them the same way, and the
chunks' regions are judged against those lines. Beside the model's blocks: ``located``, the same
Markdown placed by aligning it with the detected lines, which is what plain mode does for a
scan with ``--regions locate`` (and the detection is its cost: CPU-seconds a page, reported).

The blocks' boxes are true here (made from the words), so this measures what the chunker does
with true boxes: how it cuts a block between chunks, and which blocks a chunk holds. A real
model's boxes are its own; not measured here (no GPU).

Cost: core-ms a page that grounding adds to the reader and the chunker beyond plain mode
(parsing the answer, converting boxes, chunking with the blocks, minus chunking the same
Markdown without regions), median of 3 repeats. Run from the repository root::

    .venv/bin/python benchmarks/grounding.py [--json .bench/grounding.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from lightocr_ingest.chunking import PageText, chunk_pages, region_quality
from lightocr_ingest.ocr.cpu import recognise_lines
from lightocr_ingest.ocr.grounding import parse_grounding, to_image_pixels
from lightocr_ingest.pages import DocumentSource
from lightocr_ingest.records import LayoutBlock, PageLayout
from lightocr_ingest.testing.generation3 import grounded_answer_from_words

sys.path.insert(0, str(Path(__file__).resolve().parent))
from regions import summarise  # noqa: E402  (the sibling benchmark: the same figures of coverage and leakage)

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = REPO / "tests" / "real_documents"
SCANS = DOCUMENTS / "scans"
CHUNK_TOKENS = 128  # several chunks a page, so that leakage between neighbours is tested
REPEATS = 3


def grounded(page, answer: str) -> PageText:
    """What the reader makes of a grounding answer for ``page`` (``ocr.vllm.VLLMEngine.to_result``
    and ``reader.documents.page_document``)."""
    markdown, blocks = parse_grounding(answer)
    placed = tuple(LayoutBlock(b.label, page.to_page_points(to_image_pixels(b.box, page.image_width,
                                                                            page.image_height)),
                               b.start, b.end, b.continues) for b in blocks)
    return PageText(page.page, markdown, PageLayout(blocks=placed))


def quality_rows(pages, texts: list[PageText], truth=None) -> list[dict]:
    """Coverage and leakage of each chunk's regions on its page, judged against ``truth`` (one
    ``PageWords`` a page; default: the pages' text layers)."""
    chunks = chunk_pages(texts, max_tokens=CHUNK_TOKENS, drop_page_furniture=False)
    rows = []
    truth = truth or [page.text_words for page in pages]
    for page, text, words in zip(pages, texts, truth):
        on_page = [(c.index, "\n".join(text.markdown[s:e] for p, s, e in c.spans if p == page.page), list(c.regions))
                   for c in chunks if page.page in c.pages]
        for q in region_quality(page.page, on_page, words):
            rows.append({"page": page.page, "words": q.words, "coverage": q.coverage, "leakage": q.leakage})
    return rows


def cost_ms(pages, answers: list[str]) -> float:
    """Core-ms a page grounding adds: parse, place and chunk with blocks, minus chunking the same
    Markdown with no layout."""
    def grounded_run() -> None:
        chunk_pages([grounded(p, a) for p, a in zip(pages, answers)], max_tokens=CHUNK_TOKENS)

    markdowns = [parse_grounding(a)[0] for a in answers]

    def plain_run() -> None:
        chunk_pages([PageText(p.page, m) for p, m in zip(pages, markdowns)], max_tokens=CHUNK_TOKENS)

    def timed(run) -> float:
        samples = []
        for _ in range(REPEATS):
            started = time.process_time()
            run()
            samples.append(time.process_time() - started)
        return statistics.median(samples)

    return (timed(grounded_run) - timed(plain_run)) * 1000 / len(pages)


def scans(results: dict) -> None:
    """The scans: words are the CPU engine's detected lines; model blocks against located alignment."""
    overall: dict[str, list] = {"model": [], "located": []}
    detect_s = []
    for path in sorted(p for p in SCANS.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
        print(f"scans/{path.name} ...", file=sys.stderr, flush=True)
        with DocumentSource(path) as source:
            pages = [source.render_page(n) for n in source.page_numbers()]
        words = []
        for page in pages:
            started = time.process_time()
            words.append(page.lines_in_points(tuple(recognise_lines(page.png)), "located"))
            detect_s.append(time.process_time() - started)
        answers = [grounded_answer_from_words(w, p) for p, w in zip(pages, words)]
        model = quality_rows(pages, [grounded(p, a) for p, a in zip(pages, answers)], words)
        located = quality_rows(pages, [PageText(p.page, parse_grounding(a)[0], PageLayout(ocr_lines=w))
                                       for p, a, w in zip(pages, answers, words)], words)
        results["scans"][path.name] = {"pages": len(pages), "model": summarise(model), "located": summarise(located),
                                       "added_core_ms_per_page": round(cost_ms(pages, answers), 3)}
        overall["model"] += model
        overall["located"] += located
    results["scans_overall"] = {way: summarise(rows) for way, rows in overall.items()}
    results["scans_overall"]["located_detect_core_s_per_page"] = round(statistics.median(detect_s), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    results = {"machine": f"{platform.node()} ({platform.processor() or platform.machine()}), {os.cpu_count()} cores",
               "files": {}, "scans": {}}
    overall: dict[str, list] = {"model": [], "text_layer": []}
    costs = []
    for path in sorted(DOCUMENTS.glob("*.pdf")):
        print(f"{path.name} ...", file=sys.stderr, flush=True)
        with DocumentSource(path, text_words=True) as source:
            pages = [p for p in (source.render_page(n) for n in source.page_numbers())
                     if p.text_words is not None and len(p.text_words) and p.rotation == 0]
        answers = [grounded_answer_from_words(p.text_words, p) for p in pages]
        model = quality_rows(pages, [grounded(p, a) for p, a in zip(pages, answers)])
        aligned = quality_rows(pages, [PageText(p.page, parse_grounding(a)[0], PageLayout(text_layer=p.text_words))
                                       for p, a in zip(pages, answers)])
        costs.append(cost_ms(pages, answers))
        results["files"][path.name] = {"pages": len(pages), "model": summarise(model),
                                       "text_layer": summarise(aligned), "added_core_ms_per_page": round(costs[-1], 3)}
        overall["model"] += model
        overall["text_layer"] += aligned
    results["overall"] = {way: summarise(rows) for way, rows in overall.items()}
    results["added_core_ms_per_page"] = {"median": round(statistics.median(costs), 3), "max": round(max(costs), 3)}
    scans(results)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
