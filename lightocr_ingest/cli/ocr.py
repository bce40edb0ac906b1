"""``lightocr-ingest ocr FILE``: the Markdown of each page of one file, printed or written to a folder."""

from __future__ import annotations

import argparse
import json
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
    ocr.add_argument("--blocks", metavar="DIR", help="also write each page's layout blocks (LightOnOCR-3 grounding: "
                                                     "label, box, text) as page-NNN.json into this folder")
    add_ocr_options(ocr)
    ocr.set_defaults(run=cmd_ocr)


def cmd_ocr(args: argparse.Namespace) -> int:
    from ..pages import DocumentSource
    from ..reader import LightOnOCRReader

    options = {k: v for k, v in {"ocr_url": args.ocr_url, "model": args.model, "ocr_engine": args.ocr_engine,
                                 "pages": args.pages, "password": args.password,
                                 "detect_rotation": args.detect_rotation, "model_family": args.model_family,
                                 "ocr_mode": args.ocr_mode}.items() if v is not None}
    reader = LightOnOCRReader(**options)
    try:
        with DocumentSource(args.file, password=args.password) as source:
            total = len(source.page_numbers(args.pages))
    except LightOCRError as exc:
        print_error(exc)
        return 1
    out_dir = Path(args.out) if args.out else None
    blocks_dir = Path(args.blocks) if args.blocks else None
    for folder in (out_dir, blocks_dir):
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
    failed = grounded = 0
    with progress_bar() as progress:
        task = progress.add_task("OCR", total=total, status="", visible=total > 1)
        try:
            for document in reader.lazy_load_data(args.file):
                facts = PageMetadata.from_metadata(document.metadata)
                page = facts.page
                if facts.ocr_status == "failed":
                    failed += 1
                if blocks_dir:
                    blocks = document.grounded_blocks()
                    grounded += bool(blocks)
                    (blocks_dir / f"page-{page:03d}.json").write_text(json.dumps(
                        {"page": page, "width": facts.image_width, "height": facts.image_height,
                         "coordinates": "x1,y1,x2,y2 normalised to 0-1000", "blocks": blocks},
                        ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
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
    if blocks_dir:
        stderr.print(f"wrote {total} block file(s) to {blocks_dir}/"
                     + ("" if grounded else " (no page was grounded: blocks come from LightOnOCR-3 in grounding mode)"))
    if failed:
        stderr.print(f"[red]{failed} page(s) failed[/]; see the errors above")
        return 1
    return 0
