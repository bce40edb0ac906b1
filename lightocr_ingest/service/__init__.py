"""Stage 7 - service: the pipeline behind an HTTP API and a web page (``lightocr-ingest serve``).

``create_app(ServiceSettings(...))`` gives the FastAPI app; every guarantee of the CLI
(retries, fallbacks, the OCR cache, resume, regions) holds behind it, because it runs the
same reader and ``Ingestor``.
"""

from .app import create_app
from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
