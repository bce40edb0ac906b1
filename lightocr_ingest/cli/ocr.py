"""``lightocr-ingest ocr FILE``: the Markdown of each page of one file, printed or written to a folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..console import print_error, progress_bar, stderr
from ..errors import LightOCRError
from ..metadata import PageMetadata
from .options import add_ocr_options


def add_commands(commands) -> None:
    ocr = commands.add_parser("ocr", help="print the Markdown of each page of one file")
    ocr.add_argument("file")
    ocr.add_argument("--pages", help="page selection, e.g. 1-3,7 (1-based)")
    ocr.add_argument("--password", help="password of an encrypted PDF")
    ocr.add_argument("--out", help="write page-NNN.md files into this folder instead of printing")
    add_ocr_options(ocr)
    ocr.set_defaults(run=cmd_ocr)


def cmd_ocr(args: argparse.Namespace) -> int:
    from ..pages import DocumentSource
    from ..reader import LightOnOCRReader

    options = {k: v for k, v in {"ocr_url": args.ocr_url, "model": args.model, "ocr_engine": args.ocr_engine,
                                 "pages": args.pages, "password": args.password,
                                 "detect_rotation": args.detect_rotation}.items() if v is not None}
    reader = LightOnOCRReader(**options)
    try:
        with DocumentSource(args.file, password=args.password) as source:
            total = len(source.page_numbers(args.pages))
    except LightOCRError as exc:
        print_error(exc)
        return 1
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    with progress_bar() as progress:
        task = progress.add_task("OCR", total=total, status="", visible=total > 1)
        try:
            for document in reader.lazy_load_data(args.file):
                facts = PageMetadata.from_metadata(document.metadata)
                page = facts.page
                if facts.ocr_status == "failed":
                    failed += 1
                if out_dir:
                    (out_dir / f"page-{page:03d}.md").write_text(document.text + "\n", encoding="utf-8")
                else:
                    progress.console.file.flush()
                    sys.stdout.write(f"<!-- {facts.file_name} page {page} -->\n{document.text}\n\n")
                    sys.stdout.flush()
                progress.update(task, advance=1, status=f"{facts.ocr_engine or 'failed'}")
        except LightOCRError as exc:
            print_error(exc)
            return 1
    if out_dir:
        stderr.print(f"wrote {total - failed} page file(s) to {out_dir}/")
    if failed:
        stderr.print(f"[red]{failed} page(s) failed[/]; see the errors above")
        return 1
    return 0
