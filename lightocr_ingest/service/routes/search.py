"""``POST /v1/query``: the chunks of a collection that best answer a question, each with its
file, pages, header path and regions (so a hit can be shown on its page).

The retriever is the one ``lightocr-ingest query`` uses, in a thread; a collection that is
empty or missing is a 404 that says to ingest first.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ...errors import ConfigError, EmptyCollectionError
from ..errors import ServiceError
from ..state import COLLECTION_NAME, ServiceDep

router = APIRouter(prefix="/v1", tags=["search"])  # the API key: checked by the middleware


class QueryRequest(BaseModel):
    text: str = Field(min_length=1, max_length=4000, examples=["How often are the sondes calibrated?"])
    k: int = Field(default=5, ge=1, le=100)
    collection: str | None = Field(default=None, pattern=COLLECTION_NAME, max_length=64)
    mode: Literal["dense", "hybrid"] | None = Field(default=None, description="default: the config's retrieval.mode")


@router.post("/query", summary="The chunks that best answer a question")
async def query(body: QueryRequest, service: ServiceDep):
    from ...retrieval.query import build_retriever, to_hit

    config = service.config_for(body.collection)

    def search():
        # No Ingestor here: it checks the collection for writing, and a search needs only the
        # embedding model (loaded once a process, shared with the ingestors).
        with build_retriever(config, body.k, body.mode, client=service.client) as retriever:
            return [to_hit(result) for result in retriever.retrieve(body.text)]

    try:
        hits = await asyncio.to_thread(search)
    except EmptyCollectionError:
        raise ServiceError(404, "not_found", f"collection '{config.qdrant.collection}' is empty or missing",
                           "ingest files into it first (POST /v1/ingest)") from None
    except ConfigError as exc:
        raise ServiceError(422, "invalid_request", str(exc), "see the message") from None
    return {"hits": [{"score": h.score, "text": h.text, "file_name": h.file_name, "file_sha256": h.file_sha256,
                      "page": h.page, "pages": h.pages, "header_path": h.header_path, "regions": h.regions,
                      "bbox": h.bbox}
                     for h in hits]}
