"""Which library to read text layers with: this project's reader (pypdfium2 + ``ocr/text_lines``)
against pdfminer.six's layout analysis, pdfplumber and docling-parse, on the same pages.

For each library: pages a second (text only, no rendering; one process, one core), word
recall against PDFium's own words, and reading order over the two-column papers' sentence
pairs (the metrics of ``lightocr_ingest/testing/text_quality.py``, loaded from its file so that
the other libraries can run in a virtual environment of their own, without this package)::

    .venv/bin/python benchmarks/text_layer_libraries.py --library ours
    python3 -m venv /tmp/libs && /tmp/libs/bin/pip install pdfminer.six pdfplumber docling-parse pypdfium2
    /tmp/libs/bin/python benchmarks/text_layer_libraries.py --library pdfminer    # also pdfplumber, docling-parse

Pages: the four two-column papers of ``tests/real_documents`` (24 pages) and the first 60
pages of the Yosys manual (fetched by ``benchmarks/text_layer.py`` into ~/.cache).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANUAL = Path.home() / ".cache" / "lightocr-ingest" / "yosys" / "manual.pdf"  # as benchmarks/retrieval.py fetches it
_spec = importlib.util.spec_from_file_location("text_quality", REPO / "lightocr_ingest/testing/text_quality.py")
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)


def references(path: Path, pages: int) -> list[tuple[str, str]]:
    """(PDFium's text of the page, its words as the project lists them) for each page."""
    import pypdfium2 as pdfium

    out = []
    document = pdfium.PdfDocument(str(path))
    for index in range(min(pages, len(document))):
        text = document[index].get_textpage().get_text_range().replace("\r\n", "\n")
        text = text.replace("\ufffe", "-").replace("\x02", "-")  # PDFium's marks of a word broken at a line end
        out.append((text, text))
    document.close()
    return out


def ours(path: Path, pages: int) -> list[str]:
    sys.path.insert(0, str(REPO))
    import pypdfium2 as pdfium

    from lightocr_ingest.ocr.text_lines import page_lines
    from lightocr_ingest.ocr.text_markdown import lines_markdown
    from lightocr_ingest.pages.words import image_share, text_layer_words

    out = []
    document = pdfium.PdfDocument(str(path))
    for index in range(min(pages, len(document))):
        page = document[index]
        width, height = page.get_size()
        textpage = page.get_textpage()
        words = text_layer_words(page, textpage, textpage.get_text_range(), width, height, styles=True)
        image_share(page, width, height)
        out.append(lines_markdown(page_lines(words, width)) if words is not None else "")
    document.close()
    return out


def pdfminer(path: Path, pages: int) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextContainer

    return ["\n\n".join(e.get_text() for e in page if isinstance(e, LTTextContainer))
            for page in extract_pages(str(path), maxpages=pages, laparams=LAParams())]


def pdfplumber(path: Path, pages: int) -> list[str]:
    import pdfplumber as plumber

    with plumber.open(str(path)) as pdf:
        return [page.extract_text() or "" for page in pdf.pages[:pages]]


def docling_parse(path: Path, pages: int) -> list[str]:
    from docling_core.types.doc.page import TextCellUnit
    from docling_parse.pdf_parser import DoclingPdfParser

    document = DoclingPdfParser().load(str(path))
    out = []
    for number, page in document.iterate_pages():
        if number > pages:
            break
        out.append("\n".join(page.export_to_textlines(TextCellUnit.LINE, add_location=False, add_fontname=False,
                                                       add_text_direction=False)))
    return out


LIBRARIES = {"ours": ours, "pdfminer": pdfminer, "pdfplumber": pdfplumber, "docling-parse": docling_parse}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", choices=sorted(LIBRARIES), required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    read = LIBRARIES[args.library]
    documents = [(p, 100, True) for p in sorted((REPO / "tests/real_documents").glob("paper-two-column-*.pdf"))]
    documents.append((MANUAL, 60, False))
    times, recalls, in_order, pairs, count = [], [], 0.0, 0, 0
    for path, pages, two_column in documents:
        refs = references(path, pages)
        per_run = []
        for _ in range(args.runs):
            started = time.process_time()
            texts = read(path, pages)
            per_run.append(time.process_time() - started)
        times.append(statistics.median(per_run))
        count += len(refs)
        for (layer, words), text in zip(refs, texts):
            recalls.append(quality.word_recall(words, text))
            if two_column:
                order, judged = quality.reading_order(layer, text)
                in_order, pairs = in_order + order * judged, pairs + judged
    result = {"library": args.library, "pages": count, "pages_per_s": round(count / sum(times), 1),
              "word_recall_median": round(statistics.median(recalls), 4), "word_recall_min": round(min(recalls), 4),
              "reading_order_two_column": round(in_order / pairs, 3) if pairs else None, "order_pairs": pairs}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
