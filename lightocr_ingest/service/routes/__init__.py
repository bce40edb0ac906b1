"""The app's routes, one ``APIRouter`` per area, included by ``create_app``.

Open: the web page and its static files (``web``); liveness, readiness and metrics
(``health``). Under ``/v1``, behind the API key (checked by the middleware, before the body is
read): OCR (``ocr``), ingestion jobs (``ingest``) and search (``search``). A route gets the
app's shared ``Service`` as a ``ServiceDep`` parameter.
"""
