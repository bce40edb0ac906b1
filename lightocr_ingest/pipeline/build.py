"""The stages a config describes: its reader, chunker and embedder, and the same pipeline as a
LlamaIndex ``IngestionPipeline``. Every runner (local, Ray workers, the service) builds its
stages here, so a setting means the same thing wherever it runs."""

from __future__ import annotations

import logging

from llama_index.core.schema import TransformComponent

from ..chunking import MarkdownBlockNodeParser
from ..documents import PageDocument
from ..embedding import make_embed_model, max_sequence_tokens, resolve_model
from ..metadata import FINGERPRINT_KEY
from ..reader import LightOnOCRReader
from ..store import check_mode, make_vector_store, open_client
from .config import PipelineConfig
from .plan import settings_fingerprint

log = logging.getLogger("lightocr_ingest")


def make_reader(config: PipelineConfig) -> LightOnOCRReader:
    """The reader a config describes: every ``ocr`` key but the run-level ones maps to a field."""
    ocr = config.ocr.model_dump(exclude={"engine", "url", "max_failed_share", "mode"})
    ocr.update(retry_temperatures=tuple(ocr["retry_temperatures"]), fallbacks=tuple(ocr["fallbacks"]))
    return LightOnOCRReader(ocr_engine=config.ocr.engine, ocr_url=config.ocr.url, ocr_mode=config.ocr.mode, **ocr,
                            pages=config.input.pages, password=config.input.password,
                            regions=config.chunking.regions)


def make_parser(config: PipelineConfig) -> MarkdownBlockNodeParser:
    c = config.chunking
    tokenizer = resolve_model(config.embedding.model) if c.tokenizer == "embedding" else None
    return MarkdownBlockNodeParser(chunk_size=c.chunk_size, tokenizer=tokenizer,
                                   embed_headings=c.embed_headings, embed_header_path=c.embed_header_path,
                                   drop_page_furniture=c.drop_page_furniture,
                                   regions=c.regions != "off")


def make_embedder(config: PipelineConfig):
    """The embedding model of a config (loaded once per process), with a warning when chunks
    may be longer than the model reads."""
    e = config.embedding
    model = make_embed_model(e.model, e.device, e.batch_size, e.precision)
    check_chunk_size(config, max_sequence_tokens(model))
    return model


def check_chunk_size(config: PipelineConfig, limit: int | None) -> None:
    """Warn when ``chunking.chunk_size`` is over what the embedding model reads (``limit`` tokens)."""
    if limit and config.chunking.chunk_size > limit:
        log.warning("chunk_size %d exceeds what %s reads (%d tokens): the ends of long chunks will be "
                    "ignored by the embedding; set chunking.chunk_size <= %d",
                    config.chunking.chunk_size, config.embedding.model, limit, limit)


def build_pipeline(config: PipelineConfig, client=None, **kwargs):
    """The same pipeline as a LlamaIndex ``IngestionPipeline`` (chunker, embedder, Qdrant store).

    Feed it the Documents of ``make_reader(config)`` (or ``SimpleDirectoryReader`` with the
    reader as ``file_extractor``); query with ``VectorStoreIndex.from_vector_store(store)``.
    It gives the nodes and ids ``ingest`` gives. ``kwargs`` go to ``IngestionPipeline``
    (``cache=IngestionCache()``, ``docstore=...`` to skip unchanged pages on a re-run).
    """
    from llama_index.core.ingestion import IngestionPipeline

    owned = client is None
    client = client or open_client(config.qdrant)
    try:
        check_mode(client, config.qdrant.collection, config.retrieval.mode)
    except Exception:
        if owned:
            client.close()  # the embedded store locks its folder until closed
        raise
    return IngestionPipeline(transformations=[FingerprintStamp(fingerprint=settings_fingerprint(config)),
                                              make_parser(config), make_embedder(config)],
                             vector_store=make_vector_store(client, config.qdrant.collection, config.retrieval.mode),
                             **kwargs)


class FingerprintStamp(TransformComponent):
    """Stamps pages with the settings fingerprint, as ``ingest`` does, so that both paths store
    the same payloads (the fingerprint tells a file's current points from stale ones).

    It stamps copies: the pages given stay as they were, so the hashes an ``IngestionPipeline``
    keeps in its docstore are those of the pages a re-run will read.
    """

    fingerprint: str

    def __call__(self, nodes, **kwargs):
        copies = []
        for node in nodes:
            copy = node.model_copy(update={"metadata": dict(node.metadata),
                                           "excluded_embed_metadata_keys": list(node.excluded_embed_metadata_keys),
                                           "excluded_llm_metadata_keys": list(node.excluded_llm_metadata_keys)})
            stamp(copy, self.fingerprint)
            copies.append(copy)
        return copies


def stamp(page: PageDocument, fingerprint: str) -> None:
    """Mark a page with the settings it is chunked and embedded under (kept out of embeddings)."""
    page.metadata[FINGERPRINT_KEY] = fingerprint
    for excluded in (page.excluded_embed_metadata_keys, page.excluded_llm_metadata_keys):
        if FINGERPRINT_KEY not in excluded:
            excluded.append(FINGERPRINT_KEY)
