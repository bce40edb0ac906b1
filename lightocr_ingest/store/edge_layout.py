"""What the embedded store keeps beside each shard: its vectors as qdrant-client describes them
(``edge/<collection>.json``), which Edge's own files do not tell through its API; and which
collection names can be folders. Pure Python, no call into Edge."""

from __future__ import annotations

from qdrant_client import models


def layout_of(vectors: dict[str, models.VectorParams], sparse: dict[str, models.SparseVectorParams]) -> dict:
    """The description written when a collection is made (``""`` names the one unnamed vector)."""
    return {"vectors": {name: {"size": p.size, "distance": models.Distance(p.distance).value}
                        for name, p in vectors.items()},
            "sparse_vectors": {name: {"idf": p.modifier == models.Modifier.IDF} for name, p in sparse.items()}}


def layout_params(layout: dict):
    """The description read back as qdrant-client's params: (vectors, sparse vectors or None)."""
    vectors = layout["vectors"]
    dense = models.VectorParams(**vectors[""]) if list(vectors) == [""] else \
        {name: models.VectorParams(**params) for name, params in vectors.items()}
    sparse = {name: models.SparseVectorParams(modifier=models.Modifier.IDF if p.get("idf") else None)
              for name, p in layout.get("sparse_vectors", {}).items()} or None
    return dense, sparse


def check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"collection name {name!r} cannot name a folder; use letters, digits, '-' and '_'")
