"""The web page and the API docs page: ``/``, ``/docs`` and their static files, open like health
and metrics, served from the package (nothing from a CDN: the page works offline, and its
Content-Security-Policy allows this origin only).

A router cannot carry a mount (``include_router`` drops it), so ``mount_static`` adds the files
to the app itself. Swagger UI comes from the ``swagger-ui-bundle-v2`` package (the service extra).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent.parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index():
    return FileResponse(STATIC / "index.html")


@router.get("/docs", include_in_schema=False)
async def docs():
    if swagger_ui_folder() is None:
        return HTMLResponse("<!doctype html><title>API docs</title><p>The API docs page needs Swagger UI from the "
                            "package swagger-ui-bundle-v2: pip install 'lightocr-ingest[service]'. The API's "
                            "description is at <a href=\"openapi.json\">openapi.json</a>.</p>", status_code=503)
    return FileResponse(STATIC / "docs.html")


def swagger_ui_folder() -> Path | None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    swagger = swagger_ui_folder()
    if swagger is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger), name="docs-assets")
