"""Search a collection through LlamaIndex: ``VectorStoreIndex.from_vector_store(...).as_retriever()``."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class Hit:
    score: float
    file_name: str
    file_path: str
    page: int
    pages: list[int]
    header_path: str
    text: str
    bbox: list | None  # the union of its regions on its first page (page points, top-left origin)
    regions: list[dict]  # [{"page": 3, "bbox": [x0, y0, x1, y1]}, ...]: where its text lies
    bbox_source: str  # text_layer, ocr_lines, located or none
    node_id: str

    def to_dict(self) -> dict:
        return asdict(self)


def retriever(vector_store, embed_model, k: int = 5):
    from llama_index.core import VectorStoreIndex

    index = VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model)
    return index.as_retriever(similarity_top_k=k)


def search(vector_store, embed_model, text: str, k: int = 5) -> list[Hit]:
    hits = []
    for result in retriever(vector_store, embed_model, k).retrieve(text):
        meta = result.node.metadata
        hits.append(Hit(score=round(float(result.score or 0.0), 4), file_name=meta.get("file_name", ""),
                        file_path=meta.get("file_path", ""), page=meta.get("page", 0), pages=meta.get("pages", []),
                        header_path=meta.get("header_path", ""), text=result.node.get_content(),
                        bbox=meta.get("bbox"), regions=meta.get("regions", []),
                        bbox_source=meta.get("bbox_source", "none"), node_id=result.node.node_id))
    return hits
