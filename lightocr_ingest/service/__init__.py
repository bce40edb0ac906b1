"""Stage 9 - service: the pipeline behind an HTTP API and a web page (``lightocr-ingest serve``).

``create_app(ServiceSettings(...))`` gives the FastAPI app; every guarantee of the CLI
(retries, fallbacks, the OCR cache, resume, regions) holds behind it, because it runs the
same reader and ``Ingestor``. The app is imported on first use: the CLI reads the settings'
defaults without the service extra (FastAPI) installed.
"""

from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
