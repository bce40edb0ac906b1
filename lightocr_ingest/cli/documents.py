"""``lightocr-ingest documents`` and ``delete``: what a collection holds, and taking a document out.

A collection lives for months while its folder changes; a withdrawn contract or a
data-protection request needs its points gone, and nothing else touched. ``delete`` names
documents by path or sha256 (``store.documents.select_documents``), shows what it will delete,
and asks first unless ``--yes``.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..console import print_error, stderr
from ..pipeline.config import load_config
from .options import add_store_options, apply_flags


def add_commands(commands) -> None:
    listing = commands.add_parser("documents", help="list the documents of a collection")
    add_store_options(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per document per line, on stdout")
    listing.set_defaults(run=cmd_documents)

    delete = commands.add_parser("delete", help="delete documents from a collection, by path or sha256")
    add_store_options(delete)
    delete.add_argument("documents", nargs="+", metavar="PATH|SHA256",
                        help="a path as stored (or the same file's absolute path), or a sha256 "
                             "(all 64 hex digits, or a unique start of at least 8)")
    delete.add_argument("--yes", action="store_true", help="delete without asking")
    delete.set_defaults(run=cmd_delete)


def cmd_documents(args: argparse.Namespace) -> int:
    from ..store import open_client
    from ..store.documents import list_documents

    config = apply_flags(load_config(args.config), args)
    client = open_client(config.qdrant)
    try:
        documents = list_documents(client, config.qdrant.collection)
    finally:
        client.close()
    if args.json:
        for document in documents:
            sys.stdout.write(json.dumps(document.to_json(), ensure_ascii=False) + "\n")
        return 0
    if not documents:
        stderr.print(f"no documents in '{config.qdrant.collection}' at {_where(config)}")
        return 0
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False)
    for column in ("file", "pages", "chunks", "complete", "stored", "sha256", "path"):
        table.add_column(column, justify="right" if column in ("pages", "chunks") else "left")
    for d in documents:  # names as Text: a file named "draft[1].pdf" is not markup
        table.add_row(Text(d.file_name), str(d.pages), str(d.chunks), "yes" if d.complete else "[yellow]no[/]",
                      (d.stored_at or "-").replace("T", " ").replace("+00:00", "Z"), d.sha256[:12], Text(d.file_path))
    Console().print(table)  # stdout: the listing is the result; the summary goes to stderr
    incomplete = sum(not d.complete for d in documents)
    stderr.print(f"{len(documents)} documents, {sum(d.chunks for d in documents)} chunks in "
                 f"'{config.qdrant.collection}'" + (f"; {incomplete} incomplete (a run stopped before their last "
                                                    f"chunk: ingest their files again)" if incomplete else ""))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from ..store import open_client
    from ..store.documents import NoSuchDocument, delete_document, list_documents, select_documents

    config = apply_flags(load_config(args.config), args)
    collection = config.qdrant.collection
    client = open_client(config.qdrant)
    try:
        stored = list_documents(client, collection)
        chosen, problems = {}, []
        for selector in args.documents:
            try:
                for document in select_documents(stored, selector):
                    chosen[(document.file_path, document.sha256)] = document
            except NoSuchDocument as exc:
                problems.append(str(exc))
        if problems:  # nothing is deleted when any name is wrong: a typo must not half-do the job
            for problem in problems:
                print_error(problem)
            stderr.print("nothing deleted")
            return 1
        documents = list(chosen.values())
        for d in documents:
            stderr.print(f"  {d.file_name}  {d.chunks} chunks  sha256 {d.sha256[:12]}  {d.file_path}",
                         markup=False, highlight=False, soft_wrap=True)
        total = sum(d.chunks for d in documents)
        if not args.yes:
            if not sys.stdin.isatty():
                print_error(f"would delete {len(documents)} documents ({total} chunks) from '{collection}': "
                            f"add --yes to delete without a prompt")
                return 1
            answer = input(f"Delete {len(documents)} documents ({total} chunks) from '{collection}'? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                stderr.print("nothing deleted")
                return 1
        deleted = sum(delete_document(client, collection, d) for d in documents)
    finally:
        client.close()
    stderr.print(f"deleted {len(documents)} documents ({deleted} chunks) from '{collection}' at {_where(config)}",
                 markup=False, highlight=False)
    return 0


def _where(config) -> str:
    return config.qdrant.url or config.qdrant.path
