"""The summary an ingest ends with: a table of files (problems first), the pages that were not read
by the model and why, and one line of totals."""

from __future__ import annotations

import os

from rich.table import Table

from ..console import common_folder, shorten_middle, stderr
from ..ocr.text_layer import TEXT_LAYER_ENGINE
from ..pipeline.report import PAGE_STATUSES

MAX_FILES_IN_COMMAND = 10  # beyond this a re-run command is unreadable; the same command does it anyway
MAX_SUMMARY_ROWS = 40  # files listed in the summary table (problems first); the JSON report has them all
MAX_PAGE_LINES = 20  # pages listed with the reason they were not read by the model
NARROW_COLUMNS = 100  # a terminal narrower than this gets the summary without counts by page status


def print_summary(report) -> None:
    totals = report.totals()
    stderr.print(summary_table(report, stderr.width))
    problems = [(f.path, p) for f in report.files for p in f.pages if p.status not in ("ok", "retried") or p.warning]
    for path, page in problems[:MAX_PAGE_LINES]:
        stderr.print(f"  {path}, page {page.page}: {page.status}: {page.error or page.warning}",
                     markup=False, highlight=False, soft_wrap=True)
    if len(problems) > MAX_PAGE_LINES:
        stderr.print(f"  ... {len(problems) - MAX_PAGE_LINES} more pages (--report FILE lists them all)")
    by_status = ", ".join(f"{n} {s}" for s, n in totals["pages_by_status"].items() if n)
    if len(totals["pages_by_engine"]) > 1 or TEXT_LAYER_ENGINE in totals["pages_by_engine"]:
        by_status += "; read by " + ", ".join(f"{n} {e}" for e, n in sorted(totals["pages_by_engine"].items()))
    stderr.print(
        f"pages seen {totals['pages_seen']} = ingested {totals['pages_ingested']} + failed {totals['pages_failed']}"
        f"{' (' + by_status + ')' if by_status else ''}; {totals['pages_from_cache']} from the OCR cache, "
        f"{totals['ocr_requests']} OCR requests; {totals['files_skipped']} file(s) skipped (unchanged or copies), "
        f"{totals['files_resumed']} resumed; {totals['chunks']} chunks"
        f"{' (placed by ' + _placed(totals['chunks_by_bbox_source']) + ')' if totals['chunks'] else ''}; "
        f"points {totals['points_before']} -> {totals['points_after']}; {totals['elapsed_s']} s")
    if report.prune is not None:
        prune = report.prune
        stderr.print(prune.withheld or f"pruned: {len(prune.renamed)} renamed (points moved to the new path, no OCR), "
                     f"{len(prune.removed)} removed ({prune.removed_chunks} chunks) of files no longer under the inputs",
                     markup=False, highlight=False, soft_wrap=True)
    if totals["pages_thinking_removed"]:
        stderr.print(f"{totals['pages_thinking_removed']} page(s) came back with the model's thinking first (cut off, "
                     f"not stored): the server ignores chat_template_kwargs; serve the model with "
                     f"--default-chat-template-kwargs '{{\"enable_thinking\": false}}'",
                     markup=False, highlight=False, soft_wrap=True)


def summary_table(report, width: int) -> Table:
    """One row a file (problems first), names relative to the folder all files share and cut in
    the middle to what ``width`` columns leave them, so that files of one folder stay told apart."""
    order = {"failed": 0, "partial": 1, "ok": 2, "skipped": 3}
    files = sorted(report.files, key=lambda f: order.get(f.status, 2))
    folder = common_folder([f.path for f in report.files])
    rows = []
    for f in files[:MAX_SUMMARY_ROWS]:
        count = {s: sum(p.status == s for p in f.pages) for s in PAGE_STATUSES}
        status = f.status if f.status != "skipped" or not f.duplicate_of else "skipped (copy)"
        name = os.path.relpath(f.path, folder) if folder else f.path
        rows.append([name, status, str(len(f.pages)), str(count["ok"]), str(count["retried"]),
                     str(count["fallback_text_layer"] + count["fallback_cpu"]), str(count["failed"]), str(f.chunks)])
    columns = ("file", "status", "pages", "ok", "retried", "fallback", "failed", "chunks")
    if width < NARROW_COLUMNS:  # the page counts by status are in the totals line below the table
        rows = [[row[0], row[1], row[2], row[6], row[7]] for row in rows]
        columns = ("file", "status", "pages", "failed", "chunks")
    # What the other columns take (text, one space each side, one border each), and the table's own edges.
    others = sum(max(len(column), *(len(row[i]) for row in rows)) + 3 if rows else len(column) + 3
                 for i, column in enumerate(columns) if i)
    name_width = max(12, width - others - 4)
    title = f"Ingestion into '{report.collection}'" + (f", files under {folder}{os.sep}" if folder else "")
    table = Table(title=title, show_header=True)
    for column in columns:
        table.add_column(column, justify="left" if column in ("file", "status") else "right", no_wrap=column == "file")
    for row in rows:
        table.add_row(shorten_middle(row[0], name_width), *row[1:])
    if len(files) > MAX_SUMMARY_ROWS:
        table.add_row(f"... {len(files) - MAX_SUMMARY_ROWS} more files (--report FILE lists them all)",
                      *[""] * (len(columns) - 1))
    return table


def _placed(by_source: dict[str, int]) -> str:
    return ", ".join(f"{source} {n}" for source, n in by_source.items())
