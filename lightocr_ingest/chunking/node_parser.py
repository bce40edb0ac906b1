"""``MarkdownBlockNodeParser``: the chunker as a LlamaIndex ``NodeParser``.

It takes the page Documents of ``LightOnOCRReader`` (or any Markdown Documents), groups them by
file, orders each file's pages, and cuts them with ``chunker.chunk_pages``. Its settings are
pydantic fields, so they enter an ``IngestionPipeline``'s cache key; node ids depend only on
the source document, the chunk's position and its text, so a re-run upserts, never duplicates.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from llama_index.core.node_parser import NodeParser
from llama_index.core.schema import BaseNode, Document, NodeRelationship, TextNode
from pydantic import Field, PrivateAttr

from .chunker import DEFAULT_MAX_TOKENS, Chunk, PageText, chunk_pages
from .tokens import TokenCounter, estimate_tokens, tokenizer_counter

CHUNK_ID_NAMESPACE = uuid.UUID("0b5e1c7e-8f0a-4d7c-a8f5-2c8f6b1e9d33")  # fixed forever: ids must not change
EMBED_KEYS = ("file_name", "header_path")  # what the embedding model sees before the text
LLM_KEYS = ("file_name", "page_label", "header_path")


def chunk_node_id(source_id: str, index: int, text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return str(uuid.uuid5(CHUNK_ID_NAMESPACE, f"{source_id}:{index}:{digest}"))


class MarkdownBlockNodeParser(NodeParser):
    """Split OCR Markdown along headings, tables and formula blocks, under a token budget."""

    chunk_size: int = Field(default=DEFAULT_MAX_TOKENS, ge=16,
                            description="Token budget of a chunk (tables and formulas are never cut mid-way).")
    tokenizer: str | None = Field(
        default=None, description="Hugging Face tokenizer (local path or cached name) to count tokens with; "
                                  "a documented estimate when unset.")
    embed_header_path: bool = Field(default=True,
                                    description="Prefix the heading path to the text the embedding model sees.")
    drop_page_furniture: bool = Field(default=True,
                                      description="Leave out running headers, footers and page numbers.")

    _counter: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "MarkdownBlockNodeParser"

    @property
    def counter(self) -> TokenCounter:
        """The token counter for chunk budgets, loaded on first use."""
        if self._counter is None:
            self._counter = tokenizer_counter(self.tokenizer) if self.tokenizer else estimate_tokens
        return self._counter

    def count_tokens(self, text: str) -> int:
        return self.counter(text)

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any) -> list[BaseNode]:
        files: dict[str, list[BaseNode]] = {}
        for node in nodes:
            key = node.metadata.get("file_path") or node.ref_doc_id or node.node_id
            files.setdefault(key, []).append(node)
        out: list[BaseNode] = []
        for file_nodes in files.values():
            file_nodes.sort(key=lambda n: n.metadata.get("page") or 0)
            out.extend(self._chunk_file(file_nodes))
        return out

    def chunk_file_pages(self, page_documents: list[BaseNode], heading_path: list | None = None) -> list[BaseNode]:
        """Chunk a run of one file's pages (in page order), carrying ``heading_path`` across runs.

        For streaming ingestion: the pipeline calls this on batches of a long file's pages.
        """
        nodes = self._chunk_file(list(page_documents), heading_path)
        parents = {doc.node_id: doc for doc in page_documents if isinstance(doc, Document)}
        return self._postprocess_parsed_nodes(nodes, parents)

    def _chunk_file(self, file_nodes: list[BaseNode], heading_path: list | None = None) -> list[TextNode]:
        pages = [PageText(page=node.metadata.get("page") or i + 1,
                          markdown=node.get_content(),
                          figures=tuple(node.metadata.get("figures") or ()),
                          text_boxes=tuple(node.metadata.get("text_boxes") or ()))
                 for i, node in enumerate(file_nodes)]
        by_page = {page.page: node for page, node in zip(pages, file_nodes)}
        chunks = chunk_pages(pages, max_tokens=self.chunk_size, drop_page_furniture=self.drop_page_furniture,
                             count=self.counter, heading_path=heading_path)
        return [self._to_node(chunk, by_page[chunk.page]) for chunk in chunks]

    def _to_node(self, chunk: Chunk, source: BaseNode) -> TextNode:
        source_id = source.node_id
        metadata = {
            "page": chunk.page,
            "pages": list(chunk.pages),
            "header_path": " > ".join(chunk.header_path),
            "block_types": list(chunk.block_types),
            "bbox": [figure["bbox"] for figure in chunk.figures if figure.get("bbox")],
            "figures": [dict(figure) for figure in chunk.figures],
            "text_boxes": [dict(box) for box in chunk.text_boxes],
            "chunk_index": chunk.index,
            "oversize": chunk.oversize,
        }
        if "page_label" in source.metadata and len(chunk.pages) == 1:
            metadata["page_label"] = source.metadata["page_label"]
        node = TextNode(id_=chunk_node_id(source_id, chunk.index, chunk.text), text=chunk.text, metadata=metadata)
        node.relationships[NodeRelationship.SOURCE] = source.as_related_node_info()
        return node

    def _postprocess_parsed_nodes(self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]) -> list[BaseNode]:
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        # Parent metadata was merged in above; only now are all keys known, so exclusions go last.
        embed = set(EMBED_KEYS) if self.embed_header_path else set(EMBED_KEYS) - {"header_path"}
        for node in nodes:
            if not node.metadata.get("page_label") or len(node.metadata.get("pages", [])) > 1:
                node.metadata["page_label"] = ",".join(str(p) for p in node.metadata.get("pages", []))
            keep = embed if node.metadata.get("header_path") else embed - {"header_path"}
            node.excluded_embed_metadata_keys = [k for k in node.metadata if k not in keep]
            node.excluded_llm_metadata_keys = [k for k in node.metadata if k not in LLM_KEYS]
        return nodes
