"""Stage 10 - cli: ``lightocr-ingest``, the command line.

    lightocr-ingest ocr FILE [--pages 1-3,7] [--ocr-engine auto|vllm|cpu] [--out DIR]
    lightocr-ingest ingest PATH... [--config pipelines/local.yaml] [--report run.json]
    lightocr-ingest query "question" [--config ...] [--mode dense|hybrid] [-k 5] [--json]
    lightocr-ingest evaluate QUESTIONS.yaml [--config ...] [--mode dense|hybrid] [-k 1,3,5] [--json]
    lightocr-ingest documents [--collection NAME] [--json]
    lightocr-ingest delete PATH|SHA256... [--collection NAME] [--yes]
    lightocr-ingest cache prune [--older-than DAYS] [--max-size MB]
    lightocr-ingest copy --to http://qdrant:6333 [--collection NAME] [--to-collection NAME]
    lightocr-ingest serve [--config ...] [--port 8080]
    lightocr-ingest schema

One module a command (``ocr``, ``ingest``, ``search``: query and evaluate, ``documents``:
documents and delete, ``cache``: cache prune, ``store``: copy,
``serve``: serve and schema); ``options`` holds the flags they share and how flags override a config.

Progress and diagnostics go to stderr, results to stdout, so output can be piped.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..console import print_error, print_labelled, stderr
from ..errors import LightOCRError
from . import cache, documents, ingest, ocr, search, serve, store


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightocr-ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)

    for module in (ocr, ingest, search, documents, cache, store, serve):
        module.add_commands(commands)
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
