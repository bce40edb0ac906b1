"""Throughput benchmark: does the pipeline keep LightOnOCR-2-1B's GPUs busy, and at what CPU cost?

It generates corpora (single-page scans and a few long PDFs, ``corpus.py``), starts simulated
vLLM servers (``lightocr_ingest.testing.simulated_vllm``, each in its own process: up to 256
sequences decoded at once, a decode rate that grows with the batch, the rest queued), and runs
the real pipeline end to end against them: render, encode, requests, post-processing, chunking,
embedding, the embedded Qdrant store. Each figure is the median of ``--runs`` runs. From the repository
root::

    .venv/bin/python benchmarks/throughput.py            # about 70 minutes on 2 cores
    .venv/bin/python benchmarks/throughput.py --quick    # a smoke run: 20 pages, one run, ~2 minutes
    .venv/bin/python benchmarks/throughput.py --corpus 233 --runs 1 --no-rss   # about 5 minutes

By default: one simulated GPU at 6 pages/s (at a full batch), the 233-page corpus (173 scans + 2
PDFs x 30 pages) and the 1,000-page one (760 scans + 4 PDFs x 60 pages), each at the pipeline's
default window per server (``ocr.max_in_flight``, or ``--max-in-flight``) and at 64 and 256
(``--windows``). Generating the corpora the first time takes about a minute (kept in
``.bench/corpus``). On 2 cores the embedder sets the end-to-end pace (about 2 pages/s), so a
233-page run takes about 2 minutes and a 1,000-page one 8 to 9, while the simulated GPU is busy
for about 40 s and 170 s of them.

Figures:
- efficiency: tokens the GPU decoded over what it could have decoded at its peak rate in its busy
  window (first request to last answer), summed over servers; at most 0.97 with a full batch of
  256, 0.89 with 64 running. Beside it ``slot use`` (mean running sequences / 256) and the ideal:
  what a client with no overhead at all reaches with the same window and pages (the same server
  model run in virtual time, ``simulate_client``). Targets at the default window: >= 0.92 on the
  233-page run, >= 0.95 on 1,000 pages;
- CPU per page of each stage in core-milliseconds (``lightocr_ingest.cpu_cost``) on the first
  corpus at the default window, and how many cores a host needs to feed each capacity;
- per run, where the wall time outside the GPUs' busy window went: how long the first request took
  to reach a GPU (``lead_s``), how long after it the last page did (``fed_s``: how fast the client
  filled the window) and how long the run went on after the last answer (``tail_s``:
  chunking, embedding and storing what came back last);
- embedding chunks/s and Qdrant upsert points/s, each measured alone;
- peak RSS while ingesting one 1,000-page PDF (in a child process of its own, default window).
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
from lightocr_ingest.testing.simulated_vllm import HALF_BATCH, MAX_NUM_SEQS, ServiceModel, simulate_client  # noqa: E402

# Efficiency targets at the default window, by run length: (at least this many pages, target).
# Shorter runs have none: starting and draining the batch weigh too much in them.
EFFICIENCY_TARGETS = ((1000, 0.95), (233, 0.92))
OCR_SIDE_TARGET_MS = 25.0  # core-ms per page for everything but embedding
RSS_TARGET_MB = 1024
IDEAL_DRAWS = 5  # page-length draws the ideal efficiency is the median of
COMPARE_WINDOWS = (64, 256)  # windows per server measured beside the default one
EMBED_SAMPLE = 512  # chunks embedded alone per repeat: enough for a stable rate, ~30 s on 2 cores
OCR_SIDE_STAGES = STAGES  # everything but embedding


# --- servers ------------------------------------------------------------------------------
def start_servers(stack: ExitStack, count: int, service: ServiceModel) -> list[str]:
    """Start ``count`` simulated GPUs, each in its own process; return their URLs."""
    urls = []
    for _ in range(count):
        process = subprocess.Popen(
            [sys.executable, "-m", "lightocr_ingest.testing.simulated_vllm", "--pages-per-s", str(service.pages_per_s),
             "--max-num-seqs", str(service.max_num_seqs), "--half-batch", str(service.half_batch),
             "--tokens", str(service.tokens_min), str(service.tokens_max)], stdout=subprocess.PIPE, text=True)
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
def default_window() -> int:
    """The pipeline's own window per server (``ocr.max_in_flight`` when a config leaves it out)."""
    from lightocr_ingest.pipeline.config import parse_config

    return parse_config({}, "defaults").ocr.max_in_flight


def pipeline_config(paths: list[str], urls: list[str], qdrant_path: str, collection: str,
                    max_in_flight: int | None):
    """The benchmark's config; ``max_in_flight`` None leaves the pipeline's default."""
    from lightocr_ingest.pipeline.config import parse_config

    ocr = {"engine": "vllm", "url": urls, "cache_dir": None}
    if max_in_flight is not None:
        ocr["max_in_flight"] = max_in_flight
    return parse_config({
        "input": {"paths": paths}, "ocr": ocr, "qdrant": {"path": qdrant_path, "collection": collection},
    }, "benchmark")


def ingestor_class(runner: str):
    """The Ingestor of ``--runner``: ``local`` (one process) or ``ray`` (Ray Data; a local Ray instance started
    once for the whole benchmark, see ``main``)."""
    if runner == "ray":
        from lightocr_ingest.pipeline.ray_runner import RayIngestor

        return RayIngestor
    from lightocr_ingest.pipeline.run import Ingestor

    return Ingestor


def run_once(paths: list[str], urls: list[str], workdir: Path, name: str, max_in_flight: int | None,
             runner: str = "local") -> dict:
    reset_servers(urls)
    ingestor = ingestor_class(runner)(pipeline_config(paths, urls, str(workdir / name), "bench", max_in_flight))
    try:
        started, started_clock = time.perf_counter(), time.monotonic()  # the servers' clock: monotonic
        report = ingestor.run()
        wall, ended_clock = time.perf_counter() - started, time.monotonic()
    finally:
        ingestor.close()
    totals = report.totals()
    if totals["pages_failed"] or totals["pages_ingested"] == 0:
        raise SystemExit(f"benchmark run failed: {json.dumps(totals)}")
    stats = server_stats(urls)
    could = sum(s["peak_tokens_per_s"] * s["window_s"] for s in stats)  # tokens at peak over each busy window
    slot_time = sum(s["max_num_seqs"] * s["window_s"] for s in stats)
    pages = totals["pages_seen"]
    return {
        "pages": pages, "chunks": totals["chunks"], "wall_s": wall, "pages_per_s": pages / wall,
        "efficiency": sum(s["tokens_served"] for s in stats) / could if could else 0.0,
        "slot_use": sum((s["slot_use"] or 0.0) * s["max_num_seqs"] * s["window_s"] for s in stats) / slot_time
        if slot_time else 0.0,
        "gpu_busy_s": max(s["window_s"] for s in stats),
        # Where the rest of the wall time went: before the first request reached a GPU, and after
        # the last answer (chunking, embedding and storing what came back last).
        # (A server that was sent nothing has no window: a quick run's pages can all go to one.)
        "lead_s": min((s["window_start"] for s in stats if s["window_start"] is not None),
                      default=started_clock) - started_clock,
        "tail_s": ended_clock - max((s["window_end"] for s in stats if s["window_end"] is not None),
                                    default=ended_clock),
        "fed_s": fed_s(stats),  # how fast the client filled the GPUs' windows
        "capacity_pages_per_s": sum(s["capacity_pages_per_s"] for s in stats),
        "cpu_ms_per_page": {stage: ns / 1e6 / pages for stage, ns in report.cpu_ns.items()},
        "cpu_busy_share": report.cpu_ns["process"] / 1e9 / (wall * os.cpu_count()),
        "server_cpu_ms_per_page": sum(s["server_cpu_s"] for s in stats) * 1000 / pages,
        "max_active": max(s["max_active"] for s in stats), "max_waiting": max(s["max_waiting"] for s in stats),
        "pages_by_server": [s["answered"] for s in stats],
    }


def fed_s(stats: list[dict]) -> float:
    """How long after the first request to any GPU the last page reached one (0 when none did).
    The servers run on this machine: their monotonic clocks are one clock."""
    last = [s["window_start"] + s["last_request_s"] for s in stats if s["last_request_s"] is not None]
    first = [s["window_start"] for s in stats if s["window_start"] is not None]
    return max(last) - min(first) if last and first else 0.0


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def median_stage(runs: list[dict], stage: str) -> float:
    return statistics.median(run["cpu_ms_per_page"].get(stage, 0.0) for run in runs)


def ideal(service: ServiceModel, pages: int, gpus: int, window: int) -> dict:
    """Efficiency and slot use of a client with no overhead: ``window`` pages outstanding per server.

    The same server model in virtual time, on each server's share of the pages, median of
    ``IDEAL_DRAWS`` draws of page lengths.
    """
    share = -(-pages // gpus)
    draws = [simulate_client(service, [service.tokens_for(draw * 1_000_003 + page) for page in range(share)], window)
             for draw in range(IDEAL_DRAWS)]
    return {"efficiency": statistics.median(d["efficiency"] for d in draws),
            "slot_use": statistics.median(d["slot_use"] for d in draws)}


def efficiency_target(pages: int) -> float | None:
    return next((target for least, target in EFFICIENCY_TARGETS if pages >= least), None)


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
    from lightocr_ingest.store import make_client

    client = make_client(str(qdrant_path))
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
def rss_child(pdf: str, urls: list[str], workdir: str, max_in_flight: int | None) -> None:
    from lightocr_ingest.pipeline.memory import peak_rss_mb
    from lightocr_ingest.pipeline.run import Ingestor

    ingestor = Ingestor(pipeline_config([pdf], urls, workdir, "bench", max_in_flight))
    started = time.perf_counter()
    report = ingestor.run()
    ingestor.close()
    totals = report.totals()
    print(json.dumps({"pages": totals["pages_seen"], "failed": totals["pages_failed"],
                      "wall_s": time.perf_counter() - started,
                      "peak_rss_mb": peak_rss_mb()}))


def peak_rss(pdf: Path, urls: list[str], workdir: Path, max_in_flight: int | None) -> dict:
    window = [] if max_in_flight is None else ["--max-in-flight", str(max_in_flight)]
    output = subprocess.run([sys.executable, __file__, "--rss-child", str(pdf), "--urls", ",".join(urls),
                             "--workdir", str(workdir / "rss"), *window], capture_output=True, text=True, check=True)
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
    print(f"medians of {results['runs']} runs; corpora: {'; '.join(results['corpora'].values())}")
    print(f"simulated GPUs: {results['gpu']}; window: pages in flight per server, * the default "
          f"({results['default_window']})\n")
    print(f"{'setting':34} {'pages':>5} {'window':>6} {'capacity':>8} {'pages/s':>7} {'efficiency':>10} "
          f"{'ideal':>6} {'slot use':>8} {'target':>11} {'CPU ms/page':>11} {'cores needed':>12}")
    for name, setting in results["settings"].items():
        runs = setting["runs"]
        capacity = setting["capacity_pages_per_s"]
        total_ms = median_stage(runs, "process")
        needed = capacity * total_ms / 1000
        efficiency = median_of(runs, "efficiency")
        target = efficiency_target(setting["pages"]) if setting["default_window"] else None
        applies = capacity <= 6.0 or needed <= cores  # one GPU: the target holds on any host
        if target is None:
            verdict = "-"
        elif not applies:
            verdict = "n/a"
        else:
            verdict = f">={target:.2f} " + ("met" if efficiency >= target else "MISSED")
        window = f"{setting['window']}{'*' if setting['default_window'] else ''}"
        print(f"{name:34} {setting['pages']:5d} {window:>6} {capacity:8.2f} {median_of(runs, 'pages_per_s'):7.2f} "
              f"{efficiency:10.3f} {setting['ideal']['efficiency']:6.3f} {median_of(runs, 'slot_use'):8.3f} "
              f"{verdict:>11} {total_ms:11.1f} {needed:12.1f}")
        setting["summary"] = {"efficiency": efficiency, "slot_use": median_of(runs, "slot_use"),
                              "ideal_efficiency": setting["ideal"]["efficiency"],
                              "pages_per_s": median_of(runs, "pages_per_s"), "cpu_ms_per_page": total_ms,
                              "cores_needed": needed, "target": target, "verdict": verdict}
        if verdict.endswith("MISSED") or (verdict == "n/a" and efficiency < target):
            setting["summary"]["bottleneck"] = bottleneck(runs, cores)
            if setting["ideal"]["efficiency"] < target:
                setting["summary"]["bottleneck"] = (
                    f"the window caps it: a client with no overhead reaches {setting['ideal']['efficiency']:.3f} "
                    f"with {setting['window']} pages in flight; {setting['summary']['bottleneck']}")
            why = "" if applies else f" (the cores do not suffice: {needed:.1f} needed, {cores} here)"
            print(f"    bottleneck{why}: {setting['summary']['bottleneck']}")
    print("  ideal: a client with no overhead keeping that window full (the same server model, virtual time)")
    first = results["settings"][results["stage_setting"]]["runs"]
    print(f"\nCPU per page by stage (core-ms, median; the runs of {results['stage_setting']!r}):")
    stage_medians = 0.0
    for stage in OCR_SIDE_STAGES:
        value = median_stage(first, stage)
        stage_medians += value
        print(f"  {stage:28} {value:8.1f}")
    total = median_stage(first, "process")
    print(f"  {'embedding and the rest':28} {max(0.0, total - stage_medians):8.1f}   (process total {total:.1f})")
    # The target is judged on each run's own total, then the median: summing each stage's median
    # comes out low when different runs spike in different stages.
    per_run = sorted(sum(run["cpu_ms_per_page"].get(stage, 0.0) for stage in OCR_SIDE_STAGES) for run in first)
    ocr_side = statistics.median(per_run)
    verdict = "met" if ocr_side <= OCR_SIDE_TARGET_MS else "MISSED"
    print(f"  OCR side (all but embedding) {ocr_side:8.1f}   median of the runs' totals "
          f"({', '.join(f'{v:.1f}' for v in per_run)}); target <= {OCR_SIDE_TARGET_MS:.0f}: {verdict}")
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
    parser.add_argument("--corpus", nargs="+", default=["233", "1000"], metavar="SPEC",
                        help=f"corpora: a preset ({', '.join(corpus.PRESETS)}) or SCANS+PDFSxPAGES, e.g. 173+2x30; "
                             "the first one's default-window runs give the CPU per stage")
    parser.add_argument("--gpu-pages-per-s", type=float, default=6.0,
                        help="capacity of one simulated GPU, reached with a full batch")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1], help="settings: simulated GPUs, one URL each")
    parser.add_argument("--max-num-seqs", type=int, default=MAX_NUM_SEQS, help="sequences each simulated GPU batches")
    parser.add_argument("--half-batch", type=float, default=HALF_BATCH,
                        help="batch at which a simulated GPU's decode rate is half its peak")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="the pipeline's window per server in the default runs (default: the pipeline's own)")
    parser.add_argument("--windows", type=int, nargs="*", default=list(COMPARE_WINDOWS),
                        help="other windows per server measured beside the default one")
    parser.add_argument("--runner", choices=("local", "ray"), default="local",
                        help="the pipeline's runner; ray: a local Ray instance on this machine's cores, started once "
                             "(CPU ms/page then counts the driver and Ray's worker processes, not Ray's own daemons)")
    parser.add_argument("--no-rss", action="store_true", help="skip the 1,000-page PDF")
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 scans, one 8-page PDF, one run")
    parser.add_argument("--work", default=".bench", help="corpus and scratch folder (kept between runs)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.urls.split(","), args.workdir, args.max_in_flight)
    if args.quick:
        args.runs, args.corpus, args.no_rss = 1, ["quick"], True
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cores = os.cpu_count() or 1
    work = Path(args.work).resolve()
    try:
        specs = list(dict.fromkeys(corpus.CorpusSpec.parse(text) for text in args.corpus))
    except ValueError as exc:
        parser.error(str(exc))
    for spec in specs:
        print(f"corpus: {spec.pages} pages ({spec.describe()}) in {work}", flush=True)
    folders = [corpus.build(work / "corpus", spec) for spec in specs]
    main_window = args.max_in_flight or default_window()
    windows = list(dict.fromkeys([main_window, *args.windows]))
    service = ServiceModel(pages_per_s=args.gpu_pages_per_s, max_num_seqs=args.max_num_seqs,
                           half_batch=args.half_batch)
    results: dict = {"runs": args.runs, "cores": cores, "runner": args.runner, "machine": platform.node(),
                     "settings": {},
                     "corpora": {str(spec.pages): spec.describe() for spec in specs},
                     "default_window": main_window,
                     "gpu": f"{args.gpu_pages_per_s:g} pages/s at a full batch of {args.max_num_seqs}, "
                            f"half batch {args.half_batch:g}"}
    with ExitStack() as stack, tempfile.TemporaryDirectory(dir=work) as scratch:
        scratch_path = Path(scratch)
        ingestor_class(args.runner)  # import cost outside the timings
        if args.runner == "ray":
            import ray

            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            stack.callback(ray.shutdown)

        last_store = None
        for gpus in args.gpus:
            urls = start_servers(stack, gpus, service)
            base = f"{gpus} GPU{'s' if gpus > 1 else ''} x {args.gpu_pages_per_s:g} pages/s" \
                + (", ray" if args.runner == "ray" else "")
            run_once([str(next((folders[0] / "scans").iterdir()))], urls, scratch_path, f"warm-{gpus}",
                     args.max_in_flight, args.runner)  # loads the embedding model and tokenizer
            for spec, folder in zip(specs, folders):
                for window in windows:
                    is_default = window == main_window
                    # The default window's setting on a lone corpus keeps the plain name.
                    name = ", ".join([base] + ([f"{spec.pages} pages"] if len(specs) > 1 else [])
                                     + ([] if is_default else [f"window {window}"]))
                    runs = []
                    for number in range(args.runs):
                        print(f"{name}{' (default window)' if is_default else ''}: run {number + 1}/{args.runs}...",
                              flush=True)
                        store = f"run-{gpus}-{spec.pages}-{window}-{number}"
                        runs.append(run_once([str(folder)], urls, scratch_path, store,
                                             args.max_in_flight if is_default else window, args.runner))
                        last_store = scratch_path / store
                        print(f"  {runs[-1]['pages']} pages in {runs[-1]['wall_s']:.1f} s, efficiency "
                              f"{runs[-1]['efficiency']:.3f}, slot use {runs[-1]['slot_use']:.3f}, "
                              f"GPU busy {runs[-1]['gpu_busy_s']:.1f} s (first request after {runs[-1]['lead_s']:.1f} s, "
                              f"the last {runs[-1]['fed_s']:.1f} s after that, "
                              f"done {runs[-1]['tail_s']:.1f} s after the last answer)", flush=True)
                    results["settings"][name] = {
                        "capacity_pages_per_s": runs[0]["capacity_pages_per_s"], "pages": spec.pages,
                        "gpus": gpus, "window": window, "default_window": is_default,
                        "ideal": ideal(service, spec.pages, gpus, window), "runs": runs}
                    results.setdefault("stage_setting", name)
        print("embedding and upserts alone...", flush=True)
        texts = chunk_texts(last_store)[:EMBED_SAMPLE]
        results["alone"] = embedding_and_upsert(texts, max(1, args.runs), scratch_path)
        if not args.no_rss:
            print("1,000-page PDF in a child process...", flush=True)
            pdf = corpus.thousand_page_pdf(work / "corpus")
            urls = start_servers(stack, 1, ServiceModel(pages_per_s=50.0, max_num_seqs=args.max_num_seqs,
                                                        half_batch=args.half_batch))
            results["rss"] = peak_rss(pdf, urls, scratch_path, args.max_in_flight)
    print_table(results, cores)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
