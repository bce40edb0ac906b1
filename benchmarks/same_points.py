"""Dump every point a fixed set of ingests stores, to compare two versions of the code.

A refactor must leave the stored points as they were: the same ids, the same payloads, the same
vectors. This ingests, into fresh local collections:

- ``samples/`` with the embedded CPU engine (text from detected lines, regions from them);
- ``tests/real_documents/*.pdf`` through the fake vLLM server (LightOnOCR-style Markdown with
  figure boxes), dense and hybrid, then again with answers that loop, are cut or are empty
  (retried pages, trimmed loops, text-layer fallbacks);

and writes one JSON line a point: id, payload (the node's JSON content parsed, so key order does
not matter) and a hash of the dense vector rounded to 5 decimals. Run it at two commits and diff::

    git worktree add /tmp/before <commit> && cp benchmarks/same_points.py /tmp/before/benchmarks/
    (cd /tmp/before && PYTHONPATH=. "$OLDPWD/.venv/bin/python" benchmarks/same_points.py /tmp/before.jsonl)
    .venv/bin/python benchmarks/same_points.py /tmp/after.jsonl && cmp /tmp/before.jsonl /tmp/after.jsonl

The run report's figures (pages, chunks, statuses) are written too, as ``{"report": ...}`` lines.
Takes about 4 minutes on 2 cores. Results: benchmarks/README.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_DEPENDENT = {"elapsed_s", "pages_per_s", "cpu_ms_per_page"}  # timings: differ from run to run


def dump_collection(client, collection: str, out) -> None:
    points, offset = [], None
    while True:
        batch, offset = client.scroll(collection, limit=256, offset=offset, with_payload=True, with_vectors=True)
        points.extend(batch)
        if offset is None:
            break
    for point in sorted(points, key=lambda p: str(p.id)):
        payload = dict(point.payload)
        payload.pop("stored_at", None)  # when the file was marked complete: differs from run to run
        if "_node_content" in payload:
            payload["_node_content"] = json.loads(payload["_node_content"])
        vectors = point.vector if isinstance(point.vector, dict) else {"": point.vector}
        digest = {name: hashlib.sha256(json.dumps([round(v, 5) for v in vector] if isinstance(vector, list)
                                                  else str(vector)).encode()).hexdigest()[:16]
                  for name, vector in sorted(vectors.items())}
        out.write(json.dumps({"collection": collection, "id": str(point.id), "payload": payload,
                              "vectors": digest}, sort_keys=True) + "\n")


def run(config: dict, paths: list[str], out) -> None:
    from lightocr_ingest.pipeline import Ingestor, parse_config

    config = parse_config(config)
    ingestor = Ingestor(config)
    try:
        report = ingestor.run(paths)
        totals = {k: v for k, v in report.totals().items() if k not in RUN_DEPENDENT}
        out.write(json.dumps({"report": totals, "files": [
            {"path": os.path.relpath(f.path, ROOT), "status": f.status, "chunks": f.chunks, "regions": f.regions,
             "pages": [[p.page, p.status, p.engine, p.chunks, p.error, p.warning] for p in f.pages]}
            for f in report.files]}, sort_keys=True) + "\n")
        dump_collection(ingestor.client, config.qdrant.collection, out)
    finally:
        ingestor.close()


def render_one_file_at_a_time() -> None:
    """Several files rendering at once in threads have been seen to give a page other pixels
    from one run to the next (and so another OCR answer from the fake server, whose text is a
    hash of the image): one at a time, the pixels are the same every run."""
    import importlib

    for name in ("lightocr_ingest.reader.render_ahead", "lightocr_ingest.reader"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "RENDER_AHEAD_FILES"):
            module.RENDER_AHEAD_FILES = 1
            return


def main(out_path: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lightocr_ingest.testing.vllm_server import FakeVLLMServer, FaultPlan

    out_path = os.path.abspath(out_path)
    os.chdir(ROOT)  # paths relative to the checkout, so two checkouts store the same payloads
    render_one_file_at_a_time()
    real = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "real_documents").glob("*.pdf"))
    with tempfile.TemporaryDirectory() as tmp, open(out_path, "w", encoding="utf-8") as out:
        os.environ["LIGHTOCR_CACHE_DIR"] = str(Path(tmp) / "cache")
        run({"qdrant": {"path": f"{tmp}/q1", "collection": "samples"}, "ocr": {"engine": "cpu"},
             "retrieval": {"mode": "dense"}}, ["samples"], out)
        with FakeVLLMServer() as server:
            for mode in ("dense", "hybrid"):
                run({"qdrant": {"path": f"{tmp}/q2-{mode}", "collection": f"real_{mode}"},
                     "ocr": {"engine": "vllm", "url": server.url}, "retrieval": {"mode": mode}}, real, out)
        # Answers that loop, stop at the length limit or say nothing, more often than the
        # temperature ladder recovers from: retried, trimmed and fallback pages.
        with FakeVLLMServer(faults=FaultPlan(rate=0.6, kinds=("loop", "length", "empty"), seed=7,
                                             max_in_a_row=6)) as server:
            run({"qdrant": {"path": f"{tmp}/q3", "collection": "real_faults"},
                 "ocr": {"engine": "vllm", "url": server.url, "fallbacks": ["text_layer"]},
                 "retrieval": {"mode": "dense"}}, real, out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "points.jsonl")
