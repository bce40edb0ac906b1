"""Folders written by qdrant-client's local mode (this project before 0.2.0) move into the
embedded store on first open: each collection not yet there is read through qdrant-client and
written into an Edge shard with the same ids, vectors (dense and sparse) and payloads.

Local mode's own files (``meta.json``, ``collection/``) are left where they are, so a version
before 0.2.0 can still read the folder; once the moved collections answer as they should, they
can be deleted (the message says which). A collection already in the embedded store is never
moved again; one is moved under a passing name and renamed when all its points are in, so a
move that was interrupted is made anew by the next open.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("lightocr_ingest")

LOCAL_MODE_META = "meta.json"  # qdrant-client's local mode: the folder's collections and their params
BATCH = 512  # points read and written at a time
MOVING = ".moving"  # a collection's name while its points are being moved in


def local_mode_collections(path: str | Path) -> list[str]:
    """The collections a qdrant-client local-mode folder at ``path`` holds (none if it is not one)."""
    meta = Path(path) / LOCAL_MODE_META
    try:
        return sorted(json.loads(meta.read_text()).get("collections", {}))
    except (OSError, ValueError, AttributeError):
        return []


def migrate_local_mode(path: str | Path, progress=None) -> dict[str, int]:
    """Move every local-mode collection of ``path`` that the embedded store lacks into it;
    returns collection -> points moved (empty when there was nothing to move)."""
    from .edge import EdgeClient

    waiting = local_mode_collections(path)
    if not waiting:
        return {}
    with EdgeClient(path, hold=False) as target:  # local mode's client holds the folder meanwhile
        waiting = [name for name in waiting if not target.collection_exists(name)]
        if not waiting:
            return {}
        from qdrant_client import QdrantClient

        print(f"lightocr-ingest: moving {len(waiting)} collection(s) of {path} from qdrant-client's local mode into "
              f"the embedded Qdrant Edge store (once; ids, vectors and payloads unchanged): {', '.join(waiting)}",
              file=sys.stderr, flush=True)
        try:
            source = QdrantClient(path=str(path))
        except RuntimeError as exc:  # qdrant-client's words for its lock held elsewhere
            if "already accessed" not in str(exc):
                raise
            from .folder_lock import FolderInUse

            raise FolderInUse(f"the Qdrant folder {path} is open in another process; its collections move into the "
                              f"embedded store when it is free: stop that process and run the command again") from None
        moved = {}
        try:
            for name in waiting:
                # Copied under a passing name, renamed when complete: an interrupted move is redone.
                passing = f"{name}{MOVING}"
                target.delete_collection(passing)
                moved[name] = copy_collection(source, name, target, passing, progress)
                target.rename_collection(passing, name)
        finally:
            source.close()
    print(f"lightocr-ingest: moved {sum(moved.values())} points. Local mode's files ({Path(path) / LOCAL_MODE_META} and "
          f"{Path(path) / 'collection'}) are no longer read; delete them when the collections answer as before",
          file=sys.stderr, flush=True)
    return moved


def copy_collection(source, name: str, target, target_name: str, progress=None, batch: int = BATCH) -> int:
    """Copy collection ``name`` of ``source`` into a new collection ``target_name`` of ``target``
    (clients of either kind: qdrant-client's API): its vectors' layout, payload indexes where the
    target takes them, then every point with its id, vectors and payload, in batches. Re-embeds
    nothing. Returns the number of points copied; ``progress(done, total)`` after each batch."""
    from qdrant_client import models

    from .schema import INDEXED_FIELDS

    params = source.get_collection(name).config.params
    if target.collection_exists(target_name):
        raise ValueError(f"collection '{target_name}' already exists at the target: choose another name, or delete it "
                         f"there first")
    sparse = {k: models.SparseVectorParams(index=models.SparseIndexParams(), modifier=v.modifier)
              for k, v in (params.sparse_vectors or {}).items()} or None
    target.create_collection(target_name, vectors_config=params.vectors, sparse_vectors_config=sparse)
    for field_name, schema in {"doc_id": models.PayloadSchemaType.KEYWORD, **INDEXED_FIELDS}.items():
        target.create_payload_index(target_name, field_name, schema)
    total = source.count(name, exact=True).count
    done, offset = 0, None
    while True:
        points, offset = source.scroll(name, limit=batch, offset=offset, with_payload=True, with_vectors=True)
        if points:
            target.upsert(target_name, [models.PointStruct(id=p.id, vector=p.vector, payload=p.payload or {})
                                        for p in points], wait=True)
            done += len(points)
            if progress is not None:
                progress(done, total)
        if offset is None:
            break
    if hasattr(target, "optimize"):  # the embedded store builds its indexes once the points are in
        target.optimize(target_name)
    return done
