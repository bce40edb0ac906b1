"""Throughput benchmark: does the pipeline keep LightOnOCR-2-1B's GPUs busy, and at what CPU cost?

It generates a corpus (single-page scans and a few long PDFs), starts simulated vLLM servers
(``lightocr_ingest.testing.simulated_vllm``, each in its own process, batching up to 64 pages
and answering at a GPU's page rate), and runs the real pipeline end to end against them:
render, encode, requests, post-processing, chunking, embedding, Qdrant local mode. Each figure
is the median of ``--runs`` runs. Run it from the repository root::

    .venv/bin/python benchmarks/throughput.py            # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/throughput.py --quick    # a smoke run: tiny corpus, one run

Figures:
- efficiency: the share of the servers' batch slots kept busy while the pipeline still had
  pages to send (= achieved pages/s over the servers' capacity), at one GPU (6 pages/s) and
  five GPUs behind a list of URLs (30 pages/s);
- CPU per page of each stage in core-milliseconds (``lightocr_ingest.cpu_cost``), and how many
  cores a host needs to feed each capacity;
- embedding chunks/s and Qdrant upsert points/s, each measured alone;
- peak RSS while ingesting one 1,000-page PDF (in a child process of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402  (the sibling module, whichever folder this is run from)

from lightocr_ingest.cpu_cost import STAGES  # noqa: E402

EFFICIENCY_TARGET = 0.95
OCR_SIDE_TARGET_MS = 40.0  # core-ms per page for everything but embedding
RSS_TARGET_MB = 1536
EMBED_SAMPLE = 512  # chunks embedded alone per repeat: enough for a stable rate, ~30 s on 2 cores
OCR_SIDE_STAGES = STAGES  # everything but embedding


# --- servers ------------------------------------------------------------------------------
def start_servers(stack: ExitStack, count: int, pages_per_s: float, max_num_seqs: int) -> list[str]:
    """Start ``count`` simulated GPUs, each in its own process; return their URLs."""
    urls = []
    for _ in range(count):
        process = subprocess.Popen(
            [sys.executable, "-m", "lightocr_ingest.testing.simulated_vllm", "--pages-per-s", str(pages_per_s),
             "--max-num-seqs", str(max_num_seqs)], stdout=subprocess.PIPE, text=True)
        stack.callback(process.wait, 10)
        stack.callback(process.terminate)
        line = process.stdout.readline()
        if not line:
            raise SystemExit("the simulated vLLM server did not start; run it by hand to see why: "
                             "python -m lightocr_ingest.testing.simulated_vllm")
        urls.append(json.loads(line)["url"])
    return urls


def server_stats(urls: list[str]) -> list[dict]:
    return [httpx.get(url.removesuffix("/v1") + "/stats", timeout=10).json() for url in urls]


def reset_servers(urls: list[str]) -> None:
    for url in urls:
        httpx.post(url.removesuffix("/v1") + "/stats/reset", timeout=10)


# --- one pipeline run ---------------------------------------------------------------------
def pipeline_config(paths: list[str], urls: list[str], qdrant_path: str, collection: str, max_in_flight: int):
    from lightocr_ingest.pipeline.config import parse_config

    return parse_config({
        "input": {"paths": paths},
        "ocr": {"engine": "vllm", "url": urls, "cache_dir": None, "max_in_flight": max_in_flight},
        "qdrant": {"path": qdrant_path, "collection": collection},
    }, "benchmark")


def run_once(paths: list[str], urls: list[str], workdir: Path, name: str, max_in_flight: int) -> dict:
    from lightocr_ingest.pipeline.run import Ingestor

    reset_servers(urls)
    ingestor = Ingestor(pipeline_config(paths, urls, str(workdir / name), "bench", max_in_flight))
    try:
        started = time.perf_counter()
        report = ingestor.run()
        wall = time.perf_counter() - started
    finally:
        ingestor.close()
    totals = report.totals()
    if totals["pages_failed"] or totals["pages_ingested"] == 0:
        raise SystemExit(f"benchmark run failed: {json.dumps(totals)}")
    stats = server_stats(urls)
    busy = sum(s["busy_slot_s"] for s in stats)
    slot_time = sum(s["slots"] * s["window_s"] for s in stats)
    pages = totals["pages_seen"]
    return {
        "pages": pages, "chunks": totals["chunks"], "wall_s": wall, "pages_per_s": pages / wall,
        "efficiency": busy / slot_time if slot_time else 0.0,
        "capacity_pages_per_s": sum(s["capacity_pages_per_s"] for s in stats),
        "cpu_ms_per_page": {stage: ns / 1e6 / pages for stage, ns in report.cpu_ns.items()},
        "cpu_busy_share": report.cpu_ns["process"] / 1e9 / (wall * os.cpu_count()),
        "server_cpu_ms_per_page": sum(s["server_cpu_s"] for s in stats) * 1000 / pages,
        "max_active": max(s["max_active"] for s in stats),
        "pages_by_server": [s["answered"] for s in stats],
    }


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def median_stage(runs: list[dict], stage: str) -> float:
    return statistics.median(run["cpu_ms_per_page"].get(stage, 0.0) for run in runs)


# --- embedding and upserts alone ----------------------------------------------------------
def embedding_and_upsert(texts: list[str], repeats: int, workdir: Path) -> dict:
    from llama_index.core.schema import TextNode

    from lightocr_ingest.embedding import make_embed_model
    from lightocr_ingest.store import make_client, make_vector_store

    model = make_embed_model()
    model.get_text_embedding_batch(texts[:32])  # warm up
    embed_s, embed_cpu, vectors = [], [], None
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        vectors = model.get_text_embedding_batch(texts)
        embed_s.append(time.perf_counter() - started)
        embed_cpu.append(time.process_time() - cpu)
    upsert_s = []
    for attempt in range(repeats):
        client = make_client(str(workdir / f"upsert-{attempt}"), None, None)
        store = make_vector_store(client, "upsert")
        nodes = [TextNode(text=text, metadata={"file_name": "x.pdf", "page": i % 500 + 1}, embedding=vector)
                 for i, (text, vector) in enumerate(zip(texts, vectors))]
        started = time.perf_counter()
        for start in range(0, len(nodes), 256):
            store.add(nodes[start:start + 256])
        upsert_s.append(time.perf_counter() - started)
        client.close()
    return {"chunks": len(texts), "embed_chunks_per_s": len(texts) / statistics.median(embed_s),
            "embed_core_ms_per_chunk": statistics.median(embed_cpu) * 1000 / len(texts),
            "upsert_points_per_s": len(texts) / statistics.median(upsert_s)}


def chunk_texts(qdrant_path: Path) -> list[str]:
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(qdrant_path))
    texts, offset = [], None
    while True:
        points, offset = client.scroll("bench", limit=512, offset=offset, with_payload=True)
        for point in points:
            node = json.loads(point.payload.get("_node_content", "{}"))
            texts.append(node.get("text", ""))
        if offset is None:
            break
    client.close()
    return [t for t in texts if t]


# --- peak memory on a 1,000-page PDF (child process) ---------------------------------------
def rss_child(pdf: str, urls: list[str], workdir: str) -> None:
    from lightocr_ingest.pipeline.memory import peak_rss_mb
    from lightocr_ingest.pipeline.run import Ingestor

    ingestor = Ingestor(pipeline_config([pdf], urls, workdir, "bench", 64))
    started = time.perf_counter()
    report = ingestor.run()
    ingestor.close()
    totals = report.totals()
    print(json.dumps({"pages": totals["pages_seen"], "failed": totals["pages_failed"],
                      "wall_s": time.perf_counter() - started,
                      "peak_rss_mb": peak_rss_mb()}))


def peak_rss(pdf: Path, urls: list[str], workdir: Path) -> dict:
    output = subprocess.run([sys.executable, __file__, "--rss-child", str(pdf), "--urls", ",".join(urls),
                             "--workdir", str(workdir / "rss")], capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


# --- report -------------------------------------------------------------------------------
def bottleneck(runs: list[dict], cores: int) -> str:
    stages = {stage: median_stage(runs, stage) for stage in OCR_SIDE_STAGES}
    total = median_stage(runs, "process")
    embedding = max(0.0, total - sum(stages.values()))
    costs = dict(stages, **{"embedding and the rest": embedding})
    top = sorted(costs.items(), key=lambda item: -item[1])[:3]
    busy = median_of(runs, "cpu_busy_share")
    where = ", ".join(f"{stage} {ms:.0f} ms ({ms / total:.0%})" for stage, ms in top)
    if busy > 0.85:
        return f"CPU-bound: the pipeline kept {busy:.0%} of {cores} cores busy; the largest costs per page: {where}"
    return (f"not CPU-bound ({busy:.0%} of {cores} cores busy): pages waited on something else (the window, "
            f"a queue or a lock); the largest costs per page: {where}")


def print_table(results: dict, cores: int) -> None:
    print(f"\nlightocr-ingest throughput benchmark: {platform.node()}, {cores} cores, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"medians of {results['runs']} runs; corpus: {results['corpus']}\n")
    print(f"{'setting':34} {'capacity':>9} {'pages/s':>8} {'efficiency':>10} {'target':>7} {'CPU ms/page':>11} "
          f"{'cores needed':>12}")
    for name, setting in results["settings"].items():
        runs = setting["runs"]
        capacity = setting["capacity_pages_per_s"]
        total_ms = median_stage(runs, "process")
        needed = capacity * total_ms / 1000
        efficiency = median_of(runs, "efficiency")
        applies = capacity <= 6.0 or needed <= cores  # one GPU: the target holds on any host
        verdict = ("met" if efficiency >= EFFICIENCY_TARGET else "MISSED") if applies else "n/a"
        print(f"{name:34} {capacity:9.2f} {median_of(runs, 'pages_per_s'):8.2f} {efficiency:10.3f} {verdict:>7} "
              f"{total_ms:11.1f} {needed:12.1f}")
        setting["summary"] = {"efficiency": efficiency, "pages_per_s": median_of(runs, "pages_per_s"),
                              "cpu_ms_per_page": total_ms, "cores_needed": needed, "target": verdict}
        if verdict == "MISSED" or (not applies and efficiency < EFFICIENCY_TARGET):
            setting["summary"]["bottleneck"] = bottleneck(runs, cores)
            why = "" if applies else f" (the cores do not suffice: {needed:.1f} needed, {cores} here)"
            print(f"    bottleneck{why}: {setting['summary']['bottleneck']}")
    first = next(iter(results["settings"].values()))["runs"]
    print("\nCPU per page by stage (core-ms, median; the first setting's runs):")
    ocr_side = 0.0
    for stage in OCR_SIDE_STAGES:
        value = median_stage(first, stage)
        ocr_side += value
        print(f"  {stage:28} {value:8.1f}")
    total = median_stage(first, "process")
    print(f"  {'embedding and the rest':28} {max(0.0, total - ocr_side):8.1f}   (process total {total:.1f})")
    verdict = "met" if ocr_side <= OCR_SIDE_TARGET_MS else "MISSED"
    print(f"  OCR side (all but embedding) {ocr_side:8.1f}   target <= {OCR_SIDE_TARGET_MS:.0f}: {verdict}")
    print(f"  simulated servers (own processes, not the pipeline): "
          f"{statistics.median(r['server_cpu_ms_per_page'] for r in first):.1f} core-ms per page")
    results["ocr_side_ms_per_page"] = ocr_side
    alone = results["alone"]
    print(f"\nembedding alone: {alone['embed_chunks_per_s']:.0f} chunks/s "
          f"({alone['embed_core_ms_per_chunk']:.1f} core-ms per chunk, {alone['chunks']} chunks); "
          f"Qdrant local-mode upserts: {alone['upsert_points_per_s']:.0f} points/s")
    if "rss" in results:
        rss = results["rss"]
        verdict = "met" if rss["peak_rss_mb"] < RSS_TARGET_MB else "MISSED"
        print(f"1,000-page PDF: peak RSS {rss['peak_rss_mb']:.0f} MB (target < {RSS_TARGET_MB} MB: {verdict}), "
              f"{rss['pages']} pages in {rss['wall_s']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per setting; figures are medians")
    parser.add_argument("--images", type=int, default=240, help="single-page scans in the corpus")
    parser.add_argument("--pdfs", type=int, default=2, help="long PDFs in the corpus")
    parser.add_argument("--pages-per-pdf", type=int, default=60)
    parser.add_argument("--gpu-pages-per-s", type=float, default=6.0, help="capacity of one simulated GPU")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 5], help="settings: simulated GPUs, one URL each")
    parser.add_argument("--max-num-seqs", type=int, default=64, help="requests each simulated GPU batches")
    parser.add_argument("--max-in-flight", type=int, default=64, help="the pipeline's window per server")
    parser.add_argument("--no-rss", action="store_true", help="skip the 1,000-page PDF")
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 scans, one 8-page PDF, one run")
    parser.add_argument("--work", default=".bench", help="corpus and scratch folder (kept between runs)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.urls.split(","), args.workdir)
    if args.quick:
        args.runs, args.images, args.pdfs, args.pages_per_pdf, args.no_rss = 1, 12, 1, 8, True
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cores = os.cpu_count() or 1
    work = Path(args.work).resolve()
    spec = corpus.CorpusSpec(args.images, args.pdfs, args.pages_per_pdf)
    print(f"corpus: {spec.pages} pages ({spec.images} scans, {spec.pdfs} PDFs of {spec.pages_per_pdf} pages) "
          f"in {work}", flush=True)
    folder = corpus.build(work / "corpus", spec)
    results: dict = {"runs": args.runs, "cores": cores, "machine": platform.node(), "settings": {},
                     "corpus": f"{spec.images} single-page scans + {spec.pdfs} PDFs x {spec.pages_per_pdf} pages"}
    with ExitStack() as stack, tempfile.TemporaryDirectory(dir=work) as scratch:
        scratch_path = Path(scratch)
        from lightocr_ingest.pipeline.run import Ingestor  # noqa: F401  (import cost outside the timings)

        last_store = None
        for gpus in args.gpus:
            urls = start_servers(stack, gpus, args.gpu_pages_per_s, args.max_num_seqs)
            name = f"{gpus} GPU{'s' if gpus > 1 else ''} x {args.gpu_pages_per_s:g} pages/s"
            run_once([str(next((folder / "scans").iterdir()))], urls, scratch_path, f"warm-{gpus}",
                     args.max_in_flight)  # loads the embedding model and tokenizer
            runs = []
            for number in range(args.runs):
                print(f"{name}: run {number + 1}/{args.runs}...", flush=True)
                store = f"run-{gpus}-{number}"
                runs.append(run_once([str(folder)], urls, scratch_path, store, args.max_in_flight))
                last_store = scratch_path / store
                print(f"  {runs[-1]['pages']} pages in {runs[-1]['wall_s']:.1f} s, efficiency "
                      f"{runs[-1]['efficiency']:.3f}", flush=True)
            results["settings"][name] = {"capacity_pages_per_s": runs[0]["capacity_pages_per_s"], "runs": runs}
        print("embedding and upserts alone...", flush=True)
        texts = chunk_texts(last_store)[:EMBED_SAMPLE]
        results["alone"] = embedding_and_upsert(texts, max(1, args.runs), scratch_path)
        if not args.no_rss:
            print("1,000-page PDF in a child process...", flush=True)
            pdf = corpus.thousand_page_pdf(work / "corpus")
            urls = start_servers(stack, 1, 50.0, args.max_num_seqs)
            results["rss"] = peak_rss(pdf, urls, scratch_path)
    print_table(results, cores)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
