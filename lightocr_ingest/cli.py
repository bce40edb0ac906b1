"""``lightocr-ingest``: the command line.

    lightocr-ingest ocr FILE [--pages 1-3,7] [--ocr-engine auto|vllm|cpu] [--out DIR]
    lightocr-ingest ingest PATH... [--config pipelines/local.yaml] [--report run.json]
    lightocr-ingest query "question" [--config ...] [--mode dense|hybrid] [-k 5] [--json]
    lightocr-ingest evaluate QUESTIONS.yaml [--config ...] [--mode dense|hybrid] [-k 1,3,5] [--json]

Progress and diagnostics go to stderr, results to stdout, so output can be piped.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .console import print_error, print_labelled, progress_bar, stderr
from .errors import LightOCRError
from .pipeline.cli import add_pipeline_commands


class _ConsoleHandler(logging.Handler):
    """Log records as ``warning: message`` lines on the stderr console, above any progress bar,
    unwrapped (``print_labelled``)."""

    LABELS = {"CRITICAL": "[red]error:[/] ", "ERROR": "[red]error:[/] ", "WARNING": "[yellow]warning:[/] "}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print_labelled(self.LABELS.get(record.levelname, ""), self.format(record))
        except Exception:  # noqa: BLE001 - logging must never stop a run
            self.handleError(record)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[_ConsoleHandler()], force=True)
    for noisy in ("httpx", "httpx2", "openai", "RapidOCR", "rapidocr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _add_ocr_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ocr-url", help="vLLM base URL, e.g. http://gpu-host:8000/v1 (env LIGHTONOCR_URL); "
                                               "several, comma-separated, to balance pages across GPUs")
    parser.add_argument("--model", help="served model name (default: discovered from /v1/models)")
    parser.add_argument("--ocr-engine", choices=["auto", "vllm", "cpu"],
                        help="auto: vLLM when it answers, else the CPU engine (default auto)")
    parser.add_argument("--no-detect-rotation", dest="detect_rotation", action="store_false", default=None,
                        help="send pages as they are stored, without turning sideways or upside-down pages upright")


def cmd_ocr(args: argparse.Namespace) -> int:
    from .pages import DocumentSource
    from .reader import LightOnOCRReader

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
                page = document.metadata["page"]
                if document.metadata.get("ocr_status") == "failed":
                    failed += 1
                if out_dir:
                    (out_dir / f"page-{page:03d}.md").write_text(document.text + "\n", encoding="utf-8")
                else:
                    progress.console.file.flush()
                    sys.stdout.write(f"<!-- {document.metadata['file_name']} page {page} -->\n{document.text}\n\n")
                    sys.stdout.flush()
                progress.update(task, advance=1, status=f"{document.metadata.get('ocr_engine') or 'failed'}")
        except LightOCRError as exc:
            print_error(exc)
            return 1
    if out_dir:
        stderr.print(f"wrote {total - failed} page file(s) to {out_dir}/")
    if failed:
        stderr.print(f"[red]{failed} page(s) failed[/]; see the errors above")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightocr-ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)

    ocr = commands.add_parser("ocr", help="print the Markdown of each page of one file")
    ocr.add_argument("file")
    ocr.add_argument("--pages", help="page selection, e.g. 1-3,7 (1-based)")
    ocr.add_argument("--password", help="password of an encrypted PDF")
    ocr.add_argument("--out", help="write page-NNN.md files into this folder instead of printing")
    _add_ocr_options(ocr)
    ocr.set_defaults(run=cmd_ocr)

    add_pipeline_commands(commands, _add_ocr_options)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        stderr.print("interrupted")
        return 130
    except LightOCRError as exc:
        print_error(exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
