"""``lightocr-ingest serve`` (the HTTP API and its web page) and ``schema`` (the config's JSON schema)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..console import print_error, stderr
from ..pipeline.config import load_config
from .options import add_ocr_options, add_store_options, apply_flags


def add_commands(commands) -> None:
    serve = commands.add_parser("serve", help="run the HTTP API and the web page (needs the [service] extra)")
    add_store_options(serve)
    add_ocr_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--api-key", default=None,
                       help="require this key on /v1 routes; better: set $LIGHTOCR_SERVICE_API_KEY (a flag is "
                            "visible to every user in ps)")
    from ..service.settings import ServiceSettings  # its defaults, shown in the help (no service extra needed)

    default = {name: field.default for name, field in ServiceSettings.model_fields.items()}
    serve.add_argument("--max-upload-mb", type=float,
                       help=f"largest request body, all its files (default {default['max_upload_mb']:g})")
    serve.add_argument("--max-uploads-in-flight-mb", type=float,
                       help=f"request bodies received or held at once (default {default['max_uploads_in_flight_mb']:g})")
    serve.add_argument("--max-pages", type=int,
                       help=f"most pages one request brings, its files together (default {default['max_pages']})")
    serve.add_argument("--max-files", type=int, help=f"most files one ingest request brings (default {default['max_files']})")
    serve.add_argument("--max-page-megapixels", type=float,
                       help=f"most decoded pixels a page (default {default['max_page_megapixels']:g})")
    serve.add_argument("--max-decode-megapixels", type=float,
                       help=f"pixels being decoded at once, all requests (default {default['max_decode_megapixels']:g})")
    serve.add_argument("--concurrency", type=int, help=f"OCR requests worked on at once (default {default['concurrency']}; "
                                                       "1 with the CPU engine)")
    serve.add_argument("--queue-size", type=int, help="OCR requests waiting beyond those; more get 429 with "
                                                      f"Retry-After (default {default['queue_size']})")
    serve.add_argument("--max-queue-wait", type=float, metavar="SECONDS",
                       help=f"longest an OCR request waits for its turn (default {default['max_queue_wait_s']:g})")
    serve.add_argument("--shutdown-grace", type=float, metavar="SECONDS",
                       help=f"at shutdown, time the running job has to finish (default {default['shutdown_grace_s']:g})")
    serve.add_argument("--state-dir", help="job records and uploads (default: beside the collection folder)")
    serve.add_argument("--cors-origin", action="append", default=[], help="allow this origin (repeatable; default none)")
    serve.set_defaults(run=cmd_serve)

    schema = commands.add_parser("schema", help="print the JSON schema of pipeline configs (for editors)")
    schema.set_defaults(run=cmd_schema)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..service import ServiceSettings, create_app
    except ImportError as exc:
        print_error(f"the service needs its extra ({exc.name} is missing): pip install 'lightocr-ingest[service]'")
        return 2
    from pydantic import ValidationError

    config = apply_flags(load_config(args.config), args)
    given = {"max_upload_mb": args.max_upload_mb, "max_uploads_in_flight_mb": args.max_uploads_in_flight_mb,
             "max_pages": args.max_pages, "max_files": args.max_files,
             "max_page_megapixels": args.max_page_megapixels, "max_decode_megapixels": args.max_decode_megapixels,
             "concurrency": args.concurrency, "queue_size": args.queue_size, "max_queue_wait_s": args.max_queue_wait,
             "shutdown_grace_s": args.shutdown_grace, "state_dir": args.state_dir}  # unset: the defaults
    if args.api_key:
        stderr.print("[yellow]warning:[/] --api-key is visible to every user of this machine (ps); set "
                     "LIGHTOCR_SERVICE_API_KEY instead")
    try:
        settings = ServiceSettings(config=config,
                                   api_key=args.api_key or os.environ.get("LIGHTOCR_SERVICE_API_KEY") or None,
                                   cors_origins=args.cors_origin,
                                   **{name: value for name, value in given.items() if value is not None})
    except ValidationError as exc:
        flags = {"max_queue_wait_s": "--max-queue-wait", "shutdown_grace_s": "--shutdown-grace"}
        problems = "; ".join(
            f"{flags.get(str(e['loc'][0]), '--' + str(e['loc'][0]).replace('_', '-'))}: {e['msg']}" if e["loc"]
            else e["msg"] for e in exc.errors())
        print_error(f"serve: {problems}")
        return 2
    stderr.print(f"lightocr-ingest service on http://{args.host}:{args.port}/ (API docs at /docs); "
                 f"collection '{config.qdrant.collection}' at {config.qdrant.url or config.qdrant.path}; "
                 f"OCR: {config.ocr.engine}{' ' + str(config.ocr.url) if config.ocr.url else ''}; "
                 f"API key {'required' if settings.api_key else 'not required'}; job records in "
                 f"{settings.state_folder}")
    from ..service.server import server_config

    uvicorn.Server(server_config(create_app(settings), settings, args.host, args.port)).run()
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from ..pipeline.config import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return 0
