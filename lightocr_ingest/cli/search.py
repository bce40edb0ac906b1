"""``lightocr-ingest query`` and ``evaluate``: search a collection, and score it on labelled questions."""

from __future__ import annotations

import argparse
import json
import sys

from ..console import print_error
from ..pipeline.config import load_config
from .options import add_store_options, apply_flags


def add_commands(commands) -> None:
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


def cmd_query(args: argparse.Namespace) -> int:
    from ..retrieval.query import search_collection

    config = apply_flags(load_config(args.config), args)
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
    from ..retrieval.evaluate import evaluate_collection, load_queries

    config = apply_flags(load_config(args.config), args)
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
