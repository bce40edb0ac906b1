"""Retrieval benchmark: dense vs hybrid (dense + BM25, fused by rank) on labelled questions,
and what BM25 costs at ingestion.

Sets (each question names the file and page that answer it; half ask with an exact term):
- ``samples``: ``samples/queries.yaml`` over ``samples/`` (CPU engine, as the README's first command).
- ``real``: ``benchmarks/questions/real_documents.yaml`` over ``tests/real_documents`` (6 papers
  and a manual, 32 pages).
- ``manual``: ``benchmarks/questions/yosys_manual.yaml`` over the full Yosys manual (Debian
  ``yosys-doc``, fetched with ``apt-get download`` into ``~/.cache/lightocr-ingest``): about
  290 pages competing for every question.

``real`` and ``manual`` are read through the vLLM path: the reader sends every page to a
loopback server speaking vLLM's protocol, which answers with the page's own text layer as
Markdown, a stand-in for LightOnOCR (no GPU here). Each set is ingested once into a hybrid
collection and asked in both modes: dense search uses the collection's dense vector, the
same as a dense collection would; BM25 alone and RRF with k 2, 10 and 60 are asked too
(``fusion_grid``). Cost: BM25 core-ms per chunk over the chunks of ``real``.
Run from the repository root::

    .venv/bin/python benchmarks/retrieval.py                  # ~10 minutes on 2 cores
    .venv/bin/python benchmarks/retrieval.py --sets samples,real --json .bench/retrieval.json
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = REPO / "benchmarks" / "questions"
CACHE = Path.home() / ".cache" / "lightocr-ingest"
MANUAL_PACKAGE = "yosys-doc"  # Debian bookworm's yosys-doc 0.23-6 holds /usr/share/doc/yosys/manual.pdf (ISC)


def fetch_manual() -> Path:
    return fetch_from_debian(MANUAL_PACKAGE, "usr/share/doc/yosys/manual.pdf", CACHE / "yosys" / "manual.pdf")


def fetch_from_debian(package: str, inside: str, target: Path) -> Path:
    """``target``, copied once from the file ``inside`` Debian's ``package`` (``apt-get download``)."""
    if target.exists():
        return target
    work = Path(tempfile.mkdtemp())
    subprocess.run(["apt-get", "download", package], cwd=work, check=True, capture_output=True)
    deb = next(work.glob("*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(work / "x")], check=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "x" / inside, target)
    shutil.rmtree(work)
    return target


def text_layer_answers(paths: list[Path]) -> dict[str, str]:
    """sha256 of each page image as the reader sends it -> the page's text layer as Markdown."""
    from lightocr_ingest.ocr.postprocess import text_layer_markdown
    from lightocr_ingest.pages import DocumentSource

    answers = {}
    for path in paths:
        with DocumentSource(path) as source:
            for number in range(1, source.source.page_count + 1):
                page = source.render_page(number)
                answers[hashlib.sha256(page.png).hexdigest()] = text_layer_markdown(page.text_layer or "")
    return answers


def ingest(paths: list[Path], workdir: Path, name: str, url: str | None, text_layer: bool = True,
           cache_dir: str | None = None, chunking: dict | None = None) -> dict:
    """Ingest ``paths`` through the vLLM server at ``url``, or the CPU engine (``text_layer``:
    born-digital pages from their layer; False: RapidOCR reads every page). ``cache_dir``: an
    OCR cache to share between ingests of the same pages (none by default); ``chunking``:
    settings over the defaults."""
    from lightocr_ingest.pipeline import Ingestor, parse_config

    ocr = {"engine": "vllm", "url": url, "cache_dir": cache_dir} if url else \
        {"engine": "cpu", "cache_dir": cache_dir, "text_layer": text_layer}
    config = parse_config({"ocr": ocr, "qdrant": {"path": str(workdir / "qdrant"), "collection": name},
                           "retrieval": {"mode": "hybrid"}, "chunking": chunking or {}})
    ingestor = Ingestor(config)
    try:
        report = ingestor.run([str(p) for p in paths])
    finally:
        ingestor.close()
    assert report.ok, f"{name}: ingestion failed"
    return config


def evaluate(config, questions: Path) -> dict:
    from lightocr_ingest.retrieval import evaluate_collection, load_queries

    queries = load_queries(questions)
    exact = _exact_flags(questions)
    out = {}
    for mode in ("dense", "hybrid"):
        scores = evaluate_collection(config, queries, (1, 3, 5), mode)
        row = scores.row()
        for kind in ("exact", "semantic"):
            chosen = [r for r, flag in zip(scores.results, exact) if flag == (kind == "exact")]
            if chosen:
                row[f"recall@5 {kind}"] = round(sum(r.first_relevant_rank is not None and r.first_relevant_rank <= 5
                                                    for r in chosen) / len(chosen), 3)
        row["misses@5"] = [r.query.question for r in scores.misses(5)]
        out[mode] = row
    out["questions"] = len(queries)
    return out


def fusion_grid(config, questions: Path) -> dict:
    """MRR and recall@5 of BM25 alone and of RRF with k 2 (Qdrant's default), 10 and 60: how
    ``retrieval.rrf_k`` was chosen (on the ``real`` set)."""
    from lightocr_ingest.retrieval import evaluate_retriever, load_queries
    from lightocr_ingest.retrieval.query import build_retriever

    queries = load_queries(questions)
    grid = {}
    for rrf_k in (2, 10, 60):
        varied = config.model_copy(deep=True)
        varied.retrieval.rrf_k = rrf_k
        with build_retriever(varied, k=5, mode="hybrid") as retriever:
            grid[f"rrf_k={rrf_k}"] = evaluate_retriever(retriever, queries, (1, 5)).row()
    with build_retriever(config, k=5, mode="hybrid") as retriever:
        retriever._retrieve = _bm25_only(retriever)
        grid["bm25 alone"] = evaluate_retriever(retriever, queries, (1, 5)).row()
    return grid


def _bm25_only(retriever):
    from llama_index.core.schema import NodeWithScore
    from qdrant_client import models

    from lightocr_ingest.embedding.bm25 import encode_queries
    from lightocr_ingest.store import SPARSE_VECTOR

    def retrieve(query_bundle):
        (indices,), (values,) = encode_queries([query_bundle.query_str])
        store = retriever.vector_store
        points = store.client.query_points(store.collection_name, query=models.SparseVector(indices=indices, values=values),
                                           using=SPARSE_VECTOR, limit=retriever.k, with_payload=True).points
        result = store.parse_to_query_result(points)
        return [NodeWithScore(node=n, score=s) for n, s in zip(result.nodes, result.similarities)]

    return retrieve


def _exact_flags(questions: Path) -> list[bool]:
    """Which entries are marked ``# exact`` (the comment line before each entry)."""
    flags, last_comment = [], ""
    for line in questions.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            last_comment = stripped
        elif stripped.startswith("- question:"):
            flags.append("exact" in last_comment)
            last_comment = ""
    return flags


def bm25_cost(config) -> dict:
    """Core-ms to encode each stored chunk's text with BM25 (median of 5 passes over all chunks)."""
    from lightocr_ingest.embedding.bm25 import encode_documents
    from lightocr_ingest.store import make_client

    client = make_client(config.qdrant.path)
    try:
        points, _ = client.scroll(config.qdrant.collection, limit=10_000, with_payload=True)
    finally:
        client.close()
    texts = [json.loads(p.payload["_node_content"])["text"] for p in points]
    encode_documents(texts[:1])  # load the model
    passes = []
    for _ in range(5):
        started = time.thread_time()
        encode_documents(texts)
        passes.append((time.thread_time() - started) * 1000 / len(texts))
    return {"chunks": len(texts), "core_ms_per_chunk": round(statistics.median(passes), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="samples,real,manual")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    from lightocr_ingest.testing import FakeVLLMServer

    sets = args.sets.split(",")
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if "samples" in sets:
            paths = sorted(Path(p) for p in glob.glob(str(REPO / "samples" / "*")) if Path(p).suffix in (".pdf", ".png"))
            config = ingest(paths, workdir, "samples", None)
            result["samples"] = evaluate(config, REPO / "samples" / "queries.yaml")
            result["samples"]["fusion_grid"] = fusion_grid(config, REPO / "samples" / "queries.yaml")
            print("samples", json.dumps(result["samples"]), file=sys.stderr)
        for name, paths, questions in (("real", sorted((REPO / "tests" / "real_documents").glob("*.pdf")),
                                        QUESTIONS / "real_documents.yaml"),
                                       ("manual", None, QUESTIONS / "yosys_manual.yaml")):
            if name not in sets:
                continue
            paths = paths or [fetch_manual()]
            answers = text_layer_answers(paths)
            with FakeVLLMServer(responder=lambda request: answers[request.image_sha256]) as server:
                config = ingest(paths, workdir, name, server.url)
            result[name] = evaluate(config, questions)
            result[name]["fusion_grid"] = fusion_grid(config, questions)
            if name == "real":
                result["bm25_cost"] = bm25_cost(config)
            print(name, json.dumps(result[name]), file=sys.stderr)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
