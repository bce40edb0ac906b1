"""``lightocr-ingest copy --to URL``: move a collection of the embedded store to a Qdrant server.

For a collection that has outgrown one machine: every point goes over with its id, dense and
BM25 vectors and payload, in batches, re-embedding nothing; the target collection is made with
the same vectors (sizes, distance, the IDF modifier) and the payload indexes the pipeline uses,
so ``query`` and ``ingest`` with ``--qdrant-url`` then work on it as they did on the folder.
"""

from __future__ import annotations

import argparse

from ..console import print_error, progress_bar, stderr
from ..pipeline.config import load_config
from .options import add_store_options, apply_flags


def add_commands(commands) -> None:
    copy = commands.add_parser("copy", help="copy a collection to a Qdrant server (vectors and payloads as they are)")
    add_store_options(copy)
    copy.add_argument("--to", required=True, metavar="URL",
                      help="the Qdrant server, e.g. http://qdrant:6333 (api key from --to-api-key or QDRANT_API_KEY)")
    copy.add_argument("--to-collection", help="its name there (default: the same name)")
    copy.add_argument("--to-api-key", help="the server's API key (default: env QDRANT_API_KEY)")
    copy.set_defaults(run=cmd_copy)


def cmd_copy(args: argparse.Namespace) -> int:
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    from ..store import make_client, open_client
    from ..store.migrate import copy_collection

    config = apply_flags(load_config(args.config), args)
    name, target_name = config.qdrant.collection, args.to_collection or config.qdrant.collection
    source = open_client(config.qdrant)
    try:
        if not source.collection_exists(name):
            print_error(f"no collection '{name}' at {config.qdrant.url or config.qdrant.path}; "
                        f"name one with --collection (and --qdrant-path or --config)")
            return 1
        target = make_client(url=args.to, api_key=args.to_api_key)  # else $QDRANT_API_KEY
        try:
            with progress_bar() as progress:
                task = progress.add_task("Copy", total=None, status="")
                copied = copy_collection(source, name, target, target_name,
                                         lambda done, total: progress.update(task, completed=done, total=total,
                                                                             status=f"{done} points"))
            stderr.print(f"copied {copied} points of '{name}' to {args.to} as '{target_name}'. "
                         f"Search it with: lightocr-ingest query \"...\" --qdrant-url {args.to} "
                         f"--collection {target_name}")
        finally:
            target.close()
    except ValueError as exc:  # the target collection exists
        print_error(str(exc))
        return 1
    except (ResponseHandlingException, UnexpectedResponse) as exc:
        print_error(f"the Qdrant server at {args.to} did not take the points: {exc}. Check the URL (the REST port, "
                    f"6333 by default) and the API key (--to-api-key or QDRANT_API_KEY); run the same command again "
                    f"after deleting the partial collection '{target_name}' there")
        return 1
    finally:
        source.close()
    return 0
