"""Retrieval quality of a collection against labelled questions: recall@k and MRR.

A labelled question names the file and the page(s) that answer it (``samples/queries.yaml``).
A retrieved chunk is relevant when it comes from that file and covers one of those pages, so
the figures compare chunking settings fairly: a chunk is judged by where it sits, not by its
text. The scoring functions are pure; ``evaluate_retriever`` runs any LlamaIndex retriever,
and ``evaluate_collection`` opens a pipeline config's collection and closes it again.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..metadata import ChunkMetadata, PageMetadata

DEFAULT_KS = (1, 3, 5)


@dataclass(frozen=True)
class LabelledQuery:
    question: str
    file: str  # file name as stored in the chunks' ``file_name``
    pages: tuple[int, ...]

    def is_relevant(self, file_name: str, pages: Iterable[int]) -> bool:
        return file_name == self.file and any(page in self.pages for page in pages)


@dataclass
class QueryResult:
    query: LabelledQuery
    ranked: list[tuple[str, tuple[int, ...]]]  # (file name, pages) of each hit, best first
    first_relevant_rank: int | None  # 1-based; None when no hit is relevant


@dataclass
class RetrievalScores:
    recall_at: dict[int, float]  # k -> share of questions with a relevant chunk in the top k
    mrr: float  # mean over questions of 1 / rank of the first relevant chunk (0 when none)
    results: list[QueryResult] = field(default_factory=list)

    def row(self) -> dict:
        """A flat row for a table: ``recall@1``, ``recall@3``, ..., ``MRR``."""
        return {**{f"recall@{k}": round(v, 3) for k, v in self.recall_at.items()}, "MRR": round(self.mrr, 3)}

    def misses(self, k: int) -> list[QueryResult]:
        """The questions with no relevant chunk in the top ``k``: where to look first."""
        return [r for r in self.results if r.first_relevant_rank is None or r.first_relevant_rank > k]


def load_queries(path: str | os.PathLike) -> list[LabelledQuery]:
    """Read a YAML list of ``{question, file, pages}``; errors name the entry and what is wrong."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the labelled questions: {exc}") from None
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{path}: expected a list of entries with question, file and pages "
                          f"(see samples/queries.yaml), got {'nothing' if not data else type(data).__name__}")
    queries = []
    for number, entry in enumerate(data, start=1):
        if not isinstance(entry, dict) or not {"question", "file", "pages"} <= entry.keys():
            raise ConfigError(f"{path}: entry {number} needs question, file and pages (got {entry!r:.80})")
        pages = entry["pages"] if isinstance(entry["pages"], list) else [entry["pages"]]
        if not pages or not all(isinstance(p, int) and p >= 1 for p in pages):
            raise ConfigError(f"{path}: entry {number}: pages must be page numbers from 1 (got {entry['pages']!r})")
        queries.append(LabelledQuery(str(entry["question"]), str(entry["file"]), tuple(pages)))
    return queries


def first_relevant_rank(query: LabelledQuery, ranked: Sequence[tuple[str, Sequence[int]]]) -> int | None:
    for rank, (file_name, pages) in enumerate(ranked, start=1):
        if query.is_relevant(file_name, pages):
            return rank
    return None


def score(results: Sequence[QueryResult], ks: Sequence[int] = DEFAULT_KS) -> RetrievalScores:
    """recall@k and MRR over the results of several questions."""
    if not results:
        raise ValueError("no questions to score")
    ranks = [r.first_relevant_rank for r in results]
    recall = {k: sum(rank is not None and rank <= k for rank in ranks) / len(ranks) for k in ks}
    mrr = statistics.fmean(1.0 / rank if rank else 0.0 for rank in ranks)
    return RetrievalScores(recall_at=recall, mrr=mrr, results=list(results))


def evaluate_retriever(retriever, queries: Sequence[LabelledQuery], ks: Sequence[int] = DEFAULT_KS) -> RetrievalScores:
    """Ask every question through a LlamaIndex retriever (its ``similarity_top_k`` >= max(ks))."""
    results = []
    for query in queries:
        ranked = []
        for hit in retriever.retrieve(query.question):
            chunk = ChunkMetadata.from_metadata(hit.node.metadata)
            ranked.append((PageMetadata.from_metadata(hit.node.metadata).file_name, chunk.pages or (chunk.page,)))
        results.append(QueryResult(query, ranked, first_relevant_rank(query, ranked)))
    return score(results, ks)


def evaluate_collection(config, queries: Sequence[LabelledQuery], ks: Sequence[int] = DEFAULT_KS,
                        mode: str | None = None) -> RetrievalScores:
    """recall@k and MRR of the collection a pipeline config points at, with its embedding model,
    searched in ``mode`` (default: the config's ``retrieval.mode``)."""
    from .query import build_retriever

    with build_retriever(config, k=max(ks), mode=mode) as retriever:
        return evaluate_retriever(retriever, queries, ks)
