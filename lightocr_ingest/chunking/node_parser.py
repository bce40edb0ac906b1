"""``MarkdownBlockNodeParser``: the chunker as a LlamaIndex ``NodeParser``.

It takes the page Documents of ``LightOnOCRReader`` (or any Markdown Documents), groups them by
file, orders each file's pages, and cuts each file whole with ``chunker.chunk_pages``. Its
settings are pydantic fields, so they enter an ``IngestionPipeline``'s cache key; node ids
depend only on the page a chunk starts on, its position in the file and its text, so a re-run
upserts, never duplicates. Consecutive chunks of a file are linked (PREVIOUS/NEXT) across
pages; each chunk names the page it starts on as its SOURCE.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from llama_index.core.node_parser import NodeParser
from llama_index.core.schema import BaseNode, Document, NodeRelationship, ObjectType, RelatedNodeInfo, TextNode
from pydantic import Field, PrivateAttr

from ..metadata import ChunkMetadata, FigureMetadata, PageMetadata
from .chunker import DEFAULT_MAX_TOKENS, Chunk, PageText, chunk_pages
from .tokens import TokenCounter, estimate_tokens, tokenizer_counter

CHUNK_ID_NAMESPACE = uuid.UUID("0b5e1c7e-8f0a-4d7c-a8f5-2c8f6b1e9d33")  # fixed forever: ids must not change
LLM_KEYS = ("file_name", "page_label", "header_path")
# What the embedding model sees before a chunk's text, by ``embed_headings``. "section" (the chunk's
# own heading) by default: the whole path made the chunks of one section alike to the model (every
# chunk of "4.2 The RTL Intermediate Language > 4.2.1 RTLIL Identifiers" began with it), and the
# own heading ranked answers higher on the real documents and the manual with either CPU reader
# (benchmarks/README.md, "What the heading path in the embedding does").
EMBED_KEYS = {"section": ("file_name", "section"), "path": ("file_name", "header_path"), "none": ("file_name",)}
EmbedHeadings = Literal["section", "path", "none"]


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
    embed_headings: EmbedHeadings = Field(
        default="section", description="Which headings the embedding model sees before a chunk's text: its own "
                                       "('section'), the whole path ('path': 'Title > Section > Subsection'), none.")
    embed_header_path: bool | None = Field(
        default=None, description="Deprecated: true is embed_headings='path', false 'none'.")
    drop_page_furniture: bool = Field(default=True,
                                      description="Leave out running headers, footers and page numbers.")
    regions: bool = Field(default=True, description="Place each chunk's text on its pages (metadata 'regions').")

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

    @property
    def headings_embedded(self) -> EmbedHeadings:
        """``embed_headings``, or what the deprecated ``embed_header_path`` asked for when given."""
        if self.embed_header_path is None:
            return self.embed_headings
        return "path" if self.embed_header_path else "none"

    def count_tokens(self, text: str) -> int:
        return self.counter(text)

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any) -> list[BaseNode]:
        files: dict[str, list[BaseNode]] = {}
        for node in nodes:
            key = PageMetadata.from_metadata(node.metadata).file_path or node.ref_doc_id or node.node_id
            files.setdefault(key, []).append(node)
        out: list[BaseNode] = []
        for file_nodes in files.values():
            out.extend(self.chunk_file(file_nodes))
        return out

    def chunk_file(self, page_documents: Sequence[BaseNode]) -> list[TextNode]:
        """All the chunks of one file from all its pages (any order): the one path by which
        both ``ingest`` and an ``IngestionPipeline`` cut a file, so both give the same nodes."""
        numbers = {id(node): PageMetadata.from_metadata(node.metadata).page for node in page_documents}
        file_nodes = sorted(page_documents, key=lambda n: numbers[id(n)] or 0)
        pages = [PageText(page=numbers[id(node)] or i + 1, markdown=node.get_content(),
                          layout=getattr(node, "layout", None))
                 for i, node in enumerate(file_nodes)]
        by_page = {page.page: node for page, node in zip(pages, file_nodes)}
        chunks = chunk_pages(pages, max_tokens=self.chunk_size, drop_page_furniture=self.drop_page_furniture,
                             count=self.counter, regions=self.regions)
        nodes = [self._to_node(chunk, by_page[chunk.page]) for chunk in chunks]
        for before, after in zip(nodes, nodes[1:]):  # across pages too: the file reads on
            before.relationships[NodeRelationship.NEXT] = RelatedNodeInfo(node_id=after.node_id,
                                                                          node_type=ObjectType.TEXT)
            after.relationships[NodeRelationship.PREVIOUS] = RelatedNodeInfo(node_id=before.node_id,
                                                                             node_type=ObjectType.TEXT)
        return nodes

    def _to_node(self, chunk: Chunk, source: BaseNode) -> TextNode:
        page = PageMetadata.from_metadata(source.metadata)
        facts = ChunkMetadata(
            page=chunk.page, pages=tuple(chunk.pages),
            page_label=page.page_label or str(chunk.page) if len(chunk.pages) == 1
            else ",".join(str(p) for p in chunk.pages),
            header_path=" > ".join(chunk.header_path), section=chunk.header_path[-1] if chunk.header_path else "",
            block_types=tuple(chunk.block_types),
            regions=tuple(chunk.regions), bbox=chunk.bbox, bbox_source=chunk.bbox_source,
            figures=tuple(FigureMetadata(f.ref, f.page, tuple(f.bbox) if f.bbox else None) for f in chunk.figures),
            chunk_index=chunk.index, oversize=chunk.oversize,
            blocks=tuple(part.to_payload() for part in chunk.blocks))
        metadata = dict(source.metadata)  # the page's keys, then the chunk's own over them
        metadata.update(facts.to_metadata())
        node = TextNode(id_=chunk_node_id(source.node_id, chunk.index, chunk.text), text=chunk.text,
                        metadata=metadata)
        # The page it starts on, named but not copied: a page's metadata is already in the chunk's.
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(
            node_id=source.node_id, node_type=ObjectType.DOCUMENT,
            metadata={k: v for k, v in (("file_name", page.file_name), ("page", page.page))
                      if k in source.metadata})
        embed = set(EMBED_KEYS[self.headings_embedded] if facts.header_path else EMBED_KEYS["none"])
        node.excluded_embed_metadata_keys = [k for k in metadata if k not in embed]
        node.excluded_llm_metadata_keys = [k for k in metadata if k not in LLM_KEYS]
        return node

    def _postprocess_parsed_nodes(self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]) -> list[BaseNode]:
        return nodes  # metadata, relationships and exclusions are set per file in chunk_file
