"""The ``ingest``, ``query`` and ``evaluate`` commands. Flags override the config; the config, the defaults."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from rich.table import Table

from ..console import common_folder, print_error, progress_bar, shorten_middle, stderr
from .config import PipelineConfig, load_config
from .report import PAGE_STATUSES


def _apply_flags(config: PipelineConfig, args: argparse.Namespace) -> PipelineConfig:
    data = config.model_dump()
    for section, key, value in [("qdrant", "collection", getattr(args, "collection", None)),
                                ("qdrant", "path", getattr(args, "qdrant_path", None)),
                                ("qdrant", "url", getattr(args, "qdrant_url", None)),
                                ("ocr", "url", getattr(args, "ocr_url", None)),
                                ("ocr", "model", getattr(args, "model", None)),
                                ("ocr", "engine", getattr(args, "ocr_engine", None)),
                                ("input", "pages", getattr(args, "pages", None)),
                                ("chunking", "regions", getattr(args, "regions", None)),
                                ("ocr", "detect_rotation", getattr(args, "detect_rotation", None))]:
        if value is not None:
            data[section][key] = value
    if getattr(args, "qdrant_path", None):
        data["qdrant"]["url"] = None
    for key in ("runner", "ray_address"):
        if (value := getattr(args, key, None)) is not None:
            data[key] = value
    return PipelineConfig.model_validate(data)  # model_dump keeps SecretStr values as they are


def cmd_ingest(args: argparse.Namespace) -> int:
    from .run import Ingestor

    config = _apply_flags(load_config(args.config), args)
    if not args.paths and not config.input.paths:
        print_error("nothing to ingest: give PATH arguments or input.paths in the config")
        return 2
    if config.runner == "ray":
        try:
            from .ray_runner import RayIngestor
        except ImportError as exc:
            print_error(f"--runner ray needs its extra ({exc.name} is missing): pip install 'lightocr-ingest[ray]'")
            return 2
        ingestor = RayIngestor(config)
    else:
        ingestor = Ingestor(config)
    started = time.perf_counter()
    files: dict[str, object] = {}  # path -> FileReport, as they appear
    counts = {"pages": 0, "failed": 0, "fallback": 0, "shown": 0.0}
    with progress_bar() as progress:
        task = progress.add_task("Ingest", total=None, status="")

        def refresh(force: bool = False) -> None:
            now = time.perf_counter()
            if not force and now - counts["shown"] < REFRESH_S:
                return
            counts["shown"] = now
            rate = counts["pages"] / max(1e-9, now - started)
            chunks = sum(f.chunks for f in files.values())
            trouble = "".join(f"  {counts[what]} {what}" for what in ("fallback", "failed") if counts[what])
            progress.update(task, status=f"{chunks} chunks  {rate:.2f} pages/s{trouble}")

        def on_page(file_report, page_report) -> None:
            files[file_report.path] = file_report
            counts["pages"] += 1
            counts["failed"] += page_report.status == "failed"
            counts["fallback"] += page_report.status.startswith("fallback")
            progress.update(task, advance=1)
            refresh()

        def on_file(file_report) -> None:
            files[file_report.path] = file_report
            if file_report.status == "failed" and not file_report.pages:
                progress.console.print(f"failed: {file_report.error}", markup=False, highlight=False, soft_wrap=True)
            refresh()

        try:
            report = ingestor.run(args.paths, on_page=on_page, on_file=on_file,
                                  on_total=lambda total: progress.update(task, total=total))
            refresh(force=True)
        except KeyboardInterrupt:
            progress.stop()
            stderr.print(f"[yellow]interrupted[/] after {counts['pages']} pages. Run the same command again: "
                         "finished files are skipped, and each unfinished file resumes after its last stored "
                         "batch, with OCR answers already received read from the cache.")
            return 130
        finally:
            ingestor.close()
    _print_summary(report)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as handle:
            handle.write(report.to_json())
        stderr.print(f"report written to {args.report}")
    if not report.ok:
        failed = report.failed_files()
        stderr.print(f"[red]{len(failed)} file(s) had failures.[/] Fix what the messages above say, then run the "
                     "same command again: files already stored are skipped, only these are done again.")
        if len(failed) <= MAX_FILES_IN_COMMAND:
            config_flag = f" --config {args.config}" if args.config else ""
            stderr.print("Or re-run only them:\n  lightocr-ingest ingest " + " ".join(failed) + config_flag,
                         markup=False, soft_wrap=True)
        return 1
    return 0


REFRESH_S = 0.25  # progress status redraws at most this often: 10,000 tiny files must not cost 10,000 redraws
MAX_FILES_IN_COMMAND = 10  # beyond this a re-run command is unreadable; the same command does it anyway
MAX_SUMMARY_ROWS = 40  # files listed in the summary table (problems first); the JSON report has them all
MAX_PAGE_LINES = 20  # pages listed with the reason they were not read by the model
NARROW_COLUMNS = 100  # a terminal narrower than this gets the summary without counts by page status


def _print_summary(report) -> None:
    totals = report.totals()
    stderr.print(summary_table(report, stderr.width))
    problems = [(f.path, p) for f in report.files for p in f.pages if p.status not in ("ok", "retried") or p.warning]
    for path, page in problems[:MAX_PAGE_LINES]:
        stderr.print(f"  {path}, page {page.page}: {page.status}: {page.error or page.warning}",
                     markup=False, highlight=False, soft_wrap=True)
    if len(problems) > MAX_PAGE_LINES:
        stderr.print(f"  ... {len(problems) - MAX_PAGE_LINES} more pages (--report FILE lists them all)")
    by_status = ", ".join(f"{n} {s}" for s, n in totals["pages_by_status"].items() if n)
    stderr.print(
        f"pages seen {totals['pages_seen']} = ingested {totals['pages_ingested']} + failed {totals['pages_failed']}"
        f"{' (' + by_status + ')' if by_status else ''}; {totals['pages_from_cache']} from the OCR cache, "
        f"{totals['ocr_requests']} OCR requests; {totals['files_skipped']} file(s) skipped (unchanged or copies), "
        f"{totals['files_resumed']} resumed; {totals['chunks']} chunks"
        f"{' (placed by ' + _placed(totals['chunks_by_bbox_source']) + ')' if totals['chunks'] else ''}; "
        f"points {totals['points_before']} -> {totals['points_after']}; {totals['elapsed_s']} s")


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


def cmd_query(args: argparse.Namespace) -> int:
    from .query import search_collection

    config = _apply_flags(load_config(args.config), args)
    hits = search_collection(config, args.text, args.k, args.mode)
    if args.json:
        for hit in hits:
            sys.stdout.write(json.dumps(hit.to_dict(), ensure_ascii=False) + "\n")
        return 0
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split())[:300]
        where = f"{hit.file_name} p.{hit.page}" + (f"  [{hit.header_path}]" if hit.header_path else "")
        sys.stdout.write(f"{rank}. {hit.score:.3f}  {where}\n   {snippet}\n\n")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_collection, load_queries

    config = _apply_flags(load_config(args.config), args)
    try:
        ks = tuple(sorted({int(k) for k in args.k.split(",")}))
    except ValueError:
        print_error(f"-k takes ranks separated by commas, such as 1,3,5 (got {args.k!r})")
        return 2
    if not ks or ks[0] < 1:
        print_error(f"-k takes ranks from 1 (got {args.k!r})")
        return 2
    queries = load_queries(args.questions)
    mode = args.mode or config.retrieval.mode
    scores = evaluate_collection(config, queries, ks, mode)
    misses = [{"question": r.query.question, "file": r.query.file, "pages": list(r.query.pages),
               "rank": r.first_relevant_rank, "top": [{"file": f, "pages": list(p)} for f, p in r.ranked[:3]]}
              for r in scores.misses(max(ks))]
    if args.json:
        sys.stdout.write(json.dumps({**scores.row(), "misses": misses}, ensure_ascii=False) + "\n")
        return 0
    row = scores.row()
    sys.stdout.write(f"{len(queries)} questions, collection '{config.qdrant.collection}', mode {mode}\n")
    sys.stdout.write("  ".join(f"{name} {value:.3f}" for name, value in row.items()) + "\n")
    for miss in misses:
        found = ", ".join(f"{t['file']} p.{','.join(map(str, t['pages']))}" for t in miss["top"]) or "nothing"
        sys.stdout.write(f"  missed: {miss['question']!r} (wants {miss['file']} p.{','.join(map(str, miss['pages']))};"
                         f" top: {found})\n")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .config import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    try:
        import uvicorn

        from ..service import ServiceSettings, create_app
    except ImportError as exc:
        print_error(f"the service needs its extra ({exc.name} is missing): pip install 'lightocr-ingest[service]'")
        return 2
    from pydantic import ValidationError

    config = _apply_flags(load_config(args.config), args)
    given = {"max_upload_mb": args.max_upload_mb, "max_pages": args.max_pages, "concurrency": args.concurrency,
             "queue_size": args.queue_size}  # unset flags keep ServiceSettings' defaults
    try:
        settings = ServiceSettings(config=config,
                                   api_key=args.api_key or os.environ.get("LIGHTOCR_SERVICE_API_KEY") or None,
                                   cors_origins=args.cors_origin,
                                   **{name: value for name, value in given.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
                             for e in exc.errors())
        print_error(f"serve: {problems}")
        return 2
    stderr.print(f"lightocr-ingest service on http://{args.host}:{args.port}/ (API docs at /docs); "
                 f"collection '{config.qdrant.collection}' at {config.qdrant.url or config.qdrant.path}; "
                 f"OCR: {config.ocr.engine}{' ' + str(config.ocr.url) if config.ocr.url else ''}; "
                 f"API key {'required' if settings.api_key else 'not required'}")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0


def add_pipeline_commands(commands, add_ocr_options) -> None:
    def add_store_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", help="pipeline YAML, e.g. pipelines/local.yaml")
        parser.add_argument("--collection", help="Qdrant collection (default: the config's qdrant.collection, else lightocr)")
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--qdrant-path", help="local Qdrant folder (embedded mode)")
        where.add_argument("--qdrant-url", help="Qdrant server URL (api key from QDRANT_API_KEY)")

    ingest = commands.add_parser("ingest", help="OCR, chunk, embed and upsert files into Qdrant")
    ingest.add_argument("paths", nargs="*", help="files or folders")
    add_store_options(ingest)
    add_ocr_options(ingest)
    ingest.add_argument("--pages", help="page selection applied to every file")
    ingest.add_argument("--regions", choices=["auto", "locate", "off"],
                        help="place chunks on their pages: auto (text layer, CPU engine lines), locate (also run "
                             "the embedded detector on scans read by vLLM: about 9 CPU-seconds a page on 2 cores), off")
    ingest.add_argument("--report", help="write a JSON report of every file and page here")
    ingest.add_argument("--runner", choices=["local", "ray"],
                        help="local: one process (default: the config's runner); ray: the same pipeline on Ray Data")
    ingest.add_argument("--ray-address", help="--runner ray: the Ray cluster to join (default: RAY_ADDRESS, else a "
                        "cluster started on this machine, else a local instance for the run)")
    ingest.set_defaults(run=cmd_ingest)

    query = commands.add_parser("query", help="search a collection")
    query.add_argument("text")
    add_store_options(query)
    query.add_argument("--mode", choices=["dense", "hybrid"],
                       help="dense, or hybrid (dense + BM25, fused by rank); default: the config's retrieval.mode")
    query.add_argument("-k", type=int, default=5, help="number of hits (default 5)")
    query.add_argument("--json", action="store_true", help="one JSON object per hit per line")
    query.set_defaults(run=cmd_query)

    evaluate = commands.add_parser("evaluate", help="recall@k and MRR of a collection on labelled questions")
    evaluate.add_argument("questions", help="YAML list of {question, file, pages}, like samples/queries.yaml")
    add_store_options(evaluate)
    evaluate.add_argument("--mode", choices=["dense", "hybrid"], help="default: the config's retrieval.mode")
    evaluate.add_argument("-k", default="1,3,5", help="ranks to report recall at, comma-separated (default 1,3,5)")
    evaluate.add_argument("--json", action="store_true",
                          help='print {"recall@1", "recall@3", "recall@5", "MRR", "misses": [...]}')
    evaluate.set_defaults(run=cmd_evaluate)

    serve = commands.add_parser("serve", help="run the HTTP API and the web page (needs the [service] extra)")
    add_store_options(serve)
    add_ocr_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--api-key", default=None,
                       help="require this key on /v1 routes (default: $LIGHTOCR_SERVICE_API_KEY; none: open)")
    from ..service.settings import ServiceSettings  # its defaults, shown in the help (no service extra needed)

    default = {name: field.default for name, field in ServiceSettings.model_fields.items()}
    serve.add_argument("--max-upload-mb", type=float,
                       help=f"largest upload, per request (default {default['max_upload_mb']:g})")
    serve.add_argument("--max-pages", type=int, help=f"most pages in one uploaded file (default {default['max_pages']})")
    serve.add_argument("--concurrency", type=int, help=f"OCR requests worked on at once (default {default['concurrency']})")
    serve.add_argument("--queue-size", type=int, help="OCR requests waiting beyond those; more get 429 with "
                                                      f"Retry-After (default {default['queue_size']})")
    serve.add_argument("--cors-origin", action="append", default=[], help="allow this origin (repeatable; default none)")
    serve.set_defaults(run=cmd_serve)

    schema = commands.add_parser("schema", help="print the JSON schema of pipeline configs (for editors)")
    schema.set_defaults(run=cmd_schema)
