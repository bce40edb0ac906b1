"""What a collection of this project is made of: its default place and name, its vectors'
names, the payload fields it indexes. Shared by the store, the embedded store's moves in and
out, and the retriever."""

from __future__ import annotations

from qdrant_client import models

from ..metadata import FILE_NAME_KEY, FILE_PATH_KEY, FILE_SHA256_KEY, FINGERPRINT_KEY, PAGE_KEY

DEFAULT_PATH = ".lightocr/qdrant"
DEFAULT_COLLECTION = "lightocr"
UPSERT_BATCH = 128  # points per request: Qdrant's sweet spot is 64-256 for 384-dim vectors
INDEXED_FIELDS = {FILE_NAME_KEY: models.PayloadSchemaType.KEYWORD, FILE_PATH_KEY: models.PayloadSchemaType.KEYWORD,
                  FILE_SHA256_KEY: models.PayloadSchemaType.KEYWORD, FINGERPRINT_KEY: models.PayloadSchemaType.KEYWORD,
                  PAGE_KEY: models.PayloadSchemaType.INTEGER}  # filters users and re-ingestion run
MODES = ("dense", "hybrid")
DENSE_VECTOR = "text-dense"  # LlamaIndex's names for a hybrid collection's two vectors, so that its own
SPARSE_VECTOR = "text-sparse-new"  # QdrantVectorStore(enable_hybrid=True) reads our collections as they are
# A file is complete when all its chunks are stored: its last point then gets ``file_complete``
# (and ``stored_at``, ISO 8601 UTC, when it was marked), and a later run skips the file before
# reading it. A run killed before that re-reads the file (the OCR cache answers its pages),
# finds the chunks already stored by id, and embeds only the rest, since the same file and
# settings always give the same chunk ids.
COMPLETE_KEY = "file_complete"
STORED_AT_KEY = "stored_at"
