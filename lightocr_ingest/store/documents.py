"""A collection document by document: what it holds, and deleting one.

A document is one version of one file: the points that share a ``file_path`` and a
``file_sha256``. Its last chunk carries ``file_complete`` (and ``stored_at``, the time it was
marked) once all its chunks are stored. The ``documents`` and ``delete`` commands use this.

Deleting selects by exact keyword values of ``file_path`` and ``file_sha256`` (both have
payload indexes): a look-alike name, or a path that merely begins the same, is another value
and so another document. A document's ``file_complete`` mark is taken off before its points
are deleted, so a kill in between leaves it incomplete, which the next ``ingest`` reads again
and ``documents`` shows, never whole-looking with chunks missing.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from qdrant_client import models

from ..metadata import (DOCUMENT_KEYS, FILE_NAME_KEY, FILE_PATH_KEY, FILE_SHA256_KEY, ChunkMetadata,
                        PageMetadata)
from .schema import COMPLETE_KEY, STORED_AT_KEY

MIN_HASH_PREFIX = 8  # hex digits of a sha256 a user may type instead of all 64: unique or refused
_HEX = re.compile(r"[0-9a-f]+")
_FIELDS = [*DOCUMENT_KEYS, COMPLETE_KEY, STORED_AT_KEY]


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class StoredDocument:
    """One document of a collection, as its points describe it."""

    file_name: str
    file_path: str
    sha256: str
    pages: int  # the file's page count where known, else the pages its chunks cover
    chunks: int
    complete: bool  # all its chunks are stored (its last chunk is marked)
    stored_at: str | None  # when it was marked complete (None: incomplete, or stored before 0.2.0)

    def to_json(self) -> dict:
        return asdict(self)


def list_documents(client, collection: str) -> list[StoredDocument]:
    """Every document of ``collection`` (none when it does not exist), by path then hash.

    One paged scroll over the points' few payload fields: about a second per 100,000 chunks on
    the embedded store."""
    if not client.collection_exists(collection):
        return []
    found: dict[tuple[str, str], dict] = {}
    offset = None
    while True:
        points, offset = client.scroll(collection, limit=1024, offset=offset, with_payload=_FIELDS,
                                       with_vectors=False)
        for point in points:
            payload = point.payload or {}
            page, chunk = PageMetadata.from_metadata(payload), ChunkMetadata.from_metadata(payload)
            key = (page.file_path, page.file_sha256 or "")
            seen = found.setdefault(key, {"name": page.file_name or os.path.basename(key[0]),
                                          "pages": set(), "page_count": None, "chunks": 0, "complete": False,
                                          "stored_at": None})
            seen["chunks"] += 1
            seen["pages"].update(chunk.pages)
            seen["page_count"] = seen["page_count"] or page.page_count
            if payload.get(COMPLETE_KEY) is True:
                seen["complete"] = True
                seen["stored_at"] = payload.get(STORED_AT_KEY)
        if offset is None:
            break
    return [StoredDocument(file_name=seen["name"], file_path=path, sha256=sha256,
                           pages=seen["page_count"] or len(seen["pages"]), chunks=seen["chunks"],
                           complete=seen["complete"], stored_at=seen["stored_at"])
            for (path, sha256), seen in sorted(found.items())]


class NoSuchDocument(LookupError):
    """A path or hash that names no document of the collection, or a hash prefix that names several."""


def select_documents(documents: list[StoredDocument], selector: str) -> list[StoredDocument]:
    """The documents ``selector`` names: a sha256 (all 64 hex digits, or a prefix of at least
    ``MIN_HASH_PREFIX`` that only one file's content has), or a path (as stored, or the same
    file by its absolute path). Raises ``NoSuchDocument`` saying why, naming the candidates."""
    wanted = selector.strip()
    lowered = wanted.lower()
    if _HEX.fullmatch(lowered) and len(lowered) >= MIN_HASH_PREFIX:
        by_hash = [d for d in documents if d.sha256 == lowered] or \
            [d for d in documents if len(lowered) < 64 and d.sha256.startswith(lowered)]
        if len({d.sha256 for d in by_hash}) > 1:
            raise NoSuchDocument(f"{wanted}: the start of several files' hashes ("
                                 + ", ".join(sorted({d.sha256[:16] for d in by_hash})) + "); give more of it")
        if by_hash:
            return by_hash
    absolute = os.path.abspath(os.path.expanduser(wanted))
    by_path = [d for d in documents if d.file_path == wanted]
    if by_path:
        return by_path
    by_absolute = [d for d in documents if os.path.abspath(d.file_path) == absolute]
    if len({d.file_path for d in by_absolute}) > 1:  # "report.pdf" (an upload) and "/srv/report.pdf", say
        raise NoSuchDocument(f"{wanted}: the same file as several stored paths ("
                             + ", ".join(sorted({d.file_path for d in by_absolute})) + "); give one exactly as stored")
    if by_absolute:
        return by_absolute
    same_name = sorted({d.file_path for d in documents if d.file_name == os.path.basename(wanted)})
    hint = f"; stored under that name: {', '.join(same_name)}" if same_name else \
        "; list them with: lightocr-ingest documents"
    raise NoSuchDocument(f"{wanted}: no document of this collection has that path or sha256{hint}")


def _document_filter(document: StoredDocument) -> models.Filter:
    return models.Filter(must=[
        models.FieldCondition(key=FILE_PATH_KEY, match=models.MatchValue(value=document.file_path)),
        models.FieldCondition(key=FILE_SHA256_KEY, match=models.MatchValue(value=document.sha256))])


def delete_document(client, collection: str, document: StoredDocument) -> int:
    """Delete every point of ``document`` (its path and hash together); the number deleted.

    Its ``file_complete`` mark goes first: a kill between the two steps leaves an incomplete
    document (``ingest`` reads its file again, ``documents`` says so, ``delete`` finishes it),
    never one that looks whole with chunks missing."""
    selected = _document_filter(document)
    count, marked, offset = 0, [], None
    while True:  # its points, counted, and the marked one found (Edge matches no boolean by value)
        points, offset = client.scroll(collection, scroll_filter=selected, limit=1024, offset=offset,
                                       with_payload=[COMPLETE_KEY], with_vectors=False)
        count += len(points)
        marked += [point.id for point in points if (point.payload or {}).get(COMPLETE_KEY) is True]
        if offset is None:
            break
    if not count:
        return 0
    if marked:
        client.delete_payload(collection, keys=[COMPLETE_KEY, STORED_AT_KEY], points=marked, wait=True)
    client.delete(collection, points_selector=models.FilterSelector(filter=selected), wait=True)
    return count


def rename_document(client, collection: str, document: StoredDocument, new_path: str) -> int:
    """Give ``document``'s points the path ``new_path`` (and its file name), in the payload and in
    each node's own metadata (``_node_content``), re-reading and re-embedding nothing; the number
    of points renamed. Point by point: a kill midway leaves some points under each path, which
    the next ``ingest --prune`` renames the rest of (same content, the old path gone)."""
    import json

    name = os.path.basename(new_path)
    renamed = 0
    while True:  # the filter selects the old path: a renamed point drops out, so always from the start
        points, _ = client.scroll(collection, scroll_filter=_document_filter(document), limit=256,
                                  with_payload=True, with_vectors=False)
        for point in points:
            update = {FILE_PATH_KEY: new_path, FILE_NAME_KEY: name}
            content = (point.payload or {}).get("_node_content")
            if content:
                node = json.loads(content)
                node.setdefault("metadata", {}).update(update)
                for related in (node.get("relationships") or {}).values():  # the page it came from names it too
                    if isinstance(related, dict) and FILE_NAME_KEY in (related.get("metadata") or {}):
                        related["metadata"][FILE_NAME_KEY] = name
                update["_node_content"] = json.dumps(node)
            client.set_payload(collection, payload=update, points=[point.id], wait=True)
            renamed += 1
        if not points:
            return renamed


__all__ = ["MIN_HASH_PREFIX", "NoSuchDocument", "STORED_AT_KEY", "StoredDocument", "delete_document",
           "list_documents", "now_iso", "rename_document", "select_documents"]
