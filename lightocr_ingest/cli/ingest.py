"""``lightocr-ingest ingest PATH...``: the pipeline over files and folders, with a progress bar
and a summary at the end; the exit status says whether every page was read."""

from __future__ import annotations

import argparse
import time

from ..console import print_error, progress_bar, stderr
from ..pipeline.config import load_config
from .options import add_ocr_options, add_store_options, apply_flags
from .summary import MAX_FILES_IN_COMMAND, print_summary

REFRESH_S = 0.25  # progress status redraws at most this often: 10,000 tiny files must not cost 10,000 redraws


def add_commands(commands) -> None:
    ingest = commands.add_parser("ingest", help="OCR, chunk, embed and upsert files into Qdrant")
    ingest.add_argument("paths", nargs="*", help="files or folders")
    add_store_options(ingest)
    add_ocr_options(ingest)
    ingest.add_argument("--pages", help="page selection applied to every file")
    ingest.add_argument("--regions", choices=["auto", "locate", "off"],
                        help="place chunks on their pages: auto (text layer, CPU engine lines), locate (also run "
                             "the embedded detector on scans read by vLLM: about 9 CPU-seconds a page on 2 cores), off")
    ingest.add_argument("--report", help="write a JSON report of every file and page here")
    ingest.add_argument("--prune", action="store_true", default=None,
                        help="keep the collection in step with the inputs: a renamed file's points take its new "
                             "path (no OCR), and the documents of files no longer there are deleted after the run "
                             "(config: input.prune)")
    ingest.add_argument("--dry-run", action="store_true",
                        help="list what the run would add, replace, rename and (with --prune) remove; change nothing")
    ingest.add_argument("--runner", choices=["local", "ray"],
                        help="local: one process (default: the config's runner); ray: the same pipeline on Ray Data")
    ingest.add_argument("--ray-address", help="--runner ray: the Ray cluster to join (default: RAY_ADDRESS, else a "
                        "cluster started on this machine, else a local instance for the run)")
    ingest.set_defaults(run=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    from ..pipeline.run import Ingestor

    config = apply_flags(load_config(args.config), args)
    if not args.paths and not config.input.paths:
        print_error("nothing to ingest: give PATH arguments or input.paths in the config")
        return 2
    if args.prune:
        config = config.model_copy(update={"input": config.input.model_copy(update={"prune": True})})
    if args.dry_run:
        return dry_run(config, args.paths)
    if config.runner == "ray":
        try:
            from ..pipeline.ray_runner import RayIngestor
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
    print_summary(report)
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


def dry_run(config, paths: list[str]) -> int:
    """What a run over ``paths`` would do to the collection, touching nothing (``--dry-run``)."""
    from ..pipeline.plan import collect_inputs
    from ..pipeline.sync import blocks_prune, plan_for
    from ..store import open_client

    files, problems = collect_inputs(config, paths)
    for _, problem in problems:
        print_error(problem)
    client = open_client(config.qdrant)
    try:
        plan = plan_for(client, config.qdrant.collection, files)
    finally:
        client.close()
    blocked = [path for path, _ in problems if blocks_prune(path)]
    prune = config.input.prune and not blocked
    renamed = [(f"{document.file_path} -> {path}" if prune else
                f"{path} (its content is stored under {document.file_path}: skipped as a copy; --prune moves it)")
               for document, path in plan.renamed]
    lines = [("add", path) for path in plan.added] + [("replace", path) for path in plan.replaced] + \
        [("rename" if prune else "skip", what) for what in renamed] + \
        [("remove" if prune else "keep", f"{d.file_path} ({d.chunks} chunks)") for d in plan.removed]
    for action, what in lines:
        print(f"{action:8} {what}")
    counts = plan.counts()
    stderr.print(f"dry run on '{config.qdrant.collection}': {counts['added']} to add, {counts['replaced']} to replace, "
                 f"{counts['renamed']} to {'rename' if prune else 'skip as copies'}, "
                 f"{counts['removed']} to {'remove' if prune else 'keep'}, "
                 f"{counts['unchanged']} unchanged; nothing was changed"
                 + ("; an input could not be listed, so nothing would be pruned" if blocked and config.input.prune
                    else ""))
    return 1 if blocked else 0
