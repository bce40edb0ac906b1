"""How many candidates the embedded store rescores with the original vectors, by segment count.

HNSW searches each segment's int8 copies of the vectors; Qdrant then reads the originals of
that segment's ``limit x oversampling`` best candidates from disk and ranks them again. A
question searches every segment, so it rescores ``segments x limit x oversampling`` candidates
in all, and each read is a random page of the originals: at a million chunks those reads were
most of what the process's resident memory grew by (benchmarks/README.md, "store_scale.py").

A segment of n holds about 1/n of a question's answers, so the more segments, the less each
needs beyond its own ``limit``. Measured on clustered 384-d vectors, recall@10 against exact
search, 200 questions, cold readers (benchmarks/store_scale.py's collection, 2026-12-08):

| indexed segments (chunks) | oversampling 1 | 1.5 | 2 | 3 |
|---|---|---|---|---|
| 1 (10,000) | 0.970 | | 0.9935 | 0.9935 |
| 2 (250,000) | 0.998 | 1.000 | 1.000 | |
| 7 (1,000,000) | 0.9995 (peak RSS 1,266 MiB) | 0.9995 (1,401) | 0.9995 (1,521) | |
"""

from __future__ import annotations

# A question rescores at least RESCORED x limit candidates in all (two segments: 1.5x each),
# and at least its limit in every segment (three or more segments: oversampling 1).
RESCORED = 3.0


def indexed_segments(segments: int) -> int:
    """Segments a question searches through int8 copies, of a shard's ``segments``: Edge keeps
    one appendable segment beside the indexed ones for new points (empty after an optimisation,
    and searched exactly, without copies to rescore)."""
    return max(1, segments - 1)


def oversampling_for(segments: int) -> float:
    """Rescoring's oversampling for a question to a shard of ``segments`` segments."""
    return max(1.0, RESCORED / indexed_segments(segments))
