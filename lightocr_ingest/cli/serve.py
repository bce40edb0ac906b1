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


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..service import ServiceSettings, create_app
    except ImportError as exc:
        print_error(f"the service needs its extra ({exc.name} is missing): pip install 'lightocr-ingest[service]'")
        return 2
    from pydantic import ValidationError

    config = apply_flags(load_config(args.config), args)
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


def cmd_schema(args: argparse.Namespace) -> int:
    from ..pipeline.config import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    return 0
