"""``lightocr-ingest cache prune``: the OCR cache kept to a size or an age.

The cache keeps every page the model read, keyed by its pixels, for every collection: pages
of files deleted from a collection stay until pruned here (a page pruned is only read again
by the model if a run meets it again).
"""

from __future__ import annotations

import argparse
import os
import sqlite3

from ..console import print_error, stderr
from ..pipeline.config import load_config

DAY_S = 86_400


def add_commands(commands) -> None:
    cache = commands.add_parser("cache", help="the OCR cache: prune it to an age or a size")
    actions = cache.add_subparsers(dest="action", required=True)
    prune = actions.add_parser("prune", help="drop cached OCR answers older than --older-than or over --max-size")
    prune.add_argument("--config", help="pipeline YAML whose ocr.cache_dir to prune (default: the user's cache)")
    prune.add_argument("--cache-dir", help="the cache folder (default: the config's ocr.cache_dir)")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="drop answers stored more than DAYS ago")
    prune.add_argument("--max-size", type=float, metavar="MB", help="then drop the oldest until the answers fit in MB")
    prune.set_defaults(run=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    from ..ocr.cache import CACHE_FILE, OcrCache, resolve_cache_dir

    if args.older_than is None and args.max_size is None:
        print_error("say what to drop: --older-than DAYS, --max-size MB, or both")
        return 2
    folder = resolve_cache_dir(args.cache_dir or load_config(args.config).ocr.cache_dir)
    if folder is None:
        stderr.print("the OCR cache is off in this config (ocr.cache_dir: null): nothing to prune")
        return 0
    if not os.path.exists(os.path.join(folder, CACHE_FILE)):
        stderr.print(f"no OCR cache at {folder}: nothing to prune")
        return 0
    cache = OcrCache(folder)
    try:
        removed, left, size = cache.prune(None if args.older_than is None else args.older_than * DAY_S,
                                          None if args.max_size is None else int(args.max_size * 1e6))
    except sqlite3.OperationalError as exc:  # "database is locked": a run or the service has it open
        print_error(f"the OCR cache at {folder} is in use ({exc}): prune it while no ingest or service runs")
        return 1
    finally:
        cache.close()
    stderr.print(f"pruned {removed} cached pages from {folder}; {left} left ({size / 1e6:.1f} MB of answers)")
    return 0
