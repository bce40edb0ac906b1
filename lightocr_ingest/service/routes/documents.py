"""``GET /v1/documents`` and ``DELETE /v1/documents/{sha256}``: what a collection holds, and
taking a document out (a withdrawal, a data-protection request), as the ``documents`` and
``delete`` commands do (``store.documents``).

A delete names the content's full sha256 (as ``GET /v1/documents`` lists it): every document
of the collection with that content goes, under whatever path it was stored, and nothing else.
"""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Query

from ..errors import ServiceError
from ..state import COLLECTION_NAME, ServiceDep

router = APIRouter(prefix="/v1", tags=["documents"])  # the API key: checked by the middleware
SHA256 = r"^[0-9a-f]{64}$"
DELETE_RETRY_S = 5  # a 409 while a job stores into the collection: jobs of a few files take seconds


@router.get("/documents", summary="The documents of a collection")
async def list_documents(service: ServiceDep,
                         collection: str | None = Query(default=None, pattern=COLLECTION_NAME, max_length=64)):
    from ...store.documents import list_documents as listed

    name = service.config_for(collection).qdrant.collection
    documents = await asyncio.to_thread(listed, service.client, name)
    return {"collection": name, "documents": [d.to_json() for d in documents]}


@router.delete("/documents/{sha256}", summary="Delete a document (every copy of that content) from a collection")
async def delete_documents(sha256: str, service: ServiceDep,
                           collection: str | None = Query(default=None, pattern=COLLECTION_NAME, max_length=64)):
    from ...store.documents import delete_document, list_documents as listed

    if not re.fullmatch(SHA256, sha256):
        raise ServiceError(422, "invalid_request", f"'{sha256[:80]}' is not a sha256",
                           "give the 64 lower-case hex digits GET /v1/documents lists")
    name = service.config_for(collection).qdrant.collection
    if service.runner is not None and service.runner.writing(name):
        raise ServiceError(409, "busy", f"an ingestion job is storing into collection '{name}'",
                           f"delete after it ends (GET /v1/jobs/...); retry after {DELETE_RETRY_S} s",
                           {"Retry-After": str(DELETE_RETRY_S)})

    def delete() -> tuple[list, int]:
        chosen = [d for d in listed(service.client, name) if d.sha256 == sha256]
        return chosen, sum(delete_document(service.client, name, d) for d in chosen)

    documents, deleted = await asyncio.to_thread(delete)
    if not documents:
        raise ServiceError(404, "not_found", f"no document with sha256 {sha256} in collection '{name}'",
                           "list the collection's documents: GET /v1/documents")
    return {"collection": name, "deleted_chunks": deleted,
            "documents": [{"file_name": d.file_name, "file_path": d.file_path, "chunks": d.chunks} for d in documents]}
