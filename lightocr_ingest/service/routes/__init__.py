"""The app's routes, one ``APIRouter`` per area, included by ``create_app``.

Open: the web page and its static files (``web``); liveness, readiness and metrics
(``health``). Under ``/v1``, behind the API key (checked by the middleware, before the body is
read): OCR (``ocr``), ingestion jobs (``ingest``), search (``search``) and the documents of a
collection (``documents``). A route gets the
app's shared ``Service`` as a ``ServiceDep`` parameter.
"""
